import { z } from 'zod';
import { TOKEN_PATTERN } from './subjects.js';

export const AgentIdSchema = z
  .string()
  .regex(TOKEN_PATTERN, 'an agent id is 1-64 letters, digits, _ or -');

export const ArchSchema = z.enum(['x86_64', 'arm64', 'i386', 'riscv64']);
export type Arch = z.infer<typeof ArchSchema>;

/** What an agent says about itself: who it is and what machine it simulates. */
export const AgentInfoSchema = z
  .object({
    id: AgentIdSchema,
    version: z.string(),
    hostname: z.string(),
    pid: z.number().int().positive(),
    startedAt: z.iso.datetime(),
    transport: z.enum(['local', 'nats']),
    machine: z
      .object({
        arch: ArchSchema,
        cpus: z.number().int().positive(),
      })
      .strict()
      .optional(),
  })
  .strict();
export type AgentInfo = z.infer<typeof AgentInfoSchema>;

export const AgentHealthSchema = z
  .object({
    id: AgentIdSchema,
    status: z.enum(['ok', 'degraded']),
    uptimeMs: z.number().int().nonnegative(),
    /** Trace events this agent has published, and events its buffers dropped before that. */
    published: z.number().int().nonnegative(),
    lost: z.number().int().nonnegative(),
  })
  .strict();
export type AgentHealth = z.infer<typeof AgentHealthSchema>;
