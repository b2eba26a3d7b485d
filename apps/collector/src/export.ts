import { TracelabError, type TraceEvent } from '@tracelab/contracts';
import { readStream } from './store.js';

type FunctionEvent = Extract<TraceEvent, { type: 'function' }>;
type GraphEntry = Extract<TraceEvent, { type: 'funcgraph_entry' }>;
type GraphExit = Extract<TraceEvent, { type: 'funcgraph_exit' }>;
type GraphEvent = GraphEntry | GraphExit;

export type ExportFormat = 'ftrace' | 'perfetto' | 'folded';
export const EXPORT_FORMATS: readonly ExportFormat[] = ['ftrace', 'perfetto', 'folded'];

export interface FtraceExportOptions {
  /**
   * `function` prints the function events, `function_graph` the funcgraph entries and exits;
   * by default function_graph when there is any funcgraph event, function otherwise.
   */
  tracer?: 'function' | 'function_graph';
  /** Events the producer dropped: the function header counts them as written, not in the buffer. */
  lost?: number;
}

export interface FoldedExportOptions {
  /** `calls` (default): one per completed call of the stack; `ns`: self time in nanoseconds. */
  weight?: 'calls' | 'ns';
}

export interface StoreExportOptions {
  agent: string;
  stream: string;
  format: ExportFormat;
}

const isGraph = (e: TraceEvent): e is GraphEvent =>
  e.type === 'funcgraph_entry' || e.type === 'funcgraph_exit';

/** The number of CPUs the events show (the highest CPU + 1), as the `#P:` and CPU columns need. */
function cpuCount(events: readonly TraceEvent[]): number {
  let max = 0;
  for (const e of events) if (e.cpu > max) max = e.cpu;
  return max + 1;
}

/** Exports the stored events of one (agent, stream) under `dir` in one of the formats. */
export function exportStore(dir: string, options: StoreExportOptions): string {
  if (!EXPORT_FORMATS.includes(options.format))
    throw new TracelabError(
      'EINVAL',
      `unknown export format "${String(options.format)}" (one of ${EXPORT_FORMATS.join(', ')})`,
    );
  const stored = readStream(dir, options.agent, options.stream);
  const events = stored.events.map((e) => e.event);
  if (options.format === 'ftrace') return exportFtrace(events, { lost: stored.lost });
  if (options.format === 'perfetto') return exportPerfetto(events);
  return exportFolded(events);
}

// ---- ftrace text ----

/** The `trace` file of the function or function_graph tracer for these events. */
export function exportFtrace(
  events: readonly TraceEvent[],
  options: FtraceExportOptions = {},
): string {
  const tracer = options.tracer ?? (events.some(isGraph) ? 'function_graph' : 'function');
  return tracer === 'function'
    ? functionText(events, options.lost ?? 0)
    : functionGraphText(events);
}

const FUNCTION_HEADER = [
  '#',
  '#                                _-----=> irqs-off/BH-disabled',
  '#                               / _----=> need-resched',
  '#                              | / _---=> hardirq/softirq',
  '#                              || / _--=> preempt-depth',
  '#                              ||| / _-=> migrate-disable',
  '#                              |||| /     delay',
  '#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION',
  '#              | |         |   |||||     |         |',
];

/** trace_print_time(): nanoseconds rounded to microseconds (ns2usecs), as `secs.usecs`. */
function timestamp(ns: number): string {
  const us = Math.floor((ns + 500) / 1000);
  return `${String(Math.floor(us / 1e6)).padStart(5)}.${String(us % 1e6).padStart(6, '0')}`;
}

function functionText(events: readonly TraceEvent[], lost: number): string {
  const fns = events.filter((e): e is FunctionEvent => e.type === 'function');
  const lines = [
    '# tracer: function',
    '#',
    `# entries-in-buffer/entries-written: ${fns.length}/${fns.length + lost}   #P:${cpuCount(events)}`,
    ...FUNCTION_HEADER,
  ];
  for (const e of fns) {
    // the events carry no irq/preempt state: the latency columns are all '.'
    const parent = e.parentIp === '0' ? '' : ` <-${e.parent}`;
    lines.push(
      `${e.comm.padStart(16)}-${String(e.pid).padEnd(7)} [${String(e.cpu).padStart(3, '0')}] ` +
        `..... ${timestamp(e.ts)}: ${e.func}${parent}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** trace_find_mark(): the overhead marker of a duration in ns (strictly above each threshold). */
function durationMark(ns: number): string {
  if (ns > 1e9) return '$';
  if (ns > 1e8) return '@';
  if (ns > 1e7) return '*';
  if (ns > 1e6) return '#';
  if (ns > 1e5) return '!';
  if (ns > 1e4) return '+';
  return ' ';
}

/** trace_print_graph_duration(): usecs, then nsecs while at most 7 digits, " us ", padding. */
function graphDuration(ns: number): string {
  const usecs = String(Math.floor(ns / 1000));
  let out = usecs;
  let len = usecs.length;
  if (len < 7) {
    const nsecs = String(ns % 1000)
      .padStart(3, '0')
      .slice(0, Math.min(4, 7 - len));
    out += `.${nsecs}`;
    len += nsecs.length + 1;
  }
  return `${durationMark(ns)} ${out} us ${' '.repeat(Math.max(0, 8 - len))}|  `;
}

/** print_graph_proc(): comm cut to 7 characters and pid, centred in 14 columns. */
function graphProc(comm: string, pid: number): string {
  const text = `${comm.slice(0, 7)}-${pid}`;
  const spaces = Math.max(0, 14 - text.length);
  const half = Math.floor(spaces / 2);
  return ' '.repeat(half) + text + ' '.repeat(spaces - half);
}

function functionGraphText(events: readonly TraceEvent[]): string {
  const graph = events.filter(isGraph);
  const width = String(cpuCount(events) - 1).length;
  const cpuCol = (cpu: number): string => ` ${String(cpu).padStart(width)}) `;
  const comms = new Map<number, string>();
  const lastPid = new Map<number, number>();
  // per CPU, the function entered at each depth and not yet returned (fgraph_cpu_data.enter_funcs)
  const entered = new Map<number, string[]>();
  // exits already printed with their entry as a leaf call
  const leafExits = new Set<number>();
  // the index of the next event of the same CPU
  const nextOnCpu = new Array<number>(graph.length);
  const seen = new Map<number, number>();
  for (let i = graph.length - 1; i >= 0; i--) {
    const cpu = (graph[i] as GraphEvent).cpu;
    nextOnCpu[i] = seen.get(cpu) ?? -1;
    seen.set(cpu, i);
  }
  let out =
    '# tracer: function_graph\n#\n' +
    '# CPU  DURATION                  FUNCTION CALLS\n' +
    '# |     |   |                     |   |   |   |\n';
  graph.forEach((e, i) => {
    if (leafExits.has(i)) return;
    comms.set(e.pid, e.comm);
    const prev = lastPid.get(e.cpu);
    lastPid.set(e.cpu, e.pid);
    if (prev !== undefined && prev !== e.pid)
      out +=
        ' ------------------------------------------\n' +
        `${cpuCol(e.cpu)}${graphProc(comms.get(prev) ?? '<...>', prev)} => ${graphProc(e.comm, e.pid)}\n` +
        ' ------------------------------------------\n\n';
    const indent = ' '.repeat(2 * e.depth);
    const funcs = entered.get(e.cpu) ?? [];
    entered.set(e.cpu, funcs);
    if (e.type === 'funcgraph_entry') {
      // a leaf: the next event of this CPU is the same task returning from the same function
      const j = nextOnCpu[i] as number;
      const next = graph[j];
      if (next?.type === 'funcgraph_exit' && next.pid === e.pid && next.func === e.func) {
        leafExits.add(j);
        out += `${cpuCol(e.cpu)}${graphDuration(next.ts - next.calltime)}${indent}${e.func}();\n`;
      } else {
        funcs[e.depth] = e.func;
        out += `${cpuCol(e.cpu)}              |  ${indent}${e.func}() {\n`;
      }
    } else {
      const matched = funcs[e.depth] === e.func;
      funcs[e.depth] = '';
      const close = matched ? '}' : `} /* ${e.func} */`;
      out += `${cpuCol(e.cpu)}${graphDuration(e.ts - e.calltime)}${indent}${close}\n`;
    }
  });
  return out;
}

// ---- Perfetto / Chrome trace JSON ----

interface ChromeEvent {
  name: string;
  cat?: string;
  ph: 'X' | 'i' | 'M';
  ts?: number;
  dur?: number;
  s?: 't';
  pid: number;
  tid: number;
  args?: Record<string, string | number | boolean>;
}

/**
 * Chrome trace JSON: one process per task (pid, named by its comm), one thread per CPU it ran on
 * (tid = CPU, named `CPU n`); function_graph calls as complete events, function and probe events
 * as instant events. Times in microseconds.
 */
export function exportPerfetto(events: readonly TraceEvent[]): string {
  const meta: ChromeEvent[] = [];
  const body: ChromeEvent[] = [];
  const threads = new Set<string>();
  const us = (ns: number): number => ns / 1000;
  // per CPU and task, the entries not yet returned
  const open = new Map<string, GraphEntry[]>();
  let lastTs = 0;
  for (const e of events) {
    if (e.ts > lastTs) lastTs = e.ts;
    const key = `${e.pid}/${e.cpu}`;
    if (!threads.has(key)) {
      if (!meta.some((m) => m.name === 'process_name' && m.pid === e.pid))
        meta.push({
          name: 'process_name',
          ph: 'M',
          pid: e.pid,
          tid: e.cpu,
          args: { name: e.comm },
        });
      meta.push({
        name: 'thread_name',
        ph: 'M',
        pid: e.pid,
        tid: e.cpu,
        args: { name: `CPU ${e.cpu}` },
      });
      threads.add(key);
    }
    const stack = open.get(key) ?? [];
    open.set(key, stack);
    switch (e.type) {
      case 'funcgraph_entry':
        stack.push(e);
        break;
      case 'funcgraph_exit': {
        // the matching entry and any whose exits were lost above it are closed
        const at = stack.findLastIndex((x) => x.func === e.func && x.depth === e.depth);
        if (at >= 0) stack.length = at;
        const start = Math.min(e.calltime, e.ts);
        const args: Record<string, string> = e.retval === undefined ? {} : { retval: e.retval };
        body.push({
          name: e.func,
          cat: 'function_graph',
          ph: 'X',
          ts: us(start),
          dur: us(e.ts - start),
          pid: e.pid,
          tid: e.cpu,
          args,
        });
        break;
      }
      case 'function':
        body.push({
          name: e.func,
          cat: 'function',
          ph: 'i',
          s: 't',
          ts: us(e.ts),
          pid: e.pid,
          tid: e.cpu,
          args: { parent: e.parent },
        });
        break;
      case 'probe':
        body.push({
          name: e.event,
          cat: 'probe',
          ph: 'i',
          s: 't',
          ts: us(e.ts),
          pid: e.pid,
          tid: e.cpu,
          args: e.fields,
        });
        break;
      case 'record':
      case 'text':
        break;
    }
  }
  // calls still running when the trace ends last until its final timestamp
  for (const stack of open.values())
    for (const x of stack)
      body.push({
        name: x.func,
        cat: 'function_graph',
        ph: 'X',
        ts: us(x.ts),
        dur: us(lastTs - x.ts),
        pid: x.pid,
        tid: x.cpu,
        args: { unfinished: true },
      });
  return JSON.stringify({ traceEvents: [...meta, ...body] });
}

// ---- folded stacks ----

interface Frame {
  func: string;
  /** Time spent in the calls this frame made, for its self time. */
  childNs: number;
}

/**
 * Folded stacks (`comm;root;...;leaf COUNT`, sorted) from the funcgraph entry/exit nesting of
 * each task on each CPU. A call whose entry is not in the events (it began before the trace)
 * counts on its own frame, without the callers the trace never saw.
 */
export function exportFolded(
  events: readonly TraceEvent[],
  options: FoldedExportOptions = {},
): string {
  const weight = options.weight ?? 'calls';
  const counts = new Map<string, number>();
  const stacks = new Map<string, Frame[]>();
  const clean = (s: string): string => s.replace(/[;\s]/g, '_');
  for (const e of events) {
    if (!isGraph(e)) continue;
    const key = `${e.pid}/${e.cpu}`;
    const stack = stacks.get(key) ?? [];
    stacks.set(key, stack);
    if (e.type === 'funcgraph_entry') {
      stack.push({ func: e.func, childNs: 0 });
      continue;
    }
    const total = Math.max(0, e.ts - e.calltime);
    let frames: Frame[];
    let self: number;
    const at = stack.findLastIndex((f) => f.func === e.func);
    if (at >= 0) {
      frames = stack.slice(0, at + 1);
      self = Math.max(0, total - (stack[at] as Frame).childNs);
      stack.length = at;
    } else {
      frames = [{ func: e.func, childNs: 0 }];
      self = total;
    }
    const parent = stack[stack.length - 1];
    if (parent !== undefined) parent.childNs += total;
    const line = [clean(e.comm), ...frames.map((f) => clean(f.func))].join(';');
    counts.set(line, (counts.get(line) ?? 0) + (weight === 'calls' ? 1 : self));
  }
  return [...counts]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([line, n]) => `${line} ${n}\n`)
    .join('');
}
