import { describe, expect, it } from 'vitest';
import { ARCHES, archInfo } from './arch.js';
import { ArchError } from './errors.js';
import { FtraceRegs, ftracePartialRegs, PtRegs } from './regs.js';

describe('PtRegs', () => {
  it('stores fields at kernel offsets', () => {
    const r = new PtRegs('x86_64');
    r.write('ip', 0xffffffff81001234n);
    const view = new DataView(r.bytes.buffer);
    expect(view.getBigUint64(128, true)).toBe(0xffffffff81001234n);
    expect(r.instructionPointer()).toBe(0xffffffff81001234n);
    expect(r.lo(r.fieldIndex('ip'))).toBe(0x81001234);
    expect(r.hi(r.fieldIndex('ip'))).toBe(0xffffffff);
  });

  it('truncates to 32 bits on i386', () => {
    const r = new PtRegs('i386');
    r.write('ax', 0x1_2345_6789n);
    expect(r.read('ax')).toBe(0x2345_6789n);
    expect(r.hi(r.fieldIndex('ax'))).toBe(0);
  });

  it('names an unknown field', () => {
    const r = new PtRegs('arm64');
    expect(() => r.read('rax')).toThrow(/arm64 pt_regs has no field 'rax'/);
  });

  it.each(ARCHES)('%s accessors use the arch roles', (arch) => {
    const r = new PtRegs(arch);
    const info = archInfo(arch);
    r.setArgument(0, 11n);
    r.setArgument(info.ptRoles.args.length - 1, 22n);
    expect(r.argument(0)).toBe(11n);
    expect(r.read(info.ptRoles.args[info.ptRoles.args.length - 1])).toBe(22n);
    r.setReturnValue(7n);
    expect(r.returnValue()).toBe(7n);
    // arm64 and riscv return in the first argument register; x86 does not.
    expect(r.argument(0)).toBe(info.ptRoles.args[0] === info.ptRoles.ret[0] ? 7n : 11n);
    expect(() => r.setArgument(info.ptRoles.args.length, 1n)).toThrow(ArchError);
    expect(() => r.argument(-1)).toThrow(/not a non-negative integer/);
  });

  it('x86 reads the return address and stack arguments from memory', () => {
    const r = new PtRegs('x86_64');
    r.setStackPointer(0x1000n);
    const mem = new Map<bigint, bigint>([
      [0x1000n, 0xffffffff81000abcn],
      [0x1008n, 77n],
    ]);
    const read = (a: bigint): bigint => mem.get(a) ?? 0n;
    expect(r.returnAddress(read)).toBe(0xffffffff81000abcn);
    expect(r.argument(6, read)).toBe(77n);
    expect(r.argument(6)).toBe(0n);
    expect(() => r.returnAddress()).toThrow(/memory reader/);
    r.overrideFunctionWithReturn(read);
    expect(r.instructionPointer()).toBe(0xffffffff81000abcn);
    expect(r.stackPointer()).toBe(0x1008n);
  });

  it('arm64 returns through the link register', () => {
    const r = new PtRegs('arm64');
    r.write('x30', 0xffff800080001000n);
    r.setStackPointer(0x2000n);
    r.overrideFunctionWithReturn();
    expect(r.instructionPointer()).toBe(0xffff800080001000n);
    expect(r.stackPointer()).toBe(0x2000n);
  });
});

describe('FtraceRegs', () => {
  it('strict mode throws on a register ftrace_caller does not save', () => {
    const f = new FtraceRegs('x86_64');
    expect(() => f.read('bx')).toThrow(/does not hold 'bx'/);
    expect(() => f.write('r12', 1n)).toThrow(ArchError);
    expect(f.holds('di')).toBe(true);
    expect(f.holds('r15')).toBe(false);
  });

  it('non-strict mode reads what is there', () => {
    const f = new FtraceRegs('x86_64', { strict: false });
    expect(f.read('bx')).toBe(0n);
  });

  it('the full-regs caller holds everything; arm64 has none', () => {
    const f = new FtraceRegs('x86_64', { caller: 'regs_caller' });
    expect(f.read('bx')).toBe(0n);
    expect(() => new FtraceRegs('arm64', { caller: 'regs_caller' })).toThrow(/EOPNOTSUPP/);
  });

  it('i386 ftrace_caller holds nothing (NULL regs without WITH_ARGS)', () => {
    const f = new FtraceRegs('i386');
    expect(() => f.argument(0)).toThrow(/does not hold 'ax'/);
  });

  it('cannot be used where a PtRegs is required', () => {
    const f = new FtraceRegs('riscv64');
    // @ts-expect-error an ftrace_regs is not a full pt_regs
    const p: PtRegs = f;
    expect(p.kind).toBe('ftrace_regs');
  });

  it.each(ARCHES.filter((a) => a !== 'i386'))(
    '%s saveFrom/restoreTo move held registers only',
    (arch) => {
      const info = archInfo(arch);
      const cpu = new PtRegs(arch);
      cpu.layout.fields.forEach((_, i) => cpu.writeIndex(i, BigInt(i + 1) * 0x1_0000_0001n));
      const f = new FtraceRegs(arch);
      f.saveFrom(cpu);
      expect(f.argument(0)).toBe(cpu.argument(0));
      expect(f.stackPointer()).toBe(cpu.stackPointer());
      expect(f.instructionPointer()).toBe(cpu.instructionPointer());
      expect(f.framePointer()).toBe(cpu.framePointer());
      f.setArgument(1, 99n);
      f.restoreTo(cpu);
      expect(cpu.argument(1)).toBe(99n);
      const lr = info.ptRoles.lr;
      if (lr !== null) expect(f.returnAddress()).toBe(cpu.read(lr));
    },
  );

  it('x86 ftrace_caller zeroes cs to mark a partial pt_regs', () => {
    const cpu = new PtRegs('x86_64');
    cpu.write('cs', 0x10n);
    const f = new FtraceRegs('x86_64');
    f.saveFrom(cpu);
    expect(f.read('cs')).toBe(0n);
    // The restore puts back what callbacks may change, not the mark.
    f.restoreTo(cpu);
    expect(cpu.read('cs')).toBe(0x10n);
    expect(ftracePartialRegs(f).read('cs')).toBe(0n);
  });

  it.each(ARCHES.filter((a) => a !== 'i386'))(
    '%s restoreTo leaves the registers ftrace_regs does not hold',
    (arch) => {
      const cpu = new PtRegs(arch);
      const f = new FtraceRegs(arch);
      f.saveFrom(cpu);
      cpu.layout.fields.forEach((_, i) => cpu.writeIndex(i, 0x5a5a5a5a_5a5a5a5an));
      f.restoreTo(cpu);
      const real = ftracePartialRegs(f).real;
      cpu.layout.fields.forEach((field, i) => {
        if (real[i] === 1 || field.name === 'cs') return;
        expect(cpu.readIndex(i), field.name).toBe(
          field.size === 8 ? 0x5a5a5a5a_5a5a5a5an : 0x5a5a5a5an,
        );
      });
    },
  );
});

describe('return_to_handler ftrace_regs', () => {
  it('x86_64 holds the return value, not the arguments', () => {
    const cpu = new PtRegs('x86_64');
    cpu.write('ax', 7n);
    cpu.write('di', 1n);
    const f = new FtraceRegs('x86_64', { caller: 'return' });
    f.saveFrom(cpu);
    expect(f.returnValue()).toBe(7n);
    expect(() => f.argument(0)).toThrow(/return_to_handler does not hold 'di'/);
    // A pt_regs built from it for a kretprobe program has no real argument registers.
    const p = ftracePartialRegs(f);
    expect(p.isReal('di')).toBe(false);
    expect(p.isReal('ax')).toBe(true);
  });

  it('arm64 keeps x0-x7, so a wide return value is whole', () => {
    const f = new FtraceRegs('arm64', { caller: 'return' });
    expect(f.holds('x7')).toBe(true);
    expect(f.holds('x8')).toBe(false);
    expect(f.holds('lr')).toBe(false);
  });
});

describe('ftracePartialRegs', () => {
  it('arm64 maps fp to x29 and lr to x30 and marks real fields', () => {
    const f = new FtraceRegs('arm64');
    f.write('x3', 3n);
    f.write('fp', 0x29n);
    f.write('lr', 0x30n);
    f.write('sp', 0x5000n);
    f.write('pc', 0xffff800080000004n);
    f.write('direct_tramp', 0xdeadn);
    const p = ftracePartialRegs(f);
    expect(p.read('x3')).toBe(3n);
    expect(p.read('x29')).toBe(0x29n);
    expect(p.read('x30')).toBe(0x30n);
    expect(p.stackPointer()).toBe(0x5000n);
    expect(p.instructionPointer()).toBe(0xffff800080000004n);
    expect(p.isReal('x8')).toBe(true);
    expect(p.isReal('x9')).toBe(false);
    expect(p.isReal('pstate')).toBe(false);
    expect(p.realFields()).toEqual([
      ...Array.from({ length: 9 }, (_, i) => `x${i}`),
      'x29',
      'x30',
      'sp',
      'pc',
    ]);
  });

  it('x86 copies the saved subset; riscv keeps names', () => {
    const x = new FtraceRegs('x86_64');
    x.write('di', 5n);
    const px = ftracePartialRegs(x);
    expect(px.read('di')).toBe(5n);
    expect(px.isReal('bx')).toBe(false);
    expect(px.isReal('cs')).toBe(true);
    const r = new FtraceRegs('riscv64');
    r.write('t1', 9n);
    const pr = ftracePartialRegs(r, new PtRegs('riscv64'));
    expect(pr.read('t1')).toBe(9n);
    expect(pr.isReal('s1')).toBe(false);
  });

  it.each([
    ['x86_64', 'di', 'bx'],
    ['arm64', 'x3', 'x9'],
    ['riscv64', 't1', 's1'],
  ] as const)(
    '%s: a rebuild into the same pt_regs zeroes what was written since',
    (arch, held, unsaved) => {
      const f = new FtraceRegs(arch);
      const p = new PtRegs(arch);
      f.write(held, 1n);
      ftracePartialRegs(f, p);
      // Written through the accessors (dirty): the next build zeroes it again.
      p.write(unsaved, 0x1234n);
      f.write(held, 2n);
      ftracePartialRegs(f, p);
      expect(p.read(unsaved)).toBe(0n);
      expect(p.read(held)).toBe(2n);
      // Nothing written in between: the held words still follow ftrace_regs.
      f.write(held, 3n);
      ftracePartialRegs(f, p);
      expect(p.read(held)).toBe(3n);
      expect(p.isReal(unsaved)).toBe(false);
      // copyFrom brings another block's words; the next build rewrites every word.
      const other = new PtRegs(arch);
      other.write(unsaved, 0x55n);
      p.copyFrom(other);
      ftracePartialRegs(f, p);
      expect(p.read(unsaved)).toBe(0n);
      expect(p.isReal(unsaved)).toBe(false);
    },
  );

  it('rejects mixing arches', () => {
    expect(() => ftracePartialRegs(new FtraceRegs('arm64'), new PtRegs('riscv64'))).toThrow(
      /ftrace_regs is arm64 but pt_regs is riscv64/,
    );
  });

  it('toObject lists only what is held', () => {
    const f = new FtraceRegs('riscv64');
    expect(Object.keys(f.toObject())).toHaveLength(13);
  });
});
