import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Tnum,
  U64_MAX,
  tnum,
  tnumAdd,
  tnumAnd,
  tnumArshift,
  tnumConst,
  tnumIn,
  tnumLshift,
  tnumMul,
  tnumOr,
  tnumRange,
  tnumRshift,
  tnumStr,
  tnumSub,
  tnumXor,
} from './tnum.js';

/** A tnum and one concrete member of it. */
const member = fc
  .tuple(
    fc.bigInt({ min: 0n, max: U64_MAX }),
    fc.bigInt({ min: 0n, max: U64_MAX }),
    fc.bigInt({ min: 0n, max: U64_MAX }),
  )
  .map(([v, m, pick]): [Tnum, bigint] => {
    const t = tnum(v & ~m, m);
    return [t, t.value | (pick & t.mask)];
  });

const contains = (t: Tnum, x: bigint): boolean => tnumIn(t, tnumConst(x));

describe('tnum', () => {
  const binops: [string, (a: Tnum, b: Tnum) => Tnum, (x: bigint, y: bigint) => bigint][] = [
    ['add', tnumAdd, (x, y) => (x + y) & U64_MAX],
    ['sub', tnumSub, (x, y) => (x - y) & U64_MAX],
    ['mul', tnumMul, (x, y) => (x * y) & U64_MAX],
    ['and', tnumAnd, (x, y) => x & y],
    ['or', tnumOr, (x, y) => x | y],
    ['xor', tnumXor, (x, y) => x ^ y],
  ];
  it.each(binops)('%s contains every concrete result', (_n, abstract, concrete) => {
    fc.assert(
      fc.property(member, member, ([a, x], [b, y]) => contains(abstract(a, b), concrete(x, y))),
      { numRuns: 300 },
    );
  });

  it('shifts contain every concrete result', () => {
    fc.assert(
      fc.property(member, fc.integer({ min: 0, max: 63 }), ([a, x], s) => {
        const S = BigInt(s);
        return (
          contains(tnumLshift(a, s), (x << S) & U64_MAX) &&
          contains(tnumRshift(a, s), x >> S) &&
          contains(tnumArshift(a, s, 64), BigInt.asUintN(64, BigInt.asIntN(64, x) >> S))
        );
      }),
    );
  });

  it('range covers its bounds and everything between', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: U64_MAX }),
        fc.bigInt({ min: 0n, max: U64_MAX }),
        (p, q) => {
          const [lo, hi] = p < q ? [p, q] : [q, p];
          const t = tnumRange(lo, hi);
          return contains(t, lo) && contains(t, hi) && contains(t, (lo + hi) / 2n);
        },
      ),
    );
  });

  it('prints as the kernel does', () => {
    expect(tnumStr(tnumRange(0n, 255n))).toBe('(0x0; 0xff)');
    expect(tnumStr(tnumConst(16n))).toBe('(0x10; 0x0)');
  });
});
