import {
  encodeEntryCall,
  encodeEntryNop,
  FtraceRegs,
  type ArchInfo,
  type ArchName,
  type WordMove,
} from '@tracelab/arch-isa';
import { ERRNO, type ErrnoCode } from '@tracelab/contracts';
import {
  ENTRY_CONTINUE,
  ENTRY_SKIP,
  KernelError,
  type Cpu,
  type FunctionInfo,
  type Kernel,
  type TextHandler,
} from '@tracelab/kernel';
import { FtraceError } from './errors.js';
import {
  FilterTable,
  FtraceHash,
  formatFilter,
  writeFilter,
  type FilterWriteOptions,
} from './filter.js';
import {
  FTRACE_OPS_CMD_DISABLE_SHARE_IPMODIFY_PEER,
  FTRACE_OPS_CMD_ENABLE_SHARE_IPMODIFY_PEER,
  FTRACE_OPS_CMD_ENABLE_SHARE_IPMODIFY_SELF,
  FTRACE_OPS_FL_ALLOC_TRAMP,
  FTRACE_OPS_FL_DELETED,
  FTRACE_OPS_FL_DIRECT,
  FTRACE_OPS_FL_DYNAMIC,
  FTRACE_OPS_FL_ENABLED,
  FTRACE_OPS_FL_INITIALIZED,
  FTRACE_OPS_FL_IPMODIFY,
  FTRACE_OPS_FL_PERMANENT,
  FTRACE_OPS_FL_RCU,
  FTRACE_OPS_FL_RECURSION,
  FTRACE_OPS_FL_SAVE_REGS,
  FTRACE_OPS_FL_SAVE_REGS_IF_SUPPORTED,
  FTRACE_OPS_FL_STUB,
  FtraceOps,
  type FtraceFunc,
  type FtraceOpsCmd,
} from './ops.js';
import {
  FTRACE_FL_CALL_OPS,
  FTRACE_FL_CALL_OPS_EN,
  FTRACE_FL_DIRECT,
  FTRACE_FL_DIRECT_EN,
  FTRACE_FL_ENABLED,
  FTRACE_FL_IPMODIFY,
  FTRACE_FL_MODIFIED,
  FTRACE_FL_REGS,
  FTRACE_FL_REGS_EN,
  FTRACE_FL_TOUCHED,
  FTRACE_FL_TRAMP,
  FTRACE_FL_TRAMP_EN,
  FTRACE_REF_MAX,
} from './records.js';
import { RecursionGuard, TRACE_FTRACE_START, TRACE_LIST_START } from './recursion.js';
import {
  emitOpsTrampoline,
  type DirectSlot,
  type Frame,
  type TrampolineEnv,
} from './trampoline-code.js';

/** How ftrace_caller dispatches (ftrace_trace_function). */
export const DISPATCH_STUB = 0;
export const DISPATCH_SINGLE = 1;
export const DISPATCH_LIST = 2;
export type DispatchMode = typeof DISPATCH_STUB | typeof DISPATCH_SINGLE | typeof DISPATCH_LIST;

function directSlot(info: ArchInfo, fregs: FtraceRegs | null, full: boolean): DirectSlot {
  const name = full ? info.ptRoles.direct : info.ftraceRoles.direct;
  const i = fregs === null || name === null ? undefined : fregs.layout.index.get(name);
  const f = i === undefined ? undefined : fregs?.layout.fields[i];
  if (f === undefined) return { lo: -1, hi: -1 };
  return { lo: f.offset / 4, hi: f.size === 8 ? f.offset / 4 + 1 : -1 };
}

const reverseErrno = new Map<number, ErrnoCode>(
  Object.entries(ERRNO).map(([k, v]) => [v, k as ErrnoCode]),
);

function errnoError(ret: number, what: string): FtraceError {
  const code = reverseErrno.get(-ret) ?? 'EINVAL';
  return new FtraceError(code, `${what} returned ${ret}`);
}

function kernelError(e: KernelError, what: string): FtraceError {
  return new FtraceError(e.code, `${what}: ${e.message}`);
}

/** Counters of the dispatch paths, for tests and benchmarks. */
export interface FtraceStats {
  callerHits: number;
  regsCallerHits: number;
  trampolineHits: number;
  listWalks: number;
  directJumps: number;
  /** text_poke calls of the last update pass. */
  lastPokes: number;
}

/**
 * The ftrace core over one simulated kernel: ftrace_ops registration, per-function records,
 * call-site patching through text_poke, the ftrace_caller / ftrace_regs_caller dispatch, per-ops
 * trampolines and direct calls.
 */
export class Ftrace {
  declare readonly kernel: Kernel;
  declare readonly arch: ArchName;
  declare readonly info: ArchInfo;
  /** available_filter_functions. */
  declare readonly table: FilterTable;
  /** dyn_ftrace flags per image function index (0 for untraceable functions). */
  declare readonly recFlags: Uint32Array;
  /** Low half of what each call site calls now; 0 while it is a NOP. */
  declare readonly siteTarget: Uint32Array;
  readonly recursion = new RecursionGuard();
  readonly stats: FtraceStats = {
    callerHits: 0,
    regsCallerHits: 0,
    trampolineHits: 0,
    listWalks: 0,
    directJumps: 0,
    lastPokes: 0,
  };
  /** ftrace_caller and ftrace_regs_caller (the same on arches without WITH_REGS). */
  declare readonly callerAddr: bigint;
  declare readonly regsCallerAddr: bigint;
  /** kernel.ftrace_enabled sysctl. */
  private enabledSysctl = true;
  /** ftrace_ops_list: enabled ops, newest first. */
  private list: FtraceOps[] = [];
  private mode: DispatchMode = DISPATCH_STUB;
  private single: FtraceOps | null = null;
  /** The unique ops of a record with CALL_OPS or TRAMP. */
  private readonly recOps: (FtraceOps | null)[];
  /** direct_functions: image index -> direct target. */
  private readonly directFunctions = new Map<number, bigint>();
  /** Code at direct targets, by low address half, so a caller can jump to it. */
  private readonly directHandlers = new Map<number, TextHandler>();
  declare private readonly frames: Frame[][];
  declare private readonly nest: Int32Array;
  /** High and low halves of the text base, for callbacks that rebuild full addresses. */
  declare readonly textHigh: number;
  declare readonly textLow: number;
  /** ip, sp and the link register (-1 on x86) as word indices into PtRegs.u32. */
  declare private readonly ipW: number;
  declare private readonly spW: number;
  declare private readonly lrW: number;
  /** The image's function addresses (low halves), read on every traced call. */
  declare private readonly addrLo: Uint32Array;
  private readonly freeTrampolines: bigint[] = [];
  declare private readonly argsDirect: DirectSlot;
  declare private readonly fullDirect: DirectSlot;
  /**
   * The two callers' save and restore code (arch-isa's, per caller kind), each called from its
   * own site so V8 inlines it; null where the arch lacks that caller.
   */
  declare private readonly argsSave: WordMove | null;
  declare private readonly argsRestore: WordMove | null;
  declare private readonly fullSave: WordMove | null;
  declare private readonly fullRestore: WordMove | null;
  /** What per-ops trampolines share with this ftrace (see emitOpsTrampoline). */
  declare private readonly trampolineEnv: TrampolineEnv;
  /** The idle entry bytes, encoded once. */
  declare readonly nopBytes: Uint8Array;
  /** Full addresses of call targets by low half, so patching builds no bigint per site. */
  private readonly targetAddrs = new Map<number, bigint>();
  private readonly funcSyms = new Map<FtraceOps, bigint>();

  private constructor(kernel: Kernel, caller: bigint, regsCaller: bigint) {
    this.kernel = kernel;
    this.arch = kernel.arch;
    this.info = kernel.info;
    const image = kernel.image;
    this.table = new FilterTable(
      image.functions
        .filter((f) => f.traceable)
        .sort((a, b) => (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : 0))
        .map((f) => ({ id: f.index, name: f.name, module: f.module })),
    );
    this.recFlags = new Uint32Array(image.count);
    this.siteTarget = new Uint32Array(image.count);
    this.recOps = new Array<FtraceOps | null>(image.count).fill(null);
    this.callerAddr = caller;
    this.regsCallerAddr = regsCaller;
    this.nopBytes = encodeEntryNop(kernel.arch);
    this.textHigh = Number(image.textBase >> 32n);
    this.textLow = Number(image.textBase & 0xffffffffn);
    const pt = this.info.ptRegs.index;
    const word = (role: string): number =>
      (this.info.ptRegs.fields[pt.get(role) as number] as { offset: number }).offset / 4;
    this.ipW = word(this.info.ptRoles.ip);
    this.spW = word(this.info.ptRoles.sp);
    this.lrW = this.info.ptRoles.lr === null ? -1 : word(this.info.ptRoles.lr);
    this.addrLo = image.addrLo;
    this.frames = kernel.cpus.map(() => []);
    this.nest = new Int32Array(kernel.cpus.length);
    for (let c = 0; c < kernel.cpus.length; c++) {
      for (let d = 0; d < 8; d++) this.frames[c]?.push(this.makeFrame());
    }
    const f0 = this.frames[0]?.[0] as Frame;
    this.argsSave = f0.args?.moves.save ?? null;
    this.argsRestore = f0.args?.moves.restore ?? null;
    this.fullSave = f0.full?.moves.save ?? null;
    this.fullRestore = f0.full?.moves.restore ?? null;
    this.argsDirect = directSlot(this.info, f0.args, false);
    this.fullDirect = directSlot(this.info, f0.full, true);
    this.trampolineEnv = {
      nest: this.nest,
      frames: this.frames,
      grow: (cpu) => this.frames[cpu]?.push(this.makeFrame()),
      stats: this.stats,
      addrLo: this.addrLo,
      recursion: this.recursion,
      finishChanged: (cpu, fn, frame, fregs, direct) =>
        this.finishChanged(cpu, fn, frame, fregs, direct),
    };
  }

  /**
   * ftrace_init(): installs ftrace_caller and ftrace_regs_caller at their symbols of the image
   * and checks that every call site is the idle NOP.
   */
  static attach(kernel: Kernel): Ftrace | FtraceError {
    const caller = kernel.symbolAddress('ftrace_caller');
    if (caller instanceof KernelError) return kernelError(caller, 'ftrace_init');
    let regsCaller = caller;
    if (kernel.info.capabilities.withRegs) {
      const r = kernel.symbolAddress('ftrace_regs_caller');
      if (r instanceof KernelError) return kernelError(r, 'ftrace_init');
      regsCaller = r;
    }
    const ft = new Ftrace(kernel, caller, regsCaller);
    const nop = ft.nopBytes;
    const text = kernel.text;
    for (const f of ft.table.functions) {
      const off = kernel.image.textOffset(f.id);
      for (let i = 0; i < nop.length; i++) {
        if (text[off + i] !== nop[i]) {
          return new FtraceError('EINVAL', `ftrace_init: ${f.name} does not start with the NOP`);
        }
      }
    }
    let err = kernel.registerHandler(caller, 'ftrace_caller', (cpu, fn) =>
      ft.callerEntry(cpu, fn, false),
    );
    if (err === null && regsCaller !== caller) {
      err = kernel.registerHandler(regsCaller, 'ftrace_regs_caller', (cpu, fn) =>
        ft.callerEntry(cpu, fn, true),
      );
    }
    return err === null ? ft : kernelError(err, 'ftrace_init');
  }

  private makeFrame(): Frame {
    const caps = this.info.capabilities;
    return {
      save: new Uint32Array(this.info.ptRegs.size / 4),
      args: caps.withArgs ? new FtraceRegs(this.arch, { caller: 'caller' }) : null,
      full: caps.withRegs ? new FtraceRegs(this.arch, { caller: 'regs_caller' }) : null,
      calls: 0,
    };
  }

  /** The full address of a low half of kernel text. */
  address(lo: number): bigint {
    return (BigInt(this.textHigh) << 32n) | BigInt(lo >>> 0);
  }

  get dispatchMode(): DispatchMode {
    return this.mode;
  }

  /** The enabled ops, newest first (ftrace_ops_list). */
  get ops(): readonly FtraceOps[] {
    return this.list;
  }

  // ---- the traced call ----

  /** The return address of the function being entered, low half as an int32 (see FtraceFunc). */
  private parentIp(cpu: Cpu): number {
    const regs = cpu.regs;
    if (this.lrW >= 0) return regs.i32[this.lrW] as number;
    const task = cpu.current;
    if (task === null) return 0;
    return task.stackI32[((regs.i32[this.spW] as number) - task.stackBaseLo) >> 2] as number;
  }

  private frame(cpu: number): Frame {
    const level = this.nest[cpu] as number;
    const stack = this.frames[cpu] as Frame[];
    // Deeper nesting than preallocated happens only with callbacks that recurse unguarded.
    if (level >= stack.length) stack.push(this.makeFrame());
    this.nest[cpu] = level + 1;
    return stack[level] as Frame;
  }

  /** ftrace_caller / ftrace_regs_caller: save, dispatch, restore, then direct or ip change. */
  private callerEntry(cpu: Cpu, fn: number, regsCaller: boolean): number {
    const frame = this.frame(cpu.id);
    const fregs = regsCaller ? frame.full : frame.args;
    const direct = regsCaller ? this.fullDirect : this.argsDirect;
    this.save(cpu, frame, fregs, direct);
    if (regsCaller) this.stats.regsCallerHits++;
    else this.stats.callerHits++;
    const ip = (this.addrLo[fn] as number) | 0;
    const parent = this.parentIp(cpu);
    if ((this.recFlags[fn] as number) & FTRACE_FL_CALL_OPS_EN) {
      // arm64 CALL_OPS: the ops literal before the function names the one ops to call.
      this.callOps(this.recOps[fn] as FtraceOps, ip, parent, fregs, cpu, fn);
    } else if (this.mode === DISPATCH_SINGLE) {
      this.callOps(this.single as FtraceOps, ip, parent, fregs, cpu, fn);
    } else if (this.mode === DISPATCH_LIST) {
      this.listFunc(ip, parent, fregs, cpu, fn, regsCaller);
    }
    return this.finish(cpu, fn, frame, fregs, direct);
  }

  /** The caller's prologue: keep the CPU registers and fill the ftrace_regs it hands out. */
  private save(cpu: Cpu, frame: Frame, fregs: FtraceRegs | null, direct: DirectSlot): void {
    // Without an ftrace_regs (i386 ftrace_caller) keep every register: callbacks may call
    // kernel code. With one, its held set is what a call can clobber, so it is the save area.
    frame.calls = cpu.calls;
    if (fregs === null) {
      frame.save.set(cpu.regs.u32);
      return;
    }
    if (fregs === frame.full) (this.fullSave as WordMove)(fregs.u32, cpu.regs.u32);
    else (this.argsSave as WordMove)(fregs.u32, cpu.regs.u32);
    if (direct.lo >= 0) fregs.u32[direct.lo] = 0;
    if (direct.hi >= 0) fregs.u32[direct.hi] = 0;
    fregs.dirty = false;
  }

  /** ftrace_ops_get_func(): the ops' func, through the assist wrapper when it asks for one. */
  private callOps(
    op: FtraceOps,
    ip: number,
    parent: number,
    fregs: FtraceRegs | null,
    cpu: Cpu,
    fn: number,
  ): void {
    if ((op.flags & (FTRACE_OPS_FL_RECURSION | FTRACE_OPS_FL_RCU)) === 0) {
      op.func(ip, parent, op, fregs, cpu, fn);
      return;
    }
    this.assistFunc(op, ip, parent, fregs, cpu, fn);
  }

  /** ftrace_ops_assist_func: the recursion guard around the callback. */
  private assistFunc(
    op: FtraceOps,
    ip: number,
    parent: number,
    fregs: FtraceRegs | null,
    cpu: Cpu,
    fn: number,
  ): void {
    const pid = cpu.current === null ? 0 : cpu.current.pid;
    const bit = this.recursion.lock(pid, cpu.preemptCount, TRACE_FTRACE_START, ip, parent);
    if (bit < 0) return;
    op.func(ip, parent, op, fregs, cpu, fn);
    this.recursion.unlock(pid, bit);
  }

  /** ftrace_ops_list_func: every enabled ops whose hashes hold ip, under the list's guard. */
  private listFunc(
    ip: number,
    parent: number,
    fregs: FtraceRegs | null,
    cpu: Cpu,
    fn: number,
    regsCaller: boolean,
  ): void {
    const pid = cpu.current === null ? 0 : cpu.current.pid;
    const bit = this.recursion.lock(pid, cpu.preemptCount, TRACE_LIST_START, ip, parent);
    if (bit < 0) return;
    this.stats.listWalks++;
    const list = this.list;
    const needRegs = this.info.capabilities.withRegs && !regsCaller;
    for (let i = 0; i < list.length; i++) {
      const op = list[i] as FtraceOps;
      if ((op.flags & FTRACE_OPS_FL_STUB) !== 0) continue;
      // With WITH_REGS, an ops that wants pt_regs is never called without them.
      if (needRegs && (op.flags & FTRACE_OPS_FL_SAVE_REGS) !== 0) continue;
      if (op.traces(fn)) op.func(ip, parent, op, fregs, cpu, fn);
    }
    this.recursion.unlock(pid, bit);
  }

  /**
   * The caller's epilogue. Registers change only through a write to ftrace_regs or kernel code a
   * callback ran; without either, restoring would write back what is there, no direct call was
   * asked for and ip is still the function's entry. The rest is out of line: V8 inlines small
   * functions only, within a budget per traced call.
   */
  private finish(
    cpu: Cpu,
    fn: number,
    frame: Frame,
    fregs: FtraceRegs | null,
    direct: DirectSlot,
  ): number {
    this.nest[cpu.id] = (this.nest[cpu.id] as number) - 1;
    if (fregs !== null && !fregs.dirty && cpu.calls === frame.calls) return ENTRY_CONTINUE;
    return this.finishChanged(cpu, fn, frame, fregs, direct);
  }

  /** finish() when registers may have changed: restore, then direct call or ip move. */
  private finishChanged(
    cpu: Cpu,
    fn: number,
    frame: Frame,
    fregs: FtraceRegs | null,
    direct: DirectSlot,
  ): number {
    const u = cpu.regs.u32;
    if (fregs === null) {
      if (cpu.calls !== frame.calls) u.set(frame.save);
      return ENTRY_CONTINUE;
    }
    if (fregs === frame.full) (this.fullRestore as WordMove)(u, fregs.u32);
    else (this.argsRestore as WordMove)(u, fregs.u32);
    if (direct.lo >= 0) {
      const f = fregs.u32;
      const lo = f[direct.lo] as number;
      if (lo !== 0 || (direct.hi >= 0 && f[direct.hi] !== 0)) {
        // A callback asked for a direct call (arch_ftrace_set_direct_caller): jump there.
        const h = this.directHandlers.get(lo);
        if (h !== undefined) {
          this.stats.directJumps++;
          return h(cpu, fn);
        }
      }
    }
    const ipLo = u[this.ipW] as number;
    const fnLo = this.addrLo[fn] as number;
    if (ipLo === fnLo) return ENTRY_CONTINUE;
    // A moved ip that is a function entry replaces the function; anything else returned early.
    const off = ipLo - this.textLow;
    const target = this.kernel.image.indexAtOffset(off);
    if (target >= 0 && this.kernel.image.textOffset(target) === off) return ENTRY_CONTINUE;
    return ENTRY_SKIP;
  }

  // ---- filters ----

  /** ftrace_ops_init(): gives the ops its hashes over this image. */
  initOps(op: FtraceOps): void {
    if ((op.flags & FTRACE_OPS_FL_INITIALIZED) !== 0 && op.filterHash !== null) return;
    op.filterHash = new FtraceHash(this.kernel.image.count);
    op.notraceHash = new FtraceHash(this.kernel.image.count);
    op.flags |= FTRACE_OPS_FL_INITIALIZED;
  }

  /**
   * ftrace_set_filter / ftrace_set_notrace: writes the set_ftrace_filter syntax to one of the
   * ops' hashes; a registered ops has its call sites updated at once.
   */
  setFilter(
    op: FtraceOps,
    text: string,
    options: FilterWriteOptions & { notrace?: boolean } = {},
  ): FtraceError | null {
    this.initOps(op);
    const hash = (options.notrace === true ? op.notraceHash : op.filterHash) as FtraceHash;
    const old = new FtraceHash(hash.size);
    old.copyFrom(hash);
    const err = writeFilter(hash, this.table, text, {
      ...options,
      enable: options.notrace !== true,
    });
    const upd = this.hashChanged(op, hash, old);
    return err ?? upd;
  }

  /** ftrace_set_filter_ips: adds or removes functions by image index. */
  setFilterFunctions(
    op: FtraceOps,
    fns: readonly number[],
    options: { remove?: boolean; reset?: boolean; notrace?: boolean } = {},
  ): FtraceError | null {
    this.initOps(op);
    for (const fn of fns) {
      if (this.table.position(fn) < 0) {
        return new FtraceError(
          'ENOENT',
          `function #${fn} (${this.kernel.image.functions[fn]?.name ?? '?'}) is not traceable`,
        );
      }
    }
    const hash = (options.notrace === true ? op.notraceHash : op.filterHash) as FtraceHash;
    const old = new FtraceHash(hash.size);
    old.copyFrom(hash);
    if (options.reset === true) hash.clear();
    for (const fn of fns) {
      if (options.remove === true) hash.remove(fn);
      else hash.add(fn);
    }
    return this.hashChanged(op, hash, old);
  }

  /** Reads an ops' filter or notrace hash as set_ftrace_filter prints it. */
  readFilter(op: FtraceOps, notrace = false): string {
    this.initOps(op);
    const hash = (notrace ? op.notraceHash : op.filterHash) as FtraceHash;
    return formatFilter(hash, this.table, !notrace);
  }

  /** ftrace_hash_move_and_update_ops(): re-checks IPMODIFY and repatches a live ops. */
  private hashChanged(op: FtraceOps, hash: FtraceHash, old: FtraceHash): FtraceError | null {
    if ((op.flags & FTRACE_OPS_FL_ENABLED) === 0) return null;
    const before = this.tracedSetWith(op, hash, old);
    const err = this.checkIpmodify(op, this.opsSet(op), before);
    if (err !== null) {
      hash.copyFrom(old);
      return err;
    }
    this.updateRecords(this.union(before, this.opsSet(op)));
    return null;
  }

  /** The functions an ops traced when `hash` still held `old`. */
  private tracedSetWith(op: FtraceOps, hash: FtraceHash, old: FtraceHash): Uint8Array {
    const now = new FtraceHash(hash.size);
    now.copyFrom(hash);
    hash.copyFrom(old);
    const set = this.opsSet(op);
    hash.copyFrom(now);
    return set;
  }

  /** The functions an ops traces, as a bitmap over image indices. */
  private opsSet(op: FtraceOps): Uint8Array {
    const set = new Uint8Array(this.kernel.image.count);
    for (const f of this.table.functions) if (op.traces(f.id)) set[f.id] = 1;
    return set;
  }

  private union(a: Uint8Array, b: Uint8Array): Uint8Array {
    const out = new Uint8Array(a.length);
    for (let i = 0; i < a.length; i++) out[i] = (a[i] as number) | (b[i] as number);
    return out;
  }

  // ---- registration ----

  /** kernel.ftrace_enabled. */
  get ftraceEnabled(): boolean {
    return this.enabledSysctl;
  }

  /**
   * Writes kernel.ftrace_enabled: 0 turns every call site back into a NOP (refused with EBUSY
   * while a PERMANENT ops is registered), 1 restores them.
   */
  setFtraceEnabled(on: boolean): FtraceError | null {
    if (on === this.enabledSysctl) return null;
    if (!on) {
      const perm = this.list.find((o) => (o.flags & FTRACE_OPS_FL_PERMANENT) !== 0);
      if (perm !== undefined) {
        return new FtraceError('EBUSY', `ftrace_enabled: PERMANENT ops '${perm.name}' registered`);
      }
    }
    this.enabledSysctl = on;
    this.updateRecords(null);
    return null;
  }

  /** register_ftrace_function(). */
  registerFtraceFunction(op: FtraceOps): FtraceError | null {
    this.initOps(op);
    const caps = this.info.capabilities;
    if ((op.flags & FTRACE_OPS_FL_DELETED) !== 0) {
      return new FtraceError('EINVAL', `register ${op.name}: ops was deleted`);
    }
    if ((op.flags & FTRACE_OPS_FL_ENABLED) !== 0) {
      return new FtraceError('EBUSY', `register ${op.name}: already registered`);
    }
    if (!caps.withRegs) {
      if (
        (op.flags & FTRACE_OPS_FL_SAVE_REGS) !== 0 &&
        (op.flags & FTRACE_OPS_FL_SAVE_REGS_IF_SUPPORTED) === 0
      ) {
        return new FtraceError(
          'EINVAL',
          `register ${op.name}: SAVE_REGS needs DYNAMIC_FTRACE_WITH_REGS, which ${this.arch} lacks (set SAVE_REGS_IF_SUPPORTED)`,
        );
      }
      if ((op.flags & FTRACE_OPS_FL_SAVE_REGS_IF_SUPPORTED) !== 0) {
        op.flags |= FTRACE_OPS_FL_SAVE_REGS;
      }
    }
    if (!this.enabledSysctl && (op.flags & FTRACE_OPS_FL_PERMANENT) !== 0) {
      return new FtraceError('EBUSY', `register ${op.name}: PERMANENT while ftrace_enabled is 0`);
    }
    if (!op.isStatic) op.flags |= FTRACE_OPS_FL_DYNAMIC;
    const set = this.opsSet(op);
    if ((op.flags & FTRACE_OPS_FL_IPMODIFY) !== 0) {
      const err = this.shareWithDirect(op, set, FTRACE_OPS_CMD_ENABLE_SHARE_IPMODIFY_PEER);
      if (err !== null) return err;
    }
    const err = this.checkIpmodify(op, set, null);
    if (err !== null) return err;
    this.list.unshift(op);
    op.flags |= FTRACE_OPS_FL_ENABLED;
    const terr = this.updateTrampoline(op);
    if (terr !== null) {
      this.list.shift();
      op.flags &= ~FTRACE_OPS_FL_ENABLED;
      return terr;
    }
    this.updateRecords(set);
    return null;
  }

  /** unregister_ftrace_function(). */
  unregisterFtraceFunction(op: FtraceOps): FtraceError | null {
    if ((op.flags & FTRACE_OPS_FL_ENABLED) === 0) {
      return new FtraceError('EBUSY', `unregister ${op.name}: not registered`);
    }
    const set = this.opsSet(op);
    this.list = this.list.filter((o) => o !== op);
    op.flags &= ~FTRACE_OPS_FL_ENABLED;
    this.updateRecords(set);
    if ((op.flags & FTRACE_OPS_FL_IPMODIFY) !== 0) {
      this.shareWithDirect(op, set, FTRACE_OPS_CMD_DISABLE_SHARE_IPMODIFY_PEER);
    }
    if ((op.flags & FTRACE_OPS_FL_ALLOC_TRAMP) !== 0) {
      this.kernel.unregisterHandler(this.address(op.trampoline));
      this.freeTrampolines.push(this.address(op.trampoline));
      op.trampoline = 0;
      op.flags &= ~FTRACE_OPS_FL_ALLOC_TRAMP;
    }
    return null;
  }

  /**
   * arch_ftrace_update_trampoline(): on x86-64 a dynamic ops gets its own trampoline that calls
   * its func directly when it is the only ops on a function.
   */
  private updateTrampoline(op: FtraceOps): FtraceError | null {
    if (this.arch !== 'x86_64') return null;
    if ((op.flags & (FTRACE_OPS_FL_DYNAMIC | FTRACE_OPS_FL_DIRECT)) !== FTRACE_OPS_FL_DYNAMIC) {
      return null;
    }
    let addr = this.freeTrampolines.pop();
    if (addr === undefined) {
      const a = this.kernel.allocText('ftrace_trampoline', 0x100);
      if (a instanceof KernelError) return kernelError(a, `trampoline for ${op.name}`);
      addr = a;
    }
    const full = (op.flags & FTRACE_OPS_FL_SAVE_REGS) !== 0 && this.fullSave !== null;
    const f0 = this.frames[0]?.[0] as Frame;
    const handler = emitOpsTrampoline(
      this.trampolineEnv,
      {
        saveWords: ((full ? f0.full : f0.args) as FtraceRegs).moves.saveWords,
        direct: full ? this.fullDirect : this.argsDirect,
        full,
        spW: this.spW,
        lrW: this.lrW,
      },
      op,
    );
    const err = this.kernel.registerHandler(addr, 'ftrace_trampoline', handler);
    if (err !== null) return kernelError(err, `trampoline for ${op.name}`);
    op.trampoline = Number(addr & 0xffffffffn);
    op.flags |= FTRACE_OPS_FL_ALLOC_TRAMP;
    return null;
  }

  /**
   * __ftrace_hash_update_ipmodify(): an IPMODIFY ops may not join a function another IPMODIFY
   * ops holds; a DIRECT ops may, if its ops_func accepts SHARE_IPMODIFY_SELF.
   */
  private checkIpmodify(
    op: FtraceOps,
    set: Uint8Array,
    before: Uint8Array | null,
  ): FtraceError | null {
    const isIpmodify = (op.flags & FTRACE_OPS_FL_IPMODIFY) !== 0;
    const isDirect = (op.flags & FTRACE_OPS_FL_DIRECT) !== 0;
    if (!isIpmodify && !isDirect) return null;
    for (const f of this.table.functions) {
      if (set[f.id] !== 1 || (before !== null && before[f.id] === 1)) continue;
      const holder = this.ipmodifyHolder(f.id, op);
      if (holder === null) continue;
      if (isIpmodify) {
        return new FtraceError(
          'EBUSY',
          `${op.name}: ${f.name} is already IPMODIFY by '${holder.name}'`,
        );
      }
      if (op.opsFunc === null) {
        return new FtraceError(
          'EBUSY',
          `${op.name}: ${f.name} is IPMODIFY by '${holder.name}' and the direct ops has no ops_func`,
        );
      }
      const r = op.opsFunc(op, FTRACE_OPS_CMD_ENABLE_SHARE_IPMODIFY_SELF);
      if (r !== 0) return errnoError(r, `${op.name}: ops_func(ENABLE_SHARE_IPMODIFY_SELF)`);
    }
    return null;
  }

  private ipmodifyHolder(fn: number, except: FtraceOps): FtraceOps | null {
    for (const o of this.list) {
      if (o !== except && (o.flags & FTRACE_OPS_FL_IPMODIFY) !== 0 && o.traces(fn)) return o;
    }
    return null;
  }

  /**
   * prepare_direct_functions_for_ipmodify / cleanup_direct_functions_after_ipmodify: tells each
   * DIRECT ops on the IPMODIFY ops' functions, through its ops_func.
   */
  private shareWithDirect(op: FtraceOps, set: Uint8Array, cmd: FtraceOpsCmd): FtraceError | null {
    const told = new Set<FtraceOps>();
    for (const f of this.table.functions) {
      if (set[f.id] !== 1) continue;
      for (const d of this.list) {
        if (d === op || told.has(d) || (d.flags & FTRACE_OPS_FL_DIRECT) === 0) continue;
        if (!d.traces(f.id)) continue;
        told.add(d);
        if (d.opsFunc === null) {
          if (cmd === FTRACE_OPS_CMD_DISABLE_SHARE_IPMODIFY_PEER) continue;
          return new FtraceError(
            'EBUSY',
            `${op.name}: ${f.name} has direct ops '${d.name}' without ops_func`,
          );
        }
        const r = d.opsFunc(d, cmd);
        if (r !== 0 && cmd !== FTRACE_OPS_CMD_DISABLE_SHARE_IPMODIFY_PEER) {
          return errnoError(r, `${d.name}: ops_func(ENABLE_SHARE_IPMODIFY_PEER)`);
        }
      }
    }
    return null;
  }

  // ---- records and call sites ----

  /**
   * __ftrace_hash_rec_update() then ftrace_replace_code(): recounts the records of the given
   * functions (all when null) from the enabled ops, then patches every site whose target
   * changed, in one pass.
   */
  private updateRecords(only: Uint8Array | null): void {
    const caps = this.info.capabilities;
    const image = this.kernel.image;
    const list = this.list;
    const on = this.enabledSysctl;
    let pokes = 0;
    for (const f of this.table.functions) {
      const fn = f.id;
      if (only !== null && only[fn] !== 1) continue;
      let count = 0;
      let flags = 0;
      let last: FtraceOps | null = null;
      for (let i = 0; i < list.length; i++) {
        const op = list[i] as FtraceOps;
        if (!op.traces(fn)) continue;
        count++;
        last = op;
        if ((op.flags & FTRACE_OPS_FL_SAVE_REGS) !== 0) flags |= FTRACE_FL_REGS;
        if ((op.flags & FTRACE_OPS_FL_DIRECT) !== 0) flags |= FTRACE_FL_DIRECT;
        if ((op.flags & FTRACE_OPS_FL_IPMODIFY) !== 0) flags |= FTRACE_FL_IPMODIFY;
      }
      if (count > FTRACE_REF_MAX) count = FTRACE_REF_MAX;
      const single = count === 1 ? last : null;
      if (single !== null && single.trampoline !== 0) flags |= FTRACE_FL_TRAMP;
      if (single !== null && caps.callOps && (flags & FTRACE_FL_DIRECT) === 0) {
        flags |= FTRACE_FL_CALL_OPS;
      }
      const old = this.recFlags[fn] as number;
      flags |= count | (old & (FTRACE_FL_TOUCHED | FTRACE_FL_MODIFIED));
      // ftrace_check_record(): what the site should call now.
      let target = 0;
      if (count > 0 && on) {
        flags |= FTRACE_FL_ENABLED | FTRACE_FL_TOUCHED;
        if ((flags & (FTRACE_FL_DIRECT | FTRACE_FL_IPMODIFY)) !== 0) flags |= FTRACE_FL_MODIFIED;
        if ((flags & FTRACE_FL_REGS) !== 0) flags |= FTRACE_FL_REGS_EN;
        if ((flags & FTRACE_FL_TRAMP) !== 0) flags |= FTRACE_FL_TRAMP_EN;
        if ((flags & FTRACE_FL_CALL_OPS) !== 0) flags |= FTRACE_FL_CALL_OPS_EN;
        const direct = count === 1 ? this.directFunctions.get(fn) : undefined;
        if (direct !== undefined && this.reachable(fn, direct)) {
          target = Number(direct & 0xffffffffn);
          flags |= FTRACE_FL_DIRECT_EN;
        } else if ((flags & FTRACE_FL_TRAMP) !== 0) {
          target = (single as FtraceOps).trampoline;
        } else if ((flags & FTRACE_FL_REGS) !== 0) {
          target = Number(this.regsCallerAddr & 0xffffffffn);
        } else {
          target = Number(this.callerAddr & 0xffffffffn);
        }
      }
      this.recFlags[fn] = flags;
      this.recOps[fn] = single;
      if (target !== this.siteTarget[fn]) {
        const addr = (image.functions[fn] as FunctionInfo).addr;
        const bytes =
          target === 0
            ? this.nopBytes
            : (encodeEntryCall(this.arch, addr, this.targetAddress(target)) as Uint8Array);
        const reason =
          target === 0
            ? 'ftrace: disable'
            : this.siteTarget[fn] === 0
              ? 'ftrace: enable'
              : 'ftrace: modify';
        this.kernel.textPoke(addr, bytes, reason);
        this.siteTarget[fn] = target;
        pokes++;
      }
    }
    this.stats.lastPokes = pokes;
    this.updateFtraceFunction();
  }

  private targetAddress(lo: number): bigint {
    let a = this.targetAddrs.get(lo);
    if (a === undefined) {
      a = this.address(lo);
      this.targetAddrs.set(lo, a);
    }
    return a;
  }

  private reachable(fn: number, target: bigint): boolean {
    const addr = this.kernel.image.functions[fn]?.addr as bigint;
    return !(encodeEntryCall(this.arch, addr, target) instanceof Error);
  }

  /**
   * update_ftrace_function(): no ops -> the stub; one static ops -> its func straight from
   * ftrace_caller; otherwise ftrace_ops_list_func.
   */
  private updateFtraceFunction(): void {
    const list = this.list;
    if (list.length === 0 || !this.enabledSysctl) {
      this.mode = DISPATCH_STUB;
      this.single = null;
    } else if (list.length === 1 && ((list[0] as FtraceOps).flags & FTRACE_OPS_FL_DYNAMIC) === 0) {
      this.mode = DISPATCH_SINGLE;
      this.single = list[0] as FtraceOps;
    } else {
      this.mode = DISPATCH_LIST;
      this.single = null;
    }
  }

  // ---- direct calls ----

  /**
   * register_ftrace_direct(): every function in the ops' filter calls `addr` (where `handler` is
   * the code the caller of that address installed with the kernel). Alone on a function the site
   * calls addr itself; shared, ftrace_caller jumps there after the other callbacks.
   */
  registerFtraceDirect(op: FtraceOps, addr: bigint, handler: TextHandler): FtraceError | null {
    if (!this.info.capabilities.directCalls) {
      return new FtraceError('ENODEV', `${this.arch} has no DYNAMIC_FTRACE_WITH_DIRECT_CALLS`);
    }
    this.initOps(op);
    if ((op.flags & FTRACE_OPS_FL_ENABLED) !== 0) {
      return new FtraceError('EINVAL', `register_ftrace_direct ${op.name}: already registered`);
    }
    const hash = op.filterHash as FtraceHash;
    if (hash.empty) {
      return new FtraceError('EINVAL', `register_ftrace_direct ${op.name}: empty filter`);
    }
    for (const fn of hash.ids()) {
      if (this.directFunctions.has(fn)) {
        return new FtraceError(
          'EBUSY',
          `register_ftrace_direct ${op.name}: ${this.table.label(fn)} already has a direct call`,
        );
      }
    }
    const savedFunc = op.func;
    op.func = callDirectFuncs;
    op.flags |= FTRACE_OPS_FL_DIRECT;
    if (!this.info.capabilities.withArgs) op.flags |= FTRACE_OPS_FL_SAVE_REGS;
    op.trampoline = Number(this.regsCallerAddr & 0xffffffffn);
    op.setDirectCall(addr);
    const ids = hash.ids();
    for (const fn of ids) this.directFunctions.set(fn, addr);
    this.directHandlers.set(Number(addr & 0xffffffffn), handler);
    const err = this.registerFtraceFunction(op);
    if (err !== null) {
      for (const fn of ids) this.directFunctions.delete(fn);
      op.func = savedFunc;
      op.flags &= ~FTRACE_OPS_FL_DIRECT;
      op.trampoline = 0;
      op.setDirectCall(0n);
    }
    return err;
  }

  /** unregister_ftrace_direct(). */
  unregisterFtraceDirect(op: FtraceOps, addr: bigint): FtraceError | null {
    if ((op.flags & FTRACE_OPS_FL_DIRECT) === 0 || (op.flags & FTRACE_OPS_FL_ENABLED) === 0) {
      return new FtraceError('EINVAL', `unregister_ftrace_direct ${op.name}: not registered`);
    }
    if (op.directCall !== addr) {
      return new FtraceError(
        'EINVAL',
        `unregister_ftrace_direct ${op.name}: calls 0x${op.directCall.toString(16)}, not 0x${addr.toString(16)}`,
      );
    }
    const ids = (op.filterHash as FtraceHash).ids();
    for (const fn of ids) this.directFunctions.delete(fn);
    const err = this.unregisterFtraceFunction(op);
    op.setDirectCall(0n);
    op.trampoline = 0;
    return err;
  }

  /**
   * modify_ftrace_direct(): moves the ops' functions to a new target. A stub ops is attached
   * first so every site goes through ftrace_caller while the target changes, as the kernel does.
   */
  modifyFtraceDirect(op: FtraceOps, addr: bigint, handler: TextHandler): FtraceError | null {
    if ((op.flags & FTRACE_OPS_FL_DIRECT) === 0 || (op.flags & FTRACE_OPS_FL_ENABLED) === 0) {
      return new FtraceError('EINVAL', `modify_ftrace_direct ${op.name}: not registered`);
    }
    const stub = new FtraceOps({
      name: 'tmp_ops',
      func: () => undefined,
      flags: FTRACE_OPS_FL_STUB,
      static: true,
    });
    this.initOps(stub);
    (stub.filterHash as FtraceHash).copyFrom(op.filterHash as FtraceHash);
    const err = this.registerFtraceFunction(stub);
    if (err !== null) return err;
    this.directHandlers.set(Number(addr & 0xffffffffn), handler);
    for (const fn of (op.filterHash as FtraceHash).ids()) this.directFunctions.set(fn, addr);
    op.setDirectCall(addr);
    return this.unregisterFtraceFunction(stub);
  }

  // ---- tracefs views ----

  private funcSym(op: FtraceOps): string {
    let addr = this.funcSyms.get(op);
    if (addr === undefined) {
      const a = this.kernel.allocText(
        op.func === callDirectFuncs ? 'call_direct_funcs' : op.name,
        16,
      );
      addr = a instanceof KernelError ? 0n : a;
      this.funcSyms.set(op, addr);
    }
    return this.kernel.symbolize(addr);
  }

  private formatRec(fn: number): string {
    const flags = this.recFlags[fn] as number;
    let line = `${this.table.label(fn)} (${flags & FTRACE_REF_MAX})`;
    line += (flags & FTRACE_FL_REGS) !== 0 ? ' R' : '  ';
    line += (flags & FTRACE_FL_IPMODIFY) !== 0 ? ' I' : '  ';
    line += (flags & FTRACE_FL_DIRECT) !== 0 ? ' D' : '  ';
    line += (flags & FTRACE_FL_CALL_OPS) !== 0 ? ' O' : '  ';
    line += (flags & FTRACE_FL_MODIFIED) !== 0 ? ' M ' : '   ';
    const op = this.recOps[fn];
    if ((flags & FTRACE_FL_TRAMP_EN) !== 0 && op !== null && op !== undefined) {
      line += `\ttramp: ${this.kernel.symbolize(this.address(op.trampoline))} (${this.funcSym(op)})`;
      if ((op.flags & FTRACE_OPS_FL_ALLOC_TRAMP) !== 0) line += ` ->${this.funcSym(op)}`;
    }
    if ((flags & FTRACE_FL_CALL_OPS_EN) !== 0 && op !== null && op !== undefined) {
      line += `\tops: ${op.name} (${this.funcSym(op)})`;
    }
    if ((flags & FTRACE_FL_DIRECT) !== 0) {
      const d = this.directFunctions.get(fn);
      if (d !== undefined) line += `\n\tdirect-->${this.kernel.symbolize(d)}`;
    }
    return `${line}\n`;
  }

  /** enabled_functions: every function with a callback attached, with flags and count. */
  enabledFunctions(): string {
    let out = '';
    for (const f of this.table.functions) {
      if (((this.recFlags[f.id] as number) & FTRACE_FL_ENABLED) !== 0) out += this.formatRec(f.id);
    }
    return out;
  }

  /** touched_functions: every function that ever had a callback attached. */
  touchedFunctions(): string {
    let out = '';
    for (const f of this.table.functions) {
      if (((this.recFlags[f.id] as number) & FTRACE_FL_TOUCHED) !== 0) out += this.formatRec(f.id);
    }
    return out;
  }

  /** available_filter_functions. */
  availableFilterFunctions(): string {
    return this.table.format();
  }
}

/** call_direct_funcs(): the func of a DIRECT ops asks the caller to jump to ops->direct_call. */
const callDirectFuncs: FtraceFunc = (_ip, _parent, op, fregs) => {
  if (fregs === null || (op.directLo === 0 && op.directHi === 0)) return;
  const dir = fregs.roles.direct;
  if (dir === null) return;
  const idx = fregs.layout.index.get(dir);
  if (idx !== undefined) fregs.setHalves(idx, op.directLo, op.directHi);
};
