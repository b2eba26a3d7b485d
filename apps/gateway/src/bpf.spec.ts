import {
  ErrorEnvelopeSchema,
  FunctionsReplySchema,
  MapDumpReplySchema,
  ProgRejectedSchema,
} from '@tracelab/contracts';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { auth, startTestStack, type TestStack } from '../test/stack.js';

const A = '/v1/agents/m1';

/** Adds one to the u64 at key 0 of an array map (a kprobe program). */
const countAsm = (mapFd: number): string =>
  [
    'r1 = 0',
    '*(u32 *)(r10 - 4) = r1',
    'r2 = r10',
    'r2 += -4',
    `r1 = map_fd[${mapFd}, 0] ll`,
    'call 1',
    'if r0 == 0 goto +2',
    'r1 = 1',
    'lock *(u64 *)(r0 + 0) += r1',
    'r0 = 0',
    'exit',
  ].join('\n');

function u64le(hex: string): bigint {
  return Buffer.from(hex, 'hex').readBigUInt64LE(0);
}

describe('bpf routes against a real agent', () => {
  let stack: TestStack;
  beforeEach(async () => {
    stack = await startTestStack();
  });
  afterEach(() => stack.close());

  const req = (
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    url: string,
    payload?: object,
    withAuth = true,
  ) =>
    stack.app.inject({
      method,
      url,
      ...(payload ? { payload } : {}),
      headers: withAuth ? auth : {},
    });

  /** How many times the function tracer saw `func` called since it was turned on. */
  async function traced(func: string): Promise<number> {
    const trace = (await req('GET', `${A}/tracefs/trace`)).body;
    return trace.split('\n').filter((l) => l.includes(` ${func} <-`)).length;
  }

  it('lists kernel functions by glob in address order, with paging', async () => {
    const all = FunctionsReplySchema.parse(
      (await req('GET', `${A}/functions?pattern=vfs_*`)).json(),
    );
    expect(all.total).toBeGreaterThan(3);
    expect(all.functions.every((f) => f.name.startsWith('vfs_'))).toBe(true);
    const addrs = all.functions.map((f) => BigInt(f.addr));
    expect([...addrs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))).toEqual(addrs);
    const page = FunctionsReplySchema.parse(
      (await req('GET', `${A}/functions?pattern=vfs_*&offset=1&limit=2`)).json(),
    );
    expect(page).toEqual({ total: all.total, functions: all.functions.slice(1, 3) });
    // the same names the kernel's available_filter_functions lists
    const available = (await req('GET', `${A}/tracefs/available_filter_functions`)).body;
    for (const f of all.functions.filter((x) => x.traceable))
      expect(available).toMatch(new RegExp(`^${f.name}\\b`, 'm'));
  });

  it.each([
    ['pattern=vfs%20read', ['querystring', 'pattern']],
    ['pattern=[z-a]', ['pattern']],
    ['limit=0', ['querystring', 'limit']],
  ])('GET functions?%s is a 400 naming %j', async (query, path) => {
    const res = await req('GET', `${A}/functions?${query}`);
    expect(res.statusCode).toBe(400);
    const body = ErrorEnvelopeSchema.parse(res.json());
    expect(body.code).toBe('EINVAL');
    if (path.length > 1) expect(body.details?.path).toEqual(path);
    else expect(body.message).toContain('pattern');
  });

  it('loads an assembly program, counts calls through a kprobe_multi link, detaches', async () => {
    const map = await req('POST', `${A}/maps`, {
      type: 'array',
      keySize: 4,
      valueSize: 8,
      maxEntries: 1,
      name: 'count',
    });
    expect(map.statusCode).toBe(200);
    const mapFd = map.json().fd as number;
    const load = await req('POST', `${A}/programs`, {
      format: 'asm',
      text: countAsm(mapFd),
      progType: 'kprobe',
      name: 'count',
    });
    expect(load.statusCode).toBe(200);
    const loaded = load.json();
    expect(loaded.verdict).toBe('accepted');
    const prog = loaded.programs[0];
    expect(prog).toMatchObject({ name: 'count', progType: 'kprobe', section: '' });
    expect(prog.log).toMatch(/processed \d+ insns/);
    const link = await req('POST', `${A}/links`, {
      attachType: 'kprobe_multi',
      progFd: prog.fd,
      pattern: 'vfs_read',
    });
    expect(link.statusCode).toBe(200);
    expect(link.json()).toMatchObject({ progFd: prog.fd, attachType: 'kprobe_multi' });
    expect((await req('GET', `${A}/links`)).json().links).toEqual([link.json()]);
    expect(
      (await req('GET', `${A}/programs`)).json().programs.map((p: { fd: number }) => p.fd),
    ).toEqual([prog.fd]);

    // the function tracer on the same function is the independent count
    const filter = await stack.app.inject({
      method: 'PUT',
      url: `${A}/tracefs/set_ftrace_filter`,
      payload: 'vfs_read',
      headers: { ...auth, 'content-type': 'text/plain' },
    });
    expect(filter.statusCode).toBe(200);
    await stack.app.inject({
      method: 'PUT',
      url: `${A}/tracefs/current_tracer`,
      payload: 'function',
      headers: { ...auth, 'content-type': 'text/plain' },
    });
    expect((await req('POST', `${A}/run`, { workload: 'syscalls' })).statusCode).toBe(200);
    const calls = await traced('vfs_read');
    expect(calls).toBeGreaterThan(0);
    const dump = MapDumpReplySchema.parse((await req('GET', `${A}/maps/${mapFd}`)).json());
    expect(dump.map).toMatchObject({ fd: mapFd, name: 'count', type: 'array', keySize: 4 });
    expect(dump.entries).toHaveLength(1);
    expect(u64le(dump.entries[0]?.value ?? '')).toBe(BigInt(calls));
    const one = await req('GET', `${A}/maps/${mapFd}/entries/00000000`);
    expect(one.json()).toEqual({ value: dump.entries[0]?.value });

    expect((await req('DELETE', `${A}/links/${link.json().fd}`)).statusCode).toBe(200);
    expect((await req('GET', `${A}/links`)).json().links).toEqual([]);
    await req('POST', `${A}/run`, { workload: 'syscalls' });
    const after = await req('GET', `${A}/maps/${mapFd}/entries/00000000`);
    expect(u64le(after.json().value)).toBe(BigInt(calls));
    const again = await req('DELETE', `${A}/links/${link.json().fd}`);
    expect([again.statusCode, again.json().code]).toEqual([404, 'EBADF']);
  });

  it('attaches an fentry program to its attach target', async () => {
    const load = await req('POST', `${A}/programs`, {
      format: 'asm',
      text: 'r0 = 0\nexit',
      progType: 'tracing',
      attachType: 'fentry',
      attachTarget: 'vfs_write',
    });
    expect(load.statusCode).toBe(200);
    const fd = load.json().programs[0].fd;
    const link = await req('POST', `${A}/links`, { attachType: 'fentry', progFd: fd });
    expect(link.json()).toMatchObject({ attachType: 'fentry', target: 'vfs_write' });
    // a program whose type does not fit the link is the kernel's EINVAL
    const wrong = await req('POST', `${A}/links`, {
      attachType: 'kprobe_multi',
      progFd: fd,
      pattern: 'vfs_*',
    });
    expect([wrong.statusCode, wrong.json().code]).toEqual([400, 'EINVAL']);
  });

  it('answers a program the verifier refuses with a 400 carrying the log, and keeps nothing', async () => {
    const res = await req('POST', `${A}/programs`, {
      format: 'asm',
      text: 'r0 = r5\nexit',
      progType: 'kprobe',
    });
    expect(res.statusCode).toBe(400);
    const body = ProgRejectedSchema.parse(res.json());
    expect(body.verdict).toBe('rejected');
    expect(body.code).toBe('EACCES');
    // the kernel's words for reading a register never written
    expect(body.log).toContain('R5 !read_ok');
    expect((await req('GET', `${A}/programs`)).json().programs).toEqual([]);
    const syntax = ProgRejectedSchema.parse(
      (
        await req('POST', `${A}/programs`, { format: 'asm', text: 'bogus', progType: 'kprobe' })
      ).json(),
    );
    expect(syntax.message).toContain('line 1');
  });

  it('verifies without keeping the program, and refuses a bad object', async () => {
    const res = await req('POST', `${A}/programs/verify`, {
      format: 'asm',
      text: 'r0 = 0\nexit',
      progType: 'kprobe',
      logLevel: 2,
    });
    expect(res.statusCode).toBe(200);
    expect(res.json().programs[0].log).toContain('exit');
    expect((await req('GET', `${A}/programs`)).json().programs).toEqual([]);
    const obj = await req('POST', `${A}/programs/verify`, {
      format: 'object',
      object: Buffer.from('not an ELF file').toString('base64'),
    });
    expect(obj.statusCode).toBe(400);
    expect(ProgRejectedSchema.parse(obj.json()).verdict).toBe('rejected');
  });

  it('updates, looks up and deletes hash map entries in hex and base64', async () => {
    const fd = (
      await req('POST', `${A}/maps`, { type: 'hash', keySize: 4, valueSize: 4, maxEntries: 2 })
    ).json().fd;
    const put = await req('PUT', `${A}/maps/${fd}/entries/01020304`, { value: 'aabbccdd' });
    expect(put.statusCode).toBe(200);
    const key64 = encodeURIComponent(Buffer.from('01020304', 'hex').toString('base64'));
    const got = await req('GET', `${A}/maps/${fd}/entries/${key64}?encoding=base64`);
    expect(Buffer.from(got.json().value, 'base64').toString('hex')).toBe('aabbccdd');
    const dup = await req('PUT', `${A}/maps/${fd}/entries/01020304`, {
      value: '00000000',
      flags: 'noexist',
    });
    expect([dup.statusCode, dup.json().code]).toEqual([409, 'EEXIST']);
    const missing = await req('PUT', `${A}/maps/${fd}/entries/09090909`, {
      value: '00000000',
      flags: 'exist',
    });
    expect([missing.statusCode, missing.json().code]).toEqual([404, 'ENOENT']);
    expect((await req('GET', `${A}/maps`)).json().maps).toEqual([
      { fd, name: expect.any(String), type: 'hash', keySize: 4, valueSize: 4, maxEntries: 2 },
    ]);
    expect((await req('DELETE', `${A}/maps/${fd}/entries/01020304`)).statusCode).toBe(200);
    const gone = await req('GET', `${A}/maps/${fd}/entries/01020304`);
    expect([gone.statusCode, gone.json().code]).toEqual([404, 'ENOENT']);
    const short = await req('GET', `${A}/maps/${fd}/entries/0102`);
    expect([short.statusCode, short.json().code]).toEqual([400, 'EINVAL']);
    const notHex = await req('GET', `${A}/maps/${fd}/entries/zz`);
    expect(notHex.statusCode).toBe(400);
    expect(ErrorEnvelopeSchema.parse(notHex.json()).details?.path).toEqual(['params', 'key']);
    const noMap = await req('GET', `${A}/maps/999/entries/00`);
    expect([noMap.statusCode, noMap.json().code]).toEqual([404, 'EBADF']);
    // close(fd): the map leaves the agent's table and its fd is no longer valid
    expect((await req('DELETE', `${A}/maps/${fd}`)).json()).toEqual({ fd });
    expect((await req('GET', `${A}/maps`)).json().maps).toEqual([]);
    const closed = await req('DELETE', `${A}/maps/${fd}`);
    expect([closed.statusCode, closed.json().code]).toEqual([404, 'EBADF']);
  });

  it('starts a workload in the background and stops it', async () => {
    const started = await req('POST', `${A}/workload`, { workload: 'syscalls', sliceCalls: 1 });
    expect([started.statusCode, started.json()]).toEqual([200, { workload: 'syscalls', seed: 1 }]);
    const busy = await req('POST', `${A}/run`, { workload: 'syscalls' });
    expect([busy.statusCode, busy.json().code]).toEqual([409, 'EBUSY']);
    const stopped = await req('DELETE', `${A}/workload`);
    expect(stopped.statusCode).toBe(200);
    expect(stopped.json()).toMatchObject({ workload: 'syscalls', stopped: true, fault: null });
    const none = await req('DELETE', `${A}/workload`);
    expect([none.statusCode, none.json().code]).toEqual([404, 'ENOENT']);
    expect((await req('POST', `${A}/run`, { workload: 'syscalls' })).statusCode).toBe(200);
  });

  it('makes a trace instance with its own tracer, and removes it', async () => {
    expect((await req('POST', `${A}/tracefs/instances/foo`)).json()).toEqual({
      path: 'instances/foo',
    });
    const again = await req('POST', `${A}/tracefs/instances/foo`);
    expect([again.statusCode, again.json().code]).toEqual([409, 'EEXIST']);
    expect((await req('GET', `${A}/tracefs?dir=instances`)).json().entries).toEqual(['foo']);
    const put = await stack.app.inject({
      method: 'PUT',
      url: `${A}/tracefs/instances/foo/current_tracer`,
      payload: 'function',
      headers: { ...auth, 'content-type': 'text/plain' },
    });
    expect(put.statusCode).toBe(200);
    expect((await req('GET', `${A}/tracefs/instances/foo/current_tracer`)).body).toBe('function\n');
    expect((await req('GET', `${A}/tracefs/current_tracer`)).body).toBe('nop\n');
    expect((await req('DELETE', `${A}/tracefs/instances/foo`)).statusCode).toBe(200);
    expect((await req('GET', `${A}/tracefs?dir=instances`)).json().entries).toEqual([]);
    const outside = await req('POST', `${A}/tracefs/foo`);
    expect(outside.statusCode).toBeGreaterThanOrEqual(400);
    expect(outside.statusCode).toBeLessThan(500);
  });

  it('refuses every mutating bpf route without the token and changes nothing', async () => {
    for (const [method, url, payload] of [
      ['POST', `${A}/programs`, { format: 'asm', text: 'r0 = 0\nexit', progType: 'kprobe' }],
      ['POST', `${A}/programs/verify`, { format: 'asm', text: 'r0 = 0\nexit', progType: 'kprobe' }],
      ['DELETE', `${A}/programs/3`, undefined],
      ['POST', `${A}/maps`, { type: 'array', keySize: 4, valueSize: 8, maxEntries: 1 }],
      ['PUT', `${A}/maps/3/entries/00000000`, { value: '00' }],
      ['DELETE', `${A}/maps/3/entries/00000000`, undefined],
      ['DELETE', `${A}/maps/3`, undefined],
      ['POST', `${A}/tracefs/instances/x`, undefined],
      ['DELETE', `${A}/tracefs/instances/x`, undefined],
      ['POST', `${A}/workload`, { workload: 'syscalls' }],
      ['DELETE', `${A}/workload`, undefined],
      ['POST', `${A}/links`, { attachType: 'section', progFd: 3 }],
      ['DELETE', `${A}/links/3`, undefined],
    ] as const) {
      const res = await req(method, url, payload, false);
      expect([method, url, res.statusCode]).toEqual([method, url, 401]);
      expect(ErrorEnvelopeSchema.parse(res.json()).code).toBe('EACCES');
    }
    expect((await req('GET', `${A}/maps`)).json().maps).toEqual([]);
    expect((await req('GET', `${A}/programs`)).json().programs).toEqual([]);
  });

  it('publishes the bpf routes in OpenAPI', async () => {
    const doc = (await req('GET', '/documentation/json')).json();
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/v1/agents/{agentId}/functions',
        '/v1/agents/{agentId}/programs',
        '/v1/agents/{agentId}/programs/verify',
        '/v1/agents/{agentId}/maps/{fd}/entries/{key}',
        '/v1/agents/{agentId}/links/{fd}',
      ]),
    );
  });
});
