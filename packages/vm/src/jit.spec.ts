import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { VmError } from './errors.js';
import { type Insn, insn } from './insn.js';
import { AddressSpace } from './memory.js';
import { Program } from './program.js';
import { Vm } from './vm.js';

const dstReg = fc.integer({ min: 0, max: 9 });
const srcReg = fc.integer({ min: 0, max: 10 });
const imm = fc.oneof(
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
  fc.integer({ min: -70, max: 70 }),
);
const stackOff = fc.integer({ min: -256, max: -8 });
const ALU = [0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x90, 0xa0, 0xb0, 0xc0];
const JMP = [0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xa0, 0xb0, 0xc0, 0xd0];

/** One single-slot instruction of the body; jumps carry a pick for their forward target. */
const bodyInsn: fc.Arbitrary<[Insn, number | null]> = fc.oneof(
  fc
    .tuple(
      fc.constantFrom(0x04, 0x07),
      fc.constantFrom(...ALU),
      fc.boolean(),
      dstReg,
      srcReg,
      imm,
      fc.boolean(),
    )
    .map(([k, o, x, d, s, i, sg]): [Insn, number | null] => [
      insn(k | o | (x ? 8 : 0), d, x ? s : 0, (o === 0x30 || o === 0x90) && sg ? 1 : 0, x ? 0 : i),
      null,
    ]),
  fc
    .tuple(fc.constantFrom(0x84, 0x87), dstReg)
    .map(([c, d]): [Insn, number | null] => [insn(c, d), null]),
  fc
    .tuple(fc.constantFrom(0xd4, 0xdc, 0xd7), dstReg, fc.constantFrom(16, 32, 64))
    .map(([c, d, w]): [Insn, number | null] => [insn(c, d, 0, 0, w), null]),
  fc
    .tuple(fc.constantFrom(0xbc, 0xbf), dstReg, srcReg, fc.constantFrom(8, 16, 32))
    .map(([c, d, s, w]): [Insn, number | null] => [
      insn(c, d, s, c === 0xbc && w === 32 ? 16 : w),
      null,
    ]),
  fc
    .tuple(
      fc.constantFrom(0x05, 0x06),
      fc.constantFrom(...JMP),
      fc.boolean(),
      dstReg,
      srcReg,
      imm,
      fc.nat(),
    )
    .map(([k, o, x, d, s, i, pick]): [Insn, number | null] => [
      insn(k | o | (x ? 8 : 0), d, x ? s : 0, 0, x ? 0 : i),
      pick,
    ]),
  fc
    .tuple(fc.constantFrom(0x61, 0x69, 0x71, 0x79, 0x81, 0x89, 0x91), dstReg, stackOff)
    .map(([c, d, o]): [Insn, number | null] => [insn(c, d, 10, o), null]),
  fc
    .tuple(fc.constantFrom(0x63, 0x6b, 0x73, 0x7b), srcReg, stackOff)
    .map(([c, s, o]): [Insn, number | null] => [insn(c, 10, s, o), null]),
  fc
    .tuple(fc.constantFrom(0x62, 0x6a, 0x72, 0x7a), stackOff, imm)
    .map(([c, o, i]): [Insn, number | null] => [insn(c, 10, 0, o, i), null]),
  fc
    .tuple(
      fc.constantFrom(0xc3, 0xdb),
      dstReg,
      stackOff,
      fc.constantFrom(0x00, 0x01, 0x40, 0x41, 0x50, 0x51, 0xa0, 0xa1, 0xe1, 0xf1),
    )
    .map(([c, s, o, a]): [Insn, number | null] => [insn(c, 10, s, o & ~7, a), null]),
);

/** Random registers, a random body with forward jumps only, then every register stored to the stack. */
const program = fc
  .tuple(
    fc.array(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), { minLength: 10, maxLength: 10 }),
    fc.array(bodyInsn, { minLength: 1, maxLength: 60 }),
  )
  .map(([init, body]) => {
    const slots: Insn[] = [];
    init.forEach((v, r) => {
      const lo = Number(v & 0xffffffffn) | 0;
      const hi = Number(v >> 32n) | 0;
      slots.push(insn(0x18, r, 0, 0, lo, hi), insn(0, 0, 0, 0, hi));
    });
    body.forEach(([i, pick], k) => {
      const copy = { ...i };
      if (pick !== null) copy.off = pick % (body.length - k);
      slots.push(copy);
    });
    for (let r = 0; r < 10; r++) slots.push(insn(0x7b, 10, r, -8 * (r + 1) - 256));
    slots.push(insn(0x95));
    return slots;
  });

function runBoth(slots: Insn[], budget = 1_000_000): [unknown, unknown] {
  const prog = Program.load(slots);
  if (prog instanceof VmError) throw prog;
  const results = [false, true].map((jit) => {
    const vm = Vm.create({ memory: new AddressSpace(), budget }) as Vm;
    const rc = jit ? vm.runJit(prog) : vm.run(prog);
    // After an error, registers and memory are unspecified (the JIT may stop before a block).
    if (rc !== 0) return { rc, error: vm.error?.message, pc: vm.errorPc, executed: vm.executed };
    return {
      rc,
      r0: vm.r0,
      stack: [...vm.stack.bytes.subarray(vm.stack.size - 512)],
      error: vm.error?.message,
      executed: vm.executed,
    };
  });
  return [results[0], results[1]];
}

describe('JIT against the interpreter', () => {
  it('agree on registers, stack, return code and instruction count for random programs', () => {
    fc.assert(
      fc.property(program, (slots) => {
        const [interp, jit] = runBoth(slots);
        expect(jit).toEqual(interp);
      }),
      { numRuns: 400 },
    );
  }, 60_000);

  it('stop at the same instruction when the budget runs out', () => {
    fc.assert(
      fc.property(program, fc.integer({ min: 1, max: 80 }), (slots, budget) => {
        const [interp, jit] = runBoth(slots, budget);
        expect(jit).toEqual(interp);
      }),
      { numRuns: 300 },
    );
  }, 60_000);

  it('agree when a program moves r10 (no direct stack addressing then)', () => {
    const [interp, jit] = runBoth([
      insn(0x07, 10, 0, 0, -16),
      insn(0x7a, 10, 0, 8, 5),
      insn(0x79, 0, 10, 8),
      insn(0x95),
    ]);
    expect(jit).toEqual(interp);
    expect((interp as { r0: bigint }).r0).toBe(5n);
  });

  it('agree on misaligned stack accesses in a strict-alignment address space', () => {
    const prog = Program.load([insn(0x7a, 10, 0, -12, 1), insn(0x95)]) as Program;
    const [a, b] = [false, true].map((jit) => {
      const vm = Vm.create({ memory: new AddressSpace({ strictAlignment: true }) }) as Vm;
      return [jit ? vm.runJit(prog) : vm.run(prog), vm.error?.message];
    });
    expect(b).toEqual(a);
    expect(a?.[1]).toContain('insn 0: misaligned write of 8 byte(s)');
  });

  it('agree on a fault at the same instruction', () => {
    const [interp, jit] = runBoth([insn(0xb7, 1, 0, 0, 16), insn(0x61, 0, 1, 4), insn(0x95)]);
    expect(jit).toEqual(interp);
    expect((interp as { error: string }).error).toContain(
      'insn 1: unmapped read of 4 byte(s) at 0x14',
    );
  });
});

/** Registers some of r0-r9 may leave unset, a body with jumps either way and helper calls. */
const partialProgram = fc
  .tuple(
    fc.array(fc.option(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })), {
      minLength: 10,
      maxLength: 10,
    }),
    fc.array(
      fc.oneof(
        { weight: 6, arbitrary: bodyInsn },
        { weight: 1, arbitrary: fc.constant<[Insn, null]>([insn(0x85, 0, 0, 0, 99), null]) },
      ),
      { minLength: 1, maxLength: 40 },
    ),
    fc.boolean(),
  )
  .map(([init, body, storeAll]) => {
    const slots: Insn[] = [];
    init.forEach((v, r) => {
      if (v === null) return;
      const hi = Number(v >> 32n) | 0;
      slots.push(insn(0x18, r, 0, 0, Number(v & 0xffffffffn) | 0, hi), insn(0, 0, 0, 0, hi));
    });
    body.forEach(([i, pick], k) => {
      const copy = { ...i };
      // Any body slot or the end: loops are possible, the budget stops them.
      if (pick !== null) copy.off = (pick % (body.length + 1)) - k - 1;
      slots.push(copy);
    });
    if (storeAll) for (let r = 0; r < 10; r++) slots.push(insn(0x7b, 10, r, -8 * (r + 1) - 256));
    slots.push(insn(0x95));
    return slots;
  });

/** One run's observable outcome; `dirty` leaves garbage in every register first. */
function outcome(prog: Program, jit: boolean, dirty: boolean): unknown {
  const vm = Vm.create({ memory: new AddressSpace(), budget: 2000 }) as Vm;
  const seen: string[] = [];
  vm.setHelper(99, (v) => {
    seen.push(`${v.lo.join()}/${v.hi.join()}`);
    return seen.length;
  });
  if (dirty) {
    // A previous run of some other program left its registers behind.
    const junk = Program.load([insn(0xb7, 0, 0, 0, 0), insn(0x95)]) as Program;
    if (jit) vm.runJit(junk);
    else vm.run(junk);
    for (let r = 0; r < 11; r++) {
      vm.lo[r] = 0x5a5a5a5a ^ r;
      vm.hi[r] = -r;
    }
  }
  const rc = jit ? vm.runJitRaw(prog, 0x1000, 0, 7, 0) : vm.runRaw(prog, 0x1000, 0, 7, 0);
  if (rc !== 0) return { rc, error: vm.error?.message, pc: vm.errorPc, executed: vm.executed };
  const stack = [...vm.stack.bytes.subarray(vm.stack.size - 512)];
  return { rc, r0: vm.r0, stack, executed: vm.executed, seen };
}

describe('a vm that ran other programs', () => {
  it('runs a program as a fresh vm does, in both engines, though it skips zeroing registers the program writes first', () => {
    fc.assert(
      fc.property(partialProgram, (slots) => {
        const prog = Program.load(slots);
        if (prog instanceof VmError) throw prog;
        const fresh = outcome(prog, false, false);
        expect(outcome(prog, false, true)).toEqual(fresh);
        expect(outcome(prog, true, false)).toEqual(fresh);
        expect(outcome(prog, true, true)).toEqual(fresh);
      }),
      { numRuns: 400 },
    );
  }, 60_000);
});
