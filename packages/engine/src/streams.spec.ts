import { TraceEventBatchSchema, TracelabError, type TraceEvent } from '@tracelab/contracts';
import {
  assemble,
  BPF_MAP_TYPE_PERF_EVENT_ARRAY,
  BPF_MAP_TYPE_RINGBUF,
  BPF_PSEUDO_MAP_FD,
  VmError,
  type Insn,
} from '@tracelab/vm';
import { describe, expect, it } from 'vitest';
import { Engine } from './engine.js';
import type { StreamBatch, StreamReader } from './streams.js';
import { ok } from '../test/helpers.js';

function engine(cpus = 2): Engine {
  const e = Engine.create({ arch: 'x86_64', cpus, seed: 5 });
  if (e instanceof TracelabError) throw e;
  return e;
}

/** Checks a stream's batches against the wire schema and each other: sizes, seqs without holes. */
function checkBatches(stream: string, batches: readonly StreamBatch[], max: number, from = 0) {
  let seq = from;
  for (const b of batches) {
    TraceEventBatchSchema.parse({ agentId: 'agent-1', stream, ...b });
    expect(b.firstSeq).toBe(seq);
    expect(b.events.length).toBeLessThanOrEqual(max);
    seq += b.events.length;
  }
  return seq;
}

async function collect(reader: StreamReader): Promise<StreamBatch[]> {
  const out: StreamBatch[] = [];
  for await (const b of reader) out.push(b);
  return out;
}

const events = (batches: readonly StreamBatch[]): TraceEvent[] => batches.flatMap((b) => b.events);
const lost = (batches: readonly StreamBatch[]): number => batches.reduce((s, b) => s + b.lost, 0);

/** The entry lines of a function tracer's `trace` file. */
function traceLines(text: string) {
  return text
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const m = /^\s*(.+)-(\d+)\s+\[(\d+)\] \S{5}\s+(\d+)\.(\d{6}): (\S+)(?: <-(\S+))?$/.exec(l);
      if (m === null) throw new Error(`not an entry line: ${l}`);
      return {
        comm: m[1],
        pid: Number(m[2]),
        cpu: Number(m[3]),
        usec: Number(m[4]) * 1e6 + Number(m[5]),
        func: m[6],
        parent: m[7] ?? '',
      };
    });
}

describe('engine.streams: trace and trace_pipe', () => {
  it('yields exactly the entries `trace` shows, in order, in numbered batches', async () => {
    const e = engine();
    ok(e.tracefs.write('set_ftrace_filter', 'vfs_* ksys_*'));
    ok(e.tracefs.write('current_tracer', 'function'));
    const reader = ok(e.streams.open('trace', { batchEvents: 50 }));
    ok(e.run('syscalls', { seed: 11 }));
    const expected = traceLines(ok(e.tracefs.read('trace')));
    e.close();
    const batches = await collect(reader);
    expect(batches.length).toBeGreaterThan(1);
    expect(checkBatches('trace', batches, 50)).toBe(expected.length);
    expect(lost(batches)).toBe(0);
    const got = events(batches).map((ev) => {
      if (ev.type !== 'function') throw new Error(`unexpected ${ev.type}`);
      // The u64 addresses name the same functions the text does.
      expect(e.kernel.image.lookup(BigInt(ev.ip))?.fn.name).toBe(ev.func);
      return {
        comm: ev.comm,
        pid: ev.pid,
        cpu: ev.cpu,
        usec: Math.floor(ev.ts / 1000),
        func: ev.func,
        parent: ev.parent,
      };
    });
    expect(got).toEqual(expected);
    expect(got.some((g) => g.func === 'vfs_read')).toBe(true);
  });

  it('reads each entry once across runs, and trace_pipe consumes what it reads', () => {
    const e = engine();
    ok(e.tracefs.write('set_ftrace_filter', 'vfs_read'));
    ok(e.tracefs.write('current_tracer', 'function'));
    ok(e.run('syscalls'));
    const first = ok(e.streams.drain('trace'));
    ok(e.run('syscalls'));
    const second = ok(e.streams.drain('trace'));
    const all = traceLines(ok(e.tracefs.read('trace')));
    expect(events(first).length + events(second).length).toBe(all.length);
    expect(checkBatches('trace', [...first, ...second], 1024)).toBe(all.length);
    expect(ok(e.streams.drain('trace'))).toEqual([]);

    const piped = ok(e.streams.drain('trace_pipe'));
    expect(events(piped).length).toBe(all.length);
    expect(ok(e.tracefs.read('trace_pipe'))).toBe('');
    // The trace file is empty now; the trace stream has nothing new and lost nothing.
    expect(traceLines(ok(e.tracefs.read('trace')))).toEqual([]);
    expect(ok(e.streams.drain('trace'))).toEqual([]);
  });

  it('counts overwritten entries as lost: kept plus lost is what was written', () => {
    const workload = (e: Engine, kind: 'trace' | 'trace_pipe'): StreamBatch[][] => {
      ok(e.tracefs.write('current_tracer', 'function'));
      return [3, 4].map((seed) => {
        ok(e.run('syscalls', { seed }));
        return ok(e.streams.drain(kind));
      });
    };
    // The same seeded runs with a buffer large enough to keep everything.
    const big = workload(engine(), 'trace_pipe');
    expect(lost(big.flat())).toBe(0);
    for (const kind of ['trace', 'trace_pipe'] as const) {
      const tiny = engine();
      ok(tiny.tracefs.write('buffer_size_kb', '1'));
      const runs = workload(tiny, kind);
      checkBatches(kind, runs.flat(), 1024);
      runs.forEach((batches, k) => {
        const written = events(big[k] ?? []).length;
        expect(lost(batches)).toBeGreaterThan(0);
        expect(events(batches).length + lost(batches)).toBe(written);
        // 32-byte entries: one KiB keeps the newest 32 of each CPU.
        expect(events(batches).length).toBeLessThanOrEqual(2 * 32);
      });
    }
  });

  it('a trace stream reading beside trace_pipe skips what the pipe took and loses only overruns', () => {
    const e = engine();
    ok(e.tracefs.write('buffer_size_kb', '1'));
    ok(e.tracefs.write('current_tracer', 'function'));
    let traceTotal = 0;
    let pipeTotal = 0;
    let traceSeq = 0;
    let pipeSeq = 0;
    for (const seed of [1, 2, 3]) {
      ok(e.run('syscalls', { seed }));
      const written = Number(/entries-written: \d+\/(\d+)/.exec(ok(e.tracefs.read('trace')))?.[1]);
      const t = ok(e.streams.drain('trace'));
      const p = ok(e.streams.drain('trace_pipe'));
      traceSeq = checkBatches('trace', t, 1024, traceSeq);
      pipeSeq = checkBatches('trace_pipe', p, 1024, pipeSeq);
      traceTotal += events(t).length + lost(t);
      pipeTotal += events(p).length + lost(p);
      expect(events(t).map((x) => x.ts)).toEqual(events(p).map((x) => x.ts));
      expect(traceTotal).toBe(pipeTotal);
      // Before the first consume the header's written count is the whole run.
      if (seed === 1) expect(traceTotal).toBe(written);
    }
  });

  it('a trace stream does not count entries trace_pipe took before it read them as lost', () => {
    const e = engine();
    ok(e.tracefs.write('set_ftrace_filter', 'vfs_read'));
    ok(e.tracefs.write('current_tracer', 'function'));
    ok(e.run('syscalls', { seed: 1 }));
    expect(events(ok(e.streams.drain('trace_pipe'))).length).toBeGreaterThan(0);
    ok(e.run('syscalls', { seed: 2 }));
    const t = ok(e.streams.drain('trace'));
    expect(lost(t)).toBe(0);
    expect(events(t)).toEqual(events(ok(e.streams.drain('trace_pipe'))));
    ok(e.tracefs.read('trace_pipe'));
    ok(e.run('syscalls', { seed: 3 }));
    // The trace_pipe file consumes too.
    ok(e.tracefs.read('trace_pipe'));
    expect(ok(e.streams.drain('trace'))).toEqual([]);
  });

  it('streams function_graph entries and exits that pair up like the trace file', () => {
    const e = engine();
    ok(e.tracefs.write('set_graph_function', 'ksys_read'));
    ok(e.tracefs.write('current_tracer', 'function_graph'));
    ok(e.run('syscalls'));
    const text = ok(e.tracefs.read('trace'));
    const batches = ok(e.streams.drain('trace', { batchEvents: 64 }));
    checkBatches('trace', batches, 64);
    const evs = events(batches);
    const entries = evs.filter((x) => x.type === 'funcgraph_entry');
    expect(entries.length).toBeGreaterThan(0);
    expect(evs.length).toBe(2 * entries.length);
    const roots = entries.filter((x) => x.func === 'ksys_read');
    expect(roots.length).toBe(text.split('\n').filter((l) => / ksys_read\(\) \{$/.test(l)).length);
    // Per CPU, every exit closes the innermost open entry.
    for (const cpu of [0, 1]) {
      const open: string[] = [];
      for (const x of evs.filter((y) => y.cpu === cpu)) {
        if (x.type === 'funcgraph_entry') {
          expect(x.depth).toBe(open.length + (roots.length > 0 ? (roots[0]?.depth ?? 0) : 0));
          open.push(x.func);
        } else if (x.type === 'funcgraph_exit') {
          expect(open.pop()).toBe(x.func);
          expect(x.calltime).toBeLessThanOrEqual(x.ts);
        }
      }
      expect(open).toEqual([]);
    }
    // trace_pipe takes the same events and empties the buffers.
    const piped = events(ok(e.streams.drain('trace_pipe')));
    expect(piped).toEqual(evs);
    expect(ok(e.tracefs.read('trace'))).not.toContain('ksys_read');
  });
});

/** Assembles a program whose `rN = FD ll` loads a map by fd (BPF_PSEUDO_MAP_FD). */
function withMapFd(text: string): Insn[] {
  const insns = assemble(text);
  if (insns instanceof VmError) throw insns;
  return insns.map((i) => (i.code === 0x18 && i.imm > 0 ? { ...i, src: BPF_PSEUDO_MAP_FD } : i));
}

/** An fentry program on vfs_read, linked, with the function tracer counting vfs_read too. */
function fentry(e: Engine, text: string): void {
  const prog = ok(
    e.bpf.progLoad({
      insns: withMapFd(text),
      progType: 'tracing',
      attachType: 'fentry',
      attachTarget: 'vfs_read',
    }),
  );
  ok(e.bpf.linkCreate(prog.fd, { attachType: 'fentry' }));
  ok(e.tracefs.write('set_ftrace_filter', 'vfs_read'));
  ok(e.tracefs.write('current_tracer', 'function'));
}

/** vfs_read entries of the function tracer (consumed), by pid. */
function vfsReads(e: Engine): number[] {
  return events(ok(e.streams.drain('trace_pipe'))).map((x) => x.pid);
}

/** Submits the current pid_tgid (8 bytes) to a ring buffer. */
const RINGBUF_PID = (map: number): string =>
  `call 14\n*(u64 *)(r10 - 8) = r0\nr1 = ${map} ll\nr2 = r10\nr2 += -8\nr3 = 8\nr4 = 0\ncall 130\nr0 = 0\nexit`;

const pidOf = (ev: TraceEvent): number => {
  if (ev.type !== 'record') throw new Error(`unexpected ${ev.type}`);
  const b = Buffer.from(ev.base64, 'base64');
  expect(b.length).toBe(8);
  return b.readUInt32LE(0);
};

describe('engine.streams: BPF output', () => {
  it('delivers ringbuf samples of a loaded program as records', async () => {
    const e = engine();
    const map = ok(
      e.bpf.mapCreate({
        type: BPF_MAP_TYPE_RINGBUF,
        keySize: 0,
        valueSize: 0,
        maxEntries: 1 << 16,
      }),
    );
    fentry(e, RINGBUF_PID(map));
    const reader = ok(e.streams.open('ringbuf', { batchEvents: 7 }));
    const pending = reader.next();
    ok(e.run('syscalls'));
    const first = await pending;
    expect(first.done).toBe(false);
    const reads = vfsReads(e);
    expect(reads.length).toBeGreaterThan(7);
    e.close();
    const batches = [first.value as StreamBatch, ...(await collect(reader))];
    expect(checkBatches('ringbuf', batches, 7)).toBe(reads.length);
    expect(lost(batches)).toBe(0);
    expect(events(batches).map(pidOf)).toEqual(reads);
  });

  it('counts samples a full ring buffer refused as lost', () => {
    const e = engine();
    const map = ok(
      e.bpf.mapCreate({ type: BPF_MAP_TYPE_RINGBUF, keySize: 0, valueSize: 0, maxEntries: 4096 }),
    );
    fentry(e, RINGBUF_PID(map));
    let calls = 0;
    // 16 bytes a sample: the ring holds 256; keep running without reading until it overflowed.
    for (let seed = 1; calls <= 256; seed++) {
      ok(e.run('syscalls', { seed }));
      calls += vfsReads(e).length;
    }
    const batches = ok(e.streams.drain('ringbuf'));
    checkBatches('ringbuf', batches, 1024);
    expect(events(batches).length).toBe(256);
    expect(events(batches).length + lost(batches)).toBe(calls);
  });

  it('delivers perf event array records per CPU', () => {
    const e = engine();
    const map = ok(
      e.bpf.mapCreate({
        type: BPF_MAP_TYPE_PERF_EVENT_ARRAY,
        keySize: 4,
        valueSize: 4,
        maxEntries: 2,
      }),
    );
    fentry(
      e,
      `r6 = r1\ncall 14\n*(u64 *)(r10 - 8) = r0\nr1 = r6\nr2 = ${map} ll\nr3 = 0xffffffff ll\nr4 = r10\nr4 += -8\nr5 = 8\ncall 25\nr0 = 0\nexit`,
    );
    ok(e.run('syscalls'));
    const reads = events(ok(e.streams.drain('trace_pipe')));
    const batches = ok(e.streams.drain('perf'));
    checkBatches('perf', batches, 1024);
    const records = events(batches);
    expect(records.length).toBe(reads.length);
    for (const cpu of [0, 1]) {
      expect(records.filter((r) => r.cpu === cpu).map(pidOf)).toEqual(
        reads.filter((r) => r.cpu === cpu).map((r) => r.pid),
      );
    }
  });

  it('delivers bpf_trace_printk lines as text with the task that printed them', () => {
    const e = engine();
    // "hi!\0" on the stack
    fentry(
      e,
      'r1 = 0x216968\n*(u32 *)(r10 - 4) = r1\nr1 = r10\nr1 += -4\nr2 = 4\ncall 6\nr0 = 0\nexit',
    );
    ok(e.run('syscalls'));
    const reads = events(ok(e.streams.drain('trace_pipe')));
    const batches = ok(e.streams.drain('printk'));
    checkBatches('printk', batches, 1024);
    const lines = events(batches);
    expect(lines.map((l) => (l.type === 'text' ? l.text : ''))).toEqual(reads.map(() => 'hi!'));
    expect(lines.map((l) => [l.pid, l.comm, l.cpu])).toEqual(
      reads.map((r) => [r.pid, r.comm, r.cpu]),
    );
    expect(ok(e.streams.drain('printk'))).toEqual([]);
  });
});

describe('engine.streams: readers', () => {
  it('wakes a waiting reader after a run and ends it when the reader or the engine closes', async () => {
    const e = engine();
    ok(e.tracefs.write('set_ftrace_filter', 'vfs_read'));
    ok(e.tracefs.write('current_tracer', 'function'));
    const a = ok(e.streams.open('trace'));
    const b = ok(e.streams.open('trace'));
    const na = a.next();
    const nb = b.next();
    ok(e.run('syscalls'));
    const [ra, rb] = await Promise.all([na, nb]);
    // Both readers of one stream see the same batches.
    expect(ra.value).toEqual(rb.value);
    expect(ra.value?.firstSeq).toBe(0);
    a.close();
    expect(await a.next()).toEqual({ value: undefined, done: true });
    const waiting = b.next();
    e.close();
    expect(await waiting).toEqual({ value: undefined, done: true });
    expect((e.streams.open('trace') as TracelabError).code).toBe('ESHUTDOWN');
    expect((e.run('syscalls') as TracelabError).code).toBe('ESHUTDOWN');
  });

  it('ends readers when their stream is closed and numbers on for readers opened later', async () => {
    const e = engine();
    ok(e.tracefs.write('set_ftrace_filter', 'vfs_read'));
    ok(e.tracefs.write('current_tracer', 'function'));
    const a = ok(e.streams.open('trace_pipe'));
    ok(e.run('syscalls'));
    const first = (await a.next()).value as StreamBatch;
    expect(e.streams.close('trace_pipe')).toBeNull();
    expect((await a.next()).done).toBe(true);
    const b = ok(e.streams.open('trace_pipe'));
    ok(e.run('syscalls'));
    const second = (await b.next()).value as StreamBatch;
    expect(second.firstSeq).toBe(first.firstSeq + first.events.length);
  });

  it('reads an instance, and ends its readers when the instance is removed', async () => {
    const e = engine();
    ok(e.tracefs.mkdir('instances/foo'));
    ok(e.tracefs.write('instances/foo/set_ftrace_filter', 'vfs_read'));
    ok(e.tracefs.write('instances/foo/current_tracer', 'function'));
    const r = ok(e.streams.open('trace', { instance: 'foo' }));
    ok(e.run('syscalls'));
    const got = await r.next();
    expect(got.value?.events.every((x) => x.type === 'function' && x.func === 'vfs_read')).toBe(
      true,
    );
    expect(ok(e.streams.drain('trace'))).toEqual([]);
    ok(e.tracefs.rmdir('instances/foo'));
    expect((await r.next()).done).toBe(true);
  });

  it('refuses unknown streams, instances and batch sizes', () => {
    const e = engine();
    expect((e.streams.open('nope') as TracelabError).code).toBe('EINVAL');
    expect((e.streams.open('trace', { instance: 'x' }) as TracelabError).code).toBe('ENOENT');
    expect((e.streams.open('ringbuf', { instance: 'x' }) as TracelabError).code).toBe('EINVAL');
    expect((e.streams.open('trace', { batchEvents: 0 }) as TracelabError).code).toBe('EINVAL');
    expect((e.streams.drain('perf', { batchEvents: 65537 }) as TracelabError).code).toBe('EINVAL');
    expect(e.streams.drain('perf')).toEqual([]);
  });
});

describe('fprobe events on the trace streams', () => {
  it('carries enabled events as probe events, by time with the tracer entries, each once', () => {
    const e = engine();
    const fs = e.tracefs;
    ok(fs.write('dynamic_events', 'f ksys_read fd=$arg1:u32 buf=$arg2 s=$comm'));
    ok(fs.write('set_ftrace_filter', 'vfs_read'));
    ok(fs.write('current_tracer', 'function'));
    ok(fs.write('events/fprobes/ksys_read__entry/enable', '1'));
    ok(e.run('syscalls'));
    const batches = ok(e.streams.drain('trace'));
    checkBatches('trace', batches, 1024);
    const events = batches.flatMap((b) => b.events);
    const probes = events.filter((x) => x.type === 'probe');
    const fns = events.filter((x) => x.type === 'function');
    expect(probes.length).toBe(fns.length);
    const addr = e.kernel.image.functions[e.kernel.image.indexOf('ksys_read')]?.addr;
    // The workload's read(fd, buf, count): bash reads fd 0 into 0x7ffd0000.
    expect(probes[0]).toEqual({
      type: 'probe',
      ts: expect.any(Number),
      cpu: expect.any(Number),
      pid: 1977,
      comm: 'bash',
      event: 'ksys_read__entry',
      group: 'fprobes',
      ip: String(addr),
      fields: { fd: 0, buf: '0x7ffd0000', s: 'bash' },
    });
    // ksys_read's event comes before the vfs_read it calls; times never go back.
    expect(events.slice(0, 2).map((x) => x.type)).toEqual(['probe', 'function']);
    for (let i = 1; i < events.length; i++) {
      const [a, b] = [events[i - 1] as TraceEvent, events[i] as TraceEvent];
      expect(b.ts >= a.ts || b.cpu !== a.cpu).toBe(true);
    }
    expect(ok(e.streams.drain('trace'))).toEqual([]);
    // trace_pipe takes the same entries once.
    const piped = ok(e.streams.drain('trace_pipe')).flatMap((b) => b.events);
    expect(piped.filter((x) => x.type === 'probe')).toEqual(probes);
    expect(ok(e.streams.drain('trace_pipe'))).toEqual([]);
  });
});
