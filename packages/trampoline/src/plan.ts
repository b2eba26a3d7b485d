import {
  archInfo,
  BTF_FMODEL_STRUCT_ARG,
  placeCall,
  type ArchName,
  type ArgSlot,
  type CallPlacement,
  type FuncModelLike,
} from '@tracelab/arch-isa';
import { TracelabError } from '@tracelab/contracts';

/** The source code of one 32-bit half of a ctx slot: a pt_regs u32 index (>= 0) or these. */
export const SRC_ZERO = -1;
/** Stack sources are encoded as SRC_STACK - (byte offset from the entry sp) / 4. */
export const SRC_STACK = -2;

/** How one argument reaches the ctx array. */
export interface PlanArg {
  readonly size: number;
  readonly flags: number;
  /** First ctx slot (u64) of the argument; a struct over 8 bytes takes consecutive slots. */
  readonly slot: number;
  readonly slots: number;
  /** Where its words live at function entry, least significant first (arch-isa's answer). */
  readonly words: readonly ArgSlot[];
}

/**
 * A per-arch marshalling plan: what the trampoline's save_args does for one function model.
 * ctx slots are always u64; on i386 a slot is built from one or two 32-bit words.
 */
export interface MarshalPlan {
  readonly arch: ArchName;
  readonly nrArgs: number;
  /** nr_regs: u64 ctx slots the arguments take (ctx[-1] holds it). */
  readonly ctxSlots: number;
  readonly args: readonly PlanArg[];
  /** Per ctx u32 half (2 per slot, low first): SRC_ZERO, a pt_regs u32 index or a stack code. */
  readonly src: Int32Array;
  readonly retSize: number;
  readonly retFlags: number;
  /** pt_regs fields the return value is read from (low word first); at least one. */
  readonly retRegs: readonly string[];
  /** pt_regs u32 indices for the return slot's halves (SRC_ZERO when not set by the callee). */
  readonly retSrc: Int32Array;
  /** Bytes of stack arguments the caller pushed (the trampoline copies them for the original). */
  readonly stackBytes: number;
  /**
   * The return register is also an argument register (arm64 x0, riscv a0, i386 eax): fexit must
   * read arguments saved before the original call, never the registers after it.
   */
  readonly saveArgsBeforeCall: boolean;
  /** The move table as text, one entry per ctx slot ('di', 'ax:dx', '+4:+8'). */
  readonly moves: readonly string[];
  /** Equal keys = the same trampoline code (see planKey). */
  readonly key: string;
}

const regName = (arch: ArchName, u32Index: number): string => {
  const f = archInfo(arch).ptRegs.fields.find((x) => x.offset === u32Index * 4);
  return f === undefined ? `?${u32Index}` : f.name;
};

function srcText(arch: ArchName, code: number): string {
  if (code === SRC_ZERO) return '0';
  if (code <= SRC_STACK) return `+${(SRC_STACK - code) * 4}`;
  return regName(arch, code);
}

/**
 * The marshalling plan of a function model on an arch, or the reason the trampoline cannot be
 * built (more than 12 argument words, a return in memory, a bad model).
 */
export function marshalPlan(arch: ArchName, model: FuncModelLike): MarshalPlan | TracelabError {
  const placement = placeCall(arch, model);
  if (placement instanceof Error) return placement;
  return planFromPlacement(placement);
}

/** MAX_BPF_FUNC_ARGS words: the kernel refuses a trampoline whose args take more ctx slots. */
export const MAX_CTX_SLOTS = 12;

export function planFromPlacement(p: CallPlacement): MarshalPlan | TracelabError {
  const info = archInfo(p.arch);
  const ws = info.wordSize;
  const pt = info.ptRegs;
  const u32Of = (reg: string): number =>
    (pt.fields[pt.index.get(reg) as number]?.offset as number) / 4;
  const src: number[] = [];
  const args: PlanArg[] = [];
  let slot = 0;
  for (const a of p.args) {
    const slots = Math.ceil(a.size / 8);
    // The words of the value, as u32 sources, least significant first.
    const halves: number[] = [];
    for (const w of a.words) {
      if (w.kind === 'reg') {
        const r = u32Of(w.reg);
        halves.push(r);
        if (ws === 8) halves.push(r + 1);
      } else {
        const s = SRC_STACK - w.offset / 4;
        halves.push(s);
        if (ws === 8) halves.push(s - 1);
      }
    }
    for (let h = 0; h < slots * 2; h++) {
      // 64-bit arches copy whole registers as the JITs do; on i386 a slot half past the value's
      // size is zero (a 4-byte argument has no high word).
      src.push(ws === 8 || h * 4 < a.size ? (halves[h] ?? SRC_ZERO) : SRC_ZERO);
    }
    args.push({ size: a.size, flags: a.flags, slot, slots, words: a.words });
    slot += slots;
  }
  if (slot > MAX_CTX_SLOTS) {
    return new TracelabError(
      'ENOTSUPP',
      `${p.arch}: arguments take ${slot} words, the trampoline saves at most ${MAX_CTX_SLOTS}`,
    );
  }
  const retRegs = p.ret.length > 0 ? p.ret : [info.ptRoles.ret[0]];
  const retSrc = Int32Array.of(SRC_ZERO, SRC_ZERO);
  const r0 = u32Of(retRegs[0] as string);
  retSrc[0] = r0;
  // i386 saves edx too, whatever the return size: a trampoline then serves 4- and 8-byte
  // returns alike, and the function's own ret_size decides whether ctx[n] has a high word.
  retSrc[1] = ws === 8 ? r0 + 1 : u32Of(info.ptRoles.ret[1]);
  const argRegs = new Set<string>();
  for (const a of p.args) for (const w of a.words) if (w.kind === 'reg') argRegs.add(w.reg);
  const saveArgsBeforeCall =
    argRegs.has(info.ptRoles.ret[0]) || (p.retSize > ws && argRegs.has(info.ptRoles.ret[1]));
  const moves: string[] = [];
  for (let s = 0; s < slot; s++) {
    const lo = src[2 * s] as number;
    const hi = src[2 * s + 1] as number;
    if (ws === 8 && lo >= 0 && hi === lo + 1) moves.push(srcText(p.arch, lo));
    else if (ws === 8 && lo <= SRC_STACK && hi === lo - 1) moves.push(srcText(p.arch, lo));
    else
      moves.push(
        hi === SRC_ZERO ? srcText(p.arch, lo) : `${srcText(p.arch, lo)}:${srcText(p.arch, hi)}`,
      );
  }
  const ret = `ret=${ws === 8 ? retRegs[0] : `${retRegs[0]}:${info.ptRoles.ret[1]}`}`;
  return {
    arch: p.arch,
    nrArgs: p.args.length,
    ctxSlots: slot,
    args,
    src: Int32Array.from(src),
    retSize: p.retSize,
    retFlags: p.retFlags,
    retRegs,
    retSrc,
    stackBytes: p.stackBytes,
    saveArgsBeforeCall,
    moves,
    key: planKey(p.arch, moves, ret),
  };
}

/**
 * The natural move of ctx slot i on a 64-bit arch: argument register i, then the stack words in
 * order. A plan made only of natural moves does not depend on how many there are, because the
 * trampoline copies ctx[-1] of them: every such function shares one trampoline.
 */
function naturalMove(arch: ArchName, i: number): string {
  const info = archInfo(arch);
  const regs = info.ptRoles.args;
  if (i < regs.length) return regs[i] as string;
  return `+${info.stackArgOffset + (i - regs.length) * 8}`;
}

function planKey(arch: ArchName, moves: readonly string[], ret: string): string {
  const natural =
    archInfo(arch).wordSize === 8 && moves.every((m, i) => m === naturalMove(arch, i));
  return natural ? `${arch} natural ${ret}` : `${arch} [${moves.join(' ')}] ${ret}`;
}

/**
 * Whether a function with plan `f` can run through a trampoline built for plan `t`: the same
 * arch and return registers, and f's moves are the first moves of t's (the trampoline copies the
 * function's own slot count, which it finds with the ip).
 */
export function planFits(f: MarshalPlan, t: MarshalPlan): boolean {
  if (f.arch !== t.arch || f.ctxSlots > t.ctxSlots) return false;
  if (f.retSrc[0] !== t.retSrc[0] || f.retSrc[1] !== t.retSrc[1]) return false;
  for (let i = 0; i < f.ctxSlots * 2; i++) if (f.src[i] !== t.src[i]) return false;
  return true;
}

/** One plan as text (`tracelab trampoline plan FUNC --arch A`). */
export function formatPlan(name: string, plan: MarshalPlan): string {
  const lines = [
    `${name} (${plan.arch}): ${plan.nrArgs} args in ${plan.ctxSlots} ctx slots, ret ${plan.retSize} bytes in ${plan.retRegs.join(':')}`,
  ];
  for (let i = 0; i < plan.args.length; i++) {
    const a = plan.args[i] as PlanArg;
    const where = a.words.map((w) => (w.kind === 'reg' ? w.reg : `sp+${w.offset}`)).join(', ');
    const kind = (a.flags & BTF_FMODEL_STRUCT_ARG) !== 0 ? 'struct ' : '';
    const ctx = a.slots === 1 ? `ctx[${a.slot}]` : `ctx[${a.slot}..${a.slot + a.slots - 1}]`;
    lines.push(`  arg${i}: ${kind}${a.size} bytes <- ${where} -> ${ctx}`);
  }
  lines.push(
    `  ctx[-1] = ${plan.ctxSlots} (nr_regs), ctx[-2] = ip, ctx[${plan.ctxSlots}] = return`,
  );
  if (plan.saveArgsBeforeCall) {
    lines.push(
      `  ${plan.retRegs[0]} is also an argument register: args are saved before the original runs`,
    );
  }
  if (plan.stackBytes > 0)
    lines.push(`  ${plan.stackBytes} bytes of stack arguments copied for the original`);
  lines.push(`  key: ${plan.key}`);
  return `${lines.join('\n')}\n`;
}
