import { ftracePartialRegs, PtRegs, type ArchName, type FtraceRegs } from '@tracelab/arch-isa';
import { TracelabError } from '@tracelab/contracts';
import { latencyFlags, traceCtx } from '@tracelab/ftrace-core';
import { kernelEnv, type Cpu, type Kernel } from '@tracelab/kernel';
import { verify, type VerifyResult } from '@tracelab/verifier';
import {
  BPF_MAP_TYPE_ARRAY,
  installHelpers,
  MapTable,
  mapResolver,
  PROT_READ,
  PROT_WRITE,
  Program,
  Vm,
  VmError,
  type Insn,
  type Region,
} from '@tracelab/vm';
import { imageTarget, parseFprobeEvent, type FprobeEvent } from './dynevent.js';
import {
  EventFilter,
  EventFilterError,
  filterString,
  TASK_COMM_LEN,
  type FilterSymbols,
} from './event-filter.js';
import type { TraceEventRing } from './event-ring.js';
import {
  compileFetchArgs,
  layoutRecord,
  MAX_STRING_SIZE,
  type ArgSlot,
  type FetchProgram,
} from './fetch-bpf.js';
import { Fprobe, type FprobeData, type Fprobes } from './fprobe.js';

/**
 * Per-arch kernel addresses of the event programs' stacks (one page per CPU) and of their record
 * maps: below the engine's map area, clear of kernel objects, stacks and per-CPU areas.
 */
const EVENT_AREA: Readonly<Record<ArchName, bigint>> = {
  x86_64: 0xffff8880e0000000n,
  arm64: 0xffff0000e0000000n,
  riscv64: 0xffffffd8e0000000n,
  i386: 0xd8000000n,
};
const MAPS_OFFSET = 0x1000000n;
const STACK_STRIDE = 0x10000n;
/** Each CPU's pt_regs, in its 64 KiB above the BPF stack. */
const REGS_OFFSET = 0x8000n;

/** What every event of one kernel shares: the record maps, and per CPU a vm and a pt_regs slot. */
class EventRuntime {
  declare readonly maps: MapTable;
  readonly vms: Vm[] = [];
  /**
   * Per CPU a pt_regs mapped as kernel memory at (ptLo, ptHi), int32 halves: a hit builds it in
   * place and hands the program its address, with no copy and no bigint.
   */
  declare readonly regs: PtRegs[];
  readonly ptLo: number[] = [];
  readonly ptHi: number[] = [];

  private constructor(kernel: Kernel, base: bigint) {
    this.maps = new MapTable(kernel.mm, base + MAPS_OFFSET, kernel.cpus.length);
    this.regs = kernel.cpus.map(() => new PtRegs(kernel.arch));
  }

  private static readonly byKernel = new WeakMap<Kernel, EventRuntime>();

  static of(kernel: Kernel): EventRuntime | TracelabError {
    const had = EventRuntime.byKernel.get(kernel);
    if (had !== undefined) return had;
    const base = EVENT_AREA[kernel.arch];
    const rt = new EventRuntime(kernel, base);
    for (const cpu of kernel.cpus) {
      const vm = Vm.create({ memory: kernel.mm, stackBase: base + BigInt(cpu.id) * STACK_STRIDE });
      if (vm instanceof VmError) return new TracelabError(vm.code, vm.message);
      installHelpers(vm, rt.maps, kernelEnv(kernel, cpu.id));
      const at = base + BigInt(cpu.id) * STACK_STRIDE + REGS_OFFSET;
      const region = kernel.mm.map({
        name: `event_regs${cpu.id}`,
        base: at,
        data: (rt.regs[cpu.id] as PtRegs).bytes,
        prot: PROT_READ | PROT_WRITE,
      });
      if (region instanceof VmError) return new TracelabError(region.code, region.message);
      rt.vms.push(vm);
      rt.ptLo.push(Number(BigInt.asIntN(32, at)));
      rt.ptHi.push(Number(BigInt.asIntN(32, at >> 32n)));
    }
    EventRuntime.byKernel.set(kernel, rt);
    return rt;
  }
}

/** A field of an event's format (trace_define_field): type text, name, offset, size, sign. */
export interface EventField {
  readonly type: string;
  readonly name: string;
  readonly offset: number;
  readonly size: number;
  readonly signed: boolean;
}

/** The common fields every trace entry starts with (struct trace_entry). */
export const COMMON_FIELDS: readonly EventField[] = [
  { type: 'unsigned short', name: 'common_type', offset: 0, size: 2, signed: false },
  { type: 'unsigned char', name: 'common_flags', offset: 2, size: 1, signed: false },
  { type: 'unsigned char', name: 'common_preempt_count', offset: 3, size: 1, signed: false },
  { type: 'int', name: 'common_pid', offset: 4, size: 4, signed: true },
];
const TRACE_ENTRY_SIZE = 8;

/** common_pid of the entry at `at`. */
export function entryPid(bytes: Uint8Array, at: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset + at, 8).getInt32(4, true);
}

/** Kinds of an argument in the entry: a basic value, a string (data_loc), a symstr (data_loc). */
const K_BASIC = 0;
const K_STRING = 1;
const K_SYMSTR = 2;

/** The printf format of a fetch type (PRINT_TYPE_FMT_NAME) and its field type (fmttype). */
function fetchFormat(name: string, wordSize: number): { fmt: string; fmttype: string } {
  if (name === 'string' || name === 'ustring' || name === 'symstr')
    return { fmt: '\\"%s\\"', fmttype: '__data_loc char[]' };
  if (name === 'symbol') return { fmt: '%pS', fmttype: `u${wordSize * 8}` };
  if (name === 'char') return { fmt: "'%c'", fmttype: 'u8' };
  const bits = name.slice(1);
  const fmttype = `${name[0] === 's' ? 's' : 'u'}${bits}`;
  if (name[0] === 'x') return { fmt: bits === '64' ? '0x%Lx' : '0x%x', fmttype };
  if (name[0] === 's') return { fmt: bits === '64' ? '%Ld' : '%d', fmttype };
  return { fmt: bits === '64' ? '%Lu' : '%u', fmttype };
}

/** Counters per event. */
export interface FprobeTraceEventStats {
  hits: number;
  /** Runs the vm stopped with an error (the hit is dropped). */
  errors: number;
  /** Entries an instance's filter discarded (one per instance that refused the hit). */
  filtered: number;
}

/**
 * An fprobe dynamic event (trace_fprobe): its fetch args compiled to one eBPF program checked by
 * the verifier as a kprobe program, and an fprobe on its symbol (entry, or exit for %return).
 * Each hit builds pt_regs from the ftrace_regs, runs the program in the vm to fill the record and
 * stores an entry laid out as the event's `format` says (struct trace_entry, __probe_ip or
 * __probe_func/__probe_ret_ip, the arguments packed, strings as __data_loc after them) into the
 * ring of every trace instance the event is enabled in. The hit path allocates nothing: the
 * rings, the record and the per-CPU vm and pt_regs are preallocated. Lines are printed when the
 * trace is read, as print_fentry_event / print_fexit_event print them.
 */
export class FprobeTraceEvent {
  declare readonly event: FprobeEvent;
  declare readonly fetch: FetchProgram;
  declare readonly prog: Program;
  /** A %return event's entry-side program (saves the entry arguments), or null. */
  declare readonly entryProg: Program | null;
  declare readonly verdict: VerifyResult;
  declare readonly fp: Fprobe;
  readonly stats: FprobeTraceEventStats = { hits: 0, errors: 0, filtered: 0 };
  /** The event's type (common_type, the format's ID). */
  declare readonly id: number;
  /** The event's own fields, after the common ones. */
  declare readonly fields: readonly EventField[];
  /** Bytes of the entry before its dynamic data. */
  declare readonly fixedSize: number;
  declare private readonly fprobes: Fprobes;
  declare private readonly rt: EventRuntime;
  declare private readonly record: Region;
  private readonly rings: TraceEventRing[] = [];
  /** Per instance (its ring), the filter file: a filter, or the failed write it shows. */
  private readonly filters = new WeakMap<TraceEventRing, EventFilter | EventFilterError>();
  /** Beside `rings`: the filter each applies (null: none, or its last write failed). */
  private ringFilters: (EventFilter | null)[] = [];
  private filtering = false;
  private filterComm = false;
  /**
   * The buffered event of a filtered hit (trace_buffered_event): the entry is built here once
   * and copied into the rings whose filter takes it, so a refused entry costs no ring space.
   */
  private scratch: Uint8Array | null = null;
  private scratchView: DataView | null = null;
  /** current->comm for the filters that read it, NUL padded. */
  private readonly comm = new Uint8Array(TASK_COMM_LEN);
  declare private readonly wordSize: number;
  declare private readonly textHi: number;
  /** Per argument: kind, entry offset, record offset, elements, bytes per element in the record. */
  declare private readonly argKind: Uint8Array;
  declare private readonly argOff: Int32Array;
  declare private readonly recOff: Int32Array;
  declare private readonly argCount: Int32Array;
  declare private readonly recStride: Int32Array;

  private constructor(
    fprobes: Fprobes,
    rt: EventRuntime,
    event: FprobeEvent,
    fetch: FetchProgram,
    prog: Program,
    entryProg: Program | null,
    verdict: VerifyResult,
    record: Region,
    id: number,
  ) {
    this.fprobes = fprobes;
    this.rt = rt;
    this.event = event;
    this.fetch = fetch;
    this.prog = prog;
    this.entryProg = entryProg;
    this.verdict = verdict;
    this.record = record;
    this.id = id;
    const kernel = fprobes.kernel;
    const ws = kernel.info.wordSize;
    this.wordSize = ws;
    this.textHi = Number(kernel.image.textBase >> 32n);
    const head: EventField[] = event.isReturn
      ? [
          { type: 'unsigned long', name: '__probe_func', offset: 8, size: ws, signed: false },
          {
            type: 'unsigned long',
            name: '__probe_ret_ip',
            offset: 8 + ws,
            size: ws,
            signed: false,
          },
        ]
      : [{ type: 'unsigned long', name: '__probe_ip', offset: 8, size: ws, signed: false }];
    let off = TRACE_ENTRY_SIZE + head.length * ws;
    const n = fetch.slots.length;
    this.argKind = new Uint8Array(n);
    this.argOff = new Int32Array(n);
    this.recOff = new Int32Array(n);
    this.argCount = new Int32Array(n);
    this.recStride = new Int32Array(n);
    const fields = [...head];
    for (const [i, s] of fetch.slots.entries()) {
      const t = s.arg.type;
      const kind = t.name === 'symstr' ? K_SYMSTR : s.string ? K_STRING : K_BASIC;
      const size = kind === K_BASIC ? t.size : 4;
      const { fmttype } = fetchFormat(kind === K_STRING ? 'string' : t.name, ws);
      this.argKind[i] = kind;
      this.argOff[i] = off;
      this.recOff[i] = s.offset;
      this.argCount[i] = s.count;
      this.recStride[i] = s.stride;
      fields.push({
        type: t.array === null ? fmttype : `${fmttype}[${t.array}]`,
        name: s.arg.name,
        offset: off,
        size: size * s.count,
        signed: t.signed || kind !== K_BASIC,
      });
      off += size * s.count;
    }
    this.fields = fields;
    this.fixedSize = off;
    const name = `${event.group}/${event.event}`;
    if (!event.isReturn) {
      this.fp = new Fprobe({
        name,
        entryHandler: (_fp, ip, retIp, fregs, _d, cpu) => {
          if (fregs !== null) this.hit(ip, retIp, fregs, cpu);
        },
      });
    } else {
      this.fp = new Fprobe({
        name,
        // trace_fprobe's entry data: the saved entry arguments, one long each.
        entryDataSize: fetch.edataWords * 8,
        ...(entryProg === null
          ? {}
          : { entryHandler: (_fp, _ip, _r, fregs, d, cpu) => this.saveEntry(fregs, d, cpu) }),
        exitHandler: (_fp, ip, retIp, fregs, d, cpu) => {
          this.restoreEntry(d);
          this.hit(ip, retIp, fregs, cpu);
        },
      });
    }
  }

  /**
   * Parses (when given text), compiles and verifies an event with type `id`; nothing is traced
   * until enableIn(). Errors: the parser's ProbeParseError is thrown as the parser does; a symbol
   * @SYM names that is missing is ENOENT; a program the verifier rejects is its errno.
   */
  static create(
    fprobes: Fprobes,
    definition: string | FprobeEvent,
    id: number,
  ): FprobeTraceEvent | TracelabError {
    const kernel = fprobes.kernel;
    const ev =
      typeof definition === 'string'
        ? parseFprobeEvent(definition, (s) => imageTarget(kernel.image, s))
        : definition;
    const rt = EventRuntime.of(kernel);
    if (rt instanceof TracelabError) return rt;
    const { valueSize } = layoutRecord(ev);
    const map = rt.maps.create({
      type: BPF_MAP_TYPE_ARRAY,
      keySize: 4,
      valueSize,
      maxEntries: 1,
      name: `${ev.group}/${ev.event}`,
    });
    if (map instanceof VmError) return new TracelabError(map.code, map.message);
    const fetch = compileFetchArgs(ev, { arch: kernel.arch, image: kernel.image, mapFd: map.id });
    if (fetch instanceof TracelabError) return fetch;
    const maps = new Map([
      [map.id, { type: 'array' as const, keySize: 4, valueSize, maxEntries: 1 }],
    ]);
    const load = (insns: Insn[], name: string): [Program, VerifyResult] | TracelabError => {
      const verdict = verify(insns, { progType: 'kprobe', arch: kernel.arch, maps });
      if (!verdict.ok) {
        return new TracelabError(
          verdict.errnoName ?? 'EINVAL',
          `fprobe event ${ev.event}: verifier: ${verdict.error?.message ?? 'rejected'}`,
        );
      }
      const prog = Program.load(insns, { name, resolveLddw: mapResolver(rt.maps) });
      return prog instanceof VmError ? new TracelabError(prog.code, prog.message) : [prog, verdict];
    };
    const main = load(fetch.insns, ev.event);
    if (main instanceof TracelabError) return main;
    let entry: Program | null = null;
    if (fetch.entry !== null) {
      const got = load(fetch.entry, `${ev.event}__entry_data`);
      if (got instanceof TracelabError) return got;
      entry = got[0];
    }
    const values = map.values as Region;
    return new FprobeTraceEvent(fprobes, rt, ev, fetch, main[0], entry, main[1], values, id);
  }

  /** Whether the event writes to any ring (its fprobe is registered). */
  get enabled(): boolean {
    return this.rings.length > 0;
  }

  isEnabledIn(ring: TraceEventRing): boolean {
    return this.rings.includes(ring);
  }

  /**
   * Enables the event in one trace instance (echo 1 > enable): its entries go to `ring`; the
   * first instance registers the fprobe.
   */
  enableIn(ring: TraceEventRing): TracelabError | null {
    if (this.rings.includes(ring)) return null;
    if (this.rings.length === 0) {
      const err = this.fprobes.registerFprobeSyms(this.fp, [this.event.symbol]);
      if (err !== null) return err;
    }
    this.rings.push(ring);
    this.refreshFilters();
    return null;
  }

  /** Disables the event in one instance (echo 0 > enable); the last one unregisters the fprobe. */
  disableIn(ring: TraceEventRing): TracelabError | null {
    const at = this.rings.indexOf(ring);
    if (at < 0) return null;
    this.rings.splice(at, 1);
    this.refreshFilters();
    return this.rings.length === 0 ? this.fprobes.unregisterFprobe(this.fp) : null;
  }

  /**
   * echo DATA > events/GROUP/EVENT/filter in the instance of `ring` (apply_event_filter): "0"
   * clears the filter; otherwise the filter is compiled against the event's fields. A failed
   * write still replaces the old filter, leaving the event unfiltered, and the file shows the
   * error. `group`: the write went to the group's filter file (the error then says so, and the
   * caller does not fail the write).
   */
  setFilter(ring: TraceEventRing, data: string, group = false): EventFilterError | null {
    const text = filterString(data);
    if (text === null) this.filters.delete(ring);
    else {
      const kernel = this.fprobes.kernel;
      const made = EventFilter.compile(text, {
        fields: this.fields,
        common: COMMON_FIELDS,
        longSize: kernel.info.wordSize,
        symbols: imageSymbols(kernel),
      });
      const state = made instanceof EventFilterError && group ? made.inGroup() : made;
      this.filters.set(ring, state);
      if (state instanceof EventFilter && this.scratch === null) {
        this.scratch = new Uint8Array(this.maxEntrySize());
        this.scratchView = new DataView(this.scratch.buffer);
      }
    }
    this.refreshFilters();
    const now = this.filters.get(ring);
    return now instanceof EventFilterError ? now : null;
  }

  /** What events/GROUP/EVENT/filter reads in the instance of `ring` (print_event_filter). */
  readFilter(ring: TraceEventRing): string {
    const f = this.filters.get(ring);
    if (f === undefined) return 'none\n';
    return f instanceof EventFilter ? `${f.text}\n` : f.fileText();
  }

  private refreshFilters(): void {
    this.ringFilters = this.rings.map((r) => {
      const f = this.filters.get(r);
      return f instanceof EventFilter ? f : null;
    });
    this.filtering = this.ringFilters.some((f) => f !== null);
    this.filterComm = this.ringFilters.some((f) => f?.usesComm === true);
  }

  /** The largest entry a hit can make: every string at its longest. */
  private maxEntrySize(): number {
    let n = this.fixedSize;
    let symbol = 0;
    for (let i = 0; i < this.argKind.length; i++) {
      if (this.argKind[i] === K_STRING) n += (this.argCount[i] as number) * MAX_STRING_SIZE;
      else if (this.argKind[i] === K_SYMSTR) symbol += this.argCount[i] as number;
    }
    if (symbol === 0) return n;
    // %pS: NAME+0xOFF/0xSIZE [MODULE] (offset and size below 2^32), or 0x and 16 digits.
    let longest = 18;
    for (const f of this.fprobes.kernel.image.functions) {
      const mod = f.module === null ? 0 : f.module.length + 3;
      longest = Math.max(longest, f.name.length + 2 * (3 + 8) + mod);
    }
    return n + symbol * (longest + 1);
  }

  /** Runs a program over the pt_regs built from fregs on the CPU; false when the vm fails. */
  private run(prog: Program, fregs: FtraceRegs, cpu: number): boolean {
    const rt = this.rt;
    ftracePartialRegs(fregs, rt.regs[cpu]);
    return (
      (rt.vms[cpu] as Vm).runRaw(prog, rt.ptLo[cpu] as number, rt.ptHi[cpu] as number, 0, 0) === 0
    );
  }

  /**
   * fentry_trace_func's entry side of a %return event: the entry program stores the arguments
   * after the record, and they are kept in the fprobe's entry data for this call. Non-zero (no
   * exit handler for this call) when they cannot be saved.
   */
  private saveEntry(fregs: FtraceRegs | null, d: FprobeData | null, cpu: Cpu): number {
    if (fregs === null || d === null || !this.run(this.entryProg as Program, fregs, cpu.id)) {
      this.stats.errors++;
      return 1;
    }
    const v = this.record.view;
    const base = this.fetch.edataOffset;
    for (let k = 0; k < this.fetch.edataWords; k++) {
      d.setWord(k, v.getUint32(base + k * 8, true), v.getUint32(base + k * 8 + 4, true));
    }
    return 0;
  }

  /** The exit side: the saved arguments back after the record, where the program reads them. */
  private restoreEntry(d: FprobeData | null): void {
    if (d === null) return;
    const v = this.record.view;
    const base = this.fetch.edataOffset;
    for (let k = 0; k < this.fetch.edataWords; k++) {
      v.setUint32(base + k * 8, d.lo(k), true);
      v.setUint32(base + k * 8 + 4, d.hi(k), true);
    }
  }

  private hit(ip: number, retIp: number, fregs: FtraceRegs, cpu: Cpu): void {
    const id = cpu.id;
    this.stats.hits++;
    if (!this.run(this.prog, fregs, id)) {
      this.stats.errors++;
      return;
    }
    const task = cpu.current;
    const pid = task === null ? 0 : task.pid;
    const ctx = traceCtx(cpu.preemptCount);
    const ts = Math.floor(cpu.clock);
    const size = this.fixedSize + this.dynamicSize();
    if (this.filtering) {
      this.storeFiltered(cpu, ts, size, pid, ctx, ip, retIp);
      return;
    }
    for (let r = 0; r < this.rings.length; r++) {
      const ring = this.rings[r] as TraceEventRing;
      const at = ring.reserve(id, ts, size);
      if (at >= 0) this.store(ring.view(id), ring.bytes(id), at, pid, ctx, ip, retIp);
    }
  }

  /**
   * A hit while some instance filters the event: the entry is built once in the scratch buffer,
   * each instance's filter (filter_match_preds) decides, and the entries that pass are copied.
   */
  private storeFiltered(
    cpu: Cpu,
    ts: number,
    size: number,
    pid: number,
    ctx: number,
    ip: number,
    retIp: number,
  ): void {
    const sb = this.scratch as Uint8Array;
    const sv = this.scratchView as DataView;
    const id = cpu.id;
    this.store(sv, sb, 0, pid, ctx, ip, retIp);
    if (this.filterComm) this.loadComm(cpu);
    for (let r = 0; r < this.rings.length; r++) {
      const f = this.ringFilters[r] as EventFilter | null;
      if (f !== null && !f.match(sv, sb, 0, id, this.comm)) {
        this.stats.filtered++;
        continue;
      }
      const ring = this.rings[r] as TraceEventRing;
      const at = ring.reserve(id, ts, size);
      if (at < 0) continue;
      const b = ring.bytes(id);
      for (let k = 0; k < size; k++) b[at + k] = sb[k] as number;
    }
  }

  /** current->comm into `comm`, NUL padded (every traced call runs in a task). */
  private loadComm(cpu: Cpu): void {
    const c = this.comm;
    c.fill(0);
    const comm = cpu.current?.comm ?? '';
    const n = Math.min(comm.length, TASK_COMM_LEN - 1);
    for (let k = 0; k < n; k++) c[k] = comm.charCodeAt(k) & 0xff;
  }

  /** Bytes the record's strings take in the entry's dynamic area. */
  private dynamicSize(): number {
    const rec = this.record.view;
    let n = 0;
    for (let i = 0; i < this.argKind.length; i++) {
      const kind = this.argKind[i] as number;
      for (let k = 0; k < (this.argCount[i] as number); k++) {
        const at = (this.recOff[i] as number) + k * (this.recStride[i] as number);
        if (kind === K_STRING) n += Math.max(0, rec.getInt32(at, true));
        else if (kind === K_SYMSTR) n += this.symbolLength(rec, at);
      }
    }
    return n;
  }

  /** store_trace_args at `at` of `b`: the header, the fixed arguments, then the strings. */
  private store(
    v: DataView,
    b: Uint8Array,
    at: number,
    pid: number,
    ctx: number,
    ip: number,
    retIp: number,
  ): void {
    const recBytes = this.record.bytes;
    const rec = this.record.view;
    const ws = this.wordSize;
    v.setUint16(at, this.id, true);
    v.setUint8(at + 2, ctx >> 8);
    v.setUint8(at + 3, ctx & 0xff);
    v.setInt32(at + 4, pid, true);
    this.storeWord(v, at + 8, ip >>> 0);
    if (this.event.isReturn) this.storeWord(v, at + 8 + ws, retIp >>> 0);
    let dyn = at + this.fixedSize;
    for (let i = 0; i < this.argKind.length; i++) {
      const kind = this.argKind[i] as number;
      const dst = at + (this.argOff[i] as number);
      const src = this.recOff[i] as number;
      const stride = this.recStride[i] as number;
      const count = this.argCount[i] as number;
      if (kind === K_BASIC) {
        for (let k = 0; k < stride * count; k++) b[dst + k] = recBytes[src + k] as number;
        continue;
      }
      for (let k = 0; k < count; k++) {
        const e = src + k * stride;
        let len: number;
        if (kind === K_STRING) {
          len = Math.max(0, rec.getInt32(e, true));
          for (let j = 0; j < len; j++) b[dyn + j] = recBytes[e + 8 + j] as number;
        } else len = this.writeSymbol(b, dyn, rec, e);
        // make_data_loc(len, offset from the entry); a fault stores length 0.
        v.setUint32(dst + k * 4, ((len << 16) | (dyn - at)) >>> 0, true);
        dyn += len;
      }
    }
  }

  private storeWord(v: DataView, at: number, lo: number): void {
    v.setUint32(at, lo, true);
    if (this.wordSize === 8) v.setUint32(at + 4, this.textHi, true);
  }

  /** The function a record word (an address) falls in, or -1, without making a bigint. */
  private symbolIndex(rec: DataView, at: number): number {
    const image = this.fprobes.kernel.image;
    const hi = this.wordSize === 8 ? rec.getUint32(at + 4, true) : 0;
    if (hi !== this.textHi) return -1;
    const off = rec.getUint32(at, true) - this.textLo();
    return off < 0 ? -1 : image.indexAtOffset(off);
  }

  private textLo(): number {
    return Number(this.fprobes.kernel.image.textBase & 0xffffffffn);
  }

  /** Length of %pS of the address at a record word, with its NUL. */
  private symbolLength(rec: DataView, at: number): number {
    return this.writeSymbol(null, 0, rec, at);
  }

  /** Where writeSymbol puts bytes (null: only counts them) and its cursor. */
  private symOut: Uint8Array | null = null;
  private symPos = 0;

  private putc(c: number): void {
    if (this.symOut !== null) this.symOut[this.symPos] = c;
    this.symPos++;
  }

  /** 0x and the hex digits of hi:lo, two uint32 halves (as one double the low digits round). */
  private putHex(hi: number, lo: number): void {
    this.putc(0x30);
    this.putc(0x78);
    if (hi !== 0) this.putDigits(hi, 1);
    this.putDigits(lo, hi !== 0 ? 8 : 1);
  }

  /** The hex digits of a uint32, at least `min` of them. */
  private putDigits(v: number, min: number): void {
    let n = min;
    while (n < 8 && v >= 16 ** n) n++;
    for (let k = n - 1; k >= 0; k--) {
      const x = Math.floor(v / 16 ** k) % 16;
      this.putc(x < 10 ? 0x30 + x : 0x57 + x);
    }
  }

  private putText(t: string): void {
    for (let c = 0; c < t.length; c++) this.putc(t.charCodeAt(c));
  }

  /**
   * Writes %pS of the address at a record word, NUL-terminated, into b at off (b null: counts
   * only) and returns the bytes: the symstr store, done byte by byte so a hit makes no string.
   */
  private writeSymbol(b: Uint8Array | null, off: number, rec: DataView, at: number): number {
    const image = this.fprobes.kernel.image;
    const i = this.symbolIndex(rec, at);
    this.symOut = b;
    this.symPos = off;
    if (i < 0) {
      const hi = this.wordSize === 8 ? rec.getUint32(at + 4, true) : 0;
      this.putHex(hi, rec.getUint32(at, true));
    } else {
      const fn = image.functions[i] as { name: string; size: number; module: string | null };
      this.putText(fn.name);
      this.putc(0x2b);
      this.putHex(0, rec.getUint32(at, true) - this.textLo() - image.textOffset(i));
      this.putc(0x2f);
      this.putHex(0, fn.size);
      if (fn.module !== null) {
        this.putText(' [');
        this.putText(fn.module);
        this.putc(0x5d);
      }
    }
    this.putc(0);
    this.symOut = null;
    return this.symPos - off;
  }

  /** A whole trace line of an entry: trace_print_context, then the event's part. */
  printLine(cpu: number, ts: number, bytes: Uint8Array, at: number): string {
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const pid = entryPid(bytes, at);
    const ctx = (v.getUint8(at + 2) << 8) | v.getUint8(at + 3);
    const task = pid === 0 ? null : this.fprobes.kernel.tasks.find((t) => t.pid === pid);
    const comm = pid === 0 ? '<idle>' : (task?.comm ?? '<...>');
    const secs = Math.floor(ts / 1e9);
    const usec = Math.floor((ts % 1e9) / 1000);
    return (
      `${comm.padStart(16)}-${String(pid).padEnd(7)} [${String(cpu).padStart(3, '0')}] ` +
      `${latencyFlags(ctx)} ${String(secs).padStart(5)}.${String(usec).padStart(6, '0')}: ` +
      this.printBody(bytes, at)
    );
  }

  /** The `format` file: name, ID, the common and the event's fields, print fmt. */
  format(): string {
    const line = (f: EventField) => {
      const lb = f.type.indexOf('[');
      const decl =
        lb < 0 || f.type.startsWith('__data_loc')
          ? `${f.type} ${f.name}`
          : `${f.type.slice(0, lb)} ${f.name}[]`;
      return `\tfield:${decl};\toffset:${f.offset};\tsize:${f.size};\tsigned:${f.signed ? 1 : 0};\n`;
    };
    return (
      `name: ${this.event.event}\nID: ${this.id}\nformat:\n` +
      COMMON_FIELDS.map(line).join('') +
      '\n' +
      this.fields.map(line).join('') +
      `\nprint fmt: ${this.printFmt()}\n`
    );
  }

  /** __set_print_fmt: the location, then ` name=FMT` per argument, then the arguments. */
  private printFmt(): string {
    let fmt = this.event.isReturn ? '"(%lx <- %lx)' : '"(%lx)';
    let args = this.event.isReturn
      ? ', REC->__probe_func, REC->__probe_ret_ip'
      : ', REC->__probe_ip';
    for (const s of this.fetch.slots) {
      const t = s.arg.type;
      const kind = t.name === 'symstr' ? 'symstr' : s.string ? 'string' : t.name;
      const f = fetchFormat(kind, this.wordSize).fmt;
      const str = kind === 'string' || kind === 'symstr';
      const name = s.arg.name;
      if (t.array === null) {
        fmt += ` ${name}=${f}`;
        args += str ? `, __get_str(${name})` : `, REC->${name}`;
        continue;
      }
      fmt += ` ${name}={${Array.from({ length: t.array }, () => f).join(',')}}`;
      for (let k = 0; k < t.array; k++)
        args += str ? `, __get_str(${name}[${k}])` : `, REC->${name}[${k}]`;
    }
    return `${fmt}"${args}`;
  }

  /** The event's part of a trace line: `NAME: (LOCATION) name=value...`. */
  printBody(bytes: Uint8Array, at: number): string {
    const image = this.fprobes.kernel.image;
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const word = (off: number) => this.readWord(v, at + off);
    const where = this.event.isReturn
      ? `${image.symbolize(word(8 + this.wordSize))} <- ${this.event.symbol}`
      : image.symbolize(word(8));
    let out = `${this.event.event}: (${where})`;
    for (const [i, s] of this.fetch.slots.entries()) {
      out += ` ${s.arg.name}=`;
      if (s.arg.type.array === null) {
        out += this.element(v, bytes, at, i, 0);
        continue;
      }
      out += '{';
      for (let k = 0; k < s.count; k++) {
        out += this.element(v, bytes, at, i, k);
        out += k === s.count - 1 ? '}' : ',';
      }
    }
    return out;
  }

  /** The argument values of an entry by name, as the trace prints them (numbers where exact). */
  values(bytes: Uint8Array, at: number): Record<string, string | number> {
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const out: Record<string, string | number> = {};
    for (const [i, s] of this.fetch.slots.entries()) {
      const t = s.arg.type;
      const one = (k: number): string | number => {
        const text = this.element(v, bytes, at, i, k);
        if (this.argKind[i] !== K_BASIC || t.hex || t.name === 'char' || t.name === 'symbol')
          return text.startsWith('"') ? text.slice(1, -1) : text;
        const n = Number(text);
        return Number.isSafeInteger(n) ? n : text;
      };
      if (t.array === null) out[s.arg.name] = one(0);
      else for (let k = 0; k < s.count; k++) out[`${s.arg.name}[${k}]`] = one(k);
    }
    return out;
  }

  /** The probed address (__probe_ip, or __probe_func on exit) and, on exit, __probe_ret_ip. */
  location(bytes: Uint8Array, at: number): { ip: bigint; retIp: bigint | null } {
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return {
      ip: this.readWord(v, at + 8),
      retIp: this.event.isReturn ? this.readWord(v, at + 8 + this.wordSize) : null,
    };
  }

  private readWord(v: DataView, at: number): bigint {
    return this.wordSize === 8 ? v.getBigUint64(at, true) : BigInt(v.getUint32(at, true));
  }

  private element(v: DataView, bytes: Uint8Array, at: number, i: number, k: number): string {
    const s = this.fetch.slots[i] as ArgSlot;
    const t = s.arg.type;
    const kind = this.argKind[i] as number;
    const off = at + (this.argOff[i] as number);
    if (kind !== K_BASIC) {
      const loc = v.getUint32(off + k * 4, true);
      const len = loc >>> 16;
      if (len === 0) return '(fault)';
      let str = '';
      for (let j = 0; j < len - 1; j++) {
        const c = bytes[at + (loc & 0xffff) + j] as number;
        if (c === 0) break;
        str += String.fromCharCode(c);
      }
      return `"${str}"`;
    }
    const val = readValue(v, off + k * t.size, t.size, t.signed);
    switch (t.name) {
      case 'char':
        return `'${String.fromCharCode(Number(val & 0xffn))}'`;
      case 'symbol':
        return this.fprobes.kernel.image.symbolize(val);
      default:
        return t.hex ? `0x${val.toString(16)}` : val.toString();
    }
  }
}

/** kallsyms of the kernel's image, for `FIELD.function` in filters. */
function imageSymbols(kernel: Kernel): FilterSymbols {
  const image = kernel.image;
  return {
    address: (name) => {
      const i = image.indexOf(name);
      return i < 0 ? null : (image.functions[i] as { addr: bigint }).addr;
    },
    functionAt: (addr) => {
      const hit = image.lookup(addr);
      return hit === null ? null : { start: hit.fn.addr, size: hit.fn.size };
    },
  };
}

/** One basic element of an entry, signed or not as its type says. */
function readValue(view: DataView, off: number, size: number, signed: boolean): bigint {
  switch (size) {
    case 1:
      return BigInt(signed ? view.getInt8(off) : view.getUint8(off));
    case 2:
      return BigInt(signed ? view.getInt16(off, true) : view.getUint16(off, true));
    case 4:
      return BigInt(signed ? view.getInt32(off, true) : view.getUint32(off, true));
    default:
      return signed ? view.getBigInt64(off, true) : view.getBigUint64(off, true);
  }
}
