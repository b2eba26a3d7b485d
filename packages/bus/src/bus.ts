/** A message as a handler sees it: bytes at the bottom, with text and JSON views. */
export interface BusMsg {
  readonly subject: string;
  readonly data: Uint8Array;
  string(): string;
  json<T = unknown>(): T;
}

/** A message delivered from a durable stream; it stays pending until `ack()`. */
export interface StreamMsg extends BusMsg {
  /** Sequence number of the message in its stream (1-based). */
  readonly seq: number;
  /** 1 on first delivery, then counts redeliveries after an ack wait expired. */
  readonly deliveryCount: number;
  readonly redelivered: boolean;
  ack(): void;
}

export interface RequestOptions {
  timeoutMs: number;
}

export interface SubscribeOptions {
  /** Members of one queue group share the messages: each message goes to exactly one of them. */
  queue?: string;
}

export type MsgHandler = (msg: BusMsg) => void | Promise<void>;
/** Returns the reply payload; a thrown error reaches the requester as a remote BusError. */
export type RequestHandler = (msg: BusMsg) => Uint8Array | Promise<Uint8Array>;
export type StreamMsgHandler = (msg: StreamMsg) => void | Promise<void>;

export interface Subscription {
  readonly subject: string;
  unsubscribe(): void;
}

/** A subscription read with `for await`; iteration ends on unsubscribe, close or drain. */
export interface MsgIterator extends Subscription, AsyncIterable<BusMsg> {}

export interface StreamConfig {
  name: string;
  subjects: string[];
}

export interface ConsumeOptions {
  /** How long a delivered message may stay unacked before it is redelivered (default 30 s). */
  ackWaitMs?: number;
  /**
   * Upper bound of delivered-but-unacked messages for the durable as a whole, across all its
   * consumers (default 1000, JetStream's default); delivery pauses at the bound.
   */
  maxAckPending?: number;
}

export interface StreamConsumer {
  readonly stream: string;
  readonly durable: string;
  /** Stops delivery; messages handed out but not acked are redelivered after the ack wait. */
  stop(): Promise<void>;
}

/** Reports errors that no caller can receive: handlers that throw, transport notices. */
export type BusErrorSink = (err: unknown, context: string) => void;

/**
 * The message bus every tracelab component talks through. Adapters: LocalBus (in-process) and
 * NatsBus (NATS core + JetStream). Handlers are never awaited by the bus; delivery order per
 * subscription follows publish order per subject.
 */
export interface Bus {
  /** Resolves with the first reply; rejects with BusError ETIMEDOUT, EHOSTUNREACH or a remote code. */
  request(subject: string, payload: Uint8Array, options: RequestOptions): Promise<BusMsg>;
  /** Answers requests on `subject`; resolves once the server knows about the subscription. */
  serve(
    subject: string,
    handler: RequestHandler,
    options?: SubscribeOptions,
  ): Promise<Subscription>;
  /** Fire-and-forget; streams whose subjects match capture the message. */
  publish(subject: string, payload: Uint8Array): void;
  /** Resolves once the server has processed everything this client sent before. */
  flush(): Promise<void>;
  subscribe(
    subject: string,
    handler: MsgHandler,
    options?: SubscribeOptions,
  ): Promise<Subscription>;
  subscribe(subject: string, options?: SubscribeOptions): Promise<MsgIterator>;
  /** Creates the stream, or updates its subjects if it exists. */
  ensureStream(config: StreamConfig): Promise<void>;
  /**
   * Delivers the stream's messages to a durable consumer with explicit ack, from its first
   * message or from where the durable left off. Creates the durable on first use.
   */
  consume(
    stream: string,
    durable: string,
    handler: StreamMsgHandler,
    options?: ConsumeOptions,
  ): Promise<StreamConsumer>;
  /** Stops at once: subscriptions end, pending requests reject with ESHUTDOWN. */
  close(): Promise<void>;
  /** Stops taking messages, lets handlers already given messages finish and reply, then closes. */
  drain(): Promise<void>;
  readonly isClosed: boolean;
}
