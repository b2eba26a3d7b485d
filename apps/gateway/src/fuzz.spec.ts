import { ErrorEnvelopeSchema, ProgRejectedSchema } from '@tracelab/contracts';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auth, startTestStack, type TestStack } from '../test/stack.js';

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** Every route of the gateway; `:x` segments are filled by the fuzzer. */
const ROUTES: readonly [Method, string][] = [
  ['GET', '/healthz'],
  ['GET', '/v1/info'],
  ['GET', '/v1/agents'],
  ['GET', '/v1/agents/:agentId/health'],
  ['GET', '/v1/agents/:agentId/tracefs'],
  ['GET', '/v1/agents/:agentId/tracefs/:path'],
  ['PUT', '/v1/agents/:agentId/tracefs/:path'],
  ['POST', '/v1/agents/:agentId/tracefs/instances/:name'],
  ['DELETE', '/v1/agents/:agentId/tracefs/instances/:name'],
  ['POST', '/v1/agents/:agentId/run'],
  ['POST', '/v1/agents/:agentId/workload'],
  ['DELETE', '/v1/agents/:agentId/workload'],
  ['GET', '/v1/agents/:agentId/functions'],
  ['GET', '/v1/agents/:agentId/programs'],
  ['POST', '/v1/agents/:agentId/programs'],
  ['POST', '/v1/agents/:agentId/programs/verify'],
  ['DELETE', '/v1/agents/:agentId/programs/:fd'],
  ['GET', '/v1/agents/:agentId/maps'],
  ['POST', '/v1/agents/:agentId/maps'],
  ['GET', '/v1/agents/:agentId/maps/:fd'],
  ['DELETE', '/v1/agents/:agentId/maps/:fd'],
  ['GET', '/v1/agents/:agentId/maps/:fd/entries/:key'],
  ['PUT', '/v1/agents/:agentId/maps/:fd/entries/:key'],
  ['DELETE', '/v1/agents/:agentId/maps/:fd/entries/:key'],
  ['GET', '/v1/agents/:agentId/links'],
  ['POST', '/v1/agents/:agentId/links'],
  ['DELETE', '/v1/agents/:agentId/links/:fd'],
];

/**
 * Values near the contracts' edges (valid names, wrong types, limits) mixed with arbitrary JSON,
 * so bodies reach the agent and its engine as well as failing validation.
 */
const near = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(
    'asm',
    'object',
    'kprobe',
    'tracing',
    'fentry',
    'fexit',
    'fmod_ret',
    'kprobe_multi',
    'section',
    'hash',
    'array',
    'ringbuf',
    'hex',
    'base64',
    'noexist',
    'exist',
    'vfs_*',
    'vfs_read',
    '[z-a]',
    'r0 = 0\nexit',
    'r0 = r5\nexit',
    'r1 = map_fd[3, 0] ll\nr0 = 0\nexit',
    '00000000',
    'AAAAAA==',
    'f0VMRgIBAQAAAAAAAAAAAA==',
    '',
  ),
  fc.integer({ min: -2, max: 1 << 25 }),
  fc.constantFrom(0, 1, 2, 3, 4, 8, 0x7fffffff, -1, 1.5, 1e300),
);

const FIELDS = [
  'format',
  'text',
  'progType',
  'attachType',
  'attachTarget',
  'name',
  'logLevel',
  'object',
  'programs',
  'type',
  'keySize',
  'valueSize',
  'maxEntries',
  'value',
  'encoding',
  'flags',
  'progFd',
  'targets',
  'pattern',
  'syms',
  'cookies',
  'retprobe',
  'workload',
  'seed',
  'sliceCalls',
] as const;

const body = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.dictionary(fc.constantFrom(...FIELDS), near, { maxKeys: 8 }),
);

const segment = fc.oneof(
  fc.constantFrom('m1', '3', '4', '0', '-1', '1e3', '99999999999', '00000000', 'trace', ''),
  fc.string({ maxLength: 20 }),
  fc.string({ unit: 'grapheme', maxLength: 8 }),
);

const query = fc.dictionary(
  fc.oneof(
    fc.constantFrom('timeoutMs', 'pattern', 'offset', 'limit', 'encoding', 'append', 'dir'),
    fc.string({ maxLength: 8 }),
  ),
  fc.oneof(
    fc.string({ maxLength: 12 }),
    near.map((v) => JSON.stringify(v) ?? ''),
  ),
  { maxKeys: 4 },
);

/** The timeouts a fuzzed query may ask for stay short: a slow answer is not what is tested. */
function boundedQuery(q: Record<string, string>): string {
  const params = new URLSearchParams(q);
  if (params.has('timeoutMs') && Number(params.get('timeoutMs')) > 2000)
    params.set('timeoutMs', '2000');
  const s = params.toString();
  return s === '' ? '' : `?${s}`;
}

describe('fuzzed requests', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({ rateLimit: { max: 1_000_000, timeWindowMs: 60_000 } });
    // a map and a loaded program, so fuzzed fds and keys can hit something real
    stack.agent.bpf.mapCreate({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 8 });
    stack.agent.bpf.load({ format: 'asm', text: 'r0 = 0\nexit', progType: 'kprobe', logLevel: 1 });
  });
  afterAll(() => stack.close());

  it('never answer 5xx; every error is an errno envelope', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...ROUTES),
        fc.array(segment, { minLength: 4, maxLength: 4 }),
        query,
        body,
        fc.boolean(),
        fc.boolean(),
        async ([method, template], segs, q, payload, withAuth, asText) => {
          let k = 0;
          // unknown agent ids are left out: no responder is a 503 by design, not a fuzz finding
          const path = template.replace(/:(\w+)/g, (_m, name: string) => {
            const s = segs[k++] ?? '';
            return encodeURIComponent(name === 'agentId' && /^[\w-]{1,64}$/.test(s) ? 'm1' : s);
          });
          const text = method === 'PUT' && template.includes('tracefs');
          const res = await stack.app.inject({
            method,
            url: path + boundedQuery(q),
            headers: {
              ...(withAuth ? auth : {}),
              'content-type': text || asText ? 'text/plain' : 'application/json',
            },
            // the body as the client sends it: JSON text, labelled JSON or plain text
            ...(method === 'GET' || method === 'DELETE'
              ? {}
              : { payload: String(JSON.stringify(payload)) }),
          });
          const where = `${method} ${path}${boundedQuery(q)} -> ${res.statusCode} ${res.body.slice(0, 200)}`;
          expect(res.statusCode, where).toBeLessThan(500);
          if (res.statusCode >= 400) {
            const json: unknown = res.json();
            const envelope = ProgRejectedSchema.safeParse(json).success
              ? ProgRejectedSchema.parse(json)
              : ErrorEnvelopeSchema.parse(json);
            expect(envelope.message.length, where).toBeGreaterThan(0);
          }
        },
      ),
      { numRuns: 600 },
    );
  }, 120_000);
});
