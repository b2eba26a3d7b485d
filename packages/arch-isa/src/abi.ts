import { archInfo, type ArchName } from './arch.js';
import { ArchError } from './errors.js';
import type { PtRegs } from './regs.js';

/** btf_func_model arg_flags bits (include/linux/bpf.h). */
export const BTF_FMODEL_STRUCT_ARG = 1;
export const BTF_FMODEL_SIGNED_ARG = 2;
/** MAX_BPF_FUNC_ARGS: the most arguments a function model describes. */
export const MAX_BPF_FUNC_ARGS = 12;
/** The largest argument or return value a function model carries, in bytes. */
export const MAX_FMODEL_VALUE_SIZE = 16;

/**
 * The shape of struct btf_func_model that arch-isa needs. `btf`'s funcModel output satisfies it
 * structurally; arch-isa does not import btf.
 */
export interface FuncModelLike {
  readonly retSize: number;
  readonly retFlags: number;
  readonly nrArgs: number;
  readonly argSize: readonly number[];
  readonly argFlags: readonly number[];
}

/** Where one word of an argument lives at function entry. */
export type ArgSlot =
  | { readonly kind: 'reg'; readonly reg: string }
  /** Byte offset from the stack pointer at function entry. */
  | { readonly kind: 'stack'; readonly offset: number };

export interface ArgPlacement {
  readonly size: number;
  readonly flags: number;
  /** The argument's words, least significant first. */
  readonly words: readonly ArgSlot[];
}

/** Where a call's arguments and return value live for one arch. */
export interface CallPlacement {
  readonly arch: ArchName;
  readonly args: readonly ArgPlacement[];
  /** Bytes of stack-passed arguments above the entry stack pointer's argument area. */
  readonly stackBytes: number;
  /** Return value registers (pt_regs field names), low word first; empty for void. */
  readonly ret: readonly string[];
  readonly retSize: number;
  readonly retFlags: number;
}

function validateModel(arch: ArchName, m: FuncModelLike): ArchError | null {
  const where = `${arch} func model`;
  if (!Number.isInteger(m.nrArgs) || m.nrArgs < 0 || m.nrArgs > MAX_BPF_FUNC_ARGS) {
    return new ArchError(
      'E2BIG',
      `${where}: nr_args ${m.nrArgs} is not in 0..${MAX_BPF_FUNC_ARGS}`,
    );
  }
  if (m.argSize.length < m.nrArgs || m.argFlags.length < m.nrArgs) {
    return new ArchError('EINVAL', `${where}: nr_args ${m.nrArgs} but sizes/flags are shorter`);
  }
  for (let i = 0; i < m.nrArgs; i++) {
    const size = m.argSize[i];
    if (!Number.isInteger(size) || size < 1 || size > MAX_FMODEL_VALUE_SIZE) {
      return new ArchError('EINVAL', `${where}: arg_size[${i}] = ${size} is not in 1..16`);
    }
    const flags = m.argFlags[i];
    if (
      !Number.isInteger(flags) ||
      (flags & ~(BTF_FMODEL_STRUCT_ARG | BTF_FMODEL_SIGNED_ARG)) !== 0
    ) {
      return new ArchError('EINVAL', `${where}: arg_flags[${i}] = ${flags} has unknown bits`);
    }
  }
  if (!Number.isInteger(m.retSize) || m.retSize < 0 || m.retSize > MAX_FMODEL_VALUE_SIZE) {
    return new ArchError('EINVAL', `${where}: ret_size ${m.retSize} is not in 0..16`);
  }
  return null;
}

/**
 * Places a function's arguments and return value by the arch's kernel calling convention:
 * - x86_64 (SysV) and i386 (regparm(3)): a value takes one register per word if that many remain,
 *   else goes whole to the stack while later, smaller arguments may still take registers; a
 *   value is never split between a register and the stack (64-bit values on i386 use a pair).
 * - arm64 (AAPCS64): a 16-byte scalar starts at an even register; a value that does not fit
 *   goes to the stack and no later argument uses a register.
 * - riscv64 (LP64): a 16-byte scalar uses an aligned even/odd pair; a two-word value with one
 *   register left is split between that register and the stack.
 */
export function placeCall(arch: ArchName, model: FuncModelLike): CallPlacement | ArchError {
  const bad = validateModel(arch, model);
  if (bad !== null) return bad;
  const info = archInfo(arch);
  const regs = info.ptRoles.args;
  const ws = info.wordSize;
  let nextReg = 0;
  let stack = 0;
  const args: ArgPlacement[] = [];
  const stackSlot = (align: number): ArgSlot => {
    stack = Math.ceil(stack / align) * align;
    const slot: ArgSlot = { kind: 'stack', offset: info.stackArgOffset + stack };
    stack += ws;
    return slot;
  };
  for (let i = 0; i < model.nrArgs; i++) {
    const size = model.argSize[i];
    const flags = model.argFlags[i];
    const nwords = Math.ceil(size / ws);
    // A 16-byte scalar (__int128) is 16-byte aligned on the 64-bit RISC ABIs.
    const pairAligned =
      (arch === 'arm64' || arch === 'riscv64') &&
      size === 16 &&
      (flags & BTF_FMODEL_STRUCT_ARG) === 0;
    let first = nextReg;
    if (pairAligned && first % 2 === 1) first++;
    const words: ArgSlot[] = [];
    if (first + nwords <= regs.length) {
      for (let w = 0; w < nwords; w++) words.push({ kind: 'reg', reg: regs[first + w] });
      nextReg = first + nwords;
    } else if (arch === 'riscv64' && nwords === 2 && !pairAligned && nextReg === regs.length - 1) {
      words.push({ kind: 'reg', reg: regs[nextReg] }, stackSlot(ws));
      nextReg = regs.length;
    } else {
      const align = pairAligned ? 16 : ws;
      for (let w = 0; w < nwords; w++) words.push(stackSlot(w === 0 ? align : ws));
      if (arch === 'arm64' || arch === 'riscv64') nextReg = regs.length;
    }
    args.push({ size, flags, words });
  }
  const retWords = Math.ceil(model.retSize / ws);
  if (retWords > 2) {
    return new ArchError(
      'EOPNOTSUPP',
      `${arch} func model: ret_size ${model.retSize} is returned in memory, not registers`,
    );
  }
  const ret = info.ptRoles.ret.slice(0, retWords);
  const stackBytes = Math.ceil(stack / info.stackAlign) * info.stackAlign;
  return { arch, args, stackBytes, ret, retSize: model.retSize, retFlags: model.retFlags };
}

/** Stack memory as the ABI code sees it: words at byte offsets from the entry stack pointer. */
export interface StackWords {
  readWord(offset: number): bigint;
  writeWord(offset: number, value: bigint): void;
}

function normalise(value: bigint, size: number, flags: number): bigint {
  const bits = size * 8;
  return (flags & BTF_FMODEL_SIGNED_ARG) !== 0
    ? BigInt.asIntN(bits, value)
    : BigInt.asUintN(bits, value);
}

function writeValue(
  slots: readonly ArgSlot[],
  size: number,
  flags: number,
  value: bigint,
  ws: number,
  regs: PtRegs,
  stack: StackWords | null,
): void {
  const wordBits = BigInt(ws * 8);
  // A signed value narrower than a word is sign-extended into its register, as compilers do.
  let rest =
    (flags & BTF_FMODEL_SIGNED_ARG) !== 0 && slots.length === 1
      ? BigInt.asUintN(ws * 8, BigInt.asIntN(size * 8, value))
      : BigInt.asUintN(size * 8, value);
  for (const slot of slots) {
    const word = BigInt.asUintN(ws * 8, rest);
    rest >>= wordBits;
    if (slot.kind === 'reg') regs.write(slot.reg, word);
    else if (stack === null)
      throw new ArchError('EFAULT', 'argument on the stack but no stack given');
    else stack.writeWord(slot.offset, word);
  }
}

function readValue(
  slots: readonly ArgSlot[],
  size: number,
  flags: number,
  ws: number,
  regs: PtRegs,
  stack: StackWords | null,
): bigint {
  let v = 0n;
  for (let w = slots.length - 1; w >= 0; w--) {
    const slot = slots[w];
    let word: bigint;
    if (slot.kind === 'reg') word = regs.read(slot.reg);
    else if (stack === null)
      throw new ArchError('EFAULT', 'argument on the stack but no stack given');
    else word = stack.readWord(slot.offset);
    v = (v << BigInt(ws * 8)) | word;
  }
  return normalise(v, size, flags);
}

/** Puts argument values where the callee will look for them. */
export function writeArgs(
  plan: CallPlacement,
  values: readonly bigint[],
  regs: PtRegs,
  stack: StackWords | null,
): ArchError | null {
  if (values.length !== plan.args.length) {
    return new ArchError(
      'EINVAL',
      `${plan.arch} call takes ${plan.args.length} arguments, ${values.length} given`,
    );
  }
  const ws = archInfo(plan.arch).wordSize;
  plan.args.forEach((a, i) => writeValue(a.words, a.size, a.flags, values[i], ws, regs, stack));
  return null;
}

/** Reads argument values at function entry, truncated to their size (signed when flagged). */
export function readArgs(plan: CallPlacement, regs: PtRegs, stack: StackWords | null): bigint[] {
  const ws = archInfo(plan.arch).wordSize;
  return plan.args.map((a) => readValue(a.words, a.size, a.flags, ws, regs, stack));
}

const retSlots = (plan: CallPlacement): ArgSlot[] =>
  plan.ret.map((reg) => ({ kind: 'reg', reg }) as const);

export function writeReturn(plan: CallPlacement, value: bigint, regs: PtRegs): void {
  if (plan.retSize === 0) return;
  const ws = archInfo(plan.arch).wordSize;
  writeValue(retSlots(plan), plan.retSize, plan.retFlags, value, ws, regs, null);
}

export function readReturn(plan: CallPlacement, regs: PtRegs): bigint {
  if (plan.retSize === 0) return 0n;
  const ws = archInfo(plan.arch).wordSize;
  return readValue(retSlots(plan), plan.retSize, plan.retFlags, ws, regs, null);
}
