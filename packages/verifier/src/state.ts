import { RegState, markNotInit, markUnknown, rangeEqual, rangeWithin } from './regs.js';

/** enum bpf_stack_slot_type, one per byte of an 8-byte slot. */
export const STACK_INVALID = 0;
export const STACK_SPILL = 1;
export const STACK_MISC = 2;
export const STACK_ZERO = 3;

const SLOT_CHARS = ['?', 'r', 'm', '0'];

/** struct bpf_stack_state: one 8-byte stack slot. */
export class StackSlot {
  readonly kinds = new Uint8Array(8);
  spilled: RegState | null = null;

  clone(): StackSlot {
    const s = new StackSlot();
    s.kinds.set(this.kinds);
    s.spilled = this.spilled === null ? null : this.spilled.clone();
    return s;
  }

  isSpill(): boolean {
    return this.kinds[7] === STACK_SPILL && this.spilled !== null;
  }

  kindStr(): string {
    let out = '';
    for (let k = 7; k >= 0; k--) out += SLOT_CHARS[this.kinds[k] as number] as string;
    return out;
  }
}

/** struct bpf_func_state: one call frame. */
export class FuncState {
  readonly regs: RegState[];
  /** stack[spi] covers fp-(spi+1)*8 .. fp-spi*8. */
  stack: StackSlot[] = [];

  constructor(
    readonly frameno: number,
    readonly subprog: number,
    /** Instruction index of the call that made this frame (-1 for the main frame). */
    readonly callsite: number,
    regs?: RegState[],
  ) {
    this.regs = regs ?? Array.from({ length: 11 }, () => new RegState());
  }

  clone(): FuncState {
    const f = new FuncState(
      this.frameno,
      this.subprog,
      this.callsite,
      this.regs.map((r) => r.clone()),
    );
    f.stack = this.stack.map((s) => s.clone());
    return f;
  }

  slot(spi: number): StackSlot {
    while (this.stack.length <= spi) this.stack.push(new StackSlot());
    return this.stack[spi] as StackSlot;
  }
}

/** An acquired reference (struct bpf_reference_state). */
export interface RefState {
  id: number;
  insn: number;
}

/** struct bpf_verifier_state: every frame of one path. */
export class VerifierState {
  frames: FuncState[];
  refs: RefState[] = [];
  /** The checkpoint this path last passed (for branch counting and loop detection). */
  parent: Explored | null = null;

  constructor(frames: FuncState[]) {
    this.frames = frames;
  }

  get cur(): FuncState {
    return this.frames[this.frames.length - 1] as FuncState;
  }

  clone(): VerifierState {
    const s = new VerifierState(this.frames.map((f) => f.clone()));
    s.refs = this.refs.map((r) => ({ ...r }));
    s.parent = this.parent;
    return s;
  }

  /** Every register and spilled register of every frame (for null and release marking). */
  *allRegs(): Generator<RegState> {
    for (const f of this.frames) {
      yield* f.regs;
      for (const s of f.stack) if (s.spilled !== null) yield s.spilled;
    }
  }
}

/** A stored state at a prune point (struct bpf_verifier_state_list). */
export interface Explored {
  /** The stored state; null once evicted (the entry then only counts branches). */
  state: VerifierState | null;
  /** Paths below this checkpoint still being explored; 0 = fully verified. */
  branches: number;
  parent: Explored | null;
  /** Prunes this state gave, and comparisons that failed (for eviction). */
  hits: number;
  misses: number;
}

/** Maps old ids to current ids consistently (check_ids). */
class IdMap {
  private readonly fwd = new Map<number, number>();
  private readonly back = new Map<number, number>();

  check(oldId: number, curId: number): boolean {
    if (oldId === 0 && curId === 0) return true;
    if (oldId === 0 || curId === 0) return false;
    const f = this.fwd.get(oldId);
    const b = this.back.get(curId);
    if (f === undefined && b === undefined) {
      this.fwd.set(oldId, curId);
      this.back.set(curId, oldId);
      return true;
    }
    return f === curId && b === oldId;
  }
}

function samePointerTarget(old: RegState, cur: RegState): boolean {
  return (
    old.type === cur.type &&
    old.maybeNull === cur.maybeNull &&
    old.rdonly === cur.rdonly &&
    old.ringbuf === cur.ringbuf &&
    old.trusted === cur.trusted &&
    old.untrusted === cur.untrusted &&
    old.percpu === cur.percpu &&
    old.off === cur.off &&
    old.map === cur.map &&
    old.memSize === cur.memSize &&
    old.btfId === cur.btfId &&
    old.frameno === cur.frameno &&
    old.subprog === cur.subprog
  );
}

/** regsafe: may cur stand where old was verified? exact asks for identical states. */
function regsafe(old: RegState, cur: RegState, ids: IdMap, exact: boolean): boolean {
  if (old.type === 'not_init') return exact ? cur.type === 'not_init' : true;
  if (old.type !== cur.type) return false;
  if (old.type === 'scalar') {
    const ranges = exact ? rangeEqual(old, cur) : rangeWithin(old, cur);
    // Scalars old verified as linked copies must still be linked (check_scalar_ids).
    return ranges && (old.id === 0 ? !exact || cur.id === 0 : ids.check(old.id, cur.id));
  }
  if (!samePointerTarget(old, cur)) return false;
  const ranges = exact ? rangeEqual(old, cur) : rangeWithin(old, cur);
  return ranges && ids.check(old.id, cur.id) && ids.check(old.refObjId, cur.refObjId);
}

function stacksafe(old: FuncState, cur: FuncState, ids: IdMap, exact: boolean): boolean {
  const n = Math.max(old.stack.length, cur.stack.length);
  for (let spi = 0; spi < n; spi++) {
    const o = old.stack[spi];
    const c = cur.stack[spi];
    if (o === undefined) {
      if (exact && c !== undefined && c.kinds.some((k) => k !== STACK_INVALID)) return false;
      continue;
    }
    if (o.isSpill()) {
      if (c === undefined || !c.isSpill()) return false;
      if (!regsafe(o.spilled as RegState, c.spilled as RegState, ids, exact)) return false;
      continue;
    }
    for (let b = 0; b < 8; b++) {
      const ok = o.kinds[b] as number;
      const ck = c === undefined ? STACK_INVALID : (c.kinds[b] as number);
      if (exact) {
        if (ok !== ck) return false;
        continue;
      }
      // A byte old never initialised was never read on any path from old.
      if (ok === STACK_INVALID) continue;
      if (ok === STACK_MISC && ck !== STACK_INVALID) continue;
      if (ok === STACK_ZERO && ck === STACK_ZERO) continue;
      return false;
    }
  }
  return true;
}

/**
 * states_equal: is every concrete state cur describes also described by old (or, exact, the
 * same)? liveIn gives, per frame, the registers that may still be read there.
 */
export function statesEqual(
  old: VerifierState,
  cur: VerifierState,
  liveIn: readonly number[],
  exact: boolean,
  preciseIn: readonly number[] = liveIn,
): boolean {
  if (old.frames.length !== cur.frames.length) return false;
  if (old.refs.length !== cur.refs.length) return false;
  const ids = new IdMap();
  for (let f = 0; f < old.frames.length; f++) {
    const o = old.frames[f] as FuncState;
    const c = cur.frames[f] as FuncState;
    if (o.callsite !== c.callsite) return false;
    const live = liveIn[f] as number;
    const precise = preciseIn[f] as number;
    for (let r = 0; r < 10; r++) {
      if (!exact && (live & (1 << r)) === 0) continue;
      const or = o.regs[r] as RegState;
      const cr = c.regs[r] as RegState;
      // A scalar whose value reaches no safety decision matches any scalar.
      if (!exact && (precise & (1 << r)) === 0 && or.type === 'scalar') {
        if (cr.type !== 'scalar') return false;
        continue;
      }
      if (!regsafe(or, cr, ids, exact)) return false;
    }
    if (!stacksafe(o, c, ids, exact)) return false;
  }
  for (let k = 0; k < old.refs.length; k++) {
    if (!ids.check((old.refs[k] as RefState).id, (cur.refs[k] as RefState).id)) return false;
  }
  return true;
}

/** maybe_widen_reg: a scalar that changed since old and is not precise becomes unknown. */
function maybeWiden(old: RegState, cur: RegState, precise: boolean): void {
  if (old.type !== 'scalar' || cur.type !== 'scalar' || precise || rangeEqual(old, cur)) return;
  markUnknown(cur);
}

/**
 * widen_imprecise_scalars: cur re-enters a loop (a callback's next run) that old entered before;
 * scalars of the frames both share that changed between the two and are not precise become
 * unknown, so a counter the loop only accumulates stops telling the runs apart. preciseIn gives
 * the precise registers per frame; spilled scalars have no precision marks of their own here, so
 * every spilled scalar that changed is widened.
 */
export function widenImpreciseScalars(
  old: VerifierState,
  cur: VerifierState,
  preciseIn: readonly number[],
): void {
  for (let f = 0; f < cur.frames.length; f++) {
    const o = old.frames[f] as FuncState;
    const c = cur.frames[f] as FuncState;
    const precise = preciseIn[f] as number;
    for (let r = 0; r < 10; r++) {
      maybeWiden(o.regs[r] as RegState, c.regs[r] as RegState, (precise & (1 << r)) !== 0);
    }
    const n = Math.min(o.stack.length, c.stack.length);
    for (let spi = 0; spi < n; spi++) {
      const os = o.stack[spi] as StackSlot;
      const cs = c.stack[spi] as StackSlot;
      if (os.isSpill() && cs.isSpill()) {
        maybeWiden(os.spilled as RegState, cs.spilled as RegState, false);
      }
    }
  }
}

/** Clears caller-saved registers r1-r5 (after a call). */
export function clobberCallerSaved(f: FuncState): void {
  for (let r = 1; r <= 5; r++) markNotInit(f.regs[r] as RegState);
}
