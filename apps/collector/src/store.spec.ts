import {
  appendFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalBus } from '@tracelab/bus';
import {
  encodeTraceBatch,
  subjects,
  TracelabError,
  type TraceEvent,
  type TraceEventBatch,
} from '@tracelab/contracts';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Collector, FileStore, readStream } from './index.js';

function text(i: number): TraceEvent {
  return { type: 'text', ts: i * 1000, cpu: 0, pid: 1, comm: 'init', text: `event ${i}` };
}

function batch(firstSeq: number, count: number, agentId = 'm1'): TraceEventBatch {
  const events = Array.from({ length: count }, (_, i) => text(firstSeq + i));
  return { agentId, stream: 'trace', firstSeq, events, lost: 0 };
}

const line = (b: TraceEventBatch): string => `${JSON.stringify(b)}\n`;

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof TracelabError ? err.code : `not a TracelabError: ${String(err)}`;
  }
  return undefined;
}

describe('file store', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tracelab-store-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const sdir = (agent = 'm1') => join(dir, agent, 'trace');

  it('writes one line per batch and starts a new file once one has grown past the limit', () => {
    const a = batch(0, 2);
    const b = batch(2, 2);
    const c = batch(4, 1);
    // the first file reaches the limit exactly with a, passes it with b
    const store = new FileStore({ dir, maxFileBytes: Buffer.byteLength(line(a)) });
    for (const x of [a, b, c]) store.append(x);
    expect(readdirSync(sdir()).sort()).toEqual(['0.jsonl', '1.jsonl']);
    expect(readFileSync(join(sdir(), '0.jsonl'), 'utf8')).toBe(line(a) + line(b));
    expect(readFileSync(join(sdir(), '1.jsonl'), 'utf8')).toBe(line(c));
    expect(readStream(dir, 'm1', 'trace').events.map((e) => e.seq)).toEqual([0, 1, 2, 3, 4]);
  });

  it('keeps each agent and stream apart', () => {
    const store = new FileStore({ dir });
    store.append(batch(0, 1, 'm1'));
    store.append(batch(10, 1, 'm2'));
    store.append({ ...batch(5, 1), stream: 'printk' });
    expect(readStream(dir, 'm2', 'trace').events.map((e) => e.seq)).toEqual([10]);
    expect(readStream(dir, 'm1', 'printk').events.map((e) => e.seq)).toEqual([5]);
    expect(store.nextSeq('m1', 'trace')).toBe(1);
    expect(store.nextSeq('m3', 'trace')).toBeUndefined();
  });

  it('learns the next sequence number from its files after a restart and refuses overlaps', () => {
    const first = new FileStore({ dir, maxFileBytes: 1 });
    first.append(batch(0, 3));
    first.append(batch(3, 2));
    const second = new FileStore({ dir, maxFileBytes: 1 });
    expect(second.nextSeq('m1', 'trace')).toBe(5);
    expect(codeOf(() => second.append(batch(4, 2)))).toBe('EEXIST');
    second.append(batch(7, 1));
    expect(readdirSync(sdir()).sort()).toEqual(['0.jsonl', '1.jsonl', '2.jsonl']);
    expect(readStream(dir, 'm1', 'trace').events.map((e) => e.seq)).toEqual([0, 1, 2, 3, 4, 7]);
  });

  it('cuts off a line a crash left half-written and continues after the last whole batch', () => {
    new FileStore({ dir }).append(batch(0, 2));
    const torn = line(batch(2, 2)).slice(0, 30);
    appendFileSync(join(sdir(), '0.jsonl'), torn);
    // a reader while the line is half-written sees the whole batches only
    expect(readStream(dir, 'm1', 'trace').events.map((e) => e.seq)).toEqual([0, 1]);
    const store = new FileStore({ dir });
    expect(store.nextSeq('m1', 'trace')).toBe(2);
    expect(readFileSync(join(sdir(), '0.jsonl'), 'utf8')).toBe(line(batch(0, 2)));
    store.append(batch(2, 2));
    expect(readStream(dir, 'm1', 'trace').events.map((e) => e.seq)).toEqual([0, 1, 2, 3]);
  });

  it.each([
    { name: 'not JSON', content: '{"agentId":\n' },
    { name: 'not a batch', content: '{"agentId":"m1"}\n' },
  ])('reports a stored line that is $name as EIO', ({ content }) => {
    mkdirSync(sdir(), { recursive: true });
    writeFileSync(join(sdir(), '0.jsonl'), line(batch(0, 1)) + content);
    expect(codeOf(() => readStream(dir, 'm1', 'trace'))).toBe('EIO');
    expect(codeOf(() => new FileStore({ dir }).nextSeq('m1', 'trace'))).toBe('EIO');
  });

  it('refuses a limit that is not a positive integer', () => {
    expect(codeOf(() => new FileStore({ dir, maxFileBytes: 0 }))).toBe('EINVAL');
  });
});

describe('collector with a file store', () => {
  let dir: string;
  let bus: LocalBus;
  const errors: unknown[] = [];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tracelab-collect-'));
    errors.length = 0;
    bus = new LocalBus({ onError: (err) => errors.push(err) });
  });
  afterEach(async () => {
    await bus.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const publish = (b: TraceEventBatch) =>
    bus.publish(subjects.trace(b.agentId, 'trace'), encodeTraceBatch(b) as Uint8Array);
  async function settle(until: () => boolean): Promise<void> {
    for (let i = 0; i < 200 && !until(); i++) {
      await bus.flush();
      await new Promise((r) => setTimeout(r, 5));
    }
  }
  const stored = () => readStream(dir, 'm1', 'trace').events.map((e) => e.seq);

  it('stores every event once when a collector dies between storing and acking', async () => {
    let crashed = false;
    const first = new Collector({
      bus,
      durable: 'keep',
      ackWaitMs: 30,
      store: new FileStore({ dir, maxFileBytes: 200 }),
      // the process dies after writing seq 3..5: that batch is never acked
      sink: (e) => {
        if (e.seq === 3) crashed = true;
        if (crashed) throw new Error('killed');
      },
    });
    await first.start();
    publish(batch(0, 3));
    publish(batch(3, 3));
    publish(batch(6, 3));
    await settle(() => errors.length >= 1);
    await first.stop();
    // one batch in flight: the one after the unacked batch was never handed to the dead process
    expect(stored()).toEqual([0, 1, 2, 3, 4, 5]);

    const second = new Collector({
      bus,
      durable: 'keep',
      ackWaitMs: 30,
      store: new FileStore({ dir, maxFileBytes: 200 }),
    });
    await second.start();
    publish(batch(9, 2));
    // the unacked batch comes again first and is stored already; the rest follow in order
    await settle(() => second.stats().events === 5);
    expect(second.stats()).toMatchObject({ events: 5, duplicates: 3, gaps: 0 });
    expect(stored()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    await second.stop();
  });

  it('skips what is stored when a new durable replays the whole stream', async () => {
    const first = new Collector({ bus, durable: 'a', store: new FileStore({ dir }) });
    await first.start();
    publish(batch(0, 2));
    publish(batch(2, 2));
    await settle(() => first.stats().batches === 2);
    await first.stop();
    publish(batch(4, 2));
    const second = new Collector({ bus, durable: 'b', store: new FileStore({ dir }) });
    await second.start();
    await settle(() => second.stats().batches === 3);
    expect(second.stats()).toMatchObject({ events: 2, duplicates: 4, gaps: 0 });
    expect(stored()).toEqual([0, 1, 2, 3, 4, 5]);
    await second.stop();
  });

  it('leaves a batch the store cannot take unacked and stores it, in order, once it can', async () => {
    const failures: string[] = [];
    // a file where the agent's directory should be: mkdir fails until it is removed
    writeFileSync(join(dir, 'm1'), '');
    const c = new Collector({
      bus,
      durable: 'c',
      ackWaitMs: 20,
      store: new FileStore({ dir }),
      onStoreError: (err) => failures.push(err.code),
    });
    await c.start();
    publish(batch(0, 2));
    publish(batch(2, 2));
    await settle(() => failures.length >= 1);
    expect(c.stats()).toMatchObject({ batches: 0, events: 0 });
    rmSync(join(dir, 'm1'));
    await settle(() => c.stats().batches === 2);
    expect(c.stats()).toMatchObject({ batches: 2, events: 4, duplicates: 0 });
    expect(stored()).toEqual([0, 1, 2, 3]);
    await c.stop();
  });
});
