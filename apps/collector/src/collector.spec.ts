import { encodeJson, LocalBus } from '@tracelab/bus';
import {
  encodeTraceBatch,
  subjects,
  type TraceEvent,
  type TraceEventBatch,
} from '@tracelab/contracts';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Collector, type CollectedEvent } from './index.js';

function text(i: number): TraceEvent {
  return { type: 'text', ts: i * 1000, cpu: 0, pid: 1, comm: 'init', text: `event ${i}` };
}

function batch(agentId: string, firstSeq: number, count: number, lost = 0): TraceEventBatch {
  const events = Array.from({ length: count }, (_, i) => text(firstSeq + i));
  return { agentId, stream: 'trace', firstSeq, events, lost };
}

async function settle(bus: LocalBus, until: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !until(); i++) {
    await bus.flush();
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('collector', () => {
  let bus: LocalBus;
  let got: CollectedEvent[];
  const sink = (e: CollectedEvent) => got.push(e);

  beforeEach(() => {
    bus = new LocalBus();
    got = [];
  });
  afterEach(() => bus.close());

  // as an agent publishes: the binary encoding
  const publish = (b: TraceEventBatch) =>
    bus.publish(subjects.trace(b.agentId, 'trace'), encodeTraceBatch(b) as Uint8Array);
  // as agents did before it, and as the stream may still hold
  const publishJson = (b: unknown) => bus.publish(subjects.trace('m1', 'trace'), encodeJson(b));

  it('passes every event on once, in order, with its sequence number', async () => {
    const c = new Collector({ bus, durable: 'c1', sink });
    await c.start();
    publish(batch('m1', 0, 3));
    publishJson(batch('m1', 3, 2));
    await settle(bus, () => got.length === 5);
    expect(got.map((e) => e.seq)).toEqual([0, 1, 2, 3, 4]);
    expect(got.map((e) => (e.event.type === 'text' ? e.event.text : ''))).toEqual([
      'event 0',
      'event 1',
      'event 2',
      'event 3',
      'event 4',
    ]);
    expect(c.stats()).toMatchObject({ batches: 2, events: 5, gaps: 0, duplicates: 0 });
  });

  it('drops republished events, counts holes and producer losses', async () => {
    const c = new Collector({ bus, durable: 'c1', sink });
    await c.start();
    publish(batch('m1', 10, 3));
    publish(batch('m1', 11, 4)); // overlaps 11..12
    publish(batch('m1', 20, 1, 7)); // 15..19 never arrived; 7 lost in the ring buffer
    publish(batch('m2', 0, 1)); // another agent has its own sequence
    await settle(bus, () => c.stats().batches === 4);
    expect(got.filter((e) => e.agentId === 'm1').map((e) => e.seq)).toEqual([
      10, 11, 12, 13, 14, 20,
    ]);
    expect(c.stats()).toMatchObject({ events: 7, duplicates: 2, gaps: 5, lost: 7 });
  });

  it('rejects malformed batches without stalling the stream', async () => {
    const reasons: string[] = [];
    const c = new Collector({
      bus,
      durable: 'c1',
      sink,
      onReject: (reason) => reasons.push(reason),
    });
    await c.start();
    bus.publish(subjects.trace('m1', 'trace'), new TextEncoder().encode('{'));
    publishJson({ ...batch('m1', 0, 1), firstSeq: -4 });
    const bytes = encodeTraceBatch(batch('m1', 5, 1)) as Uint8Array;
    bus.publish(subjects.trace('m1', 'trace'), bytes.subarray(0, bytes.length - 1));
    publish(batch('m1', 0, 1));
    await settle(bus, () => got.length === 1);
    expect(reasons).toEqual([
      expect.stringMatching(/not JSON/),
      expect.stringMatching(/: firstSeq: /),
      // the batch, the field and the byte where it broke
      expect.stringMatching(
        new RegExp(
          `firstSeq 5\\): events\\[0\\]\\.text: truncated.*\\(byte ${bytes.length - 4}\\)$`,
        ),
      ),
    ]);
    expect(c.stats()).toMatchObject({ rejected: 3, events: 1 });
  });

  it('resumes where a durable consumer with the same name stopped', async () => {
    const first = new Collector({ bus, durable: 'keep', sink });
    await first.start();
    publish(batch('m1', 0, 2));
    await settle(bus, () => got.length === 2);
    await first.stop();
    publish(batch('m1', 2, 2)); // published while no collector runs
    const second = new Collector({ bus, durable: 'keep', sink });
    await second.start();
    await settle(bus, () => got.length === 4);
    expect(got.map((e) => e.seq)).toEqual([0, 1, 2, 3]);
    expect(second.stats().events).toBe(2);
  });
});
