import type { Bench } from 'tinybench';
import { TraceEventBatchSchema, type TraceEvent } from '../src/index.js';

// Every batch crossing the bus is validated at the receiver; this is that cost per batch.
export default function (bench: Bench): void {
  const events: TraceEvent[] = Array.from({ length: 256 }, (_, i) => ({
    type: 'function',
    ts: 1000 * i,
    cpu: i % 4,
    pid: 100 + (i % 7),
    comm: 'bash',
    ip: String(0xffffffff81000000n + BigInt(i * 64)),
    parentIp: '18446744071578845184',
    func: `func_${i}`,
    parent: 'do_syscall_64',
  }));
  const batch = JSON.parse(
    JSON.stringify({ agentId: 'm1', stream: 'trace', firstSeq: 0, lost: 0, events }),
  );
  bench.add('TraceEventBatchSchema.parse (256 function events)', () => {
    TraceEventBatchSchema.parse(batch);
  });
}
