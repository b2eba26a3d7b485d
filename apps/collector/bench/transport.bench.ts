import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { NatsBus, startNatsServer } from '@tracelab/bus';
import type { Bench } from 'tinybench';
import { Collector } from '../src/index.js';

const BATCHES = 20;
const EVENTS = 1000;

// Trace events from an agent (a worker thread publishing batches of function events) to a
// collector through a real nats-server with JetStream: one iteration asks for BATCHES batches of
// EVENTS events and waits until the collector has handed all of them to its sink, so events/s is
// ops/s * BATCHES * EVENTS (printed). Target: >= 500k events/s.
export default async function (bench: Bench): Promise<void> {
  const server = await startNatsServer();
  const consumer = await NatsBus.connect({ servers: server.url, name: 'bench-collector' });
  let received = 0;
  const collector = new Collector({ bus: consumer, durable: 'bench', sink: () => received++ });
  await collector.start();
  // a worker does not inherit the TypeScript loader the bench runner was started with
  const producer = JSON.stringify(new URL('./producer.ts', import.meta.url).href);
  const agent = new Worker(
    `import('tsx/esm/api').then((tsx) => tsx.tsImport(${producer}, ${JSON.stringify(import.meta.url)}))`,
    { eval: true, workerData: { url: server.url, events: EVENTS } },
  );
  await once(agent, 'message');

  bench.add(`agent -> nats-server -> collector (${BATCHES} x ${EVENTS} events)`, async () => {
    const target = received + BATCHES * EVENTS;
    agent.postMessage(BATCHES);
    await once(agent, 'message');
    while (received < target) await new Promise((r) => setImmediate(r));
  });
  bench.addEventListener('complete', () => {
    const r = bench.tasks[0]?.result;
    if (r?.state === 'completed')
      console.log(
        `agent -> collector: ${Math.round(r.throughput.mean * BATCHES * EVENTS)} events/s`,
      );
    agent.postMessage('stop');
    void collector
      .stop()
      .then(() => consumer.close())
      .then(() => server.stop());
  });
}
