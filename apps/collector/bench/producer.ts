// The agent side of transport.bench.ts, in its own thread as an agent is its own process: it
// encodes (as Agent.publishStreams does) and publishes the batches it is asked for, then says how
// many it sent.
import { parentPort, workerData } from 'node:worker_threads';
import { NatsBus } from '@tracelab/bus';
import {
  encodeTraceBatch,
  subjects,
  TracelabError,
  type TraceEvent,
  type TraceEventBatch,
} from '@tracelab/contracts';

const { url, events } = workerData as { url: string; events: number };
const bus = await NatsBus.connect({ servers: url, name: 'bench-agent' });
let seq = 0;

function event(i: number): TraceEvent {
  return {
    type: 'function',
    ts: i * 100,
    cpu: i % 2,
    pid: 100 + (i % 7),
    comm: 'bench',
    ip: '18446744071579906464',
    parentIp: '18446744071579900000',
    func: 'vfs_read',
    parent: 'ksys_read',
  };
}

parentPort?.on('message', (batches: number | 'stop') => {
  if (batches === 'stop') {
    void bus.close().then(() => parentPort?.close());
    return;
  }
  for (let b = 0; b < batches; b++) {
    const firstSeq = seq;
    seq += events;
    const batch: TraceEventBatch = {
      agentId: 'bench',
      stream: 'trace',
      firstSeq,
      lost: 0,
      events: Array.from({ length: events }, (_, i) => event(firstSeq + i)),
    };
    const bytes = encodeTraceBatch(batch);
    if (bytes instanceof TracelabError) throw bytes;
    bus.publish(subjects.trace('bench', 'trace'), bytes);
  }
  void bus.flush().then(() => parentPort?.postMessage(batches));
});
parentPort?.postMessage(0);
