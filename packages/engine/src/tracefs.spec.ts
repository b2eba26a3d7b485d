import { TracelabError } from '@tracelab/contracts';
import { describe, expect, it } from 'vitest';
import { Engine } from './engine.js';

/** One step of a session: a write (expecting an errno or success), a read, or a workload run. */
type Step =
  | { w: string; d: string; append?: boolean; err?: string }
  | { r: string; is?: string; has?: string; lacks?: string; err?: string }
  | { run: string }
  | { mkdir: string; err?: string }
  | { rmdir: string; err?: string };

function play(steps: readonly Step[]): void {
  const e = Engine.create({ arch: 'x86_64', cpus: 2, seed: 5 });
  if (e instanceof TracelabError) throw e;
  const fs = e.tracefs;
  for (const [k, s] of steps.entries()) {
    const at = `step ${k}: ${JSON.stringify(s)}`;
    if ('run' in s) {
      const r = e.run(s.run);
      expect(r, at).not.toBeInstanceOf(TracelabError);
    } else if ('mkdir' in s || 'rmdir' in s) {
      const r = 'mkdir' in s ? fs.mkdir(s.mkdir) : fs.rmdir(s.rmdir);
      expect(r?.code, at).toBe(s.err);
    } else if ('w' in s) {
      const r = fs.write(s.w, s.d, { append: s.append === true });
      if (s.err === undefined) expect(r, at).toBe(s.d.length);
      else expect((r as TracelabError).code, at).toBe(s.err);
    } else {
      const r = fs.read(s.r);
      if (s.err !== undefined) {
        expect((r as TracelabError).code, at).toBe(s.err);
        continue;
      }
      expect(typeof r, at).toBe('string');
      if (s.is !== undefined) expect(r, at).toBe(s.is);
      if (s.has !== undefined) expect(r, at).toContain(s.has);
      if (s.lacks !== undefined) expect(r, at).not.toContain(s.lacks);
    }
  }
}

const cases: [string, Step[]][] = [
  [
    'missing files, read-only files and directories',
    [
      { r: 'no_such_file', err: 'ENOENT' },
      { w: 'available_tracers', d: 'nop', err: 'EACCES' },
      { w: 'enabled_functions', d: 'x', err: 'EACCES' },
      { r: 'instances/none/trace', err: 'ENOENT' },
      { r: 'options', err: 'EINVAL' },
      { r: '/sys/kernel/tracing/available_tracers', is: 'function_graph function nop\n' },
    ],
  ],
  [
    'current_tracer accepts only known tracers',
    [
      { r: 'current_tracer', is: 'nop\n' },
      { w: 'current_tracer', d: 'bogus\n', err: 'EINVAL' },
      { w: 'current_tracer', d: '\n', err: 'EINVAL' },
      { r: 'current_tracer', is: 'nop\n' },
      { w: 'current_tracer', d: 'function\n' },
      { r: 'current_tracer', is: 'function\n' },
    ],
  ],
  [
    'set_ftrace_filter: truncate, append, no match, reset',
    [
      { r: 'set_ftrace_filter', is: '#### all functions enabled ####\n' },
      { w: 'set_ftrace_filter', d: 'vfs_read' },
      { w: 'set_ftrace_filter', d: 'vfs_write', append: true },
      { r: 'set_ftrace_filter', has: 'vfs_read\n' },
      { r: 'set_ftrace_filter', has: 'vfs_write\n' },
      { w: 'set_ftrace_filter', d: 'no_such_function', err: 'EINVAL' },
      { w: 'set_ftrace_filter', d: 'vfs_open' },
      { r: 'set_ftrace_filter', is: 'vfs_open\n' },
      { w: 'set_ftrace_filter', d: '\n' },
      { r: 'set_ftrace_filter', is: '#### all functions enabled ####\n' },
      { w: 'set_ftrace_notrace', d: 'vfs_*' },
      { r: 'set_ftrace_notrace', has: 'vfs_read\n' },
    ],
  ],
  [
    'function tracer: filter, enabled_functions, trace, trace_pipe consumes, truncate clears',
    [
      { w: 'set_ftrace_filter', d: 'vfs_read' },
      { r: 'enabled_functions', is: '' },
      { w: 'current_tracer', d: 'function' },
      { r: 'enabled_functions', has: 'vfs_read (1)' },
      { run: 'syscalls' },
      { r: 'trace', has: ': vfs_read <-', lacks: ': vfs_write <-' },
      { r: 'trace', has: '# tracer: function' },
      { r: 'trace_pipe', has: ': vfs_read <-', lacks: '# tracer' },
      { r: 'trace_pipe', is: '' },
      { run: 'syscalls' },
      { w: 'trace', d: '', append: true },
      { r: 'trace', has: ': vfs_read <-' },
      { w: 'trace', d: '' },
      { r: 'trace', has: 'entries-in-buffer/entries-written: 0/0', lacks: 'vfs_read <-' },
      { w: 'current_tracer', d: 'nop' },
      { r: 'enabled_functions', is: '' },
      { r: 'touched_functions', has: 'vfs_read' },
      { r: 'trace', has: '# tracer: nop' },
    ],
  ],
  [
    'tracing_on stops recording without unhooking the function tracer',
    [
      { w: 'tracing_on', d: 'abc', err: 'EINVAL' },
      { w: 'current_tracer', d: 'function' },
      { w: 'tracing_on', d: '0\n' },
      { r: 'tracing_on', is: '0\n' },
      { run: 'syscalls' },
      { r: 'trace', has: 'entries-in-buffer/entries-written: 0/0' },
      { w: 'tracing_on', d: '1' },
      { run: 'syscalls' },
      { r: 'trace', lacks: 'entries-in-buffer/entries-written: 0/0' },
    ],
  ],
  [
    'buffer_size_kb: numbers only, never zero; a small buffer overwrites and trace_pipe reports the loss',
    [
      { r: 'buffer_size_kb', is: '1408\n' },
      { r: 'buffer_total_size_kb', is: '2816\n' },
      { w: 'buffer_size_kb', d: '0', err: 'EINVAL' },
      { w: 'buffer_size_kb', d: '-1', err: 'EINVAL' },
      { w: 'buffer_size_kb', d: '1\n' },
      { r: 'buffer_size_kb', is: '1\n' },
      { w: 'current_tracer', d: 'function' },
      { run: 'syscalls' },
      { r: 'trace_pipe', has: 'EVENTS]' },
    ],
  ],
  [
    'function_graph with set_graph_function, max_graph_depth and trace_options',
    [
      { w: 'trace_options', d: 'funcgraph-proc', err: 'EINVAL' },
      { w: 'set_graph_function', d: 'ksys_read' },
      { r: 'set_graph_function', is: 'ksys_read\n' },
      { w: 'current_tracer', d: 'function_graph' },
      { r: 'trace_options', has: 'nofuncgraph-proc\n' },
      { w: 'trace_options', d: 'funcgraph-proc' },
      { r: 'trace_options', has: '\nfuncgraph-proc\n' },
      { r: 'options/funcgraph-proc', is: '1\n' },
      { w: 'options/funcgraph-proc', d: '2', err: 'EINVAL' },
      { w: 'trace_options', d: 'nosuch-option', err: 'EINVAL' },
      { run: 'syscalls' },
      { r: 'trace', has: 'ksys_read() {', lacks: 'ksys_write' },
      { r: 'trace', has: 'vfs_read' },
      { w: 'trace', d: '' },
      { w: 'max_graph_depth', d: '1' },
      { r: 'max_graph_depth', is: '1\n' },
      { run: 'syscalls' },
      { r: 'trace', has: 'ksys_read();', lacks: 'vfs_read' },
      { r: 'trace_pipe', has: 'ksys_read();', lacks: '# CPU' },
      { r: 'trace_pipe', is: '' },
    ],
  ],
  [
    'dynamic_events: fprobe definitions, error_log carets, deletion',
    [
      { r: 'dynamic_events', is: '' },
      { w: 'dynamic_events', d: 'f:myprobe vfs_read' },
      { w: 'dynamic_events', d: 'f vfs_write%return', append: true },
      {
        r: 'dynamic_events',
        is: 'f:fprobes/myprobe vfs_read\nf:fprobes/vfs_write__exit vfs_write%return\n',
      },
      { w: 'dynamic_events', d: 'f:myprobe vfs_open', append: true, err: 'EEXIST' },
      { w: 'dynamic_events', d: 'f non_exist_func', append: true, err: 'EINVAL' },
      {
        r: 'error_log',
        has: 'trace_fprobe: error: Invalid probed address or symbol\n  Command: f non_exist_func\n             ^\n',
      },
      { w: 'dynamic_events', d: '-:myprobe', append: true },
      { w: 'dynamic_events', d: '-:myprobe', append: true, err: 'ENOENT' },
      { r: 'dynamic_events', is: 'f:fprobes/vfs_write__exit vfs_write%return\n' },
      { w: 'dynamic_events', d: '' },
      { r: 'dynamic_events', is: '' },
      { w: 'error_log', d: '' },
      { r: 'error_log', is: '' },
    ],
  ],
  [
    'instances have their own tracer and buffer',
    [
      { mkdir: 'instances/foo' },
      { mkdir: 'instances/foo', err: 'EEXIST' },
      { mkdir: 'trace', err: 'EPERM' },
      { w: 'instances/foo/set_ftrace_filter', d: 'vfs_write' },
      { w: 'instances/foo/current_tracer', d: 'function' },
      { r: 'current_tracer', is: 'nop\n' },
      { r: 'instances/foo/enabled_functions', err: 'ENOENT' },
      { run: 'syscalls' },
      { r: 'instances/foo/trace', has: ': vfs_write <-', lacks: ': vfs_read <-' },
      { r: 'trace', has: 'entries-in-buffer/entries-written: 0/0' },
      { rmdir: 'instances/foo' },
      { rmdir: 'instances/foo', err: 'ENOENT' },
      { r: 'enabled_functions', is: '' },
    ],
  ],
];

describe('tracefs', () => {
  it.each(cases)('%s', (_name, steps) => play(steps));

  it('lists the top directory, options and instances', () => {
    const e = Engine.create() as Engine;
    const top = e.tracefs.list() as string[];
    for (const f of [
      'available_filter_functions',
      'current_tracer',
      'instances',
      'options',
      'trace_pipe',
    ])
      expect(top).toContain(f);
    expect(e.tracefs.list('options')).toContain('funcgraph-proc');
    expect(e.tracefs.mkdir('instances/b')).toBeNull();
    expect(e.tracefs.mkdir('instances/a')).toBeNull();
    expect(e.tracefs.list('instances')).toEqual(['a', 'b']);
    expect(e.tracefs.list('instances/a')).not.toContain('enabled_functions');
    expect((e.tracefs.list('trace') as TracelabError).code).toBe('EINVAL');
    expect((e.tracefs.list('nope') as TracelabError).code).toBe('ENOENT');
  });
});

describe('events/ of fprobe events', () => {
  function engine(): Engine {
    const e = Engine.create({ arch: 'x86_64', cpus: 2, seed: 5 });
    if (e instanceof TracelabError) throw e;
    return e;
  }
  const ok = <T>(v: T | TracelabError): T => {
    if (v instanceof TracelabError) throw v;
    return v;
  };

  it('lists groups, events and their files, and prints format as the kernel does', () => {
    const fs = engine().tracefs;
    expect(fs.list('events')).toEqual(['enable']);
    ok(fs.write('dynamic_events', 'f vfs_read count=$arg3:u32'));
    ok(
      fs.write(
        'dynamic_events',
        'f:my/rd vfs_read%return r=$retval:s32 c=$comm m=+0($stack):u8[2]',
        {
          append: true,
        },
      ),
    );
    expect(fs.list('events')).toEqual(['enable', 'fprobes', 'my']);
    expect(fs.list('events/fprobes')).toEqual(['enable', 'filter', 'vfs_read__entry']);
    expect(fs.list('events/my/rd')).toEqual(['enable', 'filter', 'format', 'id']);
    expect(fs.list('instances')).toEqual([]);
    expect(fs.read('events/fprobes/vfs_read__entry/id')).toBe('21\n');
    const common =
      '\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n' +
      '\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n' +
      '\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n' +
      '\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n';
    expect(fs.read('events/fprobes/vfs_read__entry/format')).toBe(
      'name: vfs_read__entry\nID: 21\nformat:\n' +
        common +
        '\tfield:unsigned long __probe_ip;\toffset:8;\tsize:8;\tsigned:0;\n' +
        '\tfield:u32 count;\toffset:16;\tsize:4;\tsigned:0;\n' +
        '\nprint fmt: "(%lx) count=%u", REC->__probe_ip, REC->count\n',
    );
    expect(fs.read('events/my/rd/format')).toBe(
      'name: rd\nID: 22\nformat:\n' +
        common +
        '\tfield:unsigned long __probe_func;\toffset:8;\tsize:8;\tsigned:0;\n' +
        '\tfield:unsigned long __probe_ret_ip;\toffset:16;\tsize:8;\tsigned:0;\n' +
        '\tfield:s32 r;\toffset:24;\tsize:4;\tsigned:1;\n' +
        '\tfield:__data_loc char[] c;\toffset:28;\tsize:4;\tsigned:1;\n' +
        '\tfield:u8 m[];\toffset:32;\tsize:2;\tsigned:0;\n' +
        '\nprint fmt: "(%lx <- %lx) r=%d c=\\"%s\\" m={%u,%u}", REC->__probe_func, ' +
        'REC->__probe_ret_ip, REC->r, __get_str(c), REC->m[0], REC->m[1]\n',
    );
  });

  it('answers bad paths and values with the kernel errno', () => {
    const fs = engine().tracefs;
    ok(fs.write('dynamic_events', 'f vfs_read'));
    expect((fs.read('events/fprobes') as TracelabError).code).toBe('EINVAL');
    expect((fs.read('events/nope/enable') as TracelabError).code).toBe('ENOENT');
    expect((fs.read('events/fprobes/vfs_read__entry/trigger') as TracelabError).code).toBe(
      'ENOENT',
    );
    expect((fs.list('events/fprobes/enable') as TracelabError).code).toBe('EINVAL');
    expect((fs.write('events/fprobes/vfs_read__entry/enable', '2') as TracelabError).code).toBe(
      'EINVAL',
    );
    expect((fs.write('events/enable', 'on') as TracelabError).code).toBe('EINVAL');
    expect((fs.write('events/fprobes/vfs_read__entry/format', '1') as TracelabError).code).toBe(
      'EACCES',
    );
  });

  it('writes enabled events into the trace buffer, printed as print_fentry/fexit_event', () => {
    const e = engine();
    const fs = e.tracefs;
    ok(fs.write('dynamic_events', 'f vfs_read count=$arg3:u32\nf vfs_read%return r=$retval:u32'));
    expect(fs.read('events/enable')).toBe('0\n');
    ok(fs.write('events/fprobes/vfs_read__entry/enable', '1'));
    expect(fs.read('events/fprobes/enable')).toBe('X\n');
    ok(fs.write('events/fprobes/enable', '1'));
    expect(fs.read('events/enable')).toBe('1\n');
    ok(e.run('syscalls'));
    const trace = ok(fs.read('trace'));
    const size = e.kernel.image.functions[e.kernel.image.indexOf('vfs_read')]?.size ?? 0;
    const lines = trace.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    // The syscalls workload: bash reads 128 bytes from fd 0, cat 4096 from fd 3, in turns.
    const fn = `vfs_read+0x0/0x${size.toString(16)}`;
    const ret = /^ksys_read\+0x[0-9a-f]+\/0x[0-9a-f]+$/;
    const parsed = lines.map((l) =>
      /^ +(\S+) +\[\d{3}\] \.{5} +\d+\.\d{6}: (\w+): \((\S+)(?: <- (\w+))?\) (\w+=\d+)$/
        .exec(l)
        ?.slice(1),
    );
    expect(parsed.slice(0, 6)).toEqual([
      ['bash-1977', 'vfs_read__entry', fn, undefined, 'count=128'],
      ['bash-1977', 'vfs_read__exit', expect.stringMatching(ret), 'vfs_read', 'r=128'],
      ['bash-1977', 'vfs_read__entry', fn, undefined, 'count=128'],
      ['bash-1977', 'vfs_read__exit', expect.stringMatching(ret), 'vfs_read', 'r=128'],
      ['cat-2001', 'vfs_read__entry', fn, undefined, 'count=4096'],
      ['cat-2001', 'vfs_read__exit', expect.stringMatching(ret), 'vfs_read', 'r=4096'],
    ]);
    expect(parsed.every((p) => p !== undefined)).toBe(true);
    const n = lines.length;
    expect(lines.filter((l) => l.includes('vfs_read__exit')).length * 2).toBe(n);
    expect(trace).toMatch(
      new RegExp(`^# tracer: nop\n#\n# entries-in-buffer/entries-written: ${n}/${n} +#P:2\n`),
    );
    // trace_pipe takes them; trace then shows none.
    expect(
      ok(fs.read('trace_pipe'))
        .split('\n')
        .filter((l) => l !== ''),
    ).toEqual(lines);
    // Read entries leave the counts (entries held + overwritten), as in the kernel.
    expect(ok(fs.read('trace'))).toContain('entries-in-buffer/entries-written: 0/0');
    // Deleting an enabled event is EBUSY, as is clearing dynamic_events.
    expect(
      (fs.write('dynamic_events', '-:fprobes/vfs_read__exit', { append: true }) as TracelabError)
        .code,
    ).toBe('EBUSY');
    expect((fs.write('dynamic_events', '') as TracelabError).code).toBe('EBUSY');
    ok(fs.write('events/enable', '0'));
    expect(fs.read('enabled_functions')).toBe('');
    ok(fs.write('dynamic_events', '-:fprobes/vfs_read__exit', { append: true }));
    expect(fs.read('dynamic_events')).toBe('f:fprobes/vfs_read__entry vfs_read count=$arg3:u32\n');
  });

  it('interleaves event entries with function entries by time', () => {
    const e = engine();
    const fs = e.tracefs;
    ok(fs.write('dynamic_events', 'f ksys_read fd=$arg1:u32'));
    ok(fs.write('set_ftrace_filter', 'ksys_read vfs_read'));
    ok(fs.write('current_tracer', 'function'));
    ok(fs.write('events/enable', '1'));
    ok(e.run('syscalls'));
    const body = ok(fs.read('trace'))
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('#'))
      .map((l) => l.slice(l.indexOf(': ') + 2));
    // Each read: the function entry of ksys_read, the event at the same entry, then vfs_read.
    expect(body.slice(0, 3)).toEqual([
      expect.stringMatching(/^ksys_read <-/),
      expect.stringMatching(/^ksys_read__entry: \(ksys_read\+0x0\/0x[0-9a-f]+\) fd=0$/),
      expect.stringMatching(/^vfs_read <-ksys_read$/),
    ]);
    expect(body.filter((l) => l.startsWith('ksys_read__entry')).length).toBe(
      body.filter((l) => l.startsWith('ksys_read <-')).length,
    );
  });

  it('prints enabled events under function_graph as comments at the depth of the call they probe', () => {
    const e = Engine.create({ arch: 'x86_64', cpus: 1, seed: 5 });
    if (e instanceof TracelabError) throw e;
    const fs = e.tracefs;
    ok(fs.write('dynamic_events', 'f vfs_read count=$arg3:u32\nf vfs_read%return r=$retval:u32'));
    ok(fs.write('set_graph_function', 'ksys_read'));
    ok(fs.write('current_tracer', 'function_graph'));
    ok(fs.write('events/enable', '1'));
    ok(
      e.run({
        name: 'one-read',
        tasks: [
          {
            comm: 'cat',
            pid: 2001,
            calls: [
              {
                fn: 'ksys_read',
                args: [3, '0x7ffd0000', 4096],
                cost: 100,
                ret: 4096,
                calls: [
                  {
                    fn: 'vfs_read',
                    args: [0, '0x7ffd0000', 4096, 0],
                    cost: 200,
                    ret: 4096,
                    calls: [{ fn: 'fsnotify_access', cost: 20 }],
                  },
                ],
              },
            ],
          },
        ],
      }),
    );
    const image = e.kernel.image;
    const size = (fn: string) => (image.functions[image.indexOf(fn)]?.size ?? 0).toString(16);
    const trace = ok(fs.read('trace'));
    // print_graph_comment: the duration column filled, then (depth + 1) * 2 spaces for the
    // depth the last line left (vfs_read's, 1), then the event's own text in /* */.
    const body = trace.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    expect(body).toEqual([
      ' 0)               |  ksys_read() {',
      ' 0)               |    vfs_read() {',
      ` 0)               |      /* vfs_read__entry: (vfs_read+0x0/0x${size('vfs_read')}) count=4096 */`,
      ' 0)   0.020 us    |      fsnotify_access();',
      expect.stringMatching(
        new RegExp(
          `^ 0\\) {15}\\| {6}/\\* vfs_read__exit: \\(ksys_read\\+0x[0-9a-f]+/0x${size('ksys_read')} <- vfs_read\\) r=4096 \\*/$`,
        ),
      ),
      ' 0)   0.220 us    |    }',
      ' 0)   0.320 us    |  }',
    ]);
    // trace_pipe takes the comments with the graph's lines.
    expect(
      ok(fs.read('trace_pipe'))
        .split('\n')
        .filter((l) => l !== ''),
    ).toEqual(body);
    expect(ok(fs.read('trace'))).not.toContain('/*');
  });

  it('filters events per instance through events/GROUP/EVENT/filter, as trace_events_filter.c', () => {
    const e = engine();
    const fs = e.tracefs;
    ok(fs.write('dynamic_events', 'f vfs_write n=$arg3:u32\nf vfs_read n=$arg3:u32 c=$comm'));
    const filter = 'events/fprobes/vfs_write__entry/filter';
    expect(fs.read(filter)).toBe('none\n');
    ok(fs.write(filter, 'n >= 80 && comm != "sshd"\n'));
    expect(fs.read(filter)).toBe('n >= 80 && comm != "sshd"\n');
    ok(fs.write('events/fprobes/enable', '1'));
    expect(fs.mkdir('instances/all')).toBeNull();
    ok(fs.write('instances/all/events/fprobes/vfs_write__entry/enable', '1'));
    expect(fs.read('instances/all/events/fprobes/vfs_write__entry/filter')).toBe('none\n');
    // bash writes 64 bytes 20 times, sshd 512 20 times, logger 80 10 times; bash and cat read.
    ok(e.run('syscalls'));
    const body = (path: string) =>
      ok(fs.read(path))
        .split('\n')
        .filter((l) => l !== '' && !l.startsWith('#'));
    const writes = body('trace').filter((l) => l.includes('vfs_write__entry'));
    expect(writes).toHaveLength(10);
    expect(writes.every((l) => /^ +logger-3003 .* n=80$/.test(l))).toBe(true);
    expect(body('trace').filter((l) => l.includes('vfs_read__entry'))).toHaveLength(40);
    expect(body('instances/all/trace')).toHaveLength(50);
    expect(ok(fs.read('trace'))).toContain('entries-in-buffer/entries-written: 50/50 ');

    // A failed write: EINVAL, the filter file shows where, error_log has it, nothing is filtered.
    const bad = fs.write(filter, 'n >= 80 && pid == 1');
    expect((bad as TracelabError).code).toBe('EINVAL');
    expect(fs.read(filter)).toBe(
      'n >= 80 && pid == 1\n               ^\nparse_error: Field not found\n\n',
    );
    expect(ok(fs.read('error_log'))).toMatch(
      /\] event filter parse error: error: Field not found\n {2}Command: n >= 80 && pid == 1\n {26}\^\n$/,
    );
    ok(fs.write('trace', ''));
    ok(e.run('syscalls'));
    expect(body('trace').filter((l) => l.includes('vfs_write__entry'))).toHaveLength(50);
    // The kernel's own codes for unbalanced parentheses and quotes.
    for (const [text, code] of [
      ['n == 1)', 'EPERM'],
      ['(n == 1', 'ENOENT'],
      ['comm == "x', 'ESRCH'],
      ['== 1', 'EPERM'],
      ['x'.repeat(4096), 'EINVAL'],
    ]) {
      expect((fs.write(filter, text as string) as TracelabError).code, text).toBe(code);
    }
    expect(fs.read(filter)).toBe('== 1\nError: (0)\n\n');

    // The group's filter: every event that has the fields takes it, the others show the failure.
    const group = 'events/fprobes/filter';
    expect(fs.read(group)).toMatch(/^### global filter ###\n/);
    ok(fs.write(group, 'c ~ "ca*"'));
    expect(fs.read(group)).toMatch(/^### global filter ###\n/);
    expect(fs.read('events/fprobes/vfs_read__entry/filter')).toBe('c ~ "ca*"\n');
    expect(fs.read(filter)).toBe(
      'c ~ "ca*"\n^\nparse_error: Couldn\'t find or set field in one of a subsystem\'s events\n\n',
    );
    ok(fs.write('trace', ''));
    ok(e.run('syscalls'));
    const reads = body('trace').filter((l) => l.includes('vfs_read__entry'));
    expect(reads).toHaveLength(20);
    expect(reads.every((l) => l.endsWith('n=4096 c="cat"'))).toBe(true);
    expect(body('trace').filter((l) => l.includes('vfs_write__entry'))).toHaveLength(50);
    ok(fs.write(group, '0'));
    expect(fs.read('events/fprobes/vfs_read__entry/filter')).toBe('none\n');
    expect(fs.read(filter)).toBe('none\n');
  });

  it('keeps each instance its own events: enable, buffer, and rmdir disables them', () => {
    const e = engine();
    const fs = e.tracefs;
    ok(fs.write('dynamic_events', 'f vfs_write n=$arg3:u32'));
    expect(fs.mkdir('instances/foo')).toBeNull();
    expect(fs.list('instances/foo/events')).toEqual(['enable', 'fprobes']);
    ok(fs.write('instances/foo/events/fprobes/vfs_write__entry/enable', '1'));
    expect(fs.read('events/fprobes/vfs_write__entry/enable')).toBe('0\n');
    ok(e.run('syscalls'));
    expect(ok(fs.read('instances/foo/trace'))).toMatch(
      /vfs_write__entry: \(vfs_write\+0x0\/0x[0-9a-f]+\) n=64\n/,
    );
    expect(ok(fs.read('trace'))).not.toContain('vfs_write__entry');
    expect((fs.write('dynamic_events', '') as TracelabError).code).toBe('EBUSY');
    expect(fs.rmdir('instances/foo')).toBeNull();
    ok(fs.write('dynamic_events', ''));
    expect(fs.read('dynamic_events')).toBe('');
  });
});
