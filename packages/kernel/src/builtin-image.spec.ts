import { ARCHES, archInfo, type ArchName } from '@tracelab/arch-isa';
import { BTF_FUNC_GLOBAL, cDecl, dumpC, funcModel } from '@tracelab/btf';
import { describe, expect, it } from 'vitest';
import { BUILTIN_IMAGE, BUILTIN_TRACEPOINTS, type ImageGroup } from './builtin-image.js';
import { KernelError } from './errors.js';
import { KernelImage, parseProto } from './image.js';
import { kernelInfo } from './run.js';

const build = (arch: ArchName, groups?: readonly ImageGroup[]): KernelImage => {
  const img = KernelImage.builtin(arch, groups);
  if (img instanceof KernelError) throw img;
  return img;
};

const groupsOf = (arch: ArchName): ImageGroup[] =>
  BUILTIN_IMAGE.filter((g) => g.arches === undefined || g.arches.includes(arch));

/** Why the kernel's btf_distill_func_proto refuses a prototype, or null when it models it. */
function kernelRefusal(proto: string): RegExp | null {
  const p = parseProto(proto);
  if (p instanceof KernelError) throw p;
  if (p.variadic) return /with variable args is unsupported/;
  if (/^(struct|union) \w+$/.test(p.ret.replace(/\bconst\b/g, '').trim()))
    return /return type .* is unsupported/;
  return null;
}

/** Bytes a scalar or pointer parameter takes, as BTF sizes it on an arch. */
function paramSize(type: string, wordSize: number): number {
  const t = type.replace(/\bconst\b/g, '').trim();
  if (t.endsWith('*')) return wordSize;
  if (/^(u64|s64|loff_t|ktime_t|pte_t|long long|unsigned long long)$/.test(t)) return 8;
  if (/^(long|unsigned long|size_t|ssize_t)$/.test(t)) return wordSize;
  if (/^(bool|char|u8)$/.test(t)) return 1;
  if (/^(u16|umode_t|unsigned short)$/.test(t)) return 2;
  return 4;
}

describe('built-in image contents', () => {
  it.each(ARCHES)('%s has at least 300 functions over the subsystems of a real kernel', (arch) => {
    const img = build(arch);
    expect(img.count).toBeGreaterThanOrEqual(300);
    const bySubsystem = new Map<string, number>();
    for (const g of groupsOf(arch))
      bySubsystem.set(g.subsystem, (bySubsystem.get(g.subsystem) ?? 0) + g.protos.length);
    const total = [...bySubsystem.values()].reduce((a, b) => a + b, 0);
    expect(total).toBe(img.count);
    for (const [sub, min] of [
      ['entry', 20],
      ['vfs', 80],
      ['sched', 50],
      ['time', 40],
      ['irq', 30],
      ['net', 75],
      ['mm', 50],
    ] as const)
      expect(bySubsystem.get(sub), sub).toBeGreaterThanOrEqual(min);
    const modules = new Set(img.functions.map((f) => f.module).filter((m) => m !== null));
    expect([...modules].sort()).toEqual(['ext4', 'kvm', 'nf_conntrack', 'virtio_net']);
    const notrace = img.functions.filter((f) => !f.traceable).map((f) => f.name);
    expect(notrace).toEqual(
      expect.arrayContaining([
        'preempt_schedule_notrace',
        'sched_clock',
        'local_clock',
        'ktime_get_mono_fast_ns',
        'trace_clock_local',
        'ring_buffer_lock_reserve',
      ]),
    );
  });

  it.each(ARCHES)(
    '%s: every prototype distils to a function model or fails for the kernel reason',
    (arch) => {
      const img = build(arch);
      const btf = img.btf;
      if (btf === null) throw new Error('built-in image without BTF');
      const { wordSize } = archInfo(arch);
      const refused: string[] = [];
      for (const g of groupsOf(arch)) {
        for (const proto of g.protos) {
          const p = parseProto(proto);
          if (p instanceof KernelError) throw p;
          const i = img.indexOf(p.name);
          const res = funcModel(btf, img.functions[i]?.btfId ?? 0);
          const why = kernelRefusal(proto);
          if (why === null) {
            expect(res.ok, proto).toBe(true);
            expect(img.model(i), proto).toMatchObject({
              nrArgs: p.params.length,
              argSize: p.params.map((q) => paramSize(q.type, wordSize)),
            });
          } else {
            expect(res.ok, proto).toBe(false);
            if (!res.ok) expect(res.error.message, proto).toMatch(why);
            expect(img.model(i), proto).toBeNull();
            refused.push(p.name);
          }
        }
      }
      expect(refused.sort()).toEqual([
        '__warn_printk',
        'ns_to_timespec64',
        'printk',
        'scnprintf',
        'snprintf',
        'sprintf',
      ]);
    },
  );

  it.each(ARCHES)('%s: appended groups never move the functions before them', (arch) => {
    const full = build(arch);
    for (let n = 1; n < BUILTIN_IMAGE.length; n++) {
      const prefix = build(arch, BUILTIN_IMAGE.slice(0, n));
      for (const f of prefix.functions) {
        expect(full.functions[f.index], f.name).toMatchObject({
          name: f.name,
          addr: f.addr,
          size: f.size,
          btfId: f.btfId,
        });
      }
    }
  });

  it('symbol lookup and glob find the appended functions', () => {
    const img = build('x86_64');
    const names = (glob: string) => img.glob(glob).map((i) => img.functions[i]?.name);
    expect(names('__sys_*')).toEqual(
      expect.arrayContaining(['__sys_sendto', '__sys_recvfrom', '__sys_socket', '__sys_accept4']),
    );
    expect(names('__x64_sys_*')).toHaveLength(10);
    expect(names('tcp_v4_*')).toEqual(
      expect.arrayContaining(['tcp_v4_rcv', 'tcp_v4_do_rcv', 'tcp_v4_connect']),
    );
    expect(names('nf_c*')).toEqual(['nf_conntrack_in', 'nf_conntrack_tcp_packet', 'nf_ct_delete']);
    expect(names('vfs_[ru]*')).toEqual(['vfs_read', 'vfs_unlink', 'vfs_rmdir', 'vfs_rename']);
    // glob answers in address order, like kallsyms
    const addrs = img.glob('*').map((i) => img.functions[i]?.addr ?? 0n);
    expect(addrs.every((a, k) => k === 0 || (addrs[k - 1] as bigint) < a)).toBe(true);

    const kvm = img.functions[img.indexOf('kvm_vcpu_ioctl')];
    expect(kvm?.module).toBe('kvm');
    expect(img.symbolize((kvm?.addr ?? 0n) + 4n)).toBe(
      `kvm_vcpu_ioctl+0x4/0x${kvm?.size.toString(16)} [kvm]`,
    );
    for (const name of [
      'select_task_rq_fair',
      'hrtimer_wakeup',
      'dev_gro_receive',
      '__folio_alloc',
    ]) {
      const f = img.functions[img.indexOf(name)];
      expect(img.lookup((f?.addr ?? 0n) + BigInt((f?.size ?? 1) - 1))?.fn.name).toBe(name);
    }
  });

  it('keeps per-arch entry and notrace marks where the kernel has them', () => {
    const riscv = build('riscv64');
    const arm = build('arm64');
    const x86 = build('x86_64');
    const fn = (img: KernelImage, name: string) => img.functions[img.indexOf(name)];
    expect(fn(riscv, 'do_page_fault')?.traceable).toBe(false);
    expect(fn(arm, 'do_page_fault')?.traceable).toBe(true);
    expect(fn(x86, 'exc_page_fault')?.traceable).toBe(false);
    expect(fn(x86, 'do_user_addr_fault')?.traceable).toBe(true);
    expect(build('i386').indexOf('__ia32_sys_pipe2')).toBeGreaterThanOrEqual(0);
    expect(arm.indexOf('__x64_sys_pipe2')).toBe(-1);
    expect(fn(arm, 'cpu_switch_to')?.traceable).toBe(false);
  });

  it.each(ARCHES)('%s: kernel info counts what the image holds', (arch) => {
    const img = build(arch);
    const info = kernelInfo(arch) as Record<string, unknown>;
    expect(info).toMatchObject({
      functions: img.count,
      traceable: img.functions.filter((f) => f.traceable).length,
      notrace: img.functions.filter((f) => !f.traceable).length,
      modules: ['ext4', 'kvm', 'nf_conntrack', 'virtio_net'],
      btfBytes: img.btfBytes?.length,
    });
  });

  it.each(ARCHES)('%s: the task kfuncs are global, traceable core text', (arch) => {
    const img = build(arch);
    const btf = img.btf;
    if (btf === null) throw new Error('the built-in image has BTF');
    const decl = (name: string) => {
      const f = img.functions[img.indexOf(name)];
      expect(f, name).toMatchObject({ module: null, traceable: true });
      const func = btf.type(f?.btfId ?? 0);
      if (func?.kind !== 'func') throw new Error(`${name} has no BTF FUNC`);
      expect(func.linkage).toBe(BTF_FUNC_GLOBAL);
      return cDecl(btf, func.type, name);
    };
    expect(decl('bpf_task_acquire')).toBe(
      'struct task_struct *bpf_task_acquire(struct task_struct *p)',
    );
    expect(decl('bpf_task_release')).toBe('void bpf_task_release(struct task_struct *p)');
  });

  it.each(ARCHES)('%s: each tracepoint has its btf_trace_<name> typedef', (arch) => {
    const img = build(arch);
    const btf = img.btf;
    if (btf === null) throw new Error('the built-in image has BTF');
    const typedefs = dumpC(btf)
      .split('\n')
      .filter((l) => l.includes('btf_trace_'));
    expect(typedefs).toEqual(
      expect.arrayContaining([
        'typedef void (*btf_trace_task_newtask)(void *, struct task_struct *, u64);',
        'typedef void (*btf_trace_sched_process_exec)(void *, struct task_struct *, pid_t, struct linux_binprm *);',
      ]),
    );
    expect(typedefs).toHaveLength(BUILTIN_TRACEPOINTS.length);
    for (const tp of BUILTIN_TRACEPOINTS) {
      const td = btf.type(btf.find(`btf_trace_${tp.name}`, 'typedef') ?? 0);
      if (td?.kind !== 'typedef') throw new Error(`no btf_trace_${tp.name}`);
      const ptr = btf.type(td.type);
      if (ptr?.kind !== 'ptr') throw new Error(`btf_trace_${tp.name} is not a pointer`);
      const proto = btf.type(ptr.type);
      if (proto?.kind !== 'func_proto') throw new Error(`btf_trace_${tp.name} is no FUNC_PROTO`);
      expect(proto.returnType).toBe(0);
      expect(proto.params.length).toBe(tp.args.split(',').length + 1);
      const data = btf.type(proto.params[0]?.type ?? 0);
      expect(data?.kind === 'ptr' ? data.type : -1).toBe(0);
    }
  });

  it.each(ARCHES)('%s: tracepoint typedefs come after every function', (arch) => {
    const full = build(arch);
    const bare = KernelImage.builtin(arch, BUILTIN_IMAGE, []);
    if (bare instanceof KernelError) throw bare;
    expect(bare.btf?.find('btf_trace_task_newtask', 'typedef')).toBeUndefined();
    expect(full.functions).toEqual(bare.functions);
  });

  it('refuses a tracepoint declared twice or with variable args', () => {
    const once = { name: 'task_newtask', args: 'struct task_struct *task, u64 clone_flags' };
    const twice = KernelImage.builtin('x86_64', BUILTIN_IMAGE, [once, once]);
    expect(twice).toBeInstanceOf(KernelError);
    expect((twice as KernelError).message).toContain('defines tracepoint task_newtask twice');
    const varargs = KernelImage.builtin('x86_64', BUILTIN_IMAGE, [
      { name: 'console', args: 'const char *fmt, ...' },
    ]);
    expect((varargs as KernelError).message).toContain('tracepoint console has variable args');
    const unknown = KernelImage.builtin('x86_64', BUILTIN_IMAGE, [
      { name: 'odd', args: 'widget_t w' },
    ]);
    expect((unknown as KernelError).message).toContain("unknown C type 'widget_t'");
  });
});
