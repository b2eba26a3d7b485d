import { VmError } from './errors.js';

// Opcode fields (include/uapi/linux/bpf_common.h, bpf.h; RFC 9669 section 3).
export const BPF_LD = 0x00;
export const BPF_LDX = 0x01;
export const BPF_ST = 0x02;
export const BPF_STX = 0x03;
export const BPF_ALU = 0x04;
export const BPF_JMP = 0x05;
export const BPF_JMP32 = 0x06;
export const BPF_ALU64 = 0x07;

export const BPF_K = 0x00;
export const BPF_X = 0x08;

export const BPF_W = 0x00;
export const BPF_H = 0x08;
export const BPF_B = 0x10;
export const BPF_DW = 0x18;

export const BPF_IMM = 0x00;
export const BPF_ABS = 0x20;
export const BPF_IND = 0x40;
export const BPF_MEM = 0x60;
export const BPF_MEMSX = 0x80;
export const BPF_ATOMIC = 0xc0;

export const BPF_ADD = 0x00;
export const BPF_SUB = 0x10;
export const BPF_MUL = 0x20;
export const BPF_DIV = 0x30;
export const BPF_OR = 0x40;
export const BPF_AND = 0x50;
export const BPF_LSH = 0x60;
export const BPF_RSH = 0x70;
export const BPF_NEG = 0x80;
export const BPF_MOD = 0x90;
export const BPF_XOR = 0xa0;
export const BPF_MOV = 0xb0;
export const BPF_ARSH = 0xc0;
export const BPF_END = 0xd0;
/** BPF_END source bit: to little-endian (BPF_K) or big-endian (BPF_X). */
export const BPF_TO_LE = 0x00;
export const BPF_TO_BE = 0x08;

export const BPF_JA = 0x00;
export const BPF_JEQ = 0x10;
export const BPF_JGT = 0x20;
export const BPF_JGE = 0x30;
export const BPF_JSET = 0x40;
export const BPF_JNE = 0x50;
export const BPF_JSGT = 0x60;
export const BPF_JSGE = 0x70;
export const BPF_CALL = 0x80;
export const BPF_EXIT = 0x90;
export const BPF_JLT = 0xa0;
export const BPF_JLE = 0xb0;
export const BPF_JSLT = 0xc0;
export const BPF_JSLE = 0xd0;

/** Atomic operations, in imm of BPF_STX|BPF_ATOMIC. */
export const BPF_FETCH = 0x01;
export const BPF_XCHG = 0xe0 | BPF_FETCH;
export const BPF_CMPXCHG = 0xf0 | BPF_FETCH;

/** src_reg of lddw (BPF_PSEUDO_*). */
export const BPF_PSEUDO_MAP_FD = 1;
export const BPF_PSEUDO_MAP_VALUE = 2;
export const BPF_PSEUDO_BTF_ID = 3;
export const BPF_PSEUDO_FUNC = 4;
export const BPF_PSEUDO_MAP_IDX = 5;
export const BPF_PSEUDO_MAP_IDX_VALUE = 6;
/** src_reg of call. */
export const BPF_PSEUDO_CALL = 1;
export const BPF_PSEUDO_KFUNC_CALL = 2;

export const BPF_REG_FP = 10;
export const MAX_BPF_REG = 11;
export const BPF_MAXINSNS_LOADED = 1_000_000;

export const cls = (code: number): number => code & 0x07;
export const op = (code: number): number => code & 0xf0;
export const srcBit = (code: number): number => code & 0x08;
export const size = (code: number): number => code & 0x18;
export const mode = (code: number): number => code & 0xe0;

export function sizeBytes(sz: number): 1 | 2 | 4 | 8 {
  return sz === BPF_B ? 1 : sz === BPF_H ? 2 : sz === BPF_W ? 4 : 8;
}

/**
 * One 8-byte instruction slot. lddw takes two slots: the first carries the low half in imm and
 * the high half in imm2; the second is kept as a slot of its own (code 0) so jump offsets, which
 * count slots, index the array directly.
 */
export interface Insn {
  code: number;
  dst: number;
  src: number;
  /** Signed 16-bit. */
  off: number;
  /** Signed 32-bit. */
  imm: number;
  /** Signed 32-bit upper half of lddw's immediate; 0 elsewhere. */
  imm2: number;
}

export function insn(code: number, dst = 0, src = 0, off = 0, imm = 0, imm2 = 0): Insn {
  return { code, dst, src, off: (off << 16) >> 16, imm: imm | 0, imm2: imm2 | 0 };
}

export function isLddw(i: Insn): boolean {
  return i.code === (BPF_LD | BPF_IMM | BPF_DW);
}

/** lddw's 64-bit immediate as an unsigned bigint. */
export function lddwValue(i: Insn): bigint {
  return (BigInt(i.imm2 >>> 0) << 32n) | BigInt(i.imm >>> 0);
}

const ATOMIC_OPS = new Set([
  BPF_ADD,
  BPF_ADD | BPF_FETCH,
  BPF_OR,
  BPF_OR | BPF_FETCH,
  BPF_AND,
  BPF_AND | BPF_FETCH,
  BPF_XOR,
  BPF_XOR | BPF_FETCH,
  BPF_XCHG,
  BPF_CMPXCHG,
]);

function hex2(n: number): string {
  return `0x${n.toString(16).padStart(2, '0')}`;
}

/**
 * Checks one instruction against RFC 9669 and the kernel's reserved-field rules; returns the
 * reason it is malformed, or null. next is the following slot (for lddw).
 */
export function checkInsn(i: Insn, next: Insn | undefined): string | null {
  const c = i.code;
  if (i.dst > 10) return `invalid dst register r${i.dst}`;
  if (i.src > 10 && !(cls(c) === BPF_LD)) return `invalid src register r${i.src}`;
  switch (cls(c)) {
    case BPF_ALU:
    case BPF_ALU64: {
      const o = op(c);
      const is64 = cls(c) === BPF_ALU64;
      if (o === 0xe0 || o === 0xf0) return `unknown opcode ${hex2(c)}`;
      if (o === BPF_END) {
        if (is64 && srcBit(c) !== 0) return `unknown opcode ${hex2(c)}`;
        if (i.imm !== 16 && i.imm !== 32 && i.imm !== 64) return `invalid byte swap width ${i.imm}`;
        if (i.src !== 0 || i.off !== 0) return 'BPF_END uses reserved fields';
        return null;
      }
      if (o === BPF_NEG) {
        if (srcBit(c) !== 0 || i.src !== 0 || i.off !== 0 || i.imm !== 0)
          return 'BPF_NEG uses reserved fields';
        return null;
      }
      if (srcBit(c) === BPF_K) {
        if (i.src !== 0) return 'BPF_ALU uses reserved fields (src set with BPF_K)';
      } else if (i.imm !== 0) {
        return 'BPF_ALU uses reserved fields (imm set with BPF_X)';
      }
      if (o === BPF_DIV || o === BPF_MOD) {
        if (i.off !== 0 && i.off !== 1)
          return `invalid ${o === BPF_DIV ? 'div' : 'mod'} offset ${i.off}`;
        return null;
      }
      if (o === BPF_MOV && i.off !== 0) {
        if (srcBit(c) !== BPF_X) return 'BPF_MOV uses reserved fields (off set with BPF_K)';
        const ok = is64 ? [8, 16, 32] : [8, 16];
        if (!ok.includes(i.off)) return `invalid movsx width ${i.off}`;
        return null;
      }
      if (i.off !== 0) return 'BPF_ALU uses reserved fields (off set)';
      return null;
    }
    case BPF_JMP:
    case BPF_JMP32: {
      const o = op(c);
      const is32 = cls(c) === BPF_JMP32;
      if (o === 0xe0 || o === 0xf0) return `unknown opcode ${hex2(c)}`;
      if (o === BPF_JA) {
        if (srcBit(c) !== 0 || i.src !== 0 || i.dst !== 0) return 'BPF_JA uses reserved fields';
        if (is32 ? i.off !== 0 : i.imm !== 0) return 'BPF_JA uses reserved fields';
        return null;
      }
      if (o === BPF_EXIT) {
        if (is32 || srcBit(c) !== 0) return `unknown opcode ${hex2(c)}`;
        if (i.src !== 0 || i.dst !== 0 || i.off !== 0 || i.imm !== 0)
          return 'BPF_EXIT uses reserved fields';
        return null;
      }
      if (o === BPF_CALL) {
        if (is32) return `unknown opcode ${hex2(c)}`;
        if (srcBit(c) === BPF_X) {
          // callx: the target helper id is in dst (as the conformance suite encodes it).
          if (i.src !== 0 || i.off !== 0 || i.imm !== 0)
            return 'BPF_CALL|BPF_X uses reserved fields';
          return null;
        }
        if (i.dst !== 0) return 'BPF_CALL uses reserved fields (dst set)';
        if (i.src > BPF_PSEUDO_KFUNC_CALL) return `invalid call src ${i.src}`;
        if (i.src !== BPF_PSEUDO_KFUNC_CALL && i.off !== 0)
          return 'BPF_CALL uses reserved fields (off set)';
        return null;
      }
      if (srcBit(c) === BPF_K ? i.src !== 0 : i.imm !== 0) return 'BPF_JMP uses reserved fields';
      return null;
    }
    case BPF_LD: {
      if (c === (BPF_LD | BPF_IMM | BPF_DW)) {
        if (i.src > BPF_PSEUDO_MAP_IDX_VALUE) return `invalid lddw src ${i.src}`;
        if (i.off !== 0) return 'BPF_LD uses reserved fields (off set)';
        if (next === undefined) return 'invalid BPF_LD_IMM insn: missing second half';
        if (next.code !== 0 || next.dst !== 0 || next.src !== 0 || next.off !== 0) {
          return 'invalid BPF_LD_IMM insn: second half uses reserved fields';
        }
        return null;
      }
      const m = mode(c);
      if ((m === BPF_ABS || m === BPF_IND) && size(c) !== BPF_DW) {
        if (i.dst !== 0 || i.off !== 0 || (m === BPF_ABS && i.src !== 0))
          return 'BPF_LD_[ABS|IND] uses reserved fields';
        if (i.src > 10) return `invalid src register r${i.src}`;
        return null;
      }
      return `unknown opcode ${hex2(c)}`;
    }
    case BPF_LDX: {
      const m = mode(c);
      if (m === BPF_MEM || (m === BPF_MEMSX && size(c) !== BPF_DW)) {
        if (i.imm !== 0) return 'BPF_LDX uses reserved fields (imm set)';
        return null;
      }
      return `unknown opcode ${hex2(c)}`;
    }
    case BPF_ST: {
      if (mode(c) !== BPF_MEM) return `unknown opcode ${hex2(c)}`;
      if (i.src !== 0) return 'BPF_ST uses reserved fields (src set)';
      return null;
    }
    default: {
      // BPF_STX
      const m = mode(c);
      if (m === BPF_MEM) {
        if (i.imm !== 0) return 'BPF_STX uses reserved fields (imm set)';
        return null;
      }
      if (m === BPF_ATOMIC && (size(c) === BPF_W || size(c) === BPF_DW)) {
        if (!ATOMIC_OPS.has(i.imm)) return `invalid atomic operation ${hex2(i.imm >>> 0)}`;
        return null;
      }
      return `unknown opcode ${hex2(c)}`;
    }
  }
}

/** Decodes bytecode (little-endian) into slots, rejecting malformed code with its index. */
export function decode(bytes: Uint8Array): Insn[] | VmError {
  if (bytes.length === 0) return new VmError('EINVAL', 'empty program');
  if (bytes.length % 8 !== 0)
    return new VmError('EINVAL', `program length ${bytes.length} is not a multiple of 8`);
  const n = bytes.length / 8;
  if (n > BPF_MAXINSNS_LOADED)
    return new VmError('E2BIG', `program has ${n} insns, limit ${BPF_MAXINSNS_LOADED}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Insn[] = new Array<Insn>(n);
  for (let k = 0; k < n; k++) {
    const regs = view.getUint8(k * 8 + 1);
    out[k] = {
      code: view.getUint8(k * 8),
      dst: regs & 0x0f,
      src: regs >> 4,
      off: view.getInt16(k * 8 + 2, true),
      imm: view.getInt32(k * 8 + 4, true),
      imm2: 0,
    };
  }
  const err = validate(out);
  return err ?? out;
}

/**
 * Validates slots (and fills lddw's imm2 from its second half): every instruction well formed,
 * no jump into the middle of lddw or outside the program. Returns the first error.
 */
export function validate(prog: Insn[]): VmError | null {
  const n = prog.length;
  if (n === 0) return new VmError('EINVAL', 'empty program');
  const second = new Uint8Array(n);
  for (let k = 0; k < n; k++) {
    const i = prog[k] as Insn;
    if (second[k]) continue;
    const why = checkInsn(i, prog[k + 1]);
    if (why !== null) return new VmError('EINVAL', `insn ${k}: ${why}`);
    if (isLddw(i)) {
      i.imm2 = (prog[k + 1] as Insn).imm;
      second[k + 1] = 1;
    }
  }
  for (let k = 0; k < n; k++) {
    if (second[k]) continue;
    const t = jumpTarget(prog[k] as Insn, k);
    if (t === null) continue;
    if (t < 0 || t >= n)
      return new VmError('EINVAL', `insn ${k}: jump out of range from insn ${k} to ${t}`);
    if (second[t])
      return new VmError('EINVAL', `insn ${k}: jump into the middle of ldimm64 insn ${t - 1}`);
  }
  return null;
}

/** Target slot of a jump or local call at index k; null for other instructions. */
export function jumpTarget(i: Insn, k: number): number | null {
  const c = i.code;
  const k_ = cls(c);
  if (k_ !== BPF_JMP && k_ !== BPF_JMP32) return null;
  const o = op(c);
  if (o === BPF_EXIT) return null;
  if (o === BPF_CALL)
    return i.src === BPF_PSEUDO_CALL && srcBit(c) === BPF_K ? k + 1 + i.imm : null;
  if (o === BPF_JA && k_ === BPF_JMP32) return k + 1 + i.imm;
  return k + 1 + i.off;
}

/** Encodes slots back to bytecode; lddw's second slot carries imm2 of its first. */
export function encode(prog: readonly Insn[]): Uint8Array {
  const out = new Uint8Array(prog.length * 8);
  const view = new DataView(out.buffer);
  let high: number | null = null;
  for (let k = 0; k < prog.length; k++) {
    const i = prog[k] as Insn;
    let imm = i.imm;
    if (high !== null) {
      imm = high;
      high = null;
    } else if (isLddw(i)) {
      high = i.imm2;
    }
    view.setUint8(k * 8, i.code);
    view.setUint8(k * 8 + 1, ((i.src & 0xf) << 4) | (i.dst & 0xf));
    view.setInt16(k * 8 + 2, i.off, true);
    view.setInt32(k * 8 + 4, imm, true);
  }
  return out;
}

/** Parses "b7 00 00 00 ..." hex text (whitespace optional) into bytes. */
export function parseHex(text: string): Uint8Array | VmError {
  const clean = text.replace(/\s+/g, '');
  if (clean.length % 2 !== 0)
    return new VmError('EINVAL', `hex text has an odd number of digits (${clean.length})`);
  const out = new Uint8Array(clean.length / 2);
  for (let k = 0; k < out.length; k++) {
    const pair = clean.slice(k * 2, k * 2 + 2);
    if (!/^[0-9a-fA-F]{2}$/.test(pair))
      return new VmError('EINVAL', `invalid hex digits "${pair}" at byte ${k}`);
    out[k] = parseInt(pair, 16);
  }
  return out;
}

export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');
}
