import { FtraceRegs, type ArchName } from '@tracelab/arch-isa';
import { TracelabError } from '@tracelab/contracts';
import {
  FTRACE_OPS_FL_ENABLED,
  FTRACE_OPS_FL_GRAPH,
  FTRACE_OPS_FL_SAVE_REGS,
  FtraceOps,
  type Ftrace,
} from '@tracelab/ftrace-core';
import { KernelError, type Cpu, type Kernel, type Task } from '@tracelab/kernel';
import { emitGraphCode, type GraphCode, type GraphHot } from './graph-code.js';
import * as ss from './shadow-stack.js';
import { ShadowStack } from './shadow-stack.js';

// Module-local copies: the hot path reads plain bindings, not cross-module live bindings
// (which some loaders turn into getter calls).
const FGRAPH_ARRAY_SIZE = ss.FGRAPH_ARRAY_SIZE;
const FGRAPH_MAX_DATA_WORDS = ss.FGRAPH_MAX_DATA_WORDS;
const FGRAPH_TYPE_DATA = ss.FGRAPH_TYPE_DATA;
const SHADOW_STACK_MAX_OFFSET = ss.SHADOW_STACK_MAX_OFFSET;
const markerOffset = ss.markerOffset;
const markerType = ss.markerType;
const markerDataWords = ss.markerDataWords;
const markerDataIndex = ss.markerDataIndex;
const makeDataMarker = ss.makeDataMarker;

/** struct ftrace_graph_ent: what an entry callback sees. Reused for every call (no allocation). */
export interface FtraceGraphEnt {
  /** Image index of the traced function. */
  fn: number;
  /** Low 32 bits of its address, as an int32 (see FtraceFunc in ftrace-core). */
  func: number;
  depth: number;
}

/** struct ftrace_graph_ret: what a return callback sees. */
export interface FtraceGraphRet {
  fn: number;
  /** As FtraceGraphEnt.func. */
  func: number;
  depth: number;
  /** Simulated nanoseconds at entry and at return (CPU clock). */
  calltime: number;
  rettime: number;
  /** The task's overrun count at return. */
  overrun: number;
  /** The return value register, in 32-bit halves. */
  retvalLo: number;
  retvalHi: number;
}

/** trace_func_graph_ent_t: non-zero (or true) asks for the return callback. */
export type GraphEntryFunc = (
  trace: FtraceGraphEnt,
  gops: FgraphOps,
  fregs: FtraceRegs | null,
  cpu: Cpu,
) => number | boolean;

/** trace_func_graph_ret_t: gets the ftrace_regs holding the return value. */
export type GraphReturnFunc = (
  trace: FtraceGraphRet,
  gops: FgraphOps,
  fregs: FtraceRegs,
  cpu: Cpu,
) => void;

export interface FgraphOpsInit {
  readonly name?: string;
  readonly entryfunc: GraphEntryFunc;
  readonly retfunc?: GraphReturnFunc;
  readonly private?: unknown;
}

/** struct fgraph_ops: a graph user with its own ftrace_ops filter. */
export class FgraphOps {
  declare readonly name: string;
  declare entryfunc: GraphEntryFunc;
  declare retfunc: GraphReturnFunc | null;
  private: unknown;
  /**
   * Holds this user's filter and notrace hashes; never registered with ftrace itself. Change
   * them through Fgraph.setFilter, which also updates the shared ops and the per-function masks.
   */
  declare readonly ops: FtraceOps;
  /** Index into the users array while registered, -1 otherwise. */
  idx = -1;

  constructor(init: FgraphOpsInit) {
    this.name = init.name ?? 'fgraph_ops';
    this.entryfunc = init.entryfunc;
    this.retfunc = init.retfunc ?? null;
    this.private = init.private;
    this.ops = new FtraceOps({ name: this.name, func: () => undefined });
  }
}

/** Counters for tests and benchmarks. */
export interface FgraphStats {
  entries: number;
  hooked: number;
  returns: number;
}

/**
 * The function graph infrastructure over one ftrace: up to 16 users on per-task shadow stacks,
 * one shared ftrace_ops for their entries, and return_to_handler for their returns.
 */
export class Fgraph {
  declare readonly ftrace: Ftrace;
  declare readonly kernel: Kernel;
  /** Address of return_to_handler. */
  declare readonly returnToHandler: bigint;
  readonly stats: FgraphStats = { entries: 0, hooked: 0, returns: 0 };
  /** fgraph_array: null where the kernel has fgraph_stub. */
  private readonly users: (FgraphOps | null)[] = new Array<FgraphOps | null>(
    FGRAPH_ARRAY_SIZE,
  ).fill(null);
  /** fgraph_lru_table: freed indices are reused last, so in-flight frames rarely see a new user. */
  private readonly lru: number[] = Array.from({ length: FGRAPH_ARRAY_SIZE }, (_, i) => i);
  private count = 0;
  /** Per function: bit i set when user i's hashes trace it (the list walk without hash tests). */
  declare private readonly fnUsers: Uint16Array;
  /** The shared ftrace_ops every user's entry goes through. */
  declare private readonly graphOps: FtraceOps;
  declare private readonly slot: number;
  /** State shared with the generated entry and return code (see graph-code.ts). */
  private readonly hot: GraphHot = { single: null, cur: null, inEntry: null, reserved: false };
  /** The generated function_graph_enter and return_to_handler. */
  declare private readonly code: GraphCode;
  /** Size in words of the last retrieveData() hit. */
  retrievedWords = 0;

  private constructor(ftrace: Ftrace, rth: bigint) {
    this.ftrace = ftrace;
    const kernel = ftrace.kernel;
    this.kernel = kernel;
    this.returnToHandler = rth;
    const info = kernel.info;
    const pt = info.ptRegs;
    const word = (name: string): number =>
      (pt.fields[pt.index.get(name) as number]?.offset as number) / 4;
    const fword = (name: string | null): number => {
      const i = name === null ? undefined : info.ftraceRegs.index.get(name);
      return i === undefined ? -1 : (info.ftraceRegs.fields[i]?.offset as number) / 4;
    };
    this.slot = kernel.allocTaskSlot();
    this.fnUsers = new Uint16Array(kernel.image.count);
    const arch: ArchName = kernel.arch;
    const retRegs = kernel.cpus.map(() => new FtraceRegs(arch, { caller: 'return' }));
    this.code = emitGraphCode(
      {
        hot: this.hot,
        stats: this.stats,
        users: this.users,
        fnUsers: this.fnUsers,
        ents: kernel.cpus.map(() => ({ fn: 0, func: 0, depth: 0 })),
        rets: kernel.cpus.map(() => ({
          fn: 0,
          func: 0,
          depth: 0,
          calltime: 0,
          rettime: 0,
          overrun: 0,
          retvalLo: 0,
          retvalHi: 0,
        })),
        retRegs,
        addrHi: kernel.image.addrHi,
        ensureStack: (task) => this.ensureStack(task),
      },
      {
        wide: info.wordSize === 8,
        slot: this.slot,
        spW: word(info.ptRoles.sp),
        ipW: word(info.ptRoles.ip),
        lrW: info.ptRoles.lr === null ? -1 : word(info.ptRoles.lr),
        fregsLrW: fword(info.ftraceRoles.lr),
        fregsIpW: fword(info.ftraceRoles.ip),
        retW: [word(info.ptRoles.ret[0]), word(info.ptRoles.ret[1])],
        retSaveWords: (retRegs[0] as FtraceRegs).moves.saveWords,
        rthLo: Number(rth & 0xffffffffn) | 0,
        rthHi: Number(rth >> 32n) | 0,
      },
      `fgraph_${arch}_${this.slot}.js`,
    );
    this.graphOps = new FtraceOps({
      name: 'graph_ops',
      // Without WITH_ARGS (i386) ftrace_caller saves no registers; ask for pt_regs, so entry
      // callbacks (fprobe, its fetch args) see the arguments as the kernel gives them there.
      flags: FTRACE_OPS_FL_GRAPH | (info.capabilities.withArgs ? 0 : FTRACE_OPS_FL_SAVE_REGS),
      func: this.code.enter,
    });
  }

  /**
   * Sets up fgraph on an ftrace: return_to_handler at its symbol, and the unwinder hook that maps
   * it back to real return addresses.
   */
  static attach(ftrace: Ftrace): Fgraph | TracelabError {
    const kernel = ftrace.kernel;
    const rth = kernel.symbolAddress('return_to_handler');
    if (rth instanceof KernelError) return rth;
    const fg = new Fgraph(ftrace, rth);
    const err = kernel.registerHandler(rth, 'return_to_handler', fg.code.ret);
    if (err !== null) return err;
    kernel.graphRetAddr = (task, addr, state) => fg.graphRetAddr(task, addr, state);
    return fg;
  }

  /** Registered users by index (fgraph_array without the stubs). */
  get registered(): readonly (FgraphOps | null)[] {
    return this.users;
  }

  /** How entries reach the users: nobody, one user without a filter test, or each user tested. */
  get dispatch(): 'none' | 'single' | 'list' {
    return this.count === 0 ? 'none' : this.hot.single !== null ? 'single' : 'list';
  }

  /** The shared ftrace_ops, for tracefs views (enabled_functions). */
  get sharedOps(): FtraceOps {
    return this.graphOps;
  }

  /** The task's shadow stack, or null before fgraph has touched it. */
  stackOf(task: Task): ShadowStack | null {
    return (task.slots[this.slot] as ShadowStack | undefined) ?? null;
  }

  private ensureStack(task: Task): ShadowStack {
    let st = task.slots[this.slot] as ShadowStack | undefined;
    if (st === undefined) {
      // A task created after registration gets its stack on its first traced call, as a forked
      // task gets one in the kernel.
      st = new ShadowStack();
      task.slots[this.slot] = st;
    }
    return st;
  }

  // ---- registration ----

  /** register_ftrace_graph(). */
  register(gops: FgraphOps): TracelabError | null {
    if (gops.idx >= 0) return new TracelabError('EBUSY', `${gops.name}: already registered`);
    const idx = this.lru[0];
    if (idx === undefined) {
      return new TracelabError(
        'ENOSPC',
        `${gops.name}: all ${FGRAPH_ARRAY_SIZE} graph users taken`,
      );
    }
    this.ftrace.initOps(gops.ops);
    for (const task of this.kernel.tasks) this.ensureStack(task).setTaskVar(idx, 0);
    this.lru.shift();
    gops.idx = idx;
    this.users[idx] = gops;
    this.count++;
    const err = this.update();
    if (err !== null) {
      this.release(gops);
      this.update();
    }
    return err;
  }

  /**
   * unregister_ftrace_graph(): the user's slot goes back to the stub at once, so frames still in
   * flight skip its return callback; their return addresses are still restored.
   */
  unregister(gops: FgraphOps): TracelabError | null {
    if (gops.idx < 0 || this.users[gops.idx] !== gops) {
      return new TracelabError('EINVAL', `${gops.name}: not registered`);
    }
    this.release(gops);
    return this.update();
  }

  private release(gops: FgraphOps): void {
    this.users[gops.idx] = null;
    this.lru.push(gops.idx);
    gops.idx = -1;
    this.count--;
  }

  /** Writes a user's filter (or notrace with `notrace`), in set_ftrace_filter syntax. */
  setFilter(
    gops: FgraphOps,
    text: string,
    options: { notrace?: boolean; append?: boolean } = {},
  ): TracelabError | null {
    const err = this.ftrace.setFilter(gops.ops, text, {
      notrace: options.notrace === true,
      append: options.append === true,
    });
    if (err !== null) return err;
    return gops.idx >= 0 ? this.update() : null;
  }

  /**
   * Makes the shared ftrace_ops trace the union of the users' functions and picks the dispatch:
   * one user is called without a filter test; several are each tested against their own hashes.
   */
  private update(): TracelabError | null {
    this.hot.single = null;
    if (this.count === 1) this.hot.single = this.users.find((u) => u !== null) ?? null;
    const fns: number[] = [];
    this.fnUsers.fill(0);
    if (this.count > 0) {
      for (const f of this.ftrace.table.functions) {
        let mask = 0;
        for (const u of this.users) {
          if (u !== null && u.ops.traces(f.id)) mask |= 1 << u.idx;
        }
        this.fnUsers[f.id] = mask;
        if (mask !== 0) fns.push(f.id);
      }
    }
    const on = (this.graphOps.flags & FTRACE_OPS_FL_ENABLED) !== 0;
    if (fns.length === 0) {
      return on ? this.ftrace.unregisterFtraceFunction(this.graphOps) : null;
    }
    const err = this.ftrace.setFilterFunctions(this.graphOps, fns, { reset: true });
    if (err !== null || on) return err;
    return this.ftrace.registerFtraceFunction(this.graphOps);
  }

  // ---- data on the shadow stack ----

  /**
   * fgraph_reserve_data(): `bytes` (1..256) of the current frame for the user whose entry
   * callback runs now, once per callback. Returns the first word's index into the stack (see
   * currentStack), or -1 when refused or the stack is full. Dropped if the callback returns 0.
   */
  reserveData(gops: FgraphOps, bytes: number): number {
    const hot = this.hot;
    const st = hot.cur;
    if (st === null || hot.inEntry !== gops || hot.reserved) return -1;
    if (!(bytes >= 1 && bytes <= FGRAPH_MAX_DATA_WORDS * 8)) return -1;
    const words = Math.ceil(bytes / 8);
    const top = st.curr;
    const next = top + words + 1;
    if (next >= SHADOW_STACK_MAX_OFFSET) return -1;
    const prev = markerOffset(st.lo(top - 1));
    st.setWord(next - 1, makeDataMarker(gops.idx, words, prev + words + 1), 0);
    st.curr = next;
    hot.reserved = true;
    return top;
  }

  /**
   * fgraph_retrieve_parent_data(): the data `gops` reserved in the frame `depth` levels above
   * the one returning now (0 = this frame). Returns its first word's index and sets
   * retrievedWords, or -1 when there is none.
   */
  retrieveData(gops: FgraphOps, depth = 0): number {
    const st = this.hot.cur;
    if (st === null) return -1;
    let top = st.curr;
    for (let d = 0; d < depth; d++) {
      top = st.frameBelow(top);
      if (top < 0) return -1;
    }
    let i = top - 1;
    while (i >= 0) {
      const v = st.lo(i);
      if (markerType(v) !== FGRAPH_TYPE_DATA) return -1;
      const words = markerDataWords(v);
      if (markerDataIndex(v) === gops.idx) {
        this.retrievedWords = words;
        return i - words;
      }
      i -= words + 1;
    }
    return -1;
  }

  /** The shadow stack of the callback running now (current->ret_stack). */
  get currentStack(): ShadowStack | null {
    return this.hot.cur;
  }

  /**
   * ftrace_graph_ret_addr(): a return_to_handler found by an unwinder is the return address of
   * the state.index-th hooked frame from the top of the task's shadow stack.
   */
  graphRetAddr(task: Task, addr: bigint, state: { index: number }): bigint {
    if (addr !== this.returnToHandler) return addr;
    const st = this.stackOf(task);
    if (st === null) return addr;
    const frames = st.frames();
    // A frame whose entry callbacks still run has not hooked its return address yet.
    const skip = st.entering ? 1 : 0;
    const f = frames[skip + state.index];
    if (f === undefined) return addr;
    state.index++;
    return st.frameRet(f);
  }
}
