import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import {
  API_VERSION,
  AgentHealthSchema,
  AgentIdSchema,
  AgentInfoSchema,
  ErrorEnvelopeSchema,
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
import { errorHandler, notFoundHandler } from './errors.js';

export interface GatewayOptions {
  bus: Bus;
  /** tracelab's version, reported by /v1/info. */
  version: string;
  transport: 'local' | 'nats';
  /** Fastify's logger setting; off by default so tests stay quiet. */
  logger?: boolean;
  /** Upper bound of any bus request a route makes. */
  maxTimeoutMs?: number;
}

const errors = {
  400: ErrorEnvelopeSchema,
  404: ErrorEnvelopeSchema,
  503: ErrorEnvelopeSchema,
  504: ErrorEnvelopeSchema,
};

/** Builds the HTTP gateway: routes onto the agents' bus endpoints, with OpenAPI docs. */
/** The HTTP gateway: a Fastify instance with tracelab's routes. */
export type Gateway = FastifyInstance;

export async function buildGateway(options: GatewayOptions): Promise<Gateway> {
  const maxTimeoutMs = options.maxTimeoutMs ?? 30_000;
  const app = Fastify({ logger: options.logger ?? false });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);

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

  const api = app.withTypeProvider<ZodTypeProvider>();

  api.get(
    routes.health,
    { schema: { response: { 200: z.object({ status: z.literal('ok') }) } } },
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

  return app;
}
