// 64-bit arithmetic on (lo, hi) pairs of int32, shared by the interpreter and the JIT so both
// compute the same bits. Small enough for V8 to inline at every call site.

export const TWO32 = 4294967296;

/** High 32 bits of the unsigned 64-bit product of two u32 values. */
export function mulhu(a: number, b: number): number {
  const a0 = a & 0xffff;
  const a1 = a >>> 16;
  const b0 = b & 0xffff;
  const b1 = b >>> 16;
  const mid1 = a1 * b0 + ((a0 * b0) >>> 16);
  const mid2 = a0 * b1 + (mid1 & 0xffff);
  return (a1 * b1 + (mid1 >>> 16) + (mid2 >>> 16)) | 0;
}

export function toBig(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

export function toBigSigned(lo: number, hi: number): bigint {
  return BigInt.asIntN(64, toBig(lo, hi));
}

/** Sign of (a - b) comparing unsigned 64-bit values. */
export function ucmp(alo: number, ahi: number, blo: number, bhi: number): number {
  const x = ahi >>> 0;
  const y = bhi >>> 0;
  if (x !== y) return x < y ? -1 : 1;
  const p = alo >>> 0;
  const q = blo >>> 0;
  return p === q ? 0 : p < q ? -1 : 1;
}

/** Sign of (a - b) comparing signed 64-bit values. */
export function scmp(alo: number, ahi: number, blo: number, bhi: number): number {
  if (ahi !== bhi) return (ahi | 0) < (bhi | 0) ? -1 : 1;
  const p = alo >>> 0;
  const q = blo >>> 0;
  return p === q ? 0 : p < q ? -1 : 1;
}

/** Byte-swaps a 32-bit value. */
export function bswap32(x: number): number {
  return ((x & 0xff) << 24) | ((x & 0xff00) << 8) | ((x >>> 8) & 0xff00) | (x >>> 24);
}

export function bswap16(x: number): number {
  return ((x & 0xff) << 8) | ((x >>> 8) & 0xff);
}

/**
 * 64-bit division and modulo for the cases the 32-bit fast path does not cover; writes the result
 * into out[0] (lo) and out[1] (hi). Division by zero gives 0; modulo by zero leaves a (as the
 * kernel does); signed forms truncate toward zero and INT64_MIN / -1 wraps.
 */
export function divmod64(
  alo: number,
  ahi: number,
  blo: number,
  bhi: number,
  isMod: boolean,
  signed: boolean,
  out: Int32Array,
): void {
  if (blo === 0 && bhi === 0) {
    out[0] = isMod ? alo : 0;
    out[1] = isMod ? ahi : 0;
    return;
  }
  if (!signed && ahi === 0 && bhi === 0) {
    const a = alo >>> 0;
    const b = blo >>> 0;
    out[0] = isMod ? a % b : Math.floor(a / b);
    out[1] = 0;
    return;
  }
  const a = signed ? toBigSigned(alo, ahi) : toBig(alo, ahi);
  const b = signed ? toBigSigned(blo, bhi) : toBig(blo, bhi);
  const r = BigInt.asUintN(64, isMod ? a % b : a / b);
  out[0] = Number(r & 0xffffffffn) | 0;
  out[1] = Number(r >> 32n) | 0;
}
