import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseBtf } from './btf.js';
import { formatFuncs, globToRegExp, listFuncs } from './funcs.js';
import { BtfBuilder } from './write.js';

const btf = parseBtf(readFileSync(join(import.meta.dirname, 'testdata', 'kinds.btf')));

describe('globToRegExp', () => {
  it.each([
    ['vfs_*', 'vfs_read', true],
    ['vfs_*', 'do_vfs', false],
    ['*read*', 'ksys_read_x', true],
    ['do_?', 'do_x', true],
    ['do_?', 'do_xy', false],
    ['sys_[rw]*', 'sys_write', true],
    ['sys_[!rw]*', 'sys_write', false],
    ['a.b', 'axb', false],
  ] as const)('%s vs %s -> %s', (glob, name, match) => {
    expect(globToRegExp(glob).test(name)).toBe(match);
  });

  it('rejects an unterminated bracket', () => {
    expect(() => globToRegExp('a[b')).toThrow(/EINVAL: unterminated/);
  });
});

describe('listFuncs / formatFuncs', () => {
  it('prints C prototypes of the matching functions', () => {
    expect(listFuncs(btf, '*').map((f) => f.prototype)).toEqual([
      'int wake_up_process(struct task_struct *p)',
      'int prog(void *ctx)',
      'long sum_pair(struct pair *pr, int k)',
      'int core_read(struct task_struct *t)',
    ]);
    expect(listFuncs(btf, 'wake_*').map((f) => f.name)).toEqual(['wake_up_process']);
  });

  it('adds models and rejections', () => {
    const b = new BtfBuilder();
    const int = b.int('int', 4, { signed: true });
    const fp = b.ptr(b.funcProto(int, [int]));
    b.function('cb', 0, [
      { name: 'f', type: fp },
      { name: 'a', type: b.array(int, 2) },
    ]);
    b.function(
      'printk',
      int,
      [{ name: 'fmt', type: b.ptr(b.const(b.int('char', 1, { char: true }))) }],
      { variadic: true },
    );
    const text = formatFuncs(b.build(), undefined, { model: true });
    expect(text).toBe(
      [
        'void cb(int (*f)(int), int a[2]);\t# rejected: The function cb arg1 type ARRAY is unsupported.',
        'int printk(const char *fmt, ...);\t# rejected: The function printk with variable args is unsupported.',
        '',
      ].join('\n'),
    );
    const ok = formatFuncs(btf, 'sum_pair', { model: true });
    expect(ok).toBe('long sum_pair(struct pair *pr, int k);\t# ret=8/2 nr_args=2 args=[8,4/2]\n');
  });

  it('summarises counts and reasons', () => {
    const text = formatFuncs(btf, undefined, { summary: true });
    expect(text).toContain('functions: 4\n');
    expect(text).toContain('modeled: 4\n');
    expect(text).toContain('rejected: 0\n');
  });
});
