import type { FtraceRegs } from '@tracelab/arch-isa';
import { TracelabError } from '@tracelab/contracts';
import {
  FTRACE_OPS_FL_RECURSION,
  FTRACE_OPS_FL_SAVE_REGS,
  FtraceOps,
  globMatch,
  type Ftrace,
} from '@tracelab/ftrace-core';
import {
  FgraphOps,
  type Fgraph,
  type FtraceGraphEnt,
  type FtraceGraphRet,
  type ShadowStack,
} from '@tracelab/fgraph';
import type { Cpu, Kernel } from '@tracelab/kernel';
import { FprobeIpTable } from './ip-table.js';

/** fprobe flags (include/linux/fprobe.h). */
export const FPROBE_FL_DISABLED = 1;
export const FPROBE_FL_KPROBE_SHARED = 2;

/** entry_data_size limit in longs: 16 shadow-stack words per fprobe including its header. */
export const FPROBE_DATA_SIZE_MAX_LONGS = 15;

/** Slots of Fprobes.recent (a power of two). */
const RECENT_SIZE = 64;

/** Header words per fprobe in the shadow-stack data (fprobe id in the low half, size in the high). */
export const FPROBE_HEADER_SIZE_IN_LONG = 1;

/**
 * Shadow-stack words an entry reserves for `list`: a header plus the data of every fprobe with
 * an exit handler (DISABLED is ignored here: the probe may be enabled before the handlers run).
 */
function exitWords(list: readonly Fprobe[]): number {
  let n = 0;
  for (let i = 0; i < list.length; i++) {
    const fp = list[i] as Fprobe;
    if (fp.exitHandler !== null) n += FPROBE_HEADER_SIZE_IN_LONG + fp.dataWords;
  }
  return n;
}

/**
 * A window of entry data on the shadow stack, valid only inside the handler it is passed to
 * (one object per CPU, reused: handlers must not keep it).
 */
export class FprobeData {
  stack: ShadowStack | null = null;
  /** First shadow-stack word of the data. */
  base = 0;
  /** Size in longs (8-byte words). */
  words = 0;

  lo(i: number): number {
    return (this.stack as ShadowStack).lo(this.base + i);
  }

  hi(i: number): number {
    return (this.stack as ShadowStack).hi(this.base + i);
  }

  setWord(i: number, lo: number, hi = 0): void {
    (this.stack as ShadowStack).setWord(this.base + i, lo, hi);
  }

  /** A float64 slot (timestamps) in word i. */
  getF64(i: number): number {
    return (this.stack as ShadowStack).f64[this.base + i] as number;
  }

  setF64(i: number, v: number): void {
    (this.stack as ShadowStack).f64[this.base + i] = v;
  }
}

/**
 * fprobe_entry_cb: `entryIp`/`retIp` are the low 32 bits of the addresses (kernel text sits in
 * one 4 GiB window) as int32s, as ftrace passes them (`>>> 0` for the unsigned half); `fn` is the
 * image index. A non-zero return skips the exit handler.
 */
export type FprobeEntryHandler = (
  fp: Fprobe,
  entryIp: number,
  retIp: number,
  fregs: FtraceRegs | null,
  data: FprobeData | null,
  cpu: Cpu,
  fn: number,
) => number | undefined | void;

/** fprobe_exit_cb: fregs holds the return value. */
export type FprobeExitHandler = (
  fp: Fprobe,
  entryIp: number,
  retIp: number,
  fregs: FtraceRegs,
  data: FprobeData | null,
  cpu: Cpu,
  fn: number,
) => void;

export interface FprobeInit {
  readonly name?: string;
  readonly flags?: number;
  /** Bytes of per-call data shared by the entry and exit handlers. */
  readonly entryDataSize?: number;
  readonly entryHandler?: FprobeEntryHandler;
  readonly exitHandler?: FprobeExitHandler;
  readonly private?: unknown;
}

/** struct fprobe. */
export class Fprobe {
  declare readonly name: string;
  nmissed = 0;
  declare flags: number;
  declare entryDataSize: number;
  declare entryHandler: FprobeEntryHandler | null;
  declare exitHandler: FprobeExitHandler | null;
  private: unknown;
  /** Key in the validity table while registered, 0 otherwise; never reused. */
  id = 0;
  /** Image indices of the functions it probes while registered. */
  fns: readonly number[] = [];
  /** entry_data_size in longs, fixed at registration. */
  dataWords = 0;

  constructor(init: FprobeInit = {}) {
    this.name = init.name ?? 'fprobe';
    this.flags = init.flags ?? 0;
    this.entryDataSize = init.entryDataSize ?? 0;
    this.entryHandler = init.entryHandler ?? null;
    this.exitHandler = init.exitHandler ?? null;
    this.private = init.private;
  }

  get disabled(): boolean {
    return (this.flags & FPROBE_FL_DISABLED) !== 0;
  }

  /** disable_fprobe(): handlers stop running; the probe stays registered. */
  disable(): void {
    this.flags |= FPROBE_FL_DISABLED;
  }

  /** enable_fprobe(). */
  enable(): void {
    this.flags &= ~FPROBE_FL_DISABLED;
  }

  get registered(): boolean {
    return this.id !== 0;
  }
}

/** Counters for tests and benchmarks. */
export interface FprobeStats {
  ftraceEntries: number;
  graphEntries: number;
  graphReturns: number;
  /** Exit records skipped because their fprobe was unregistered in flight. */
  staleExits: number;
}

/**
 * fprobe over one fgraph: entry-only fprobes share one ftrace_ops with the recursion guard;
 * fprobes with an exit handler share one fgraph user and keep a header word (plus entry data)
 * per fprobe on the shadow stack.
 */
export class Fprobes {
  declare readonly fgraph: Fgraph;
  declare readonly ftrace: Ftrace;
  declare readonly kernel: Kernel;
  readonly stats: FprobeStats = {
    ftraceEntries: 0,
    graphEntries: 0,
    graphReturns: 0,
    staleExits: 0,
  };
  /** fprobe_ip_table. */
  readonly ipTable = new FprobeIpTable<Fprobe>();
  /** fprobe_table: proves at return time that the fprobe recorded at entry still exists. */
  private readonly validity = new Map<number, Fprobe>();
  /**
   * The return side's first look, by id modulo its size: an fprobe found there with that very
   * id is registered (ids are never reused and unregistering zeroes fp.id), so only a miss
   * needs the validity table.
   */
  private readonly recent: (Fprobe | null)[] = new Array<Fprobe | null>(RECENT_SIZE).fill(null);
  private nextId = 1;
  /** fprobe_ftrace_ops and its per-function reference counts. */
  declare readonly ftraceOps: FtraceOps;
  declare private readonly ftraceRefs: Uint16Array;
  private ftraceCount = 0;
  /** fprobe_graph_ops and its per-function reference counts. */
  declare readonly graphOps: FgraphOps;
  declare private readonly graphRefs: Uint16Array;
  private graphCount = 0;
  declare private readonly data: FprobeData[];
  /**
   * Where an entry finds the return address: the ftrace_regs link register's 32-bit word, else
   * -1 (the stack). fprobe reads these held words directly, not through the checked accessors.
   */
  declare private readonly fregsLrW: number;
  /** The stack pointer's 32-bit word in the CPU's pt_regs. */
  declare private readonly spWord: number;
  /** The instruction pointer's word in ftrace_regs: fgraph sets it to the return address. */
  declare private readonly fregsIpW: number;

  private constructor(fgraph: Fgraph) {
    this.fgraph = fgraph;
    this.ftrace = fgraph.ftrace;
    this.kernel = fgraph.kernel;
    const n = this.kernel.image.count;
    this.ftraceRefs = new Uint16Array(n);
    this.graphRefs = new Uint16Array(n);
    const info = this.kernel.info;
    const fwords = (role: string | null): number => {
      const i = role === null ? undefined : info.ftraceRegs.index.get(role);
      return i === undefined ? -1 : (info.ftraceRegs.fields[i]?.offset as number) / 4;
    };
    this.fregsLrW = fwords(info.ftraceRoles.lr);
    this.fregsIpW = fwords(info.ftraceRoles.ip);
    const pt = info.ptRegs;
    this.spWord = (pt.fields[pt.index.get(info.ptRoles.sp) as number]?.offset as number) / 4;
    this.data = this.kernel.cpus.map(() => new FprobeData());
    // FTRACE_OPS_FL_SAVE_ARGS: full regs where the arch has no WITH_ARGS, else the sparse ones.
    const saveArgs = info.capabilities.withArgs ? 0 : FTRACE_OPS_FL_SAVE_REGS;
    this.ftraceOps = new FtraceOps({
      name: 'fprobe_ftrace_ops',
      flags: FTRACE_OPS_FL_RECURSION | saveArgs,
      func: this.ftraceEntry,
    });
    this.graphOps = new FgraphOps({
      name: 'fprobe_graph_ops',
      // The callbacks themselves, not wrappers: a wrapper is one more level for V8 to inline.
      entryfunc: this.graphEntry,
      retfunc: this.graphReturn,
    });
  }

  static attach(fgraph: Fgraph): Fprobes {
    return new Fprobes(fgraph);
  }

  // ---- registration ----

  /**
   * register_fprobe(): every traceable function whose name matches the glob `filter` and not
   * `notfilter`; -ENOENT when none does.
   */
  registerFprobe(
    fp: Fprobe,
    filter: string,
    notfilter: string | null = null,
  ): TracelabError | null {
    const fns: number[] = [];
    for (const f of this.ftrace.table.functions) {
      if (globMatch(filter, f.name) && (notfilter === null || !globMatch(notfilter, f.name))) {
        fns.push(f.id);
      }
    }
    if (fns.length === 0) {
      return new TracelabError('ENOENT', `${fp.name}: no function matches '${filter}'`);
    }
    return this.registerFns(fp, fns);
  }

  /** register_fprobe_ips(): function entry addresses; -ENOENT for one that is not traceable. */
  registerFprobeIps(fp: Fprobe, ips: readonly bigint[]): TracelabError | null {
    const fns: number[] = [];
    const image = this.kernel.image;
    for (const ip of ips) {
      const off = Number(ip - image.textBase);
      const fn = off >= 0 ? image.indexAtOffset(off) : -1;
      if (fn < 0 || image.textOffset(fn) !== off || this.ftrace.table.position(fn) < 0) {
        return new TracelabError(
          'ENOENT',
          `${fp.name}: 0x${ip.toString(16)} is not an ftrace location`,
        );
      }
      fns.push(fn);
    }
    return this.registerFns(fp, fns);
  }

  /** register_fprobe_syms(): -ENOENT when any symbol is missing or not traceable. */
  registerFprobeSyms(fp: Fprobe, syms: readonly string[]): TracelabError | null {
    const fns: number[] = [];
    for (const s of syms) {
      const fn = this.kernel.image.indexOf(s);
      if (fn < 0 || this.ftrace.table.position(fn) < 0) {
        return new TracelabError('ENOENT', `${fp.name}: symbol '${s}' not found`);
      }
      fns.push(fn);
    }
    return this.registerFns(fp, fns);
  }

  /** Registers fp on image functions (deduplicated). */
  registerFns(fp: Fprobe, list: readonly number[]): TracelabError | null {
    if (fp.registered) return new TracelabError('EBUSY', `${fp.name}: already registered`);
    if (list.length === 0) return new TracelabError('EINVAL', `${fp.name}: no functions`);
    if (fp.entryHandler === null && fp.exitHandler === null) {
      return new TracelabError('EINVAL', `${fp.name}: neither entry nor exit handler`);
    }
    const words = Math.ceil(fp.entryDataSize / 8);
    if (fp.entryDataSize < 0 || words > FPROBE_DATA_SIZE_MAX_LONGS) {
      return new TracelabError(
        'E2BIG',
        `${fp.name}: entry_data_size ${fp.entryDataSize} exceeds ${FPROBE_DATA_SIZE_MAX_LONGS} longs`,
      );
    }
    const fns = [...new Set(list)];
    const graph = fp.exitHandler !== null;
    const err = graph ? this.addGraphFns(fns) : this.addFtraceFns(fns);
    if (err !== null) return err;
    fp.nmissed = 0;
    fp.dataWords = words;
    fp.fns = fns;
    fp.id = this.nextId++;
    this.validity.set(fp.id, fp);
    const image = this.kernel.image;
    for (const fn of fns) this.ipTable.add(image.addrLo[fn] as number, fp);
    return null;
  }

  /**
   * unregister_fprobe(): -EINVAL when fp is not registered. Calls in flight that entered through
   * fp find no validity-table entry at return and skip its exit handler.
   */
  unregisterFprobe(fp: Fprobe): TracelabError | null {
    if (!fp.registered || this.validity.get(fp.id) !== fp) {
      return new TracelabError('EINVAL', `${fp.name}: not registered`);
    }
    this.validity.delete(fp.id);
    const slot = fp.id & (RECENT_SIZE - 1);
    if (this.recent[slot] === fp) this.recent[slot] = null;
    fp.id = 0;
    const image = this.kernel.image;
    for (const fn of fp.fns) this.ipTable.remove(image.addrLo[fn] as number, fp);
    const fns = fp.fns;
    fp.fns = [];
    return fp.exitHandler !== null ? this.removeGraphFns(fns) : this.removeFtraceFns(fns);
  }

  /** The registered fprobe whose validity-table key is id (the exit-time check). */
  fprobeById(id: number): Fprobe | null {
    return this.validity.get(id) ?? null;
  }

  /** Registered fprobes. */
  get fprobes(): Fprobe[] {
    return [...this.validity.values()];
  }

  private addFtraceFns(fns: readonly number[]): TracelabError | null {
    const fresh = fns.filter((fn) => this.ftraceRefs[fn] === 0);
    if (fresh.length > 0) {
      const err = this.ftrace.setFilterFunctions(this.ftraceOps, fresh);
      if (err !== null) return err;
    }
    for (const fn of fns) this.ftraceRefs[fn] = (this.ftraceRefs[fn] as number) + 1;
    this.ftraceCount += fresh.length;
    if (this.ftraceCount === fresh.length && fresh.length > 0) {
      const err = this.ftrace.registerFtraceFunction(this.ftraceOps);
      if (err !== null) {
        this.removeFtraceFns(fns);
        return err;
      }
    }
    return null;
  }

  private removeFtraceFns(fns: readonly number[]): TracelabError | null {
    const gone: number[] = [];
    for (const fn of fns) {
      const r = (this.ftraceRefs[fn] as number) - 1;
      this.ftraceRefs[fn] = r;
      if (r === 0) gone.push(fn);
    }
    this.ftraceCount -= gone.length;
    // An empty filter means every function: unregister before the last function leaves it.
    if (this.ftraceCount === 0) {
      const err = this.ftrace.unregisterFtraceFunction(this.ftraceOps);
      this.ftrace.setFilterFunctions(this.ftraceOps, [], { reset: true });
      return err;
    }
    return gone.length > 0
      ? this.ftrace.setFilterFunctions(this.ftraceOps, gone, { remove: true })
      : null;
  }

  private addGraphFns(fns: readonly number[]): TracelabError | null {
    const fresh = fns.filter((fn) => this.graphRefs[fn] === 0);
    const first = this.graphCount === 0;
    const err = this.ftrace.setFilterFunctions(this.graphOps.ops, fresh);
    if (err !== null) return err;
    for (const fn of fns) this.graphRefs[fn] = (this.graphRefs[fn] as number) + 1;
    this.graphCount += fresh.length;
    const uerr = first ? this.fgraph.register(this.graphOps) : this.refreshGraph();
    if (uerr !== null) {
      this.removeGraphFns(fns);
      return uerr;
    }
    return null;
  }

  private removeGraphFns(fns: readonly number[]): TracelabError | null {
    const gone: number[] = [];
    for (const fn of fns) {
      const r = (this.graphRefs[fn] as number) - 1;
      this.graphRefs[fn] = r;
      if (r === 0) gone.push(fn);
    }
    this.graphCount -= gone.length;
    if (this.graphCount === 0) {
      const err = this.graphOps.idx >= 0 ? this.fgraph.unregister(this.graphOps) : null;
      this.ftrace.setFilterFunctions(this.graphOps.ops, [], { reset: true });
      return err;
    }
    const err = this.ftrace.setFilterFunctions(this.graphOps.ops, gone, { remove: true });
    return err ?? this.refreshGraph();
  }

  /**
   * Fgraph has no set-filter-by-ips call; an empty appending filter write makes it recompute the
   * shared ftrace_ops from the user's hash, which setFilterFunctions already changed.
   */
  private refreshGraph(): TracelabError | null {
    return this.fgraph.setFilter(this.graphOps, '', { append: true });
  }

  // ---- the traced call ----

  /** fprobe_ftrace_entry(): entry-only fprobes (the ftrace_ops assist wrapper holds recursion). */
  private readonly ftraceEntry = (
    ip: number,
    parent: number,
    _op: FtraceOps,
    fregs: FtraceRegs | null,
    cpu: Cpu,
    fn: number,
  ): void => {
    const list = this.ipTable.lookup(ip);
    if (list === null) return;
    this.stats.ftraceEntries++;
    for (let i = 0; i < list.length; i++) {
      const fp = list[i] as Fprobe;
      if (fp.exitHandler !== null || (fp.flags & FPROBE_FL_DISABLED) !== 0) continue;
      const h = fp.entryHandler;
      if (h !== null) h(fp, ip, parent, fregs, null, cpu, fn);
    }
  };

  /**
   * fprobe_fgraph_entry(): reserves one header word plus data per fprobe with an exit handler.
   * Kept under V8's 460-byte inlining limit (rare paths out of line), so fgraph's generated entry
   * takes it in whole.
   */
  private readonly graphEntry = (
    trace: FtraceGraphEnt,
    gops: FgraphOps,
    fregs: FtraceRegs | null,
    cpu: Cpu,
  ): number => {
    if (fregs === null) return 0;
    const ip = trace.func;
    const fn = trace.fn;
    const list = this.ipTable.lookup(ip);
    if (list === null) return 0;
    this.stats.graphEntries++;
    const reserved = exitWords(list);
    if (reserved === 0) return 0;
    const base = this.fgraph.reserveData(gops, reserved * 8);
    if (base < 0) return this.missed(list);
    const st = this.fgraph.currentStack as ShadowStack;
    // The return address at entry: the link register in ftrace_regs, else the word at sp.
    const retIp = this.fregsLrW >= 0 ? (fregs.i32[this.fregsLrW] as number) : this.stackReturn(cpu);
    const data = this.data[cpu.id] as FprobeData;
    data.stack = st;
    let used = 0;
    for (let i = 0; i < list.length; i++) {
      const fp = list[i] as Fprobe;
      if (fp.exitHandler === null || (fp.flags & FPROBE_FL_DISABLED) !== 0) continue;
      const words = fp.dataWords;
      data.base = base + used + FPROBE_HEADER_SIZE_IN_LONG;
      data.words = words;
      const h = fp.entryHandler;
      const r = h === null ? 0 : h(fp, ip, retIp, fregs, words > 0 ? data : null, cpu, fn);
      // Non-zero skips the exit handler; that is the handler's choice, not a miss.
      if (r === 0 || r === undefined) {
        st.setWord(base + used, fp.id, words);
        used += FPROBE_HEADER_SIZE_IN_LONG + words;
      }
    }
    // A zero header ends the records the return side walks.
    if (used < reserved) st.setWord(base + used, 0, 0);
    return used !== 0 ? 1 : 0;
  };

  /** The shadow stack had no room: every enabled fprobe with an exit handler missed this call. */
  private missed(list: readonly Fprobe[]): number {
    for (let i = 0; i < list.length; i++) {
      const fp = list[i] as Fprobe;
      if (fp.exitHandler !== null && (fp.flags & FPROBE_FL_DISABLED) === 0) fp.nmissed++;
    }
    return 0;
  }

  /** The return address on the stack at entry (x86), read before fgraph hooks it. */
  private stackReturn(cpu: Cpu): number {
    const task = cpu.current;
    if (task === null) return 0;
    const regs = cpu.regs;
    const sp = regs.i32[this.spWord] as number;
    return task.stackI32[(sp - task.stackBaseLo) >> 2] as number;
  }

  /** fprobe_return(): runs the exit handlers of the fprobes recorded at entry that still exist. */
  private readonly graphReturn = (
    trace: FtraceGraphRet,
    gops: FgraphOps,
    fregs: FtraceRegs,
    cpu: Cpu,
  ): void => {
    const fg = this.fgraph;
    const ip = trace.func;
    const fn = trace.fn;
    const base = fg.retrieveData(gops);
    if (base < 0) return;
    this.stats.graphReturns++;
    const words = fg.retrievedWords;
    const st = fg.currentStack as ShadowStack;
    const retIp = fregs.i32[this.fregsIpW] as number;
    const data = this.data[cpu.id] as FprobeData;
    let cur = 0;
    while (cur < words) {
      const id = st.lo(base + cur);
      const size = st.hi(base + cur);
      if (id === 0) break;
      cur += FPROBE_HEADER_SIZE_IN_LONG;
      if (cur + size > words) break;
      const slot = id & (RECENT_SIZE - 1);
      let fp = this.recent[slot] as Fprobe | null;
      if (fp === null || fp.id !== id) {
        fp = this.validity.get(id) ?? null;
        if (fp !== null) this.recent[slot] = fp;
      }
      if (fp === null) this.stats.staleExits++;
      else if ((fp.flags & FPROBE_FL_DISABLED) === 0 && fp.exitHandler !== null) {
        let d: FprobeData | null = null;
        if (size > 0) {
          data.stack = st;
          data.base = base + cur;
          data.words = size;
          d = data;
        }
        fp.exitHandler(fp, ip, retIp, fregs, d, cpu, fn);
      }
      cur += size;
    }
  };
}
