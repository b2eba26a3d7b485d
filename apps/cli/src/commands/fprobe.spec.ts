import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runStatus } from '../../test/status.js';

/** One trace line of an fprobe event: task, pid, CPU, event, where, and the arguments. */
const LINE = /^\s*(\S+)-(\d+)\s+\[(\d{3})\] \S{5}\s+\d+\.\d{6}: (\w+): \(([^)]*)\)((?: \w+=\S+)*)$/;

interface Hit {
  task: string;
  event: string;
  where: string;
  args: string;
}

/** The event lines of a `trace` file (its `#` header skipped). */
function hits(out: string): Hit[] {
  return out
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const m = LINE.exec(l);
      expect(m, l).not.toBeNull();
      return {
        task: `${m?.[1]}-${m?.[2]}`,
        event: m?.[4] ?? '',
        where: m?.[5] ?? '',
        args: (m?.[6] ?? '').trim(),
      };
    });
}

/** How many hits each "task event args" has. */
function tally(list: Hit[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const h of list) {
    const k = `${h.task} ${h.event} ${h.args}`;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

// The built-in `syscalls` workload: bash-1977 reads 128 bytes (fd 0) and writes 64 (fd 1) 20
// times; cat-2001 reads 4096 (fd 3) 20 times; sshd-1234 writes 512 (fd 4) 20 times; logger-3003
// writes 80 (fd 3) 10 times. Each read goes ksys_read -> vfs_read, each write ksys_write -> vfs_write,
// and each returns its count.
describe('tracelab fprobe add', () => {
  it.each([
    {
      name: 'entry with a typed $argN',
      defs: ['f vfs_read count=$arg3:u32'],
      want: {
        'bash-1977 vfs_read__entry count=128': 20,
        'cat-2001 vfs_read__entry count=4096': 20,
      },
    },
    {
      name: 'exit in its own group, signed return value',
      defs: ['f:my/rd vfs_read%return ret=$retval:s64'],
      want: { 'bash-1977 rd ret=128': 20, 'cat-2001 rd ret=4096': 20 },
    },
    {
      name: 'BTF argument names, two events at once',
      defs: ['f ksys_write fd:u32 count:u64', 'f:w/vw vfs_write count=$arg3:u64'],
      want: {
        // an unnamed BTF argument is named after the variable (generate_probe_arg_name)
        'bash-1977 ksys_write__entry fd=1 count=64': 20,
        'sshd-1234 ksys_write__entry fd=4 count=512': 20,
        'logger-3003 ksys_write__entry fd=3 count=80': 10,
        'bash-1977 vw count=64': 20,
        'sshd-1234 vw count=512': 20,
        'logger-3003 vw count=80': 10,
      },
    },
  ])('$name', async ({ defs, want }) => {
    const r = await runStatus(['fprobe', 'add', ...defs, '--workload', 'syscalls']);
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    expect(tally(hits(r.out))).toEqual(want);
  });

  it('prints where an entry hit and where an exit returned to', async () => {
    const r = await runStatus(['fprobe', 'add', 'f vfs_read', 'f vfs_read%return']);
    const list = hits(r.out);
    expect(list.filter((h) => h.event === 'vfs_read__entry').map((h) => h.where)).toEqual(
      Array(40).fill(expect.stringMatching(/^vfs_read\+0x0\/0x[0-9a-f]+$/)),
    );
    // vfs_read returns into its caller ksys_read
    expect(list.filter((h) => h.event === 'vfs_read__exit').map((h) => h.where)).toEqual(
      Array(40).fill(expect.stringMatching(/^ksys_read\+0x[0-9a-f]+\/0x[0-9a-f]+ <- vfs_read$/)),
    );
  });

  it('is the same for the same seed on every 64-bit arch', async () => {
    for (const arch of ['x86_64', 'arm64', 'riscv64']) {
      const args = ['fprobe', 'add', 'f vfs_read count=$arg3:u32', '--arch', arch, '--seed', '5'];
      const a = await runStatus(args);
      expect(tally(hits(a.out)), arch).toEqual({
        'bash-1977 vfs_read__entry count=128': 20,
        'cat-2001 vfs_read__entry count=4096': 20,
      });
      expect((await runStatus(args)).out).toBe(a.out);
    }
  });

  // Messages are the kernel's (trace_probe.h); the caret sits under the offending token.
  it.each([
    {
      def: 'f no_such_function',
      token: 'no_such_function',
      msg: 'Invalid probed address or symbol',
    },
    {
      def: 'f:a/b/c vfs_read',
      token: 'b/c',
      msg: 'Event name must follow the same rules as C identifiers',
    },
    { def: 'f vfs_read count=$arg3:u33', token: 'u33', msg: 'Unknown type is specified' },
  ])('refuses $def with error_log, caret and exit 2', async ({ def, token, msg }) => {
    const r = await runStatus(['fprobe', 'add', def]);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    const [head, command, caret] = r.err.split('\n');
    expect(head).toMatch(new RegExp(`^\\[\\s*\\d+\\.\\d{6}\\] trace_fprobe: error: ${msg}$`));
    expect(command).toBe(`  Command: ${def}`);
    expect(caret).toBe(`${' '.repeat('  Command: '.length + def.indexOf(token))}^`);
  });

  it('refuses a second event of the same name, naming the clash', async () => {
    const r = await runStatus([
      'fprobe',
      'add',
      'f vfs_read',
      'f:fprobes/vfs_read__entry ksys_read',
    ]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/error: Given group\/event name is already used by another event\n/);
  });

  it('names a missing workload file, an unknown event type, a bad arch and a bad BTF', async () => {
    const missing = await runStatus([
      'fprobe',
      'add',
      'f vfs_read',
      '--workload',
      '/nonexistent.yaml',
    ]);
    expect(missing).toMatchObject({
      code: 1,
      error: { code: 'ENOENT', message: '/nonexistent.yaml: no such file' },
    });
    // a refusal that leaves no error_log entry prints the write's error, still exit 2
    const other = await runStatus(['fprobe', 'add', 'x vfs_read']);
    expect(other.code).toBe(2);
    expect(other.err).toMatch(/^tracelab: EINVAL: .*'x vfs_read'\n$/);
    const arch = await runStatus(['fprobe', 'add', 'f vfs_read', '--arch', 'sparc']);
    expect(arch.error?.message).toMatch(/--arch.*x86_64/s);
    const btf = await runStatus(['fprobe', 'add', 'f vfs_read', '--btf', '/nonexistent.btf']);
    expect(btf.error).toMatchObject({ code: 'ENOENT', message: '/nonexistent.btf: no such file' });
    const notBtf = await runStatus(['fprobe', 'list', '--btf', fileURLToPath(import.meta.url)]);
    expect(notBtf.error?.code).toBe('EINVAL');
    expect(notBtf.error?.message).toMatch(/^\/.*fprobe\.spec\.ts: .*magic/);
  });
});

describe('tracelab fprobe list', () => {
  it('lists the definitions given, with the default group and event names filled in', async () => {
    const r = await runStatus([
      'fprobe',
      'list',
      '--event',
      'f vfs_read%return $retval',
      '--event',
      'f:g/open do_sys_openat2 dfd=$arg1:s32',
    ]);
    expect(r.code).toBe(0);
    // kernel: an unnamed event is SYM__entry / SYM__exit in group fprobes; an unnamed arg argN
    expect(r.out).toBe(
      'f:fprobes/vfs_read__exit vfs_read%return arg1=$retval\nf:g/open do_sys_openat2 dfd=$arg1:s32\n',
    );
  });

  it('lists its examples on every 64-bit arch, one line each', async () => {
    for (const arch of ['x86_64', 'arm64', 'riscv64']) {
      const r = await runStatus(['fprobe', 'list', '--arch', arch]);
      expect(r.code, arch).toBe(0);
      const lines = r.out.split('\n').filter((l) => l !== '');
      expect(lines.length).toBe(3);
      for (const l of lines) expect(l).toMatch(/^f:\w+\/\w+ \w+(%return)?( \w+=\S+)*$/);
    }
  });

  it('refuses a bad definition as add does', async () => {
    const r = await runStatus(['fprobe', 'list', '--event', 'f vfs_read', '--event', 'f']);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/trace_fprobe: error: .*\n {2}Command: f\n/);
  });
});
