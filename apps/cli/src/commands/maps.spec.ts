import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runStatus } from '../../test/status.js';

const obj = (name: string) =>
  fileURLToPath(new URL(`../../../../packages/loader/testdata/${name}`, import.meta.url));

// latency.c: `const volatile pid_t target_tgid = 0; const volatile bool in_usecs = false;`
// (.rodata), `__u32 hist[26]; static __u64 dropped;` (.bss), `__u64 samples = 7;` (.data), and
// a 10240-entry hash `start`. The built-in `syscalls` workload reads 40 times through vfs_read.
const ZERO_HIST = Array(26).fill(0).join(',');

describe('tracelab maps dump', () => {
  it.each([
    {
      name: 'as loaded (--no-run): the initial values the C source gives',
      args: ['--no-run'],
      want: [
        '{"value": {".rodata": [{"target_tgid": 0},{"in_usecs": false}]}}',
        `{"value": {".bss": [{"hist": [${ZERO_HIST}]},{"dropped": 0}]}}`,
        '{"value": {".data": [{"samples": 7}]}}',
        'key: 00 00 00 00  value: 07 00 00 00 00 00 00 00',
      ],
    },
    {
      name: 'after a run: one sample per vfs_read',
      args: [],
      want: [
        '{"value": {".data": [{"samples": 47}]}}',
        'key: 00 00 00 00  value: 2f 00 00 00 00 00 00 00',
      ],
    },
    {
      name: 'one map by name',
      args: ['--map', '.data', '--no-run'],
      want: ['{"value": {".data": [{"samples": 7}]}}'],
    },
  ])('$name', async ({ args, want }) => {
    const r = await runStatus(['maps', 'dump', obj('latency.bpfel.o'), ...args]);
    expect(r.code).toBe(0);
    for (const line of want) expect(r.out.split('\n')).toContain(line);
  });

  it('prints only the map asked for', async () => {
    const r = await runStatus(['maps', 'dump', obj('latency.bpfel.o'), '--map', 'start']);
    expect(r.out).toBe(
      '3: hash  name start  key 4B  value 8B  max_entries 10240\nFound 0 elements\n',
    );
  });

  it('breaks values over 16 bytes onto lines of 16, in groups of 8, as bpftool does', async () => {
    const r = await runStatus([
      'maps',
      'dump',
      obj('latency.bpfel.o'),
      '--map',
      '.bss',
      '--no-run',
    ]);
    // 26 u32 counters and a u64 at offset 104: 112 bytes, 7 lines
    const row = '00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00';
    expect(r.out).toContain(`key:\n00 00 00 00\nvalue:\n${Array(7).fill(row).join('\n')}\n`);
  });

  it('decodes the histogram after a run: 40 samples', async () => {
    const r = await runStatus(['maps', 'dump', obj('latency.bpfel.o'), '--map', '.bss']);
    const hist = /"hist": \[([\d,]+)\]/.exec(r.out)?.[1]?.split(',').map(Number) ?? [];
    expect(hist.reduce((a, b) => a + b, 0)).toBe(40);
  });

  it('says why a ring buffer has no elements to dump, and goes on', async () => {
    const r = await runStatus(['maps', 'dump', obj('ringbuf.bpfel.o'), '--no-run']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^\d+: ringbuf {2}name events .*\n {2}cannot dump: EOPNOTSUPP: events: /);
  });

  it.each([
    {
      name: 'a map the object lacks',
      args: [obj('latency.bpfel.o'), '--map', 'nope'],
      code: 'ENOENT',
      message: /latency\.bpfel\.o: no map 'nope' \(have start, \.rodata, \.bss, \.data\)/,
    },
    {
      name: 'a missing file',
      args: ['/nonexistent.o'],
      code: 'ENOENT',
      message: /^\/nonexistent\.o: no such file$/,
    },
    {
      name: 'a file that is not an object',
      args: [obj('counts.c')],
      code: 'ENOEXEC',
      message: /counts\.c: /,
    },
    {
      name: 'an object the verifier rejects',
      args: [obj('rejected.bpfel.o'), '--section', 'socket'],
      code: 'EINVAL',
      message: /rejected\.bpfel\.o: rejected: spin_on_empty: infinite loop detected/,
    },
  ])('refuses $name with $code', async ({ args, code, message }) => {
    const r = await runStatus(['maps', 'dump', ...args]);
    expect(r.code).toBe(1);
    expect(r.error).toMatchObject({ code });
    expect(r.error?.message).toMatch(message);
  });
});
