import {
  BPF_ALU,
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
  BPF_X,
  BPF_XCHG,
  type Insn,
  cls,
  encode,
  isLddw,
  lddwValue,
  mode,
  op,
  size,
  sizeBytes,
  srcBit,
} from './insn.js';

/** ALU operator spelling by BPF_OP (LLVM's BPF assembly). */
export const ALU_OPS: Record<number, string> = {
  0x00: '+=',
  0x10: '-=',
  0x20: '*=',
  0x30: '/=',
  0x40: '|=',
  0x50: '&=',
  0x60: '<<=',
  0x70: '>>=',
  0x90: '%=',
  0xa0: '^=',
  0xc0: 's>>=',
};

/** Jump condition spelling by BPF_OP. */
export const JMP_OPS: Record<number, string> = {
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

/** lddw pseudo sources, spelled as `r1 = KIND[imm, imm2] ll`. */
export const LDDW_PSEUDO = [
  '',
  'map_fd',
  'map_value',
  'btf_id',
  'func',
  'map_idx',
  'map_idx_value',
];

export const ATOMIC_NAMES: Record<number, string> = {
  0x00: 'add',
  0x40: 'or',
  0x50: 'and',
  0xa0: 'xor',
};

const SIZE_NAMES: Record<number, string> = { 1: 'u8', 2: 'u16', 4: 'u32', 8: 'u64' };

function memRef(reg: number, off: number): string {
  return `(r${reg} ${off < 0 ? '-' : '+'} ${Math.abs(off)})`;
}

function rel(n: number): string {
  return n < 0 ? `${n}` : `+${n}`;
}

/** One instruction in LLVM's BPF assembly, as llvm-objdump prints it. */
export function formatInsn(i: Insn): string {
  const c = i.code;
  const k = cls(c);
  if (k === BPF_ALU || k === BPF_ALU64) {
    const p = k === BPF_ALU64 ? 'r' : 'w';
    const o = op(c);
    const dst = `${p}${i.dst}`;
    const rhs = srcBit(c) === BPF_X ? `${p}${i.src}` : `${i.imm}`;
    if (o === BPF_END) {
      const kind = k === BPF_ALU64 ? 'bswap' : srcBit(c) === BPF_X ? 'be' : 'le';
      return `r${i.dst} = ${kind}${i.imm} r${i.dst}`;
    }
    if (o === BPF_NEG) return `${dst} = -${dst}`;
    if (o === BPF_MOV) return i.off === 0 ? `${dst} = ${rhs}` : `${dst} = (s${i.off})${p}${i.src}`;
    const sym = ALU_OPS[o] as string;
    const signed = i.off === 1 ? 's' : '';
    return `${dst} ${signed}${sym} ${rhs}`;
  }
  if (k === BPF_JMP || k === BPF_JMP32) {
    const o = op(c);
    if (o === BPF_JA) return k === BPF_JMP32 ? `gotol ${rel(i.imm)}` : `goto ${rel(i.off)}`;
    if (o === BPF_EXIT) return 'exit';
    if (o === BPF_CALL) {
      if (srcBit(c) === BPF_X) return `callx r${i.dst}`;
      if (i.src === 1) return `call pc${rel(i.imm)}`;
      if (i.src === 2) return `call kfunc ${i.imm}`;
      return `call ${i.imm}`;
    }
    const p = k === BPF_JMP ? 'r' : 'w';
    const rhs = srcBit(c) === BPF_X ? `${p}${i.src}` : `${i.imm}`;
    return `if ${p}${i.dst} ${JMP_OPS[o] as string} ${rhs} goto ${rel(i.off)}`;
  }
  if (k === BPF_LD) {
    if (isLddw(i)) {
      if (i.src === 0) return `r${i.dst} = ${BigInt.asIntN(64, lddwValue(i))} ll`;
      return `r${i.dst} = ${LDDW_PSEUDO[i.src] as string}[${i.imm}, ${i.imm2}] ll`;
    }
    const ind = mode(c) === 0x40 ? `r${i.src} + ` : '';
    return `r0 = *(${SIZE_NAMES[sizeBytes(size(c))] as string} *)skb[${ind}${i.imm}]`;
  }
  const bytes = sizeBytes(size(c));
  const ty = SIZE_NAMES[bytes] as string;
  if (k === BPF_LDX) {
    const t = mode(c) === BPF_MEMSX ? ty.replace('u', 's') : ty;
    return `r${i.dst} = *(${t} *)${memRef(i.src, i.off)}`;
  }
  if (k === BPF_ST) return `*(${ty} *)${memRef(i.dst, i.off)} = ${i.imm}`;
  if (mode(c) === BPF_ATOMIC) {
    const p = bytes === 8 ? 'r' : 'w';
    const ref = `r${i.dst} ${i.off < 0 ? '-' : '+'} ${Math.abs(i.off)}`;
    if (i.imm === BPF_XCHG)
      return `${p}${i.src} = xchg${bytes === 8 ? '' : '32'}_${bytes * 8}(${ref}, ${p}${i.src})`;
    if (i.imm === BPF_CMPXCHG) {
      return `${p}0 = cmpxchg${bytes === 8 ? '' : '32'}_${bytes * 8}(${ref}, ${p}0, ${p}${i.src})`;
    }
    const name = ATOMIC_NAMES[i.imm & ~BPF_FETCH] as string;
    if ((i.imm & BPF_FETCH) !== 0)
      return `${p}${i.src} = atomic_fetch_${name}((${ty} *)(${ref}), ${p}${i.src})`;
    return `lock *(${ty} *)${memRef(i.dst, i.off)} ${ALU_OPS[i.imm] as string} ${p}${i.src}`;
  }
  return `*(${ty} *)${memRef(i.dst, i.off)} = r${i.src}`;
}

const CONF_ALU: Record<number, string> = {
  0x00: 'add',
  0x10: 'sub',
  0x20: 'mul',
  0x30: 'div',
  0x40: 'or',
  0x50: 'and',
  0x60: 'lsh',
  0x70: 'rsh',
  0x90: 'mod',
  0xa0: 'xor',
  0xb0: 'mov',
  0xc0: 'arsh',
};
const CONF_JMP: Record<number, string> = {
  0x10: 'jeq',
  0x20: 'jgt',
  0x30: 'jge',
  0x40: 'jset',
  0x50: 'jne',
  0x60: 'jsgt',
  0x70: 'jsge',
  0xa0: 'jlt',
  0xb0: 'jle',
  0xc0: 'jslt',
  0xd0: 'jsle',
};
const CONF_SIZE: Record<number, string> = { 1: 'b', 2: 'h', 4: 'w', 8: 'dw' };

function confMem(reg: number, off: number): string {
  return `[%r${reg}${off < 0 ? '-' : '+'}${Math.abs(off)}]`;
}

/**
 * One instruction in the bpf_conformance suite's syntax. Forms that syntax has no spelling for
 * (lddw of maps, functions and BTF ids; legacy packet loads) are printed in LLVM's syntax, which
 * the assembler accepts on the same lines.
 */
export function formatInsnConformance(i: Insn): string {
  const c = i.code;
  const k = cls(c);
  if (k === BPF_ALU || k === BPF_ALU64) {
    const sfx = k === BPF_ALU ? '32' : '';
    const o = op(c);
    const rhs = srcBit(c) === BPF_X ? `%r${i.src}` : `${i.imm}`;
    if (o === BPF_END) {
      const kind = k === BPF_ALU64 ? 'bswap' : srcBit(c) === BPF_X ? 'be' : 'le';
      return `${kind}${i.imm} %r${i.dst}`;
    }
    if (o === BPF_NEG) return `neg${sfx} %r${i.dst}`;
    if (o === BPF_MOV && i.off !== 0)
      return `movsx${i.off}${k === BPF_ALU ? '32' : '64'} %r${i.dst}, %r${i.src}`;
    const name = (i.off === 1 ? 's' : '') + (CONF_ALU[o] as string);
    return `${name}${sfx} %r${i.dst}, ${rhs}`;
  }
  if (k === BPF_JMP || k === BPF_JMP32) {
    const o = op(c);
    if (o === BPF_JA) return k === BPF_JMP32 ? `ja32 ${rel(i.imm)}` : `ja ${rel(i.off)}`;
    if (o === BPF_EXIT) return 'exit';
    if (o === BPF_CALL) {
      if (srcBit(c) === BPF_X) return `call helper %r${i.dst}`;
      if (i.src === 1) return `call local ${rel(i.imm)}`;
      if (i.src === 2) return `call runtime ${i.imm}`;
      return `call helper ${i.imm}`;
    }
    const rhs = srcBit(c) === BPF_X ? `%r${i.src}` : `${i.imm}`;
    return `${CONF_JMP[o] as string}${k === BPF_JMP32 ? '32' : ''} %r${i.dst}, ${rhs}, ${rel(i.off)}`;
  }
  if (k === BPF_LD) {
    if (isLddw(i) && i.src === 0) return `lddw %r${i.dst}, 0x${lddwValue(i).toString(16)}`;
    return formatInsn(i);
  }
  const bytes = sizeBytes(size(c));
  const sz = CONF_SIZE[bytes] as string;
  if (k === BPF_LDX)
    return `ldx${mode(c) === BPF_MEMSX ? 's' : ''}${sz} %r${i.dst}, ${confMem(i.src, i.off)}`;
  if (k === BPF_ST) return `st${sz} ${confMem(i.dst, i.off)}, ${i.imm}`;
  if (mode(c) === BPF_ATOMIC) {
    const sfx = bytes === 4 ? '32' : '';
    const name =
      i.imm === BPF_XCHG
        ? 'xchg'
        : i.imm === BPF_CMPXCHG
          ? 'cmpxchg'
          : `${(i.imm & BPF_FETCH) !== 0 ? 'fetch ' : ''}${ATOMIC_NAMES[i.imm & ~BPF_FETCH] as string}`;
    return `lock ${name}${sfx} ${confMem(i.dst, i.off)}, %r${i.src}`;
  }
  return `stx${sz} ${confMem(i.dst, i.off)}, %r${i.src}`;
}

/**
 * Disassembles slots as `llvm-objdump -d` prints BPF: index, raw bytes (16 for lddw), text.
 * The second slot of lddw gets no line of its own. syntax 'conformance' prints the
 * conformance suite's spelling instead.
 */
export function disassemble(
  prog: readonly Insn[],
  options: { syntax?: 'llvm' | 'conformance' } = {},
): string {
  const fmt = options.syntax === 'conformance' ? formatInsnConformance : formatInsn;
  const bytes = encode(prog);
  const lines: string[] = [];
  for (let k = 0; k < prog.length; k++) {
    const i = prog[k] as Insn;
    const wide = isLddw(i) && k + 1 < prog.length;
    const raw = Array.from(bytes.subarray(k * 8, (k + (wide ? 2 : 1)) * 8), (b) =>
      b.toString(16).padStart(2, '0'),
    );
    lines.push(`${String(k).padStart(8)}:\t${raw.join(' ')}\t${fmt(i)}`);
    if (wide) k++;
  }
  return lines.join('\n') + '\n';
}
