import { readFileSync } from 'node:fs';
import { BtfBuilder } from '@tracelab/btf';
import { KernelImage } from '@tracelab/kernel';
import { AddressSpace, PROT_READ, PROT_WRITE, RingBuf } from '@tracelab/vm';
import { describe, expect, it } from 'vitest';
import { BpfObject, LoaderError, POISON_HELPER_ID, fakeKernelEnv } from './index.js';

const file = (name: string): Uint8Array =>
  new Uint8Array(readFileSync(new URL(`../testdata/${name}`, import.meta.url)));

// The simulated kernel's BTF: the verifier types tracing contexts with it (vfs_read, tracepoints).
const image = KernelImage.builtin('x86_64');
if (image instanceof Error || image.btf === null) throw new Error('the built-in image has BTF');
const kernelBtf = image.btf;

// target.c's BTF plays the kernel: it declares init_task and max_threads as VARs.
const targetBtf = BpfObject.open(file('target.bpfel.o')).btf as NonNullable<BpfObject['btf']>;
/** kallsyms of the kernel variables ksym.c reads. */
const KALLSYMS: Record<string, bigint> = {
  init_task: 0xffffffff82a14000n,
  max_threads: 0xffffffff82c0b000n,
};
/** kallsyms for failures found while linking, before an address is needed. */
const ENOENT_LINK = (name: string): bigint | undefined => KALLSYMS[name];

const u32 = (n: number): Uint8Array => new Uint8Array(new Uint32Array([n]).buffer);
const u64 = (n: bigint): Uint8Array => new Uint8Array(new BigUint64Array([n]).buffer);
const dv = (b: Uint8Array | Error): DataView => {
  if (b instanceof Error) throw b;
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
};

// Every program runs the same from both byte orders: a bpfeb object's data is converted on load.
describe.each(['bpfel', 'bpfeb'])('clang-built %s programs run in the vm', (order) => {
  const fixture = (name: string): Uint8Array => file(name.replace('.bpfel.', `.${order}.`));

  // run_sum = add_global(base_value + sum of i*i for i < min(16, limit), 1);
  // run_loop = sum of the indexes bpf_loop(limit, ...) hands its callback.
  it.each([
    [10, 100 + 285 + 1, 45],
    [4, 100 + 14 + 1, 6],
    [0, 100 + 1, 0],
    [40, 100 + 1240 + 1, 780],
  ])('loops with limit %i: BPF-to-BPF calls, .rodata, .data, bpf_loop', (limit, sum, loop) => {
    const obj = BpfObject.open(fixture('loops.bpfel.o'));
    obj.map('.rodata').setVar('limit', limit);
    const loaded = obj.load();
    expect(loaded.run('run_sum')).toMatchObject({ ret: 0, r0: BigInt(sum) });
    expect(loaded.run('run_loop')).toMatchObject({ ret: 0, r0: BigInt(loop) });
  });

  it('load() verifies every program and keeps its log', () => {
    const loaded = BpfObject.open(fixture('loops.bpfel.o')).load({ logLevel: 2 });
    expect(loaded.verdicts.map((v) => [v.name, v.result.ok])).toEqual([
      ['run_sum', true],
      ['run_loop', true],
    ]);
    // run_loop's callback is verified as its own frame; the log shows it.
    expect(loaded.log('run_loop')).toMatch(/^processed \d+ insns \(limit 1000000\)/m);
    expect(loaded.log('run_loop')).toContain('loop_cb');
    expect(() => loaded.log('nope')).toThrow(/ENOENT: no program 'nope'/);
  });

  it('.data written before load is what the program reads', () => {
    const obj = BpfObject.open(fixture('loops.bpfel.o'));
    obj.map('.data').setVar('base_value', 1000n);
    expect(obj.load().run('run_sum').r0).toBe(BigInt(1000 + 285 + 1));
  });

  it('latency: fentry stamps, fexit fills the .bss histogram and bumps .data', () => {
    const loaded = BpfObject.open(fixture('latency.bpfel.o')).load();
    expect(loaded.run('read_entry').ret).toBe(0);
    expect(loaded.map('start').lookup(u32(1000)) instanceof Uint8Array).toBe(true);
    expect(loaded.run('read_exit').ret).toBe(0);
    // The fake clock advances 1000 ns per read: log2(1000) = 9.
    const bss = dv(loaded.map('.bss').lookup(u32(0)));
    expect(bss.getUint32(9 * 4, true)).toBe(1);
    expect(bss.getBigUint64(104, true)).toBe(0n);
    expect(dv(loaded.map('.data').lookup(u32(0))).getBigUint64(0, true)).toBe(8n);
    expect(loaded.map('start').lookup(u32(1000))).toMatchObject({ code: 'ENOENT' });
  });

  it('latency: a .rodata pid filter that does not match leaves only drops', () => {
    const obj = BpfObject.open(fixture('latency.bpfel.o'));
    obj.map('.rodata').setVar('target_tgid', 42);
    const loaded = obj.load();
    loaded.run('read_entry');
    loaded.run('read_exit');
    expect(dv(loaded.map('.bss').lookup(u32(0))).getBigUint64(104, true)).toBe(1n);
  });

  it('.rodata is frozen: a program cannot store into it', () => {
    const loaded = BpfObject.open(fixture('loops.bpfel.o')).load();
    const ro = loaded.map('.rodata').values;
    expect(ro).not.toBeNull();
    expect(loaded.memory.regionAt(ro?.base ?? 0n)?.prot).toBe(PROT_READ);
  });

  it('counts: fentry counts calls per function ip in a BTF-defined hash map', () => {
    const ip = 0xffffffff81234560n;
    const obj = BpfObject.open(fixture('counts.bpfel.o'));
    obj.setTargetBtf(fixture('vmlinux-min.btf'));
    const loaded = obj.load({ kernelBtf, helpers: { 173: () => ip } });
    loaded.run('count_fentry');
    loaded.run('count_fentry');
    loaded.run('count_multi');
    expect(dv(loaded.map('calls').lookup(u64(ip))).getBigUint64(0, true)).toBe(3n);
  });

  it('counts: kprobe reads pt_regs->ip through CO-RE against vmlinux', () => {
    const obj = BpfObject.open(fixture('counts.bpfel.o'));
    obj.setTargetBtf(fixture('vmlinux-min.btf'));
    const loaded = obj.load({ kernelBtf });
    const ctx = loaded.memory.map({
      name: 'pt_regs',
      base: 0xffffc90000200000n,
      size: 256,
      prot: PROT_READ | PROT_WRITE,
    });
    if (ctx instanceof Error) throw ctx;
    // pahole: pt_regs.ip is at 128. The kprobe counts ip - 1 (the address after int3).
    ctx.view.setBigUint64(128, 0xffffffff81000011n, true);
    expect(loaded.run('count_kprobe', ctx.base).ret).toBe(0);
    expect(dv(loaded.map('calls').lookup(u64(0xffffffff81000010n))).getBigUint64(0, true)).toBe(1n);
  });

  it('ringbuf: events carry task fields read through CO-RE', () => {
    const task = 0xffff888200000000n;
    const parent = 0xffff888200002000n;
    const env = {
      ...fakeKernelEnv(),
      currentTask: (out: Int32Array) => {
        out[0] = Number(BigInt.asIntN(32, task));
        out[1] = Number(BigInt.asIntN(32, task >> 32n));
      },
    };
    const obj = BpfObject.open(fixture('ringbuf.bpfel.o'));
    obj.setTargetBtf(fixture('vmlinux-min.btf'));
    const loaded = obj.load({ env, kernelBtf });
    // Offsets from pahole -C task_struct: tgid 1268, real_parent 1280, comm 1752.
    for (const [base, tgid, comm] of [
      [task, 4321, 'bash'],
      [parent, 1, 'systemd'],
    ] as const) {
      const r = loaded.memory.map({ name: `task${tgid}`, base, size: 3264, prot: PROT_READ });
      if (r instanceof Error) throw r;
      r.view.setInt32(1268, tgid, true);
      r.view.setBigUint64(1280, parent, true);
      r.bytes.set(new TextEncoder().encode(comm), 1752);
    }
    const ctx = loaded.memory.map({
      name: 'ctx',
      base: 0xffffc90000300000n,
      size: 64,
      prot: PROT_READ,
    });
    if (ctx instanceof Error) throw ctx;
    expect(loaded.run('on_exec', ctx.base)).toMatchObject({ ret: 0, r0: 0n });
    const ring = loaded.map('events');
    expect(ring).toBeInstanceOf(RingBuf);
    const events: { pid: number; ppid: number; comm: string }[] = [];
    (ring as RingBuf).consume((s) => {
      const v = dv(s);
      const comm = s.subarray(8, 24);
      events.push({
        pid: v.getInt32(0, true),
        ppid: v.getInt32(4, true),
        comm: new TextDecoder().decode(comm.subarray(0, comm.indexOf(0))),
      });
    });
    expect(events).toEqual([{ pid: 4321, ppid: 1, comm: 'bash' }]);
  });

  it('legacy maps: tracepoint programs update array and hash maps', () => {
    const loaded = BpfObject.open(fixture('legacy.bpfel.o')).load();
    loaded.run('on_openat');
    loaded.run('on_openat');
    loaded.run('on_close');
    const counters = loaded.map('counters');
    expect(dv(counters.lookup(u32(0))).getBigUint64(0, true)).toBe(2n);
    expect(dv(counters.lookup(u32(1))).getBigUint64(0, true)).toBe(1n);
    // The fake env's current tgid is 1000.
    expect(dv(loaded.map('seen').lookup(u32(1000))).getUint32(0, true)).toBe(1);
  });

  it('a reachable poisoned CO-RE relocation: load fails with the verifier log and source line', () => {
    const obj = BpfObject.open(fixture('core.bpfel.o'));
    obj.setTargetBtf(fixture('vmlinux-min.btf'));
    obj.setKconfig({ LINUX_KERNEL_VERSION: 1, CONFIG_BPF_SYSCALL: 'y' });
    obj.setKsymResolver(() => 0xffffffff82a0c000n);
    let err: unknown;
    try {
      obj.load();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LoaderError);
    const e = err as LoaderError;
    expect(e.code).toBe('EINVAL');
    expect(e.section).toBe('kprobe/sample_fn');
    // libbpf's poison is a call to helper 0xbad2310; the first one reads pt_regs (not in target).
    expect(e.message).toContain(`invalid func unknown#${POISON_HELPER_ID}`);
    expect(e.source).toMatch(/ctx->(di|si);? @ core\.c:\d+$/);
    // The rejection names the first poisoned instruction: clang scheduled the ctx->si load of
    // core.c:40 first, so that is insn 0 of core_all, and its line is the one line_info gives.
    const linked = obj.link().programs.find((p) => p.def.name === 'core_all');
    const first = linked?.insns.findIndex((i) => i.code === 0x85 && i.imm === POISON_HELPER_ID);
    expect(e.message).toContain(`at insn ${first} (${e.source})`);
    expect(e.log).toContain(`\n${first}: (85) call unknown#${POISON_HELPER_ID}\n`);
    expect(e.log).toContain(`invalid func unknown#${POISON_HELPER_ID}`);
    expect(e.log).toContain(`; ${e.source}`);
    // Nothing was loaded: the object may be loaded again once fixed.
    expect(() => obj.load({ verify: false })).not.toThrow();
  });

  it('kfunc: calls bind to the target FUNC ids; a missing weak kfunc is skipped; bpf_printk', () => {
    const obj = BpfObject.open(fixture('kfunc.bpfel.o'));
    obj.setTargetBtf(kernelBtf);
    const env = fakeKernelEnv();
    let released = 0n;
    const loaded = obj.load({
      env,
      kfuncs: {
        bpf_task_acquire: (v) => v.arg(1),
        bpf_task_release: (v) => {
          released = v.arg(1);
          return 0;
        },
      },
    });
    // CO-RE places t->pid where the kernel's task_struct has it.
    const pidOff = kernelBtf.offsetOf('task_struct.pid').byteOffset;
    const task = loaded.memory.map({
      name: 'task',
      base: 0xffff888300000000n,
      size: pidOff + 4,
      prot: PROT_READ,
    });
    const ctx = loaded.memory.map({
      name: 'ctx',
      base: 0xffffc90000400000n,
      size: 16,
      prot: PROT_READ,
    });
    if (task instanceof Error || ctx instanceof Error) throw new Error('map failed');
    task.view.setInt32(pidOff, 77, true);
    ctx.view.setBigUint64(0, task.base, true);
    ctx.view.setBigUint64(8, 0x11n, true);
    expect(loaded.run('on_newtask', ctx.base)).toMatchObject({ ret: 0, r0: 0n });
    expect(env.printk).toEqual(['new task 77 flags 11']);
    expect(released).toBe(task.base);
  });

  it('kfunc: a strong kfunc missing from the target BTF is ENOENT', () => {
    const obj = BpfObject.open(fixture('kfunc.bpfel.o'));
    obj.setTargetBtf(fixture('vmlinux-min.btf'));
    expect(() => obj.link()).toThrow(
      /ENOENT: unresolved kfunc 'bpf_task_acquire'.*section tp_btf\/task_newtask/,
    );
    expect(() => obj.load({ kfuncs: { nope: () => 0 } })).toThrow(/ENOENT/);
  });

  // read_ksyms = max_threads * 1000 + init_task.pid; comm = init_task.comm; weak_missing = 1.
  it('typed __ksym variables: BTF ids of the kernel VARs, addresses from kallsyms', () => {
    const obj = BpfObject.open(fixture('ksym.bpfel.o'));
    obj.setTargetBtf(targetBtf);
    obj.setKsymResolver((name) => KALLSYMS[name]);
    const memory = new AddressSpace();
    const task = memory.map({
      name: 'init_task',
      base: KALLSYMS.init_task,
      size: 64,
      prot: PROT_READ,
    });
    const threads = memory.map({
      name: 'max_threads',
      base: KALLSYMS.max_threads,
      size: 4,
      prot: PROT_READ,
    });
    if (task instanceof Error || threads instanceof Error) throw new Error('map failed');
    task.view.setInt32(targetBtf.offsetOf('task_struct.pid').byteOffset, 7, true);
    task.bytes.set(
      new TextEncoder().encode('swapper/0'),
      targetBtf.offsetOf('task_struct.comm').byteOffset,
    );
    threads.view.setInt32(0, 4096, true);
    const loaded = obj.load({ memory });
    expect(loaded.run('read_ksyms')).toMatchObject({ ret: 0, r0: 4096007n });
    const bss = loaded.map('.bss').lookup(u32(0));
    if (bss instanceof Error) throw bss;
    expect(new TextDecoder().decode(bss.subarray(0, 9))).toBe('swapper/0');
    expect(dv(bss).getUint32(16, true)).toBe(1);
    // The verifier saw a struct variable and a read-only int.
    expect(loaded.log('read_ksyms')).toBe(loaded.verdicts[0]?.result.log);
    expect(loaded.verdicts[0]?.result.ok).toBe(true);
  });

  // bump(outer, outer_key) = ++inner[slot] of the inner map outer[outer_key], -1 without one.
  // by_index = { [0] = cpu_stats, [2] = io_stats }, by_id = { [5] = io_stats }.
  it.each([
    ['bump_by_index', 0, 1, [1n, 2n], 'cpu_stats'],
    ['bump_by_index', 2, 3, [1n, 2n], 'io_stats'],
    ['bump_by_index', 1, 0, [-1n, -1n], undefined],
    ['bump_by_id', 5, 0, [1n, 2n], 'io_stats'],
    ['bump_by_id', 0, 0, [-1n, -1n], undefined],
    // An inner array has 4 slots: the inner lookup fails.
    ['bump_by_id', 5, 4, [-2n, -2n], undefined],
  ])('map-in-map: %s(outer key %i, inner slot %i)', (prog, outerKey, slot, r0s, bumped) => {
    const obj = BpfObject.open(fixture('mapinmap.bpfel.o'));
    obj.map('.rodata').setVar('outer_key', outerKey);
    obj.map('.rodata').setVar('slot', slot);
    const loaded = obj.load();
    expect([loaded.run(prog).r0, loaded.run(prog).r0].map((r) => BigInt.asIntN(64, r))).toEqual(
      r0s,
    );
    for (const name of ['cpu_stats', 'io_stats']) {
      const v = dv(loaded.map(name).lookup(u32(slot < 4 ? slot : 0))).getBigUint64(0, true);
      expect([name, v]).toEqual([name, name === bumped ? 2n : 0n]);
    }
  });

  it('map-in-map: outer maps hold the inner maps the object names, by id', () => {
    const loaded = BpfObject.open(fixture('mapinmap.bpfel.o')).load();
    const id = (name: string): Uint8Array => u32(loaded.map(name).id);
    const byIndex = loaded.map('by_index');
    expect(byIndex.lookup(u32(0))).toEqual(id('cpu_stats'));
    expect(byIndex.lookup(u32(1))).toMatchObject({ code: 'ENOENT' });
    expect(byIndex.lookup(u32(2))).toEqual(id('io_stats'));
    expect(loaded.map('by_id').lookup(u32(5))).toEqual(id('io_stats'));
    expect(loaded.map('by_id').getNextKey(null)).toEqual(u32(5));
  });

  // entry -> jump_table[first_slot]; slot 0 holds stage_one, which tail-calls slot 1 (stage_two).
  it.each([
    [0, 2n, [1n, 1n, 1n]],
    [1, 2n, [1n, 0n, 1n]],
    [3, 0n, [1n, 0n, 0n]],
  ])('tail calls through an object-initialised prog array (first_slot %i)', (slot, r0, hits) => {
    const obj = BpfObject.open(fixture('tailcall.bpfel.o'));
    obj.map('.rodata.cfg').setVar('first_slot', slot);
    const loaded = obj.load();
    expect(loaded.run('entry')).toMatchObject({ ret: 0, r0 });
    const stats = dv(loaded.map('.data.stats').lookup(u32(0)));
    expect([0, 1, 2].map((k) => stats.getBigUint64(k * 8, true))).toEqual(hits);
  });
});

/** A kernel BTF whose init_task is an int: the extern's struct type does not match it. */
function intInitTask() {
  const b = new BtfBuilder();
  const int = b.int('int', 4, { signed: true });
  b.var('init_task', int);
  b.var('max_threads', int);
  return b.build();
}

describe('typed __ksym variables the kernel cannot provide', () => {
  it.each([
    [
      'a strong one missing from the kernel BTF',
      file('vmlinux-min.btf'),
      ENOENT_LINK,
      /^ENOENT: extern \(var ksym\) 'init_task': not found in kernel BTF \(section syscall, offset 0x/,
    ],
    [
      'one whose kernel type is not compatible',
      intInitTask(),
      ENOENT_LINK,
      /^EINVAL: extern \(var ksym\) 'init_task': incompatible types, expected \[\d+\] STRUCT task_struct, but kernel has \[1\] INT int /,
    ],
    [
      'one kallsyms has no address for',
      targetBtf,
      (name: string) => (name === 'init_task' ? KALLSYMS.init_task : undefined),
      /^ENOENT: program 'read_ksyms': ENOENT: insn \d+: ldimm64 failed to find the address for kernel symbol 'max_threads'\./,
    ],
  ])('%s', (_what, btf, ksym, message) => {
    const obj = BpfObject.open(file('ksym.bpfel.o'));
    obj.setTargetBtf(btf);
    obj.setKsymResolver(ksym);
    expect(() => obj.load()).toThrow(message);
  });
});
