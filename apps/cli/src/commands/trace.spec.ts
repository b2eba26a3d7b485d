import { describe, expect, it } from 'vitest';
import { run } from '../../test/run.js';

const ROW = /^\s*(\S+)-(\d+)\s+\[(\d{3})\] [.dDnNhHsSbB0-9]{5}\s+\d+\.\d{6}: (\S+) <-(\S+)$/;

describe('tracelab trace', () => {
  it('prints the function tracer header and only the filtered functions', async () => {
    const out = await run([
      'trace',
      '--workload',
      'syscalls',
      '--filter',
      'vfs_* !vfs_open',
      '--seed',
      '3',
    ]);
    const lines = out.split('\n');
    expect(lines[0]).toBe('# tracer: function');
    const rows = lines.filter((l) => l !== '' && !l.startsWith('#'));
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) {
      const m = ROW.exec(row);
      expect(m, row).not.toBeNull();
      expect(m?.[4]).toMatch(/^vfs_/);
      expect(m?.[4]).not.toBe('vfs_open');
    }
    const header = /entries-in-buffer\/entries-written: (\d+)\/(\d+)\s+#P:2/.exec(out);
    expect(Number(header?.[1])).toBe(rows.length);
  });

  it('gives the same trace for the same seed', async () => {
    const args = [
      'trace',
      '--workload',
      'timer',
      '--filter',
      '*irq*',
      '--cpus',
      '1',
      '--seed',
      '9',
    ];
    expect(await run(args)).toBe(await run(args));
  });

  it('shows the patched functions in enabled_functions', async () => {
    const out = await run(['trace', '--workload', 'syscalls', '--filter', 'vfs_read', '--enabled']);
    expect(out).toMatch(/# enabled_functions\nvfs_read \(1\)/);
  });

  it('the nop tracer records nothing', async () => {
    const out = await run(['trace', '--workload', 'syscalls', '--tracer', 'nop']);
    expect(out).toMatch(/entries-in-buffer\/entries-written: 0\/0/);
  });

  it('reports a filter that matches nothing and an unknown tracer', async () => {
    await expect(
      run(['trace', '--workload', 'syscalls', '--filter', 'no_such_fn']),
    ).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(run(['trace', '--workload', 'syscalls', '--tracer', 'blk'])).rejects.toThrow(
      /no tracer 'blk'/,
    );
  });

  it('function_graph with set_graph_function prints only that call tree, braces balanced', async () => {
    const out = await run([
      'trace',
      '--tracer',
      'function_graph',
      '--workload',
      'syscalls',
      '--graph-function',
      'vfs_write',
      '--trace-options',
      'funcgraph-proc',
    ]);
    const lines = out.split('\n');
    expect(lines[0]).toBe('# tracer: function_graph');
    const calls = lines
      .map((l) => /^ \d\) +\S+-\d+ +\|.*\| {2}(.*)$/.exec(l)?.[1])
      .filter((c): c is string => c !== undefined);
    expect(calls.length).toBeGreaterThan(0);
    let depth = 0;
    for (const c of calls) {
      if (depth === 0) expect(c).toMatch(/^vfs_write\(\) \{$|^vfs_write\(\);$/);
      if (c.endsWith('{')) depth++;
      if (c.trim() === '}') depth--;
      expect(depth).toBeGreaterThanOrEqual(0);
    }
    expect(depth).toBe(0);
  });

  it('function_graph refuses an unknown trace option by name', async () => {
    await expect(
      run([
        'trace',
        '--tracer',
        'function_graph',
        '--workload',
        'syscalls',
        '--trace-options',
        'funcgraph-nope',
      ]),
    ).rejects.toThrow(/funcgraph-nope/);
  });
});
