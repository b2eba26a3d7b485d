import { encodeJson, isBusError, LocalBroker, LocalBus } from '@tracelab/bus';
import {
  ErrorEnvelopeSchema,
  encodeTraceBatch,
  TraceEventBatchSchema,
  subjects,
  type TraceEventBatch,
} from '@tracelab/contracts';
import type { AddressInfo } from 'node:net';
import { Script } from 'node:vm';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { buildGateway, type Gateway } from './index.js';

/** One server-sent event as a client sees it. */
interface SseFrame {
  comments: string[];
  event?: string;
  id?: string;
  data: string[];
}

function parseFrame(text: string): SseFrame {
  const frame: SseFrame = { comments: [], data: [] };
  for (const line of text.split('\n')) {
    if (line.startsWith(':')) {
      frame.comments.push(line.slice(1).trim());
      continue;
    }
    const colon = line.indexOf(':');
    const field = line.slice(0, colon);
    const value = line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') frame.event = value;
    else if (field === 'id') frame.id = value;
    else if (field === 'data') frame.data.push(value);
  }
  return frame;
}

/** Reads an event stream frame by frame, as EventSource would. */
class SseReader {
  private buffer = '';
  private readonly decoder = new TextDecoder();

  constructor(private readonly reader: ReadableStreamDefaultReader<Uint8Array>) {}

  /** The next frame, or undefined once the server ended the stream. */
  async next(): Promise<SseFrame | undefined> {
    for (;;) {
      const end = this.buffer.indexOf('\n\n');
      if (end >= 0) {
        const frame = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 2);
        return parseFrame(frame);
      }
      const { done, value } = await this.reader.read();
      if (done) return undefined;
      this.buffer += this.decoder.decode(value, { stream: true });
    }
  }

  /** Skips frames until one satisfies `match`. */
  async until(match: (f: SseFrame) => boolean): Promise<SseFrame> {
    for (;;) {
      const frame = await this.next();
      if (frame === undefined) throw new Error('stream ended');
      if (match(frame)) return frame;
    }
  }
}

function batch(agentId: string, firstSeq: number, funcs: string[], lost = 0): TraceEventBatch {
  return {
    agentId,
    stream: 'trace',
    firstSeq,
    lost,
    events: funcs.map((func, i) => ({
      type: 'function',
      ts: 1000 * (firstSeq + i),
      cpu: 0,
      pid: 7,
      comm: 'work',
      ip: '18446744071562067968',
      parentIp: '18446744071562068000',
      func,
      parent: 'do_syscall_64',
    })),
  };
}

describe('live trace over server-sent events', () => {
  let broker: LocalBroker;
  let peer: LocalBus;
  let bus: LocalBus;
  let app: Gateway;
  let base: string;
  const aborts: AbortController[] = [];

  beforeEach(async () => {
    broker = new LocalBroker();
    peer = new LocalBus({ broker });
    bus = new LocalBus({ broker });
    app = await buildGateway({
      bus,
      version: '1.2.3',
      transport: 'local',
      token: 'test-token',
      keepAliveMs: 40,
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    base = `http://127.0.0.1:${port}`;
  });
  afterEach(async () => {
    for (const abort of aborts.splice(0)) abort.abort();
    await app.close();
    await peer.close();
    await bus.close();
  });

  /** Opens the stream and waits for the comment saying the gateway has subscribed. */
  async function open(path: string): Promise<{ res: Response; sse: SseReader; abort: () => void }> {
    const controller = new AbortController();
    aborts.push(controller);
    const res = await fetch(base + path, { signal: controller.signal });
    expect(res.status).toBe(200);
    if (res.body === null) throw new Error('no body');
    const sse = new SseReader(res.body.getReader());
    const first = await sse.next();
    expect(first?.comments[0]).toMatch(/^subscribed to tracelab\.trace\./);
    return { res, sse, abort: () => controller.abort() };
  }

  /** Whether anyone on the bus listens on `subject`: nobody is EHOSTUNREACH, a listener a timeout. */
  async function listened(subject: string): Promise<boolean> {
    try {
      await peer.request(subject, new Uint8Array(), { timeoutMs: 20 });
      return true;
    } catch (err) {
      if (isBusError(err) && err.code === 'EHOSTUNREACH') return false;
      if (isBusError(err) && err.code === 'ETIMEDOUT') return true;
      throw err;
    }
  }

  it("relays each batch of the agent's stream as a `batch` event with id = firstSeq", async () => {
    const { res, sse } = await open('/v1/agents/m1/stream/trace');
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(res.headers.get('cache-control')).toContain('no-cache');

    const subject = subjects.trace('m1', 'trace');
    const first = batch('m1', 0, ['vfs_read', 'vfs_write', 'ksys_read']);
    const second = batch('m1', 3, ['schedule'], 2);
    // as the agent publishes (binary); the second as JSON, as agents did before
    peer.publish(subject, encodeTraceBatch(first) as Uint8Array);
    // other agents and streams, and what breaks the contract, never reach this client
    peer.publish(subjects.trace('m2', 'trace'), encodeJson(batch('m2', 0, ['other'])));
    peer.publish(subjects.trace('m1', 'ringbuf'), encodeJson({ ...first, stream: 'ringbuf' }));
    peer.publish(subject, new TextEncoder().encode('{not json'));
    peer.publish(subject, encodeJson({ ...first, firstSeq: -1 }));
    peer.publish(subject, (encodeTraceBatch(first) as Uint8Array).subarray(0, 40));
    peer.publish(subject, encodeJson(second));

    const events: SseFrame[] = [];
    while (events.length < 2) events.push(await sse.until((f) => f.event !== undefined));
    expect(events.map((e) => [e.event, e.id])).toEqual([
      ['batch', '0'],
      ['batch', '3'],
    ]);
    for (const e of events) expect(e.data).toHaveLength(1);
    expect(events.map((e) => TraceEventBatchSchema.parse(JSON.parse(e.data[0] ?? '')))).toEqual([
      first,
      second,
    ]);
  });

  it('sends a keep-alive comment while nothing is published', async () => {
    const { sse } = await open('/v1/agents/m1/stream/printk');
    const frame = await sse.next();
    expect(frame).toEqual({ comments: ['keep-alive'], data: [] });
  });

  it('unsubscribes when the client disconnects', async () => {
    const subject = subjects.trace('m1', 'perf');
    expect(await listened(subject)).toBe(false);
    const { abort } = await open('/v1/agents/m1/stream/perf');
    expect(await listened(subject)).toBe(true);
    abort();
    await vi.waitFor(async () => expect(await listened(subject)).toBe(false), { timeout: 2000 });
    // and goes on serving (on the connection the client opened again)
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
  });

  it('ends open streams when the gateway closes', async () => {
    const { sse } = await open('/v1/agents/m1/stream/trace');
    await app.close();
    expect(await sse.until((f) => f.comments[0] !== 'keep-alive').catch(String)).toBe(
      'Error: stream ended',
    );
    expect(await listened(subjects.trace('m1', 'trace'))).toBe(false);
  });

  it.each([
    ['/v1/agents/a.b/stream/trace', ['params', 'agentId']],
    ['/v1/agents/m1/stream/kmsg', ['params', 'stream']],
  ])('GET %s is a 400 naming %j', async (url, path) => {
    const res = await app.inject({ method: 'GET', url });
    expect(res.statusCode).toBe(400);
    const body = ErrorEnvelopeSchema.parse(res.json());
    expect([body.code, body.details?.path]).toEqual(['EINVAL', path]);
  });

  it('answers with an error envelope, not a stream, when the bus is gone', async () => {
    await bus.close();
    const res = await fetch(`${base}/v1/agents/m1/stream/trace`);
    expect(res.status).toBe(503);
    expect(ErrorEnvelopeSchema.parse(await res.json()).code).toBe('ESHUTDOWN');
  });
});

describe('the live page', () => {
  it('is HTML that lists agents and opens the stream route with EventSource', async () => {
    const app = await buildGateway({
      bus: new LocalBus({ broker: new LocalBroker() }),
      version: '1.2.3',
      transport: 'local',
      token: 'test-token',
    });
    try {
      const res = await app.inject({ method: 'GET', url: '/' });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
      const html = res.body;
      expect(html).toMatch(/^<!doctype html>/);
      expect(html).toContain('<title>tracelab 1.2.3 · live</title>');
      expect(html).toContain('const AGENTS_URL = "/v1/agents"');
      expect(html).toContain('const STREAM_BASE = "/v1/agents/"');
      expect(html).toContain("'/stream/'");
      expect(html).toContain('new EventSource(url)');
      expect(html).toContain("addEventListener('batch'");
      expect(html).toContain('<option value="trace" selected>trace</option>');
      // the inline script is valid JavaScript
      const script = /<script>([\s\S]*)<\/script>/.exec(html)?.[1] ?? '';
      expect(script.length).toBeGreaterThan(100);
      expect(() => new Script(script)).not.toThrow();
    } finally {
      await app.close();
    }
  });
});
