import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { RingBuffer } from './ring-buffer.js';

function write(rb: RingBuffer, cpu: number, ts: number, v: number): boolean {
  const off = rb.reserve(cpu, ts);
  if (off < 0) return false;
  (rb.data[cpu] as Uint32Array)[off] = v;
  return true;
}

function collect(rb: RingBuffer, consume: boolean): [number, number, number, number][] {
  const out: [number, number, number, number][] = [];
  rb.read((cpu, ts, d, off, lost) => out.push([cpu, ts, d[off] as number, lost]), consume);
  return out;
}

describe('RingBuffer', () => {
  it('overwrites the oldest entry when full and counts it as overrun', () => {
    const rb = new RingBuffer({ cpus: 1, entries: 3, words: 1 });
    for (let i = 1; i <= 5; i++) expect(write(rb, 0, i, i * 10)).toBe(true);
    expect(collect(rb, false).map((e) => e[2])).toEqual([30, 40, 50]);
    expect(rb.entries()).toBe(3);
    expect(rb.written()).toBe(5);
    expect(rb.overrun[0]).toBe(2);
  });

  it('drops the newest entry when overwrite is off', () => {
    const rb = new RingBuffer({ cpus: 1, entries: 3, words: 1, overwrite: false });
    const ok = [1, 2, 3, 4, 5].map((i) => write(rb, 0, i, i * 10));
    expect(ok).toEqual([true, true, true, false, false]);
    expect(collect(rb, false).map((e) => e[2])).toEqual([10, 20, 30]);
    expect(rb.dropped[0]).toBe(2);
    expect(rb.written()).toBe(3);
  });

  it('merges CPUs by timestamp, lower CPU first on ties', () => {
    const rb = new RingBuffer({ cpus: 3, entries: 8, words: 1 });
    write(rb, 2, 5, 1);
    write(rb, 0, 7, 2);
    write(rb, 1, 5, 3);
    write(rb, 0, 9, 4);
    write(rb, 2, 8, 5);
    expect(collect(rb, false).map((e) => [e[0], e[1]])).toEqual([
      [1, 5],
      [2, 5],
      [0, 7],
      [2, 8],
      [0, 9],
    ]);
  });

  it('a consuming read empties the buffer and reports losses once', () => {
    const rb = new RingBuffer({ cpus: 2, entries: 2, words: 1 });
    for (let i = 0; i < 5; i++) write(rb, 0, i, i);
    write(rb, 1, 10, 99);
    const first = collect(rb, true);
    expect(first).toEqual([
      [0, 3, 3, 3],
      [0, 4, 4, 0],
      [1, 10, 99, 0],
    ]);
    expect(rb.entries()).toBe(0);
    write(rb, 0, 20, 7);
    expect(collect(rb, true)).toEqual([[0, 20, 7, 0]]);
  });

  it('records nothing while recording is off, and reset empties it', () => {
    const rb = new RingBuffer({ cpus: 1, entries: 4, words: 1 });
    rb.recording = false;
    expect(write(rb, 0, 1, 1)).toBe(false);
    rb.recording = true;
    write(rb, 0, 2, 2);
    rb.reset();
    expect(rb.entries()).toBe(0);
    expect(rb.written()).toBe(0);
  });

  it('keeps the newest `capacity` entries in order for any write sequence', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 0, max: 40 }), (cap, n) => {
        const rb = new RingBuffer({ cpus: 1, entries: cap, words: 1 });
        for (let i = 0; i < n; i++) write(rb, 0, i, i);
        const got = collect(rb, false).map((e) => e[2]);
        const want = Array.from({ length: Math.min(n, cap) }, (_, k) => n - Math.min(n, cap) + k);
        expect(got).toEqual(want);
        expect(rb.written()).toBe(n);
      }),
    );
  });

  it('rejects a buffer without entries', () => {
    expect(() => new RingBuffer({ cpus: 1, entries: 0, words: 1 })).toThrow(/entries/);
  });
});
