import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeJson, NatsBus, startNatsServer, type NatsServer } from '@tracelab/bus';
import { subjects } from '@tracelab/contracts';
import type { CollectedEvent } from '@tracelab/collector';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../test/run.js';
import { startStack, type Stack } from './index.js';

const version = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;

describe('tracelab cli', () => {
  it('prints its version', async () => {
    expect((await run(['--version'])).trim()).toBe(version);
  });

  it('lists its commands in --help', async () => {
    const help = await run(['--help']);
    expect(help).toMatch(/Usage: tracelab/);
    expect(help).toMatch(/\binfo\b/);
    expect(help).toMatch(/\bstart\b/);
  });

  it('info --json says which transport the apps would use', async () => {
    expect(JSON.parse(await run(['info', '--json']))).toMatchObject({
      version,
      transport: 'local',
      natsUrl: null,
    });
    const nats = JSON.parse(
      await run(['info', '--json'], { TRACELAB_NATS_URL: 'nats://127.0.0.1:4333' }),
    );
    expect(nats).toMatchObject({ transport: 'nats', natsUrl: 'nats://127.0.0.1:4333' });
  });

  it('rejects a bad port and a bad agent id by option', async () => {
    await expect(run(['start', '--port', '70000'])).rejects.toMatchObject({
      code: 'commander.invalidArgument',
      message: expect.stringMatching(/--port.*0 to 65535/s),
    });
    await expect(run(['start', '--agent-id', 'a b'])).rejects.toMatchObject({
      message: expect.stringMatching(/--agent-id.*agent id/s),
    });
  });
});

describe('the main job on the in-process bus', () => {
  let stack: Stack | undefined;
  afterEach(async () => {
    await stack?.close();
    stack = undefined;
  });

  it('serves /healthz and lists its agent', async () => {
    stack = await startStack({ agentId: 'local-0', host: '127.0.0.1', port: 0 });
    expect(await (await fetch(`${stack.url}/healthz`)).json()).toEqual({ status: 'ok' });
    const info = (await (await fetch(`${stack.url}/v1/info`)).json()) as {
      transport: string;
      agents: { id: string }[];
    };
    expect(info.transport).toBe('local');
    expect(info.agents.map((a) => a.id)).toEqual(['local-0']);
    const health = await fetch(`${stack.url}/v1/agents/local-0/health`);
    expect(health.status).toBe(200);
  });

  it('starts with a traced demo run, or idle with demo off', async () => {
    stack = await startStack({ agentId: 'demo', host: '127.0.0.1', port: 0, demo: true });
    const traced = await (await fetch(`${stack.url}/v1/agents/demo/tracefs/trace`)).text();
    expect(traced.split('\n')[0]).toBe('# tracer: function_graph');
    expect(traced).toMatch(/\|\s+vfs_read\(\) \{$/m);
    await stack.close();
    stack = await startStack({ agentId: 'idle', host: '127.0.0.1', port: 0 });
    const idle = await (await fetch(`${stack.url}/v1/agents/idle/tracefs/trace`)).text();
    expect(idle.split('\n')[0]).toBe('# tracer: nop');
  });

  it("traces a workload on the agent's kernel through the gateway", async () => {
    stack = await startStack({
      agentId: 'local-1',
      host: '127.0.0.1',
      port: 0,
      machine: { arch: 'riscv64', cpus: 2 },
      token: 't0k',
    });
    const auth = { authorization: 'Bearer t0k' };
    const put = (file: string, body: string) =>
      fetch(`${stack?.url}/v1/agents/local-1/tracefs/${file}`, {
        method: 'PUT',
        body,
        headers: { ...auth, 'content-type': 'text/plain' },
      });
    expect((await put('set_graph_function', 'vfs_read')).status).toBe(200);
    expect((await put('current_tracer', 'function_graph')).status).toBe(200);
    const run = await fetch(`${stack.url}/v1/agents/local-1/run`, {
      method: 'POST',
      body: JSON.stringify({ workload: 'syscalls', seed: 2 }),
      headers: { ...auth, 'content-type': 'application/json' },
    });
    expect(run.status).toBe(200);
    const trace = await (await fetch(`${stack.url}/v1/agents/local-1/tracefs/trace`)).text();
    expect(trace.split('\n')[0]).toBe('# tracer: function_graph');
    expect(trace).toMatch(/\|\s+vfs_read\(\) \{$/m);
    const denied = await fetch(`${stack.url}/v1/agents/local-1/run`, {
      method: 'POST',
      body: '{}',
      headers: { 'content-type': 'application/json' },
    });
    expect(denied.status).toBe(401);
  });
});

describe('stored traces', () => {
  it('a run on the main job is stored and exports as function_graph text and Perfetto JSON', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tracelab-store-'));
    const stack = await startStack({
      agentId: 'st',
      host: '127.0.0.1',
      port: 0,
      storeDir: dir,
      token: 't',
    });
    try {
      const auth = { authorization: 'Bearer t' };
      const put = (file: string, body: string) =>
        fetch(`${stack.url}/v1/agents/st/tracefs/${file}`, {
          method: 'PUT',
          body,
          headers: { ...auth, 'content-type': 'text/plain' },
        });
      expect((await put('set_graph_function', 'vfs_read')).status).toBe(200);
      expect((await put('current_tracer', 'function_graph')).status).toBe(200);
      const run = await fetch(`${stack.url}/v1/agents/st/run`, {
        method: 'POST',
        body: JSON.stringify({ workload: 'syscalls' }),
        headers: { ...auth, 'content-type': 'application/json' },
      });
      expect(run.status).toBe(200);
      for (let i = 0; i < 100 && (stack.collector?.stats().events ?? 0) === 0; i++)
        await new Promise((r) => setTimeout(r, 20));
    } finally {
      await stack.close();
    }
    try {
      const text = await run(['export', '--store', dir, '--agent', 'st', '--format', 'ftrace']);
      expect(text.split('\n')[0]).toBe('# tracer: function_graph');
      expect(text).toMatch(/vfs_read\(\) \{/);
      const perfetto = JSON.parse(
        await run(['export', '--store', dir, '--agent', 'st', '--format', 'perfetto']),
      ) as {
        traceEvents: { name: string; ph: string; dur?: number }[];
      };
      const reads = perfetto.traceEvents.filter((e) => e.ph === 'X' && e.name === 'vfs_read');
      expect(reads.length).toBeGreaterThan(0);
      for (const e of reads) expect(e.dur).toBeGreaterThanOrEqual(0);
      await expect(run(['export', '--store', dir, '--agent', 'nobody'])).rejects.toMatchObject({
        code: 'ENOENT',
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the main job over NATS', () => {
  let server: NatsServer;
  beforeAll(async () => {
    server = await startNatsServer();
  }, 30_000);
  afterAll(() => server?.stop());

  it('runs agent, gateway and collector over a real nats-server with JetStream', async () => {
    const events: CollectedEvent[] = [];
    const stack = await startStack({
      natsUrl: server.url,
      agentId: 'n1',
      host: '127.0.0.1',
      port: 0,
      sink: (e) => events.push(e),
    });
    const producer = await NatsBus.connect({ servers: server.url, name: 'test-producer' });
    try {
      const info = (await (await fetch(`${stack.url}/v1/info`)).json()) as {
        transport: string;
        agents: { id: string; transport: string }[];
      };
      expect(info.transport).toBe('nats');
      expect(info.agents).toEqual([expect.objectContaining({ id: 'n1', transport: 'nats' })]);
      expect((await fetch(`${stack.url}/v1/agents/n1/health`)).status).toBe(200);

      producer.publish(
        subjects.trace('n1', 'printk'),
        encodeJson({
          agentId: 'n1',
          stream: 'printk',
          firstSeq: 0,
          lost: 0,
          events: [{ type: 'text', ts: 1, cpu: 0, pid: 1, comm: 'init', text: 'hello' }],
        }),
      );
      await producer.flush();
      for (let i = 0; i < 100 && events.length === 0; i++)
        await new Promise((r) => setTimeout(r, 20));
      expect(events).toEqual([
        {
          agentId: 'n1',
          stream: 'printk',
          seq: 0,
          event: expect.objectContaining({ text: 'hello' }),
        },
      ]);

      // a traced run on the agent's kernel reaches the collector through JetStream, entry by entry
      const auth = { authorization: `Bearer ${stack.token}` };
      const put = (file: string, body: string) =>
        fetch(`${stack.url}/v1/agents/n1/tracefs/${file}`, {
          method: 'PUT',
          body,
          headers: { ...auth, 'content-type': 'text/plain' },
        });
      expect((await put('set_ftrace_filter', 'vfs_write')).status).toBe(200);
      expect((await put('current_tracer', 'function')).status).toBe(200);
      const run = await fetch(`${stack.url}/v1/agents/n1/run`, {
        method: 'POST',
        body: JSON.stringify({ workload: 'syscalls' }),
        headers: { ...auth, 'content-type': 'application/json' },
      });
      expect(run.status).toBe(200);
      const trace = await (await fetch(`${stack.url}/v1/agents/n1/tracefs/trace`)).text();
      const rows = trace.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
      expect(rows.length).toBeGreaterThan(0);
      const traced = () => events.filter((e) => e.stream === 'trace');
      for (let i = 0; i < 200 && traced().length < rows.length; i++)
        await new Promise((r) => setTimeout(r, 20));
      expect(traced().map((e) => e.seq)).toEqual(rows.map((_, i) => i));
      expect(
        traced().every((e) => e.event.type === 'function' && e.event.func === 'vfs_write'),
      ).toBe(true);
    } finally {
      await producer.close();
      await stack.close();
    }
  }, 30_000);
});
