import { encodeJson, LocalBroker, LocalBus } from '@tracelab/bus';
import { ErrorEnvelopeSchema, subjects, type AgentInfo } from '@tracelab/contracts';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildGateway, type Gateway } from './index.js';

const TOKEN = 'test-token';

function agentInfo(id: string): AgentInfo {
  return {
    id,
    version: '0.0.0',
    hostname: 'h',
    pid: 1,
    startedAt: '2026-01-01T00:00:00.000Z',
    transport: 'local',
  };
}

/** A peer on the bus that behaves as an agent does: announces on ping, answers health. */
async function fakeAgent(bus: LocalBus, id: string, health: () => unknown): Promise<void> {
  await bus.subscribe(subjects.agentPing, () =>
    bus.publish(subjects.agentAnnounce, encodeJson(agentInfo(id))),
  );
  await bus.serve(subjects.agentHealth(id), () => encodeJson(health()));
}

describe('gateway', () => {
  let broker: LocalBroker;
  let peer: LocalBus;
  let app: Gateway;

  beforeEach(async () => {
    broker = new LocalBroker();
    peer = new LocalBus({ broker });
    app = await buildGateway({
      bus: new LocalBus({ broker }),
      version: '1.2.3',
      transport: 'local',
      token: TOKEN,
    });
  });
  afterEach(async () => {
    await app.close();
    await peer.close();
  });

  it('answers /healthz', async () => {
    await app.ready();
    const res = await app.inject({ method: 'GET', url: '/healthz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok' });
  });

  it('lists agents that started before it (ping) and after it (announce)', async () => {
    await fakeAgent(peer, 'early', () => ({}));
    await app.ready();
    peer.publish(subjects.agentAnnounce, encodeJson(agentInfo('late')));
    await peer.flush();
    const res = await app.inject({ method: 'GET', url: '/v1/info' });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({
      name: 'tracelab',
      version: '1.2.3',
      api: 'v1',
      transport: 'local',
    });
    expect(body.agents.map((a: AgentInfo) => a.id)).toEqual(['early', 'late']);
  });

  it('ignores malformed announcements', async () => {
    await app.ready();
    peer.publish(subjects.agentAnnounce, encodeJson({ id: 'a.b' }));
    peer.publish(subjects.agentAnnounce, new TextEncoder().encode('{not json'));
    await peer.flush();
    expect((await app.inject({ method: 'GET', url: '/v1/agents' })).json()).toEqual([]);
  });

  it('relays an agent health request over the bus', async () => {
    await fakeAgent(peer, 'm1', () => ({
      id: 'm1',
      status: 'ok',
      uptimeMs: 42,
      published: 3,
      lost: 1,
    }));
    await app.ready();
    const res = await app.inject({ method: 'GET', url: '/v1/agents/m1/health' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ id: 'm1', status: 'ok', uptimeMs: 42, published: 3, lost: 1 });
  });

  it.each([
    ['/v1/agents/a.b/health', ['params', 'agentId']],
    ['/v1/agents/m1/health?timeoutMs=soon', ['querystring', 'timeoutMs']],
    ['/v1/agents/m1/health?timeoutMs=0', ['querystring', 'timeoutMs']],
    ['/v1/agents/m1/health?timeoutMs=99999999', ['querystring', 'timeoutMs']],
  ])('GET %s is a 400 naming %j', async (url, path) => {
    await app.ready();
    const res = await app.inject({ method: 'GET', url });
    expect(res.statusCode).toBe(400);
    const body = ErrorEnvelopeSchema.parse(res.json());
    expect(body.code).toBe('EINVAL');
    expect(body.details?.path).toEqual(path);
    expect(body.message).toContain(path.join('.'));
  });

  it('maps no responders to 503 EHOSTUNREACH and a silent agent to 504 ETIMEDOUT', async () => {
    await peer.serve(subjects.agentHealth('slow'), () => new Promise<Uint8Array>(() => undefined));
    await app.ready();
    const missing = await app.inject({
      method: 'GET',
      url: '/v1/agents/nobody/health?timeoutMs=200',
    });
    expect([missing.statusCode, missing.json().code]).toEqual([503, 'EHOSTUNREACH']);
    const slow = await app.inject({ method: 'GET', url: '/v1/agents/slow/health?timeoutMs=50' });
    expect([slow.statusCode, slow.json().code]).toEqual([504, 'ETIMEDOUT']);
  });

  it('answers a malformed agent reply with 502, not a crash', async () => {
    await fakeAgent(peer, 'broken', () => ({ status: 'maybe' }));
    await app.ready();
    const res = await app.inject({ method: 'GET', url: '/v1/agents/broken/health' });
    expect(res.statusCode).toBe(502);
    expect(res.json()).toMatchObject({ code: 'EIO', message: expect.stringContaining('broken') });
  });

  it('answers unknown routes with an ENOENT envelope', async () => {
    const res = await app.inject({ method: 'GET', url: '/v1/nothing' });
    expect(res.statusCode).toBe(404);
    expect(ErrorEnvelopeSchema.parse(res.json()).code).toBe('ENOENT');
  });

  it('publishes OpenAPI for its routes', async () => {
    const res = await app.inject({ method: 'GET', url: '/documentation/json' });
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/healthz',
        '/v1/info',
        '/v1/agents/{agentId}/health',
        '/v1/agents/{agentId}/stream/{stream}',
      ]),
    );
    expect((await app.inject({ method: 'GET', url: '/documentation' })).statusCode).toBeLessThan(
      400,
    );
  });

  it('allows 1000 requests a minute by default and says so in headers', async () => {
    const res = await app.inject({ method: 'GET', url: '/v1/agents' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-ratelimit-limit']).toBe('1000');
    expect(res.headers['x-ratelimit-remaining']).toBe('999');
  });

  it('answers requests over the rate limit with a 429 EAGAIN envelope, per client', async () => {
    const limited = await buildGateway({
      bus: new LocalBus({ broker }),
      version: '1.2.3',
      transport: 'local',
      token: TOKEN,
      rateLimit: { max: 2, timeWindowMs: 60_000 },
    });
    try {
      const get = (url: string, remoteAddress = '10.0.0.1') =>
        limited.inject({ method: 'GET', url, remoteAddress });
      expect((await get('/v1/info')).statusCode).toBe(200);
      expect((await get('/v1/agents')).statusCode).toBe(200);
      const over = await get('/v1/info');
      expect(over.statusCode).toBe(429);
      const body = ErrorEnvelopeSchema.parse(over.json());
      expect([body.code, body.errno]).toEqual(['EAGAIN', 11]);
      expect(body.message).toContain('at most 2 requests per 60000 ms');
      expect(Number(over.headers['retry-after'])).toBeGreaterThan(0);
      // the stream route counts as well, and answers before it subscribes
      expect((await get('/v1/agents/m1/stream/trace')).statusCode).toBe(429);
      // another client has its own budget; liveness probes are never limited
      expect((await get('/v1/info', '10.0.0.2')).statusCode).toBe(200);
      for (let i = 0; i < 5; i++) expect((await get('/healthz')).statusCode).toBe(200);
    } finally {
      await limited.close();
    }
  });

  describe("the agent's kernel", () => {
    /** A fake agent's tracefs: one file map, the request bodies it saw. */
    async function fakeKernel(
      id: string,
    ): Promise<{ files: Map<string, string>; seen: unknown[] }> {
      const files = new Map([['trace', '# tracer: nop\n']]);
      const seen: unknown[] = [];
      await peer.serve(subjects.tracefsRead(id), (m) => {
        const { path } = m.json<{ path: string }>();
        const data = files.get(path);
        if (data === undefined)
          throw Object.assign(new Error(`${path}: no such file`), { code: 'ENOENT' });
        return encodeJson({ data });
      });
      await peer.serve(subjects.tracefsWrite(id), (m) => {
        const req = m.json<{ path: string; data: string; append: boolean }>();
        seen.push(req);
        files.set(req.path, (req.append ? (files.get(req.path) ?? '') : '') + req.data);
        return encodeJson({ written: req.data.length });
      });
      await peer.serve(subjects.tracefsList(id), () => encodeJson({ entries: [...files.keys()] }));
      await peer.serve(subjects.run(id), (m) => {
        seen.push(m.json());
        return encodeJson({
          workload: 'syscalls',
          seed: 1,
          calls: 10,
          switches: 2,
          fault: null,
          elapsedNs: 1000,
        });
      });
      return { files, seen };
    }
    const auth = { authorization: `Bearer ${TOKEN}` };

    it('reads a tracefs file as text and lists the directory', async () => {
      await fakeKernel('m1');
      await app.ready();
      const res = await app.inject({ method: 'GET', url: '/v1/agents/m1/tracefs/trace' });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/plain/);
      expect(res.body).toBe('# tracer: nop\n');
      expect((await app.inject({ method: 'GET', url: '/v1/agents/m1/tracefs' })).json()).toEqual({
        entries: ['trace'],
      });
      const missing = await app.inject({ method: 'GET', url: '/v1/agents/m1/tracefs/nope' });
      expect([missing.statusCode, missing.json().code]).toEqual([404, 'ENOENT']);
    });

    it('refuses writes and runs without the bearer token', async () => {
      const { seen } = await fakeKernel('m1');
      await app.ready();
      for (const req of [
        {
          method: 'PUT' as const,
          url: '/v1/agents/m1/tracefs/current_tracer',
          payload: 'function',
          headers: { 'content-type': 'text/plain' },
        },
        { method: 'POST' as const, url: '/v1/agents/m1/run', payload: { workload: 'syscalls' } },
      ]) {
        const res = await app.inject(req);
        expect(res.statusCode).toBe(401);
        expect(ErrorEnvelopeSchema.parse(res.json()).code).toBe('EACCES');
        const wrong = await app.inject({
          ...req,
          headers: { ...req.headers, authorization: 'Bearer nope' },
        });
        expect(wrong.statusCode).toBe(401);
      }
      expect(seen).toEqual([]);
    });

    it('writes tracefs files and runs workloads with the token', async () => {
      const { files, seen } = await fakeKernel('m1');
      await app.ready();
      const put = await app.inject({
        method: 'PUT',
        url: '/v1/agents/m1/tracefs/set_ftrace_filter?append=true',
        payload: 'vfs_*',
        headers: { ...auth, 'content-type': 'text/plain' },
      });
      expect([put.statusCode, put.json()]).toEqual([200, { written: 5 }]);
      expect(files.get('set_ftrace_filter')).toBe('vfs_*');
      expect(seen[0]).toEqual({ path: 'set_ftrace_filter', data: 'vfs_*', append: true });
      const run = await app.inject({
        method: 'POST',
        url: '/v1/agents/m1/run',
        payload: { workload: 'syscalls', seed: 4 },
        headers: auth,
      });
      expect(run.statusCode).toBe(200);
      expect(seen[1]).toEqual({ workload: 'syscalls', seed: 4 });
    });

    it.each([
      ['PUT', '/v1/agents/m1/tracefs/a%20b', 'x', ['params', '*']],
      ['POST', '/v1/agents/m1/run', { workload: 'syscalls', seed: -1 }, ['body', 'seed']],
      ['POST', '/v1/agents/m1/run', { seed: 1 }, ['body', 'workload']],
    ] as const)('%s %s with bad input is a 400 naming %j', async (method, url, payload, path) => {
      await app.ready();
      const headers =
        typeof payload === 'string' ? { ...auth, 'content-type': 'text/plain' } : auth;
      const res = await app.inject({ method, url, payload, headers });
      expect(res.statusCode).toBe(400);
      expect(ErrorEnvelopeSchema.parse(res.json()).details?.path).toEqual(path);
    });
  });
});
