import { describe, expect, it } from 'vitest';
import { traceFunctionGraph } from './trace-workload.js';

/** The function column of a graph line: what follows the duration column's `|  `. */
function fnColumn(line: string): string | null {
  const m = /^ \d\) .*?\| {2}(.*)$/.exec(line);
  return m === null ? null : (m[1] as string);
}

describe('traceFunctionGraph (tracelab trace --tracer function_graph)', () => {
  it.each(['x86_64', 'arm64'] as const)(
    '%s: --graph-function vfs_write shows only vfs_write trees, braces balanced',
    (arch) => {
      const out = traceFunctionGraph('syscalls', { arch, graphFunction: 'vfs_write' });
      if (typeof out !== 'string') throw out;
      const lines = out.split('\n').filter((l) => fnColumn(l) !== null);
      expect(lines.length).toBeGreaterThan(10);
      let open = 0;
      for (const l of lines) {
        const f = fnColumn(l) as string;
        if (!f.startsWith(' ')) expect(f).toMatch(/^(vfs_write\(\) \{|vfs_write\(\);|\})$/);
        if (f.endsWith('{')) open++;
        if (f.trimStart().startsWith('}')) open--;
        expect(open).toBeGreaterThanOrEqual(0);
      }
      expect(open).toBe(0);
    },
  );

  it.each(
    (['x86_64', 'i386', 'arm64', 'riscv64'] as const).flatMap((arch) =>
      (['syscalls', 'timer', 'net-rx', 'recursion'] as const).map((w) => [arch, w] as const),
    ),
  )('%s %s: braces balance on every CPU, interrupts are marked in and out', (arch, w) => {
    const out = traceFunctionGraph(w, { arch, bufferEvents: 1 << 18 });
    if (typeof out !== 'string') throw out;
    expect(out).not.toContain('LOST');
    const open = new Map<string, number>();
    let irqIn = 0;
    let irqOut = 0;
    for (const l of out.split('\n')) {
      if (l.includes('==========>')) irqIn++;
      if (l.includes('<==========')) irqOut++;
      const f = fnColumn(l);
      if (f === null) continue;
      const cpu = l.slice(0, 4);
      const n =
        (open.get(cpu) ?? 0) + (f.endsWith('{') ? 1 : f.trimStart().startsWith('}') ? -1 : 0);
      expect(n).toBeGreaterThanOrEqual(0);
      open.set(cpu, n);
    }
    for (const n of open.values()) expect(n).toBe(0);
    expect(irqOut).toBe(irqIn);
    if (w === 'timer') expect(irqIn).toBeGreaterThan(0);
  });

  it('max_graph_depth 1 prints only outermost calls, one line each', () => {
    const out = traceFunctionGraph('syscalls', { maxDepth: 1 });
    if (typeof out !== 'string') throw out;
    const fns = out
      .split('\n')
      .map(fnColumn)
      .filter((f): f is string => f !== null);
    expect(fns.length).toBeGreaterThan(0);
    for (const f of fns) expect(f).toMatch(/^[a-z_0-9]+\(\);$/);
  });

  it('reports a missing workload and a filter that matches nothing as errno errors', () => {
    const missing = traceFunctionGraph('no-such-workload');
    expect(typeof missing === 'string' ? null : missing.code).toBe('ENOENT');
    const bad = traceFunctionGraph('syscalls', { filter: 'no_such_function_xyz' });
    expect(typeof bad === 'string' ? null : bad.code).toBe('EINVAL');
  });
});
