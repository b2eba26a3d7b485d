import { readFileSync } from 'node:fs';
import type { CallSpec } from '@tracelab/kernel';
import { describe, expect, it } from 'vitest';
import { machine, node, ok } from '../test/helpers.js';
import {
  durationMark,
  formatDuration,
  formatProc,
  FunctionGraphTracer,
  type GraphComment,
  type GraphOptions,
} from './graph-tracer.js';

interface GraphCase {
  name: string;
  golden: string;
  options?: Partial<GraphOptions>;
  graphFunction?: string;
  graphNotrace?: string;
  maxDepth?: number;
  clock?: number;
  bufferEvents?: number;
  irq?: { periodNs: number; calls: CallSpec[] };
  /** Other events' entries of the trace, printed among the graph as comments. */
  comments?: GraphComment[];
  runs: { comm: string; pid: number; call: CallSpec }[];
}

const testdata = new URL('./testdata/', import.meta.url);
const CASES = JSON.parse(
  readFileSync(new URL('graph-cases.json', testdata), 'utf8'),
) as GraphCase[];

describe('function_graph output (hand-written golden files)', () => {
  it.each(CASES)('$name', (c) => {
    const m = machine();
    const tr = new FunctionGraphTracer(m.fg, {
      options: c.options ?? {},
      bufferEvents: c.bufferEvents ?? 1024,
    });
    if (c.irq !== undefined) {
      m.kernel.irqs.push({
        name: 'timer',
        context: 'hardirq',
        periodNs: c.irq.periodNs,
        calls: c.irq.calls.map((call) => node(m.image, call)),
      });
    }
    if (c.graphFunction !== undefined) expect(tr.setGraphFunction(c.graphFunction)).toBeNull();
    if (c.graphNotrace !== undefined) expect(tr.setGraphNotrace(c.graphNotrace)).toBeNull();
    tr.maxDepth = c.maxDepth ?? 0;
    expect(tr.start()).toBeNull();
    m.cpu.clock = c.clock ?? 0;
    for (const r of c.runs) {
      const task =
        m.kernel.tasks.find((t) => t.pid === r.pid) ??
        ok(m.kernel.createTask(r.comm, { pid: r.pid, cpu: 0 }));
      m.kernel.switchTo(m.cpu, task);
      expect(m.kernel.run(m.cpu, node(m.image, r.call))).toBeNull();
    }
    expect(tr.output(c.comments)).toBe(readFileSync(new URL(c.golden, testdata), 'utf8'));
  });
});

describe('column formats', () => {
  it.each([
    [0, ' '],
    [10000, ' '],
    [10001, '+'],
    [100001, '!'],
    [1000001, '#'],
    [10000001, '*'],
    [100000001, '@'],
    [1000000001, '$'],
  ])('duration %d ns is marked %j', (ns, mark) => {
    expect(durationMark(ns)).toBe(mark);
  });

  it.each([
    [318, '0.318 us    '],
    [12206, '12.206 us   '],
    [2170006, '2170.006 us '],
    [12345678, '12345.67 us '],
    [123456789, '123456.7 us '],
    [1234567890, '1234567 us  '],
  ])('%d ns prints as %j', (ns, text) => {
    expect(formatDuration(ns)).toBe(text);
  });

  it('centres comm-pid in 14 columns and cuts comm at 7', () => {
    expect(formatProc('bash', 1977)).toBe('  bash-1977   ');
    expect(formatProc('migration/0', 12)).toBe('  migrati-12  ');
  });
});

describe('trace instances', () => {
  it('two function_graph instances with their own filters run at once', () => {
    const m = machine();
    const a = new FunctionGraphTracer(m.fg, { name: 'a' });
    const b = new FunctionGraphTracer(m.fg, { name: 'b', options: { cpu: false } });
    a.start();
    b.start();
    expect(a.setFilter('vfs_read')).toBeNull();
    expect(b.setFilter('fsnotify_access')).toBeNull();
    const call: CallSpec = {
      fn: 'vfs_read',
      cost: 10,
      calls: [{ fn: 'fsnotify_access', cost: 4 }],
    };
    expect(m.kernel.run(m.cpu, node(m.image, call))).toBeNull();
    expect(a.output().split('\n').slice(4)).toEqual([' 0)   0.014 us    |  vfs_read();', '']);
    // The second instance sees fsnotify_access at depth 1: both users share the shadow stack.
    expect(b.output().split('\n').slice(4)).toEqual(['  0.004 us    |    fsnotify_access();', '']);
  });

  it('counts events lost when the buffer wraps, and keeps the newest', () => {
    const m = machine();
    const tr = new FunctionGraphTracer(m.fg, { bufferEvents: 4 });
    tr.start();
    for (let i = 0; i < 3; i++) {
      expect(m.kernel.run(m.cpu, node(m.image, { fn: 'vfs_read', cost: 2 }))).toBeNull();
    }
    expect(tr.stats()).toEqual([{ cpu: 0, entries: 4, lost: 2 }]);
    expect(tr.output()).toContain('CPU:0 [LOST 2 EVENTS]\n');
  });
});
