import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BtfBuilder } from '@tracelab/btf';
import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../../test/run.js';

describe('tracelab btf dump', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tracelab-btf-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const b = new BtfBuilder();
  const int = b.int('int', 4, { signed: true });
  b.struct('task', [
    { name: 'pid', type: int, bitsOffset: 0 },
    { name: 'tgid', type: int, bitsOffset: 32 },
  ]);
  const file = join(dir, 'task.btf');
  writeFileSync(file, b.write());

  it('prints a C header declaring the types', async () => {
    const out = await run(['btf', 'dump', file, '--format', 'c']);
    expect(out).toMatch(/struct task \{\s*int pid;\s*int tgid;\s*\};/);
  });

  it('prints the raw listing and JSON of the same types', async () => {
    const raw = await run(['btf', 'dump', file]);
    expect(raw).toMatch(/^\[1\] INT 'int' size=4/m);
    expect(raw).toMatch(/^\[2\] STRUCT 'task' size=8 vlen=2/m);
    const json = JSON.parse(await run(['btf', 'dump', file, '--format', 'json']));
    expect(JSON.stringify(json)).toContain('"tgid"');
  });

  it('names a missing file and a file that is not BTF', async () => {
    await expect(run(['btf', 'dump', join(dir, 'nope')])).rejects.toMatchObject({
      code: 'ENOENT',
      message: expect.stringContaining('nope'),
    });
    const junk = join(dir, 'junk');
    writeFileSync(junk, 'this file is long enough to hold a BTF header but is plain text');
    await expect(run(['btf', 'dump', junk])).rejects.toThrow(/magic.*offset 0/);
  });

  it('funcs lists prototypes with their function models', async () => {
    const fb = new BtfBuilder();
    const long = fb.int('long', 8, { signed: true });
    const proto = fb.funcProto(long, [
      { name: 'a', type: long },
      { name: 'b', type: long },
    ]);
    fb.func('add_two', proto);
    const f = join(dir, 'funcs.btf');
    writeFileSync(f, fb.write());
    const out = await run(['btf', 'funcs', f, 'add_*', '--model']);
    expect(out).toMatch(
      /^long add_two\(long a, long b\);\t# ret=8\/2 nr_args=2 args=\[8\/2,8\/2\]$/m,
    );
    expect(await run(['btf', 'funcs', f, 'none_*'])).toBe('');
    expect(await run(['btf', 'funcs', f, '--summary'])).toMatch(/^functions: 1$/m);
  });
});
