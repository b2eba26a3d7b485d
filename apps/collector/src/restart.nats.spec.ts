import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NatsBus, startNatsServer, type NatsServer } from '@tracelab/bus';
import { encodeTraceBatch, subjects, type TraceEventBatch } from '@tracelab/contracts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Collector, FileStore, readStream } from './index.js';

function batch(firstSeq: number, count: number): TraceEventBatch {
  return {
    agentId: 'm1',
    stream: 'trace',
    firstSeq,
    lost: 0,
    events: Array.from({ length: count }, (_, i) => ({
      type: 'text' as const,
      ts: (firstSeq + i) * 1000,
      cpu: 0,
      pid: 1,
      comm: 'init',
      text: `event ${firstSeq + i}`,
    })),
  };
}

async function until(what: string, done: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!done()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A store whose process dies while storing its Nth batch: nothing of it reaches the files. */
class DyingStore extends FileStore {
  private appends = 0;
  constructor(
    dir: string,
    private readonly dieAt: number,
    private readonly die: () => void,
  ) {
    super({ dir });
  }
  override append(b: TraceEventBatch): void {
    if (++this.appends === this.dieAt) {
      this.die();
      throw new Error('killed');
    }
    super.append(b);
  }
}

describe('collector killed and restarted mid-stream over a real nats-server', () => {
  let server: NatsServer;
  let dir: string;
  beforeAll(async () => {
    server = await startNatsServer();
    dir = mkdtempSync(join(tmpdir(), 'tracelab-collector-'));
  });
  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('stores every event exactly once, in order, when it dies before storing a batch', async () => {
    const producer = await NatsBus.connect({ servers: server.url });
    const first = await NatsBus.connect({ servers: server.url });
    const PER = 5;
    let published = 0;
    const publish = async (n: number) => {
      for (let i = 0; i < n; i++, published++)
        producer.publish(
          subjects.trace('m1', 'trace'),
          encodeTraceBatch(batch(published * PER, PER)) as Uint8Array,
        );
      await producer.flush();
    };
    try {
      await producer.ensureStream({ name: 'TRACELAB_TRACE', subjects: [subjects.traceAll] });
      await publish(6);
      let dead = false;
      // the process dies in the middle of storing the 4th batch: that batch is never acked
      const dying = new DyingStore(dir, 4, () => {
        dead = true;
        void first.close();
      });
      const a = new Collector({ bus: first, durable: 'archive', store: dying, ackWaitMs: 500 });
      await a.start();
      await until('the first collector to die', () => dead);
      // newer batches arrive while no collector runs, and while the restarted one starts
      await publish(4);
      const second = await NatsBus.connect({ servers: server.url });
      try {
        const b = new Collector({
          bus: second,
          durable: 'archive',
          store: new FileStore({ dir }),
          ackWaitMs: 500,
        });
        await b.start();
        await publish(4);
        const total = published * PER;
        await until('every event stored', () => {
          try {
            return readStream(dir, 'm1', 'trace').events.length >= total;
          } catch {
            return false;
          }
        });
        await b.stop();
        const stored = readStream(dir, 'm1', 'trace').events;
        expect(stored.map((e) => e.seq)).toEqual(Array.from({ length: total }, (_, i) => i));
        expect(stored.map((e) => (e.event.type === 'text' ? e.event.text : ''))).toEqual(
          Array.from({ length: total }, (_, i) => `event ${i}`),
        );
        expect(b.stats().gaps).toBe(0);
      } finally {
        await second.close();
      }
    } finally {
      await producer.close();
      await first.close();
    }
  }, 30_000);
});
