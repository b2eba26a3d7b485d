import type { ArchName } from '@tracelab/arch-isa';
import type { Btf, BtfFuncProto, BtfType } from '@tracelab/btf';
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
  BPF_PSEUDO_BTF_ID,
  BPF_PSEUDO_CALL,
  BPF_PSEUDO_FUNC,
  BPF_PSEUDO_KFUNC_CALL,
  BPF_ST,
  BPF_STX,
  BPF_TO_BE,
  BPF_X,
  type Insn,
  checkInsn,
  cls,
  isLddw,
  mode,
  op,
  size,
  sizeBytes,
  srcBit,
} from '@tracelab/vm';
import { type Cfg, checkCfg } from './cfg.js';
import {
  type AttachType,
  type CtxEnv,
  type ProgType,
  btfPtrReg,
  btfStructAccess,
  ctxAccess,
} from './ctx.js';
import { type ArgType, type FuncProto, HELPERS, hasTrampoline, helperAllowed } from './helpers.js';
import { type KfuncFlags, kfuncFlags } from './kfuncs.js';
import { ALU_STR, frameStr, helperName, insnStr } from './log.js';
import {
  type MapDef,
  RegState,
  S64_MAX,
  S64_MIN,
  boundsEmpty,
  coerceToSize,
  markKnown,
  markNotInit,
  markUnknown,
  regBoundsSync,
  regTypeStr,
  scalarAlu,
  scalarConst,
  scalarOfSize,
  scalarUnknown,
  signExtend,
  zext32,
} from './regs.js';
import {
  type Explored,
  FuncState,
  STACK_INVALID,
  STACK_MISC,
  STACK_SPILL,
  STACK_ZERO,
  VerifierState,
  clobberCallerSaved,
  statesEqual,
  widenImpreciseScalars,
} from './state.js';
import {
  U32_MAX,
  U64_MAX,
  tnumAnd,
  tnumConst,
  tnumIntersect,
  tnumIsConst,
  tnumOr,
  tnumStr,
  tnumSubreg,
  tnumWithSubreg,
} from './tnum.js';

/** BPF_COMPLEXITY_LIMIT_INSNS. */
export const BPF_COMPLEXITY_LIMIT_INSNS = 1_000_000;
export const MAX_BPF_STACK = 512;
export const MAX_CALL_FRAMES = 8;
const BPF_MAX_VAR_OFF = 1n << 29n;
const BPF_MAX_VAR_SIZ = 1n << 29n;

/** Errno values a verification can fail with (the kernel's numbers). */
export const VERIFIER_ERRNO = {
  ENOENT: 2,
  EACCES: 13,
  EINVAL: 22,
  E2BIG: 7,
  EFAULT: 14,
  ENOTSUPP: 524,
};
export type VerifierErrno = keyof typeof VERIFIER_ERRNO;

/** How to verify a program: its type, attach target, maps and log. */
export interface VerifyOptions {
  progType: ProgType;
  /** fentry/fexit/fmod_ret/raw_tp (tp_btf) for tracing programs. */
  attachType?: AttachType;
  /** Kernel BTF for tracing programs' typed context and BTF pointer walks. */
  btf?: Btf;
  /** The traced function's name (tracing programs), looked up in btf. */
  attachTarget?: string;
  arch?: ArchName;
  /** Maps referenced by lddw map_fd / map_value / map_idx, keyed by fd or index. */
  maps?: ReadonlyMap<number, MapDef>;
  /** 0 none, 1 instructions and branch states, 2 state at every instruction. */
  logLevel?: 0 | 1 | 2;
  /** Bounded loops (back-edges) are allowed, as for a CAP_BPF loader. Default true. */
  allowLoops?: boolean;
  /** Processed-instruction budget; default BPF_COMPLEXITY_LIMIT_INSNS. */
  insnLimit?: number;
  /**
   * The program's line_info (BPF_PROG_LOAD's line_info with the strings resolved): the log
   * names the source line before its first instruction, and a rejection names its line.
   */
  lineInfo?: readonly SourceLine[];
}

/** One line_info record: the source line that starts at an instruction (struct bpf_line_info). */
export interface SourceLine {
  /** Index of the first instruction of the line. */
  insnOff: number;
  fileName: string;
  /** The line's source text. */
  line: string;
  lineNum: number;
  lineCol: number;
}

/** verbose_linfo's text: the trimmed source line and where it is, "text @ file.c:12". */
export function sourceLineStr(li: SourceLine): string {
  const slash = li.fileName.lastIndexOf('/');
  return `${li.line.trimStart()} @ ${li.fileName.slice(slash + 1)}:${li.lineNum}`;
}

function sortedLineInfo(lineInfo: readonly SourceLine[] | undefined): SourceLine[] {
  return [...(lineInfo ?? [])].sort((a, b) => a.insnOff - b.insnOff);
}

/** find_linfo: the line_info record covering insn (the last one starting at or before it). */
function findLinfo(lineInfo: readonly SourceLine[], insn: number): SourceLine | null {
  let lo = 0;
  let hi = lineInfo.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((lineInfo[mid] as SourceLine).insnOff <= insn) lo = mid + 1;
    else hi = mid;
  }
  return lo === 0 ? null : (lineInfo[lo - 1] as SourceLine);
}

/** What the verifier measured (the kernel's "processed ... insns" line and more). */
export interface VerifyStats {
  processedInsns: number;
  totalStates: number;
  peakStates: number;
  maxStatesPerInsn: number;
  /** Stack depth of each subprogram, bytes. */
  stackDepth: number[];
  timeUs: number;
}

export interface VerifyResult {
  ok: boolean;
  /** 0, or the positive errno of the rejection (EACCES 13, EINVAL 22, E2BIG 7, ...). */
  errno: number;
  errnoName: VerifierErrno | null;
  /**
   * The first message of the rejection, the instruction it names and, with line_info, that
   * instruction's source line.
   */
  error: { insn: number; message: string; source: SourceLine | null } | null;
  log: string;
  stats: VerifyStats;
}

/** A rejection, thrown inside the verifier and turned into a VerifyResult. */
class Reject {
  constructor(
    readonly insn: number,
    readonly message: string,
    readonly errno: VerifierErrno,
  ) {}
}

type Rel =
  'eq' | 'ne' | 'ugt' | 'uge' | 'ult' | 'ule' | 'sgt' | 'sge' | 'slt' | 'sle' | 'set' | 'nset';

const JMP_REL: Record<number, Rel> = {
  0x10: 'eq',
  0x20: 'ugt',
  0x30: 'uge',
  0x40: 'set',
  0x50: 'ne',
  0x60: 'sgt',
  0x70: 'sge',
  0xa0: 'ult',
  0xb0: 'ule',
  0xc0: 'slt',
  0xd0: 'sle',
};
const NEGATE: Record<Rel, Rel> = {
  eq: 'ne',
  ne: 'eq',
  ugt: 'ule',
  uge: 'ult',
  ult: 'uge',
  ule: 'ugt',
  sgt: 'sle',
  sge: 'slt',
  slt: 'sge',
  sle: 'sgt',
  set: 'nset',
  nset: 'set',
};
const ALU_NAME: Record<number, string> = {
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
  0xc0: 'arsh',
};

/** BPF_MAP_TYPE_* numbers for messages. */
const MAP_TYPE_NUM: Record<MapDef['type'], number> = {
  hash: 1,
  array: 2,
  prog_array: 3,
  perf_event_array: 4,
  percpu_hash: 5,
  percpu_array: 6,
  stack_trace: 7,
  lru_hash: 9,
  array_of_maps: 12,
  hash_of_maps: 13,
  ringbuf: 27,
};

/** The struct behind each map type's struct bpf_map (its ops' map_btf_id). */
const MAP_STRUCT: Record<MapDef['type'], string> = {
  hash: 'bpf_htab',
  array: 'bpf_array',
  prog_array: 'bpf_array',
  perf_event_array: 'bpf_array',
  percpu_hash: 'bpf_htab',
  percpu_array: 'bpf_array',
  stack_trace: 'bpf_stack_map',
  lru_hash: 'bpf_htab',
  array_of_maps: 'bpf_array',
  hash_of_maps: 'bpf_htab',
  ringbuf: 'bpf_ringbuf_map',
};

/**
 * Helpers a map of a special type may be passed to (check_map_func_compatibility, map side);
 * other map types go to any helper that takes a map.
 */
const MAP_HELPERS: Partial<Record<MapDef['type'], readonly string[]>> = {
  prog_array: ['tail_call'],
  perf_event_array: ['perf_event_output'],
  ringbuf: ['ringbuf_output', 'ringbuf_reserve', 'ringbuf_query'],
  stack_trace: ['get_stackid'],
  array_of_maps: ['map_lookup_elem'],
  hash_of_maps: ['map_lookup_elem'],
};

/** Map types a helper needs (check_map_func_compatibility, helper side). */
const HELPER_MAPS: Readonly<Record<string, readonly MapDef['type'][]>> = {
  tail_call: ['prog_array'],
  get_stackid: ['stack_trace'],
  perf_event_output: ['perf_event_array'],
  ringbuf_output: ['ringbuf'],
  ringbuf_reserve: ['ringbuf'],
  ringbuf_query: ['ringbuf'],
};

const maxB = (a: bigint, b: bigint): bigint => (a > b ? a : b);
const minB = (a: bigint, b: bigint): bigint => (a < b ? a : b);

interface Pending {
  state: VerifierState;
  insn: number;
  from: number;
  /** Re-entry of a bpf_loop callback: may prune against states still being explored. */
  callback: boolean;
}

/** Refines a and b (at 32 or 64 bits) with the fact `a rel b`. */
function refine(a: RegState, b: RegState, rel: Rel, is32: boolean): void {
  const lo = (r: RegState): [bigint, bigint, bigint, bigint] =>
    is32 ? [r.u32min, r.u32max, r.s32min, r.s32max] : [r.umin, r.umax, r.smin, r.smax];
  const set = (r: RegState, v: [bigint, bigint, bigint, bigint]): void => {
    if (is32) [r.u32min, r.u32max, r.s32min, r.s32max] = v;
    else [r.umin, r.umax, r.smin, r.smax] = v;
  };
  const [aumin, aumax, asmin, asmax] = lo(a);
  const [bumin, bumax, bsmin, bsmax] = lo(b);
  switch (rel) {
    case 'eq': {
      const v: [bigint, bigint, bigint, bigint] = [
        maxB(aumin, bumin),
        minB(aumax, bumax),
        maxB(asmin, bsmin),
        minB(asmax, bsmax),
      ];
      set(a, v);
      set(b, [...v]);
      if (is32) {
        const t = tnumIntersect(tnumSubreg(a.varOff), tnumSubreg(b.varOff));
        a.varOff = tnumWithSubreg(a.varOff, t);
        b.varOff = tnumWithSubreg(b.varOff, t);
      } else {
        const t = tnumIntersect(a.varOff, b.varOff);
        a.varOff = t;
        b.varOff = t;
      }
      break;
    }
    case 'ne': {
      // Only a known value at the edge of the other's range narrows it.
      for (const [x, y] of [
        [a, b],
        [b, a],
      ] as const) {
        const yv = lo(y);
        if (yv[0] !== yv[1]) continue;
        const k = yv[0];
        const ks = yv[2];
        const xv = lo(x);
        if (xv[0] === k) xv[0] += 1n;
        if (xv[1] === k) xv[1] -= 1n;
        if (xv[2] === ks) xv[2] += 1n;
        if (xv[3] === ks) xv[3] -= 1n;
        set(x, xv);
      }
      break;
    }
    case 'ule':
    case 'ult': {
      const d = rel === 'ult' ? 1n : 0n;
      set(a, [aumin, minB(aumax, bumax - d), asmin, asmax]);
      set(b, [maxB(bumin, aumin + d), bumax, bsmin, bsmax]);
      break;
    }
    case 'uge':
    case 'ugt':
      refine(b, a, rel === 'ugt' ? 'ult' : 'ule', is32);
      return;
    case 'sle':
    case 'slt': {
      const d = rel === 'slt' ? 1n : 0n;
      set(a, [aumin, aumax, asmin, minB(asmax, bsmax - d)]);
      set(b, [bumin, bumax, maxB(bsmin, asmin + d), bsmax]);
      break;
    }
    case 'sge':
    case 'sgt':
      refine(b, a, rel === 'sgt' ? 'slt' : 'sle', is32);
      return;
    case 'set':
    case 'nset': {
      if (!tnumIsConst(is32 ? tnumSubreg(b.varOff) : b.varOff)) break;
      const v = is32 ? b.varOff.value & U32_MAX : b.varOff.value;
      if (rel === 'nset') {
        a.varOff = tnumAnd(a.varOff, tnumConst(~v & U64_MAX));
      } else if (v !== 0n && (v & (v - 1n)) === 0n) {
        a.varOff = tnumOr(a.varOff, tnumConst(v));
      }
      break;
    }
  }
  regBoundsSync(a);
  regBoundsSync(b);
}

/** `x rel y` for known values (unsigned bit patterns of the given width). */
function holds(x: bigint, y: bigint, rel: Rel, bits: 32 | 64): boolean {
  const sx = BigInt.asIntN(bits, x);
  const sy = BigInt.asIntN(bits, y);
  switch (rel) {
    case 'eq':
      return x === y;
    case 'ne':
      return x !== y;
    case 'ugt':
      return x > y;
    case 'uge':
      return x >= y;
    case 'ult':
      return x < y;
    case 'ule':
      return x <= y;
    case 'sgt':
      return sx > sy;
    case 'sge':
      return sx >= sy;
    case 'slt':
      return sx < sy;
    case 'sle':
      return sx <= sy;
    case 'set':
      return (x & y) !== 0n;
    case 'nset':
      return (x & y) === 0n;
  }
}

/** Can `a rel b` hold for some values? (JSET uses the known bits.) */
function mayHold(a: RegState, b: RegState, rel: Rel, is32: boolean): boolean {
  const bt = is32 ? tnumSubreg(b.varOff) : b.varOff;
  const at = is32 ? tnumSubreg(a.varOff) : a.varOff;
  if (tnumIsConst(at) && tnumIsConst(bt)) return holds(at.value, bt.value, rel, is32 ? 32 : 64);
  if (rel === 'set' && tnumIsConst(bt)) return ((at.value | at.mask) & bt.value) !== 0n;
  if (rel === 'nset' && tnumIsConst(bt)) return (at.value & bt.value) === 0n;
  const x = a.clone();
  const y = b.clone();
  refine(x, y, rel, is32);
  return !boundsEmpty(x) && !boundsEmpty(y);
}

/**
 * check_stack_access_within_bounds: a lowest byte outside the 512-byte frame is EACCES
 * (check_stack_slot_within_bounds), an access that starts inside and runs past fp is EINVAL.
 */
function stackBoundsErrno(minOff: number): VerifierErrno {
  return minOff < -MAX_BPF_STACK || minOff > -1 ? 'EACCES' : 'EINVAL';
}

/** One verification run (struct bpf_verifier_env). */
class Env {
  readonly lines: string[] = [];
  readonly level: number;
  readonly explored = new Map<number, Explored[]>();
  readonly pending: Pending[] = [];
  readonly stackDepth: number[];
  readonly ctxEnv: CtxEnv;
  readonly limit: number;
  processed = 0;
  totalStates = 0;
  liveStates = 0;
  peakStates = 0;
  maxStatesPerInsn = 0;
  private nextId = 0;
  insn = 0;
  /** The path being explored re-enters a callback (see Pending.callback). */
  callbackEntry = false;
  /** line_info sorted by instruction, and the record the log named last (prev_linfo). */
  readonly lineInfo: readonly SourceLine[];
  private prevLinfo: SourceLine | null = null;

  constructor(
    readonly insns: readonly Insn[],
    readonly cfg: Cfg,
    readonly opts: VerifyOptions,
    proto: BtfFuncProto | undefined,
    /** What each ld_imm64 src 3 loads, by instruction (pseudoBtfIdRegs). */
    readonly ksyms: ReadonlyMap<number, RegState>,
  ) {
    this.level = opts.logLevel ?? 0;
    this.stackDepth = cfg.subprogs.map(() => 0);
    this.limit = opts.insnLimit ?? BPF_COMPLEXITY_LIMIT_INSNS;
    this.lineInfo = sortedLineInfo(opts.lineInfo);
    this.ctxEnv = {
      progType: opts.progType,
      arch: opts.arch ?? 'x86_64',
      attachType: opts.attachType,
      btf: opts.btf,
      proto,
      attachName: opts.attachTarget ?? '',
    };
  }

  verbose(line: string): void {
    if (this.level > 0) this.lines.push(line);
  }

  reject(message: string, errno: VerifierErrno = 'EACCES'): never {
    throw new Reject(this.insn, message, errno);
  }

  newId(): number {
    return ++this.nextId;
  }

  subprogOf(insn: number): number {
    const s = this.cfg.subprogs;
    let k = 0;
    while (k + 1 < s.length && (s[k + 1] as number) <= insn) k++;
    return k;
  }

  stateStr(st: VerifierState): string {
    return st.frames.map((f) => frameStr(f, st.frames.length - 1)).join(' ');
  }

  /** Liveness per frame at insn: the current frame at insn, callers after their call site. */
  liveFrames(st: VerifierState, insn: number, sets: Uint16Array = this.cfg.liveIn): number[] {
    return st.frames.map((f, k) => {
      if (k === st.frames.length - 1) return sets[insn] as number;
      const ret = (st.frames[k + 1] as FuncState).callsite + 1;
      return ((sets[ret] as number) & ~0x3f) | 0;
    });
  }

  run(): void {
    const frame = new FuncState(0, 0, -1);
    const r1 = frame.regs[1] as RegState;
    r1.type = 'ctx';
    markKnown(r1, 0n);
    r1.type = 'ctx';
    const fp = frame.regs[10] as RegState;
    fp.type = 'stack';
    markKnown(fp, 0n);
    fp.type = 'stack';
    let cur: VerifierState | null = new VerifierState([frame]);
    let idx = 0;
    let printState = false;
    while (cur !== null) {
      this.insn = idx;
      if (++this.processed > this.limit) {
        this.reject(`BPF program is too large. Processed ${this.processed} insn`, 'E2BIG');
      }
      if (this.cfg.prunePoint[idx] && this.isStateVisited(cur, idx)) {
        if (this.level > 0) this.verbose(`${idx}: safe`);
        this.finishPath(cur);
        [cur, idx, printState] = this.pop();
        continue;
      }
      if (printState && this.level > 0) this.verbose(`${idx}: ${this.stateStr(cur)}`);
      printState = false;
      const insn = this.insns[idx] as Insn;
      if (this.level > 0) this.verboseLinfo(idx);
      let next: number;
      try {
        next = this.step(cur, insn, idx);
      } catch (e) {
        // The log shows the instruction that failed, then the message (as do_check prints).
        if (this.level > 0) this.verbose(`${idx}: ${insnStr(insn)}`);
        throw e;
      }
      if (this.level > 0) {
        const text = `${idx}: ${insnStr(insn)}`;
        this.verbose(this.level > 1 ? `${text.padEnd(40)}; ${this.stateStr(cur)}` : text);
      }
      if (next < 0) {
        this.finishPath(cur);
        [cur, idx, printState] = this.pop();
      } else {
        idx = next;
      }
    }
  }

  /** verbose_linfo: "; source line @ file:line" when insn starts a line the log has not named. */
  verboseLinfo(insn: number): void {
    const li = findLinfo(this.lineInfo, insn);
    if (li === null || li === this.prevLinfo) return;
    this.verbose(`; ${sourceLineStr(li)}`);
    this.prevLinfo = li;
  }

  pop(): [VerifierState | null, number, boolean] {
    const p = this.pending.pop();
    if (p === undefined) return [null, 0, false];
    if (this.level > 0) this.verbose(`from ${p.from} to ${p.insn}: ${this.stateStr(p.state)}`);
    this.callbackEntry = p.callback;
    return [p.state, p.insn, false];
  }

  /** update_branch_counts: this path is done; checkpoints with no live path are verified. */
  finishPath(st: VerifierState): void {
    let e = st.parent;
    while (e !== null) {
      e.branches--;
      if (e.branches > 0) break;
      e = e.parent;
    }
  }

  pushBranch(st: VerifierState, insn: number, from: number, callback = false): void {
    if (st.parent !== null) st.parent.branches++;
    this.pending.push({ state: st, insn, from, callback });
  }

  /** is_state_visited: prune against verified states, detect loops that repeat a state. */
  isStateVisited(cur: VerifierState, idx: number): boolean {
    const list = this.explored.get(idx) ?? [];
    const live = this.liveFrames(cur, idx);
    const precise = this.liveFrames(cur, idx, this.cfg.preciseIn);
    for (let k = 0; k < list.length; k++) {
      const e = list[k] as Explored;
      const old = e.state as VerifierState;
      if (e.branches > 0 && this.callbackEntry) {
        // Callback runs converge when one adds nothing new (the kernel's callback states).
        if (statesEqual(old, cur, live, false, precise)) {
          this.callbackEntry = false;
          return true;
        }
      } else if (e.branches > 0) {
        if (statesEqual(old, cur, live, true)) {
          this.reject(`infinite loop detected at insn ${idx}`, 'EINVAL');
        }
      } else if (statesEqual(old, cur, live, false, precise)) {
        e.hits++;
        return true;
      }
      // As the kernel does, forget states that keep missing so long loops stay linear.
      if (++e.misses > e.hits * 3 + 3) {
        list.splice(k, 1);
        e.state = null;
        this.liveStates--;
        k--;
      }
    }
    this.callbackEntry = false;
    const e: Explored = { state: cur.clone(), branches: 1, parent: cur.parent, hits: 0, misses: 0 };
    (e.state as VerifierState).parent = null;
    list.push(e);
    this.explored.set(idx, list);
    cur.parent = e;
    this.totalStates++;
    this.liveStates++;
    if (this.liveStates > this.peakStates) this.peakStates = this.liveStates;
    if (list.length > this.maxStatesPerInsn) this.maxStatesPerInsn = list.length;
    return false;
  }

  /**
   * find_prev_entry: the most recent state stored at insn that is still being explored and has
   * cur's frames plus one called from callsite (a callback run that is in progress).
   */
  findPrevEntry(cur: VerifierState, insn: number, callsite: number): VerifierState | null {
    const list = this.explored.get(insn) ?? [];
    for (let k = list.length - 1; k >= 0; k--) {
      const e = list[k] as Explored;
      const st = e.state;
      if (st === null || e.branches === 0 || st.frames.length !== cur.frames.length + 1) continue;
      if ((st.cur as FuncState).callsite !== callsite) continue;
      if (cur.frames.every((f, i) => (st.frames[i] as FuncState).callsite === f.callsite))
        return st;
    }
    return null;
  }

  reg(st: VerifierState, r: number): RegState {
    return st.cur.regs[r] as RegState;
  }

  /** check_reg_arg SRC_OP. */
  readReg(st: VerifierState, r: number): RegState {
    const reg = this.reg(st, r);
    if (reg.type === 'not_init') this.reject(`R${r} !read_ok`);
    return reg;
  }

  /** check_reg_arg DST_OP. */
  writeReg(st: VerifierState, r: number): RegState {
    if (r === 10) this.reject('frame pointer is read only');
    return this.reg(st, r);
  }

  /** do_check's body for one instruction; the next index, or -1 when the path ends. */
  step(st: VerifierState, insn: Insn, idx: number): number {
    const c = cls(insn.code);
    const bad = checkInsn(insn, this.insns[idx + 1]);
    if (bad !== null) {
      if (bad.startsWith('unknown opcode')) {
        this.reject(`unknown opcode ${insn.code.toString(16).padStart(2, '0')}`, 'EINVAL');
      }
      this.reject(bad, 'EINVAL');
    }
    switch (c) {
      case BPF_ALU:
      case BPF_ALU64:
        this.checkAlu(st, insn);
        return idx + 1;
      case BPF_LDX: {
        const src = this.readReg(st, insn.src);
        const dst = this.writeReg(st, insn.dst);
        const bytes = sizeBytes(size(insn.code));
        const val = this.checkMemAccess(st, insn.src, src, insn.off, bytes, 'read', null);
        dst.copyFrom(val);
        if (dst.type === 'scalar') {
          if (mode(insn.code) === BPF_MEMSX) signExtend(dst, bytes, false);
          else coerceToSize(dst, bytes);
        }
        return idx + 1;
      }
      case BPF_ST: {
        const dst = this.readReg(st, insn.dst);
        const v = scalarConst(BigInt(insn.imm));
        this.checkMemAccess(st, insn.dst, dst, insn.off, sizeBytes(size(insn.code)), 'write', v);
        return idx + 1;
      }
      case BPF_STX: {
        const src = this.readReg(st, insn.src);
        const dst = this.readReg(st, insn.dst);
        const bytes = sizeBytes(size(insn.code));
        if (mode(insn.code) === BPF_ATOMIC) {
          this.checkAtomic(st, insn, dst, src, bytes);
          return idx + 1;
        }
        this.checkMemAccess(st, insn.dst, dst, insn.off, bytes, 'write', src.clone());
        return idx + 1;
      }
      case BPF_LD:
        return this.checkLd(st, insn, idx);
      default:
        return this.checkJmp(st, insn, idx);
    }
  }

  checkLd(st: VerifierState, insn: Insn, idx: number): number {
    if (!isLddw(insn)) {
      // LD_ABS/LD_IND: legacy packet loads, socket filters only; r6 must hold the context.
      if (this.opts.progType !== 'socket_filter') {
        this.reject('BPF_LD_[ABS|IND] instructions not allowed for this program type', 'EINVAL');
      }
      const r6 = this.readReg(st, 6);
      if (r6.type !== 'ctx') this.reject('at the time of BPF_LD_ABS|IND R6 != pointer to skb');
      if (mode(insn.code) === 0x40) this.readReg(st, insn.src);
      clobberCallerSaved(st.cur);
      (this.reg(st, 0) as RegState).copyFrom(scalarOfSize(sizeBytes(size(insn.code))));
      return idx + 1;
    }
    const dst = this.writeReg(st, insn.dst);
    switch (insn.src) {
      case 0:
        dst.copyFrom(scalarConst((BigInt(insn.imm2 >>> 0) << 32n) | BigInt(insn.imm >>> 0)));
        break;
      case 1:
      case 5:
      case 2:
      case 6: {
        const map = this.opts.maps?.get(insn.imm);
        if (map === undefined)
          this.reject(`fd ${insn.imm} is not pointing to valid bpf_map`, 'EINVAL');
        const r = new RegState();
        markKnown(r, 0n);
        r.map = map;
        if (insn.src === 1 || insn.src === 5) {
          r.type = 'map_ptr';
        } else {
          if (insn.imm2 < 0 || insn.imm2 >= map.valueSize) {
            this.reject(
              `invalid access to map value pointer, value_size=${map.valueSize} off=${insn.imm2}`,
              'EINVAL',
            );
          }
          r.type = 'map_value';
          r.off = insn.imm2;
        }
        dst.copyFrom(r);
        break;
      }
      case BPF_PSEUDO_BTF_ID:
        dst.copyFrom(this.ksyms.get(idx) as RegState);
        break;
      case BPF_PSEUDO_FUNC: {
        const r = new RegState();
        markKnown(r, 0n);
        r.type = 'func';
        r.subprog = this.subprogOf(idx + 1 + insn.imm);
        dst.copyFrom(r);
        break;
      }
      default:
        this.reject(`unsupported lddw src ${insn.src} without BTF`, 'EINVAL');
    }
    return idx + 2;
  }

  checkAlu(st: VerifierState, insn: Insn): void {
    const o = op(insn.code);
    const is32 = cls(insn.code) === BPF_ALU;
    const isX = srcBit(insn.code) === BPF_X;
    if (o === BPF_END || o === BPF_NEG) {
      this.readReg(st, insn.dst);
      const dst = this.writeReg(st, insn.dst);
      if (dst.isPointer()) {
        markUnknown(dst);
        return;
      }
      if (o === BPF_NEG) {
        const zero = scalarConst(0n);
        scalarAlu(zero, dst, 'sub', is32);
        dst.copyFrom(zero);
        return;
      }
      if (!is32 || srcBit(insn.code) === BPF_TO_BE) {
        const bytes = insn.imm / 8;
        const r = scalarOfSize(bytes);
        dst.copyFrom(r);
      } else {
        coerceToSize(dst, insn.imm / 8);
        dst.id = 0;
      }
      return;
    }
    if (o === BPF_MOV) {
      const src = isX ? this.readReg(st, insn.src) : scalarConst(BigInt(insn.imm));
      const dst = this.writeReg(st, insn.dst);
      if (isX && insn.off !== 0) {
        const v = src.isPointer() ? scalarUnknown() : src.clone();
        v.id = 0;
        signExtend(v, insn.off / 8, is32);
        dst.copyFrom(v);
        return;
      }
      if (!is32) {
        // Copies of an unknown scalar share an id so a later bounds check refines all of them.
        if (isX && src.type === 'scalar' && src.id === 0 && !src.isConst()) src.id = this.newId();
        dst.copyFrom(src);
        if (!isX) markKnown(dst, BigInt(insn.imm));
        return;
      }
      const v = src.isPointer() ? scalarUnknown() : src.clone();
      v.id = 0;
      zext32(v);
      dst.copyFrom(v);
      return;
    }
    const dstIn = this.readReg(st, insn.dst);
    const src = isX ? this.readReg(st, insn.src) : scalarConst(BigInt(insn.imm));
    const dst = this.writeReg(st, insn.dst);
    const name = ALU_NAME[o] as string;
    if (dstIn.isPointer() || src.isPointer()) {
      this.ptrAlu(dst, src, insn, o, is32, name);
      return;
    }
    scalarAlu(dst, is32 ? src.clone() : src, name, is32);
    dst.id = 0;
  }

  /** adjust_ptr_min_max_vals and the pointer cases of adjust_reg_min_max_vals. */
  ptrAlu(dst: RegState, src: RegState, insn: Insn, o: number, is32: boolean, name: string): void {
    const d = insn.dst;
    if (dst.isPointer() && src.isPointer()) {
      if (name === 'sub' && !is32) {
        markUnknown(dst);
        return;
      }
      this.reject(`R${d} pointer ${ALU_STR[o] as string} pointer prohibited`);
    }
    if (!dst.isPointer()) {
      // scalar op pointer: only scalar += pointer keeps a pointer.
      if (name !== 'add' || is32) {
        if (name === 'sub') this.reject(`R${d} tried to subtract pointer from scalar`);
        markUnknown(dst);
        if (is32) zext32(dst);
        return;
      }
      const sc = dst.clone();
      dst.copyFrom(src);
      this.ptrAdd(dst, sc, d, false);
      return;
    }
    if (is32) this.reject(`R${d} 32-bit pointer arithmetic prohibited`);
    if (name === 'and' || name === 'or' || name === 'xor') {
      this.reject(`R${d} bitwise operator ${ALU_STR[o] as string} on pointer prohibited`);
    }
    if (name !== 'add' && name !== 'sub') {
      this.reject(`R${d} pointer arithmetic with ${ALU_STR[o] as string} operator prohibited`);
    }
    this.ptrAdd(dst, src, d, name === 'sub');
  }

  ptrAdd(ptr: RegState, sc: RegState, d: number, sub: boolean): void {
    const t = regTypeStr(ptr);
    if (ptr.maybeNull)
      this.reject(`R${d} pointer arithmetic on ${t} prohibited, null-check it first`);
    if (ptr.type === 'map_ptr' || ptr.type === 'func') {
      this.reject(`R${d} pointer arithmetic on ${t} prohibited`);
    }
    if (sc.isConst()) {
      const v = sc.constValue();
      if (v >= BPF_MAX_VAR_OFF || v <= -BPF_MAX_VAR_OFF) {
        this.reject(`${t} pointer offset ${v} is not allowed`);
      }
      const nOff = BigInt(ptr.off) + (sub ? -v : v);
      if (nOff >= BPF_MAX_VAR_OFF || nOff <= -BPF_MAX_VAR_OFF) {
        this.reject(`${t} pointer offset ${nOff} is not allowed`);
      }
      ptr.off = Number(nOff);
      return;
    }
    if (sc.smin === S64_MIN) {
      this.reject(`math between ${t} pointer and register with unbounded min value is not allowed`);
    }
    if (sc.smax === S64_MAX || sc.smin >= BPF_MAX_VAR_OFF || sc.smin <= -BPF_MAX_VAR_OFF) {
      if (sc.smax === S64_MAX) {
        this.reject(
          `math between ${t} pointer and register with unbounded max value is not allowed`,
        );
      }
      this.reject(`value ${sc.smin} makes ${t} pointer be out of bounds`);
    }
    const tmp = ptr.clone();
    tmp.type = 'scalar';
    scalarAlu(tmp, sc, sub ? 'sub' : 'add', false);
    const keep = ptr.clone();
    ptr.copyFrom(tmp);
    ptr.type = keep.type;
    ptr.off = keep.off;
    ptr.map = keep.map;
    ptr.memSize = keep.memSize;
    ptr.btfId = keep.btfId;
    ptr.btfName = keep.btfName;
    ptr.frameno = keep.frameno;
    ptr.rdonly = keep.rdonly;
    ptr.ringbuf = keep.ringbuf;
    ptr.trusted = keep.trusted;
    ptr.untrusted = keep.untrusted;
    ptr.percpu = keep.percpu;
    ptr.refObjId = keep.refObjId;
    ptr.id = keep.id;
  }

  /** Rejects a pointer whose offset is not fixed where the access needs one. */
  fixedOffset(reg: RegState, r: number, what: string): void {
    if (reg.off !== 0)
      this.reject(`dereference of modified ${what} ptr R${r} off=${reg.off} disallowed`);
    if (!tnumIsConst(reg.varOff) || reg.varOff.value !== 0n) {
      this.reject(`variable ${what} access var_off=${tnumStr(reg.varOff)} disallowed`);
    }
  }

  /**
   * check_mem_access: a load ('read', returns the loaded value's state) or store of `bytes` at
   * reg+off. value is the stored register (stores).
   */
  checkMemAccess(
    st: VerifierState,
    r: number,
    reg: RegState,
    off: number,
    bytes: number,
    kind: 'read' | 'write',
    value: RegState | null,
  ): RegState {
    const write = kind === 'write';
    if (reg.type === 'scalar' || reg.maybeNull || reg.type === 'func') {
      this.reject(`R${r} invalid mem access '${regTypeStr(reg)}'`);
    }
    switch (reg.type) {
      case 'map_ptr':
        return this.mapPtrAccess(r, reg.map as MapDef, off + reg.off, bytes, write);
      case 'ctx': {
        this.fixedOffset(reg, r, 'ctx');
        if (write && value !== null && value.isPointer()) {
          this.reject(`R${r} leaks addr into ctx`);
        }
        const res = ctxAccess(this.ctxEnv, off, bytes, write);
        if ('error' in res) this.reject(res.error);
        return res.reg;
      }
      case 'stack':
        return this.stackAccess(st, r, reg, off, bytes, write, value);
      case 'map_value':
      case 'map_key':
      case 'mem': {
        if (write && reg.rdonly) this.reject(`R${r} cannot write into ${regTypeStr(reg)}`);
        const m = reg.map as MapDef;
        const [limit, what] =
          reg.type === 'map_value'
            ? [m.valueSize, `map value, value_size=${m.valueSize}`]
            : reg.type === 'map_key'
              ? [m.keySize, `map key, key_size=${m.keySize}`]
              : [reg.memSize, `memory, mem_size=${reg.memSize}`];
        this.memRegionAccess(r, reg, off + reg.off, bytes, limit, what, false);
        return scalarOfSize(bytes);
      }
      case 'btf_id': {
        const btf = this.opts.btf as Btf;
        const total = reg.off + off;
        if (total < 0)
          this.reject(`R${r} is ptr_${reg.btfName} invalid negative access: off=${total}`);
        if (!tnumIsConst(reg.varOff)) {
          this.reject(
            `R${r} is ptr_${reg.btfName} invalid variable offset: off=${total}, var_off=${tnumStr(reg.varOff)}`,
          );
        }
        if (reg.percpu) {
          this.reject(`R${r} is ptr_${reg.btfName} access percpu memory: off=${total}`);
        }
        if (write) this.reject('only read is supported');
        const res = btfStructAccess(btf, reg.btfId, reg.btfName, total, bytes);
        if ('error' in res) this.reject(res.error);
        return res.reg;
      }
      default:
        this.reject(`R${r} invalid mem access '${regTypeStr(reg)}'`);
    }
  }

  /**
   * check_ptr_to_map_access: a struct bpf_map pointer reads as the map type's kernel struct
   * (bpf_array, bpf_htab...) in the kernel BTF; it is never written.
   */
  mapPtrAccess(r: number, map: MapDef, off: number, bytes: number, write: boolean): RegState {
    const btf = this.opts.btf;
    if (btf === undefined) {
      this.reject('map_ptr access not supported without CONFIG_DEBUG_INFO_BTF', 'ENOTSUPP');
    }
    const name = MAP_STRUCT[map.type];
    const id = btf.find(name, 'struct');
    // The kernel always has its map structs; a BTF without one cannot say what is read.
    if (id === undefined) {
      this.reject(
        `map_ptr access not supported for map type ${MAP_TYPE_NUM[map.type]}`,
        'ENOTSUPP',
      );
    }
    if (off < 0) this.reject(`R${r} is ${name} invalid negative access: off=${off}`);
    if (write) this.reject(`only read from ${name} is supported`);
    const res = btfStructAccess(btf, id, name, off, bytes);
    if ('error' in res) this.reject(res.error);
    return res.reg;
  }

  /** check_mem_region_access + __check_mem_access for map values, keys and mem. */
  memRegionAccess(
    r: number,
    reg: RegState,
    off: number,
    bytes: number,
    limit: number,
    what: string,
    zeroOk: boolean,
  ): void {
    const check = (o: bigint): boolean =>
      o >= 0n && BigInt(bytes) <= BigInt(limit) - o && (zeroOk || bytes > 0);
    const o = BigInt(off);
    if (reg.smin < 0n && (reg.smin === S64_MIN || reg.smin + o < 0n)) {
      this.reject(
        `R${r} min value is negative, either use unsigned index or do a if (index >=0) check.`,
      );
    }
    if (!check(reg.smin + o)) {
      this.verbose(`invalid access to ${what} off=${reg.smin + o} size=${bytes}`);
      this.reject(
        tnumIsConst(reg.varOff)
          ? `invalid access to ${what} off=${reg.smin + o} size=${bytes}`
          : `R${r} min value is outside of the allowed memory range`,
      );
    }
    if (reg.umax >= BPF_MAX_VAR_OFF) {
      this.reject(`R${r} unbounded memory access, make sure to bounds check any such access`);
    }
    if (!check(reg.umax + o)) {
      this.verbose(`invalid access to ${what} off=${reg.umax + o} size=${bytes}`);
      this.reject(`R${r} max value is outside of the allowed memory range`);
    }
  }

  frameOf(st: VerifierState, reg: RegState): FuncState {
    return st.frames[reg.frameno] as FuncState;
  }

  stackAccess(
    st: VerifierState,
    r: number,
    reg: RegState,
    off: number,
    bytes: number,
    write: boolean,
    value: RegState | null,
  ): RegState {
    const f = this.frameOf(st, reg);
    if (!tnumIsConst(reg.varOff)) return this.stackVarAccess(f, r, reg, off, bytes, write);
    const total = reg.off + off + Number(BigInt.asIntN(64, reg.varOff.value));
    if (total % bytes !== 0) {
      this.reject(
        `misaligned stack access off ${tnumStr(reg.varOff)}+${reg.off + off}+0 size ${bytes}`,
      );
    }
    if (total < -MAX_BPF_STACK || total + bytes > 0) {
      this.reject(
        `invalid ${write ? 'write to' : 'read from'} stack R${r} off=${reg.off + off} size=${bytes}`,
        stackBoundsErrno(total),
      );
    }
    this.growStack(f, -total);
    const spi = Math.floor((-total - 1) / 8);
    const slot = f.slot(spi);
    const first = total + (spi + 1) * 8; // byte index in slot (0 = lowest address)
    if (write) {
      const v = value as RegState;
      if (bytes === 8) {
        slot.spilled = v.clone();
        slot.kinds.fill(STACK_SPILL);
        return v;
      }
      if (slot.isSpill()) {
        slot.kinds.fill(STACK_MISC);
        slot.spilled = null;
      }
      const zero = v.type === 'scalar' && v.isConst() && v.constValue() === 0n;
      for (let b = first; b < first + bytes; b++) slot.kinds[b] = zero ? STACK_ZERO : STACK_MISC;
      return v;
    }
    if (slot.isSpill()) {
      const sp = slot.spilled as RegState;
      if (bytes === 8) return sp.clone();
      if (sp.isPointer()) this.reject('invalid size of register fill');
      if (sp.isConst()) {
        const v = BigInt.asUintN(64, sp.constValue()) >> BigInt(first * 8);
        return scalarConst(BigInt.asUintN(bytes * 8, v));
      }
      return scalarOfSize(bytes);
    }
    let allZero = true;
    for (let b = first; b < first + bytes; b++) {
      const k = slot.kinds[b] as number;
      if (k === STACK_INVALID) {
        this.reject(`invalid read from stack off ${total}+${b - first} size ${bytes}`);
      }
      if (k !== STACK_ZERO) allZero = false;
    }
    return allZero ? scalarConst(0n) : scalarOfSize(bytes);
  }

  /** Variable-offset stack access: every byte the range may touch must be in bounds (and set). */
  stackVarAccess(
    f: FuncState,
    r: number,
    reg: RegState,
    off: number,
    bytes: number,
    write: boolean,
  ): RegState {
    if (reg.smax >= BPF_MAX_VAR_OFF || reg.smin <= -BPF_MAX_VAR_OFF) {
      this.reject(
        `invalid unbounded variable-offset ${write ? 'write to' : 'read from'} stack R${r}`,
      );
    }
    const lo = reg.smin + BigInt(reg.off + off);
    const hi = reg.smax + BigInt(reg.off + off);
    if (lo < -BigInt(MAX_BPF_STACK) || hi + BigInt(bytes) > 0n) {
      this.reject(
        `invalid variable-offset ${write ? 'write to' : 'read from'} stack R${r} var_off=${tnumStr(reg.varOff)} off=${reg.off + off} size=${bytes}`,
        stackBoundsErrno(Number(lo)),
      );
    }
    const min = Number(lo);
    const max = Number(hi) + bytes;
    this.growStack(f, -min);
    for (let a = min; a < max; a++) {
      const spi = Math.floor((-a - 1) / 8);
      const slot = f.slot(spi);
      const b = a + (spi + 1) * 8;
      if (write) {
        if (slot.isSpill()) {
          slot.kinds.fill(STACK_MISC);
          slot.spilled = null;
        }
        if (slot.kinds[b] !== STACK_ZERO) slot.kinds[b] = STACK_MISC;
      } else if (slot.kinds[b] === STACK_INVALID) {
        this.reject(
          `invalid variable-offset read from stack R${r} var_off=${tnumStr(reg.varOff)} off=${reg.off + off} size=${bytes}`,
        );
      }
    }
    return scalarOfSize(bytes);
  }

  growStack(f: FuncState, depth: number): void {
    if (depth > (this.stackDepth[f.subprog] as number)) this.stackDepth[f.subprog] = depth;
  }

  checkAtomic(st: VerifierState, insn: Insn, dst: RegState, src: RegState, bytes: number): void {
    if (src.isPointer()) this.reject(`R${insn.src} leaks addr into mem`);
    if (dst.type === 'ctx' || dst.type === 'btf_id') {
      this.reject(`BPF_ATOMIC stores into R${insn.dst} ${regTypeStr(dst)} is not allowed`);
    }
    if (insn.imm === BPF_CMPXCHG) this.readReg(st, 0);
    const old = this.checkMemAccess(st, insn.dst, dst, insn.off, bytes, 'read', null);
    this.checkMemAccess(st, insn.dst, dst, insn.off, bytes, 'write', scalarUnknown());
    if (insn.imm === BPF_CMPXCHG) {
      (this.reg(st, 0) as RegState).copyFrom(old.isPointer() ? old : scalarOfSize(bytes));
    } else if ((insn.imm & BPF_FETCH) !== 0) {
      this.writeReg(st, insn.src).copyFrom(old.isPointer() ? old : scalarOfSize(bytes));
    }
  }

  checkJmp(st: VerifierState, insn: Insn, idx: number): number {
    const c = cls(insn.code);
    const o = op(insn.code);
    if (o === BPF_JA) return idx + 1 + (c === BPF_JMP32 ? insn.imm : insn.off);
    if (o === BPF_EXIT) return this.checkExit(st);
    if (o === BPF_CALL) {
      if (srcBit(insn.code) === BPF_X) {
        this.reject(`unknown opcode ${insn.code.toString(16).padStart(2, '0')}`, 'EINVAL');
      }
      if (insn.src === BPF_PSEUDO_CALL)
        return this.checkFuncCall(st, idx, idx + 1 + insn.imm, null);
      if (insn.src === BPF_PSEUDO_KFUNC_CALL) return this.checkKfuncCall(st, insn, idx);
      return this.checkHelperCall(st, insn.imm, idx);
    }
    const is32 = c === BPF_JMP32;
    const dst = this.readReg(st, insn.dst);
    const isX = srcBit(insn.code) === BPF_X;
    const src = isX ? this.readReg(st, insn.src) : scalarConst(BigInt(insn.imm));
    const rel = JMP_REL[o] as Rel;
    const target = idx + 1 + insn.off;
    // Null checks: ptr ==/!= 0 splits a maybe-null pointer into null and non-null copies.
    if (!is32 && (rel === 'eq' || rel === 'ne') && dst.isPointer() !== src.isPointer()) {
      const ptr = dst.isPointer() ? dst : src;
      const other = dst.isPointer() ? src : dst;
      if (other.isConst() && other.constValue() === 0n) {
        if (ptr.maybeNull) {
          const other2 = st.clone();
          const id = ptr.id;
          // rel holds on the jump: eq means the taken branch sees null.
          this.markPtrOrNull(other2, id, rel === 'eq');
          this.markPtrOrNull(st, id, rel !== 'eq');
          this.pushBranch(other2, target, idx);
          return idx + 1;
        }
        return rel === 'eq' ? idx + 1 : target;
      }
    }
    if (dst.isPointer() || src.isPointer()) {
      this.pushBranch(st.clone(), target, idx);
      return idx + 1;
    }
    const taken = mayHold(dst, src, rel, is32);
    const fall = mayHold(dst, src, NEGATE[rel], is32);
    if (taken && !fall) {
      this.refineBranch(st, insn, rel, is32);
      return target;
    }
    if (!taken) {
      this.refineBranch(st, insn, NEGATE[rel], is32);
      return idx + 1;
    }
    const other = st.clone();
    this.refineBranch(other, insn, rel, is32);
    this.refineBranch(st, insn, NEGATE[rel], is32);
    this.pushBranch(other, target, idx);
    return idx + 1;
  }

  refineBranch(st: VerifierState, insn: Insn, rel: Rel, is32: boolean): void {
    const dst = this.reg(st, insn.dst);
    if (srcBit(insn.code) === BPF_X) {
      const src = this.reg(st, insn.src);
      if (insn.src === insn.dst) return;
      refine(dst, src, rel, is32);
      this.syncLinked(st, src);
    } else {
      const k = scalarConst(is32 ? BigInt(insn.imm >>> 0) : BigInt(insn.imm));
      refine(dst, k, rel, is32);
    }
    this.syncLinked(st, dst);
  }

  /** find_equal_scalars: copies of a refined scalar (same id) learn the same bounds. */
  syncLinked(st: VerifierState, reg: RegState): void {
    if (reg.type !== 'scalar' || reg.id === 0) return;
    for (const r of st.allRegs()) {
      if (r === reg || r.type !== 'scalar' || r.id !== reg.id) continue;
      r.copyFrom(reg);
    }
  }

  /** mark_ptr_or_null_regs: every copy of pointer id becomes null (a zero scalar) or non-null. */
  markPtrOrNull(st: VerifierState, id: number, isNull: boolean): void {
    let ref = 0;
    for (const r of st.allRegs()) {
      if (r.id !== id || !r.maybeNull) continue;
      if (isNull) {
        ref = r.refObjId;
        r.copyFrom(scalarConst(0n));
      } else {
        r.maybeNull = false;
        if (r.type === 'map_value') {
          r.id = 0;
          // A map-in-map lookup found an inner map: CONST_PTR_TO_MAP to the inner template.
          if (r.map?.inner !== undefined) {
            r.type = 'map_ptr';
            r.map = r.map.inner;
          }
        }
      }
    }
    if (isNull && ref !== 0) st.refs = st.refs.filter((x) => x.id !== ref);
  }

  checkExit(st: VerifierState): number {
    const r0 = this.readReg(st, 0);
    if (st.frames.length > 1) {
      const callee = st.cur;
      if (r0.type === 'stack' && r0.frameno === callee.frameno) {
        this.reject('cannot return stack pointer to the caller frame', 'EINVAL');
      }
      const ret = r0.clone();
      st.frames.pop();
      const caller = st.cur;
      const callInsn = this.insns[callee.callsite] as Insn;
      if (callInsn.src === BPF_PSEUDO_CALL) {
        clobberCallerSaved(caller);
        (caller.regs[0] as RegState).copyFrom(ret);
        return callee.callsite + 1;
      }
      // A bpf_loop callback: the callback's r0 must be 0 or 1; the helper returns a count.
      if (!(ret.type === 'scalar' && ret.umax <= 1n)) {
        this.reject(this.retRangeMsg('At callback return', ret, 0, 1), 'EINVAL');
      }
      // The callback may run again with what this run left in the caller's memory; scalars
      // that changed since the run in progress began, and are not precise, are widened first.
      const start = this.cfg.subprogs[callee.subprog] as number;
      const prev = this.findPrevEntry(st, start, callee.callsite);
      if (prev !== null)
        widenImpreciseScalars(prev, st, this.liveFrames(prev, start, this.cfg.preciseIn));
      const again = st.clone();
      this.checkFuncCall(again, callee.callsite, start, {
        args: [scalarOfSize(4), (again.cur.regs[3] as RegState).clone()],
      });
      this.pushBranch(again, start, callee.callsite, true);
      clobberCallerSaved(caller);
      (caller.regs[0] as RegState).copyFrom(scalarOfSize(4));
      return callee.callsite + 1;
    }
    for (const ref of st.refs) {
      this.reject(`Unreleased reference id=${ref.id} alloc_insn=${ref.insn}`, 'EINVAL');
    }
    const range = this.retRange();
    if (range !== null) {
      if (r0.type !== 'scalar') {
        this.reject(`At program exit the register R0 is not a known value (${regTypeStr(r0)})`);
      }
      if (r0.smin < BigInt(range[0]) || r0.smax > BigInt(range[1])) {
        this.reject(this.retRangeMsg('At program exit', r0, range[0], range[1]), 'EINVAL');
      }
    }
    return -1;
  }

  retRangeMsg(where: string, r: RegState, lo: number, hi: number): string {
    let s = `${where} the register R0 has`;
    if (r.type !== 'scalar')
      return `${where} the register R0 is not a known value (${regTypeStr(r)})`;
    let unknown = true;
    if (r.smin > S64_MIN) {
      s += ` smin=${r.smin}`;
      unknown = false;
    }
    if (r.smax < S64_MAX) {
      s += ` smax=${r.smax}`;
      unknown = false;
    }
    if (unknown) s += ' unknown scalar value';
    return `${s} should have been in [${lo}, ${hi}]`;
  }

  /** The return values check_return_code allows; null when any value is fine. */
  retRange(): [number, number] | null {
    if (this.opts.progType === 'tracing') {
      const a = this.opts.attachType ?? 'fentry';
      return a === 'fmod_ret' || a === 'raw_tp' ? null : [0, 0];
    }
    return null;
  }

  /** check_func_call: a bpf-to-bpf call, or a bpf_loop callback when cb describes one. */
  checkFuncCall(
    st: VerifierState,
    idx: number,
    target: number,
    cb: { args: RegState[] } | null,
  ): number {
    if (st.frames.length >= MAX_CALL_FRAMES) {
      this.reject(`the call stack of ${st.frames.length + 1} frames is too deep`, 'E2BIG');
    }
    const caller = st.cur;
    const callee = new FuncState(st.frames.length, this.subprogOf(target), idx);
    if (cb === null) {
      for (let r = 1; r <= 5; r++)
        (callee.regs[r] as RegState).copyFrom(caller.regs[r] as RegState);
    } else {
      cb.args.forEach((a, k) => (callee.regs[k + 1] as RegState).copyFrom(a));
    }
    const fp = callee.regs[10] as RegState;
    fp.type = 'stack';
    markKnown(fp, 0n);
    fp.type = 'stack';
    fp.frameno = callee.frameno;
    st.frames.push(callee);
    return target;
  }

  /** check_helper_call. */
  checkHelperCall(st: VerifierState, id: number, idx: number): number {
    const proto = HELPERS.get(id);
    if (proto === undefined) this.reject(`invalid func unknown#${id}`, 'EINVAL');
    if (!helperAllowed(this.opts.progType, this.opts.attachType, id)) {
      this.reject(`program of this type cannot use helper ${helperName(id)}#${id}`, 'EINVAL');
    }
    const meta: { map: MapDef | null; release: number; size: bigint; func: RegState | null } = {
      map: null,
      release: 0,
      size: 0n,
      func: null,
    };
    proto.args.forEach((kind, k) => this.checkFuncArg(st, proto, k + 1, kind, meta));
    if (meta.release !== 0) {
      const ref = meta.release;
      if (!st.refs.some((x) => x.id === ref)) {
        this.reject(`R1 must be referenced when passed to release function`, 'EINVAL');
      }
      st.refs = st.refs.filter((x) => x.id !== ref);
      for (const r of st.allRegs()) if (r.refObjId === ref) markUnknown(r);
    }
    if (id === 173) this.checkGetFuncIp();
    if (id === 181) return this.checkLoopCall(st, idx, meta.func as RegState);
    const cur = st.cur;
    clobberCallerSaved(cur);
    const r0 = cur.regs[0] as RegState;
    switch (proto.ret) {
      case 'void':
      case 'integer':
        r0.copyFrom(scalarUnknown());
        if (proto.ret === 'void') markNotInit(r0);
        break;
      case 'map_value_or_null': {
        const r = new RegState();
        markKnown(r, 0n);
        r.type = 'map_value';
        r.maybeNull = true;
        r.map = meta.map;
        r.id = this.newId();
        r0.copyFrom(r);
        break;
      }
      case 'ringbuf_mem_or_null': {
        const r = new RegState();
        markKnown(r, 0n);
        r.type = 'mem';
        r.ringbuf = true;
        r.maybeNull = true;
        r.memSize = Number(meta.size);
        r.id = this.newId();
        r.refObjId = r.id;
        st.refs.push({ id: r.id, insn: idx });
        r0.copyFrom(r);
        break;
      }
      case 'btf_id': {
        const name = proto.retBtf as string;
        const tid = this.opts.btf?.find(name, 'struct');
        if (tid === undefined) {
          r0.copyFrom(scalarUnknown());
          break;
        }
        r0.copyFrom(btfPtrReg(tid, name, true));
        break;
      }
    }
    return idx + 1;
  }

  /**
   * check_kfunc_call: a call of kernel function imm (a FUNC of the kernel BTF) that a kfunc set
   * registers for this program type. Arguments are checked against the FUNC_PROTO, R0 typed from
   * its return type, R1-R5 clobbered.
   */
  checkKfuncCall(st: VerifierState, insn: Insn, idx: number): number {
    const btf = this.opts.btf;
    if (btf === undefined) {
      this.reject(
        'calling kernel function is not supported without CONFIG_DEBUG_INFO_BTF',
        'ENOTSUPP',
      );
    }
    if (insn.off !== 0) this.reject('kfunc offset > 0 without fd_array is invalid', 'EINVAL');
    const id = insn.imm >>> 0;
    const func = typeById(btf, id);
    if (func?.kind !== 'func') this.reject(`kernel btf_id ${id} is not a function`, 'EINVAL');
    const proto = btf.type(func.type);
    if (proto?.kind !== 'func_proto') {
      this.reject(`kernel function ${func.name} does not have a valid func_proto`, 'EINVAL');
    }
    const flags = kfuncFlags(func.name, this.opts.progType);
    if (flags === undefined) {
      this.reject(`calling kernel function ${func.name} is not allowed`, 'EACCES');
    }
    const release = this.checkKfuncArgs(st, btf, func.name, proto, flags);
    if (flags.release) {
      if (release === 0) {
        this.reject(
          `release kernel function ${func.name} expects refcounted PTR_TO_BTF_ID`,
          'EINVAL',
        );
      }
      st.refs = st.refs.filter((x) => x.id !== release);
      for (const r of st.allRegs()) if (r.refObjId === release) markUnknown(r);
    }
    const cur = st.cur;
    clobberCallerSaved(cur);
    const r0 = cur.regs[0] as RegState;
    markNotInit(r0);
    const ret = btf.type(btf.resolve(proto.returnType));
    if (isBtfScalar(ret)) {
      r0.copyFrom(scalarUnknown());
    } else if (ret?.kind === 'ptr') {
      const targetId = btf.resolve(ret.type);
      const target = btf.type(targetId);
      if (target?.kind !== 'struct') {
        this.reject(
          `kernel function ${func.name} returns pointer type ${btfKindStr(target)} ${btfName(target)} is not supported`,
          'EINVAL',
        );
      }
      const r = btfPtrReg(targetId, target.name, flags.acquire);
      if (flags.retNull) {
        r.maybeNull = true;
        r.id = this.newId();
      }
      if (flags.acquire) {
        if (r.id === 0) r.id = this.newId();
        r.refObjId = r.id;
        st.refs.push({ id: r.id, insn: idx });
      }
      r0.copyFrom(r);
    }
    return idx + 1;
  }

  /** check_kfunc_args; returns the ref_obj_id a release kfunc was given (0 when none). */
  checkKfuncArgs(
    st: VerifierState,
    btf: Btf,
    name: string,
    proto: BtfFuncProto,
    flags: KfuncFlags,
  ): number {
    const trustedArgs = flags.trustedArgs || flags.release;
    let release = 0;
    const params = proto.params;
    for (let i = 0; i < params.length; i++) {
      const r = i + 1;
      const reg = this.readReg(st, r);
      const t = btf.type(btf.resolve((params[i] as BtfFuncProto['params'][number]).type));
      if (isBtfScalar(t)) {
        if (reg.type !== 'scalar') this.reject(`R${r} is not a scalar`, 'EINVAL');
        continue;
      }
      if (t?.kind !== 'ptr') {
        this.reject(`Unrecognized arg#${i} type ${btfKindStr(t)}`, 'EINVAL');
      }
      const isNull = reg.type === 'scalar' && reg.isConst() && reg.constValue() === 0n;
      if ((trustedArgs || flags.rcu) && (isNull || reg.maybeNull)) {
        this.reject(`Possibly NULL pointer passed to trusted arg${i}`, 'EACCES');
      }
      if (reg.refObjId !== 0 && flags.release) release = reg.refObjId;
      const refId = btf.resolve(t.type);
      const ref = btf.type(refId);
      if (reg.type === 'btf_id') {
        if (ref?.kind !== 'struct') {
          this.reject(
            `kernel function ${name} args#${i} pointer type ${btfKindStr(ref)} ${btfName(ref)} is not supported`,
            'EINVAL',
          );
        }
        if ((trustedArgs || flags.rcu) && !reg.trusted && reg.refObjId === 0) {
          this.reject(
            flags.rcu ? `R${r} must be a rcu pointer` : `R${r} must be referenced or trusted`,
            'EINVAL',
          );
        }
        if (trustedArgs && (reg.off !== 0 || !tnumIsConst(reg.varOff) || reg.varOff.value !== 0n)) {
          this.reject(
            `R${r} must have zero offset when passed to release func or trusted arg to kfunc`,
          );
        }
        if (reg.btfId !== refId) {
          this.reject(
            `kernel function ${name} args#${i} expected pointer to STRUCT ${ref.name} but R${r} has a pointer to STRUCT ${reg.btfName}`,
            'EINVAL',
          );
        }
        continue;
      }
      if (!isBtfScalar(ref) && !isScalarStruct(btf, ref)) {
        this.reject(
          `arg#${i} pointer type ${btfKindStr(ref)} ${btfName(ref)} must point to scalar, or struct with scalar`,
          'EINVAL',
        );
      }
      // KF_ARG_PTR_TO_MEM: check_mem_reg over the pointed-to type's size.
      if (!['stack', 'map_key', 'map_value', 'mem'].includes(reg.type) || reg.maybeNull) {
        this.reject(`R${r} type=${regTypeStr(reg)} expected=fp`);
      }
      this.helperMemAccess(st, r, reg, btf.sizeOf(refId), false);
    }
    return release;
  }

  /** check_get_func_ip: a tracing program needs a trampoline to know the traced function's ip. */
  checkGetFuncIp(): void {
    if (this.opts.progType === 'tracing' && !hasTrampoline(this.opts.attachType)) {
      this.reject(
        'func bpf_get_func_ip#173 supported only for fentry/fexit/fmod_ret programs',
        'ENOTSUPP',
      );
    }
  }

  /** bpf_loop: the callback runs as a call frame with (index, ctx); r0 of the helper a count. */
  checkLoopCall(st: VerifierState, idx: number, func: RegState): number {
    const start = this.cfg.subprogs[func.subprog] as number;
    const index = scalarOfSize(4);
    const ctx = this.reg(st, 3).clone();
    // The callback may run zero times: one path skips it, one enters it.
    const skip = st.clone();
    clobberCallerSaved(skip.cur);
    (skip.cur.regs[0] as RegState).copyFrom(scalarOfSize(4));
    this.pushBranch(skip, idx + 1, idx);
    return this.checkFuncCall(st, idx, start, { args: [index, ctx] });
  }

  argTypeError(r: number, reg: RegState, expected: string): never {
    this.reject(`R${r} type=${regTypeStr(reg)} expected=${expected}`);
  }

  checkFuncArg(
    st: VerifierState,
    proto: FuncProto,
    r: number,
    kind: ArgType,
    meta: { map: MapDef | null; release: number; size: bigint; func: RegState | null },
  ): void {
    const reg = this.readReg(st, r);
    const memTypes = 'fp, pkt, pkt_meta, map_key, map_value, mem, ringbuf_mem, buf, trusted_ptr_';
    const keyTypes = 'fp, pkt, pkt_meta, map_key, map_value';
    switch (kind) {
      case 'anything':
        return;
      case 'const_map_ptr': {
        if (reg.type !== 'map_ptr') this.argTypeError(r, reg, 'map_ptr');
        meta.map = reg.map;
        this.checkMapCompat(proto, reg.map as MapDef);
        return;
      }
      case 'ctx':
        if (reg.type !== 'ctx') this.argTypeError(r, reg, 'ctx');
        this.fixedOffset(reg, r, 'ctx');
        return;
      case 'func':
        if (reg.type !== 'func') this.argTypeError(r, reg, 'func');
        meta.func = reg;
        return;
      case 'stack_or_null':
        if (reg.type === 'scalar' && reg.isConst() && reg.constValue() === 0n) return;
        if (reg.type !== 'stack') this.argTypeError(r, reg, 'fp');
        return;
      case 'map_key':
      case 'map_value': {
        if (meta.map === null)
          this.reject(
            `invalid map_ptr to access map->${kind === 'map_key' ? 'key' : 'value'}`,
            'EACCES',
          );
        if (!['stack', 'map_key', 'map_value'].includes(reg.type) || reg.maybeNull) {
          this.argTypeError(r, reg, keyTypes);
        }
        const sz = kind === 'map_key' ? meta.map.keySize : meta.map.valueSize;
        this.helperMemAccess(st, r, reg, sz, false);
        return;
      }
      case 'long_ptr':
        if (!['stack', 'map_key', 'map_value'].includes(reg.type) || reg.maybeNull) {
          this.argTypeError(r, reg, keyTypes);
        }
        this.helperMemAccess(st, r, reg, 8, true);
        return;
      case 'mem':
      case 'uninit_mem': {
        const okType =
          ['stack', 'map_key', 'map_value', 'mem'].includes(reg.type) ||
          (reg.type === 'btf_id' && reg.trusted && kind === 'mem');
        if (!okType || reg.maybeNull) this.argTypeError(r, reg, memTypes);
        // The size comes in the next argument; remember the pointer and check it there.
        meta.size = -1n;
        return;
      }
      case 'const_size':
      case 'const_size_or_zero': {
        if (reg.type !== 'scalar') this.argTypeError(r, reg, 'scalar');
        const memReg = this.reg(st, r - 1);
        const zeroOk = kind === 'const_size_or_zero';
        if (reg.smin < 0n) {
          this.reject(
            `R${r} min value is negative, either use unsigned index or do a if (index >=0) check.`,
          );
        }
        if (reg.umin === 0n && !zeroOk) this.reject(`R${r} invalid zero-sized read`);
        if (reg.umax >= BPF_MAX_VAR_SIZ) {
          this.reject(`R${r} unbounded memory access, use 'var &= const' or 'if (var < const)'`);
        }
        if (reg.umax === 0n) return;
        const uninit = proto.args[r - 2] === 'uninit_mem';
        this.helperMemAccess(st, r - 1, memReg, Number(reg.umax), uninit);
        return;
      }
      case 'const_alloc_size_or_zero':
        if (reg.type !== 'scalar') this.argTypeError(r, reg, 'scalar');
        if (!tnumIsConst(reg.varOff)) this.reject(`R${r} is not a known constant'`);
        meta.size = reg.varOff.value;
        return;
      case 'ringbuf_mem_release': {
        if (reg.type !== 'mem' || !reg.ringbuf || reg.maybeNull) {
          this.argTypeError(r, reg, 'ringbuf_mem');
        }
        if (reg.off !== 0 || !tnumIsConst(reg.varOff) || reg.varOff.value !== 0n) {
          this.reject(
            `R${r} must have zero offset when passed to release func or trusted arg to kfunc`,
          );
        }
        meta.release = reg.refObjId;
        return;
      }
    }
  }

  /** check_map_func_compatibility (the pairs tracelab's helpers need). */
  checkMapCompat(proto: FuncProto, map: MapDef): void {
    const want = HELPER_MAPS[proto.name];
    const ok =
      want === undefined
        ? (MAP_HELPERS[map.type]?.includes(proto.name) ?? true)
        : want.includes(map.type);
    if (!ok) {
      this.reject(
        `cannot pass map_type ${MAP_TYPE_NUM[map.type]} into func bpf_${proto.name}#${proto.id}`,
        'EINVAL',
      );
    }
  }

  /** check_helper_mem_access: size bytes at reg, read (initialised) or written (uninit ok). */
  helperMemAccess(
    st: VerifierState,
    r: number,
    reg: RegState,
    bytes: number,
    write: boolean,
  ): void {
    switch (reg.type) {
      case 'stack': {
        const f = this.frameOf(st, reg);
        const lo = reg.smin + BigInt(reg.off);
        const hi = reg.smax + BigInt(reg.off);
        if (
          lo < -BigInt(MAX_BPF_STACK) ||
          hi + BigInt(bytes) > 0n ||
          (!tnumIsConst(reg.varOff) && lo === S64_MIN)
        ) {
          this.reject(`invalid indirect access to stack R${r} off=${lo} size=${bytes}`);
        }
        const min = Number(lo);
        const max = Number(hi) + bytes;
        this.growStack(f, -min);
        for (let a = min; a < max; a++) {
          const spi = Math.floor((-a - 1) / 8);
          const slot = f.slot(spi);
          const b = a + (spi + 1) * 8;
          if (write) {
            if (slot.isSpill()) {
              slot.kinds.fill(STACK_MISC);
              slot.spilled = null;
            }
            slot.kinds[b] = STACK_MISC;
          } else if (slot.kinds[b] === STACK_INVALID) {
            this.reject(
              `invalid indirect read from stack R${r} off ${min}+${a - min} size ${bytes}`,
            );
          }
        }
        return;
      }
      case 'map_value':
      case 'map_key':
      case 'mem': {
        if (write && reg.rdonly) this.reject(`R${r} cannot write into ${regTypeStr(reg)}`);
        const m = reg.map as MapDef;
        const [limit, what] =
          reg.type === 'map_value'
            ? [m.valueSize, `map value, value_size=${m.valueSize}`]
            : reg.type === 'map_key'
              ? [m.keySize, `map key, key_size=${m.keySize}`]
              : [reg.memSize, `memory, mem_size=${reg.memSize}`];
        this.memRegionAccess(r, reg, reg.off, bytes, limit, what, false);
        return;
      }
      default:
        return;
    }
  }

  /** check_max_stack_depth: frames and stack along every static call chain. */
  checkMaxStackDepth(): void {
    const round = (d: number): number => Math.ceil(Math.max(d, 1) / 32) * 32;
    const calls: number[][] = this.cfg.subprogs.map(() => []);
    this.insns.forEach((i, k) => {
      if (this.cfg.lddwHalf[k]) return;
      if (
        cls(i.code) === BPF_JMP &&
        op(i.code) === BPF_CALL &&
        i.src === BPF_PSEUDO_CALL &&
        srcBit(i.code) !== BPF_X
      ) {
        (calls[this.subprogOf(k)] as number[]).push(this.subprogOf(k + 1 + i.imm));
      }
    });
    const walk = (sp: number, frame: number, depth: number): void => {
      const d = depth + round(this.stackDepth[sp] as number);
      if (d > MAX_BPF_STACK) {
        this.insn = this.cfg.subprogs[sp] as number;
        this.reject(`combined stack size of ${frame + 1} calls is ${d}. Too large`);
      }
      for (const callee of calls[sp] as number[]) {
        if (frame + 1 >= MAX_CALL_FRAMES) {
          this.insn = this.cfg.subprogs[callee] as number;
          this.reject(`the call stack of ${frame + 2} frames is too deep !`, 'E2BIG');
        }
        walk(callee, frame + 1, d);
      }
    };
    walk(0, 0, 0);
  }
}

/** btf_type_by_id: an id from an instruction may be out of the BTF's range. */
function typeById(btf: Btf, id: number): BtfType | undefined {
  return id < btf.typeCount ? btf.type(id) : undefined;
}

/** btf_type_is_scalar: integers and enums. */
function isBtfScalar(t: BtfType | undefined): boolean {
  return t?.kind === 'int' || t?.kind === 'enum' || t?.kind === 'enum64';
}

/** __btf_type_is_scalar_struct: a struct of scalars and arrays of scalars. */
function isScalarStruct(btf: Btf, t: BtfType | undefined): boolean {
  if (t?.kind !== 'struct') return false;
  return t.members.every((m) => {
    const mt = btf.type(btf.resolve(m.type));
    return isBtfScalar(mt) || (mt?.kind === 'array' && isBtfScalar(btf.type(btf.resolve(mt.type))));
  });
}

/** btf_type_str: the kind's name (UNKN for void). */
function btfKindStr(t: BtfType | undefined): string {
  return t === undefined ? 'UNKN' : t.kind.toUpperCase();
}

function btfName(t: BtfType | undefined): string {
  return t !== undefined && 'name' in t ? t.name : '';
}

/**
 * The traced function's prototype. A tp_btf program (raw_tp) gets its tracepoint's from the
 * `btf_trace_<name>` typedef, a pointer to a FUNC_PROTO whose first parameter, the probe's
 * `void *__data`, is not in the context (btf_ctx_access skips it); without that typedef it reads
 * an untyped argument array.
 */
function findProto(opts: VerifyOptions): BtfFuncProto | undefined {
  if (opts.btf === undefined || opts.attachTarget === undefined) return undefined;
  if (opts.attachType === 'raw_tp') {
    const td = opts.btf.type(opts.btf.find(`btf_trace_${opts.attachTarget}`, 'typedef') ?? 0);
    const ptr = td?.kind === 'typedef' ? opts.btf.type(td.type) : undefined;
    const p = ptr?.kind === 'ptr' ? opts.btf.type(ptr.type) : undefined;
    return p?.kind === 'func_proto' ? { ...p, params: p.params.slice(1) } : undefined;
  }
  const id = opts.btf.find(opts.attachTarget, 'func');
  if (id === undefined) return undefined;
  const f = opts.btf.type(id);
  if (f?.kind !== 'func') return undefined;
  const p = opts.btf.type(f.type);
  return p?.kind === 'func_proto' ? p : undefined;
}

/**
 * resolve_pseudo_ldimm64's check_pseudo_btf_id, before any path is explored: every ld_imm64 src 3
 * (a typed ksym) names a VAR or FUNC of the kernel BTF, and loads PTR_TO_BTF_ID to a struct
 * variable (MEM_PERCPU when .data..percpu holds it) or a read-only PTR_TO_MEM of the variable's
 * size (of size 0 for a function). The register each one loads, by instruction.
 */
function pseudoBtfIdRegs(
  insns: readonly Insn[],
  btf: Btf | undefined,
): Map<number, RegState> | Reject {
  const out = new Map<number, RegState>();
  for (let k = 0; k < insns.length; k++) {
    const insn = insns[k] as Insn;
    if (!isLddw(insn)) continue;
    k++;
    if (insn.src !== BPF_PSEUDO_BTF_ID) continue;
    const at = k - 1;
    if (btf === undefined) {
      return new Reject(
        at,
        'kernel is missing BTF, make sure CONFIG_DEBUG_INFO_BTF=y is specified in Kconfig.',
        'EINVAL',
      );
    }
    // insn[1].imm is the fd of a module's BTF; tracelab's kernel has only vmlinux (fd 0).
    if (insn.imm2 !== 0) return new Reject(at, 'invalid module BTF object FD specified.', 'EINVAL');
    const id = insn.imm >>> 0;
    const t = typeById(btf, id);
    if (t === undefined) {
      return new Reject(at, `ldimm64 insn specifies invalid btf_id ${id}.`, 'ENOENT');
    }
    if (t.kind !== 'var' && t.kind !== 'func') {
      return new Reject(at, `pseudo btf_id ${id} in ldimm64 isn't KIND_VAR or KIND_FUNC`, 'EINVAL');
    }
    const r = new RegState();
    markKnown(r, 0n);
    if (t.kind === 'func') {
      r.type = 'mem';
      r.rdonly = true;
      out.set(at, r);
      continue;
    }
    const typeId = btf.resolve(t.type);
    const vt = btf.type(typeId);
    const percpuSec = btf.type(btf.find('.data..percpu', 'datasec') ?? 0);
    const percpu = percpuSec?.kind === 'datasec' && percpuSec.vars.some((v) => v.type === id);
    if (percpu || vt?.kind === 'struct' || vt?.kind === 'union') {
      const p = btfPtrReg(typeId, btfName(vt), false);
      // The flagless PTR_TO_BTF_ID: neither trusted nor marked untrusted.
      p.untrusted = false;
      p.percpu = percpu;
      out.set(at, p);
      continue;
    }
    let size: number;
    try {
      size = btf.sizeOf(typeId);
    } catch {
      return new Reject(
        at,
        `ldimm64 unable to resolve the size of type '${btfName(vt)}': -22`,
        'EINVAL',
      );
    }
    r.type = 'mem';
    r.rdonly = true;
    r.memSize = size;
    out.set(at, r);
  }
  return out;
}

/**
 * Verifies a program (vm instruction slots) as the kernel's verifier would for its program
 * type: control flow, then every path through the abstract interpreter.
 */
export function verify(insns: readonly Insn[], options: VerifyOptions): VerifyResult {
  const t0 = performance.now();
  const level = options.logLevel ?? 0;
  const lineInfo = sortedLineInfo(options.lineInfo);
  const stats: VerifyStats = {
    processedInsns: 0,
    totalStates: 0,
    peakStates: 0,
    maxStatesPerInsn: 0,
    stackDepth: [],
    timeUs: 0,
  };
  const finish = (lines: string[], err: Reject | null): VerifyResult => {
    stats.timeUs = Math.round((performance.now() - t0) * 1000);
    if (level > 0) {
      if (err !== null) lines.push(err.message);
      lines.push(
        `processed ${stats.processedInsns} insns (limit ${BPF_COMPLEXITY_LIMIT_INSNS}) max_states_per_insn ${stats.maxStatesPerInsn} total_states ${stats.totalStates} peak_states ${stats.peakStates} mark_read 0`,
      );
    }
    return {
      ok: err === null,
      errno: err === null ? 0 : VERIFIER_ERRNO[err.errno],
      errnoName: err === null ? null : err.errno,
      error:
        err === null
          ? null
          : {
              insn: err.insn,
              message: err.message,
              source: findLinfo(lineInfo, err.insn),
            },
      log: lines.length === 0 ? '' : lines.join('\n') + '\n',
      stats,
    };
  };
  if (insns.length === 0) return finish([], new Reject(0, 'empty program', 'EINVAL'));
  if (
    options.progType === 'tracing' &&
    options.attachType !== 'raw_tp' &&
    options.attachTarget !== undefined &&
    options.btf !== undefined
  ) {
    if (findProto(options) === undefined) {
      return finish(
        [],
        new Reject(
          0,
          `The address of function ${options.attachTarget} cannot be found`,
          'ENOTSUPP',
        ),
      );
    }
  }
  const ksyms = pseudoBtfIdRegs(insns, options.btf);
  if (ksyms instanceof Reject) return finish([], ksyms);
  const cfg = checkCfg(insns, options.allowLoops ?? true);
  if ('message' in cfg) {
    const errno: VerifierErrno = 'EINVAL';
    return finish([], new Reject(cfg.insn, cfg.message, errno));
  }
  const env = new Env(insns, cfg, options, findProto(options), ksyms);
  let err: Reject | null = null;
  try {
    env.run();
    env.checkMaxStackDepth();
  } catch (e) {
    if (!(e instanceof Reject)) throw e;
    err = e;
  }
  stats.processedInsns = env.processed;
  stats.totalStates = env.totalStates;
  stats.peakStates = env.peakStates;
  stats.maxStatesPerInsn = env.maxStatesPerInsn;
  stats.stackDepth = [...env.stackDepth];
  return finish(env.lines, err);
}
