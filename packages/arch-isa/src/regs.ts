import { archInfo, type ArchInfo, type ArchName, type RegRoles } from './arch.js';
import { ArchError } from './errors.js';
import type { StructLayout } from './layout.js';

// Register blocks are stored in the kernel's own byte layout so a BPF program can read pt_regs at
// kernel offsets. All four arches are little-endian; typed arrays use the host's byte order.
if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) {
  throw new Error('arch-isa needs a little-endian host: register blocks are kernel-layout bytes');
}

/** Reads one word of memory, for accessors that look at the stack (x86 return address). */
export type WordReader = (addr: bigint) => bigint;

/**
 * A block of saved registers in kernel struct layout. Values are read and written either as
 * bigint (control plane) or as 32-bit halves (hot path, no allocation).
 */
abstract class RegBlock {
  declare readonly arch: ArchInfo;
  declare readonly layout: StructLayout;
  declare readonly roles: RegRoles;
  /** The struct's bytes, exactly as the kernel lays it out. */
  declare readonly bytes: Uint8Array;
  /** The same bytes as 32-bit words, for allocation-free hot-path access. */
  declare readonly u32: Uint32Array;
  /**
   * The words again as int32s, the traced call's view: kernel addresses are 2^31 or more as
   * uint32s, which V8 holds as doubles (boxed when stored or passed); as int32s they stay small
   * integers.
   */
  declare readonly i32: Int32Array;
  /** Per field: its offset in 32-bit units, and whether it is 8 bytes. */
  declare protected readonly word: Uint16Array;
  declare protected readonly wide: Uint8Array;
  /**
   * Set by every field write through the accessors. A caller clears it after saving, so its
   * epilogue knows whether a callback changed anything it must write back.
   */
  dirty = false;

  protected constructor(arch: ArchName, layout: StructLayout, roles: RegRoles) {
    this.arch = archInfo(arch);
    this.layout = layout;
    this.roles = roles;
    const buf = new ArrayBuffer(layout.size);
    this.bytes = new Uint8Array(buf);
    this.u32 = new Uint32Array(buf);
    this.i32 = new Int32Array(buf);
    this.word = Uint16Array.from(layout.fields, (f) => f.offset / 4);
    this.wide = Uint8Array.from(layout.fields, (f) => (f.size === 8 ? 1 : 0));
  }

  /** Index of a field by its kernel name, or an ArchError naming the field and struct. */
  fieldIndex(name: string): number {
    const i = this.layout.index.get(name);
    if (i === undefined) {
      throw new ArchError('ENOENT', `${this.arch.name} ${this.layout.name} has no field '${name}'`);
    }
    return i;
  }

  /** Checks that field i may be accessed; FtraceRegs overrides it to enforce the held set. */
  protected check(_i: number): void {
    // A full register block allows every field.
  }

  /** Low 32 bits of field i. */
  lo(i: number): number {
    this.check(i);
    return this.u32[this.word[i]];
  }

  /** High 32 bits of field i (0 for 4-byte fields). */
  hi(i: number): number {
    this.check(i);
    return this.wide[i] === 1 ? this.u32[this.word[i] + 1] : 0;
  }

  /** Writes field i from 32-bit halves; the high half is dropped for 4-byte fields. */
  setHalves(i: number, lo: number, hi: number): void {
    this.check(i);
    this.dirty = true;
    const w = this.word[i];
    this.u32[w] = lo;
    if (this.wide[i] === 1) this.u32[w + 1] = hi;
  }

  readIndex(i: number): bigint {
    const lo = BigInt(this.lo(i));
    return this.wide[i] === 1 ? (BigInt(this.hi(i)) << 32n) | lo : lo;
  }

  /** Writes field i, truncating the value to the field's width as a store would. */
  writeIndex(i: number, value: bigint): void {
    this.setHalves(i, Number(value & 0xffffffffn), Number((value >> 32n) & 0xffffffffn));
  }

  read(name: string): bigint {
    return this.readIndex(this.fieldIndex(name));
  }

  write(name: string, value: bigint): void {
    this.writeIndex(this.fieldIndex(name), value);
  }

  // Accessors named after the kernel's (instruction_pointer(), regs_get_kernel_argument(), ...).

  instructionPointer(): bigint {
    return this.read(this.roles.ip);
  }

  setInstructionPointer(value: bigint): void {
    this.write(this.roles.ip, value);
  }

  stackPointer(): bigint {
    return this.read(this.roles.sp);
  }

  setStackPointer(value: bigint): void {
    this.write(this.roles.sp, value);
  }

  framePointer(): bigint {
    return this.read(this.roles.fp);
  }

  /**
   * Argument n (from 0) of the function at entry. Register arguments come from the block; later
   * ones are read from the stack when a reader is given (as regs_get_kernel_argument does on x86),
   * else 0 as arm64's ftrace_regs_get_argument returns.
   */
  argument(n: number, readWord?: WordReader): bigint {
    if (!Number.isInteger(n) || n < 0) {
      throw new ArchError('EINVAL', `argument index ${n} is not a non-negative integer`);
    }
    const args = this.roles.args;
    if (n < args.length) return this.read(args[n]);
    if (readWord === undefined) return 0n;
    const addr =
      this.stackPointer() +
      BigInt(this.arch.stackArgOffset + (n - args.length) * this.arch.wordSize);
    return readWord(addr);
  }

  /** Sets register argument n; stack arguments are memory and are not written here. */
  setArgument(n: number, value: bigint): void {
    const args = this.roles.args;
    if (!Number.isInteger(n) || n < 0 || n >= args.length) {
      throw new ArchError(
        'EINVAL',
        `${this.arch.name} passes ${args.length} arguments in registers; cannot set argument ${n}`,
      );
    }
    this.write(args[n], value);
  }

  /** The first return register (regs_return_value()). */
  returnValue(): bigint {
    return this.read(this.roles.ret[0]);
  }

  setReturnValue(value: bigint): void {
    this.write(this.roles.ret[0], value);
  }

  /**
   * The return address at function entry: the link register on arm64/riscv, the word at the
   * stack pointer on x86 (which needs a memory reader).
   */
  returnAddress(readWord?: WordReader): bigint {
    if (this.roles.lr !== null) return this.read(this.roles.lr);
    if (readWord === undefined) {
      throw new ArchError(
        'EINVAL',
        `${this.arch.name} keeps the return address on the stack: a memory reader is required`,
      );
    }
    return readWord(this.stackPointer());
  }

  /**
   * Makes the function return at once to its caller (override_function_with_return): the
   * instruction pointer becomes the return address, and x86 pops it off the stack.
   */
  overrideFunctionWithReturn(readWord?: WordReader): void {
    const ret = this.returnAddress(readWord);
    this.setInstructionPointer(ret);
    if (this.roles.lr === null) {
      this.setStackPointer(this.stackPointer() + BigInt(this.arch.wordSize));
    }
  }

  /** A plain object of all readable fields, for printing and tests. */
  toObject(): Record<string, bigint> {
    const out: Record<string, bigint> = {};
    this.layout.fields.forEach((f, i) => {
      if (this.readable(i)) out[f.name] = this.readIndex(i);
    });
    return out;
  }

  protected readable(_i: number): boolean {
    return true;
  }
}

/** A full struct pt_regs. `real` marks which fields hold saved values (all, unless partial). */
export class PtRegs extends RegBlock {
  readonly kind = 'pt_regs' as const;
  /** Per field: 1 when the field holds a real saved value. Written only by this module. */
  declare readonly real: Uint8Array;
  /**
   * The partial-regs mask `real` was last copied from, by identity: a kprobe_multi program's
   * pt_regs is rebuilt on every traced call with the same mask, which need not be copied again.
   */
  realOf: Uint8Array | null = null;

  constructor(arch: ArchName) {
    const info = archInfo(arch);
    super(arch, info.ptRegs, info.ptRoles);
    this.real = new Uint8Array(info.ptRegs.fields.length).fill(1);
  }

  isReal(name: string): boolean {
    return this.real[this.fieldIndex(name)] === 1;
  }

  /** Names of the fields that hold real values. */
  realFields(): string[] {
    return this.layout.fields.filter((_, i) => this.real[i] === 1).map((f) => f.name);
  }

  copyFrom(other: PtRegs): void {
    this.bytes.set(other.bytes);
    this.real.set(other.real);
    this.realOf = other.realOf;
    // Whatever other's unsaved words hold, the next partial build rewrites them all.
    this.dirty = true;
  }
}

/**
 * Which code filled an ftrace_regs: the plain ftrace_caller, the full-regs caller, or
 * return_to_handler (for graph return callbacks).
 */
export type FtraceCaller = 'caller' | 'regs_caller' | 'return';

/**
 * struct ftrace_regs: what ftrace_caller saved. It is sparse; reading or writing a register it
 * does not hold is a contract violation, thrown in strict mode. Its `kind` differs from PtRegs',
 * so the type cannot be passed where a full pt_regs is expected.
 */
export class FtraceRegs extends RegBlock {
  readonly kind = 'ftrace_regs' as const;
  declare readonly caller: FtraceCaller;
  declare readonly strict: boolean;
  /** Per field: 1 when the caller saved it. */
  declare readonly held: Uint8Array;
  /**
   * The caller's save, restore and partial-regs code for this arch and caller (made once, shared
   * by every FtraceRegs of the kind). A hot path keeps the functions in its own fields: a call
   * site that sees one of them is inlined, the one in saveFrom sees every caller's and is not.
   */
  declare readonly moves: RegsMoves;

  constructor(arch: ArchName, options: { caller?: FtraceCaller; strict?: boolean } = {}) {
    const info = archInfo(arch);
    const caller = options.caller ?? 'caller';
    const heldNames =
      caller === 'caller'
        ? info.ftraceCallerHeld
        : caller === 'return'
          ? info.ftraceReturnHeld
          : info.ftraceRegsCallerHeld;
    if (heldNames === null) {
      throw new ArchError(
        'EOPNOTSUPP',
        `${arch} has no ftrace_regs_caller (no DYNAMIC_FTRACE_WITH_REGS)`,
      );
    }
    const full = caller === 'regs_caller';
    const layout = full ? info.ptRegs : info.ftraceRegs;
    super(arch, layout, full ? info.ptRoles : info.ftraceRoles);
    this.caller = caller;
    this.strict = options.strict ?? true;
    this.held = new Uint8Array(layout.fields.length);
    for (const name of heldNames) {
      const i = layout.index.get(name);
      if (i !== undefined) this.held[i] = 1;
    }
    this.moves = regsMoves(info, caller, this.held);
  }

  holds(name: string): boolean {
    return this.held[this.fieldIndex(name)] === 1;
  }

  protected override check(i: number): void {
    if (this.strict && this.held[i] !== 1) {
      throw new ArchError(
        'EINVAL',
        `ftrace_regs from ${this.arch.name} ${this.caller === 'return' ? 'return_to_handler' : `ftrace_${this.caller}`} does not hold '${this.layout.fields[i].name}'`,
      );
    }
  }

  protected override readable(i: number): boolean {
    return this.held[i] === 1;
  }

  /**
   * Fills the held registers from the CPU state, as the caller's save code does (x86's
   * ftrace_caller also zeroes cs, the mark of a partial pt_regs).
   */
  saveFrom(regs: PtRegs): void {
    this.moves.save(this.u32, regs.u32);
  }

  /** Writes the held registers back to the CPU state, as the caller's restore code does. */
  restoreTo(regs: PtRegs): void {
    this.moves.restore(regs.u32, this.u32);
  }

  /**
   * ftrace_partial_regs() into `regs`, without allocating (see the function of that name). The
   * words a partial build zeroes stay zero until something writes `regs` through its accessors
   * (which marks it dirty), so a rebuild with the same moves copies only the held words.
   */
  partialInto(regs: PtRegs): void {
    const m = this.moves;
    if (regs.realOf === m.real && !regs.dirty) {
      m.partialHeld(regs.u32, this.u32);
      return;
    }
    m.partial(regs.u32, this.u32);
    if (regs.realOf !== m.real) {
      regs.real.set(m.real);
      regs.realOf = m.real;
    }
    regs.dirty = false;
  }
}

/** Copies fixed words between two register blocks: dst[d] = src[s], unrolled. */
export type WordMove = (dst: Uint32Array, src: Uint32Array) => void;

/**
 * What an ftrace caller does with registers, as straight-line word moves: save into ftrace_regs,
 * restore to the CPU, and build ftrace_partial_regs. Every traced call saves and restores, and a
 * loop over a pair table cost more than the rest of the caller, so the moves are generated once
 * per (arch, caller) as unrolled functions.
 */
export interface RegsMoves {
  readonly save: WordMove;
  readonly restore: WordMove;
  readonly partial: WordMove;
  /** partial without the zero stores: only the words ftrace_regs holds. */
  readonly partialHeld: WordMove;
  /** pt_regs.real of a partial pt_regs. */
  readonly real: Uint8Array;
  /**
   * The save moves as [ftrace_regs word, pt_regs word] pairs (pt_regs word -1: store 0), for
   * code generated elsewhere that inlines them (see wordMovesSource).
   */
  readonly saveWords: readonly WordPair[];
}

/** A word move: [destination word, source word], the source -1 for a store of 0. */
export type WordPair = readonly [number, number];

/**
 * JavaScript statements doing `pairs` from Int32Array/Uint32Array `src` into `dst` (variable
 * names in the generated code), one statement per line.
 */
export function wordMovesSource(pairs: readonly WordPair[], dst: string, src: string): string {
  return pairs.map(([d, s]) => `${dst}[${d}] = ${s < 0 ? '0' : `${src}[${s}]`};\n`).join('');
}

const movesCache = new Map<string, RegsMoves>();

function regsMoves(info: ArchInfo, caller: FtraceCaller, held: Uint8Array): RegsMoves {
  const key = `${info.name}/${caller}`;
  const cached = movesCache.get(key);
  if (cached !== undefined) return cached;
  const layout = caller === 'regs_caller' ? info.ptRegs : info.ftraceRegs;
  const saveWords: WordPair[] = [];
  const restoreWords: WordPair[] = [];
  const partial: string[] = [];
  const real = new Uint8Array(info.ptRegs.fields.length);
  const ptWords = new Uint8Array(info.ptRegs.size / 4);
  // x86 ftrace_caller stores cs = 0 so ftrace_get_regs() knows its pt_regs is partial; the CPU's
  // cs is not restored from it.
  const csMark = caller === 'caller' && info.ptRoles.lr === null ? layout.index.get('cs') : -1;
  for (const [f, p] of partialRegsMap(info, layout)) {
    if (held[f] !== 1) continue;
    const ff = layout.fields[f] as { offset: number; size: number };
    const pf = info.ptRegs.fields[p] as { offset: number; size: number };
    real[p] = 1;
    for (let w = 0; w < Math.min(ff.size, pf.size) / 4; w++) {
      const fw = ff.offset / 4 + w;
      const pw = pf.offset / 4 + w;
      ptWords[pw] = 1;
      partial.push(`d[${pw}]=s[${fw}];`);
      if (f === csMark) {
        saveWords.push([fw, -1]);
        continue;
      }
      saveWords.push([fw, pw]);
      restoreWords.push([pw, fw]);
    }
  }
  const partialHeld = partial.join('');
  ptWords.forEach((isHeld, pw) => {
    if (isHeld === 0) partial.push(`d[${pw}]=0;`);
  });
  const make = (body: string): WordMove => new Function('d', 's', body) as WordMove;
  const moves = {
    save: make(wordMovesSource(saveWords, 'd', 's')),
    restore: make(wordMovesSource(restoreWords, 'd', 's')),
    partial: make(partial.join('')),
    partialHeld: make(partialHeld),
    real,
    saveWords,
  };
  movesCache.set(key, moves);
  return moves;
}

/**
 * How ftrace_partial_regs() maps ftrace_regs fields onto pt_regs fields: same names on x86 and
 * riscv; on arm64 fp goes to x29 and lr to x30, and direct_tramp has no pt_regs home.
 */
function partialRegsMap(info: ArchInfo, layout: StructLayout): [number, number][] {
  const pairs: [number, number][] = [];
  layout.fields.forEach((f, i) => {
    let ptName = f.name;
    if (info.name === 'arm64' && layout === info.ftraceRegs) {
      if (f.name === 'fp') ptName = 'x29';
      else if (f.name === 'lr') ptName = 'x30';
    }
    const p = info.ptRegs.index.get(ptName);
    if (p !== undefined) pairs.push([i, p]);
  });
  return pairs;
}

/**
 * ftrace_partial_regs(): a pt_regs built from an ftrace_regs. Only the fields the ftrace_regs
 * held are real; `regs.real` marks them and the rest read as zero.
 */
export function ftracePartialRegs(fregs: FtraceRegs, into?: PtRegs): PtRegs {
  const regs = into ?? new PtRegs(fregs.arch.name);
  if (regs.arch !== fregs.arch) {
    throw new ArchError(
      'EINVAL',
      `ftrace_partial_regs: ftrace_regs is ${fregs.arch.name} but pt_regs is ${regs.arch.name}`,
    );
  }
  fregs.partialInto(regs);
  return regs;
}
