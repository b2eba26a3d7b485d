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
  Program,
  Vm,
  VmError,
  type Region,
} from '@tracelab/vm';
import { imageTarget, parseFprobeEvent, type FprobeEvent } from './dynevent.js';
import { compileFetchArgs, layoutRecord, type ArgSlot, type FetchProgram } from './fetch-bpf.js';
import { Fprobe, type Fprobes } from './fprobe.js';

/** Where a trace line goes: an array to push onto or a callback (the engine's trace buffer). */
export type TraceSink = string[] | ((line: string, cpu: number) => void);

/**
 * Per-arch kernel addresses of the event programs' stacks (one page per CPU) and of their record
 * maps: below the engine's map area, clear of kernel objects, stacks and per-CPU areas.
 */
const EVENT_AREA: Readonly<Partial<Record<ArchName, bigint>>> = {
  x86_64: 0xffff8880e0000000n,
  arm64: 0xffff0000e0000000n,
  riscv64: 0xffffffd8e0000000n,
};
const MAPS_OFFSET = 0x1000000n;
const STACK_STRIDE = 0x10000n;

/** What every event of one kernel shares: the record maps, and per CPU a vm and a pt_regs slot. */
class EventRuntime {
  readonly maps: MapTable;
  readonly vms: Vm[] = [];
  readonly ptSlots: bigint[] = [];
  readonly regs: PtRegs[];

  private constructor(kernel: Kernel, base: bigint) {
    this.maps = new MapTable(kernel.mm, base + MAPS_OFFSET, kernel.cpus.length);
    this.regs = kernel.cpus.map(() => new PtRegs(kernel.arch));
  }

  private static readonly byKernel = new WeakMap<Kernel, EventRuntime>();

  static of(kernel: Kernel): EventRuntime | TracelabError {
    const had = EventRuntime.byKernel.get(kernel);
    if (had !== undefined) return had;
    const base = EVENT_AREA[kernel.arch];
    if (base === undefined) {
      return new TracelabError('EOPNOTSUPP', `fprobe events: ${kernel.arch} is not 64-bit`);
    }
    const rt = new EventRuntime(kernel, base);
    for (const cpu of kernel.cpus) {
      const vm = Vm.create({ memory: kernel.mm, stackBase: base + BigInt(cpu.id) * STACK_STRIDE });
      if (vm instanceof VmError) return new TracelabError(vm.code, vm.message);
      installHelpers(vm, rt.maps, kernelEnv(kernel, cpu.id));
      const slot = kernel.kmalloc(rt.regs[cpu.id]?.bytes.length ?? 0);
      if (typeof slot !== 'bigint') return new TracelabError(slot.code, slot.message);
      rt.vms.push(vm);
      rt.ptSlots.push(slot);
    }
    EventRuntime.byKernel.set(kernel, rt);
    return rt;
  }
}

export interface FprobeTraceEventOptions {
  readonly sink: TraceSink;
}

/** Counters per event. */
export interface FprobeTraceEventStats {
  hits: number;
  /** Runs the vm stopped with an error (the hit is dropped). */
  errors: number;
}

/**
 * An fprobe dynamic event (trace_fprobe): its fetch args compiled to one eBPF program checked by
 * the verifier as a kprobe program, and an fprobe on its symbol (entry, or exit for %return).
 * Each hit builds pt_regs from the ftrace_regs, runs the program in the vm to fill the record and
 * prints the record as print_fentry_event / print_fexit_event do.
 */
export class FprobeTraceEvent {
  readonly event: FprobeEvent;
  readonly fetch: FetchProgram;
  readonly prog: Program;
  readonly verdict: VerifyResult;
  readonly fp: Fprobe;
  readonly stats: FprobeTraceEventStats = { hits: 0, errors: 0 };
  private readonly fprobes: Fprobes;
  private readonly rt: EventRuntime;
  private readonly record: Region;
  private readonly sink: TraceSink;
  private readonly textHi: bigint;
  private readonly head: string;

  private constructor(
    fprobes: Fprobes,
    rt: EventRuntime,
    event: FprobeEvent,
    fetch: FetchProgram,
    prog: Program,
    verdict: VerifyResult,
    record: Region,
    sink: TraceSink,
  ) {
    this.fprobes = fprobes;
    this.rt = rt;
    this.event = event;
    this.fetch = fetch;
    this.prog = prog;
    this.verdict = verdict;
    this.record = record;
    this.sink = sink;
    this.textHi = (fprobes.kernel.image.textBase >> 32n) << 32n;
    const image = fprobes.kernel.image;
    const fn = image.functions[image.indexOf(event.symbol)];
    this.head = `${event.event}: (`;
    const tail = event.isReturn
      ? ` <- ${event.symbol})`
      : `${event.symbol}+0x0/0x${(fn?.size ?? 0).toString(16)})`;
    this.fp = new Fprobe({
      name: `${event.group}/${event.event}`,
      ...(event.isReturn
        ? { exitHandler: (_fp, _ip, retIp, fregs, _d, cpu) => this.hit(fregs, cpu, retIp, tail) }
        : { entryHandler: (_fp, _ip, _r, fregs, _d, cpu) => this.hit(fregs, cpu, 0, tail) }),
    });
  }

  /**
   * Parses (when given text), compiles and verifies an event; the fprobe is registered by
   * enable(). Errors: the parser's ProbeParseError is thrown as the parser does; a symbol @SYM
   * names that is missing is ENOENT; a program the verifier rejects is its errno.
   */
  static create(
    fprobes: Fprobes,
    definition: string | FprobeEvent,
    opts: FprobeTraceEventOptions,
  ): FprobeTraceEvent | TracelabError {
    const kernel = fprobes.kernel;
    const ev =
      typeof definition === 'string'
        ? parseFprobeEvent(definition, (s) => imageTarget(kernel.image, s))
        : definition;
    const rt = EventRuntime.of(kernel);
    if (rt instanceof TracelabError) return rt;
    const { recordSize } = layoutRecord(ev);
    const map = rt.maps.create({
      type: BPF_MAP_TYPE_ARRAY,
      keySize: 4,
      valueSize: recordSize,
      maxEntries: 1,
      name: `${ev.group}/${ev.event}`,
    });
    if (map instanceof VmError) return new TracelabError(map.code, map.message);
    const fetch = compileFetchArgs(ev, { arch: kernel.arch, image: kernel.image, mapFd: map.id });
    if (fetch instanceof TracelabError) return fetch;
    const verdict = verify(fetch.insns, {
      progType: 'kprobe',
      arch: kernel.arch,
      maps: new Map([
        [map.id, { type: 'array', keySize: 4, valueSize: recordSize, maxEntries: 1 }],
      ]),
    });
    if (!verdict.ok) {
      return new TracelabError(
        verdict.errnoName ?? 'EINVAL',
        `fprobe event ${ev.event}: verifier: ${verdict.error?.message ?? 'rejected'}`,
      );
    }
    const prog = Program.load(fetch.insns, {
      name: ev.event,
      resolveLddw: mapResolver(rt.maps),
    });
    if (prog instanceof VmError) return new TracelabError(prog.code, prog.message);
    return new FprobeTraceEvent(
      fprobes,
      rt,
      ev,
      fetch,
      prog,
      verdict,
      map.values as Region,
      opts.sink,
    );
  }

  /** Registers the fprobe on the event's symbol (enable = 1). */
  enable(): TracelabError | null {
    return this.fprobes.registerFprobeSyms(this.fp, [this.event.symbol]);
  }

  /** Unregisters the fprobe (enable = 0). */
  disable(): TracelabError | null {
    return this.fprobes.unregisterFprobe(this.fp);
  }

  private hit(fregs: FtraceRegs | null, cpu: Cpu, retIp: number, tail: string): void {
    if (fregs === null) return;
    const id = cpu.id;
    const rt = this.rt;
    const regs = ftracePartialRegs(fregs, rt.regs[id]);
    const slot = rt.ptSlots[id] as bigint;
    const kernel = this.fprobes.kernel;
    kernel.mm.write(slot, regs.bytes);
    const vm = rt.vms[id] as Vm;
    this.stats.hits++;
    if (vm.run(this.prog, slot) !== 0) {
      this.stats.errors++;
      return;
    }
    const task = cpu.current;
    const comm = task === null ? '<idle>' : task.comm;
    const pid = task === null ? 0 : task.pid;
    const ts = cpu.clock;
    const secs = Math.floor(ts / 1e9);
    const usec = Math.floor((ts % 1e9) / 1000);
    const where = this.event.isReturn
      ? kernel.image.symbolize(this.textHi | BigInt(retIp >>> 0))
      : '';
    const line =
      `${comm.padStart(16)}-${String(pid).padEnd(7)} [${String(id).padStart(3, '0')}] ` +
      `${latencyFlags(traceCtx(cpu.preemptCount))} ` +
      `${String(secs).padStart(5)}.${String(usec).padStart(6, '0')}: ` +
      `${this.head}${where}${tail}${this.formatArgs()}`;
    const sink = this.sink;
    if (Array.isArray(sink)) sink.push(line);
    else sink(line, id);
  }

  /** trace_probe_print_args over the last record: ` name=value` per argument. */
  formatArgs(): string {
    const bytes = this.record.bytes;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let out = '';
    for (const s of this.fetch.slots) {
      out += ` ${s.arg.name}=`;
      if (s.count === 1 && s.arg.type.array === null) {
        out += this.element(view, bytes, s, s.offset);
        continue;
      }
      out += '{';
      for (let k = 0; k < s.count; k++) {
        out += this.element(view, bytes, s, s.offset + k * s.stride);
        out += k === s.count - 1 ? '}' : ',';
      }
    }
    return out;
  }

  private element(view: DataView, bytes: Uint8Array, s: ArgSlot, off: number): string {
    const t = s.arg.type;
    if (s.string) {
      const len = view.getInt32(off, true);
      if (len <= 0) return '(fault)';
      let str = '';
      for (let i = 0; i < len - 1; i++) {
        const c = bytes[off + 8 + i] as number;
        if (c === 0) break;
        str += String.fromCharCode(c);
      }
      return `"${str}"`;
    }
    const v = readValue(view, off, s.stride, t.signed);
    switch (t.name) {
      case 'char':
        return `'${String.fromCharCode(Number(v & 0xffn))}'`;
      case 'symbol':
        return this.fprobes.kernel.image.symbolize(v);
      case 'symstr':
        return `"${this.fprobes.kernel.image.symbolize(v)}"`;
      default:
        return t.hex ? `0x${v.toString(16)}` : v.toString();
    }
  }
}

/** One basic element of the record, signed or not as its type says. */
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
