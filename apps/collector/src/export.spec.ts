import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TraceEventSchema, TracelabError, type TraceEvent } from '@tracelab/contracts';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  FileStore,
  exportFolded,
  exportFtrace,
  exportPerfetto,
  exportStore,
  type ExportFormat,
} from './index.js';

const testdata = (name: string): string =>
  readFileSync(new URL(`./testdata/${name}`, import.meta.url), 'utf8');
const fixture = (name: string): TraceEvent[] =>
  TraceEventSchema.array().parse(JSON.parse(testdata(`${name}.events.json`)));

describe('exporters', () => {
  it.each([
    {
      name: 'function tracer text with lost events counted as written',
      out: () => exportFtrace(fixture('function'), { lost: 3 }),
      expected: 'function.ftrace.txt',
    },
    {
      name: 'function_graph text: leaves, nesting, markers, task switch, unmatched return',
      out: () => exportFtrace(fixture('graph')),
      expected: 'graph.ftrace.txt',
    },
    {
      name: 'folded stacks counting calls',
      out: () => exportFolded(fixture('graph')),
      expected: 'graph.calls.folded',
    },
    {
      name: 'folded stacks weighted by self time',
      out: () => exportFolded(fixture('graph'), { weight: 'ns' }),
      expected: 'graph.ns.folded',
    },
  ])('$name', ({ out, expected }) => {
    expect(out()).toBe(testdata(expected));
  });

  it('function tracer on graph events keeps only the function events', () => {
    const text = exportFtrace(fixture('graph'), { tracer: 'function' });
    expect(text).toContain('# entries-in-buffer/entries-written: 1/1   #P:2\n');
    expect(
      text.endsWith('            sshd-200     [001] .....     0.002000: vfs_read <-ksys_read\n'),
    ).toBe(true);
  });

  it('Perfetto JSON: complete events per task and CPU, metadata names, instants', () => {
    const json: unknown = JSON.parse(exportPerfetto(fixture('graph')));
    expect(json).toEqual(JSON.parse(testdata('graph.perfetto.json')));
    const events = (json as { traceEvents: { ph: string; dur?: number }[] }).traceEvents;
    for (const e of events.filter((x) => x.ph === 'X')) expect(e.dur).toBeGreaterThanOrEqual(0);
  });

  it('Perfetto JSON never has a negative duration, even for an exit timed before its entry', () => {
    const exit: TraceEvent = {
      type: 'funcgraph_exit',
      ts: 100,
      cpu: 0,
      pid: 1,
      comm: 'init',
      func: 'f',
      depth: 0,
      calltime: 400,
    };
    const json = JSON.parse(exportPerfetto([exit])) as { traceEvents: { ph: string }[] };
    expect(json.traceEvents.filter((e) => e.ph === 'X')).toEqual([
      expect.objectContaining({ ts: 0.1, dur: 0 }),
    ]);
  });

  it('folded stacks add up repeated calls of the same stack', () => {
    const ev = (
      type: 'funcgraph_entry' | 'funcgraph_exit',
      ts: number,
      func: string,
      depth: number,
    ): TraceEvent =>
      type === 'funcgraph_entry'
        ? { type, ts, cpu: 0, pid: 7, comm: 'app', func, depth }
        : { type, ts, cpu: 0, pid: 7, comm: 'app', func, depth, calltime: ts - 10 };
    const events = [
      ev('funcgraph_entry', 0, 'main', 0),
      ev('funcgraph_entry', 10, 'read', 1),
      ev('funcgraph_exit', 20, 'read', 1),
      ev('funcgraph_entry', 30, 'read', 1),
      ev('funcgraph_exit', 40, 'read', 1),
    ];
    expect(exportFolded(events)).toBe('app;main;read 2\n');
  });
});

describe('exportStore', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tracelab-export-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function storeFixture(name: string): void {
    const events = fixture(name);
    const store = new FileStore({ dir, maxFileBytes: 600 });
    // two batches, the second after 3 events the producer lost
    store.append({
      agentId: 'm1',
      stream: 'trace',
      firstSeq: 0,
      events: events.slice(0, 2),
      lost: 0,
    });
    store.append({ agentId: 'm1', stream: 'trace', firstSeq: 5, events: events.slice(2), lost: 3 });
  }

  it.each<{ format: ExportFormat; expected: string }>([
    { format: 'ftrace', expected: 'graph.ftrace.txt' },
    { format: 'folded', expected: 'graph.calls.folded' },
  ])('exports stored graph events as $format', ({ format, expected }) => {
    storeFixture('graph');
    expect(exportStore(dir, { agent: 'm1', stream: 'trace', format })).toBe(testdata(expected));
  });

  it('exports stored graph events as Perfetto JSON', () => {
    storeFixture('graph');
    const out = exportStore(dir, { agent: 'm1', stream: 'trace', format: 'perfetto' });
    expect(JSON.parse(out)).toEqual(JSON.parse(testdata('graph.perfetto.json')));
  });

  it('counts the stored batches lost events in the function header', () => {
    storeFixture('function');
    const out = exportStore(dir, { agent: 'm1', stream: 'trace', format: 'ftrace' });
    expect(out).toBe(testdata('function.ftrace.txt'));
  });

  it.each([
    { options: { agent: 'm1', stream: 'trace', format: 'svg' }, code: 'EINVAL' },
    { options: { agent: '../etc', stream: 'trace', format: 'ftrace' }, code: 'EINVAL' },
    { options: { agent: 'm1', stream: 'nope', format: 'ftrace' }, code: 'EINVAL' },
    { options: { agent: 'm9', stream: 'trace', format: 'ftrace' }, code: 'ENOENT' },
  ])(
    'refuses $options.agent/$options.stream as $options.format with $code',
    ({ options, code }) => {
      storeFixture('graph');
      let caught: unknown;
      try {
        exportStore(dir, options as { agent: string; stream: string; format: ExportFormat });
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(TracelabError);
      expect((caught as TracelabError).code).toBe(code);
    },
  );
});
