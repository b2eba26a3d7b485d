export type {
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
export { decodeJson, decodeText, encodeJson, encodeText } from './codec.js';
export {
  BUS_ERROR_CODES,
  BusError,
  isBusError,
  type BusErrorCode,
  type BusErrorOptions,
  type KnownBusErrorCode,
} from './errors.js';
export { LocalBroker, LocalBus, type LocalBusOptions } from './local-bus.js';
export { NatsBus, type NatsBusOptions } from './nats-bus.js';
export { startNatsServer, type NatsServer, type StartNatsServerOptions } from './nats-server.js';
export {
  RESERVED_SUBJECT_PREFIXES,
  subjectMatches,
  validateSubject,
  type SubjectUse,
} from './subject.js';
