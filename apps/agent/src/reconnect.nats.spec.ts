import { createServer, connect, type Server, type Socket } from 'node:net';
import { NatsBus, startNatsServer, type NatsServer } from '@tracelab/bus';
import {
  AgentHealthSchema,
  decodeTraceBatch,
  TraceEventBatchSchema,
  subjects,
  type TraceEventBatch,
} from '@tracelab/contracts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from './index.js';

/** A loopback TCP relay to the server whose connections can be cut, as a network failure does. */
async function relay(port: number): Promise<{ port: number; cut(): void; close(): void }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((down) => {
    const up = connect(port, '127.0.0.1');
    for (const s of [down, up]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => s.destroy());
    }
    down.pipe(up).pipe(down);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('relay has no port');
  return {
    port: address.port,
    cut: () => {
      for (const s of sockets) s.destroy();
    },
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

describe('an agent whose NATS connection drops', () => {
  let server: NatsServer;
  beforeAll(async () => {
    server = await startNatsServer();
  });
  afterAll(() => server?.stop());

  it('reconnects, answers requests again and publishes its trace', async () => {
    const net = await relay(server.port);
    const agentBus = await NatsBus.connect({ servers: `nats://127.0.0.1:${net.port}` });
    const client = await NatsBus.connect({ servers: server.url });
    const agent = new Agent({ bus: agentBus, id: 'r1', version: '0', transport: 'nats' });
    try {
      await agent.start();
      const health = async (timeoutMs: number) =>
        AgentHealthSchema.parse(
          (
            await client.request(subjects.agentHealth('r1'), new Uint8Array(), { timeoutMs })
          ).json(),
        );
      expect((await health(2000)).id).toBe('r1');

      net.cut();
      // the agent is unreachable until its client has reconnected through the relay
      let answered = false;
      const end = Date.now() + 20_000;
      while (!answered && Date.now() < end) {
        answered = await health(500).then(
          () => true,
          () => false,
        );
      }
      expect(answered).toBe(true);
      expect(agentBus.isClosed).toBe(false);

      const batches: TraceEventBatch[] = [];
      await client.subscribe(subjects.trace('r1', 'trace'), (m) => {
        batches.push(TraceEventBatchSchema.parse(decodeTraceBatch(m.data)));
      });
      await client.request(
        subjects.tracefsWrite('r1'),
        new TextEncoder().encode(JSON.stringify({ path: 'current_tracer', data: 'function' })),
        { timeoutMs: 5000 },
      );
      await client.request(
        subjects.run('r1'),
        new TextEncoder().encode(JSON.stringify({ workload: 'syscalls' })),
        { timeoutMs: 10_000 },
      );
      await agentBus.flush();
      await client.flush();
      expect(batches.length).toBeGreaterThan(0);
      expect(batches.flatMap((b) => b.events).length).toBeGreaterThan(0);
    } finally {
      await agent.stop().catch(() => undefined);
      await agentBus.close();
      await client.close();
      net.close();
    }
  }, 40_000);
});
