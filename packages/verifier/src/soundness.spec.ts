import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Insn, Program, Vm, assemble, isVmError } from '@tracelab/vm';
import { verify } from './index.js';

const REGS = ['r0', 'r2', 'r3', 'r4', 'r5'];
const SIZES = ['u8', 'u16', 'u32', 'u64'];

/** One line of a random program: ALU, stack stores and loads (also through a moved pointer), jumps. */
const line = fc.oneof(
  fc
    .tuple(
      fc.constantFrom(...REGS),
      fc.constantFrom('=', '+=', '-=', '*=', '&=', '|=', '^=', '<<=', '>>=', '/=', '%='),
      fc.oneof(fc.constantFrom(...REGS), fc.integer({ min: -600, max: 600 }).map(String)),
    )
    .map(([d, o, s]) => `${d} ${o} ${s}`),
  fc
    .tuple(fc.constantFrom(...SIZES), fc.integer({ min: 1, max: 64 }), fc.constantFrom(...REGS))
    .map(([t, o, s]) => `*(${t} *)(r10 - ${o * 8 > 520 ? 8 : o}) = ${s}`),
  fc
    .tuple(fc.constantFrom(...REGS), fc.constantFrom(...SIZES), fc.integer({ min: 1, max: 40 }))
    .map(([d, t, o]) => `${d} = *(${t} *)(r10 - ${o})`),
  fc
    .tuple(fc.constantFrom(...SIZES), fc.constantFrom(...REGS))
    .map(([t, s]) => `*(${t} *)(r1 + 0) = ${s}`),
  fc.tuple(fc.constantFrom(...SIZES)).map(([t]) => `r1 = *(${t} *)(r1 + 0)`),
  fc.tuple(fc.integer({ min: -48, max: 8 })).map(([k]) => `r1 = r10\nr1 += ${k}`),
  fc
    .tuple(
      fc.constantFrom(...REGS),
      fc.constantFrom('==', '!=', '<', '>', 's<', 's>'),
      fc.integer({ min: -4, max: 64 }),
    )
    .map(([d, o, k]) => `if ${d} ${o} ${k} goto +1`),
);

/** Initialised registers first so the programs get past the simplest rejections. */
const program = fc
  .array(line, { minLength: 1, maxLength: 24 })
  .map((ls) =>
    ['r0 = 0', 'r2 = 1', 'r3 = 2', 'r4 = 3', 'r5 = 4', 'r1 = r10', 'r1 += -8', ...ls, 'exit'].join(
      '\n',
    ),
  );

describe('soundness against the vm', () => {
  it('accepted programs never fault, never leave their stack frame, never run out of budget', () => {
    const stats = { run: 0, accepted: 0 };
    fc.assert(
      fc.property(program, (text) => {
        const insns = assemble(text);
        if (!Array.isArray(insns)) return true;
        stats.run++;
        const res = verify(insns as Insn[], { progType: 'syscall' });
        if (!res.ok) return true;
        stats.accepted++;
        const prog = Program.load(insns);
        const vm = Vm.create({ budget: 100_000 });
        if (isVmError(prog) || isVmError(vm)) throw new Error('vm setup');
        const top = vm.stack.base + BigInt(vm.stack.size);
        const bad: string[] = [];
        const rc = vm.runTraced(prog, (pc) => {
          const i = prog.insns[pc] as Insn;
          const cls = i.code & 7;
          // Loads and stores through any register must stay inside frame 0's 512 bytes.
          if (cls !== 1 && cls !== 2 && cls !== 3) return;
          const base = cls === 1 ? i.src : i.dst;
          const addr =
            BigInt.asUintN(
              64,
              (BigInt(vm.hi[base] as number) << 32n) | BigInt((vm.lo[base] as number) >>> 0),
            ) + BigInt(i.off);
          if (addr < top - 512n || addr >= top) bad.push(`pc ${pc} addr ${addr - top}`);
        });
        expect(bad).toEqual([]);
        expect(vm.error).toBeNull();
        expect(rc).toBe(0);
        return true;
      }),
      { numRuns: 2000 },
    );
    // The property is only meaningful if many random programs were accepted.
    expect(stats.accepted).toBeGreaterThan(150);
    console.log(
      `soundness: ${stats.run} random programs verified, ${stats.accepted} accepted and run`,
    );
  }, 120_000);
});
