import { TracelabError } from '@tracelab/contracts';
import { FunctionGraphTracer, type GraphComment, type GraphOptions } from '@tracelab/fgraph';
import { entryPid, entryType, TraceEventRing } from '@tracelab/fprobe';
import { formatFilter, FUNCTION_ENTRY_BYTES, FunctionTracer } from '@tracelab/ftrace-core';
import type { Engine } from './engine.js';

/** The tracers of available_tracers, in the order the kernel lists them (newest registered first). */
export const TRACERS = ['function_graph', 'function', 'nop'] as const;
export type TracerName = (typeof TRACERS)[number];

/** The function_graph tracer's options (trace_functions_graph.c trace_opts) by file name. */
export const GRAPH_OPTIONS: Readonly<Record<string, keyof GraphOptions>> = {
  'funcgraph-cpu': 'cpu',
  'funcgraph-overhead': 'overhead',
  'funcgraph-proc': 'proc',
  'funcgraph-duration': 'duration',
  'funcgraph-abstime': 'abstime',
  'funcgraph-irqs': 'irqs',
  'funcgraph-tail': 'tail',
  'funcgraph-retval': 'retval',
  'funcgraph-retval-hex': 'retvalHex',
};

/** TRACE_BUF_SIZE_DEFAULT in KiB: 1441792 bytes. */
export const DEFAULT_BUFFER_SIZE_KB = 1408;
/** TRACING_LOG_ERRS_MAX: error_log keeps the newest eight entries. */
export const TRACING_LOG_ERRS_MAX = 8;

/**
 * struct trace_array: the top-level tracing directory or one of instances/. It owns its tracers
 * (function and function_graph share its filters, as tr->ops does), its buffers, tracing_on and
 * its error_log.
 */
export class TraceArray {
  current: TracerName = 'nop';
  declare readonly function: FunctionTracer;
  declare graph: FunctionGraphTracer;
  private on = true;
  private readonly errors: string[] = [];
  /**
   * Bumped whenever the buffers are emptied or replaced (echo > trace, a tracer switch, a
   * resize): positions a stream kept from an earlier epoch mean nothing now.
   */
  epoch = 0;
  /**
   * Per CPU, entries consuming reads removed this epoch, from the function tracer's ring buffer
   * and from the graph buffers. With them an entry's position (its index among all entries the
   * CPU wrote this epoch) stays fixed while readers consume.
   */
  declare readonly functionConsumed: Float64Array;
  declare readonly graphConsumed: Float64Array;
  /** Called before a consuming read, so non-consuming readers can settle what they had not seen. */
  readonly beforeConsume = new Set<() => void>();
  /** The entries of enabled dynamic events (events/.../enable), made on first use. */
  private ring: TraceEventRing | null = null;

  constructor(
    readonly engine: Engine,
    readonly name: string,
  ) {
    this.function = new FunctionTracer(engine.ftrace, { bufferSizeKb: DEFAULT_BUFFER_SIZE_KB });
    this.graph = this.newGraph(DEFAULT_BUFFER_SIZE_KB);
    this.functionConsumed = new Float64Array(engine.kernel.cpus.length);
    this.graphConsumed = new Float64Array(engine.kernel.cpus.length);
  }

  /** The ring enabled events of this instance write to. */
  get events(): TraceEventRing {
    if (this.ring === null) {
      this.ring = new TraceEventRing(this.engine.kernel.cpus.length, this.bufferSizeKb * 1024);
      this.ring.recording = this.on;
    }
    return this.ring;
  }

  /** The event ring if any event was ever enabled here. */
  get eventRing(): TraceEventRing | null {
    return this.ring;
  }

  private newEpoch(): void {
    this.epoch++;
    this.functionConsumed.fill(0);
    this.graphConsumed.fill(0);
  }

  private newGraph(kb: number): FunctionGraphTracer {
    return new FunctionGraphTracer(this.engine.fgraph, {
      name: this.name === '' ? 'function_graph' : `function_graph:${this.name}`,
      bufferEvents: Math.max(1, Math.floor((kb * 1024) / FUNCTION_ENTRY_BYTES)),
    });
  }

  /** echo NAME > current_tracer: the old tracer stops, the new one starts with empty buffers. */
  setTracer(name: string): TracelabError | null {
    const next = TRACERS.find((t) => t === name);
    if (next === undefined)
      return new TracelabError('EINVAL', `current_tracer: no tracer '${name}'`);
    if (next === this.current) return null;
    const stop = this.stopCurrent();
    if (stop !== null) return stop;
    this.clear();
    this.current = next;
    const err = this.startCurrent();
    if (err !== null) this.current = 'nop';
    return err;
  }

  private startCurrent(): TracelabError | null {
    if (this.current === 'function') return this.function.start();
    // function_graph has no recording switch of its own: tracing_on off unhooks its graph user.
    if (this.current === 'function_graph' && this.on) return this.graph.start();
    return null;
  }

  private stopCurrent(): TracelabError | null {
    if (this.current === 'function') return this.function.stop();
    if (this.current === 'function_graph' && this.on) return this.graph.stop();
    return null;
  }

  get tracingOn(): boolean {
    return this.on;
  }

  setTracingOn(on: boolean): TracelabError | null {
    if (on === this.on) return null;
    this.function.tracingOn = on;
    if (this.ring !== null) this.ring.recording = on;
    if (this.current === 'function_graph') {
      const err = on ? this.graph.start() : this.graph.stop();
      if (err !== null) return err;
    }
    this.on = on;
    return null;
  }

  get bufferSizeKb(): number {
    return this.function.bufferSizeKb;
  }

  /** buffer_size_kb: both tracers' per-CPU buffers are reallocated empty, as a resize does. */
  setBufferSizeKb(kb: number): TracelabError | null {
    const err = this.function.setBufferSizeKb(kb);
    if (err !== null) return err;
    this.ring?.resize(kb * 1024);
    this.newEpoch();
    const old = this.graph;
    const running = this.current === 'function_graph' && this.on;
    if (running) {
      const stop = old.stop();
      if (stop !== null) return stop;
    }
    const next = this.newGraph(kb);
    Object.assign(next.options, old.options);
    next.maxDepth = old.maxDepth;
    next.graphHash.copyFrom(old.graphHash);
    next.notraceHash.copyFrom(old.notraceHash);
    // The instance's filters live in both tracers' ops; the new graph user takes the function
    // tracer's copy before it registers.
    for (const notrace of [false, true]) {
      const hash = notrace ? this.function.ops.notraceHash : this.function.ops.filterHash;
      const ids = this.engine.ftrace.table.functions.filter((f) => hash?.has(f.id) === true);
      const set = this.engine.ftrace.setFilterFunctions(
        next.gops.ops,
        ids.map((f) => f.id),
        { reset: true, notrace },
      );
      if (set !== null) return set;
    }
    this.graph = next;
    return running ? next.start() : null;
  }

  /** set_ftrace_filter / set_ftrace_notrace: the instance's ops, used by both tracers. */
  setFilter(text: string, notrace: boolean, append: boolean): TracelabError | null {
    const err = this.function.setFilter(text, { notrace, append });
    if (err !== null) return err;
    return this.graph.setFilter(text, { notrace, append });
  }

  readFilter(notrace: boolean): string {
    return this.function.readFilter(notrace);
  }

  readGraphFilter(notrace: boolean): string {
    const g = this.graph;
    return formatFilter(notrace ? g.notraceHash : g.graphHash, this.engine.ftrace.table, !notrace);
  }

  /**
   * The `trace` file of the current tracer, the dynamic events' entries among the tracer's by
   * time: under function and nop as their own lines, under function_graph as graph comments.
   */
  readTrace(): string {
    if (this.current === 'function_graph') return this.graph.output(this.graphComments(false));
    const rb = this.function.buffer;
    const keys = this.functionKeys();
    const text = this.function.readTrace();
    const nl = text.indexOf('\n#              | |');
    const head = text.slice(0, text.indexOf('\n', nl + 1) + 1);
    const body = text.slice(head.length).split('\n').slice(0, -1);
    const ring = this.ring;
    const held = rb.entries() + (ring?.entries() ?? 0);
    const written = rb.written() + (ring?.written() ?? 0);
    const header = head
      .replace(/entries-written: \d+\/\d+/, `entries-written: ${held}/${written}`)
      .replace('# tracer: function', `# tracer: ${this.current}`);
    return header + this.merge(keys, body, false);
  }

  /** The event ring's entries as function_graph comments (print_graph_comment). */
  private graphComments(consume: boolean): GraphComment[] {
    const out: GraphComment[] = [];
    this.ring?.read((cpu, ts, bytes, at, _len, lost) => {
      const id = entryType(bytes, at);
      const ev = this.engine.tracefs.eventById(id);
      const text = ev === undefined ? `Unknown type ${id}` : ev.printBody(bytes, at);
      out.push({ cpu, ts, pid: entryPid(bytes, at), text, lost });
    }, consume);
    return out;
  }

  /** (timestamp, CPU) of every function entry, in the order the function tracer prints them. */
  private functionKeys(): number[] {
    const keys: number[] = [];
    this.function.buffer.read((cpu, ts) => void keys.push(ts, cpu), false);
    return keys;
  }

  /**
   * Interleaves the function tracer's lines (one per entry, `keys` giving their time and CPU;
   * `[LOST]` lines go with the next entry) with the event ring's entries, by time; a tie goes to
   * the function entry, whose callback ran first.
   */
  private merge(keys: readonly number[], fnLines: readonly string[], consume: boolean): string {
    const events: { ts: number; cpu: number; text: string }[] = [];
    this.ring?.read((cpu, ts, bytes, at, _len, lost) => {
      const id = entryType(bytes, at);
      const ev = this.engine.tracefs.eventById(id);
      const line = ev === undefined ? `Unknown type ${id}` : ev.printLine(cpu, ts, bytes, at);
      const lostLine = lost > 0 ? `CPU:${cpu} [LOST ${lost} EVENTS]\n` : '';
      events.push({ ts, cpu, text: `${lostLine}${line}\n` });
    }, consume);
    let out = '';
    let f = 0;
    let li = 0;
    const nextFunction = (): string => {
      let text = '';
      while (fnLines[li]?.startsWith('CPU:') === true) text += `${fnLines[li++]}\n`;
      f++;
      return `${text}${fnLines[li++]}\n`;
    };
    for (const e of events) {
      while (f * 2 < keys.length) {
        const ts = keys[f * 2] as number;
        const cpu = keys[f * 2 + 1] as number;
        if (ts > e.ts || (ts === e.ts && cpu > e.cpu)) break;
        out += nextFunction();
      }
      out += e.text;
    }
    while (f * 2 < keys.length) out += nextFunction();
    return out;
  }

  /** The `trace_pipe` file: what the buffers hold, consumed, with lost-event lines. */
  readTracePipe(): string {
    if (this.current !== 'function_graph') {
      const keys = this.functionKeys();
      this.consumeFunction();
      const lines = this.function.readTracePipe().split('\n').slice(0, -1);
      return this.merge(keys, lines, true);
    }
    let out = '';
    for (const s of this.graph.stats()) {
      if (s.lost > 0) out += `CPU:${s.cpu} [LOST ${s.lost} EVENTS]\n`;
    }
    for (const line of this.graph.output(this.graphComments(true)).split('\n')) {
      // The header belongs to `trace`; trace_pipe prints only events.
      if (line !== '' && !line.startsWith('#')) out += `${line}\n`;
    }
    this.consumeGraph();
    return out;
  }

  /**
   * Accounts for a consuming read of the function tracer's buffer that is about to take every
   * entry it holds: non-consuming readers settle first, then the entries count as consumed.
   */
  consumeFunction(): void {
    for (const settle of this.beforeConsume) settle();
    const rb = this.function.buffer;
    for (let c = 0; c < rb.cpus; c++) {
      this.functionConsumed[c] = (this.functionConsumed[c] as number) + rb.entries(c);
    }
  }

  /** Empties the graph buffers as a consuming read does (their counts restart from zero). */
  consumeGraph(): void {
    for (const settle of this.beforeConsume) settle();
    for (const s of this.graph.stats()) {
      this.graphConsumed[s.cpu] = (this.graphConsumed[s.cpu] as number) + s.entries + s.lost;
    }
    this.graph.clear();
  }

  /** Events held and lost per CPU in the current tracer's buffers. */
  bufferStats(): { cpu: number; entries: number; lost: number }[] {
    if (this.current === 'function_graph') return this.graph.stats();
    const rb = this.function.buffer;
    return this.engine.kernel.cpus.map((c) => ({
      cpu: c.id,
      entries: rb.entries(c.id),
      lost: (rb.overrun[c.id] as number) + (rb.dropped[c.id] as number),
    }));
  }

  /** echo > trace. */
  clear(): void {
    this.function.clear();
    this.graph.clear();
    this.ring?.reset();
    this.newEpoch();
  }

  /** trace_options: the current tracer's options, `no` before those that are off. */
  readOptions(): string {
    if (this.current !== 'function_graph') return '';
    return Object.keys(GRAPH_OPTIONS)
      .map((n) => `${this.option(n) ? '' : 'no'}${n}\n`)
      .join('');
  }

  option(name: string): boolean {
    return this.graph.options[GRAPH_OPTIONS[name] as keyof GraphOptions];
  }

  setOption(name: string, on: boolean): void {
    this.graph.options[GRAPH_OPTIONS[name] as keyof GraphOptions] = on;
  }

  /** tracing_log_err(): a timestamped entry; the oldest goes beyond TRACING_LOG_ERRS_MAX. */
  logError(entry: string): void {
    const ns = Math.floor(this.engine.now);
    const sec = Math.floor(ns / 1e9);
    const usec = Math.floor((ns % 1e9) / 1e3);
    this.errors.push(`[${String(sec).padStart(5)}.${String(usec).padStart(6, '0')}] ${entry}`);
    if (this.errors.length > TRACING_LOG_ERRS_MAX) this.errors.shift();
  }

  readErrorLog(): string {
    return this.errors.join('');
  }

  clearErrorLog(): void {
    this.errors.length = 0;
  }

  /** rmdir of an instance: its tracers leave the kernel. */
  destroy(): TracelabError | null {
    return this.stopCurrent();
  }
}
