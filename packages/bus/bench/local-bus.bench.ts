import type { Bench } from 'tinybench';
import { LocalBus } from '../src/index.js';

// The in-process bus is the embedded default: its per-message cost bounds how fast an agent can
// ship trace batches when everything runs in one process.
export default async function (bench: Bench): Promise<void> {
  const bus = new LocalBus();
  const payload = new TextEncoder().encode(
    JSON.stringify({ seq: 1, events: new Array(16).fill('x') }),
  );
  await bus.subscribe('bench.pub', () => undefined);
  await bus.serve('bench.echo', (msg) => msg.data);

  bench
    .add('LocalBus publish + deliver (1000 msgs)', async () => {
      for (let i = 0; i < 1000; i++) bus.publish('bench.pub', payload);
      await bus.flush();
    })
    .add('LocalBus request/reply round trip', async () => {
      await bus.request('bench.echo', payload, { timeoutMs: 1000 });
    });
  bench.addEventListener('complete', () => void bus.close());
}
