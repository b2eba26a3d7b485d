import {
  type Tnum,
  U32_MAX,
  U64_MAX,
  tnumAdd,
  tnumAnd,
  tnumArshift,
  tnumCast,
  tnumConst,
  tnumEquals,
  tnumIn,
  tnumIntersect,
  tnumIsConst,
  tnumLshift,
  tnumMul,
  tnumOr,
  tnumRange,
  tnumRshift,
  tnumStr,
  tnumSub,
  tnumSubreg,
  tnumUnknown,
  tnumWithSubreg,
  tnumXor,
} from './tnum.js';

export const S64_MIN = -(1n << 63n);
export const S64_MAX = (1n << 63n) - 1n;
export const S32_MIN = -(1n << 31n);
export const S32_MAX = (1n << 31n) - 1n;

/** enum bpf_reg_type, without the flag bits (those are fields of RegState). */
export type RegType =
  | 'not_init'
  | 'scalar'
  | 'ctx'
  | 'map_ptr'
  | 'map_value'
  | 'map_key'
  | 'stack'
  | 'mem'
  | 'btf_id'
  | 'func';

/** BPF_MAP_TYPE_* the verifier distinguishes. */
export type MapType =
  | 'hash'
  | 'array'
  | 'percpu_hash'
  | 'percpu_array'
  | 'lru_hash'
  | 'prog_array'
  | 'perf_event_array'
  | 'ringbuf'
  | 'stack_trace'
  | 'array_of_maps'
  | 'hash_of_maps';

/** A map as the verifier sees it (struct bpf_map's fields it reads). */
export interface MapDef {
  type: MapType;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  name?: string;
  /**
   * Map-in-map outer maps: the inner map template (inner_map_meta). A lookup's result points to
   * it once null-checked. The kernel's copy has no name.
   */
  inner?: MapDef;
}

/** struct bpf_reg_state. Scalars and pointer offsets share the range fields (var_off etc). */
export class RegState {
  type: RegType = 'not_init';
  /** PTR_MAYBE_NULL. */
  maybeNull = false;
  /** MEM_RDONLY. */
  rdonly = false;
  /** MEM_RINGBUF. */
  ringbuf = false;
  /** PTR_TRUSTED (BTF pointers); false means untrusted (reads become probe reads). */
  trusted = false;
  /**
   * PTR_UNTRUSTED: set on every BTF pointer that is not trusted except the flagless
   * PTR_TO_BTF_ID of a typed ksym, which the log prints as plain `ptr_`.
   */
  untrusted = false;
  /** MEM_PERCPU: a per-CPU variable's address; reading through it needs bpf_per_cpu_ptr. */
  percpu = false;
  /** Fixed offset of a pointer. */
  off = 0;
  varOff: Tnum = tnumUnknown;
  smin = S64_MIN;
  smax = S64_MAX;
  umin = 0n;
  umax = U64_MAX;
  s32min = S32_MIN;
  s32max = S32_MAX;
  u32min = 0n;
  u32max = U32_MAX;
  /** Shared by copies of one maybe-null pointer, so a null check on one applies to all. */
  id = 0;
  /** The acquired reference this pointer came from (ringbuf records). */
  refObjId = 0;
  map: MapDef | null = null;
  /** PTR_TO_MEM size in bytes. */
  memSize = 0;
  /** PTR_TO_BTF_ID: type id and name. */
  btfId = 0;
  btfName = '';
  /** PTR_TO_STACK: which frame's stack. */
  frameno = 0;
  /** PTR_TO_FUNC: subprogram index. */
  subprog = 0;

  clone(): RegState {
    const r = new RegState();
    Object.assign(r, this);
    return r;
  }

  copyFrom(o: RegState): void {
    Object.assign(this, o);
  }

  isPointer(): boolean {
    return this.type !== 'scalar' && this.type !== 'not_init';
  }

  isConst(): boolean {
    return this.type === 'scalar' && tnumIsConst(this.varOff);
  }

  /** The constant value, signed (only meaningful when isConst()). */
  constValue(): bigint {
    return BigInt.asIntN(64, this.varOff.value);
  }
}

/** Resets the range fields to "anything" (__mark_reg_unbounded + unknown var_off). */
export function markUnbounded(r: RegState): void {
  r.varOff = tnumUnknown;
  r.smin = S64_MIN;
  r.smax = S64_MAX;
  r.umin = 0n;
  r.umax = U64_MAX;
  r.s32min = S32_MIN;
  r.s32max = S32_MAX;
  r.u32min = 0n;
  r.u32max = U32_MAX;
}

/** A fresh unknown scalar (mark_reg_unknown). */
export function markUnknown(r: RegState): void {
  const fresh = new RegState();
  r.copyFrom(fresh);
  r.type = 'scalar';
}

export function markNotInit(r: RegState): void {
  r.copyFrom(new RegState());
}

/** Sets the range fields to one known 64-bit value (__mark_reg_known). */
export function markKnown(r: RegState, v: bigint): void {
  const u = BigInt.asUintN(64, v);
  r.varOff = tnumConst(u);
  r.umin = r.umax = u;
  r.smin = r.smax = BigInt.asIntN(64, u);
  const lo = u & U32_MAX;
  r.u32min = r.u32max = lo;
  r.s32min = r.s32max = BigInt.asIntN(32, lo);
}

export function scalarConst(v: bigint): RegState {
  const r = new RegState();
  r.type = 'scalar';
  markKnown(r, v);
  return r;
}

export function scalarUnknown(): RegState {
  const r = new RegState();
  r.type = 'scalar';
  return r;
}

/** A scalar in [0, 2^(8*size)-1], as a zero-extending load of size bytes gives. */
export function scalarOfSize(size: number): RegState {
  const r = scalarUnknown();
  if (size < 8) {
    const max = (1n << BigInt(size * 8)) - 1n;
    r.varOff = tnumRange(0n, max);
    r.umax = max;
    r.smin = 0n;
    r.smax = max;
    regBoundsSync(r);
  }
  return r;
}

const maxB = (a: bigint, b: bigint): bigint => (a > b ? a : b);
const minB = (a: bigint, b: bigint): bigint => (a < b ? a : b);

/** __update_reg_bounds: tighten the ranges with what var_off knows. */
function updateRegBounds(r: RegState): void {
  const v = r.varOff;
  r.smin = maxB(r.smin, BigInt.asIntN(64, v.value | (v.mask & (1n << 63n))));
  r.smax = minB(r.smax, BigInt.asIntN(64, v.value | (v.mask & S64_MAX)));
  r.umin = maxB(r.umin, v.value);
  r.umax = minB(r.umax, v.value | v.mask);
  const s = tnumSubreg(v);
  r.s32min = maxB(r.s32min, BigInt.asIntN(32, s.value | (s.mask & 0x80000000n)));
  r.s32max = minB(r.s32max, BigInt.asIntN(32, s.value | (s.mask & 0x7fffffffn)));
  r.u32min = maxB(r.u32min, s.value);
  r.u32max = minB(r.u32max, s.value | s.mask);
}

/** __reg_deduce_bounds: move what one range knows into the others. */
function deduceBounds(r: RegState): void {
  // 64 -> 32: when the upper halves agree, the lower halves are bounded too.
  if (r.umin >> 32n === r.umax >> 32n) {
    const lo = r.umin & U32_MAX;
    const hi = r.umax & U32_MAX;
    r.u32min = maxB(r.u32min, lo);
    r.u32max = minB(r.u32max, hi);
    if (BigInt.asIntN(32, lo) <= BigInt.asIntN(32, hi)) {
      r.s32min = maxB(r.s32min, BigInt.asIntN(32, lo));
      r.s32max = minB(r.s32max, BigInt.asIntN(32, hi));
    }
  }
  if (r.smin >> 32n === r.smax >> 32n) {
    const lo = BigInt.asUintN(32, r.smin);
    const hi = BigInt.asUintN(32, r.smax);
    if (lo <= hi) {
      r.u32min = maxB(r.u32min, lo);
      r.u32max = minB(r.u32max, hi);
    }
    if (BigInt.asIntN(32, lo) <= BigInt.asIntN(32, hi)) {
      r.s32min = maxB(r.s32min, BigInt.asIntN(32, lo));
      r.s32max = minB(r.s32max, BigInt.asIntN(32, hi));
    }
  }
  // 32 <-> 32.
  if (BigInt.asIntN(32, r.u32min) <= BigInt.asIntN(32, r.u32max)) {
    r.s32min = maxB(r.s32min, BigInt.asIntN(32, r.u32min));
    r.s32max = minB(r.s32max, BigInt.asIntN(32, r.u32max));
  }
  if (BigInt.asUintN(32, r.s32min) <= BigInt.asUintN(32, r.s32max)) {
    r.u32min = maxB(r.u32min, BigInt.asUintN(32, r.s32min));
    r.u32max = minB(r.u32max, BigInt.asUintN(32, r.s32max));
  }
  // 64 <-> 64.
  if (BigInt.asIntN(64, r.umin) <= BigInt.asIntN(64, r.umax)) {
    r.smin = maxB(r.smin, BigInt.asIntN(64, r.umin));
    r.smax = minB(r.smax, BigInt.asIntN(64, r.umax));
  }
  if (BigInt.asUintN(64, r.smin) <= BigInt.asUintN(64, r.smax)) {
    r.umin = maxB(r.umin, BigInt.asUintN(64, r.smin));
    r.umax = minB(r.umax, BigInt.asUintN(64, r.smax));
  }
  // 32 -> 64: the low half of every value lies in the 32-bit range.
  const nUmin = (r.umin & ~U32_MAX) | r.u32min;
  const nUmax = (r.umax & ~U32_MAX) | r.u32max;
  r.umin = maxB(r.umin, nUmin);
  r.umax = minB(r.umax, nUmax);
  const nSmin = BigInt.asIntN(64, (BigInt.asUintN(64, r.smin) & ~U32_MAX) | r.u32min);
  const nSmax = BigInt.asIntN(64, (BigInt.asUintN(64, r.smax) & ~U32_MAX) | r.u32max);
  r.smin = maxB(r.smin, nSmin);
  r.smax = minB(r.smax, nSmax);
}

/** __reg_bound_offset: tighten var_off with the ranges. */
function boundOffset(r: RegState): void {
  const v64 = tnumIntersect(r.varOff, tnumRange(r.umin, r.umax));
  const v32 = tnumIntersect(tnumSubreg(v64), tnumRange(r.u32min, r.u32max));
  r.varOff = tnumWithSubreg(v64, v32);
}

/** reg_bounds_sync. */
export function regBoundsSync(r: RegState): void {
  if (tnumIsConst(r.varOff)) {
    // A known value consistent with every range: nothing to deduce (the common loop counter).
    const u = r.varOff.value;
    const sv = BigInt.asIntN(64, u);
    const lo = u & U32_MAX;
    const s32 = BigInt.asIntN(32, lo);
    if (
      r.umin <= u &&
      u <= r.umax &&
      r.smin <= sv &&
      sv <= r.smax &&
      r.u32min <= lo &&
      lo <= r.u32max &&
      r.s32min <= s32 &&
      s32 <= r.s32max
    ) {
      markKnown(r, u);
      return;
    }
  }
  updateRegBounds(r);
  deduceBounds(r);
  deduceBounds(r);
  boundOffset(r);
  updateRegBounds(r);
}

/** Do the ranges describe no value at all (a branch that cannot be taken)? */
export function boundsEmpty(r: RegState): boolean {
  return (
    r.umin > r.umax ||
    r.smin > r.smax ||
    r.u32min > r.u32max ||
    r.s32min > r.s32max ||
    r.varOff.value > r.umax ||
    (r.varOff.value | r.varOff.mask) < r.umin
  );
}

/** Zero-extends the 32-bit subregister into the whole register (ALU32 results). */
export function zext32(r: RegState): void {
  r.varOff = tnumSubreg(r.varOff);
  r.umin = r.u32min;
  r.umax = r.u32max;
  r.smin = r.u32min;
  r.smax = r.u32max;
  regBoundsSync(r);
}

/** coerce_reg_to_size: truncation to size bytes (zero-extending loads, le16/le32). */
export function coerceToSize(r: RegState, size: number): void {
  if (size >= 8) return;
  const mask = (1n << BigInt(size * 8)) - 1n;
  r.varOff = tnumCast(r.varOff, size);
  if ((r.umin & ~mask) === (r.umax & ~mask)) {
    r.umin &= mask;
    r.umax &= mask;
  } else {
    r.umin = 0n;
    r.umax = mask;
  }
  if (r.umin > r.umax) {
    r.umin = 0n;
    r.umax = mask;
  }
  r.smin = r.umin;
  r.smax = r.umax;
  r.u32min = r.umin & U32_MAX;
  r.u32max = minB(r.umax, U32_MAX);
  if (size < 4) {
    r.u32min = r.umin;
    r.u32max = r.umax;
  } else {
    r.u32min = 0n;
    r.u32max = U32_MAX;
    if (r.umax <= U32_MAX) {
      r.u32min = r.umin;
      r.u32max = r.umax;
    }
  }
  r.s32min = S32_MIN;
  r.s32max = S32_MAX;
  regBoundsSync(r);
}

/** Sign-extension of the low size bytes (movsx, ldsx): the result lies in the type's range. */
export function signExtend(r: RegState, size: number, is32: boolean): void {
  const bits = size * 8;
  if (tnumIsConst(r.varOff)) {
    const v = BigInt.asIntN(bits, r.varOff.value);
    markKnown(r, is32 ? BigInt.asUintN(32, v) : v);
    return;
  }
  const lo = -(1n << BigInt(bits - 1));
  const hi = (1n << BigInt(bits - 1)) - 1n;
  markUnbounded(r);
  if (is32) {
    r.s32min = lo;
    r.s32max = hi;
    r.smin = 0n;
    r.smax = U32_MAX;
    r.umax = U32_MAX;
    r.varOff = tnumSubreg(tnumUnknown);
  } else {
    r.smin = lo;
    r.smax = hi;
    r.s32min = lo;
    r.s32max = hi;
  }
  regBoundsSync(r);
}

/** One width's view of a scalar: unsigned and signed ranges. */
interface View {
  umin: bigint;
  umax: bigint;
  smin: bigint;
  smax: bigint;
}

function view(r: RegState, bits: 32 | 64): View {
  return bits === 64
    ? { umin: r.umin, umax: r.umax, smin: r.smin, smax: r.smax }
    : { umin: r.u32min, umax: r.u32max, smin: r.s32min, smax: r.s32max };
}

function full(bits: 32 | 64): View {
  const w = bits === 64 ? U64_MAX : U32_MAX;
  const s = bits === 64 ? S64_MIN : S32_MIN;
  return { umin: 0n, umax: w, smin: s, smax: -s - 1n };
}

function fitsS(v: bigint, bits: 32 | 64): boolean {
  return v >= -(1n << BigInt(bits - 1)) && v < 1n << BigInt(bits - 1);
}

function fitsU(v: bigint, bits: 32 | 64): boolean {
  return v >= 0n && v < 1n << BigInt(bits);
}

/** Range arithmetic of one ALU operation at one width; null = nothing known. */
function rangeOp(o: string, a: View, b: View, bits: 32 | 64, shift: number | null): View {
  const f = full(bits);
  const out: View = { ...f };
  switch (o) {
    case 'add': {
      const umin = a.umin + b.umin;
      const umax = a.umax + b.umax;
      if (fitsU(umax, bits)) {
        out.umin = umin;
        out.umax = umax;
      }
      const smin = a.smin + b.smin;
      const smax = a.smax + b.smax;
      if (fitsS(smin, bits) && fitsS(smax, bits)) {
        out.smin = smin;
        out.smax = smax;
      }
      return out;
    }
    case 'sub': {
      if (a.umin >= b.umax) {
        out.umin = a.umin - b.umax;
        out.umax = a.umax - b.umin;
      }
      const smin = a.smin - b.smax;
      const smax = a.smax - b.smin;
      if (fitsS(smin, bits) && fitsS(smax, bits)) {
        out.smin = smin;
        out.smax = smax;
      }
      return out;
    }
    case 'mul': {
      const umax = a.umax * b.umax;
      if (fitsU(umax, bits)) {
        out.umin = a.umin * b.umin;
        out.umax = umax;
      }
      const ps = [a.smin * b.smin, a.smin * b.smax, a.smax * b.smin, a.smax * b.smax];
      if (ps.every((p) => fitsS(p, bits))) {
        out.smin = ps.reduce(minB);
        out.smax = ps.reduce(maxB);
      }
      return out;
    }
    case 'and':
      out.umax = minB(a.umax, b.umax);
      if (a.smin >= 0n || b.smin >= 0n) {
        out.smin = 0n;
        out.smax = minB(a.smin >= 0n ? a.smax : f.smax, b.smin >= 0n ? b.smax : f.smax);
      }
      return out;
    case 'or':
      out.umin = maxB(a.umin, b.umin);
      return out;
    case 'lsh':
      if (shift !== null && a.umax <= f.umax >> BigInt(shift)) {
        out.umin = a.umin << BigInt(shift);
        out.umax = a.umax << BigInt(shift);
      }
      return out;
    case 'rsh':
      if (shift !== null) {
        out.umin = a.umin >> BigInt(shift);
        out.umax = a.umax >> BigInt(shift);
      }
      return out;
    case 'arsh':
      if (shift !== null) {
        out.smin = a.smin >> BigInt(shift);
        out.smax = a.smax >> BigInt(shift);
      }
      return out;
    default:
      return out;
  }
}

/** The tnum of one ALU operation on 64-bit var_offs; null = unknown. */
function tnumOp(o: string, a: Tnum, b: Tnum, shift: number | null, bits: 32 | 64): Tnum | null {
  switch (o) {
    case 'add':
      return tnumAdd(a, b);
    case 'sub':
      return tnumSub(a, b);
    case 'mul':
      return tnumMul(a, b);
    case 'and':
      return tnumAnd(a, b);
    case 'or':
      return tnumOr(a, b);
    case 'xor':
      return tnumXor(a, b);
    case 'lsh':
      return shift === null ? null : tnumLshift(a, shift);
    case 'rsh':
      return shift === null ? null : tnumRshift(bits === 32 ? tnumSubreg(a) : a, shift);
    case 'arsh':
      return shift === null ? null : tnumArshift(a, shift, bits);
    default:
      return null;
  }
}

/**
 * adjust_scalar_min_max_vals for scalar dst and src: the result in dst. o is the operation
 * name (add sub mul div mod and or xor lsh rsh arsh), is32 for BPF_ALU.
 */
export function scalarAlu(dst: RegState, src: RegState, o: string, is32: boolean): void {
  const bits: 32 | 64 = is32 ? 32 : 64;
  const isShift = o === 'lsh' || o === 'rsh' || o === 'arsh';
  let shift: number | null = null;
  if (isShift) {
    // Shift bounds are tracked only for a known amount below the width; others are undefined.
    const amt = is32 ? tnumSubreg(src.varOff) : src.varOff;
    if (tnumIsConst(amt) && amt.value < BigInt(bits)) shift = Number(amt.value);
  }
  if (o === 'div' || o === 'mod' || (isShift && shift === null)) {
    markUnknown(dst);
    if (is32) zext32(dst);
    return;
  }
  if (is32) {
    const v = rangeOp(o, view(dst, 32), view(src, 32), 32, shift);
    const t = tnumOp(o, tnumSubreg(dst.varOff), tnumSubreg(src.varOff), shift, 32);
    markUnbounded(dst);
    dst.u32min = v.umin;
    dst.u32max = v.umax;
    dst.s32min = v.smin;
    dst.s32max = v.smax;
    dst.varOff = tnumSubreg(t ?? tnumUnknown);
    regBoundsSync(dst);
    zext32(dst);
    return;
  }
  const v64 = rangeOp(o, view(dst, 64), view(src, 64), 64, shift);
  // The low half of add/sub/mul/bitwise/lsh depends only on the operands' low halves.
  const lowHalf = o !== 'rsh' && o !== 'arsh';
  const v32 = lowHalf
    ? rangeOp(o, view(dst, 32), view(src, 32), 32, shift)
    : rangeOp('none', view(dst, 32), view(src, 32), 32, null);
  const t = tnumOp(o, dst.varOff, src.varOff, shift, 64) ?? tnumUnknown;
  markUnbounded(dst);
  dst.umin = v64.umin;
  dst.umax = v64.umax;
  dst.smin = v64.smin;
  dst.smax = v64.smax;
  dst.u32min = v32.umin;
  dst.u32max = v32.umax;
  dst.s32min = v32.smin;
  dst.s32max = v32.smax;
  dst.varOff = t;
  regBoundsSync(dst);
}

/** Every value of cur is a value of old (range_within + tnum_in). */
export function rangeWithin(old: RegState, cur: RegState): boolean {
  return (
    old.umin <= cur.umin &&
    old.umax >= cur.umax &&
    old.smin <= cur.smin &&
    old.smax >= cur.smax &&
    old.u32min <= cur.u32min &&
    old.u32max >= cur.u32max &&
    old.s32min <= cur.s32min &&
    old.s32max >= cur.s32max &&
    tnumIn(old.varOff, cur.varOff)
  );
}

export function rangeEqual(a: RegState, b: RegState): boolean {
  return (
    a.umin === b.umin &&
    a.umax === b.umax &&
    a.smin === b.smin &&
    a.smax === b.smax &&
    a.u32min === b.u32min &&
    a.u32max === b.u32max &&
    a.s32min === b.s32min &&
    a.s32max === b.s32max &&
    tnumEquals(a.varOff, b.varOff)
  );
}

/** reg_type_str: the kernel's name of a register type with its flag prefixes. */
export function regTypeStr(r: RegState): string {
  let base: string;
  switch (r.type) {
    case 'not_init':
      return '?';
    case 'scalar':
      return 'scalar';
    case 'ctx':
      base = 'ctx';
      break;
    case 'map_ptr':
      base = 'map_ptr';
      break;
    case 'map_value':
      base = 'map_value';
      break;
    case 'map_key':
      base = 'map_key';
      break;
    case 'stack':
      base = 'fp';
      break;
    case 'mem':
      base = 'mem';
      break;
    case 'btf_id':
      base = 'ptr';
      break;
    case 'func':
      base = 'func';
      break;
  }
  let prefix = '';
  if (r.rdonly) prefix += 'rdonly_';
  if (r.ringbuf) prefix += 'ringbuf_';
  if (r.percpu) prefix += 'percpu_';
  if (r.untrusted) prefix += 'untrusted_';
  if (r.trusted) prefix += 'trusted_';
  const orNull = r.maybeNull ? '_or_null' : '';
  // PTR_TO_BTF_ID prints as ptr_ with the struct name after it: trusted_ptr_or_null_task_struct.
  return `${prefix}${base}${orNull}${r.type === 'btf_id' ? '_' : ''}`;
}

/** print_scalar_ranges: the non-default ranges, equal values merged as `smin=smin32=0`. */
function scalarRanges(r: RegState): string[] {
  const items: [string, bigint, bigint][] = [
    ['smin', r.smin, S64_MIN],
    ['smax', r.smax, S64_MAX],
    ['umin', r.umin, 0n],
    ['umax', r.umax, U64_MAX],
    ['smin32', r.s32min, S32_MIN],
    ['smax32', r.s32max, S32_MAX],
    ['umin32', r.u32min, 0n],
    ['umax32', r.u32max, U32_MAX],
  ];
  const done = new Array<boolean>(items.length).fill(false);
  const out: string[] = [];
  for (let i = 0; i < items.length; i++) {
    const [name, v, dflt] = items[i] as [string, bigint, bigint];
    if (done[i] || v === dflt) continue;
    const names = [name];
    for (let j = i + 1; j < items.length; j++) {
      const [n2, v2, d2] = items[j] as [string, bigint, bigint];
      if (!done[j] && v2 === v && v2 !== d2) {
        names.push(n2);
        done[j] = true;
      }
    }
    out.push(`${names.join('=')}=${v}`);
  }
  return out;
}

/** One register as print_verifier_state writes it (after `R1=`). */
export function regStr(r: RegState): string {
  if (r.type === 'not_init') return '?';
  if (r.type === 'scalar') {
    const parts: string[] = [];
    if (r.id !== 0) parts.push(`id=${r.id}`);
    if (tnumIsConst(r.varOff)) {
      if (parts.length === 0) return `${BigInt.asIntN(64, r.varOff.value)}`;
      return `scalar(${parts.join(',')},imm=${BigInt.asIntN(64, r.varOff.value)})`;
    }
    parts.push(...scalarRanges(r));
    if (r.varOff.mask !== U64_MAX) parts.push(`var_off=${tnumStr(r.varOff)}`);
    return `scalar(${parts.join(',')})`;
  }
  if (r.type === 'stack' && tnumIsConst(r.varOff) && r.varOff.value === 0n) return `fp${r.off}`;
  const parts: string[] = [];
  if (r.id !== 0) parts.push(`id=${r.id}`);
  if (r.refObjId !== 0) parts.push(`ref_obj_id=${r.refObjId}`);
  if (r.map !== null) {
    if (r.map.name !== undefined) parts.push(`map=${r.map.name}`);
    parts.push(`ks=${r.map.keySize}`, `vs=${r.map.valueSize}`);
  }
  if (r.off !== 0) parts.push(`off=${r.off}`);
  if (r.type === 'mem') parts.push(`sz=${r.memSize}`);
  if (!tnumIsConst(r.varOff) || r.varOff.value !== 0n) {
    parts.push(...scalarRanges(r));
    if (r.varOff.mask !== U64_MAX) parts.push(`var_off=${tnumStr(r.varOff)}`);
  }
  const name = regTypeStr(r) + (r.type === 'btf_id' ? r.btfName : '');
  return `${name}(${parts.join(',')})`;
}
