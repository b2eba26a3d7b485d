import {
  BPF_CALL,
  BPF_EXIT,
  BPF_JA,
  BPF_JMP,
  BPF_JMP32,
  BPF_LD,
  BPF_PSEUDO_CALL,
  BPF_PSEUDO_FUNC,
  BPF_X,
  type Insn,
  cls,
  isLddw,
  op,
  srcBit,
} from '@tracelab/vm';

/** A control-flow rejection: the kernel's message and the instruction it names. */
export interface CfgError {
  insn: number;
  message: string;
}

/** What check_subprogs and check_cfg learn about a program. */
export interface Cfg {
  /** Start index of each subprogram, ascending; subprogs[0] is 0. */
  subprogs: number[];
  /** Instructions where exploration stores a state for pruning (prune points). */
  prunePoint: Uint8Array;
  /** Second slots of lddw (not instructions of their own). */
  lddwHalf: Uint8Array;
  /** Registers r0-r9 live on entry to each instruction, one bit each. */
  liveIn: Uint16Array;
  /**
   * Registers whose scalar value may still reach a safety decision (a branch, an address, a
   * helper argument, a stored value, the return value): the static stand-in for precision marks.
   */
  preciseIn: Uint16Array;
}

function isJmp(i: Insn): boolean {
  const c = cls(i.code);
  return c === BPF_JMP || c === BPF_JMP32;
}

function isCall(i: Insn): boolean {
  return isJmp(i) && op(i.code) === BPF_CALL;
}

function isExit(i: Insn): boolean {
  return isJmp(i) && op(i.code) === BPF_EXIT;
}

function isLocalCall(i: Insn): boolean {
  return isCall(i) && i.src === BPF_PSEUDO_CALL && srcBit(i.code) !== BPF_X;
}

function isJa(i: Insn): boolean {
  return isJmp(i) && op(i.code) === BPF_JA;
}

/** Target of a goto/conditional jump at k, or null. */
function jumpTarget(i: Insn, k: number): number | null {
  if (!isJmp(i) || isCall(i) || isExit(i)) return null;
  if (op(i.code) === BPF_JA && cls(i.code) === BPF_JMP32) return k + 1 + i.imm;
  return k + 1 + i.off;
}

/** Successors of k in the intraprocedural flow graph (a local call falls through). */
function successors(insns: readonly Insn[], k: number): number[] {
  const i = insns[k] as Insn;
  if (isExit(i)) return [];
  const t = jumpTarget(i, k);
  const next = k + (isLddw(i) ? 2 : 1);
  if (t === null) return [next];
  if (isJa(i)) return [t];
  return t === next ? [next] : [next, t];
}

/**
 * check_subprogs + check_cfg: subprogram boundaries, jumps within their subprogram, last
 * instruction exit or goto, every instruction reachable, no back-edges unless loops are allowed.
 */
export function checkCfg(insns: readonly Insn[], allowLoops: boolean): Cfg | CfgError {
  const n = insns.length;
  const lddwHalf = new Uint8Array(n);
  const starts = new Set<number>([0]);
  for (let k = 0; k < n; k++) {
    if (lddwHalf[k]) continue;
    const i = insns[k] as Insn;
    if (isLddw(i)) {
      if (k + 1 < n) lddwHalf[k + 1] = 1;
      if (i.src === BPF_PSEUDO_FUNC) starts.add(k + 1 + i.imm);
    }
    if (isLocalCall(i)) {
      const t = k + 1 + i.imm;
      if (t < 0 || t >= n) return { insn: k, message: 'call to invalid destination' };
      starts.add(t);
    }
  }
  for (const s of starts) {
    if (s < 0 || s >= n) return { insn: 0, message: 'call to invalid destination' };
  }
  const subprogs = [...starts].sort((a, b) => a - b);
  for (let s = 0; s < subprogs.length; s++) {
    const lo = subprogs[s] as number;
    const hi = s + 1 < subprogs.length ? (subprogs[s + 1] as number) : n;
    for (let k = lo; k < hi; k++) {
      if (lddwHalf[k]) continue;
      const i = insns[k] as Insn;
      const t = jumpTarget(i, k);
      if (t !== null && (t < lo || t >= hi)) {
        return { insn: k, message: `jump out of range from insn ${k} to ${t}` };
      }
    }
    const last = insns[hi - 1] as Insn;
    if (lddwHalf[hi - 1] || !(isExit(last) || isJa(last))) {
      return { insn: hi - 1, message: 'last insn is not an exit or jmp' };
    }
  }
  const prunePoint = new Uint8Array(n);
  // Iterative DFS (check_cfg): 0 unseen, 1 on the stack (discovered), 2 explored.
  const state = new Uint8Array(n);
  const stack: number[] = [0];
  const nextSucc: number[] = [0];
  state[0] = 1;
  while (stack.length > 0) {
    const k = stack[stack.length - 1] as number;
    const i = insns[k] as Insn;
    const succ = successors(insns, k);
    if (isLocalCall(i)) succ.push(k + 1 + i.imm);
    if (isLddw(i) && i.src === BPF_PSEUDO_FUNC) succ.push(k + 1 + i.imm);
    const at = nextSucc[nextSucc.length - 1] as number;
    if (at >= succ.length) {
      state[k] = 2;
      stack.pop();
      nextSucc.pop();
      continue;
    }
    nextSucc[nextSucc.length - 1] = at + 1;
    const t = succ[at] as number;
    if (t >= n) return { insn: k, message: `jump out of range from insn ${k} to ${t}` };
    if (jumpTarget(i, k) !== null) {
      prunePoint[t] = 1;
      if (!isJa(i)) prunePoint[k + 1] = 1;
    }
    if (isCall(i)) prunePoint[k + 1] = 1;
    if (state[t] === 1) {
      if (!allowLoops && !isLocalCall(i)) {
        return { insn: k, message: `back-edge from insn ${k} to ${t}` };
      }
      prunePoint[t] = 1;
      continue;
    }
    if (state[t] === 2) continue;
    state[t] = 1;
    stack.push(t);
    nextSucc.push(0);
  }
  for (let k = 0; k < n; k++) {
    if (!lddwHalf[k] && state[k] === 0) return { insn: k, message: `unreachable insn ${k}` };
  }
  // Subprogram entries are where callback runs meet; states are kept there too.
  for (const s of subprogs) prunePoint[s] = 1;
  return {
    subprogs,
    prunePoint,
    lddwHalf,
    liveIn: liveness(insns, lddwHalf),
    preciseIn: precision(insns, lddwHalf),
  };
}

const ARGS = 0b111110; // r1-r5
const CALLER_SAVED = 0b111111; // r0-r5

/** Registers an instruction reads (use) and writes (def), as r0-r9 bit masks. */
function useDef(i: Insn): [number, number] {
  const c = cls(i.code);
  const d = 1 << i.dst;
  const s = i.src <= 9 ? 1 << i.src : 0;
  const dd = i.dst <= 9 ? d : 0;
  switch (c) {
    case 0x04:
    case 0x07: {
      const o = op(i.code);
      const x = srcBit(i.code) === BPF_X;
      if (o === 0xb0) return [x ? s : 0, dd];
      return [dd | (x ? s : 0), dd];
    }
    case 0x01:
      return [s, dd];
    case 0x02:
      return [dd, 0];
    case 0x03: {
      if ((i.code & 0xe0) === 0xc0) {
        if (i.imm === 0xf1) return [dd | s | 1, 1];
        return [dd | s, (i.imm & 1) !== 0 ? s : 0];
      }
      return [dd | s, 0];
    }
    case BPF_LD:
      if (isLddw(i)) return [0, dd];
      return [(1 << 6) | ((i.code & 0xe0) === 0x40 ? s : 0), CALLER_SAVED];
    default: {
      if (isExit(i)) return [1, 0];
      if (isCall(i)) return [ARGS, CALLER_SAVED];
      if (isJa(i)) return [0, 0];
      return [dd | (srcBit(i.code) === BPF_X ? s : 0), 0];
    }
  }
}

/** Backward may-liveness of r0-r9 to a fixed point; over-approximation is what is safe here. */
function liveness(insns: readonly Insn[], lddwHalf: Uint8Array): Uint16Array {
  const n = insns.length;
  const live = new Uint16Array(n);
  const ud = insns.map((i) => useDef(i));
  let changed = true;
  while (changed) {
    changed = false;
    for (let k = n - 1; k >= 0; k--) {
      if (lddwHalf[k]) continue;
      let out = 0;
      for (const t of successors(insns, k)) if (t < n) out |= live[t] as number;
      const [use, def] = ud[k] as [number, number];
      const inn = use | (out & ~def);
      if (inn !== live[k]) {
        live[k] = inn;
        changed = true;
      }
    }
  }
  return live;
}

/** Registers an instruction uses where their value matters (sinks), uses only to compute its
 * result (data), and defines. */
function sinkDataDef(i: Insn): [number, number, number] {
  const c = cls(i.code);
  const d = i.dst <= 9 ? 1 << i.dst : 0;
  const s = i.src <= 9 ? 1 << i.src : 0;
  switch (c) {
    case 0x04:
    case 0x07: {
      const o = op(i.code);
      const x = srcBit(i.code) === BPF_X;
      if (o === 0xb0) return [0, x ? s : 0, d];
      return [0, d | (x ? s : 0), d];
    }
    case 0x01:
      return [s, 0, d];
    case 0x02:
      return [d, 0, 0];
    case 0x03:
      if ((i.code & 0xe0) === 0xc0) {
        if (i.imm === 0xf1) return [d | s | 1, 0, 1];
        return [d | s, 0, (i.imm & 1) !== 0 ? s : 0];
      }
      return [d | s, 0, 0];
    case BPF_LD:
      if (isLddw(i)) return [0, 0, d];
      return [(1 << 6) | ((i.code & 0xe0) === 0x40 ? s : 0), 0, CALLER_SAVED];
    default:
      if (isExit(i)) return [1, 0, 0];
      if (isCall(i)) return [ARGS, 0, CALLER_SAVED];
      if (isJa(i)) return [0, 0, 0];
      return [d | (srcBit(i.code) === BPF_X ? s : 0), 0, 0];
  }
}

/** Backward "needed" analysis: a value is needed at a sink, or to compute a needed value. */
function precision(insns: readonly Insn[], lddwHalf: Uint8Array): Uint16Array {
  const n = insns.length;
  const need = new Uint16Array(n);
  const sdd = insns.map((i) => sinkDataDef(i));
  let changed = true;
  while (changed) {
    changed = false;
    for (let k = n - 1; k >= 0; k--) {
      if (lddwHalf[k]) continue;
      let out = 0;
      for (const t of successors(insns, k)) if (t < n) out |= need[t] as number;
      const [sink, data, def] = sdd[k] as [number, number, number];
      const inn = sink | (out & ~def) | ((out & def) !== 0 ? data : 0);
      if (inn !== need[k]) {
        need[k] = inn;
        changed = true;
      }
    }
  }
  return need;
}
