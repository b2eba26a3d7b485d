import type { Bus, Subscription } from '@tracelab/bus';
import {
  API_VERSION,
  decodeTraceBatch,
  TracelabError,
  type TraceEventBatch,
} from '@tracelab/contracts';
import type { ServerResponse } from 'node:http';

/** The route of the server-sent-events stream of one agent's output stream. */
export const streamRoute = `/${API_VERSION}/agents/:agentId/stream/:stream`;

/** One `batch` event: the id is the batch's first sequence number, the data one JSON line. */
export function batchEvent(batch: TraceEventBatch): string {
  return `event: batch\nid: ${batch.firstSeq}\ndata: ${JSON.stringify(batch)}\n\n`;
}

/**
 * The server-sent-events streams a gateway has open. Each relays the batches published on one
 * trace subject to one HTTP response, with a keep-alive comment so proxies keep the connection,
 * and unsubscribes as soon as the client goes away or the gateway closes.
 */
export class EventStreams {
  private readonly open = new Set<ServerResponse>();

  constructor(
    private readonly bus: Bus,
    private readonly keepAliveMs: number,
    private readonly onInvalid: (reason: string) => void,
  ) {}

  /** Subscribes first, so a failing bus is still an HTTP error; then takes over the response. */
  async relay(subject: string, res: ServerResponse, takeOver: () => void): Promise<void> {
    const subscription: Subscription = await this.bus.subscribe(subject, (msg) => {
      // the agent's binary encoding, or JSON; the client gets JSON either way
      const batch = decodeTraceBatch(msg.data);
      if (batch instanceof TracelabError)
        this.onInvalid(`batch on ${subject} rejected: ${batch.message}`);
      else res.write(batchEvent(batch));
    });
    takeOver();
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write(`: subscribed to ${subject}\n\n`);
    const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), this.keepAliveMs);
    this.open.add(res);
    const stop = (): void => {
      if (!this.open.delete(res)) return;
      clearInterval(keepAlive);
      subscription.unsubscribe();
    };
    res.on('close', stop);
    // the client may have gone while the subscription was being set up
    if (res.destroyed) stop();
  }

  /** Ends every open stream, so the server can close. */
  closeAll(): void {
    for (const res of this.open) res.end();
  }
}
