import {
  ErrorEnvelopeSchema,
  FdReplySchema,
  FunctionsReplySchema,
  LinkCreateRequestSchema,
  LinkInfoSchema,
  LinkListReplySchema,
  MapCreateRequestSchema,
  MapDumpReplySchema,
  MapKeyRequestSchema,
  MapListReplySchema,
  MapUpdateFlagSchema,
  MapUpdateRequestSchema,
  MapValueReplySchema,
  ProgListReplySchema,
  ProgLoadReplySchema,
  ProgLoadRequestSchema,
  ProgLoadResultSchema,
  ProgRejectedSchema,
  SymbolGlobSchema,
  TracelabError,
  BytesEncodingSchema,
  routes,
  subjects,
  issuesToDetails,
  formatPath,
  AgentIdSchema,
  type BpfOp,
} from '@tracelab/contracts';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

/** One bus request to an agent, its reply checked against the contract (EIO 502 when broken). */
export type Ask = <T>(
  subject: string,
  body: unknown,
  timeoutMs: number,
  reply: z.ZodType<T>,
) => Promise<T>;

export interface BpfRouteContext {
  ask: Ask;
  /** The error responses every route declares. */
  errors: Record<number, z.ZodType>;
  /** ?timeoutMs, bounded by the gateway's maximum. */
  timeout: z.ZodObject<{ timeoutMs: z.ZodDefault<z.ZodCoercedNumber> }>;
}

const agent = z.object({ agentId: AgentIdSchema });
const fd = z.coerce.number().int().min(0).max(0x7fffffff);
const agentFd = agent.extend({ fd });
/** A map entry's route: the key in the path, in the ?encoding the query names. */
const agentFdKey = agentFd.extend({ key: z.string().max(1 << 18) });

/**
 * Checks a request assembled from several parts (params, query, body) with one contract schema;
 * the error names the part the failing field came from (`params.key`).
 */
function check<T>(
  schema: z.ZodType<T>,
  input: Record<string, unknown>,
  part: Record<string, string>,
): T {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const details = issuesToDetails(r.error.issues);
  const path = details.path ?? [];
  const where = [part[String(path[0])] ?? 'body', ...path];
  const first = r.error.issues[0];
  throw new TracelabError(
    'EINVAL',
    `invalid ${formatPath(where)}: ${first?.message ?? 'bad input'}`,
    { ...details, path: where },
  );
}

/** A lookup or delete request for one map entry, checked as the bus would check it. */
function keyRequest(
  params: { fd: number; key: string },
  encoding: string | undefined,
): z.infer<typeof MapKeyRequestSchema> {
  return check(
    MapKeyRequestSchema,
    { fd: params.fd, key: params.key, encoding },
    { fd: 'params', key: 'params', encoding: 'querystring' },
  );
}

/** The read-only routes: kernel functions, programs, maps and links of an agent. */
export function bpfReadRoutes(app: FastifyInstance, ctx: BpfRouteContext): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const { ask, errors, timeout } = ctx;
  const bpf = (agentId: string, op: BpfOp) => subjects.bpf(agentId, op);

  api.get(
    routes.functions,
    {
      schema: {
        description:
          "The functions of the agent's kernel image whose names match a glob, in kallsyms order",
        params: agent,
        querystring: timeout.extend({
          pattern: SymbolGlobSchema.default('*'),
          offset: z.coerce.number().int().nonnegative().max(0x7fffffff).default(0),
          limit: z.coerce.number().int().min(1).max(100_000).default(1000),
        }),
        response: { 200: FunctionsReplySchema, ...errors },
      },
    },
    async (request) => {
      const { timeoutMs, ...req } = request.query;
      return ask(subjects.functions(request.params.agentId), req, timeoutMs, FunctionsReplySchema);
    },
  );

  api.get(
    routes.programs,
    {
      schema: {
        description: 'The BPF programs loaded through this agent, by fd',
        params: agent,
        querystring: timeout,
        response: { 200: ProgListReplySchema, ...errors },
      },
    },
    async (request) =>
      ask(
        bpf(request.params.agentId, 'prog.list'),
        {},
        request.query.timeoutMs,
        ProgListReplySchema,
      ),
  );

  api.get(
    routes.maps,
    {
      schema: {
        description: 'The BPF maps created through this agent (by programs or directly), by fd',
        params: agent,
        querystring: timeout,
        response: { 200: MapListReplySchema, ...errors },
      },
    },
    async (request) =>
      ask(bpf(request.params.agentId, 'map.list'), {}, request.query.timeoutMs, MapListReplySchema),
  );

  api.get(
    routes.map,
    {
      schema: {
        description:
          'A map and its entries in get_next_key order (bpftool map dump), keys and values in hex or base64',
        params: agentFd,
        querystring: timeout.extend({
          encoding: BytesEncodingSchema.default('hex'),
          limit: z.coerce.number().int().min(1).max(100_000).default(1000),
        }),
        response: { 200: MapDumpReplySchema, ...errors },
      },
    },
    async (request) => {
      const { timeoutMs, ...query } = request.query;
      return ask(
        bpf(request.params.agentId, 'map.dump'),
        { fd: request.params.fd, ...query },
        timeoutMs,
        MapDumpReplySchema,
      );
    },
  );

  api.get(
    routes.mapEntry,
    {
      schema: {
        description:
          'BPF_MAP_LOOKUP_ELEM: the value of one key (the key in ?encoding, hex by default)',
        params: agentFdKey,
        querystring: timeout.extend({ encoding: BytesEncodingSchema.default('hex') }),
        response: { 200: MapValueReplySchema, ...errors },
      },
    },
    async (request) => {
      const { agentId } = request.params;
      const req = keyRequest(request.params, request.query.encoding);
      return ask(bpf(agentId, 'map.lookup'), req, request.query.timeoutMs, MapValueReplySchema);
    },
  );

  api.get(
    routes.links,
    {
      schema: {
        description: 'The BPF links attached through this agent',
        params: agent,
        querystring: timeout,
        response: { 200: LinkListReplySchema, ...errors },
      },
    },
    async (request) =>
      ask(
        bpf(request.params.agentId, 'link.list'),
        {},
        request.query.timeoutMs,
        LinkListReplySchema,
      ),
  );
}

/** The routes that change an agent's kernel; registered in the gateway's bearer-auth scope. */
export function bpfMutatingRoutes(scope: FastifyInstance, ctx: BpfRouteContext): void {
  const api = scope.withTypeProvider<ZodTypeProvider>();
  const { ask, errors, timeout } = ctx;
  const bpf = (agentId: string, op: BpfOp) => subjects.bpf(agentId, op);
  // a refused program is a 400 whose envelope carries the verifier log
  const loadErrors = { ...errors, 400: z.union([ProgRejectedSchema, ErrorEnvelopeSchema]) };

  for (const [route, op, description] of [
    [
      routes.programs,
      'prog.load',
      'BPF_PROG_LOAD: eBPF assembly or a base64 clang object; the fds and the verifier log, or a 400 carrying the log',
    ],
    [
      routes.programVerify,
      'prog.verify',
      "The verifier's verdict and log for a program or object, keeping nothing loaded",
    ],
  ] as const) {
    api.post(
      route,
      {
        schema: {
          description,
          params: agent,
          querystring: timeout,
          body: ProgLoadRequestSchema,
          response: { 200: ProgLoadReplySchema, ...loadErrors },
        },
      },
      async (request, reply) => {
        const result = await ask(
          bpf(request.params.agentId, op),
          request.body,
          request.query.timeoutMs,
          ProgLoadResultSchema,
        );
        if (result.verdict === 'rejected') return reply.code(400).send(result);
        return result;
      },
    );
  }

  // close(fd) of a program, a map or a link: one route shape, one bus operation each.
  const close = (
    url: string,
    op: 'prog.close' | 'map.close' | 'link.detach',
    description: string,
  ) =>
    api.delete(
      url,
      {
        schema: {
          description,
          params: agentFd,
          querystring: timeout,
          response: { 200: FdReplySchema, ...errors },
        },
      },
      async (request) =>
        ask(
          bpf(request.params.agentId, op),
          { fd: request.params.fd },
          request.query.timeoutMs,
          FdReplySchema,
        ),
    );
  close(
    routes.program,
    'prog.close',
    'close(fd) of a program; links holding it keep it running until detached',
  );
  close(routes.map, 'map.close', 'close(fd) of a map; programs using it keep it alive');

  api.post(
    routes.maps,
    {
      schema: {
        description: 'BPF_MAP_CREATE; assembly loads the map with `rN = map_fd[FD, 0] ll`',
        params: agent,
        querystring: timeout,
        body: MapCreateRequestSchema,
        response: { 200: FdReplySchema, ...errors },
      },
    },
    async (request) =>
      ask(
        bpf(request.params.agentId, 'map.create'),
        request.body,
        request.query.timeoutMs,
        FdReplySchema,
      ),
  );

  api.put(
    routes.mapEntry,
    {
      schema: {
        description: 'BPF_MAP_UPDATE_ELEM: key in the path, value in the body, both in `encoding`',
        params: agentFdKey,
        querystring: timeout,
        body: z
          .object({
            value: z.string().max(1 << 18),
            encoding: BytesEncodingSchema.default('hex'),
            flags: MapUpdateFlagSchema.default('any'),
          })
          .strict(),
        response: { 200: FdReplySchema, ...errors },
      },
    },
    async (request) => {
      const { agentId, fd: mapFd, key } = request.params;
      const req = check(
        MapUpdateRequestSchema,
        { fd: mapFd, key, ...request.body },
        { fd: 'params', key: 'params' },
      );
      return ask(bpf(agentId, 'map.update'), req, request.query.timeoutMs, FdReplySchema);
    },
  );

  api.delete(
    routes.mapEntry,
    {
      schema: {
        description: 'BPF_MAP_DELETE_ELEM (the key in ?encoding, hex by default)',
        params: agentFdKey,
        querystring: timeout.extend({ encoding: BytesEncodingSchema.default('hex') }),
        response: { 200: FdReplySchema, ...errors },
      },
    },
    async (request) => {
      const { agentId } = request.params;
      const req = keyRequest(request.params, request.query.encoding);
      return ask(bpf(agentId, 'map.delete'), req, request.query.timeoutMs, FdReplySchema);
    },
  );

  api.post(
    routes.links,
    {
      schema: {
        description:
          'BPF_LINK_CREATE: attachType section (as the object section says), fentry/fexit/fmod_ret with targets, or kprobe_multi with a pattern or syms',
        params: agent,
        querystring: timeout,
        body: LinkCreateRequestSchema,
        response: { 200: LinkInfoSchema, ...errors },
      },
    },
    async (request) =>
      ask(
        bpf(request.params.agentId, 'link.create'),
        request.body,
        request.query.timeoutMs,
        LinkInfoSchema,
      ),
  );

  close(routes.link, 'link.detach', 'close(fd) of a link: detaches the program');
}
