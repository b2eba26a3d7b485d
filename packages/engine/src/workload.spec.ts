import { TracelabError } from '@tracelab/contracts';
import { describe, expect, it } from 'vitest';
import { Engine } from './engine.js';
import { ok } from '../test/helpers.js';

function traced(): Engine {
  const e = Engine.create({ arch: 'x86_64', cpus: 2, seed: 3 });
  if (e instanceof TracelabError) throw e;
  for (const [file, data] of [
    ['set_ftrace_filter', 'vfs_read vfs_write'],
    ['current_tracer', 'function'],
  ]) {
    const r = e.tracefs.write(file as string, data as string);
    if (r instanceof TracelabError) throw r;
  }
  return e;
}

/** The trace's entries without the header (the header counts differ with nothing else). */
const entries = (e: Engine): string[] =>
  ok(e.tracefs.read('trace'))
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'));

describe('workloads started in the background', () => {
  it('give the same run as run(), call for call, a slice at a time', async () => {
    const whole = traced();
    const expected = ok(whole.run('syscalls', { seed: 9 }));
    const sliced = traced();
    let slices = 0;
    const running = ok(
      sliced.start('syscalls', { seed: 9, sliceCalls: 7, onSlice: () => slices++ }),
    );
    expect(sliced.running).toBe('syscalls');
    const result = await running.done;
    expect(result).toEqual(expected);
    expect(entries(sliced)).toEqual(entries(whole));
    // one call back per slice, the last when the run ends
    expect(slices).toBe(Math.ceil(expected.calls / 7) + (expected.calls % 7 === 0 ? 1 : 0));
    expect(sliced.running).toBeNull();
  });

  it('stop() halts between two calls; the engine then runs the next workload', async () => {
    const e = traced();
    const full = ok(traced().run('syscalls', { seed: 9 }));
    let slices = 0;
    const running = ok(
      e.start('syscalls', {
        seed: 9,
        sliceCalls: 5,
        onSlice: () => {
          if (++slices === 2) void running.stop();
        },
      }),
    );
    const result = await running.done;
    expect(result.stopped).toBe(true);
    expect(result.calls).toBe(10);
    expect(result.calls).toBeLessThan(full.calls);
    expect(e.running).toBeNull();
    expect(ok(e.run('syscalls', { seed: 9 })).calls).toBe(full.calls);
  });

  it('one workload at a time: run and start while one runs are EBUSY', async () => {
    const e = traced();
    const running = ok(e.start('syscalls', { sliceCalls: 3 }));
    expect((e.run('syscalls') as TracelabError).code).toBe('EBUSY');
    expect((e.start('syscalls') as TracelabError).code).toBe('EBUSY');
    await running.done;
    expect(e.run('syscalls')).not.toBeInstanceOf(TracelabError);
  });

  it('output streams see a started workload before it ends', async () => {
    const e = traced();
    const reader = ok(e.streams.open('trace', { batchEvents: 1 }));
    const running = ok(e.start('syscalls', { sliceCalls: 4 }));
    let ended = false;
    void running.done.then(() => (ended = true));
    const first = await reader[Symbol.asyncIterator]().next();
    expect(first.done).toBe(false);
    expect(ended).toBe(false);
    await running.stop();
    reader.close();
  });

  it('refuses a bad slice size and an unknown workload', () => {
    const e = traced();
    expect((e.start('syscalls', { sliceCalls: 0 }) as TracelabError).code).toBe('EINVAL');
    expect(e.start('no-such-workload')).toBeInstanceOf(TracelabError);
    expect(e.running).toBeNull();
  });
});
