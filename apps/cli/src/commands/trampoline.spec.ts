import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BtfBuilder } from '@tracelab/btf';
import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../../test/run.js';

describe('tracelab trampoline', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tracelab-tramp-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const b = new BtfBuilder();
  const long = b.int('long', 8, { signed: true });
  const two = b.funcProto(long, [
    { name: 'a', type: long },
    { name: 'b', type: long },
  ]);
  b.func('add_two', two);
  b.func('sub_two', two);
  b.func('log_all', b.funcProto(long, [{ name: 'fmt', type: long }], true));
  const btf = join(dir, 'k.btf');
  writeFileSync(btf, b.write());

  it('groups functions with equal plans into one trampoline and says why others cannot attach', async () => {
    const out = await run(['trampoline', 'groups', '--btf', btf]);
    expect(out).toMatch(/^x86_64: N=3 functions, 2 attachable, M=1 trampolines, 1 rejected$/m);
    expect(out).toMatch(/#0 2 functions/);
    expect(out).toMatch(/variable args.*log_all/);
  });

  it('prints where each argument of one function is read from', async () => {
    const out = await run(['trampoline', 'plan', 'add_two', '--btf', btf]);
    expect(out).toMatch(/arg0: 8 bytes <- di -> ctx\[0\]/);
    expect(out).toMatch(/arg1: 8 bytes <- si -> ctx\[1\]/);
    await expect(run(['trampoline', 'plan', 'nope', '--btf', btf])).rejects.toMatchObject({
      code: 'ENOENT',
    });
  });
});
