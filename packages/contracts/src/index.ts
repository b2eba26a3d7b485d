export {
  ERRNO,
  ErrnoCodeSchema,
  ErrorDetailsSchema,
  ErrorEnvelopeSchema,
  TracelabError,
  formatPath,
  issuesToDetails,
  parseOrThrow,
} from './errors.js';
export type { ErrnoCode, ErrorDetails, ErrorEnvelope } from './errors.js';
export { API_VERSION, TOKEN_PATTERN, TRACE_STREAM, isToken, routes, subjects } from './subjects.js';
export { AgentHealthSchema, AgentIdSchema, AgentInfoSchema, ArchSchema } from './agent.js';
export type { AgentHealth, AgentInfo, Arch } from './agent.js';
export { StreamKindSchema, TraceEventBatchSchema, TraceEventSchema } from './events.js';
export type { StreamKind, TraceEvent, TraceEventBatch } from './events.js';
export {
  RunReplySchema,
  RunRequestSchema,
  TracefsListReplySchema,
  TracefsListRequestSchema,
  TracefsPathSchema,
  TracefsReadReplySchema,
  TracefsReadRequestSchema,
  TracefsWriteReplySchema,
  TracefsWriteRequestSchema,
} from './engine.js';
export type {
  RunReply,
  RunRequest,
  TracefsListReply,
  TracefsListRequest,
  TracefsReadReply,
  TracefsReadRequest,
  TracefsWriteReply,
  TracefsWriteRequest,
} from './engine.js';
