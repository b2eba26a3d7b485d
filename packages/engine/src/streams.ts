import {
  StreamKindSchema,
  TracelabError,
  type StreamKind,
  type TraceEvent,
} from '@tracelab/contracts';
import type { FunctionGraphTracer } from '@tracelab/fgraph';
import { entryType, type FprobeTraceEvent, type TraceEventRing } from '@tracelab/fprobe';
import type { Kernel } from '@tracelab/kernel';
import { PerfEventArray, RingBuf } from '@tracelab/vm';
import type { Engine } from './engine.js';
import type { TraceArray } from './trace-array.js';

/** Events a batch holds unless the reader asks for another size. */
export const DEFAULT_BATCH_EVENTS = 1024;
/** The most events one batch may hold (TraceEventBatchSchema's limit). */
export const MAX_BATCH_EVENTS = 65536;

/**
 * Consecutive events of one stream: the first one's sequence number and how many events the
 * producer dropped (ring buffer overruns, refused reservations) since the stream's previous batch.
 */
export interface StreamBatch {
  readonly firstSeq: number;
  readonly events: TraceEvent[];
  readonly lost: number;
}

export interface StreamOptions {
  /** The trace instance of a trace or trace_pipe stream ('' or absent: the top level). */
  readonly instance?: string;
  /** Events per batch at most, 1 to MAX_BATCH_EVENTS (default DEFAULT_BATCH_EVENTS). */
  readonly batchEvents?: number;
}

/** What a stream reads from: appends the events it takes and returns the producer's losses, or null once it is gone. */
interface Source {
  pull(out: TraceEvent[]): number | null;
}

/**
 * One output stream of an engine. Pulling reads its source on the consumer side, numbers the
 * events (sequence numbers run on without holes for the engine's lifetime) and hands the chunk
 * to every open reader.
 */
class Stream {
  private seq = 0;
  readonly readers = new Set<StreamReader>();

  constructor(
    readonly kind: StreamKind,
    private readonly source: Source,
  ) {}

  pull(): StreamBatch | null {
    const events: TraceEvent[] = [];
    const lost = this.source.pull(events);
    if (lost === null) {
      this.end();
      return null;
    }
    if (events.length === 0 && lost === 0) return null;
    const chunk: StreamBatch = { firstSeq: this.seq, events, lost };
    this.seq += events.length;
    for (const r of this.readers) r.push(chunk);
    return chunk;
  }

  /** Readers get what they hold, then end. */
  end(): void {
    for (const r of [...this.readers]) r.end();
  }

  get waiting(): boolean {
    for (const r of this.readers) if (r.waiting) return true;
    return false;
  }
}

/** Splits a chunk into batches of at most n events; the losses go with the first. */
function split(chunk: StreamBatch, n: number): StreamBatch[] {
  const out: StreamBatch[] = [];
  let at = 0;
  do {
    const events = chunk.events.slice(at, at + n);
    out.push({ firstSeq: chunk.firstSeq + at, events, lost: at === 0 ? chunk.lost : 0 });
    at += n;
  } while (at < chunk.events.length);
  return out;
}

/**
 * An open stream: an async iterable of batches. `next()` reads the stream's source when nothing
 * is queued and otherwise waits for the next workload run. It ends when the reader or its stream
 * is closed, or the engine is closed (after the batches already taken).
 */
export class StreamReader implements AsyncIterableIterator<StreamBatch> {
  private readonly queue: StreamBatch[] = [];
  private readonly waiters: ((r: IteratorResult<StreamBatch, undefined>) => void)[] = [];
  private ended = false;

  constructor(
    private readonly stream: Stream,
    readonly batchEvents: number,
  ) {
    stream.readers.add(this);
  }

  get kind(): StreamKind {
    return this.stream.kind;
  }

  get waiting(): boolean {
    return this.waiters.length > 0;
  }

  /** A chunk the stream pulled. */
  push(chunk: StreamBatch): void {
    this.queue.push(...split(chunk, this.batchEvents));
    this.serve();
  }

  /** The stream is done: what is queued still comes out, then the iterator ends. */
  end(): void {
    this.ended = true;
    this.stream.readers.delete(this);
    this.serve();
  }

  private serve(): void {
    while (this.waiters.length > 0) {
      const batch = this.queue.shift();
      if (batch === undefined && !this.ended) return;
      const resolve = this.waiters.shift() as (r: IteratorResult<StreamBatch, undefined>) => void;
      resolve(
        batch === undefined ? { value: undefined, done: true } : { value: batch, done: false },
      );
    }
  }

  next(): Promise<IteratorResult<StreamBatch, undefined>> {
    if (this.queue.length === 0 && !this.ended && this.waiters.length === 0) this.stream.pull();
    const promise = new Promise<IteratorResult<StreamBatch, undefined>>((resolve) =>
      this.waiters.push(resolve),
    );
    this.serve();
    return promise;
  }

  /** Closes this reader: queued batches are dropped and the iterator ends. */
  close(): void {
    this.queue.length = 0;
    this.end();
  }

  return(): Promise<IteratorResult<StreamBatch, undefined>> {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/**
 * The engine's output streams: the trace buffer read without consuming (`trace`), the same
 * buffer consumed (`trace_pipe`), BPF ring buffers (`ringbuf`), perf event arrays (`perf`) and
 * bpf_trace_printk lines (`printk`), as async iterables of numbered batches with loss counts, or
 * drained synchronously. Every read happens here, on the consumer side; the traced calls only
 * write their buffers.
 */
export class Streams {
  private readonly streams = new Map<string, Stream>();
  private closed = false;

  constructor(private readonly engine: Engine) {}

  /** Opens a reader of a stream; the first batch it yields starts with what the stream has not read yet. */
  open(kind: string, options: StreamOptions = {}): StreamReader | TracelabError {
    const s = this.stream(kind, options);
    if (s instanceof TracelabError) return s;
    const n = options.batchEvents ?? DEFAULT_BATCH_EVENTS;
    if (!Number.isInteger(n) || n < 1 || n > MAX_BATCH_EVENTS) {
      return new TracelabError('EINVAL', `batchEvents ${n} is not 1..${MAX_BATCH_EVENTS}`);
    }
    return new StreamReader(s, n);
  }

  /**
   * Reads what a stream has now, synchronously, as batches of at most `batchEvents` (open
   * readers of the stream get the same batches). Empty when nothing was written or lost.
   */
  drain(kind: string, options: StreamOptions = {}): StreamBatch[] | TracelabError {
    const s = this.stream(kind, options);
    if (s instanceof TracelabError) return s;
    const n = options.batchEvents ?? DEFAULT_BATCH_EVENTS;
    if (!Number.isInteger(n) || n < 1 || n > MAX_BATCH_EVENTS) {
      return new TracelabError('EINVAL', `batchEvents ${n} is not 1..${MAX_BATCH_EVENTS}`);
    }
    const chunk = s.pull();
    return chunk === null ? [] : split(chunk, n);
  }

  /** Ends every reader of a stream (its sequence numbers carry on for readers opened later). */
  close(kind: string, options: StreamOptions = {}): TracelabError | null {
    const s = this.stream(kind, options);
    if (s instanceof TracelabError) return s;
    s.end();
    return null;
  }

  /** After a workload run: streams with a waiting reader read their sources. */
  wake(): void {
    for (const s of this.streams.values()) if (s.waiting) s.pull();
  }

  /** The engine closes: readers get a last read of their streams, then end. */
  shutdown(): void {
    if (this.closed) return;
    for (const s of this.streams.values()) {
      if (s.readers.size > 0) s.pull();
      s.end();
    }
    this.closed = true;
  }

  private stream(kind: string, options: StreamOptions): Stream | TracelabError {
    if (this.closed) return new TracelabError('ESHUTDOWN', 'the engine is closed');
    const k = StreamKindSchema.safeParse(kind);
    if (!k.success) {
      return new TracelabError(
        'EINVAL',
        `no stream '${kind}' (${StreamKindSchema.options.join(', ')})`,
      );
    }
    const instance = options.instance ?? '';
    const traced = k.data === 'trace' || k.data === 'trace_pipe';
    if (instance !== '' && !traced) {
      return new TracelabError('EINVAL', `stream ${k.data} has no instances`);
    }
    if (traced && this.engine.tracefs.instance(instance) === undefined) {
      return new TracelabError('ENOENT', `instances/${instance}: No such file or directory`);
    }
    const key = instance === '' ? k.data : `${k.data}:${instance}`;
    let s = this.streams.get(key);
    if (s === undefined) {
      s = new Stream(k.data, this.source(k.data, instance));
      this.streams.set(key, s);
    }
    return s;
  }

  private source(kind: StreamKind, instance: string): Source {
    switch (kind) {
      case 'trace':
        return new TraceSource(this.engine, instance);
      case 'trace_pipe':
        return new PipeSource(this.engine, instance);
      case 'ringbuf':
        return new RingbufSource(this.engine);
      case 'perf':
        return new PerfSource(this.engine);
      case 'printk':
        return {
          pull: (out) =>
            this.engine.printk.consume((ts, cpu, pid, comm, text) =>
              out.push({ type: 'text', ts: Math.floor(ts), cpu, pid, comm, text }),
            ),
        };
    }
  }
}

// ---- function tracer and function_graph entries as events ----

// Payload words of a function entry, as FunctionTracer writes them.
const W_IP_LO = 0;
const W_IP_HI = 1;
const W_PARENT_LO = 2;
const W_PARENT_HI = 3;
const W_PID = 4;

const GRAPH_ENTRY = 1;

/**
 * One CPU's function_graph buffer: the columns FunctionGraphTracer records into and prints from.
 * fgraph keeps them to itself (its `trace` output is text); the engine reads them the way that
 * output does.
 */
interface GraphColumns {
  readonly type: Uint8Array;
  readonly pid: Int32Array;
  readonly fn: Int32Array;
  readonly depth: Int16Array;
  readonly time: Float64Array;
  readonly calltime: Float64Array;
  readonly retLo: Uint32Array;
  readonly retHi: Uint32Array;
  readonly held: number;
  slot(k: number): number;
}

function graphColumns(g: FunctionGraphTracer): readonly GraphColumns[] {
  return (g as unknown as { readonly buffers: readonly GraphColumns[] }).buffers;
}

/** Turns buffer entries into events, naming tasks and symbols as the trace file does. */
class Decoder {
  declare private readonly comms: Map<number, string>;
  declare private readonly wide: boolean;

  constructor(private readonly kernel: Kernel) {
    this.comms = new Map(kernel.tasks.map((t) => [t.pid, t.comm]));
    this.wide = kernel.info.wordSize === 8;
  }

  comm(pid: number): string {
    return pid === 0 ? '<idle>' : (this.comms.get(pid) ?? '<...>');
  }

  private sym(addr: bigint): string {
    const hit = this.kernel.image.lookup(addr);
    return hit !== null ? hit.fn.name : `0x${addr.toString(16).padStart(8, '0')}`;
  }

  function(cpu: number, ts: number, d: Uint32Array, off: number): TraceEvent {
    const ip = (BigInt(d[off + W_IP_HI] as number) << 32n) | BigInt(d[off + W_IP_LO] as number);
    const parentIp =
      (BigInt(d[off + W_PARENT_HI] as number) << 32n) | BigInt(d[off + W_PARENT_LO] as number);
    const pid = d[off + W_PID] as number;
    return {
      type: 'function',
      ts: Math.floor(ts),
      cpu,
      pid,
      comm: this.comm(pid),
      ip: ip.toString(),
      parentIp: parentIp.toString(),
      func: this.sym(ip),
      parent: parentIp === 0n ? '' : this.sym(parentIp),
    };
  }

  /** A dynamic event's entry at `at` in a CPU's event ring. */
  probe(ev: FprobeTraceEvent, cpu: number, ts: number, bytes: Uint8Array, at: number): TraceEvent {
    const pid = new DataView(bytes.buffer, bytes.byteOffset).getInt32(at + 4, true);
    const loc = ev.location(bytes, at);
    return {
      type: 'probe',
      ts: Math.floor(ts),
      cpu,
      pid,
      comm: this.comm(pid),
      event: ev.event.event,
      group: ev.event.group,
      fields: ev.values(bytes, at),
      ip: loc.ip.toString(),
      ...(loc.retIp === null ? {} : { retIp: loc.retIp.toString() }),
    };
  }

  graph(cpu: number, b: GraphColumns, i: number): TraceEvent {
    const pid = b.pid[i] as number;
    const head = {
      ts: Math.floor(b.time[i] as number),
      cpu,
      pid,
      comm: this.comm(pid),
      func: this.kernel.image.functions[b.fn[i] as number]?.name ?? '?',
      depth: b.depth[i] as number,
    };
    if (b.type[i] === GRAPH_ENTRY) return { type: 'funcgraph_entry', ...head };
    const lo = BigInt(b.retLo[i] as number);
    const retval = this.wide ? (BigInt(b.retHi[i] as number) << 32n) | lo : lo;
    return {
      type: 'funcgraph_exit',
      ...head,
      calltime: Math.floor(b.calltime[i] as number),
      retval: retval.toString(),
    };
  }
}

/** Graph events of every CPU from per-CPU starting points, by time (a tie goes to the lower CPU). */
function graphEvents(tr: TraceArray, from: readonly number[], out: TraceEvent[]): void {
  const dec = new Decoder(tr.engine.kernel);
  const cols = graphColumns(tr.graph);
  const k = Int32Array.from(from);
  for (;;) {
    let best = -1;
    let bestTs = 0;
    for (let c = 0; c < cols.length; c++) {
      const b = cols[c] as GraphColumns;
      if ((k[c] as number) >= b.held) continue;
      const t = b.time[b.slot(k[c] as number)] as number;
      if (best < 0 || t < bestTs) {
        best = c;
        bestTs = t;
      }
    }
    if (best < 0) return;
    const b = cols[best] as GraphColumns;
    out.push(dec.graph(best, b, b.slot(k[best] as number)));
    k[best] = (k[best] as number) + 1;
  }
}

/**
 * The entries of an instance's event ring from per-CPU starting points (entries to skip), by
 * time; `consume` takes them (skipping nothing) and adds each CPU's losses to the returned count.
 */
function probeEvents(
  tr: TraceArray,
  ring: TraceEventRing,
  skip: readonly number[] | null,
  out: TraceEvent[],
): number {
  const dec = new Decoder(tr.engine.kernel);
  const seen = new Int32Array(ring.cpus);
  let lost = 0;
  ring.read((cpu, ts, bytes, at, _len, lostBefore) => {
    lost += lostBefore;
    const k = seen[cpu] as number;
    seen[cpu] = k + 1;
    if (skip !== null && k < (skip[cpu] as number)) return;
    const id = entryType(bytes, at);
    const ev = tr.engine.tracefs.eventById(id);
    if (ev !== undefined) out.push(dec.probe(ev, cpu, ts, bytes, at));
  }, skip === null);
  return lost;
}

/** Appends two time-ordered lists to out by time; a tie goes to the tracer's entry. */
function mergeByTime(
  tracer: readonly TraceEvent[],
  probes: readonly TraceEvent[],
  out: TraceEvent[],
): void {
  let j = 0;
  for (const e of tracer) {
    while (j < probes.length && (probes[j] as TraceEvent).ts < e.ts)
      out.push(probes[j++] as TraceEvent);
    out.push(e);
  }
  while (j < probes.length) out.push(probes[j++] as TraceEvent);
}

/**
 * Where the current tracer's buffer stands on each CPU: the position of its oldest entry (entries
 * the CPU wrote this epoch before it, overwritten or consumed), how many it holds, and how many
 * it overwrote this epoch (for function_graph: since the last consuming read).
 */
function positions(tr: TraceArray): { first: number[]; held: number[]; overrun: number[] } {
  if (tr.current === 'function_graph') {
    const stats = tr.graph.stats();
    return {
      first: stats.map((s) => (tr.graphConsumed[s.cpu] as number) + s.lost),
      held: stats.map((s) => s.entries),
      overrun: stats.map((s) => s.lost),
    };
  }
  const rb = tr.function.buffer;
  const first: number[] = [];
  const held: number[] = [];
  const overrun: number[] = [];
  for (let c = 0; c < rb.cpus; c++) {
    first.push((tr.functionConsumed[c] as number) + (rb.overrun[c] as number));
    held.push(rb.entries(c));
    overrun.push(rb.overrun[c] as number);
  }
  return { first, held, overrun };
}

/**
 * The `trace` stream: the current tracer's buffer and the instance's event ring read without
 * consuming, by time, each entry once. It
 * keeps, per CPU, the position of the next entry it has not read; entries overwritten before it
 * read them are its losses, entries a trace_pipe reader took first are skipped. A cleared,
 * resized or switched buffer starts a new epoch: the stream reads it from its oldest entry and
 * counts what it overwrote so far as lost.
 */
class TraceSource implements Source {
  declare private tr: TraceArray | undefined;
  private epoch = -1;
  private next: number[] = [];
  /** Per CPU, the position of the next event-ring entry not read yet. */
  private nextProbe: number[] = [];
  private pendingLost = 0;
  private readonly onConsume = (): void => {
    const tr = this.tr as TraceArray;
    const p = this.settle(tr);
    this.next = p.first.map((f, c) => f + (p.held[c] as number));
    const ring = tr.eventRing;
    if (ring !== null)
      this.nextProbe = this.nextProbe.map((_n, c) => ring.first(c) + ring.entries(c));
  };

  constructor(
    private readonly engine: Engine,
    private readonly instance: string,
  ) {}

  /** Counts what left the buffer unread as lost and moves every CPU's position to its oldest entry or later. */
  private settle(tr: TraceArray): { first: number[]; held: number[] } {
    const p = positions(tr);
    const ring = tr.eventRing;
    const ringFirst = (c: number) => (ring === null ? 0 : ring.first(c));
    if (tr.epoch !== this.epoch) {
      this.epoch = tr.epoch;
      this.next = [...p.first];
      this.nextProbe = p.first.map((_f, c) => ringFirst(c));
      for (const n of p.overrun) this.pendingLost += n;
      for (let c = 0; c < p.first.length; c++) this.pendingLost += ring?.lostCount(c) ?? 0;
    }
    const advance = (next: number[], first: (c: number) => number) =>
      next.map((n, c) => {
        const f = first(c);
        if (n < f) this.pendingLost += f - n;
        return Math.max(n, f);
      });
    this.next = advance(this.next, (c) => p.first[c] as number);
    this.nextProbe = advance(this.nextProbe, ringFirst);
    return p;
  }

  pull(out: TraceEvent[]): number | null {
    const tr = this.engine.tracefs.instance(this.instance);
    if (tr !== this.tr) {
      this.tr?.beforeConsume.delete(this.onConsume);
      this.tr = tr;
      this.epoch = -1;
      tr?.beforeConsume.add(this.onConsume);
    }
    if (tr === undefined) return null;
    const p = this.settle(tr);
    const skip = this.next.map((n, c) => n - (p.first[c] as number));
    const traced: TraceEvent[] = [];
    if (tr.current === 'function_graph') graphEvents(tr, skip, traced);
    else {
      const dec = new Decoder(this.engine.kernel);
      const seen = new Int32Array(skip.length);
      tr.function.buffer.read((cpu, ts, d, off) => {
        const k = seen[cpu] as number;
        seen[cpu] = k + 1;
        if (k >= (skip[cpu] as number)) traced.push(dec.function(cpu, ts, d, off));
      }, false);
    }
    const probes: TraceEvent[] = [];
    const ring = tr.eventRing;
    if (ring !== null) {
      const skipProbe = this.nextProbe.map((n, c) => n - ring.first(c));
      probeEvents(tr, ring, skipProbe, probes);
      this.nextProbe = this.nextProbe.map((_n, c) => ring.first(c) + ring.entries(c));
    }
    mergeByTime(traced, probes, out);
    this.next = p.first.map((f, c) => f + (p.held[c] as number));
    const lost = this.pendingLost;
    this.pendingLost = 0;
    return lost;
  }
}

/**
 * The `trace_pipe` stream: takes every entry of the current tracer's buffer and of the
 * instance's event ring, by time, with their CPUs' losses.
 */
class PipeSource implements Source {
  constructor(
    private readonly engine: Engine,
    private readonly instance: string,
  ) {}

  pull(out: TraceEvent[]): number | null {
    const tr = this.engine.tracefs.instance(this.instance);
    if (tr === undefined) return null;
    const traced: TraceEvent[] = [];
    let lost = 0;
    if (tr.current === 'function_graph') {
      const stats = tr.graph.stats();
      graphEvents(
        tr,
        stats.map(() => 0),
        traced,
      );
      tr.consumeGraph();
      lost = stats.reduce((sum, s) => sum + s.lost, 0);
    } else {
      tr.consumeFunction();
      const dec = new Decoder(this.engine.kernel);
      tr.function.buffer.read((cpu, ts, d, off, lostBefore) => {
        lost += lostBefore;
        traced.push(dec.function(cpu, ts, d, off));
      }, true);
    }
    const probes: TraceEvent[] = [];
    const ring = tr.eventRing;
    if (ring !== null) lost += probeEvents(tr, ring, null, probes);
    mergeByTime(traced, probes, out);
    return lost;
  }
}

/**
 * The `ringbuf` stream: committed samples of every BPF ring buffer map, as records. A sample
 * carries no header, so a record is stamped with the engine's clock when it is read, CPU 0 and
 * no task.
 */
class RingbufSource implements Source {
  private readonly seenLost = new WeakMap<RingBuf, number>();

  constructor(private readonly engine: Engine) {}

  pull(out: TraceEvent[]): number {
    const ts = Math.floor(this.engine.now);
    let lost = 0;
    for (const m of this.engine.maps.all()) {
      if (!(m instanceof RingBuf)) continue;
      lost += m.lost - (this.seenLost.get(m) ?? 0);
      this.seenLost.set(m, m.lost);
      m.consume((sample) => out.push(record(ts, 0, sample)));
    }
    return lost;
  }
}

/** The `perf` stream: every perf event array's records, CPU by CPU, with the records each CPU refused. */
class PerfSource implements Source {
  constructor(private readonly engine: Engine) {}

  pull(out: TraceEvent[]): number {
    const ts = Math.floor(this.engine.now);
    let lost = 0;
    for (const m of this.engine.maps.all()) {
      if (!(m instanceof PerfEventArray)) continue;
      for (let cpu = 0; cpu < m.attr.maxEntries; cpu++) {
        const d = m.drain(cpu);
        lost += d.lost;
        for (const r of d.records) out.push(record(ts, cpu, r));
      }
    }
    return lost;
  }
}

function record(ts: number, cpu: number, bytes: Uint8Array): TraceEvent {
  const base64 = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
  return { type: 'record', ts, cpu, pid: 0, comm: '', base64 };
}
