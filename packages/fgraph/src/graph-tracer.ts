import type { TracelabError } from '@tracelab/contracts';
import { FtraceHash, writeFilter } from '@tracelab/ftrace-core';
import { HARDIRQ_MASK, type Cpu } from '@tracelab/kernel';
import { FgraphOps, type Fgraph, type FtraceGraphEnt, type FtraceGraphRet } from './fgraph.js';
import type { ShadowStack } from './shadow-stack.js';

/** trace_options of the function_graph tracer (options/funcgraph-*). */
export interface GraphOptions {
  /** funcgraph-cpu (on by default). */
  cpu: boolean;
  /** funcgraph-overhead: the + ! # * @ $ duration markers (on by default). */
  overhead: boolean;
  /** funcgraph-proc: comm-pid column. */
  proc: boolean;
  /** funcgraph-duration (on by default). */
  duration: boolean;
  /** funcgraph-abstime: seconds.microseconds column. */
  abstime: boolean;
  /** funcgraph-irqs: trace functions run in hardirq context (on by default). */
  irqs: boolean;
  /** funcgraph-tail: name the function after every closing brace. */
  tail: boolean;
  /** funcgraph-retval: print return values. */
  retval: boolean;
  /** funcgraph-retval-hex: always print return values in hex. */
  retvalHex: boolean;
}

export const DEFAULT_GRAPH_OPTIONS: Readonly<GraphOptions> = {
  cpu: true,
  overhead: true,
  proc: false,
  duration: true,
  abstime: false,
  irqs: true,
  tail: false,
  retval: false,
  retvalHex: false,
};

// The tracer's bits in its fgraph task variable (kernel/trace/trace.h).
const TRACE_GRAPH_FL = 1;
const TRACE_GRAPH_NOTRACE = 1 << 3;
/** Depth at which set_graph_function matched, kept above the flag bits. */
const TRACE_GRAPH_DEPTH_SHIFT = 4;

const TYPE_ENT = 1;
const TYPE_RET = 2;

/** One CPU's event buffer: columns in typed arrays, overwriting the oldest when full. */
class CpuEvents {
  declare readonly type: Uint8Array;
  declare readonly irq: Uint8Array;
  declare readonly pid: Int32Array;
  declare readonly fn: Int32Array;
  declare readonly depth: Int16Array;
  declare readonly time: Float64Array;
  declare readonly calltime: Float64Array;
  declare readonly retLo: Uint32Array;
  declare readonly retHi: Uint32Array;
  /** Events written in total; the buffer holds the last `capacity` of them. */
  written = 0;

  constructor(readonly capacity: number) {
    this.type = new Uint8Array(capacity);
    this.irq = new Uint8Array(capacity);
    this.pid = new Int32Array(capacity);
    this.fn = new Int32Array(capacity);
    this.depth = new Int16Array(capacity);
    this.time = new Float64Array(capacity);
    this.calltime = new Float64Array(capacity);
    this.retLo = new Uint32Array(capacity);
    this.retHi = new Uint32Array(capacity);
  }

  /** Reserves the next slot (ring_buffer_lock_reserve in overwrite mode). */
  next(): number {
    return this.written++ % this.capacity;
  }

  get lost(): number {
    return Math.max(0, this.written - this.capacity);
  }

  /** Slot of the k-th oldest event held. */
  slot(k: number): number {
    return (this.written - Math.min(this.written, this.capacity) + k) % this.capacity;
  }

  get held(): number {
    return Math.min(this.written, this.capacity);
  }

  reset(): void {
    this.written = 0;
  }
}

export interface GraphTracerInit {
  readonly name?: string;
  /** Events kept per CPU (buffer_size_kb, in events). */
  readonly bufferEvents?: number;
  readonly options?: Partial<GraphOptions>;
}

/**
 * The function_graph tracer (kernel/trace/trace_functions_graph.c), one trace instance: a graph
 * user with its own filters and options that writes entries and returns to per-CPU buffers, and
 * prints them in the kernel's text format.
 */
export class FunctionGraphTracer {
  declare readonly fgraph: Fgraph;
  declare readonly gops: FgraphOps;
  declare readonly options: GraphOptions;
  /** max_graph_depth; 0 means no limit. */
  maxDepth = 0;
  /** set_graph_function and set_graph_notrace. */
  declare readonly graphHash: FtraceHash;
  declare readonly notraceHash: FtraceHash;
  declare private readonly buffers: CpuEvents[];

  constructor(fgraph: Fgraph, init: GraphTracerInit = {}) {
    this.fgraph = fgraph;
    this.options = { ...DEFAULT_GRAPH_OPTIONS, ...init.options };
    const n = fgraph.kernel.image.count;
    this.graphHash = new FtraceHash(n);
    this.notraceHash = new FtraceHash(n);
    const cap = init.bufferEvents ?? 1 << 16;
    this.buffers = fgraph.kernel.cpus.map(() => new CpuEvents(cap));
    this.gops = new FgraphOps({
      name: init.name ?? 'function_graph',
      entryfunc: (t, _g, _f, cpu) => this.entry(t, cpu),
      retfunc: (t, _g, _f, cpu) => this.ret(t, cpu),
    });
  }

  /** Echo function_graph > current_tracer. */
  start(): TracelabError | null {
    return this.fgraph.register(this.gops);
  }

  stop(): TracelabError | null {
    return this.fgraph.unregister(this.gops);
  }

  /** set_ftrace_filter / set_ftrace_notrace of this instance: which functions are hooked. */
  setFilter(text: string, options: { notrace?: boolean; append?: boolean } = {}) {
    return this.fgraph.setFilter(this.gops, text, options);
  }

  /** set_graph_function: trace these functions and everything they call. */
  setGraphFunction(text: string, append = false): TracelabError | null {
    return writeFilter(this.graphHash, this.fgraph.ftrace.table, text, { append });
  }

  /** set_graph_notrace: hide these functions and everything they call. */
  setGraphNotrace(text: string, append = false): TracelabError | null {
    return writeFilter(this.notraceHash, this.fgraph.ftrace.table, text, { append });
  }

  /** Empties the buffers (echo > trace). */
  clear(): void {
    for (const b of this.buffers) b.reset();
  }

  // ---- hot path ----

  /** trace_graph_entry(). */
  private entry(t: FtraceGraphEnt, cpu: Cpu): number {
    const st = this.fgraph.currentStack as ShadowStack;
    const idx = this.gops.idx;
    let tv = st.taskVar(idx);
    if ((tv & TRACE_GRAPH_NOTRACE) !== 0) return 0;
    if (this.notraceHash.count !== 0 && this.notraceHash.bits[t.fn] === 1) {
      // The return must run to clear the bit again.
      st.setTaskVar(idx, tv | TRACE_GRAPH_NOTRACE);
      return 1;
    }
    if ((tv & TRACE_GRAPH_FL) === 0 && this.graphHash.count !== 0) {
      if (this.graphHash.bits[t.fn] !== 1) return 0;
      tv = TRACE_GRAPH_FL | (t.depth << TRACE_GRAPH_DEPTH_SHIFT);
      st.setTaskVar(idx, tv);
    }
    if (this.maxDepth > 0 && t.depth >= this.maxDepth) return 0;
    const inIrq = (cpu.preemptCount & HARDIRQ_MASK) !== 0;
    if (inIrq && !this.options.irqs && (tv & TRACE_GRAPH_FL) === 0) return 0;
    const b = this.buffers[cpu.id] as CpuEvents;
    const i = b.next();
    b.type[i] = TYPE_ENT;
    b.irq[i] = inIrq ? 1 : 0;
    b.pid[i] = cpu.current === null ? 0 : cpu.current.pid;
    b.fn[i] = t.fn;
    b.depth[i] = t.depth;
    b.time[i] = cpu.clock;
    b.calltime[i] = cpu.clock;
    return 1;
  }

  /** trace_graph_return(). */
  private ret(t: FtraceGraphRet, cpu: Cpu): void {
    const st = this.fgraph.currentStack as ShadowStack;
    const idx = this.gops.idx;
    let tv = st.taskVar(idx);
    if ((tv & TRACE_GRAPH_FL) !== 0 && t.depth === tv >>> TRACE_GRAPH_DEPTH_SHIFT) {
      tv &= TRACE_GRAPH_NOTRACE;
      st.setTaskVar(idx, tv);
    }
    if ((tv & TRACE_GRAPH_NOTRACE) !== 0) {
      st.setTaskVar(idx, tv & ~TRACE_GRAPH_NOTRACE);
      return;
    }
    const b = this.buffers[cpu.id] as CpuEvents;
    const i = b.next();
    b.type[i] = TYPE_RET;
    b.irq[i] = (cpu.preemptCount & HARDIRQ_MASK) !== 0 ? 1 : 0;
    b.pid[i] = cpu.current === null ? 0 : cpu.current.pid;
    b.fn[i] = t.fn;
    b.depth[i] = t.depth;
    b.time[i] = t.rettime;
    b.calltime[i] = t.calltime;
    b.retLo[i] = t.retvalLo;
    b.retHi[i] = t.retvalHi;
  }

  // ---- output ----

  /** Events held and lost per CPU. */
  stats(): { cpu: number; entries: number; lost: number }[] {
    return this.buffers.map((b, cpu) => ({ cpu, entries: b.held, lost: b.lost }));
  }

  /**
   * The `trace` file: header, then every event in time order in the function_graph format, with
   * `comments` (other events' entries of the same trace, oldest first per CPU) among them as
   * print_graph_comment prints them.
   */
  output(comments: readonly GraphComment[] = []): string {
    return formatGraph(this, this.buffers, comments);
  }
}

/** An entry of another event in the same trace (a dynamic event): printed as a graph comment. */
export interface GraphComment {
  readonly cpu: number;
  /** Nanoseconds, as the event stamped it. */
  readonly ts: number;
  /** common_pid. */
  readonly pid: number;
  /** The event's own output (its trace() text, without the newline). */
  readonly text: string;
  /** Entries of the event's CPU lost just before this one. */
  readonly lost: number;
}

/** trace_find_mark(): the marker for a duration in ns (strictly greater than each threshold). */
export function durationMark(ns: number): string {
  if (ns > 1e9) return '$';
  if (ns > 1e8) return '@';
  if (ns > 1e7) return '*';
  if (ns > 1e6) return '#';
  if (ns > 1e5) return '!';
  if (ns > 1e4) return '+';
  return ' ';
}

/**
 * trace_print_graph_duration(): microseconds with up to three decimals, never more than seven
 * digits in all, then " us " padded to the column.
 */
export function formatDuration(ns: number): string {
  const whole = Math.round(ns);
  const usecs = String(Math.floor(whole / 1000));
  let out = usecs;
  let len = usecs.length;
  if (len < 7) {
    const nsecs = String(whole % 1000)
      .padStart(3, '0')
      .slice(0, Math.min(4, 7 - len));
    out += `.${nsecs}`;
    len += nsecs.length + 1;
  }
  out += ' us ';
  return out + ' '.repeat(Math.max(0, 8 - len));
}

/** print_graph_proc(): comm (7 chars at most) and pid, centred in 14 columns. */
export function formatProc(comm: string, pid: number): string {
  const c = comm.slice(0, 7);
  const text = `${c}-${pid}`;
  const spaces = Math.max(0, 14 - text.length);
  const half = Math.floor(spaces / 2);
  return ' '.repeat(half) + text + ' '.repeat(spaces - half);
}

/** The function_graph header for a set of options (print_graph_headers_flags). */
export function graphHeader(o: GraphOptions): string {
  let l1 = '#';
  let l2 = '#';
  if (o.abstime) {
    l1 += '     TIME       ';
    l2 += '      |         ';
  }
  if (o.cpu) {
    l1 += ' CPU';
    l2 += ' |  ';
  }
  if (o.proc) {
    l1 += '  TASK/PID       ';
    l2 += '   |    |        ';
  }
  if (o.duration) {
    l1 += '  DURATION   ';
    l2 += '   |   |      ';
  }
  return `${l1}               FUNCTION CALLS\n${l2}               |   |   |   |\n`;
}

/** Deepest nesting the output matches braces for (a shadow stack holds fewer frames). */
const MAX_DEPTH = 512;

const SEPARATOR = ' ------------------------------------------\n';

interface CpuCursor {
  readonly cpu: number;
  readonly b: CpuEvents;
  k: number;
  /** This CPU's comments and the next one to print. */
  readonly comments: GraphComment[];
  ck: number;
  /** fgraph_cpu_data.depth: where the last printed line left the call depth. */
  depth: number;
  lastPid: number;
  /** Depth of the function that entered hardirq context, -1 outside. */
  irqDepth: number;
  /** The function whose `{` was printed at each depth, to match closing braces. */
  readonly enter: Int32Array;
}

function formatGraph(
  tr: FunctionGraphTracer,
  buffers: readonly CpuEvents[],
  comments: readonly GraphComment[],
): string {
  const o = tr.options;
  const kernel = tr.fgraph.kernel;
  const image = kernel.image;
  const wide = kernel.info.wordSize === 8;
  const comms = new Map<number, string>(kernel.tasks.map((t) => [t.pid, t.comm]));
  const comm = (pid: number): string => comms.get(pid) ?? '<...>';
  const fname = (fn: number): string => image.functions[fn]?.name ?? '?';
  const cpuCol = (cpu: number): string =>
    ` ${String(cpu).padStart(String(Math.max(0, kernel.cpus.length - 1)).length)}) `;
  let out = '# tracer: function_graph\n#\n';
  for (const b of buffers) {
    if (b.lost > 0) out += `CPU:${buffers.indexOf(b)} [LOST ${b.lost} EVENTS]\n`;
  }
  out += graphHeader(o);

  const context = (c: CpuCursor, ts: number, pid: number): string => {
    let s = '';
    if (o.abstime) {
      const t = Math.round(ts);
      const secs = Math.floor(t / 1e9);
      const usecs = Math.floor((t % 1e9) / 1000);
      s += `${String(secs).padStart(5)}.${String(usecs).padStart(6, '0')} |  `;
    }
    if (o.cpu) s += cpuCol(c.cpu);
    if (o.proc) s += `${formatProc(comm(pid), pid)} | `;
    return s;
  };
  const fill = (kind: 'full' | 'start' | 'end'): string =>
    !o.duration ? '' : kind === 'full' ? '              |  ' : kind === 'start' ? '  ' : ' |';
  const duration = (ns: number): string =>
    !o.duration ? '' : `${o.overhead ? `${durationMark(ns)} ` : '  '}${formatDuration(ns)}|  `;
  const retval = (b: CpuEvents, i: number): { hex: string; err: string | null } => {
    let v = wide ? (BigInt(b.retHi[i] as number) << 32n) | BigInt(b.retLo[i] as number) : 0n;
    if (!wide) v = BigInt(b.retLo[i] as number);
    // An int return with bit 31 set is shown sign-extended, as the kernel does on 64-bit.
    if (wide && (v & 0x80000000n) !== 0n && v >> 32n === 0n) v |= 0xffffffff00000000n;
    const bits = wide ? 64 : 32;
    const isErr = v >= (1n << BigInt(bits)) - 4095n;
    return {
      hex: `0x${v.toString(16)}`,
      err: !o.retvalHex && isErr ? String(BigInt.asIntN(bits, v)) : null,
    };
  };
  const irqMarker = (c: CpuCursor, ts: number, pid: number, enter: boolean): string =>
    `${context(c, ts, pid)}${fill('start')}${enter ? '==========>' : '<=========='}${fill('end')}\n`;

  const cursors: CpuCursor[] = buffers.map((b, cpu) => ({
    cpu,
    b,
    k: 0,
    comments: comments.filter((x) => x.cpu === cpu),
    ck: 0,
    depth: 0,
    lastPid: -1,
    irqDepth: -1,
    enter: new Int32Array(MAX_DEPTH).fill(-1),
  }));
  /** Graph events stamp a fractional clock; event entries its whole nanoseconds. */
  const graphTime = (c: CpuCursor, k: number): number =>
    Math.floor(c.b.time[c.b.slot(k)] as number);
  /**
   * Whether the CPU's next comment comes before its graph event k: earlier, or at the same time
   * as a return (a probe on a function fires inside its call, after its entry and before its
   * return).
   */
  const commentBefore = (c: CpuCursor, k: number): boolean => {
    const x = c.comments[c.ck];
    if (x === undefined) return false;
    if (k >= c.b.held) return true;
    const t = graphTime(c, k);
    return x.ts < t || (x.ts === t && c.b.type[c.b.slot(k)] === TYPE_RET);
  };
  const nextTime = (c: CpuCursor): number =>
    commentBefore(c, c.k)
      ? (c.comments[c.ck] as GraphComment).ts
      : c.k < c.b.held
        ? (c.b.time[c.b.slot(c.k)] as number)
        : Infinity;
  const switchTo = (c: CpuCursor, pid: number) => {
    if (c.lastPid !== pid) {
      if (c.lastPid !== -1) {
        out += `${SEPARATOR}${cpuCol(c.cpu)}${formatProc(comm(c.lastPid), c.lastPid)} => ${formatProc(comm(pid), pid)}\n${SEPARATOR}\n`;
      }
      c.lastPid = pid;
    }
  };
  for (;;) {
    // The next line in time over all CPUs (lower CPU first on a tie).
    let c: CpuCursor | null = null;
    let best = Infinity;
    for (const x of cursors) {
      const t = nextTime(x);
      if (t < best) {
        best = t;
        c = x;
      }
    }
    if (c === null) break;
    if (commentBefore(c, c.k)) {
      // print_graph_comment: no duration, indented one level inside the current call.
      const x = c.comments[c.ck++] as GraphComment;
      if (x.lost > 0) out += `CPU:${c.cpu} [LOST ${x.lost} EVENTS]\n`;
      switchTo(c, x.pid);
      const indent = c.depth > 0 ? ' '.repeat((c.depth + 1) * 2) : '';
      out += `${context(c, x.ts, x.pid)}${fill('full')}${indent}/* ${x.text} */\n`;
      continue;
    }
    const b = c.b;
    const i = b.slot(c.k);
    c.k++;
    const pid = b.pid[i] as number;
    const fn = b.fn[i] as number;
    const depth = b.depth[i] as number;
    switchTo(c, pid);
    const ts = b.time[i] as number;
    const indent = ' '.repeat(depth * 2);
    if (b.type[i] === TYPE_ENT) {
      if (b.irq[i] === 1 && c.irqDepth < 0) {
        c.irqDepth = depth;
        out += irqMarker(c, ts, pid, true);
      }
      // A leaf: the very next line of this CPU is this call's return (no comment between).
      const nk = c.k;
      const j = nk < b.held ? b.slot(nk) : -1;
      const leaf =
        j >= 0 &&
        b.type[j] === TYPE_RET &&
        b.pid[j] === pid &&
        b.fn[j] === fn &&
        b.depth[j] === depth &&
        !commentBefore(c, nk);
      if (leaf) {
        c.k++;
        c.depth = depth - 1;
        const d = (b.time[j] as number) - (b.calltime[j] as number);
        let line = `${context(c, ts, pid)}${duration(d)}${indent}${fname(fn)}();`;
        if (o.retval) {
          const r = retval(b, j);
          line += r.err === null ? ` /* = ${r.hex} */` : ` /* = ${r.err} */`;
        }
        out += `${line}\n`;
        if (c.irqDepth === depth) {
          c.irqDepth = -1;
          out += irqMarker(c, b.time[j] as number, pid, false);
        }
      } else {
        c.depth = depth;
        if (depth < MAX_DEPTH) c.enter[depth] = fn;
        out += `${context(c, ts, pid)}${fill('full')}${indent}${fname(fn)}() {\n`;
      }
      continue;
    }
    const matched = depth < MAX_DEPTH && c.enter[depth] === fn;
    if (depth < MAX_DEPTH) c.enter[depth] = -1;
    c.depth = depth - 1;
    const d = ts - (b.calltime[i] as number);
    let line = `${context(c, ts, pid)}${duration(d)}${indent}`;
    if (o.retval) {
      const r = retval(b, i);
      line +=
        r.err === null ? `} /* ${fname(fn)} = ${r.hex} */` : `} /* ${fname(fn)} = ${r.err} */`;
    } else if (o.tail || !matched) {
      // A return whose entry was lost (overwritten, or before the trace began) names its function.
      line += `} /* ${fname(fn)} */`;
    } else line += '}';
    out += `${line}\n`;
    if (c.irqDepth === depth) {
      c.irqDepth = -1;
      out += irqMarker(c, ts, pid, false);
    }
  }
  return out;
}
