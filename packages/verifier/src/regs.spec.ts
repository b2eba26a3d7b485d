import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RegState, markKnown, regStr, rangeWithin, scalarAlu, scalarOfSize } from './regs.js';
import { U64_MAX, tnumRange } from './tnum.js';

/** A scalar known to lie in [lo, hi] and one concrete value in it. */
const scalar = fc
  .tuple(fc.bigInt({ min: 0n, max: 1n << 40n }), fc.bigInt({ min: 0n, max: 1n << 40n }), fc.nat())
  .map(([p, q, pick]): [RegState, bigint] => {
    const [lo, hi] = p < q ? [p, q] : [q, p];
    const r = new RegState();
    r.type = 'scalar';
    r.umin = lo;
    r.umax = hi;
    r.smin = lo;
    r.smax = hi;
    r.varOff = tnumRange(lo, hi);
    const x = lo + (BigInt(pick) % (hi - lo + 1n));
    return [r, x];
  });

function contains(r: RegState, v: bigint): boolean {
  const c = new RegState();
  c.type = 'scalar';
  markKnown(c, v);
  return rangeWithin(r, c);
}

const ops: [string, (x: bigint, y: bigint) => bigint][] = [
  ['add', (x, y) => x + y],
  ['sub', (x, y) => x - y],
  ['mul', (x, y) => x * y],
  ['and', (x, y) => x & y],
  ['or', (x, y) => x | y],
  ['xor', (x, y) => x ^ y],
];

describe('scalar bounds', () => {
  it.each(ops)('64-bit %s keeps every concrete result inside all ranges', (name, f) => {
    fc.assert(
      fc.property(scalar, scalar, ([a, x], [b, y]) => {
        const d = a.clone();
        scalarAlu(d, b, name, false);
        return contains(d, BigInt.asUintN(64, f(x, y)));
      }),
      { numRuns: 300 },
    );
  });

  it.each(ops)('32-bit %s keeps every concrete result inside all ranges', (name, f) => {
    fc.assert(
      fc.property(scalar, scalar, ([a, x], [b, y]) => {
        const d = a.clone();
        scalarAlu(d, b, name, true);
        return contains(d, BigInt.asUintN(32, f(x, y)));
      }),
      { numRuns: 300 },
    );
  });

  it('known shifts stay exact', () => {
    const r = new RegState();
    r.type = 'scalar';
    markKnown(r, 3n);
    const s = new RegState();
    s.type = 'scalar';
    markKnown(s, 4n);
    scalarAlu(r, s, 'lsh', false);
    expect(r.isConst() && r.constValue()).toBe(48n);
  });

  it('a byte load is 0..255', () => {
    const r = scalarOfSize(1);
    expect([r.umin, r.umax, r.smin, r.smax]).toEqual([0n, 255n, 0n, 255n]);
    expect(regStr(r)).toBe('scalar(smin=smin32=0,smax=umax=smax32=umax32=255,var_off=(0x0; 0xff))');
  });

  it('unknown scalars and constants print as the kernel does', () => {
    const r = new RegState();
    r.type = 'scalar';
    expect(regStr(r)).toBe('scalar()');
    markKnown(r, U64_MAX);
    expect(regStr(r)).toBe('-1');
  });
});
