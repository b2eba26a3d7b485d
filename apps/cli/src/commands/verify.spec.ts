import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { run } from '../../test/run.js';

const fixture = (name: string) =>
  fileURLToPath(new URL(`../../../../packages/loader/testdata/${name}`, import.meta.url));

describe('tracelab verify', () => {
  afterEach(() => {
    process.exitCode = undefined;
  });

  it('accepts the programs of a clang-built fentry/fexit object against the simulated kernel BTF', async () => {
    const out = await run(['verify', fixture('latency.bpfel.o')]);
    expect(out).toMatch(/^fentry\/vfs_read \(read_entry\): accepted, \d+ insns processed/m);
    expect(out).toMatch(/^fexit\/vfs_read \(read_exit\): accepted/m);
    expect(process.exitCode).toBeUndefined();
  });

  it('prints the kernel-style log at level 1 for one section', async () => {
    const out = await run([
      'verify',
      fixture('minimal.bpfel.o'),
      '--section',
      'socket',
      '--log',
      '1',
    ]);
    expect(out).toMatch(/^0: \([0-9a-f]{2}\) /m);
    expect(out).toMatch(
      /^processed \d+ insns \(limit 1000000\) max_states_per_insn \d+ total_states \d+/m,
    );
  });

  it('--json gives the verdict with stats', async () => {
    const [verdict] = JSON.parse(
      await run([
        'verify',
        fixture('legacy.bpfel.o'),
        '--section',
        'tp/syscalls/sys_enter_close',
        '--json',
      ]),
    );
    expect(verdict).toMatchObject({
      section: 'tp/syscalls/sys_enter_close',
      result: { ok: true, errno: 0 },
    });
    expect(verdict.result.stats.processedInsns).toBeGreaterThan(0);
  });

  it('names a section that has no program', async () => {
    await expect(
      run(['verify', fixture('minimal.bpfel.o'), '--section', 'kprobe/x']),
    ).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('verifies an assembly file as the program type given, exit 1 on reject', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tracelab-verify-'));
    try {
      const ok = join(dir, 'ok.asm');
      writeFileSync(ok, 'r0 = 0\nexit\n');
      expect(await run(['verify', ok, '--type', 'kprobe'])).toMatch(
        /^kprobe \(.*ok\.asm\): accepted/m,
      );
      expect(process.exitCode).toBeUndefined();
      // reading a stack slot never written: the kernel's "invalid read from stack"
      const bad = join(dir, 'bad.asm');
      writeFileSync(bad, 'r0 = *(u64 *)(r10 - 8)\nexit\n');
      expect(await run(['verify', bad, '--type', 'kprobe'])).toMatch(
        /rejected EACCES: invalid read from stack off -8\+0 size 8 \(insn 0\)/,
      );
      expect(process.exitCode).toBe(1);
      await expect(run(['verify', bad, '--type', 'xdp'])).rejects.toMatchObject({
        message: expect.stringMatching(/--type.*kprobe/s),
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
