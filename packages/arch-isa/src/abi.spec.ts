import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BTF_FMODEL_SIGNED_ARG,
  BTF_FMODEL_STRUCT_ARG,
  placeCall,
  readArgs,
  readReturn,
  writeArgs,
  writeReturn,
  type CallPlacement,
  type FuncModelLike,
  type StackWords,
} from './abi.js';
import { ARCHES, archInfo, type ArchName } from './arch.js';
import { ArchError } from './errors.js';
import { PtRegs } from './regs.js';

interface Fixture {
  cases: {
    name: string;
    arch: ArchName;
    sizes: number[];
    flags: number[];
    words: (string | number)[][];
    stackBytes: number;
  }[];
  returns: { arch: ArchName; size: number; regs: string[] }[];
}
const fx = JSON.parse(
  readFileSync(new URL('./testdata/placements.json', import.meta.url), 'utf8'),
) as Fixture;

const model = (sizes: number[], flags: number[], retSize = 8, retFlags = 0): FuncModelLike => ({
  retSize,
  retFlags,
  nrArgs: sizes.length,
  argSize: sizes,
  argFlags: flags,
});

const mapStack = (): StackWords & { words: Map<number, bigint> } => {
  const words = new Map<number, bigint>();
  return {
    words,
    readWord: (off) => words.get(off) ?? 0n,
    writeWord: (off, v) => void words.set(off, v),
  };
};

describe('argument placement', () => {
  it.each(fx.cases)('$name', ({ arch, sizes, flags, words, stackBytes }) => {
    const plan = placeCall(arch, model(sizes, flags)) as CallPlacement;
    expect(plan).not.toBeInstanceOf(ArchError);
    const got = plan.args.map((a) => a.words.map((w) => (w.kind === 'reg' ? w.reg : w.offset)));
    expect(got).toEqual(words);
    expect(plan.stackBytes).toBe(stackBytes);
  });

  it.each(fx.returns)('$arch returns $size bytes in $regs', ({ arch, size, regs }) => {
    const plan = placeCall(arch, model([], [], size)) as CallPlacement;
    expect(plan.ret).toEqual(regs);
  });

  it.each([
    ['too many args', model(Array(13).fill(8), Array(13).fill(0)), 'E2BIG', 'nr_args 13'],
    ['arg over 16 bytes', model([24], [1]), 'EINVAL', 'arg_size[0] = 24'],
    ['zero-size arg', model([8, 0], [0, 0]), 'EINVAL', 'arg_size[1] = 0'],
    ['unknown flag', model([8], [4]), 'EINVAL', 'arg_flags[0] = 4'],
    ['short arrays', { ...model([8], [0]), nrArgs: 2 }, 'EINVAL', 'nr_args 2'],
    ['return over 16', model([], [], 17), 'EINVAL', 'ret_size 17'],
  ] as const)('rejects %s', (_name, m, errno, text) => {
    const err = placeCall('x86_64', m);
    expect(err).toBeInstanceOf(ArchError);
    expect((err as ArchError).code).toBe(errno);
    expect((err as ArchError).message).toContain(text);
  });

  it('returns of three words on i386 are in memory', () => {
    const err = placeCall('i386', model([], [], 12));
    expect((err as ArchError).code).toBe('EOPNOTSUPP');
  });

  it('counts arguments given', () => {
    const plan = placeCall('arm64', model([8, 8], [0, 0])) as CallPlacement;
    const err = writeArgs(plan, [1n], new PtRegs('arm64'), null);
    expect(err?.code).toBe('EINVAL');
  });
});

const argArb = fc.oneof(
  fc.record({
    size: fc.constantFrom(1, 2, 4, 8),
    flags: fc.constantFrom(0, BTF_FMODEL_SIGNED_ARG),
  }),
  fc.record({ size: fc.integer({ min: 1, max: 16 }), flags: fc.constant(BTF_FMODEL_STRUCT_ARG) }),
  fc.record({ size: fc.constant(16), flags: fc.constantFrom(0, BTF_FMODEL_SIGNED_ARG) }),
);

const valueFor = (size: number, flags: number): fc.Arbitrary<bigint> =>
  (flags & BTF_FMODEL_SIGNED_ARG) !== 0
    ? fc.bigInt({ min: -(1n << BigInt(size * 8 - 1)), max: (1n << BigInt(size * 8 - 1)) - 1n })
    : fc.bigInt({ min: 0n, max: (1n << BigInt(size * 8)) - 1n });

describe('ABI round trips', () => {
  it.each(ARCHES)('%s: random models place and read back every argument and return', (arch) => {
    const ws = archInfo(arch).wordSize;
    const scenario = fc
      .record({
        args: fc.array(argArb, { maxLength: 12 }),
        ret: fc.record({
          size: fc.constantFrom(0, 1, 2, 4, 8, ...(ws === 8 ? [16] : [])),
          flags: fc.constantFrom(0, BTF_FMODEL_SIGNED_ARG),
        }),
      })
      .chain((s) =>
        fc.record({
          s: fc.constant(s),
          values: fc.tuple(...s.args.map((a) => valueFor(a.size, a.flags))),
          ret: s.ret.size === 0 ? fc.constant(0n) : valueFor(s.ret.size, s.ret.flags),
        }),
      );
    fc.assert(
      fc.property(scenario, ({ s, values, ret }) => {
        const m = model(
          s.args.map((a) => a.size),
          s.args.map((a) => a.flags),
          s.ret.size,
          s.ret.flags,
        );
        const plan = placeCall(arch, m) as CallPlacement;
        const regs = new PtRegs(arch);
        const stack = mapStack();
        expect(writeArgs(plan, values, regs, stack)).toBeNull();
        expect(readArgs(plan, regs, stack)).toEqual(values);
        // No two argument words share a register or a stack slot.
        const used = plan.args.flatMap((a) =>
          a.words.map((w) => (w.kind === 'reg' ? w.reg : `@${w.offset}`)),
        );
        expect(new Set(used).size).toBe(used.length);
        // Only riscv64 splits a value between a register and the stack.
        for (const a of plan.args) {
          const kinds = new Set(a.words.map((w) => w.kind));
          if (arch !== 'riscv64') expect(kinds.size).toBe(1);
          expect(a.words.length).toBe(Math.ceil(a.size / ws));
        }
        expect(plan.stackBytes % archInfo(arch).stackAlign).toBe(0);
        writeReturn(plan, ret, regs);
        expect(readReturn(plan, regs)).toBe(ret);
      }),
    );
  });
});
