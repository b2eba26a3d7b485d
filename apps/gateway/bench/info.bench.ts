import { Agent } from '@tracelab/agent';
import { LocalBus } from '@tracelab/bus';
import { Agent as HttpAgent, request } from 'node:http';
import type { Bench } from 'tinybench';
import { buildGateway } from '../src/index.js';

// GET /v1/info over real HTTP on loopback (not inject): one request per iteration on a
// keep-alive connection, so ops/s is requests per second and p99 is the request latency.
// Target: >= 2k req/s with p99 < 20 ms.
export default async function (bench: Bench): Promise<void> {
  const bus = new LocalBus();
  const agent = new Agent({ bus, id: 'bench', version: '0', transport: 'local' });
  await agent.start();
  const app = await buildGateway({
    bus,
    version: '0',
    transport: 'local',
    token: 'bench',
    // the default 1000 a minute would answer most of the loop with 429
    rateLimit: { max: 1e9, timeWindowMs: 60_000 },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  const keepAlive = new HttpAgent({ keepAlive: true, maxSockets: 1 });
  const get = () =>
    new Promise<void>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: address.port, path: '/v1/info', agent: keepAlive },
        (res) => {
          res.resume();
          res.on('end', () =>
            res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`)),
          );
        },
      );
      req.on('error', reject);
      req.end();
    });

  bench.add('GET /v1/info over HTTP, keep-alive (1 request)', get);
  bench.addEventListener('complete', () => {
    keepAlive.destroy();
    void app
      .close()
      .then(() => agent.stop())
      .then(() => bus.close());
  });
}
