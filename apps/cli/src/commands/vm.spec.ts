import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { run } from '../../test/run.js';

describe('tracelab vm', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tracelab-vm-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(() => {
    process.exitCode = undefined;
  });
  const file = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  it('assembles, disassembles and runs a program', async () => {
    const src = file('mul.asm', 'mov %r0, 6\nmul %r0, 7\nexit\n');
    const hex = await run(['vm', 'asm', src]);
    expect(hex.trim().split('\n')).toEqual([
      'b7 00 00 00 06 00 00 00',
      '27 00 00 00 07 00 00 00',
      '95 00 00 00 00 00 00 00',
    ]);
    expect(await run(['vm', 'disasm', file('mul.hex', hex)])).toMatch(
      /^\s+1:\s+27 00 00 00 07 00 00 00\s+r0 \*= 7$/m,
    );
    expect((await run(['vm', 'run', src])).trim()).toBe('0x2a');
  });

  it('reports bad assembly with its line and a non-zero exit', async () => {
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      await run(['vm', 'asm', file('bad.asm', 'mov %r0, 1\nfrob %r1\nexit\n')]);
      expect(process.exitCode).toBe(1);
      expect(String(err.mock.calls[0]?.[0])).toMatch(/line 2/);
    } finally {
      err.mockRestore();
    }
  });
});
