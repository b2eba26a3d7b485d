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
import { encodeJson } from './codec.js';
import { BusError, errorCodeOf, errorMessageOf } from './errors.js';
import { busMsg, defaultErrorSink, invoke } from './msg.js';
import { AsyncQueue } from './queue.js';
import {
  patternsOverlap,
  subjectMatches,
  validateName,
  validateQueue,
  validateSubject,
} from './subject.js';
import { validateConsumeOptions, validateTimeout } from './options.js';

const DEFAULT_ACK_WAIT_MS = 30_000;
const DEFAULT_MAX_ACK_PENDING = 1000;
const EMPTY = new Uint8Array(0);

interface RemoteError {
  code: string;
  message: string;
}

interface Delivery {
  subject: string;
  data: Uint8Array;
  reply?: (data: Uint8Array, error?: RemoteError) => void;
}

interface Route {
  pattern: string;
  queue: string | undefined;
  deliver(delivery: Delivery): void;
}

interface StoredMsg {
  seq: number;
  subject: string;
  data: Uint8Array;
}

class LocalStream {
  readonly messages: StoredMsg[] = [];
  readonly durables = new Map<string, LocalDurable>();

  constructor(
    readonly name: string,
    public subjects: string[],
  ) {}

  append(subject: string, data: Uint8Array): number {
    const seq = this.messages.length + 1;
    this.messages.push({ seq, subject, data });
    for (const durable of this.durables.values()) durable.pump();
    return seq;
  }
}

interface Attachment {
  deliver(stored: StoredMsg, deliveryCount: number): void;
}

interface PendingEntry {
  count: number;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** A JetStream-like durable pull consumer: explicit ack, redelivery after the ack wait. */
class LocalDurable {
  ackWaitMs = DEFAULT_ACK_WAIT_MS;
  maxAckPending = DEFAULT_MAX_ACK_PENDING;
  #next = 1;
  readonly #pending = new Map<number, PendingEntry>();
  // Sequences whose ack wait expired; JetStream sends these before new messages, oldest first.
  readonly #redeliver: number[] = [];
  readonly #attached: Attachment[] = [];
  #turn = 0;

  constructor(readonly stream: LocalStream) {}

  attach(attachment: Attachment): void {
    this.#attached.push(attachment);
    this.pump();
  }

  detach(attachment: Attachment): void {
    const i = this.#attached.indexOf(attachment);
    if (i >= 0) this.#attached.splice(i, 1);
  }

  ack(seq: number): void {
    const entry = this.#pending.get(seq);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.#pending.delete(seq);
    const queued = this.#redeliver.indexOf(seq);
    if (queued >= 0) this.#redeliver.splice(queued, 1);
    this.pump();
  }

  pump(): void {
    while (this.#attached.length > 0) {
      // Expired messages already count as pending, so only new ones wait for room.
      let seq = this.#redeliver.shift();
      if (seq === undefined) {
        if (this.#pending.size >= this.maxAckPending) return;
        if (this.#next > this.stream.messages.length) return;
        seq = this.#next++;
      }
      const entry = this.#pending.get(seq) ?? { count: 0, timer: undefined };
      entry.count += 1;
      entry.timer = this.#expireAfterAckWait(seq);
      this.#pending.set(seq, entry);
      const target = this.#attached[this.#turn++ % this.#attached.length];
      target.deliver(this.stream.messages[seq - 1], entry.count);
    }
  }

  #expireAfterAckWait(seq: number): ReturnType<typeof setTimeout> {
    const timer = setTimeout(() => {
      if (!this.#pending.has(seq)) return;
      const at = this.#redeliver.findIndex((s) => s > seq);
      this.#redeliver.splice(at < 0 ? this.#redeliver.length : at, 0, seq);
      this.pump();
    }, this.ackWaitMs);
    // A forgotten durable must not keep the process alive.
    timer.unref();
    return timer;
  }
}

/**
 * The in-process "server": subscriptions, queue groups, streams and durables shared by every
 * LocalBus connected to it. Durable state lives here, so a consumer resumes across connections.
 */
export class LocalBroker {
  readonly #routes = new Set<Route>();
  readonly #turns = new Map<string, number>();
  readonly #streams = new Map<string, LocalStream>();

  connect(options: { onError?: BusErrorSink } = {}): LocalBus {
    return new LocalBus({ ...options, broker: this });
  }

  /** @internal */
  addRoute(route: Route): void {
    this.#routes.add(route);
  }

  /** @internal */
  removeRoute(route: Route): void {
    this.#routes.delete(route);
  }

  /** Delivers to plain subscribers, one member per queue group, and capturing streams; returns how many received it. */
  route(delivery: Delivery): number {
    let receivers = 0;
    const groups = new Map<string, Route[]>();
    for (const route of this.#routes) {
      if (!subjectMatches(route.pattern, delivery.subject)) continue;
      if (route.queue === undefined) {
        route.deliver(delivery);
        receivers++;
      } else {
        const members = groups.get(route.queue) ?? [];
        members.push(route);
        groups.set(route.queue, members);
      }
    }
    for (const [queue, members] of groups) {
      // Round robin rather than NATS's random pick: every member is sure to get work.
      const turn = this.#turns.get(queue) ?? 0;
      this.#turns.set(queue, turn + 1);
      members[turn % members.length].deliver(delivery);
      receivers++;
    }
    for (const stream of this.#streams.values()) {
      if (!stream.subjects.some((p) => subjectMatches(p, delivery.subject))) continue;
      const seq = stream.append(delivery.subject, delivery.data);
      // As in JetStream, a request to a stream subject is answered with the publish ack.
      delivery.reply?.(encodeJson({ stream: stream.name, seq }));
      receivers++;
    }
    return receivers;
  }

  /** @internal */
  ensureStream(config: StreamConfig): void {
    for (const other of this.#streams.values()) {
      if (other.name === config.name) continue;
      for (const mine of config.subjects) {
        if (other.subjects.some((theirs) => patternsOverlap(mine, theirs))) {
          throw new BusError(
            'EEXIST',
            `stream "${config.name}": subject "${mine}" overlaps stream "${other.name}"`,
          );
        }
      }
    }
    const existing = this.#streams.get(config.name);
    if (existing) existing.subjects = [...config.subjects];
    else this.#streams.set(config.name, new LocalStream(config.name, [...config.subjects]));
  }

  /** @internal */
  durable(streamName: string, name: string, options: ConsumeOptions): LocalDurable {
    const stream = this.#streams.get(streamName);
    if (!stream) throw new BusError('ENOENT', `stream "${streamName}" not found`);
    let durable = stream.durables.get(name);
    if (!durable) {
      durable = new LocalDurable(stream);
      stream.durables.set(name, durable);
    }
    if (options.ackWaitMs !== undefined) durable.ackWaitMs = options.ackWaitMs;
    if (options.maxAckPending !== undefined) durable.maxAckPending = options.maxAckPending;
    return durable;
  }
}

export interface LocalBusOptions {
  /** Share one broker between buses to model several processes; default: a private broker. */
  broker?: LocalBroker;
  onError?: BusErrorSink;
}

interface OwnedRoute extends Route {
  /** Delivery already queued still runs (drain) or is dropped (unsubscribe, close). */
  dropped: boolean;
  end(): void;
}

/** The in-process adapter: no network, same observable semantics as NatsBus. */
export class LocalBus implements Bus {
  readonly broker: LocalBroker;
  readonly #sink: BusErrorSink;
  readonly #routes = new Set<OwnedRoute>();
  readonly #consumers = new Set<StreamConsumer>();
  readonly #requests = new Set<(err: BusError) => void>();
  readonly #inflight = new Set<Promise<void>>();
  #closed = false;
  #inbox = 0;

  constructor(options: LocalBusOptions = {}) {
    this.broker = options.broker ?? new LocalBroker();
    this.#sink = options.onError ?? defaultErrorSink;
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  async request(subject: string, payload: Uint8Array, options: RequestOptions): Promise<BusMsg> {
    this.#checkOpen();
    validateSubject(subject, 'publish');
    validateTimeout(options.timeoutMs);
    const inbox = `_INBOX.local.${++this.#inbox}`;
    return await new Promise<BusMsg>((resolve, reject) => {
      const fail = (err: BusError): void => settle(() => reject(err));
      const settle = (finish: () => void): void => {
        if (!this.#requests.delete(fail)) return;
        clearTimeout(timer);
        finish();
      };
      const timer = setTimeout(
        () =>
          fail(
            new BusError(
              'ETIMEDOUT',
              `request to "${subject}" timed out after ${options.timeoutMs} ms`,
            ),
          ),
        options.timeoutMs,
      );
      this.#requests.add(fail);
      const receivers = this.broker.route({
        subject,
        data: payload,
        reply: (data, error) =>
          settle(() =>
            error
              ? reject(new BusError(error.code, error.message, { remote: true }))
              : resolve(busMsg(inbox, data)),
          ),
      });
      if (receivers === 0) fail(new BusError('EHOSTUNREACH', `no responders for "${subject}"`));
    });
  }

  serve(
    subject: string,
    handler: RequestHandler,
    options: SubscribeOptions = {},
  ): Promise<Subscription> {
    return this.#subscribe(subject, options, (delivery) => {
      const msg = busMsg(delivery.subject, delivery.data);
      const done = Promise.resolve()
        .then(() => handler(msg))
        .then(
          (data) => delivery.reply?.(data),
          (err: unknown) => {
            if (delivery.reply) {
              delivery.reply(EMPTY, { code: errorCodeOf(err), message: errorMessageOf(err) });
            } else {
              this.#sink(err, `handler for "${subject}"`);
            }
          },
        )
        .finally(() => this.#inflight.delete(done));
      this.#inflight.add(done);
    });
  }

  publish(subject: string, payload: Uint8Array): void {
    this.#checkOpen();
    validateSubject(subject, 'publish');
    this.broker.route({ subject, data: payload });
  }

  flush(): Promise<void> {
    this.#checkOpen();
    // Routing is synchronous: everything published before is already with the broker.
    return Promise.resolve();
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
      return this.#subscribe(subject, maybeOptions ?? {}, (delivery) =>
        invoke(
          handler,
          busMsg(delivery.subject, delivery.data),
          this.#sink,
          `subscriber of "${subject}"`,
        ),
      );
    }
    return this.#subscribeIterator(subject, handlerOrOptions ?? {});
  }

  async ensureStream(config: StreamConfig): Promise<void> {
    this.#checkOpen();
    validateName(config.name, 'stream name');
    if (config.subjects.length === 0)
      throw new BusError('EINVAL', `stream "${config.name}" needs subjects`);
    for (const subject of config.subjects) validateSubject(subject, 'subscribe');
    this.broker.ensureStream(config);
  }

  async consume(
    stream: string,
    durableName: string,
    handler: StreamMsgHandler,
    options: ConsumeOptions = {},
  ): Promise<StreamConsumer> {
    this.#checkOpen();
    validateName(stream, 'stream name');
    validateName(durableName, 'durable name');
    validateConsumeOptions(options);
    const durable = this.broker.durable(stream, durableName, options);
    let active = true;
    const attachment: Attachment = {
      deliver: (stored, deliveryCount) => {
        const msg: StreamMsg = {
          ...busMsg(stored.subject, stored.data),
          seq: stored.seq,
          deliveryCount,
          redelivered: deliveryCount > 1,
          ack: () => {
            // An ack sent after the connection closed never reaches the server.
            if (!this.#closed) durable.ack(stored.seq);
          },
        };
        // Not yet handed to the handler when stopped: left pending, so it is redelivered.
        queueMicrotask(() => {
          if (active) invoke(handler, msg, this.#sink, `consumer "${durableName}" of "${stream}"`);
        });
      },
    };
    const consumer: StreamConsumer = {
      stream,
      durable: durableName,
      stop: () => {
        active = false;
        durable.detach(attachment);
        this.#consumers.delete(consumer);
        return Promise.resolve();
      },
    };
    this.#consumers.add(consumer);
    durable.attach(attachment);
    return consumer;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const route of this.#routes) {
      route.dropped = true;
      this.#unroute(route);
    }
    await Promise.all([...this.#consumers].map((c) => c.stop()));
    for (const fail of [...this.#requests]) fail(new BusError('ESHUTDOWN', 'bus closed'));
  }

  async drain(): Promise<void> {
    if (this.#closed) return;
    for (const route of this.#routes) this.#unroute(route);
    await Promise.all([...this.#consumers].map((c) => c.stop()));
    // Deliveries already queued run as microtasks, all before the next macrotask.
    await new Promise((resolve) => setImmediate(resolve));
    await Promise.allSettled([...this.#inflight]);
    await this.close();
  }

  #unroute(route: OwnedRoute): void {
    this.broker.removeRoute(route);
    this.#routes.delete(route);
    route.end();
  }

  async #subscribe(
    subject: string,
    options: SubscribeOptions,
    onDelivery: (delivery: Delivery) => void,
  ): Promise<Subscription> {
    const route = this.#addRoute(subject, options, (self, delivery) =>
      // Never inside publish: NATS delivers asynchronously, so LocalBus does too.
      queueMicrotask(() => {
        if (!self.dropped) onDelivery(delivery);
      }),
    );
    return {
      subject,
      unsubscribe: () => {
        route.dropped = true;
        this.#unroute(route);
      },
    };
  }

  async #subscribeIterator(subject: string, options: SubscribeOptions): Promise<MsgIterator> {
    const unsubscribe = (): void => {
      route.dropped = true;
      this.#unroute(route);
    };
    const queue = new AsyncQueue<BusMsg>(unsubscribe);
    const route = this.#addRoute(
      subject,
      options,
      (_self, delivery) => queue.push(busMsg(delivery.subject, delivery.data)),
      () => queue.end(),
    );
    return {
      subject,
      unsubscribe,
      [Symbol.asyncIterator]: () => queue[Symbol.asyncIterator](),
    };
  }

  #addRoute(
    subject: string,
    options: SubscribeOptions,
    deliver: (self: OwnedRoute, delivery: Delivery) => void,
    end: () => void = () => undefined,
  ): OwnedRoute {
    this.#checkOpen();
    validateSubject(subject, 'subscribe');
    if (options.queue !== undefined) validateQueue(options.queue);
    const route: OwnedRoute = {
      pattern: subject,
      queue: options.queue,
      dropped: false,
      deliver: (delivery) => deliver(route, delivery),
      end,
    };
    this.#routes.add(route);
    this.broker.addRoute(route);
    return route;
  }

  #checkOpen(): void {
    if (this.#closed) throw new BusError('ESHUTDOWN', 'bus closed');
  }
}
