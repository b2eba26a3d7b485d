import { TracelabError } from '@tracelab/contracts';
import { describe, expect, it } from 'vitest';
import { Engine } from './engine.js';
import { engine, fixture, ok } from '../test/helpers.js';

/** Loads one program of a loader fixture and attaches it by its section name. */
function attach(e: Engine, object: string, program: string) {
  const obj = ok(e.bpf.loadObject(fixture(object), { programs: [program] }));
  const fd = obj.programs[0]?.fd ?? -1;
  return { obj, link: e.bpf.attachBySection(fd) };
}

describe('attachBySection: kprobe/FUNC and kretprobe/FUNC', () => {
  it('count every vfs_read entry and return through a one-symbol kprobe_multi link', () => {
    const e = engine();
    const obj = ok(
      e.bpf.loadObject(fixture('kprobes.bpfel.o'), {
        programs: ['read_entry', 'read_exit'],
      }),
    );
    for (const p of obj.programs) ok(e.bpf.attachBySection(p.fd));
    ok(e.tracefs.write('set_ftrace_filter', 'vfs_read'));
    ok(e.tracefs.write('current_tracer', 'function'));
    ok(e.run('syscalls'));
    const reads = ok(e.tracefs.read('trace'))
      .split('\n')
      .filter((l) => / vfs_read <-/.test(l)).length;
    expect(reads).toBeGreaterThan(0);
    const bss = ok(e.bpf.mapLookup(obj.maps.get('.bss') ?? -1, new Uint8Array(4)));
    const dv = new DataView(bss.buffer, bss.byteOffset);
    // entries, exits, and entries whose third argument (count) was non-zero.
    expect([dv.getBigUint64(0, true), dv.getBigUint64(8, true)]).toEqual([
      BigInt(reads),
      BigInt(reads),
    ]);
    expect(dv.getBigUint64(16, true)).toBeGreaterThan(0n);
  });

  it('detaches when the link is closed', () => {
    const e = engine();
    const { obj, link } = attach(e, 'kprobes.bpfel.o', 'read_entry');
    ok(e.bpf.close(ok(link)));
    ok(e.run('syscalls'));
    const bss = ok(e.bpf.mapLookup(obj.maps.get('.bss') ?? -1, new Uint8Array(4)));
    expect(new DataView(bss.buffer, bss.byteOffset).getBigUint64(0, true)).toBe(0n);
  });
});

// Sections that name no attach point the simulated kernel can fire, and why.
const refused: [string, string, string, string, RegExp][] = [
  [
    'raw_tp',
    'kprobes.bpfel.o',
    'on_switch',
    'EOPNOTSUPP',
    /section 'raw_tp\/sched_switch'.*no tracepoint call sites/,
  ],
  [
    'tp_btf',
    'ringbuf.bpfel.o',
    'on_exec',
    'EOPNOTSUPP',
    /section 'tp_btf\/sched_process_exec'.*no tracepoint call sites/,
  ],
  [
    'tracepoint',
    'legacy.bpfel.o',
    'on_openat',
    'EOPNOTSUPP',
    /section 'tracepoint\/syscalls\/sys_enter_openat'.*no tracepoint/,
  ],
  [
    'tp',
    'legacy.bpfel.o',
    'on_close',
    'EOPNOTSUPP',
    /section 'tp\/syscalls\/sys_enter_close'.*no tracepoint/,
  ],
  [
    'kprobe at an offset',
    'kprobes.bpfel.o',
    'read_inside',
    'EOPNOTSUPP',
    /kprobe\/vfs_read\+0x10'.*breakpoint kprobe/,
  ],
];

describe('attachBySection: refusals', () => {
  it.each(refused)('%s: %s %s -> %s', (_, object, program, code, message) => {
    const e = engine();
    const { link } = attach(e, object, program);
    expect(link).toBeInstanceOf(TracelabError);
    expect((link as TracelabError).code).toBe(code);
    expect((link as TracelabError).message).toMatch(message);
  });
});
