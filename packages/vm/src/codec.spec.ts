import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AsmError, assemble } from './asm.js';
import { disassemble, formatInsn, formatInsnConformance } from './disasm.js';
import { VmError } from './errors.js';
import { type Insn, decode, encode, insn, isLddw, parseHex } from './insn.js';

const reg = fc.integer({ min: 0, max: 10 });
const imm = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });
const off = fc.integer({ min: -32768, max: 32767 });
const ALU_OPS = [0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x90, 0xa0, 0xb0, 0xc0];
const JMP_OPS = [0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xa0, 0xb0, 0xc0, 0xd0];
const SIZES = [0x00, 0x08, 0x10, 0x18];
const ATOMICS = [0x00, 0x01, 0x40, 0x41, 0x50, 0x51, 0xa0, 0xa1, 0xe1, 0xf1];

/** One valid instruction (lddw as two slots); jumps get their target fixed up later. */
interface Gen {
  slots: readonly Insn[];
  jump: 'off' | 'imm' | null;
}

const oneInsn: fc.Arbitrary<Gen> = fc.oneof<fc.Arbitrary<Gen>[]>(
  fc
    .tuple(
      fc.constantFrom(0x04, 0x07),
      fc.constantFrom(...ALU_OPS),
      fc.boolean(),
      reg,
      reg,
      imm,
      fc.boolean(),
    )
    .map(([k, o, x, d, s, i, signed]) => {
      const divmod = o === 0x30 || o === 0x90;
      return {
        slots: [insn(k | o | (x ? 8 : 0), d, x ? s : 0, divmod && signed ? 1 : 0, x ? 0 : i)],
        jump: null,
      };
    }),
  fc
    .tuple(fc.constantFrom(0x04, 0x07), reg)
    .map(([k, d]) => ({ slots: [insn(k | 0x80, d)], jump: null })),
  fc
    .tuple(fc.constantFrom(0xd4, 0xdc, 0xd7), reg, fc.constantFrom(16, 32, 64))
    .map(([c, d, w]) => ({ slots: [insn(c, d, 0, 0, w)], jump: null })),
  fc.tuple(fc.boolean(), reg, reg, fc.constantFrom(8, 16, 32)).map(([is64, d, s, w]) => ({
    slots: [insn(is64 ? 0xbf : 0xbc, d, s, is64 || w !== 32 ? w : 8)],
    jump: null,
  })),
  fc
    .tuple(fc.constantFrom(0x05, 0x06), fc.constantFrom(...JMP_OPS), fc.boolean(), reg, reg, imm)
    .map(([k, o, x, d, s, i]) => ({
      slots: [insn(k | o | (x ? 8 : 0), d, x ? s : 0, 0, x ? 0 : i)],
      jump: 'off' as const,
    })),
  fc.constant({ slots: [insn(0x05)], jump: 'off' as const }),
  fc.constant({ slots: [insn(0x06)], jump: 'imm' as const }),
  fc.constant({ slots: [insn(0x85, 0, 1)], jump: 'imm' as const }),
  fc
    .tuple(fc.constantFrom(0, 2), imm)
    .map(([s, i]) => ({ slots: [insn(0x85, 0, s, 0, i)], jump: null })),
  reg.map((d) => ({ slots: [insn(0x8d, d)], jump: null })),
  fc.constant({ slots: [insn(0x95)], jump: null }),
  fc.tuple(reg, fc.integer({ min: 0, max: 6 }), imm, imm).map(([d, s, lo, hi]) => ({
    slots: [insn(0x18, d, s, 0, lo, hi), insn(0, 0, 0, 0, hi)],
    jump: null,
  })),
  fc
    .tuple(fc.constantFrom(0x60, 0x80), fc.constantFrom(...SIZES), reg, reg, off)
    .filter(([m, sz]) => !(m === 0x80 && sz === 0x18))
    .map(([m, sz, d, s, o]) => ({ slots: [insn(0x01 | m | sz, d, s, o)], jump: null })),
  fc
    .tuple(fc.constantFrom(...SIZES), reg, off, imm)
    .map(([sz, d, o, i]) => ({ slots: [insn(0x62 | sz, d, 0, o, i)], jump: null })),
  fc
    .tuple(fc.constantFrom(...SIZES), reg, reg, off)
    .map(([sz, d, s, o]) => ({ slots: [insn(0x63 | sz, d, s, o)], jump: null })),
  fc
    .tuple(fc.constantFrom(0xc3, 0xdb), reg, reg, off, fc.constantFrom(...ATOMICS))
    .map(([c, d, s, o, a]) => ({ slots: [insn(c, d, s, o, a)], jump: null })),
);

/** A valid program: every jump lands on the start of some instruction. */
const program: fc.Arbitrary<Insn[]> = fc
  .array(fc.tuple(oneInsn, fc.nat()), { minLength: 1, maxLength: 40 })
  .map((items) => {
    const slots: Insn[] = [];
    const starts: number[] = [];
    const jumps: [number, 'off' | 'imm', number][] = [];
    for (const [it, pick] of items) {
      starts.push(slots.length);
      if (it.jump !== null) jumps.push([slots.length, it.jump, pick]);
      slots.push(...it.slots.map((s) => ({ ...s })));
    }
    for (const [k, field, pick] of jumps) {
      const rel = (starts[pick % starts.length] as number) - k - 1;
      (slots[k] as Insn)[field] = rel;
    }
    return slots;
  });

function text(prog: Insn[], fmt: (i: Insn) => string = formatInsn): string {
  const lines: string[] = [];
  for (let k = 0; k < prog.length; k++) {
    lines.push(fmt(prog[k] as Insn));
    if (isLddw(prog[k] as Insn)) k++;
  }
  return lines.join('\n');
}

describe('codec round trips', () => {
  it('decode(encode(p)) is p for random valid programs', () => {
    fc.assert(
      fc.property(program, (p) => {
        const back = decode(encode(p));
        if (back instanceof VmError) throw back;
        expect(encode(back)).toEqual(encode(p));
        expect(back.map((i) => [i.code, i.dst, i.src, i.off, i.imm])).toEqual(
          p.map((i) => [i.code, i.dst, i.src, i.off, i.imm]),
        );
      }),
      { numRuns: 300 },
    );
  }, 60_000);

  it('assemble(disassembly) encodes to the same bytes', () => {
    fc.assert(
      fc.property(program, (p) => {
        const back = assemble(text(p));
        if (back instanceof VmError) throw new Error(`${back.message}\n${text(p)}`);
        expect(encode(back)).toEqual(encode(p));
      }),
      { numRuns: 300 },
    );
  }, 60_000);
});

describe('conformance-syntax disassembly', () => {
  it('assembles back to the same bytes', () => {
    fc.assert(
      fc.property(program, (p) => {
        const back = assemble(text(p, formatInsnConformance));
        if (back instanceof VmError)
          throw new Error(`${back.message}\n${text(p, formatInsnConformance)}`);
        expect(encode(back)).toEqual(encode(p));
      }),
      { numRuns: 300 },
    );
  }, 60_000);

  it('prints the suite spelling', () => {
    const p = assemble(
      'lddw %r0, 0x123456789\nldxsh %r1, [%r10-8]\nlock fetch add32 [%r1+4], %r2\njsgt32 %r1, -3, +0\nexit',
    ) as Insn[];
    expect(
      disassemble(p, { syntax: 'conformance' })
        .split('\n')
        .map((l) => l.split('\t')[2]),
    ).toEqual([
      'lddw %r0, 0x123456789',
      'ldxsh %r1, [%r10-8]',
      'lock fetch add32 [%r1+4], %r2',
      'jsgt32 %r1, -3, +0',
      'exit',
      undefined,
    ]);
  });
});

describe('decode errors', () => {
  const cases = JSON.parse(
    readFileSync(new URL('./testdata/decode-errors.json', import.meta.url), 'utf8'),
  ) as {
    what: string;
    hex: string;
    errno: string;
    message: string;
  }[];
  for (const c of cases) {
    it(c.what, () => {
      const res = decode(parseHex(c.hex) as Uint8Array);
      expect(res).toBeInstanceOf(VmError);
      expect((res as VmError).code).toBe(c.errno);
      expect((res as VmError).message).toContain(c.message);
    });
  }

  it('never throws on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 64 }), (bytes) => {
        const res = decode(bytes);
        expect(Array.isArray(res) || res instanceof VmError).toBe(true);
      }),
      { numRuns: 2000 },
    );
  }, 60_000);

  it('rejects bad hex text with the byte position', () => {
    expect((parseHex('b7 0') as VmError).message).toContain('odd number');
    expect((parseHex('b7 zz') as VmError).message).toContain('byte 1');
  });
});

describe('assembler errors', () => {
  const cases = JSON.parse(
    readFileSync(new URL('./testdata/asm-errors.json', import.meta.url), 'utf8'),
  ) as {
    what: string;
    text: string;
    line: number;
    column: number;
    message: string;
  }[];
  for (const c of cases) {
    it(c.what, () => {
      const res = assemble(c.text);
      expect(res).toBeInstanceOf(AsmError);
      const e = res as AsmError;
      expect(e.code).toBe('EINVAL');
      expect(e.message).toContain(c.message);
      expect([e.line, e.column]).toEqual([c.line, c.column]);
    });
  }

  it('never throws on random text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), (s) => {
        const res = assemble(s);
        expect(Array.isArray(res) || res instanceof AsmError).toBe(true);
      }),
      { numRuns: 2000 },
    );
  }, 60_000);
});

describe('both syntaxes', () => {
  it('assemble to the same bytes', () => {
    const conf = assemble(
      'mov %r0, 1\nldxw %r2, [%r1+4]\nloop:\nadd32 %r0, %r2\njlt %r0, 10, loop\nlock fetch add [%r10-8], %r3\nlddw %r4, 0x1122334455667788\nexit',
    );
    const llvm = assemble(
      'r0 = 1\nr2 = *(u32 *)(r1 + 4)\nw0 += w2\nif r0 < 10 goto -2\nr3 = atomic_fetch_add((u64 *)(r10 - 8), r3)\nr4 = 1234605616436508552 ll\nexit',
    );
    expect(encode(conf as Insn[])).toEqual(encode(llvm as Insn[]));
  });

  it('disassembles like llvm-objdump -d', () => {
    const p = assemble(
      'r0 = 1\nr1 = 1311768467463790320 ll\nr2 = *(u32 *)(r1 + 4)\nif r1 < 10 goto +0\nexit',
    ) as Insn[];
    expect(disassemble(p)).toBe(
      [
        '       0:\tb7 00 00 00 01 00 00 00\tr0 = 1',
        '       1:\t18 01 00 00 f0 de bc 9a 00 00 00 00 78 56 34 12\tr1 = 1311768467463790320 ll',
        '       3:\t61 12 04 00 00 00 00 00\tr2 = *(u32 *)(r1 + 4)',
        '       4:\ta5 01 00 00 0a 00 00 00\tif r1 < 10 goto +0',
        '       5:\t95 00 00 00 00 00 00 00\texit',
        '',
      ].join('\n'),
    );
  });
});
