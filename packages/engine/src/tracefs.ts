import { TracelabError } from '@tracelab/contracts';
import {
  formatFprobeEvent,
  FprobeTraceEvent,
  GROUP_FILTER_MESSAGE,
  imageTarget,
  parseFprobeEvent,
  ProbeParseError,
  type FprobeEvent,
} from '@tracelab/fprobe';
import type { Engine } from './engine.js';
import { GRAPH_OPTIONS, TraceArray, TRACERS } from './trace-array.js';

export interface WriteOptions {
  /** O_APPEND (`>>`); a plain write opens with O_TRUNC (`>`). */
  readonly append?: boolean;
}

type Reader = (tr: TraceArray) => string;
type Writer = (tr: TraceArray, data: string, append: boolean) => TracelabError | null;
interface FileOps {
  readonly read: Reader;
  readonly write?: Writer;
}

const PREFIX = '/sys/kernel/tracing/';
/**
 * The first type number of a dynamic event: register_trace_event() hands out numbers after the
 * ftrace entry types (enum trace_type up to __TRACE_LAST_TYPE); this kernel has no static events.
 */
export const FIRST_EVENT_TYPE = 21;

/** The files of one event directory (events/GROUP/EVENT). */
const EVENT_FILES = ['enable', 'filter', 'format', 'id'];
/** PAGE_SIZE: event_filter_write refuses a write this long or longer. */
const FILTER_WRITE_MAX = 4096;

/** kstrtoul_from_user(base 10): digits and an optional trailing newline. */
function parseUlong(file: string, data: string): number | TracelabError {
  const m = /^\+?(\d+)\n?$/.exec(data);
  if (m === null) return new TracelabError('EINVAL', `${file}: '${data.trim()}' is not a number`);
  const n = Number(m[1]);
  return Number.isSafeInteger(n) ? n : new TracelabError('ERANGE', `${file}: ${m[1]} is too large`);
}

/** trace_parse_run_command(): one command per line, `#` starts a comment. */
function commands(data: string): string[] {
  return data
    .split('\n')
    .map((l) => {
      const hash = l.indexOf('#');
      return (hash < 0 ? l : l.slice(0, hash)).trim();
    })
    .filter((l) => l !== '');
}

/**
 * The tracefs control surface (/sys/kernel/tracing) of one engine: files with the kernel's names,
 * contents and write semantics, errors as the kernel returns them (ENOENT for a missing file,
 * EACCES writing a read-only one, EINVAL for a bad value), and instances/ with their own tracers
 * and buffers.
 */
export class Tracefs {
  declare readonly top: TraceArray;
  private readonly instances = new Map<string, TraceArray>();
  /** Dynamic events in creation order (the order dynamic_events lists them). */
  private readonly events: FprobeTraceEvent[] = [];
  private nextEventType = FIRST_EVENT_TYPE;
  private maxGraphDepth = 0;
  declare private readonly instanceFiles: ReadonlyMap<string, FileOps>;
  declare private readonly topFiles: ReadonlyMap<string, FileOps>;

  constructor(readonly engine: Engine) {
    this.top = new TraceArray(engine, '');
    this.instanceFiles = this.makeInstanceFiles();
    this.topFiles = this.makeTopFiles();
  }

  private makeInstanceFiles(): Map<string, FileOps> {
    const cpus = this.engine.kernel.cpus.length;
    const files = new Map<string, FileOps>([
      ['available_tracers', { read: () => `${TRACERS.join(' ')}\n` }],
      [
        'current_tracer',
        { read: (tr) => `${tr.current}\n`, write: (tr, d) => tr.setTracer(d.trim()) },
      ],
      [
        'tracing_on',
        {
          read: (tr) => (tr.tracingOn ? '1\n' : '0\n'),
          write: (tr, d) => {
            const n = parseUlong('tracing_on', d);
            return n instanceof TracelabError ? n : tr.setTracingOn(n !== 0);
          },
        },
      ],
      [
        'trace',
        {
          read: (tr) => tr.readTrace(),
          // Only an open with O_TRUNC clears; what is written is ignored.
          write: (tr, _d, append) => {
            if (!append) tr.clear();
            return null;
          },
        },
      ],
      ['trace_pipe', { read: (tr) => tr.readTracePipe() }],
      [
        'buffer_size_kb',
        {
          read: (tr) => `${tr.bufferSizeKb}\n`,
          write: (tr, d) => {
            const n = parseUlong('buffer_size_kb', d);
            if (n instanceof TracelabError) return n;
            if (n === 0) return new TracelabError('EINVAL', 'buffer_size_kb: size must be > 0');
            return tr.setBufferSizeKb(n);
          },
        },
      ],
      ['buffer_total_size_kb', { read: (tr) => `${tr.bufferSizeKb * cpus}\n` }],
      [
        'set_ftrace_filter',
        {
          read: (tr) => tr.readFilter(false),
          write: (tr, d, append) => tr.setFilter(d, false, append),
        },
      ],
      [
        'set_ftrace_notrace',
        {
          read: (tr) => tr.readFilter(true),
          write: (tr, d, append) => tr.setFilter(d, true, append),
        },
      ],
      [
        'set_graph_function',
        {
          read: (tr) => tr.readGraphFilter(false),
          write: (tr, d, append) => tr.graph.setGraphFunction(d, append),
        },
      ],
      [
        'set_graph_notrace',
        {
          read: (tr) => tr.readGraphFilter(true),
          write: (tr, d, append) => tr.graph.setGraphNotrace(d, append),
        },
      ],
      [
        'trace_options',
        { read: (tr) => tr.readOptions(), write: (tr, d) => this.writeTraceOptions(tr, d) },
      ],
      [
        'error_log',
        {
          read: (tr) => tr.readErrorLog(),
          write: (tr, _d, append) => {
            if (!append) tr.clearErrorLog();
            return null;
          },
        },
      ],
    ]);
    for (const name of Object.keys(GRAPH_OPTIONS)) {
      files.set(`options/${name}`, {
        read: (tr) => (tr.option(name) ? '1\n' : '0\n'),
        write: (tr, d) => {
          const n = parseUlong(name, d);
          if (n instanceof TracelabError) return n;
          if (n > 1) return new TracelabError('EINVAL', `options/${name}: ${n} is not 0 or 1`);
          tr.setOption(name, n === 1);
          return null;
        },
      });
    }
    return files;
  }

  private makeTopFiles(): Map<string, FileOps> {
    const ft = this.engine.ftrace;
    return new Map<string, FileOps>([
      ['available_filter_functions', { read: () => ft.availableFilterFunctions() }],
      ['enabled_functions', { read: () => ft.enabledFunctions() }],
      ['touched_functions', { read: () => ft.touchedFunctions() }],
      [
        'max_graph_depth',
        {
          read: () => `${this.maxGraphDepth}\n`,
          write: (_tr, d) => {
            const n = parseUlong('max_graph_depth', d);
            if (n instanceof TracelabError) return n;
            this.maxGraphDepth = n;
            for (const tr of this.arrays()) tr.graph.maxDepth = n;
            return null;
          },
        },
      ],
      [
        'dynamic_events',
        {
          read: () => this.events.map((e) => `${formatFprobeEvent(e.event)}\n`).join(''),
          write: (tr, d, append) => this.writeDynamicEvents(tr, d, append),
        },
      ],
    ]);
  }

  private arrays(): TraceArray[] {
    return [this.top, ...this.instances.values()];
  }

  /** trace_set_options(): one option, `no` prefix clears it; only the current tracer's options. */
  private writeTraceOptions(tr: TraceArray, data: string): TracelabError | null {
    const word = data.trim();
    const off = word.startsWith('no');
    const name = off ? word.slice(2) : word;
    if (tr.current !== 'function_graph' || !(name in GRAPH_OPTIONS)) {
      return new TracelabError(
        'EINVAL',
        `trace_options: no option '${word}' for tracer ${tr.current}`,
      );
    }
    tr.setOption(name, !off);
    return null;
  }

  /**
   * dynamic_events: O_TRUNC removes every event (EBUSY, removing none, while one is enabled);
   * each line creates (f...) or deletes (-:...) one.
   */
  private writeDynamicEvents(tr: TraceArray, data: string, append: boolean): TracelabError | null {
    if (!append) {
      const busy = this.events.find((e) => e.enabled);
      if (busy !== undefined) return this.busy(busy);
      this.events.length = 0;
    }
    for (const cmd of commands(data)) {
      const err = cmd.startsWith('-') ? this.deleteEvent(cmd) : this.createEvent(tr, cmd);
      if (err !== null) return err;
    }
    return null;
  }

  private createEvent(tr: TraceArray, cmd: string): TracelabError | null {
    // Each dynamic event type declines commands that are not its own (-ECANCELED -> -EINVAL).
    if (!/^f[:\s]/.test(cmd) && cmd !== 'f') {
      return new TracelabError('EINVAL', `dynamic_events: no event type handles '${cmd}'`);
    }
    const image = this.engine.kernel.image;
    let ev: FprobeEvent;
    try {
      ev = parseFprobeEvent(cmd, (sym) => imageTarget(image, sym));
    } catch (e) {
      if (!(e instanceof ProbeParseError)) throw e;
      tr.logError(e.format());
      return new TracelabError('EINVAL', e.message, { offset: e.pos });
    }
    if (this.events.some((x) => x.event.group === ev.group && x.event.event === ev.event)) {
      tr.logError(new ProbeParseError('EVENT_EXIST', 0, cmd).format());
      return new TracelabError('EEXIST', `dynamic_events: ${ev.group}/${ev.event} exists`);
    }
    const made = FprobeTraceEvent.create(this.engine.fprobes, ev, this.nextEventType);
    if (made instanceof TracelabError) return made;
    this.nextEventType++;
    this.events.push(made);
    return null;
  }

  private busy(e: FprobeTraceEvent): TracelabError {
    return new TracelabError(
      'EBUSY',
      `dynamic_events: ${e.event.group}/${e.event.event} is enabled: Device or resource busy`,
    );
  }

  /** The event whose entries carry type `id` (common_type). */
  eventById(id: number): FprobeTraceEvent | undefined {
    return this.events.find((e) => e.id === id);
  }

  private deleteEvent(cmd: string): TracelabError | null {
    const m = /^-:(?:([^/\s]+)\/)?(\S+)$/.exec(cmd);
    if (m === null) return new TracelabError('EINVAL', `dynamic_events: bad deletion '${cmd}'`);
    const [, group, event] = m;
    const at = this.events.findIndex(
      (e) => e.event.event === event && (group === undefined || e.event.group === group),
    );
    if (at < 0) return new TracelabError('ENOENT', `dynamic_events: no event '${cmd.slice(2)}'`);
    const e = this.events[at] as FprobeTraceEvent;
    if (e.enabled) return this.busy(e);
    this.events.splice(at, 1);
    return null;
  }

  /** The instance a path names and the file inside it. */
  private resolve(path: string): { tr: TraceArray; file: string; top: boolean } | TracelabError {
    let p = path.startsWith(PREFIX) ? path.slice(PREFIX.length) : path;
    p = p.replace(/^\/+|\/+$/g, '');
    if (p.startsWith('instances/')) {
      const rest = p.slice('instances/'.length);
      const slash = rest.indexOf('/');
      const name = slash < 0 ? rest : rest.slice(0, slash);
      const tr = this.instances.get(name);
      if (tr === undefined)
        return new TracelabError('ENOENT', `${path}: No such file or directory`);
      return { tr, file: slash < 0 ? '' : rest.slice(slash + 1), top: false };
    }
    return { tr: this.top, file: p, top: true };
  }

  /**
   * What events/... names: the files of the event directories (enable, filter, format and id of
   * an event; enable and filter of a group; enable of the whole directory), 'dir' for a
   * directory, undefined for nothing.
   */
  private eventNode(file: string): FileOps | 'dir' | undefined {
    const parts = file.split('/');
    const [, group, event, name] = parts;
    if (group === undefined) return 'dir';
    if (group === 'enable' && event === undefined) return this.enableOps(() => this.events);
    const inGroup = () => this.events.filter((e) => e.event.group === group);
    if (inGroup().length === 0 || parts.length > 4) return undefined;
    if (event === undefined) return 'dir';
    if (event === 'enable' && name === undefined) return this.enableOps(inGroup);
    if (event === 'filter' && name === undefined) {
      return {
        read: () => `${GROUP_FILTER_MESSAGE}\n`,
        // The kernel walks the instance's events newest first (list_add).
        write: (tr, d) => this.setFilter(tr, inGroup().reverse(), d, true),
      };
    }
    const ev = inGroup().find((e) => e.event.event === event);
    if (ev === undefined) return undefined;
    switch (name) {
      case undefined:
        return 'dir';
      case 'enable':
        return {
          read: (tr) => (tr.eventRing !== null && ev.isEnabledIn(tr.eventRing) ? '1\n' : '0\n'),
          write: (tr, d) => this.setEnabled(tr, [ev], d),
        };
      case 'filter':
        return {
          read: (tr) => (tr.eventRing === null ? 'none\n' : ev.readFilter(tr.eventRing)),
          write: (tr, d) => this.setFilter(tr, [ev], d, false),
        };
      case 'format':
        return { read: () => ev.format() };
      case 'id':
        return { read: () => `${ev.id}\n` };
      default:
        return undefined;
    }
  }

  /** The enable file of a set of events: `?` none, `0`/`1` all off/on, `X` mixed. */
  private enableOps(events: () => readonly FprobeTraceEvent[]): FileOps {
    return {
      read: (tr) => {
        let set = 0;
        for (const e of events()) {
          set |= tr.eventRing !== null && e.isEnabledIn(tr.eventRing) ? 2 : 1;
        }
        return `${'?01X'[set] as string}\n`;
      },
      write: (tr, d) => this.setEnabled(tr, events(), d),
    };
  }

  /** echo 0|1 > enable: each event starts or stops writing to the instance's buffer. */
  private setEnabled(
    tr: TraceArray,
    events: readonly FprobeTraceEvent[],
    data: string,
  ): TracelabError | null {
    const n = parseUlong('enable', data);
    if (n instanceof TracelabError) return n;
    if (n > 1) return new TracelabError('EINVAL', `enable: ${n} is not 0 or 1`);
    for (const e of events) {
      const err = n === 1 ? e.enableIn(tr.events) : e.disableIn(tr.events);
      if (err !== null) return err;
    }
    return null;
  }

  /**
   * echo DATA > filter (event_filter_write): each event compiles it against its own fields; a
   * failure goes to error_log. A group's write succeeds whatever its events made of it.
   */
  private setFilter(
    tr: TraceArray,
    events: readonly FprobeTraceEvent[],
    data: string,
    group: boolean,
  ): TracelabError | null {
    const bytes = new TextEncoder().encode(data).length;
    if (bytes >= FILTER_WRITE_MAX) {
      return new TracelabError('EINVAL', `filter: ${bytes} bytes is too long a filter`);
    }
    for (const e of events) {
      const err = e.setFilter(tr.events, data, group);
      if (err === null) continue;
      tr.logError(err.logEntry());
      if (!group) return err;
    }
    return null;
  }

  private fileOps(path: string): { tr: TraceArray; ops: FileOps } | TracelabError {
    const r = this.resolve(path);
    if (r instanceof TracelabError) return r;
    const node =
      r.file === 'events' || r.file.startsWith('events/') ? this.eventNode(r.file) : null;
    if (node === 'dir') return new TracelabError('EINVAL', `${path}: Is a directory`);
    const ops =
      node ?? this.instanceFiles.get(r.file) ?? (r.top ? this.topFiles.get(r.file) : undefined);
    if (ops === undefined) {
      if (r.file === '' || r.file === 'options' || (r.top && r.file === 'instances'))
        return new TracelabError('EINVAL', `${path}: Is a directory`);
      return new TracelabError('ENOENT', `${path}: No such file or directory`);
    }
    return { tr: r.tr, ops };
  }

  /** Reads a file (trace_pipe consumes what it returns). */
  read(path: string): string | TracelabError {
    const f = this.fileOps(path);
    return f instanceof TracelabError ? f : f.ops.read(f.tr);
  }

  /** Writes a file as `echo DATA > path` (or `>>` with append); returns the bytes written. */
  write(path: string, data: string, options: WriteOptions = {}): number | TracelabError {
    const f = this.fileOps(path);
    if (f instanceof TracelabError) return f;
    if (f.ops.write === undefined) return new TracelabError('EACCES', `${path}: Permission denied`);
    const err = f.ops.write(f.tr, data, options.append === true);
    return err ?? data.length;
  }

  /** The names in a directory: '' (the top), options, instances, instances/NAME. */
  list(dir = ''): string[] | TracelabError {
    const r = this.resolve(dir);
    if (r instanceof TracelabError) return r;
    const names = (prefix: string, files: Iterable<string>): string[] =>
      [...files].filter((n) => n.startsWith(prefix)).map((n) => n.slice(prefix.length));
    if (r.file === '') {
      const own = [...this.instanceFiles.keys(), ...(r.top ? this.topFiles.keys() : [])];
      const top = own.filter((n) => !n.includes('/'));
      return [...top, 'events', 'options', ...(r.top ? ['instances'] : [])].sort();
    }
    if (r.file === 'events' || r.file.startsWith('events/')) {
      const node = this.eventNode(r.file);
      if (node === undefined)
        return new TracelabError('ENOENT', `${dir}: No such file or directory`);
      if (node !== 'dir') return new TracelabError('EINVAL', `${dir}: Not a directory`);
      const [, group, event] = r.file.split('/');
      if (event !== undefined) return [...EVENT_FILES];
      const names = this.events
        .filter((e) => group === undefined || e.event.group === group)
        .map((e) => (group === undefined ? e.event.group : e.event.event));
      return [
        ...(group === undefined ? ['enable'] : ['enable', 'filter']),
        ...new Set(names),
      ].sort();
    }
    if (r.file === 'options') return names('options/', this.instanceFiles.keys()).sort();
    if (r.top && r.file === 'instances') return [...this.instances.keys()].sort();
    if (this.instanceFiles.has(r.file) || (r.top && this.topFiles.has(r.file)))
      return new TracelabError('EINVAL', `${dir}: Not a directory`);
    return new TracelabError('ENOENT', `${dir}: No such file or directory`);
  }

  /** mkdir instances/NAME: a new trace instance with its own tracers and buffers. */
  mkdir(path: string): TracelabError | null {
    const name = this.instanceName(path);
    if (name instanceof TracelabError) return name;
    if (this.instances.has(name)) return new TracelabError('EEXIST', `${path}: File exists`);
    const tr = new TraceArray(this.engine, name);
    tr.graph.maxDepth = this.maxGraphDepth;
    this.instances.set(name, tr);
    return null;
  }

  /** rmdir instances/NAME: its tracer stops and its buffers go. */
  rmdir(path: string): TracelabError | null {
    const name = this.instanceName(path);
    if (name instanceof TracelabError) return name;
    const tr = this.instances.get(name);
    if (tr === undefined) return new TracelabError('ENOENT', `${path}: No such file or directory`);
    // The instance's event files go with it: its events stop writing to it.
    for (const e of this.events) {
      const off = tr.eventRing === null ? null : e.disableIn(tr.eventRing);
      if (off !== null) return off;
    }
    const err = tr.destroy();
    if (err !== null) return err;
    this.instances.delete(name);
    return null;
  }

  /** The trace array of an instance ('' for the top level). */
  instance(name = ''): TraceArray | undefined {
    return name === '' ? this.top : this.instances.get(name);
  }

  private instanceName(path: string): string | TracelabError {
    const p = (path.startsWith(PREFIX) ? path.slice(PREFIX.length) : path).replace(
      /^\/+|\/+$/g,
      '',
    );
    const m = /^instances\/([^/]+)$/.exec(p);
    if (m === null) return new TracelabError('EPERM', `${path}: Operation not permitted`);
    return m[1] as string;
  }
}
