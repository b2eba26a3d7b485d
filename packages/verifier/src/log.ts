import {
  BPF_ALU64,
  BPF_ATOMIC,
  BPF_CALL,
  BPF_CMPXCHG,
  BPF_END,
  BPF_EXIT,
  BPF_FETCH,
  BPF_JA,
  BPF_JMP,
  BPF_JMP32,
  BPF_LD,
  BPF_LDX,
  BPF_MEMSX,
  BPF_MOV,
  BPF_NEG,
  BPF_ST,
  BPF_STX,
  BPF_X,
  BPF_XCHG,
  type Insn,
  cls,
  isLddw,
  mode,
  op,
  size,
  sizeBytes,
  srcBit,
} from '@tracelab/vm';
import { HELPERS } from './helpers.js';
import { type RegState, regStr } from './regs.js';
import { type FuncState, STACK_INVALID } from './state.js';

/** bpf_alu_string. */
export const ALU_STR: Record<number, string> = {
  0x00: '+=',
  0x10: '-=',
  0x20: '*=',
  0x30: '/=',
  0x40: '|=',
  0x50: '&=',
  0x60: '<<=',
  0x70: '>>=',
  0x80: 'neg',
  0x90: '%=',
  0xa0: '^=',
  0xb0: '=',
  0xc0: 's>>=',
  0xd0: 'endian',
};

const JMP_STR: Record<number, string> = {
  0x10: '==',
  0x20: '>',
  0x30: '>=',
  0x40: '&',
  0x50: '!=',
  0x60: 's>',
  0x70: 's>=',
  0xa0: '<',
  0xb0: '<=',
  0xc0: 's<',
  0xd0: 's<=',
};

const SIZE_STR: Record<number, string> = { 1: 'u8', 2: 'u16', 4: 'u32', 8: 'u64' };

/** func_id_name. */
export function helperName(id: number): string {
  const p = HELPERS.get(id);
  return p === undefined ? 'unknown' : `bpf_${p.name}`;
}

const plus = (n: number): string => (n < 0 ? `${n}` : `+${n}`);
const hex = (n: number): string => `0x${(n >>> 0).toString(16)}`;

/** print_bpf_insn: one instruction as the verifier log shows it, `(b7) r0 = 0`. */
export function insnStr(i: Insn): string {
  const code = `(${i.code.toString(16).padStart(2, '0')})`;
  const c = cls(i.code);
  const o = op(i.code);
  if (c === BPF_ALU64 || c === 0x04) {
    const p = c === BPF_ALU64 ? 'r' : 'w';
    const rhs = srcBit(i.code) === BPF_X ? `${p}${i.src}` : `${i.imm}`;
    if (o === BPF_NEG) return `${code} ${p}${i.dst} = -${p}${i.dst}`;
    if (o === BPF_END) {
      const kind = c === BPF_ALU64 ? 'bswap' : srcBit(i.code) === BPF_X ? 'be' : 'le';
      return `${code} r${i.dst} = ${kind}${i.imm} r${i.dst}`;
    }
    if (o === BPF_MOV && i.off !== 0) return `${code} ${p}${i.dst} = (s${i.off})${p}${i.src}`;
    const sym = (i.off === 1 && (o === 0x30 || o === 0x90) ? 's' : '') + (ALU_STR[o] as string);
    return `${code} ${p}${i.dst} ${sym} ${rhs}`;
  }
  if (c === BPF_STX) {
    const t = SIZE_STR[sizeBytes(size(i.code))] as string;
    const ref = `(r${i.dst} ${plus(i.off)})`;
    if (mode(i.code) === BPF_ATOMIC) {
      if (i.imm === BPF_CMPXCHG)
        return `${code} r0 = atomic_cmpxchg((${t} *)${ref}, r0, r${i.src})`;
      if (i.imm === BPF_XCHG) return `${code} r${i.src} = atomic_xchg((${t} *)${ref}, r${i.src})`;
      const name = (ALU_STR[i.imm & ~BPF_FETCH] as string).replace('=', '');
      if ((i.imm & BPF_FETCH) !== 0) {
        return `${code} r${i.src} = atomic_fetch_${{ '+': 'add', '|': 'or', '&': 'and', '^': 'xor' }[name] ?? name}((${t} *)${ref}, r${i.src})`;
      }
      return `${code} lock *(${t} *)${ref} ${name}= r${i.src}`;
    }
    return `${code} *(${t} *)${ref} = r${i.src}`;
  }
  if (c === BPF_ST) {
    return `${code} *(${SIZE_STR[sizeBytes(size(i.code))] as string} *)(r${i.dst} ${plus(i.off)}) = ${i.imm}`;
  }
  if (c === BPF_LDX) {
    const t = (SIZE_STR[sizeBytes(size(i.code))] as string).replace(
      'u',
      mode(i.code) === BPF_MEMSX ? 's' : 'u',
    );
    return `${code} r${i.dst} = *(${t} *)(r${i.src} ${plus(i.off)})`;
  }
  if (c === BPF_LD) {
    if (isLddw(i)) {
      if (i.src === 1 || i.src === 5) return `${code} r${i.dst} = map[id:${i.imm}]`;
      if (i.src === 2 || i.src === 6) return `${code} r${i.dst} = map[id:${i.imm}][0]+${i.imm2}`;
      if (i.src === 4) return `${code} r${i.dst} = func`;
      const v = (BigInt(i.imm2 >>> 0) << 32n) | BigInt(i.imm >>> 0);
      return `${code} r${i.dst} = 0x${v.toString(16)}`;
    }
    const t = SIZE_STR[sizeBytes(size(i.code))] as string;
    const ind = mode(i.code) === 0x40 ? `r${i.src} + ` : '';
    return `${code} r0 = *(${t} *)skb[${ind}${i.imm}]`;
  }
  if (c === BPF_JMP || c === BPF_JMP32) {
    if (o === BPF_EXIT) return `${code} exit`;
    if (o === BPF_CALL) {
      if (srcBit(i.code) === BPF_X) return `${code} callx r${i.dst}`;
      if (i.src === 1) return `${code} call pc${plus(i.imm)}`;
      if (i.src === 2) return `${code} call kernel-function#${i.imm}`;
      return `${code} call ${helperName(i.imm)}#${i.imm}`;
    }
    if (o === BPF_JA) return `${code} goto pc${plus(c === BPF_JMP32 ? i.imm : i.off)}`;
    const p = c === BPF_JMP ? 'r' : 'w';
    const rhs = srcBit(i.code) === BPF_X ? `${p}${i.src}` : hex(i.imm);
    return `${code} if ${p}${i.dst} ${JMP_STR[o] as string} ${rhs} goto pc${plus(i.off)}`;
  }
  return `${code} ???`;
}

/** print_verifier_state for one frame: initialised registers, then non-empty stack slots. */
export function frameStr(f: FuncState, depth: number): string {
  const parts: string[] = [];
  if (depth > 0) parts.push(`frame${f.frameno}:`);
  f.regs.forEach((r: RegState, k) => {
    if (r.type !== 'not_init') parts.push(`R${k}=${regStr(r)}`);
  });
  f.stack.forEach((s, spi) => {
    if (s.kinds.every((k) => k === STACK_INVALID)) return;
    const name = `fp${-(spi + 1) * 8}`;
    if (s.isSpill()) parts.push(`${name}=${regStr(s.spilled as RegState)}`);
    else parts.push(`${name}=${s.kindStr()}`);
  });
  return parts.join(' ');
}
