import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../test/run.js';
import { runStatus } from '../../test/status.js';

const fixture = (path: string) =>
  fileURLToPath(new URL(`../../../../packages/${path}`, import.meta.url));
const obj = (name: string) => fixture(`loader/testdata/${name}`);
const asmFixture = (name: string) => fixture(`verifier/src/testdata/programs/${name}`);

/** bpftool's hex of a little-endian integer of `size` bytes. */
function leHex(v: bigint, size: number): string {
  return Array.from({ length: size }, (_, i) =>
    Number((v >> BigInt(8 * i)) & 0xffn)
      .toString(16)
      .padStart(2, '0'),
  ).join(' ');
}

/** The kallsyms address of a function, from `tracelab kernel symbols`. */
async function address(fn: string, arch = 'x86_64'): Promise<bigint> {
  const line = (await run(['kernel', 'symbols', fn, '--arch', arch])).trim();
  return BigInt(`0x${line.split(' ')[0]}`);
}

/** Calls per vfs_* function in one seeded `syscalls` run, as the function tracer counts them. */
async function tracedCalls(glob: string): Promise<Map<string, number>> {
  const out = await run(['trace', '--workload', 'syscalls', '--filter', glob]);
  const calls = new Map<string, number>();
  for (const l of out.split('\n')) {
    const fn = /: (\w+) <-/.exec(l)?.[1];
    if (fn !== undefined) calls.set(fn, (calls.get(fn) ?? 0) + 1);
  }
  return calls;
}

// `syscalls` (packages/kernel): bash-1977 reads 20 times and writes 20 times, cat-2001 reads
// 20 times, sshd-1234 writes 20 times, logger-3003 writes 10 times: 40 vfs_read, 50 vfs_write.
const READS = 40n;
const WRITES = 50;

describe('tracelab attach', () => {
  let dir = '';
  const asm = (name: string, text: string): string => {
    const file = join(dir, name);
    writeFileSync(file, text);
    return file;
  };
  // adds one to element 0 of the array map with fd 3
  const COUNT =
    'r1 = 0\n*(u32 *)(r10 - 4) = r1\nr2 = r10\nr2 += -4\nr1 = map_fd[3, 0] ll\ncall 1\nif r0 == 0 goto +2\nr1 = 1\nlock *(u64 *)(r0 + 0) += r1\nr0 = 0\nexit\n';
  // bpf_trace_printk("hi!")
  const HI =
    'r1 = 0x216968\n*(u32 *)(r10 - 4) = r1\nr1 = r10\nr1 += -4\nr2 = 4\ncall 6\nr0 = 0\nexit\n';

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tracelab-attach-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('counts vfs_read by its address through a clang fentry program, dumping the hash map', async () => {
    const r = await runStatus(['attach', obj('counts.bpfel.o'), '--section', 'fentry/vfs_read']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^fentry\/vfs_read \(count_fentry\): accepted, processed \d+ insns/m);
    expect(r.out).toMatch(/^fentry\/vfs_read \(count_fentry\): attached to vfs_read$/m);
    expect(r.out).toMatch(/^\d+: hash {2}name calls {2}key 8B {2}value 8B {2}max_entries 1024$/m);
    const ip = await address('vfs_read');
    // key and value are 8 bytes each: one line, as bpftool prints them
    expect(r.out).toContain(`key: ${leHex(ip, 8)}  value: ${leHex(READS, 8)}\n`);
    // the object's BTF types both as __u64
    expect(r.out).toContain(`{"key": ${ip}, "value": ${READS}}\n`);
    expect(r.out).toMatch(/^Found 1 element$/m);
  });

  it.each(['arm64', 'riscv64', 'i386'])(
    'counts vfs_read through fentry on %s, keyed by its address there',
    async (arch) => {
      const r = await runStatus([
        'attach',
        obj('counts.bpfel.o'),
        '--section',
        'fentry/vfs_read',
        '--arch',
        arch,
      ]);
      expect(r.code).toBe(0);
      expect(r.out).toContain(`{"key": ${await address('vfs_read', arch)}, "value": ${READS}}\n`);
    },
  );

  it('attaches every program of an object by its section when no link is given', async () => {
    const r = await runStatus(['attach', obj('counts.bpfel.o')]);
    expect(r.code).toBe(0);
    for (const [section, target] of [
      ['kprobe/do_sys_openat2 (count_kprobe)', 'do_sys_openat2'],
      ['kprobe.multi/vfs_* (count_multi)', 'vfs_*'],
      ['fentry/vfs_read (count_fentry)', 'vfs_read'],
    ])
      expect(r.out).toContain(`${section}: attached to ${target}\n`);
    const traced = await tracedCalls('vfs_*');
    // vfs_read is counted twice, by the kprobe.multi and the fentry program
    for (const [fn, n] of traced) {
      const calls = fn === 'vfs_read' ? 2 * n : n;
      expect(r.out, fn).toContain(`{"key": ${await address(fn)}, "value": ${calls}}\n`);
    }
    // and do_sys_openat2 once per openat (cat 20 times, logger 10 times), beside the vfs_* at 30
    const thirty = [...traced.values()].filter((n) => n === 30).length;
    expect(r.out.match(/\{"key": \d+, "value": 30\}\n/g)?.length).toBe(thirty + 1);
    expect(r.out).toMatch(new RegExp(`^Found ${traced.size + 1} elements$`, 'm'));
  });

  it('counts every vfs_* function through --kprobe-multi, as the function tracer counts them', async () => {
    const r = await runStatus([
      'attach',
      obj('counts.bpfel.o'),
      '--section',
      'kprobe.multi/vfs_*',
      '--kprobe-multi',
      'vfs_*',
    ]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^kprobe\.multi\/vfs_\* \(count_multi\): attached to vfs_\*$/m);
    const want = await tracedCalls('vfs_*');
    expect(want.get('vfs_read')).toBe(Number(READS));
    expect(want.get('vfs_write')).toBe(WRITES);
    const got = new Map<string, number>();
    for (const [fn, n] of want) {
      const ip = await address(fn);
      if (r.out.includes(`{"key": ${ip}, "value": ${n}}`)) got.set(fn, n);
    }
    expect(got).toEqual(want);
    expect(r.out).toMatch(new RegExp(`^Found ${want.size} elements$`, 'm'));
  });

  it('attaches fentry and fexit by section: the latency histogram holds one sample per read', async () => {
    const r = await runStatus(['attach', obj('latency.bpfel.o')]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^fentry\/vfs_read \(read_entry\): attached to vfs_read$/m);
    expect(r.out).toMatch(/^fexit\/vfs_read \(read_exit\): attached to vfs_read$/m);
    // latency.c: samples starts at 7 and grows per completed read; start[] is emptied on exit
    expect(r.out).toContain(`{"value": {".data": [{"samples": ${7n + READS}}]}}`);
    expect(r.out).toMatch(
      /name start {2}key 4B {2}value 8B {2}max_entries 10240\nFound 0 elements/,
    );
    const bss = /\{"value": \{"\.bss": \[\{"hist": \[([\d,]+)\]\},\{"dropped": (\d+)\}\]\}\}/.exec(
      r.out,
    );
    const hist = (bss?.[1] ?? '').split(',').map(Number);
    expect(hist.length).toBe(26);
    expect(hist.reduce((a, b) => a + b, 0)).toBe(Number(READS));
    expect(bss?.[2]).toBe('0');
  });

  it.each([
    { flag: '--fentry', fn: 'vfs_read', count: READS },
    { flag: '--fexit', fn: 'vfs_write', count: BigInt(WRITES) },
    { flag: '--kprobe-multi', fn: 'vfs_*', count: READS + BigInt(WRITES) + 30n },
  ])(
    'an assembly program $flag $fn counts into the map --map made',
    async ({ flag, fn, count }) => {
      const want = [...(await tracedCalls(fn)).values()].reduce((a, b) => a + b, 0);
      expect(BigInt(want)).toBe(count);
      const file = asm('count.asm', COUNT);
      const r = await runStatus(['attach', file, flag, fn, '--map', 'hits:array:4:8:1']);
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/^3: array {2}name hits {2}key 4B {2}value 8B {2}max_entries 1$/m);
      expect(r.out).toContain(`key: 00 00 00 00  value: ${leHex(count, 8)}\n`);
      // a glob attach has a progress bar, but stderr here is no terminal: nothing is drawn
      expect(r.err).toBe('');
    },
  );

  it('dumps a per-CPU map one value per CPU, as the function tracer counts calls per CPU', async () => {
    const perCpu = [0, 0];
    for (const l of (await run(['trace', '--workload', 'syscalls', '--filter', 'vfs_write'])).split(
      '\n',
    )) {
      const cpu = /\[(\d{3})\] .*: vfs_write <-/.exec(l)?.[1];
      if (cpu !== undefined) perCpu[Number(cpu)] = (perCpu[Number(cpu)] ?? 0) + 1;
    }
    expect(perCpu[0] + perCpu[1]).toBe(WRITES);
    const file = asm('percpu.asm', COUNT);
    const r = await runStatus([
      'attach',
      file,
      '--fexit',
      'vfs_write',
      '--map',
      'c:percpu_array:4:8:1',
    ]);
    expect(r.code).toBe(0);
    expect(r.out).toContain(
      `key:\n00 00 00 00\nvalue (CPU 00): ${leHex(BigInt(perCpu[0] ?? 0), 8)}\nvalue (CPU 01): ${leHex(BigInt(perCpu[1] ?? 0), 8)}\nFound 1 element\n`,
    );
  });

  it('prints bpf_trace_printk lines with the task that printed them', async () => {
    const r = await runStatus(['attach', asm('hi.asm', HI), '--fexit', 'vfs_write']);
    expect(r.code).toBe(0);
    const tasks = r.out
      .split('\n')
      .map((l) => /^\s*(\S+-\d+)\s+\[\d{3}\] \S+\s+\d+\.\d{6}: bpf_trace_printk: hi!$/.exec(l)?.[1])
      .filter((t) => t !== undefined);
    const per = (t: string) => tasks.filter((x) => x === t).length;
    expect([per('bash-1977'), per('sshd-1234'), per('logger-3003')]).toEqual([20, 20, 10]);
    expect(tasks.length).toBe(WRITES);
  });

  it('runs an fmod_ret program from the verifier fixtures', async () => {
    const r = await runStatus([
      'attach',
      asmFixture('accept-fmod-ret-return.bpf'),
      '--fmod-ret',
      'vfs_read',
    ]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^tracing \(accept-fmod-ret-return\): attached to vfs_read$/m);
  });

  it.each([
    {
      name: 'a clang object the verifier rejects: its log and source line, exit 1',
      args: () => ['attach', obj('rejected.bpfel.o'), '--section', 'socket'],
      out: /; for \(;;\) \{ @ rejected\.c:\d+\n[^]*rejected EINVAL: spin_on_empty: infinite loop detected/,
    },
    {
      name: 'an fentry program returning non-zero',
      args: () => ['attach', asmFixture('reject-fentry-return.bpf'), '--fentry', 'vfs_read'],
      out: /reject-fentry-return\.bpf: rejected EINVAL: At program exit the register R0/,
    },
    {
      name: 'an fentry program on a function the kernel lacks',
      args: () => [
        'attach',
        asm('c.asm', COUNT),
        '--fentry',
        'no_such_fn',
        '--map',
        'm:array:4:8:1',
      ],
      out: /c\.asm: rejected \w+: .*no_such_fn/,
    },
  ])('verdict: $name', async ({ args, out }) => {
    const r = await runStatus(args());
    expect(r.code).toBe(1);
    expect(r.error).toBeUndefined();
    expect(r.out).toMatch(out);
    expect(r.out).not.toMatch(/attached/);
  });

  it.each([
    {
      name: 'missing file',
      args: () => ['attach', '/nonexistent/prog.o', '--fentry', 'vfs_read'],
      code: 'ENOENT',
      message: /^\/nonexistent\/prog\.o: no such file$/,
    },
    {
      name: 'a file that is neither object nor assembly',
      args: () => ['attach', obj('counts.c'), '--fentry', 'vfs_read'],
      code: 'EINVAL',
      message: /counts\.c: not a BPF object, nor assembly: line \d+/,
    },
    {
      name: 'a truncated object',
      args: () => {
        const file = join(dir, 'short.o');
        writeFileSync(file, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]));
        return ['attach', file];
      },
      code: expect.any(String),
      message: /short\.o: /,
    },
    {
      name: 'unknown function for a clang program',
      args: () => [
        'attach',
        obj('counts.bpfel.o'),
        '--section',
        'fentry/vfs_read',
        '--fentry',
        'no_such_fn',
      ],
      code: 'ENOENT',
      message: /attaching fentry\/vfs_read \(count_fentry\): .*no_such_fn/,
    },
    {
      name: 'a glob that matches nothing',
      args: () => [
        'attach',
        obj('counts.bpfel.o'),
        '--section',
        'kprobe.multi/vfs_*',
        '--kprobe-multi',
        'zzz_*',
      ],
      code: 'ENOENT',
      message: /attaching kprobe\.multi\/vfs_\* \(count_multi\): .*'zzz_\*'/,
    },
    {
      name: 'a section the object lacks',
      args: () => ['attach', obj('counts.bpfel.o'), '--section', 'fexit/nope'],
      code: 'ENOENT',
      message: /no program in section 'fexit\/nope' \(have kprobe\/do_sys_openat2, /,
    },
    {
      name: 'two programs a link could take',
      args: () => ['attach', obj('counts.bpfel.o'), '--kprobe-multi', 'vfs_*'],
      code: 'EINVAL',
      message: /2 programs fit a kprobe_multi link .*choose one with --section/,
    },
    {
      name: 'a link kind the object has no program for',
      args: () => ['attach', obj('latency.bpfel.o'), '--fmod-ret', 'vfs_read'],
      code: 'ENOENT',
      message: /no program a fmod_ret link can take \(have fentry\/vfs_read \(tracing\)/,
    },
    {
      name: 'two link flags',
      args: () => ['attach', obj('latency.bpfel.o'), '--fentry', 'a', '--fexit', 'b'],
      code: 'EINVAL',
      message: /give one of --fentry/,
    },
    {
      name: 'an assembly file without a link flag',
      args: () => ['attach', asm('plain.asm', 'r0 = 0\nexit\n')],
      code: 'EINVAL',
      message: /plain\.asm: an assembly program has no section to attach by/,
    },
    {
      name: 'a section no layer attaches',
      args: () => ['attach', obj('minimal.bpfel.o')],
      code: 'EOPNOTSUPP',
      message: /attaching socket \(accept_all\): /,
    },
    {
      name: 'a bad --map',
      args: () => ['attach', asm('d.asm', COUNT), '--fentry', 'vfs_read', '--map', 'm:tree:4:8:1'],
      code: 'commander.invalidArgument',
      message: /--map.*'m:tree:4:8:1': expected NAME:TYPE:KEY:VALUE:MAX/s,
    },
  ])('refuses $name, naming it', async ({ args, code, message }) => {
    const r = await runStatus(args());
    expect(r.code).not.toBe(0);
    expect(r.error?.code).toEqual(code);
    expect(r.error?.message).toMatch(message);
    expect(r.error?.message).not.toMatch(/\n\s+at /);
  });
});
