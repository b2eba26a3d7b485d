import type { BpfOp } from './bpf.js';

/**
 * Versioned names of everything that crosses a process: bus subjects and HTTP routes. A breaking
 * change to a message bumps API_VERSION so old and new processes never misread each other.
 */
export const API_VERSION = 'v1' as const;

/** An agent id or stream name is one NATS subject token: no dots, wildcards or white space. */
export const TOKEN_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export function isToken(s: string): boolean {
  return TOKEN_PATTERN.test(s);
}

function token(kind: string, s: string): string {
  if (!isToken(s)) {
    throw new RangeError(
      `${kind} ${JSON.stringify(s)} is not a subject token (letters, digits, _ and -, 1-64 chars)`,
    );
  }
  return s;
}

export const subjects = {
  /** Request/reply: one agent's identity and machine description. */
  agentInfo: (agentId: string) =>
    `tracelab.${API_VERSION}.agent.${token('agent id', agentId)}.info`,
  /** Request/reply: one agent's liveness and counters. */
  agentHealth: (agentId: string) =>
    `tracelab.${API_VERSION}.agent.${token('agent id', agentId)}.health`,
  /** Request/reply: read, write and list tracefs files of one agent's kernel. */
  tracefsRead: (agentId: string) =>
    `tracelab.${API_VERSION}.agent.${token('agent id', agentId)}.tracefs.read`,
  tracefsWrite: (agentId: string) =>
    `tracelab.${API_VERSION}.agent.${token('agent id', agentId)}.tracefs.write`,
  tracefsList: (agentId: string) =>
    `tracelab.${API_VERSION}.agent.${token('agent id', agentId)}.tracefs.list`,
  /** Request/reply: mkdir and rmdir of tracefs directories (trace instances). */
  tracefsMkdir: (agentId: string) =>
    `tracelab.${API_VERSION}.agent.${token('agent id', agentId)}.tracefs.mkdir`,
  tracefsRmdir: (agentId: string) =>
    `tracelab.${API_VERSION}.agent.${token('agent id', agentId)}.tracefs.rmdir`,
  /** Request/reply: run a workload on one agent's kernel. */
  run: (agentId: string) => `tracelab.${API_VERSION}.agent.${token('agent id', agentId)}.run`,
  /** Request/reply: start a workload in the background on one agent's kernel, and stop it. */
  workloadStart: (agentId: string) =>
    `tracelab.${API_VERSION}.agent.${token('agent id', agentId)}.workload.start`,
  workloadStop: (agentId: string) =>
    `tracelab.${API_VERSION}.agent.${token('agent id', agentId)}.workload.stop`,
  /** Request/reply: list the functions of one agent's kernel image, by glob. */
  functions: (agentId: string) =>
    `tracelab.${API_VERSION}.agent.${token('agent id', agentId)}.functions`,
  /** Request/reply: one bpf() operation (`prog.load`, `map.lookup`, ...) on one agent's kernel. */
  bpf: (agentId: string, op: BpfOp) =>
    `tracelab.${API_VERSION}.agent.${token('agent id', agentId)}.bpf.${op}`,
  /** Publish: every agent announces itself here when it starts and answers pings. */
  agentAnnounce: `tracelab.${API_VERSION}.agents.announce`,
  /** Request (any agent replies) / publish: ask all agents to announce themselves. */
  agentPing: `tracelab.${API_VERSION}.agents.ping`,
  /** Trace output of one agent and stream; captured by the TRACE stream on JetStream. */
  trace: (agentId: string, stream: string) =>
    `tracelab.trace.${token('agent id', agentId)}.${token('stream', stream)}`,
  /** Every trace subject, for collectors and the durable stream. */
  traceAll: 'tracelab.trace.>',
} as const;

/** The JetStream stream that keeps trace output for consumers that restart. */
export const TRACE_STREAM = 'TRACELAB_TRACE';

export const routes = {
  health: '/healthz',
  info: `/${API_VERSION}/info`,
  agents: `/${API_VERSION}/agents`,
  agentHealth: `/${API_VERSION}/agents/:agentId/health`,
  tracefs: `/${API_VERSION}/agents/:agentId/tracefs/*`,
  run: `/${API_VERSION}/agents/:agentId/run`,
  workload: `/${API_VERSION}/agents/:agentId/workload`,
  functions: `/${API_VERSION}/agents/:agentId/functions`,
  programs: `/${API_VERSION}/agents/:agentId/programs`,
  programVerify: `/${API_VERSION}/agents/:agentId/programs/verify`,
  program: `/${API_VERSION}/agents/:agentId/programs/:fd`,
  maps: `/${API_VERSION}/agents/:agentId/maps`,
  map: `/${API_VERSION}/agents/:agentId/maps/:fd`,
  mapEntry: `/${API_VERSION}/agents/:agentId/maps/:fd/entries/:key`,
  links: `/${API_VERSION}/agents/:agentId/links`,
  link: `/${API_VERSION}/agents/:agentId/links/:fd`,
} as const;
