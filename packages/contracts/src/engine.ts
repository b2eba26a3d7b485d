import { z } from 'zod';

/** A tracefs path: relative (`set_ftrace_filter`, `instances/a/trace`) or under /sys/kernel/tracing. */
export const TracefsPathSchema = z
  .string()
  .max(256)
  .regex(/^[A-Za-z0-9_./-]*$/, 'a tracefs path is letters, digits, _, -, . and /')
  .refine((p) => !p.split('/').includes('..'), 'a tracefs path may not contain ..');

export const TracefsReadRequestSchema = z.object({ path: TracefsPathSchema }).strict();
export type TracefsReadRequest = z.infer<typeof TracefsReadRequestSchema>;

export const TracefsReadReplySchema = z.object({ data: z.string() }).strict();
export type TracefsReadReply = z.infer<typeof TracefsReadReplySchema>;

export const TracefsWriteRequestSchema = z
  .object({
    path: TracefsPathSchema,
    data: z.string().max(1 << 20),
    /** Open with O_APPEND (`>>`) instead of truncating (`>`). */
    append: z.boolean().default(false),
  })
  .strict();
export type TracefsWriteRequest = z.infer<typeof TracefsWriteRequestSchema>;

export const TracefsWriteReplySchema = z
  .object({ written: z.number().int().nonnegative() })
  .strict();
export type TracefsWriteReply = z.infer<typeof TracefsWriteReplySchema>;

export const TracefsListRequestSchema = z.object({ dir: TracefsPathSchema.default('') }).strict();
export type TracefsListRequest = z.infer<typeof TracefsListRequestSchema>;

export const TracefsListReplySchema = z.object({ entries: z.array(z.string()) }).strict();
export type TracefsListReply = z.infer<typeof TracefsListReplySchema>;

/** mkdir(2) or rmdir(2) of a tracefs directory: `instances/NAME` makes or removes an instance. */
export const TracefsDirRequestSchema = z.object({ path: TracefsPathSchema }).strict();
export type TracefsDirRequest = z.infer<typeof TracefsDirRequestSchema>;

export const TracefsDirReplySchema = z.object({ path: z.string() }).strict();
export type TracefsDirReply = z.infer<typeof TracefsDirReplySchema>;

/** Run a workload to completion on the agent's kernel: a built-in name or a workload document. */
export const RunRequestSchema = z
  .object({
    workload: z.union([z.string().min(1).max(64), z.record(z.string(), z.unknown())]),
    seed: z.number().int().nonnegative().max(0xffffffff).optional(),
  })
  .strict();
export type RunRequest = z.infer<typeof RunRequestSchema>;

/** Start a workload in the background; it runs sliceCalls calls between publishes of its output. */
export const WorkloadStartRequestSchema = RunRequestSchema.extend({
  sliceCalls: z.number().int().min(1).max(1_000_000).optional(),
}).strict();
export type WorkloadStartRequest = z.infer<typeof WorkloadStartRequestSchema>;

export const WorkloadStartReplySchema = z
  .object({ workload: z.string(), seed: z.number().int().nonnegative() })
  .strict();
export type WorkloadStartReply = z.infer<typeof WorkloadStartReplySchema>;

export const RunReplySchema = z
  .object({
    workload: z.string(),
    seed: z.number().int().nonnegative(),
    calls: z.number().int().nonnegative(),
    switches: z.number().int().nonnegative(),
    fault: z.string().nullable(),
    /** Present when a started workload was stopped before its end. */
    stopped: z.literal(true).optional(),
    elapsedNs: z.number().nonnegative(),
  })
  .strict();
export type RunReply = z.infer<typeof RunReplySchema>;
