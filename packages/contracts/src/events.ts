import { z } from 'zod';
import { AgentIdSchema } from './agent.js';

/** The output streams an agent publishes, named as tracefs and the bpf() API name them. */
export const StreamKindSchema = z.enum(['trace', 'trace_pipe', 'ringbuf', 'perf', 'printk']);
export type StreamKind = z.infer<typeof StreamKindSchema>;

/** A kernel address or other u64, in decimal. */
export const U64Schema = z.string().regex(/^(0|[1-9][0-9]{0,19})$/, 'a u64 in decimal');

/** A task's command name: TASK_COMM_LEN is 16. */
export const CommSchema = z.string().max(16);

/** The most events one batch may hold. */
export const MAX_BATCH_EVENTS = 65536;

/** A record's raw bytes. */
export const Base64Schema = z.base64();

/** Fields every event carries: where and when it happened. Times are simulated nanoseconds. */
const header = {
  ts: z.number().int().nonnegative(),
  cpu: z.number().int().nonnegative(),
  pid: z.number().int().nonnegative(),
  comm: CommSchema,
};

/**
 * One trace event. Kernel addresses are u64 decimal strings, because JSON numbers lose precision
 * above 2^53 and kernel text lives at 0xffffffff8...
 */
export const TraceEventSchema = z.discriminatedUnion('type', [
  z
    .object({
      type: z.literal('function'),
      ...header,
      ip: U64Schema,
      parentIp: U64Schema,
      func: z.string(),
      parent: z.string(),
    })
    .strict(),
  z
    .object({
      type: z.literal('funcgraph_entry'),
      ...header,
      func: z.string(),
      depth: z.number().int().nonnegative(),
    })
    .strict(),
  z
    .object({
      type: z.literal('funcgraph_exit'),
      ...header,
      func: z.string(),
      depth: z.number().int().nonnegative(),
      calltime: z.number().int().nonnegative(),
      retval: U64Schema.optional(),
    })
    .strict(),
  /**
   * A dynamic event's entry (e.g. an fprobe event): its name, its arguments as the trace prints
   * them (numbers where exact, text otherwise; array elements as `name[i]`), and optionally its
   * group and probed address (`__probe_ip`, or `__probe_func` with `retIp` for a return probe).
   */
  z
    .object({
      type: z.literal('probe'),
      ...header,
      event: z.string(),
      fields: z.record(z.string(), z.union([z.string(), z.number()])),
      group: z.string().optional(),
      ip: U64Schema.optional(),
      retIp: U64Schema.optional(),
    })
    .strict(),
  z.object({ type: z.literal('record'), ...header, base64: Base64Schema }).strict(),
  z.object({ type: z.literal('text'), ...header, text: z.string() }).strict(),
]);
export type TraceEvent = z.infer<typeof TraceEventSchema>;

/**
 * A batch of consecutive events of one stream. Sequence numbers are per (agent, stream) and have
 * no holes: a consumer that sees firstSeq jump knows how many events it missed on the wire, and
 * `lost` says how many the producer itself dropped (ring buffer overrun) before this batch.
 */
export const TraceEventBatchSchema = z
  .object({
    agentId: AgentIdSchema,
    stream: StreamKindSchema,
    firstSeq: z.number().int().nonnegative(),
    events: z.array(TraceEventSchema).max(MAX_BATCH_EVENTS),
    lost: z.number().int().nonnegative(),
  })
  .strict();
export type TraceEventBatch = z.infer<typeof TraceEventBatchSchema>;
