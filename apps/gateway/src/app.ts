import bearerAuth from '@fastify/bearer-auth';
import rateLimit from '@fastify/rate-limit';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import {
  API_VERSION,
  AgentHealthSchema,
  AgentIdSchema,
  AgentInfoSchema,
  ErrorEnvelopeSchema,
  RunReplySchema,
  RunRequestSchema,
  StreamKindSchema,
  TracefsListReplySchema,
  TracefsPathSchema,
  TracefsDirReplySchema,
  TracefsWriteReplySchema,
  WorkloadStartReplySchema,
  WorkloadStartRequestSchema,
  TracelabError,
  routes,
  subjects,
} from '@tracelab/contracts';
import type { Bus } from '@tracelab/bus';
import Fastify, { type FastifyInstance } from 'fastify';
import {
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AgentDirectory } from './agents.js';
import { bpfMutatingRoutes, bpfReadRoutes } from './bpf-routes.js';
import { errorHandler, notFoundHandler } from './errors.js';
import { livePage } from './live-page.js';
import { EventStreams, streamRoute } from './sse.js';

export interface GatewayOptions {
  bus: Bus;
  /** tracelab's version, reported by /v1/info. */
  version: string;
  transport: 'local' | 'nats';
  /** Fastify's logger setting; off by default so tests stay quiet. */
  logger?: boolean;
  /** Upper bound of any bus request a route makes. */
  maxTimeoutMs?: number;
  /** Bearer token every mutating route requires (`Authorization: Bearer TOKEN`). */
  token: string;
  /**
   * At most `max` requests per client address in any `timeWindowMs` (default 1000 a minute);
   * more is a 429 EAGAIN envelope with a Retry-After header. /healthz is never limited.
   */
  rateLimit?: { max: number; timeWindowMs: number };
  /** Interval of the keep-alive comment on server-sent-events streams (default 15 s). */
  keepAliveMs?: number;
}

const errors = {
  400: ErrorEnvelopeSchema,
  401: ErrorEnvelopeSchema,
  403: ErrorEnvelopeSchema,
  404: ErrorEnvelopeSchema,
  409: ErrorEnvelopeSchema,
  413: ErrorEnvelopeSchema,
  429: ErrorEnvelopeSchema,
  501: ErrorEnvelopeSchema,
  502: ErrorEnvelopeSchema,
  503: ErrorEnvelopeSchema,
  504: ErrorEnvelopeSchema,
};

/** The HTTP gateway: a Fastify instance with tracelab's routes. */
export type Gateway = FastifyInstance;

/** Builds the HTTP gateway: routes onto the agents' bus endpoints, with OpenAPI docs. */
export async function buildGateway(options: GatewayOptions): Promise<Gateway> {
  const maxTimeoutMs = options.maxTimeoutMs ?? 30_000;
  const app = Fastify({ logger: options.logger ?? false });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);

  // registered before any route: the plugin hooks every route added after it
  const limit = options.rateLimit ?? { max: 1000, timeWindowMs: 60_000 };
  await app.register(rateLimit, {
    max: limit.max,
    timeWindow: limit.timeWindowMs,
    errorResponseBuilder: (_request, context) =>
      new TracelabError(
        'EAGAIN',
        `rate limit exceeded: at most ${context.max} requests per ${limit.timeWindowMs} ms, retry in ${context.after}`,
      ),
  });

  await app.register(fastifySwagger, {
    openapi: {
      info: {
        title: 'tracelab gateway',
        description: 'A traced simulated kernel over HTTP',
        version: options.version,
      },
    },
    transform: jsonSchemaTransform,
  });
  await app.register(fastifySwaggerUi, { routePrefix: '/documentation' });

  const directory = new AgentDirectory(options.bus, (reason) => app.log.warn(reason));
  app.addHook('onReady', () => directory.start());
  app.addHook('onClose', () => directory.stop());
  const streams = new EventStreams(options.bus, options.keepAliveMs ?? 15_000, (reason) =>
    app.log.warn(reason),
  );
  // open event streams would keep the server from closing
  app.addHook('preClose', () => streams.closeAll());

  const api = app.withTypeProvider<ZodTypeProvider>();

  api.get(
    routes.health,
    {
      config: { rateLimit: false },
      schema: { response: { 200: z.object({ status: z.literal('ok') }) } },
    },
    () => ({
      status: 'ok' as const,
    }),
  );

  api.get(
    routes.info,
    {
      schema: {
        response: {
          200: z.object({
            name: z.literal('tracelab'),
            version: z.string(),
            api: z.literal(API_VERSION),
            transport: z.enum(['local', 'nats']),
            agents: z.array(AgentInfoSchema),
          }),
        },
      },
    },
    () => ({
      name: 'tracelab' as const,
      version: options.version,
      api: API_VERSION,
      transport: options.transport,
      agents: directory.list(),
    }),
  );

  api.get(routes.agents, { schema: { response: { 200: z.array(AgentInfoSchema) } } }, () =>
    directory.list(),
  );

  api.get(
    routes.agentHealth,
    {
      schema: {
        params: z.object({ agentId: AgentIdSchema }),
        querystring: z.object({
          timeoutMs: z.coerce.number().int().min(1).max(maxTimeoutMs).default(2000),
        }),
        response: { 200: AgentHealthSchema, ...errors },
      },
    },
    async (request) => {
      const { agentId } = request.params;
      const reply = await options.bus.request(subjects.agentHealth(agentId), new Uint8Array(), {
        timeoutMs: request.query.timeoutMs,
      });
      const health = AgentHealthSchema.safeParse(reply.json());
      if (!health.success)
        throw new TracelabError('EIO', `agent ${agentId} sent a malformed health reply`);
      return health.data;
    },
  );

  const agentParams = z.object({ agentId: AgentIdSchema, '*': TracefsPathSchema });
  const timeout = z.object({
    timeoutMs: z.coerce.number().int().min(1).max(maxTimeoutMs).default(5000),
  });
  /** One bus request to an agent; a reply that breaks the contract is the agent's fault (502). */
  async function ask<T>(
    subject: string,
    body: unknown,
    timeoutMs: number,
    reply: z.ZodType<T>,
  ): Promise<T> {
    const msg = await options.bus.request(subject, new TextEncoder().encode(JSON.stringify(body)), {
      timeoutMs,
    });
    const parsed = reply.safeParse(msg.json());
    if (!parsed.success)
      throw new TracelabError('EIO', `agent sent a malformed reply on ${subject}`);
    return parsed.data;
  }

  api.get(
    routes.tracefs,
    {
      schema: {
        description:
          "Read a tracefs file of the agent's kernel (trace, enabled_functions, ...) as text",
        params: agentParams,
        querystring: timeout,
        response: { 200: z.string(), ...errors },
      },
    },
    async (request, reply) => {
      const { agentId, '*': path } = request.params;
      const { data } = await ask(
        subjects.tracefsRead(agentId),
        { path },
        request.query.timeoutMs,
        z.object({ data: z.string() }),
      );
      return reply.type('text/plain; charset=utf-8').send(data);
    },
  );

  api.get(
    `/${API_VERSION}/agents/:agentId/tracefs`,
    {
      schema: {
        description: "List a tracefs directory of the agent's kernel",
        params: z.object({ agentId: AgentIdSchema }),
        querystring: timeout.extend({ dir: TracefsPathSchema.default('') }),
        response: { 200: TracefsListReplySchema, ...errors },
      },
    },
    async (request) =>
      ask(
        subjects.tracefsList(request.params.agentId),
        { dir: request.query.dir },
        request.query.timeoutMs,
        TracefsListReplySchema,
      ),
  );

  const bpfContext = { ask, errors, timeout };
  bpfReadRoutes(app, bpfContext);

  api.get(
    streamRoute,
    {
      schema: {
        description:
          "Server-sent events: the agent's output stream live, one `batch` event per TraceEventBatch (id = firstSeq)",
        params: z.object({ agentId: AgentIdSchema, stream: StreamKindSchema }),
        response: errors,
      },
    },
    async (request, reply) => {
      const { agentId, stream } = request.params;
      await streams.relay(subjects.trace(agentId, stream), reply.raw, () => reply.hijack());
    },
  );

  api.get('/', { schema: { hide: true } }, (_request, reply) =>
    reply.type('text/html; charset=utf-8').send(livePage(options.version)),
  );

  // Everything that changes an agent's kernel needs the bearer token.
  await app.register(async (scope) => {
    await scope.register(bearerAuth, {
      keys: [options.token],
      // the envelope every other error uses, not the plugin's own shape
      errorResponse: (err) =>
        new TracelabError(
          'EACCES',
          `${err.message}: send Authorization: Bearer <token>`,
        ).toEnvelope() as unknown as { error: string },
    });
    bpfMutatingRoutes(scope, bpfContext);
    const mutating = scope.withTypeProvider<ZodTypeProvider>();
    mutating.put(
      routes.tracefs,
      {
        schema: {
          description:
            'Write a tracefs file (the body, as text); ?append=true opens it with O_APPEND',
          params: agentParams,
          querystring: timeout.extend({ append: z.enum(['true', 'false']).default('false') }),
          body: z.string().max(1 << 20),
          response: { 200: TracefsWriteReplySchema, ...errors },
        },
      },
      async (request) => {
        const { agentId, '*': path } = request.params;
        return ask(
          subjects.tracefsWrite(agentId),
          { path, data: request.body, append: request.query.append === 'true' },
          request.query.timeoutMs,
          TracefsWriteReplySchema,
        );
      },
    );
    // mkdir(2) and rmdir(2) under tracefs: instances/NAME makes or removes a trace instance.
    for (const [method, subject, verb] of [
      ['post', subjects.tracefsMkdir, 'mkdir'],
      ['delete', subjects.tracefsRmdir, 'rmdir'],
    ] as const) {
      mutating[method](
        routes.tracefs,
        {
          schema: {
            description: `${verb} of a tracefs directory: instances/NAME ${verb === 'mkdir' ? 'makes' : 'removes'} a trace instance`,
            params: agentParams,
            querystring: timeout,
            response: { 200: TracefsDirReplySchema, ...errors },
          },
        },
        async (request) => {
          const { agentId, '*': path } = request.params;
          return ask(subject(agentId), { path }, request.query.timeoutMs, TracefsDirReplySchema);
        },
      );
    }
    mutating.post(
      routes.run,
      {
        schema: {
          description:
            "Run a workload (a built-in name or a workload document) on the agent's kernel",
          params: z.object({ agentId: AgentIdSchema }),
          querystring: timeout,
          body: RunRequestSchema,
          response: { 200: RunReplySchema, ...errors },
        },
      },
      async (request) =>
        ask(
          subjects.run(request.params.agentId),
          request.body,
          request.query.timeoutMs,
          RunReplySchema,
        ),
    );
    mutating.post(
      routes.workload,
      {
        schema: {
          description:
            'Start a workload in the background: its output streams out a slice of calls at a time (the live page follows it) until it ends or DELETE stops it',
          params: z.object({ agentId: AgentIdSchema }),
          querystring: timeout,
          body: WorkloadStartRequestSchema,
          response: { 200: WorkloadStartReplySchema, ...errors },
        },
      },
      async (request) =>
        ask(
          subjects.workloadStart(request.params.agentId),
          request.body,
          request.query.timeoutMs,
          WorkloadStartReplySchema,
        ),
    );
    mutating.delete(
      routes.workload,
      {
        schema: {
          description: 'Stop the workload started in the background; its result so far',
          params: z.object({ agentId: AgentIdSchema }),
          querystring: timeout,
          response: { 200: RunReplySchema, ...errors },
        },
      },
      async (request) =>
        ask(
          subjects.workloadStop(request.params.agentId),
          {},
          request.query.timeoutMs,
          RunReplySchema,
        ),
    );
  });

  return app;
}
