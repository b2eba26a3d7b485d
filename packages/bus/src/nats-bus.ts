import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  type ConsumerUpdateConfig,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import {
  ClosedConnectionError,
  connect,
  DrainingConnectionError,
  Empty,
  headers,
  InvalidSubjectError,
  nanos,
  NoRespondersError,
  RequestError,
  TimeoutError,
  type Msg,
  type NatsConnection,
  type Subscription as NatsSubscription,
} from '@nats-io/transport-node';
import type {
  Bus,
  BusErrorSink,
  BusMsg,
  ConsumeOptions,
  MsgHandler,
  MsgIterator,
  RequestHandler,
  RequestOptions,
  StreamConfig,
  StreamConsumer,
  StreamMsg,
  StreamMsgHandler,
  SubscribeOptions,
  Subscription,
} from './bus.js';
import { BusError, errorCodeOf, errorMessageOf } from './errors.js';
import {
  busMsg,
  defaultErrorSink,
  ERROR_CODE_HEADER,
  ERROR_MESSAGE_HEADER,
  invoke,
} from './msg.js';
import { validateConsumeOptions, validateTimeout } from './options.js';
import { AsyncQueue } from './queue.js';
import { validateName, validateQueue, validateSubject } from './subject.js';

// JetStream API error codes (server/errors.json).
const JS_STREAM_NOT_FOUND = 10059;
const JS_CONSUMER_NOT_FOUND = 10014;
const JS_SUBJECT_OVERLAP = 10065;

const DEFAULT_ACK_WAIT_MS = 30_000;
const DEFAULT_MAX_ACK_PENDING = 1000;
// Messages one pull may buffer in the client; the durable's max_ack_pending bounds the rest.
const PULL_BATCH = 64;

/**
 * Maps what the NATS client throws to BusError; anything unrecognised is EIO. `closed`: the
 * connection is closed, which the client reports for pending requests as an untyped RequestError.
 */
function toBusError(err: unknown, context: string, closed = false): BusError {
  if (err instanceof BusError) return err;
  if (closed) return new BusError('ESHUTDOWN', `${context}: bus closed`, { cause: err });
  const cause = err instanceof RequestError ? err.cause : err;
  if (err instanceof TimeoutError || cause instanceof TimeoutError) {
    return new BusError('ETIMEDOUT', `${context}: timed out`, { cause: err });
  }
  if (cause instanceof NoRespondersError) {
    return new BusError('EHOSTUNREACH', `${context}: no responders`, { cause: err });
  }
  if (cause instanceof ClosedConnectionError || cause instanceof DrainingConnectionError) {
    return new BusError('ESHUTDOWN', `${context}: bus closed`, { cause: err });
  }
  if (cause instanceof InvalidSubjectError) {
    return new BusError('EINVAL', `${context}: ${errorMessageOf(cause)}`, { cause: err });
  }
  if (err instanceof JetStreamApiError) {
    if (err.code === JS_STREAM_NOT_FOUND || err.code === JS_CONSUMER_NOT_FOUND) {
      return new BusError('ENOENT', `${context}: ${err.message}`, { cause: err });
    }
    if (err.code === JS_SUBJECT_OVERLAP) {
      return new BusError('EEXIST', `${context}: ${err.message}`, { cause: err });
    }
  }
  return new BusError('EIO', `${context}: ${errorMessageOf(err)}`, { cause: err });
}

function isApiError(err: unknown, code: number): boolean {
  return err instanceof JetStreamApiError && err.code === code;
}

export interface NatsBusOptions {
  servers: string | string[];
  /** Connection name shown by the server's monitoring. */
  name?: string;
  onError?: BusErrorSink;
}

/** The NATS adapter: core NATS for request/reply and pub/sub, JetStream for durable streams. */
export class NatsBus implements Bus {
  readonly connection: NatsConnection;
  readonly #sink: BusErrorSink;
  readonly #subs = new Set<NatsSubscription>();
  readonly #consumers = new Set<StreamConsumer>();
  readonly #inflight = new Set<Promise<void>>();
  #manager: Promise<JetStreamManager> | undefined;

  static async connect(options: NatsBusOptions): Promise<NatsBus> {
    try {
      const nc = await connect({ servers: options.servers, name: options.name });
      return new NatsBus(nc, options.onError);
    } catch (err) {
      throw new BusError(
        'ECONNREFUSED',
        `cannot connect to ${String(options.servers)}: ${errorMessageOf(err)}`,
        {
          cause: err,
        },
      );
    }
  }

  /** Wraps an open connection; the bus owns it from then on (close/drain close it). */
  constructor(connection: NatsConnection, onError: BusErrorSink = defaultErrorSink) {
    this.connection = connection;
    this.#sink = onError;
  }

  get isClosed(): boolean {
    return this.connection.isClosed();
  }

  async request(subject: string, payload: Uint8Array, options: RequestOptions): Promise<BusMsg> {
    validateSubject(subject, 'publish');
    validateTimeout(options.timeoutMs);
    let reply: Msg;
    try {
      reply = await this.connection.request(subject, payload, { timeout: options.timeoutMs });
    } catch (err) {
      throw toBusError(err, `request to "${subject}"`, this.connection.isClosed());
    }
    const code = reply.headers?.get(ERROR_CODE_HEADER);
    if (code) {
      throw new BusError(code, reply.headers?.get(ERROR_MESSAGE_HEADER) ?? '', { remote: true });
    }
    return busMsg(reply.subject, reply.data);
  }

  serve(
    subject: string,
    handler: RequestHandler,
    options: SubscribeOptions = {},
  ): Promise<Subscription> {
    return this.#subscribe(subject, options, (m) => {
      const msg = busMsg(m.subject, m.data);
      const done = Promise.resolve()
        .then(() => handler(msg))
        .then(
          (data) => {
            if (m.reply) m.respond(data);
          },
          (err: unknown) => {
            if (!m.reply) return this.#sink(err, `handler for "${subject}"`);
            const h = headers();
            h.set(ERROR_CODE_HEADER, errorCodeOf(err));
            h.set(ERROR_MESSAGE_HEADER, errorMessageOf(err));
            m.respond(Empty, { headers: h });
          },
        )
        .catch((err: unknown) => this.#sink(err, `reply on "${subject}"`))
        .finally(() => this.#inflight.delete(done));
      this.#inflight.add(done);
    });
  }

  publish(subject: string, payload: Uint8Array): void {
    validateSubject(subject, 'publish');
    try {
      this.connection.publish(subject, payload);
    } catch (err) {
      throw toBusError(err, `publish to "${subject}"`, this.connection.isClosed());
    }
  }

  async flush(): Promise<void> {
    try {
      await this.connection.flush();
    } catch (err) {
      throw toBusError(err, 'flush', this.connection.isClosed());
    }
  }

  subscribe(
    subject: string,
    handler: MsgHandler,
    options?: SubscribeOptions,
  ): Promise<Subscription>;
  subscribe(subject: string, options?: SubscribeOptions): Promise<MsgIterator>;
  subscribe(
    subject: string,
    handlerOrOptions?: MsgHandler | SubscribeOptions,
    maybeOptions?: SubscribeOptions,
  ): Promise<Subscription | MsgIterator> {
    if (typeof handlerOrOptions === 'function') {
      const handler = handlerOrOptions;
      return this.#subscribe(subject, maybeOptions ?? {}, (m) =>
        invoke(handler, busMsg(m.subject, m.data), this.#sink, `subscriber of "${subject}"`),
      );
    }
    return this.#subscribeIterator(subject, handlerOrOptions ?? {});
  }

  async ensureStream(config: StreamConfig): Promise<void> {
    validateName(config.name, 'stream name');
    if (config.subjects.length === 0)
      throw new BusError('EINVAL', `stream "${config.name}" needs subjects`);
    for (const subject of config.subjects) validateSubject(subject, 'subscribe');
    const context = `stream "${config.name}"`;
    try {
      const jsm = await this.#jsm();
      const info = await jsm.streams.info(config.name).catch((err: unknown) => {
        if (isApiError(err, JS_STREAM_NOT_FOUND)) return undefined;
        throw err;
      });
      if (!info) {
        await jsm.streams.add({ name: config.name, subjects: config.subjects });
      } else if (!sameSet(info.config.subjects ?? [], config.subjects)) {
        await jsm.streams.update(config.name, { ...info.config, subjects: config.subjects });
      }
    } catch (err) {
      throw toBusError(err, context);
    }
  }

  async consume(
    stream: string,
    durable: string,
    handler: StreamMsgHandler,
    options: ConsumeOptions = {},
  ): Promise<StreamConsumer> {
    validateName(stream, 'stream name');
    validateName(durable, 'durable name');
    validateConsumeOptions(options);
    const context = `consumer "${durable}" of stream "${stream}"`;
    try {
      await this.#ensureDurable(stream, durable, options);
      const consumer = await jetstream(this.connection).consumers.get(stream, durable);
      let active = true;
      const messages = await consumer.consume({
        max_messages: PULL_BATCH,
        callback: (m) => {
          // Buffered but not handed over when stopped: left unacked, so it is redelivered.
          if (active) invoke(handler, this.#streamMsg(m), this.#sink, context);
        },
      });
      const handle: StreamConsumer = {
        stream,
        durable,
        stop: async () => {
          if (!active) return;
          active = false;
          this.#consumers.delete(handle);
          await messages.close();
          // Acks are plain publishes: make sure the server has them before the caller moves on.
          if (!this.connection.isClosed()) await this.connection.flush();
        },
      };
      this.#consumers.add(handle);
      return handle;
    } catch (err) {
      throw toBusError(err, context);
    }
  }

  async close(): Promise<void> {
    if (this.connection.isClosed()) return;
    await Promise.all([...this.#consumers].map((c) => c.stop()));
    await this.connection.close();
  }

  async drain(): Promise<void> {
    if (this.connection.isClosed()) return;
    await Promise.all([...this.#consumers].map((c) => c.stop()));
    await Promise.all([...this.#subs].map((s) => s.drain()));
    // Serve handlers already given a request still need the connection to send their reply.
    await Promise.allSettled([...this.#inflight]);
    await this.connection.drain();
  }

  #streamMsg(m: JsMsg): StreamMsg {
    return {
      ...busMsg(m.subject, m.data),
      seq: m.seq,
      deliveryCount: m.info.deliveryCount,
      redelivered: m.redelivered,
      ack: () => {
        // An ack after close cannot reach the server; the message is redelivered instead.
        if (!this.connection.isClosed()) m.ack();
      },
    };
  }

  async #ensureDurable(stream: string, durable: string, options: ConsumeOptions): Promise<void> {
    const jsm = await this.#jsm();
    const info = await jsm.consumers.info(stream, durable).catch((err: unknown) => {
      if (isApiError(err, JS_CONSUMER_NOT_FOUND)) return undefined;
      throw err;
    });
    if (!info) {
      await jsm.consumers.add(stream, {
        durable_name: durable,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        ack_wait: nanos(options.ackWaitMs ?? DEFAULT_ACK_WAIT_MS),
        max_ack_pending: options.maxAckPending ?? DEFAULT_MAX_ACK_PENDING,
      });
      return;
    }
    const update: Partial<ConsumerUpdateConfig> = {};
    if (options.ackWaitMs !== undefined && info.config.ack_wait !== nanos(options.ackWaitMs)) {
      update.ack_wait = nanos(options.ackWaitMs);
    }
    if (
      options.maxAckPending !== undefined &&
      info.config.max_ack_pending !== options.maxAckPending
    ) {
      update.max_ack_pending = options.maxAckPending;
    }
    if (Object.keys(update).length > 0) await jsm.consumers.update(stream, durable, update);
  }

  #jsm(): Promise<JetStreamManager> {
    this.#manager ??= jetstreamManager(this.connection);
    return this.#manager;
  }

  async #subscribe(
    subject: string,
    options: SubscribeOptions,
    onMsg: (m: Msg) => void,
  ): Promise<Subscription> {
    const sub = await this.#natsSubscribe(subject, options, onMsg);
    return { subject, unsubscribe: () => sub.unsubscribe() };
  }

  async #subscribeIterator(subject: string, options: SubscribeOptions): Promise<MsgIterator> {
    const queue = new AsyncQueue<BusMsg>(() => sub.unsubscribe());
    const sub = await this.#natsSubscribe(subject, options, (m) =>
      queue.push(busMsg(m.subject, m.data)),
    );
    void sub.closed.then(() => queue.end());
    return {
      subject,
      unsubscribe: () => sub.unsubscribe(),
      [Symbol.asyncIterator]: () => queue[Symbol.asyncIterator](),
    };
  }

  async #natsSubscribe(
    subject: string,
    options: SubscribeOptions,
    onMsg: (m: Msg) => void,
  ): Promise<NatsSubscription> {
    validateSubject(subject, 'subscribe');
    if (options.queue !== undefined) validateQueue(options.queue);
    let sub: NatsSubscription;
    try {
      sub = this.connection.subscribe(subject, {
        queue: options.queue,
        callback: (err, m) => {
          if (err) this.#sink(err, `subscription to "${subject}"`);
          else onMsg(m);
        },
      });
      // Once the server has the SUB, messages published by anyone afterwards reach it.
      await this.connection.flush();
    } catch (err) {
      throw toBusError(err, `subscribe to "${subject}"`);
    }
    this.#subs.add(sub);
    void sub.closed.then(() => this.#subs.delete(sub));
    return sub;
  }
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((s) => b.includes(s));
}
