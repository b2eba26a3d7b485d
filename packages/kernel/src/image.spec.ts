import { readFileSync } from 'node:fs';
import { ARCHES, BTF_FMODEL_STRUCT_ARG, decodeEntry, entrySiteInfo } from '@tracelab/arch-isa';
import { describe, expect, it } from 'vitest';
import { KernelError } from './errors.js';
import { KernelImage, parseProto } from './image.js';

const image = (arch: (typeof ARCHES)[number]): KernelImage => {
  const img = KernelImage.builtin(arch);
  if (img instanceof KernelError) throw img;
  return img;
};

const globs = JSON.parse(
  readFileSync(new URL('./testdata/globs.json', import.meta.url), 'utf8'),
) as { glob: string; includes: string[]; excludes: string[] }[];

describe('built-in kernel image', () => {
  it.each(ARCHES)('%s: functions are laid out without overlap, modules above core text', (arch) => {
    const img = image(arch);
    const sorted = [...img.functions].sort((a, b) => (a.addr < b.addr ? -1 : 1));
    for (let i = 1; i < sorted.length; i++) {
      const prev = sorted[i - 1] as (typeof sorted)[number];
      expect(prev.addr + BigInt(prev.size) <= (sorted[i]?.addr ?? 0n)).toBe(true);
    }
    const core = img.functions.filter((f) => f.module === null);
    const mods = img.functions.filter((f) => f.module !== null);
    expect(mods.length).toBeGreaterThan(0);
    const maxCore = core.reduce((m, f) => (f.addr > m ? f.addr : m), 0n);
    expect(mods.every((f) => f.addr > maxCore)).toBe(true);
    expect(img.functions.every((f) => f.addr % 16n === 0n)).toBe(true);
  });

  it.each(ARCHES)(
    '%s: traceable functions start with the nop entry, notrace ones do not',
    (arch) => {
      const img = image(arch);
      const size = entrySiteInfo(arch).size;
      for (const f of img.functions) {
        const off = img.textOffset(f.index);
        const d = decodeEntry(arch, img.text.subarray(off, off + size), f.addr);
        if (f.traceable) expect(d, f.name).toMatchObject({ kind: 'nop' });
        else expect(d, f.name).toBeInstanceOf(Error);
      }
      expect(img.functions.find((f) => f.name === 'ftrace_caller')?.traceable).toBe(false);
      expect(img.functions.find((f) => f.name === 'vfs_read')?.traceable).toBe(true);
    },
  );

  it('has per-arch syscall entry', () => {
    expect(image('x86_64').indexOf('__x64_sys_read')).toBeGreaterThanOrEqual(0);
    expect(image('x86_64').indexOf('__arm64_sys_read')).toBe(-1);
    expect(image('arm64').indexOf('__arm64_sys_read')).toBeGreaterThanOrEqual(0);
    expect(image('riscv64').indexOf('__riscv_sys_read')).toBeGreaterThanOrEqual(0);
    expect(image('i386').indexOf('__ia32_sys_read')).toBeGreaterThanOrEqual(0);
    expect(image('x86_64').indexOf('ftrace_regs_caller')).toBeGreaterThanOrEqual(0);
    expect(image('arm64').indexOf('ftrace_regs_caller')).toBe(-1);
    expect(image('riscv64').indexOf('ftrace_regs_caller')).toBe(-1);
  });

  it.each(globs)('glob $glob', ({ glob, includes, excludes }) => {
    const img = image('x86_64');
    const names = img.glob(glob).map((i) => img.functions[i]?.name);
    for (const n of includes) expect(names).toContain(n);
    for (const n of excludes) expect(names).not.toContain(n);
  });

  it('kallsyms lookup maps any address inside a function to it', () => {
    const img = image('arm64');
    const f = img.functions[img.indexOf('tcp_v4_rcv')] as (typeof img.functions)[number];
    expect(img.lookup(f.addr)?.fn.name).toBe('tcp_v4_rcv');
    expect(img.lookup(f.addr + BigInt(f.size - 1))).toMatchObject({ offset: f.size - 1 });
    expect(img.symbolize(f.addr + 0x10n)).toBe(`tcp_v4_rcv+0x10/0x${f.size.toString(16)}`);
    expect(img.lookup(img.textBase - 1n)).toBeNull();
    const ext4 = img.functions[img.indexOf('ext4_lookup')] as (typeof img.functions)[number];
    expect(img.symbolize(ext4.addr)).toMatch(/ \[ext4\]$/);
  });

  it('encodes prototypes to BTF that parses back with the same functions', () => {
    const img = image('x86_64');
    const btf = img.btf;
    expect(btf).not.toBeNull();
    const funcs = btf?.funcs() ?? [];
    expect(funcs.map((f) => f.name).sort()).toEqual(img.functions.map((f) => f.name).sort());
    const vfsRead = funcs.find((f) => f.name === 'vfs_read');
    expect(vfsRead?.proto?.params.map((p) => p.name)).toEqual(['file', 'buf', 'count', 'pos']);
  });

  it('gives function models from BTF, per arch word size', () => {
    const x = image('x86_64');
    expect(x.model(x.indexOf('vfs_read'))).toMatchObject({
      nrArgs: 4,
      argSize: [8, 8, 8, 8],
      retSize: 8,
    });
    const i = image('i386');
    expect(i.model(i.indexOf('vfs_read'))).toMatchObject({
      nrArgs: 4,
      argSize: [4, 4, 4, 4],
      retSize: 4,
    });
    expect(i.model(i.indexOf('tick_do_update_jiffies64'))).toMatchObject({ argSize: [8] });
    const pte = x.model(x.indexOf('set_pte_at'));
    expect(pte?.argFlags[3]).toBe(BTF_FMODEL_STRUCT_ARG);
    // printk is variadic: the kernel cannot model it.
    expect(x.model(x.indexOf('printk'))).toBeNull();
  });

  it('task_struct is in the BTF with pid, tgid and comm', () => {
    const btf = image('riscv64').btf;
    expect(btf?.offsetOf('task_struct.pid').bitsOffset).toBeGreaterThan(0);
    expect(btf?.sizeOf(btf.get('task_struct', 'struct'))).toBeGreaterThan(16);
  });

  it('loads any BTF blob as an image', () => {
    const src = image('x86_64');
    const img = KernelImage.fromBtf('x86_64', src.btfBytes as Uint8Array);
    expect(img).toBeInstanceOf(KernelImage);
    expect((img as KernelImage).count).toBe(src.count);
    const bad = KernelImage.fromBtf('x86_64', new Uint8Array(8));
    expect(bad).toBeInstanceOf(KernelError);
    expect((bad as KernelError).code).toBe('EINVAL');
  });

  it.each([
    ['x86_64', ['ftrace_caller', 'ftrace_regs_caller', 'ftrace_stub', 'return_to_handler']],
    ['arm64', ['ftrace_caller', 'ftrace_stub', 'return_to_handler']],
  ] as const)('a %s BTF image has the ftrace assembly symbols, notrace', (arch, names) => {
    // BTF of plain C functions only, as a real vmlinux's: the trampolines are not in it.
    const c = KernelImage.builtin(arch, [{ subsystem: 't', protos: ['int foo(int a)'] }]);
    if (c instanceof KernelError) throw c;
    const img = KernelImage.fromBtf(arch, c.btfBytes as Uint8Array);
    if (img instanceof KernelError) throw img;
    expect(img.count).toBe(1 + names.length);
    for (const name of names) {
      const i = img.indexOf(name);
      expect(i, name).toBeGreaterThanOrEqual(0);
      expect(img.functions[i]?.traceable, name).toBe(false);
    }
    expect(img.indexOf('ftrace_regs_caller') >= 0).toBe(arch === 'x86_64');
    expect(img.functions[img.indexOf('foo')]?.traceable).toBe(true);
    // Where BTF does name them (the built-in image's does), they are notrace all the same.
    const full = KernelImage.fromBtf(arch, image(arch).btfBytes as Uint8Array) as KernelImage;
    expect(full.functions[full.indexOf('ftrace_caller')]?.traceable).toBe(false);
  });

  it.each([
    ['int foo', 'is not'],
    ['int foo(int)', "parameter 1 'int' has no name"],
  ])('parseProto rejects %s', (text, msg) => {
    const r = parseProto(text);
    expect(r).toBeInstanceOf(KernelError);
    expect((r as KernelError).message).toContain(msg);
  });

  it('rejects unknown C types in an image description', () => {
    const r = KernelImage.builtin('x86_64', [{ subsystem: 't', protos: ['int foo(weird_t x)'] }]);
    expect((r as KernelError).message).toContain("unknown C type 'weird_t'");
  });
});
