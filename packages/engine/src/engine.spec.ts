import { archInfo } from '@tracelab/arch-isa';
import { TracelabError } from '@tracelab/contracts';
import {
  BPF_MAP_TYPE_ARRAY,
  BPF_MAP_TYPE_HASH,
  BPF_PSEUDO_MAP_FD,
  assemble,
  VmError,
  type Insn,
} from '@tracelab/vm';
import { describe, expect, it } from 'vitest';
import { BpfLoadError } from './bpf.js';
import { Engine } from './engine.js';
import { engine, fixture, ok } from '../test/helpers.js';

function le64(n: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, n, true);
  return b;
}

describe('Engine', () => {
  it('runs a built-in workload to completion, the same way for the same seed', () => {
    const traces = [1, 2].map(() => {
      const e = engine();
      ok(e.tracefs.write('current_tracer', 'function'));
      const r = ok(e.run('syscalls'));
      expect(r.fault).toBeNull();
      expect(r.calls).toBeGreaterThan(0);
      return ok(e.tracefs.read('trace'));
    });
    expect(traces[0]).toBe(traces[1]);
    expect(traces[0]).toContain('vfs_read');
  });

  it('runs a workload again on the tasks it created before', () => {
    const e = engine();
    ok(e.run('syscalls'));
    const again = ok(e.run('syscalls'));
    expect(again.fault).toBeNull();
    expect(e.generation).toBe(2);
  });

  it('keeps two engines on separate images', () => {
    const a = engine();
    const b = engine();
    ok(a.tracefs.write('current_tracer', 'function'));
    expect(ok(a.tracefs.read('enabled_functions'))).not.toBe('');
    expect(ok(b.tracefs.read('enabled_functions'))).toBe('');
  });

  it('reports an unknown built-in workload as ENOENT or EINVAL', () => {
    const r = engine().run('no-such-workload');
    expect(r).toBeInstanceOf(TracelabError);
  });
});

describe('bpf()', () => {
  it('creates, updates, looks up, iterates and deletes map elements with kernel errnos', () => {
    const e = engine();
    const fd = ok(
      e.bpf.mapCreate({ type: BPF_MAP_TYPE_HASH, keySize: 8, valueSize: 8, maxEntries: 4 }),
    );
    expect(fd).toBe(3);
    expect(e.bpf.mapUpdate(fd, le64(1n), le64(10n))).toBeNull();
    expect(e.bpf.mapUpdate(fd, le64(2n), le64(20n))).toBeNull();
    expect((e.bpf.mapUpdate(fd, le64(1n), le64(11n), 1) as TracelabError).code).toBe('EEXIST');
    expect(ok(e.bpf.mapLookup(fd, le64(2n)))).toEqual(le64(20n));
    expect(ok(e.bpf.mapEntries(fd)).length).toBe(2);
    expect(e.bpf.mapDelete(fd, le64(2n))).toBeNull();
    expect((e.bpf.mapLookup(fd, le64(2n)) as TracelabError).code).toBe('ENOENT');
    expect((e.bpf.mapLookup(99, le64(2n)) as TracelabError).code).toBe('EBADF');
  });

  it('rejects a program with the verifier errno and log, and loads a good one', () => {
    const e = engine();
    const map = ok(
      e.bpf.mapCreate({ type: BPF_MAP_TYPE_HASH, keySize: 8, valueSize: 8, maxEntries: 4 }),
    );
    const bad = withMapFd(
      `r1 = 0\n*(u64 *)(r10 - 8) = r1\nr2 = r10\nr2 += -8\nr1 = ${map} ll\ncall 1\nr0 = *(u64 *)(r0 + 0)\nexit`,
    );
    const rejected = e.bpf.progLoad({ insns: bad, progType: 'kprobe' });
    expect(rejected).toBeInstanceOf(TracelabError);
    expect((rejected as TracelabError).code).toBe('EACCES');
    expect('log' in rejected && rejected.log).toContain("invalid mem access 'map_value_or_null'");
    const good = assemble('r0 = 0\nexit');
    if (good instanceof VmError) throw good;
    const loaded = ok(e.bpf.progLoad({ insns: good, progType: 'kprobe' }));
    expect(loaded.fd).toBe(4);
  });

  it('loads the chosen programs of a clang object with its maps', () => {
    const e = engine();
    const obj = ok(e.bpf.loadObject(fixture('counts.bpfel.o'), { programs: ['count_kprobe'] }));
    expect(obj.programs.map((p) => [p.name, p.progType, p.attachTarget])).toEqual([
      ['count_kprobe', 'kprobe', 'do_sys_openat2'],
    ]);
    expect(ok(e.bpf.map(obj.maps.get('calls') ?? -1)).attr.maxEntries).toBe(1024);
  });

  it("attaches an object's fentry/fexit programs by their section names (latency histogram)", () => {
    const e = engine();
    const obj = ok(e.bpf.loadObject(fixture('latency.bpfel.o')));
    for (const p of obj.programs) ok(e.bpf.attachBySection(p.fd));
    ok(e.tracefs.write('set_ftrace_filter', 'vfs_read'));
    ok(e.tracefs.write('current_tracer', 'function'));
    ok(e.run('syscalls'));
    const reads = ok(e.tracefs.read('trace'))
      .split('\n')
      .filter((l) => / vfs_read <-/.test(l)).length;
    expect(reads).toBeGreaterThan(0);
    const zero = new Uint8Array(4);
    // .data: `samples` starts at 7 and fexit adds one per completed vfs_read
    const data = ok(e.bpf.mapLookup(obj.maps.get('.data') ?? -1, zero));
    expect(new DataView(data.buffer, data.byteOffset).getBigUint64(0, true)).toBe(
      7n + BigInt(reads),
    );
    // .bss: the 26-slot histogram holds one count per call
    const bss = ok(e.bpf.mapLookup(obj.maps.get('.bss') ?? -1, zero));
    const dv = new DataView(bss.buffer, bss.byteOffset);
    let total = 0;
    for (let slot = 0; slot < 26; slot++) total += dv.getUint32(slot * 4, true);
    expect(total).toBe(reads);
  });

  it('kprobe_multi needs 64-bit addresses: i386 says EOPNOTSUPP, as bpf_kprobe_multi_link_attach does', () => {
    const e = Engine.create({ arch: 'i386', cpus: 2, seed: 3 });
    if (e instanceof TracelabError) throw e;
    const bare = assemble('r0 = 0\nexit');
    if (bare instanceof VmError) throw bare;
    const p = ok(e.bpf.progLoad({ insns: bare, progType: 'kprobe' }));
    const r = e.bpf.linkCreate(p.fd, { attachType: 'kprobe_multi', syms: ['vfs_read'] });
    expect((r as TracelabError).code).toBe('EOPNOTSUPP');
  });

  it('a kprobe_multi counting program counts the same compiled to JavaScript (jit)', () => {
    const counts = [false, true].map((jit) => {
      const e = Engine.create({ arch: 'x86_64', cpus: 2, seed: 3, jit });
      if (e instanceof TracelabError) throw e;
      const map = ok(
        e.bpf.mapCreate({ type: BPF_MAP_TYPE_ARRAY, keySize: 4, valueSize: 8, maxEntries: 1 }),
      );
      const prog = ok(e.bpf.progLoad({ insns: withMapFd(COUNT(map)), progType: 'kprobe' }));
      ok(e.bpf.linkCreate(prog.fd, { attachType: 'kprobe_multi', syms: ['vfs_read'] }));
      ok(e.tracefs.write('set_ftrace_filter', 'vfs_read'));
      ok(e.tracefs.write('current_tracer', 'function'));
      ok(e.run('syscalls'));
      const reads = ok(e.tracefs.read('trace'))
        .split('\n')
        .filter((l) => / vfs_read <-/.test(l)).length;
      const value = ok(e.bpf.mapLookup(map, new Uint8Array(4)));
      return [reads, new DataView(value.buffer, value.byteOffset).getBigUint64(0, true)];
    });
    expect(counts[0]?.[0]).toBeGreaterThan(0);
    expect(counts[0]?.[1]).toBe(BigInt(counts[0]?.[0] as number));
    expect(counts[1]).toEqual(counts[0]);
  });

  it('loads assembly text, and names the line of text that does not assemble', () => {
    const e = engine();
    expect(ok(e.bpf.progLoadText('r0 = 0\nexit', { progType: 'kprobe' })).fd).toBeGreaterThan(2);
    const bad = e.bpf.progLoadText('r0 = 0\nr0 +=\nexit', { progType: 'kprobe' });
    expect(bad).toBeInstanceOf(BpfLoadError);
    expect([(bad as BpfLoadError).code, (bad as BpfLoadError).log]).toEqual(['EINVAL', '']);
    expect((bad as BpfLoadError).message).toMatch(/line 2/);
  });

  it('refuses to attach a program whose section names no attach point', () => {
    const e = engine();
    const obj = ok(e.bpf.loadObject(fixture('minimal.bpfel.o')));
    const r = e.bpf.attachBySection(obj.programs[0]?.fd ?? -1);
    expect((r as TracelabError).code).toBe('EOPNOTSUPP');
    const bare = assemble('r0 = 0\nexit');
    if (bare instanceof VmError) throw bare;
    const p = ok(e.bpf.progLoad({ insns: bare, progType: 'kprobe' }));
    expect((e.bpf.attachBySection(p.fd) as TracelabError).code).toBe('EINVAL');
  });

  it('counts vfs_read calls through an fentry link until the link is closed', () => {
    const e = engine();
    const map = ok(
      e.bpf.mapCreate({ type: BPF_MAP_TYPE_ARRAY, keySize: 4, valueSize: 8, maxEntries: 1 }),
    );
    const prog = ok(
      e.bpf.progLoad({
        insns: withMapFd(COUNT(map)),
        progType: 'tracing',
        attachType: 'fentry',
        attachTarget: 'vfs_read',
      }),
    );
    const link = ok(e.bpf.linkCreate(prog.fd, { attachType: 'fentry' }));
    ok(e.tracefs.write('set_ftrace_filter', 'vfs_read'));
    ok(e.tracefs.write('current_tracer', 'function'));
    ok(e.run('syscalls'));
    const calls = ok(e.tracefs.read('trace'))
      .split('\n')
      .filter((l) => / vfs_read <-/.test(l));
    const count = (): bigint =>
      new DataView(ok(e.bpf.mapLookup(map, new Uint8Array(4))).buffer).getBigUint64(0, true);
    expect(count()).toBe(BigInt(calls.length));
    expect(count()).toBeGreaterThan(0n);
    const before = count();
    expect(e.bpf.close(link)).toBeNull();
    ok(e.run('syscalls'));
    expect(count()).toBe(before);
  });

  it('runs a kprobe program on every vfs_* call through a kprobe_multi link', () => {
    const e = engine();
    const map = ok(
      e.bpf.mapCreate({ type: BPF_MAP_TYPE_ARRAY, keySize: 4, valueSize: 8, maxEntries: 1 }),
    );
    const insns = withMapFd(COUNT(map));
    const prog = ok(e.bpf.progLoad({ insns, progType: 'kprobe' }));
    const link = ok(e.bpf.linkCreate(prog.fd, { attachType: 'kprobe_multi', pattern: 'vfs_*' }));
    // The function tracer on the same functions counts the calls the program should see.
    ok(e.tracefs.write('set_ftrace_filter', 'vfs_*'));
    ok(e.tracefs.write('current_tracer', 'function'));
    ok(e.run('syscalls'));
    const lines = ok(e.tracefs.read('trace'))
      .split('\n')
      .filter((l) => / vfs_\w+ <-/.test(l));
    const count = new DataView(ok(e.bpf.mapLookup(map, new Uint8Array(4))).buffer).getBigUint64(
      0,
      true,
    );
    expect(count).toBe(BigInt(lines.length));
    expect(count).toBeGreaterThan(0n);
    expect(e.bpf.close(link)).toBeNull();
    expect((e.bpf.close(link) as TracelabError).code).toBe('EBADF');
  });
});

describe('kprobe_multi context', () => {
  it('each run reads the pt_regs of its own call, and two links read the same registers', () => {
    const e = engine();
    const map = ok(
      e.bpf.mapCreate({ type: BPF_MAP_TYPE_ARRAY, keySize: 4, valueSize: 8, maxEntries: 4 }),
    );
    const pt = archInfo('x86_64').ptRegs;
    const off = (name: string): number => pt.fields[pt.index.get(name) as number]?.offset as number;
    // Adds regs->dx (count) and regs->bx (not saved by ftrace_caller: 0) into element `slot`.
    const SUM = (slot: number): Insn[] =>
      withMapFd(
        `r6 = *(u64 *)(r1 + ${off('dx')})\nr7 = *(u64 *)(r1 + ${off('bx')})\nr6 += r7\n` +
          `r1 = ${slot}\n*(u32 *)(r10 - 4) = r1\nr2 = r10\nr2 += -4\nr1 = ${map} ll\ncall 1\n` +
          `if r0 == 0 goto +1\nlock *(u64 *)(r0 + 0) += r6\nr0 = 0\nexit`,
      );
    for (const slot of [0, 1]) {
      const prog = ok(e.bpf.progLoad({ insns: SUM(slot), progType: 'kprobe' }));
      ok(e.bpf.linkCreate(prog.fd, { attachType: 'kprobe_multi', syms: ['vfs_read'] }));
    }
    const counts = [4096, 100, 7];
    ok(
      e.run({
        name: 'reads',
        tasks: [
          {
            comm: 'cat',
            calls: counts.map((c) => ({ fn: 'vfs_read', args: [3, 0, c, 0], cost: 10, ret: c })),
          },
        ],
      }),
    );
    for (const slot of [0, 1]) {
      const v = ok(e.bpf.mapLookup(map, Uint8Array.of(slot, 0, 0, 0)));
      expect(new DataView(v.buffer).getBigUint64(0, true)).toBe(4203n);
    }
  });
});

/** Adds one to element 0 of an array map. */
const COUNT = (map: number): string =>
  `r1 = 0\n*(u32 *)(r10 - 4) = r1\nr2 = r10\nr2 += -4\nr1 = ${map} ll\ncall 1\nif r0 == 0 goto +2\nr1 = 1\nlock *(u64 *)(r0 + 0) += r1\nr0 = 0\nexit`;

/** Assembles a program whose `rN = FD ll` loads a map by fd (BPF_PSEUDO_MAP_FD). */
function withMapFd(text: string): Insn[] {
  const insns = assemble(text);
  if (insns instanceof VmError) throw insns;
  return insns.map((i) => (i.code === 0x18 && i.imm > 0 ? { ...i, src: BPF_PSEUDO_MAP_FD } : i));
}
