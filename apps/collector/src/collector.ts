import {
  decodeTraceBatch,
  TRACE_STREAM,
  TracelabError,
  subjects,
  type TraceEvent,
} from '@tracelab/contracts';
import type { Bus, StreamConsumer, StreamMsg } from '@tracelab/bus';
import type { FileStore } from './store.js';

/** One collected event, as written to the sink: where it came from and its sequence number. */
export interface CollectedEvent {
  agentId: string;
  stream: string;
  seq: number;
  event: TraceEvent;
}

export interface CollectorOptions {
  bus: Bus;
  /** Durable consumer name: a collector restarted with the same name resumes where it stopped. */
  durable: string;
  /** Receives every event once, in sequence order per (agent, stream). */
  sink?: (event: CollectedEvent) => void;
  /**
   * Stores every new event before its message is acked. A collector restarted on the same store
   * continues each (agent, stream) after its last stored event, whatever the bus redelivers.
   */
  store?: FileStore;
  /**
   * Told about messages that are not valid trace batches (binary or JSON), with the decoder's
   * error message (the field and byte offset); they are acked and dropped.
   */
  onReject?: (reason: string, subject: string) => void;
  /** How long a delivered batch may stay unacked before the bus delivers it again. */
  ackWaitMs?: number;
  /**
   * Told when the store fails; the batch is not acked, so the bus delivers it again after the ack
   * wait, and no later batch is delivered before it.
   */
  onStoreError?: (error: TracelabError) => void;
}

export interface CollectorStats {
  batches: number;
  events: number;
  /** Events the producers reported dropped (ring buffer overruns) before publishing. */
  lost: number;
  /** Events missing between batches: sequence numbers never received. */
  gaps: number;
  /** Events received again (a redelivered or republished batch) and not passed on. */
  duplicates: number;
  rejected: number;
  /** Batches the store failed to take (left unacked for redelivery). */
  storeErrors: number;
}

/**
 * Consumes the trace stream through a durable consumer and hands each event to the sink exactly
 * once: sequence numbers per (agent, stream) let it drop redelivered events and count holes.
 */
export class Collector {
  private readonly next = new Map<string, number>();
  /** Highest stream sequence handled: a redelivered message at or below it was handled already. */
  private handledStreamSeq = 0;
  private consumer: StreamConsumer | undefined;
  private readonly counters: CollectorStats = {
    batches: 0,
    events: 0,
    lost: 0,
    gaps: 0,
    duplicates: 0,
    rejected: 0,
    storeErrors: 0,
  };

  constructor(private readonly options: CollectorOptions) {}

  async start(): Promise<void> {
    const { bus, durable } = this.options;
    await bus.ensureStream({ name: TRACE_STREAM, subjects: [subjects.traceAll] });
    const { ackWaitMs } = this.options;
    this.consumer = await bus.consume(TRACE_STREAM, durable, (msg) => this.receive(msg), {
      // One batch in flight: the server hands out the next only after this one is stored and
      // acked, so a batch left unacked by a collector that died is redelivered before any newer
      // one is handled, and never mistaken for a duplicate of what came after it.
      maxAckPending: 1,
      ...(ackWaitMs === undefined ? {} : { ackWaitMs }),
    });
  }

  stats(): CollectorStats {
    return { ...this.counters };
  }

  async stop(): Promise<void> {
    await this.consumer?.stop();
    this.consumer = undefined;
  }

  private receive(msg: StreamMsg): void {
    const batch = decodeTraceBatch(msg.data);
    if (batch instanceof TracelabError) {
      this.reject(batch.message, msg);
      return;
    }
    if (msg.seq <= this.handledStreamSeq) {
      this.counters.duplicates += batch.events.length;
      msg.ack();
      return;
    }
    const key = `${batch.agentId}/${batch.stream}`;
    // the first batch of a key sets the baseline, unless the store holds earlier events of it
    let expected: number;
    const store = this.options.store;
    try {
      expected =
        this.next.get(key) ?? store?.nextSeq(batch.agentId, batch.stream) ?? batch.firstSeq;
      const skip = Math.max(0, expected - batch.firstSeq);
      if (store !== undefined && skip < batch.events.length)
        store.append({
          ...batch,
          firstSeq: batch.firstSeq + skip,
          events: batch.events.slice(skip),
        });
    } catch (err) {
      this.counters.storeErrors++;
      this.options.onStoreError?.(
        err instanceof TracelabError ? err : new TracelabError('EIO', String(err)),
      );
      return;
    }
    this.handledStreamSeq = msg.seq;
    if (batch.firstSeq > expected) this.counters.gaps += batch.firstSeq - expected;
    const end = batch.firstSeq + batch.events.length;
    let seq = batch.firstSeq;
    for (const event of batch.events) {
      if (seq < expected) this.counters.duplicates++;
      else {
        this.options.sink?.({ agentId: batch.agentId, stream: batch.stream, seq, event });
        this.counters.events++;
      }
      seq++;
    }
    this.counters.lost += batch.lost;
    this.next.set(key, Math.max(expected, end));
    this.counters.batches++;
    msg.ack();
  }

  private reject(reason: string, msg: StreamMsg): void {
    this.counters.rejected++;
    this.options.onReject?.(reason, msg.subject);
    // a malformed batch never becomes valid: redelivering it forever would stall the consumer
    msg.ack();
  }
}
