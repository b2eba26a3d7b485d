import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../../test/run.js';

describe('tracelab kernel', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tracelab-kernel-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each(['x86_64', 'arm64', 'i386', 'riscv64'])('info describes the %s image', async (arch) => {
    const info = JSON.parse(await run(['kernel', 'info', '--arch', arch, '--json']));
    expect(info.arch).toBe(arch);
    expect(info.functions).toBe(info.traceable + info.notrace);
    expect(info.wordSize).toBe(arch === 'i386' ? 4 : 8);
  });

  it('symbols lists kallsyms-style lines matching the glob only', async () => {
    const lines = (await run(['kernel', 'symbols', 'vfs_*'])).trim().split('\n');
    expect(lines.length).toBeGreaterThan(1);
    for (const line of lines) expect(line).toMatch(/^[0-9a-f]{16} [Tt] vfs_\S+/);
  });

  it('run gives the same summary for the same seed', async () => {
    const a = JSON.parse(
      await run(['kernel', 'run', 'syscalls', '--cpus', '2', '--seed', '5', '--json']),
    );
    const b = JSON.parse(
      await run(['kernel', 'run', 'syscalls', '--cpus', '2', '--seed', '5', '--json']),
    );
    expect(a).toEqual(b);
    expect(a).toMatchObject({ workload: 'syscalls', cpus: 2, seed: 5, fault: null });
    expect(a.calls).toBeGreaterThan(0);
  });

  it('runs a workload file and names the bad field of a broken one', async () => {
    const good = join(dir, 'good.yaml');
    writeFileSync(good, 'name: one\ntasks:\n  - comm: probe\n    calls:\n      - fn: vfs_read\n');
    expect(JSON.parse(await run(['kernel', 'run', good, '--json'])).calls).toBeGreaterThan(0);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(
      bad,
      'name: two\ntasks:\n  - comm: probe\n    calls:\n      - fn: no_such_function\n',
    );
    await expect(run(['kernel', 'run', bad])).rejects.toThrow(
      /tasks\[0\]\.calls\[0\]\.fn.*no_such_function/,
    );
  });

  it('refuses an unknown arch by option', async () => {
    await expect(run(['kernel', 'info', '--arch', 'sparc64'])).rejects.toMatchObject({
      message: expect.stringMatching(/--arch.*x86_64/s),
    });
  });
});
