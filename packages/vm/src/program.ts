import { VmError } from './errors.js';
import { BPF_PSEUDO_FUNC, type Insn, decode, isLddw, validate } from './insn.js';

/** Whether i writes r10 (the kernel's verifier forbids it; the decoder does not). */
function writesR10(i: Insn): boolean {
  const cls = i.code & 7;
  if ((cls === 0 || cls === 1 || cls === 4 || cls === 7) && i.dst === 10) return true;
  // Atomics with fetch (and xchg/cmpxchg) write their src register.
  return cls === 3 && (i.code & 0xe0) === 0xc0 && (i.imm & 1) !== 0 && i.src === 10;
}

/** What lddw with BPF_PSEUDO_FUNC loads: this base plus the callee's instruction index. */
export const BPF_PSEUDO_FUNC_BASE = 0xffffffffc0000000n;

/** Stack bytes per frame (MAX_BPF_STACK). */
export const MAX_BPF_STACK = 512;

/**
 * In Program.ops, the base register of a load or store that addresses its own frame through
 * r10 (offset -512..-size) in a program that never writes r10: such an access needs no translate.
 */
export const OPS_FP_BASE = 15;

/** Whether i loads or stores inside its frame's 512 bytes below r10. */
function inFrame(i: Insn): boolean {
  const cls = i.code & 7;
  if (cls < 1 || cls > 3 || (cls === 1 ? i.src : i.dst) !== 10) return false;
  const sz = i.code & 0x18;
  const bytes = sz === 0x18 ? 8 : sz === 0x00 ? 4 : sz === 0x08 ? 2 : 1;
  return i.off >= -MAX_BPF_STACK && i.off + bytes <= 0;
}

/**
 * A validated program in the struct-of-arrays form the interpreter walks: one entry per 8-byte
 * slot, so jump offsets index the arrays directly. lddw's full 64-bit immediate sits in
 * imm (low) and imm2 (high) of its first slot, already resolved (map fds to map addresses).
 */
export class Program {
  declare readonly code: Uint8Array;
  declare readonly dst: Uint8Array;
  declare readonly src: Uint8Array;
  declare readonly off: Int32Array;
  declare readonly imm: Int32Array;
  declare readonly imm2: Int32Array;
  /**
   * The interpreter's form: per slot the pair (code | dst << 8 | src << 12 | off << 16, imm),
   * lddw's second slot holding imm2, plus one sentinel slot (code 0) past the end, so falling
   * off the program needs no bounds check. One array: one object to check per instruction.
   * A load or store in r10's frame has OPS_FP_BASE as its base register. Declared, not
   * defined, like Vm's fields: V8 then knows its map at every run.
   */
  declare readonly ops: Int32Array;
  /** No instruction writes r10, so r10 is always the frame pointer (engines use it). */
  declare readonly fpFixed: boolean;
  /** Set by the JIT the first time it compiles this program. */
  jitted: unknown = undefined;

  private constructor(
    readonly insns: readonly Insn[],
    readonly name: string,
  ) {
    const n = insns.length;
    this.code = new Uint8Array(n);
    this.dst = new Uint8Array(n);
    this.src = new Uint8Array(n);
    this.off = new Int32Array(n);
    this.imm = new Int32Array(n);
    this.imm2 = new Int32Array(n);
    this.ops = new Int32Array(2 * (n + 1));
    this.fpFixed = !insns.some(writesR10);
    insns.forEach((i, k) => {
      this.code[k] = i.code;
      this.dst[k] = i.dst;
      this.src[k] = i.src;
      this.off[k] = i.off;
      this.imm[k] = i.imm;
      this.imm2[k] = i.imm2;
      const fp = this.fpFixed && inFrame(i);
      const dst = fp && (i.code & 7) !== 1 ? OPS_FP_BASE : i.dst;
      const src = fp && (i.code & 7) === 1 ? OPS_FP_BASE : i.src;
      this.ops[2 * k] = i.code | (dst << 8) | (src << 12) | (i.off << 16);
      // lddw's second slot holds the resolved high half, which its own imm may not.
      if (k === 0 || !isLddw(insns[k - 1] as Insn)) this.ops[2 * k + 1] = i.imm;
      if (isLddw(i)) this.ops[2 * k + 3] = i.imm2;
    });
  }

  get length(): number {
    return this.code.length;
  }

  /**
   * Validates slots and builds a program. resolveLddw maps an lddw with a pseudo src (map fd,
   * map value, BTF var, func, map index) to its 64-bit value, or an error.
   */
  static load(
    insns: readonly Insn[],
    options: { name?: string; resolveLddw?: (i: Insn, index: number) => bigint | VmError } = {},
  ): Program | VmError {
    const copy = insns.map((i) => ({ ...i }));
    const err = validate(copy);
    if (err !== null) return err;
    for (let k = 0; k < copy.length; k++) {
      const i = copy[k] as Insn;
      if (!isLddw(i) || i.src === 0) continue;
      if (i.src === BPF_PSEUDO_FUNC) {
        const target = k + 1 + i.imm;
        if (target < 0 || target >= copy.length || i.imm2 !== 0) {
          return new VmError(
            'EINVAL',
            `insn ${k}: function pointer to insn ${target} is outside the program`,
          );
        }
        const v = BPF_PSEUDO_FUNC_BASE + BigInt(target);
        i.imm = Number(v & 0xffffffffn) | 0;
        i.imm2 = Number(v >> 32n) | 0;
        continue;
      }
      if (options.resolveLddw === undefined) {
        return new VmError(
          'EINVAL',
          `insn ${k}: lddw with src ${i.src} needs a resolver (no maps or BTF given)`,
        );
      }
      const v = options.resolveLddw(i, k);
      if (v instanceof VmError) return v;
      const u = BigInt.asUintN(64, v);
      i.imm = Number(u & 0xffffffffn) | 0;
      i.imm2 = Number(u >> 32n) | 0;
    }
    return new Program(copy, options.name ?? 'prog');
  }

  static fromBytes(bytes: Uint8Array, options: { name?: string } = {}): Program | VmError {
    const insns = decode(bytes);
    if (insns instanceof VmError) return insns;
    return Program.load(insns, options);
  }
}
