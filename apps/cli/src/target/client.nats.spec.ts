import { createServer } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent } from '@tracelab/agent';
import { NatsBus, startNatsServer, type NatsServer } from '@tracelab/bus';
import { subjects } from '@tracelab/contracts';
import { builtinWorkload, type CallSpec } from '@tracelab/kernel';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../test/run.js';
import { runStatus } from '../../test/status.js';

const obj = (name: string) =>
  fileURLToPath(new URL(`../../../../packages/loader/testdata/${name}`, import.meta.url));

/** Calls of `fn` in one run of a built-in workload, counted from its definition. */
function callsIn(workload: string, fn: string): number {
  const spec = builtinWorkload(workload, 'x86_64');
  if (spec instanceof Error) throw spec;
  const count = (calls: readonly CallSpec[] | undefined): number =>
    (calls ?? []).reduce(
      (n, c) => n + (c.repeat ?? 1) * ((c.fn === fn ? 1 : 0) + count(c.calls)),
      0,
    );
  return spec.tasks.reduce((n, t) => n + (t.loops ?? 1) * count(t.calls), 0);
}

/** bpftool's hex of a little-endian integer of `size` bytes. */
const leHex = (v: number, size: number): string =>
  Array.from({ length: size }, (_, i) =>
    Math.floor(v / 256 ** i)
      .toString(16)
      .slice(-2)
      .padStart(2, '0'),
  ).join(' ');

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  await new Promise((r) => server.close(r));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

describe('the CLI as a client of an agent over NATS', () => {
  let server: NatsServer;
  let bus: NatsBus;
  let dir = '';
  const agents: Agent[] = [];
  let nextId = 0;

  /** A fresh agent (a fresh kernel, seed 1 as the embedded default) on the test's server. */
  async function agent(): Promise<Agent> {
    const a = new Agent({
      bus,
      id: `t${nextId++}`,
      version: '0',
      transport: 'nats',
      machine: { arch: 'x86_64', cpus: 2, seed: 1 },
    });
    await a.start();
    agents.push(a);
    return a;
  }
  const client = (a: Agent) => ['--nats', server.url, '--agent', a.info.id];

  beforeAll(async () => {
    server = await startNatsServer();
    bus = await NatsBus.connect({ servers: server.url });
    dir = mkdtempSync(join(tmpdir(), 'tracelab-client-'));
  });
  afterAll(async () => {
    for (const a of agents) await a.stop();
    await bus?.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it.each([
    ['function', ['--filter', 'vfs_* !vfs_open', '--seed', '3']],
    [
      'function_graph',
      ['--graph-function', 'vfs_write', '--trace-options', 'funcgraph-proc,nofuncgraph-irqs'],
    ],
  ])(
    'trace --tracer %s prints what the embedded engine prints, and turns the tracer off after',
    async (tracer, args) => {
      const a = await agent();
      const cmd = ['trace', '--tracer', tracer, '--workload', 'syscalls', ...args];
      const remote = await runStatus([...cmd, ...client(a)]);
      expect(remote.error).toBeUndefined();
      expect(remote.out).toBe(await run(cmd));
      expect(remote.out).toContain(`# tracer: ${tracer}`);
      expect(a.engine.tracefs.read('current_tracer')).toBe('nop\n');
      expect(a.engine.tracefs.read('set_ftrace_filter')).not.toContain('vfs_');
    },
  );

  it('trace leaves no earlier setting of the agent in its output', async () => {
    const a = await agent();
    a.engine.tracefs.write('set_ftrace_filter', 'vfs_read');
    a.engine.tracefs.write('current_tracer', 'function');
    a.engine.run('syscalls');
    const cmd = ['trace', '--workload', 'syscalls', '--filter', 'vfs_write'];
    const out = await run([...cmd, ...client(a)]);
    const rows = out.split('\n').filter((l) => / vfs_\w+ <-/.test(l));
    expect(rows.length).toBe(callsIn('syscalls', 'vfs_write'));
    expect(rows.every((l) => l.includes(' vfs_write <-'))).toBe(true);
  });

  it('an errno from the agent is reported as the embedded engine reports it', async () => {
    const a = await agent();
    const cmd = ['trace', '--workload', 'syscalls', '--filter', 'no_such_fn'];
    const local = await runStatus(cmd);
    const remote = await runStatus([...cmd, ...client(a)]);
    expect(local.error?.code).toBe('EINVAL');
    expect(remote.code).toBe(1);
    expect(remote.error).toMatchObject({ code: 'EINVAL', message: local.error?.message });
  });

  it('fprobe add prints the embedded trace, and removes its events so it can run again', async () => {
    const a = await agent();
    const cmd = ['fprobe', 'add', 'f vfs_read count=$arg3:u32', 'f:my/wr vfs_write%return'];
    const local = await run(cmd);
    const first = await runStatus([...cmd, ...client(a)]);
    expect(first.error).toBeUndefined();
    expect(first.out).toBe(local);
    const lines = (name: string) => first.out.split('\n').filter((l) => l.includes(`${name}:`));
    expect(lines('vfs_read__entry').length).toBe(callsIn('syscalls', 'vfs_read'));
    expect(lines('wr').length).toBe(callsIn('syscalls', 'vfs_write'));
    expect(a.engine.tracefs.read('dynamic_events')).toBe('');
    const again = await runStatus([...cmd, ...client(a)]);
    expect(again.code).toBe(0);
    expect(again.out.split('\n').length).toBe(first.out.split('\n').length);
  });

  it("fprobe add prints the agent's error_log for a refused definition and exits 2", async () => {
    const a = await agent();
    const cmd = ['fprobe', 'add', 'f vfs_read', 'f no_such_function'];
    const local = await runStatus(cmd);
    const remote = await runStatus([...cmd, ...client(a)]);
    expect(local.code).toBe(2);
    expect(remote.code).toBe(2);
    expect(remote.err).toBe(local.err);
    expect(remote.err).toContain('no_such_function');
    expect(a.engine.tracefs.read('dynamic_events')).toBe('');
  });

  it('fprobe list shows only its definitions among the events the agent has', async () => {
    const a = await agent();
    a.engine.tracefs.write('dynamic_events', 'f:other/ev vfs_open');
    const cmd = ['fprobe', 'list', '--event', 'f vfs_read count', '--event', 'f vfs_write%return'];
    expect(await run([...cmd, ...client(a)])).toBe(await run(cmd));
    expect(a.engine.tracefs.read('dynamic_events')).toBe('f:other/ev vfs_open\n');
  });

  it('attach counts vfs_read with a clang object and gives back its program and link', async () => {
    const a = await agent();
    const cmd = ['attach', obj('counts.bpfel.o'), '--section', 'fentry/vfs_read'];
    const r = await runStatus([...cmd, ...client(a)]);
    expect(r.code).toBe(0);
    expect(r.out).toBe(await run(cmd));
    expect(r.out).toContain(`value: ${leHex(callsIn('syscalls', 'vfs_read'), 8)}\n`);
    expect(a.bpf.linkList()).toEqual([]);
    expect(a.bpf.programs()).toEqual([]);
  });

  it('attach prints bpf_trace_printk lines the agent shipped, one per traced call', async () => {
    const a = await agent();
    const file = join(dir, 'hi.asm');
    // bpf_trace_printk("hi!")
    writeFileSync(
      file,
      'r1 = 0x216968\n*(u32 *)(r10 - 4) = r1\nr1 = r10\nr1 += -4\nr2 = 4\ncall 6\nr0 = 0\nexit\n',
    );
    const r = await runStatus(['attach', file, '--fexit', 'vfs_write', ...client(a)]);
    expect(r.code).toBe(0);
    const printk = r.out.split('\n').filter((l) => l.endsWith('bpf_trace_printk: hi!'));
    expect(printk.length).toBe(callsIn('syscalls', 'vfs_write'));
  });

  it('attach refuses --map fds the agent cannot give as the program numbers them', async () => {
    const a = await agent();
    a.engine.bpf.mapCreate({ type: 2, keySize: 4, valueSize: 8, maxEntries: 1 });
    const file = join(dir, 'count.asm');
    writeFileSync(file, 'r1 = map_fd[3, 0] ll\nr0 = 0\nexit\n');
    const r = await runStatus([
      'attach',
      file,
      '--fentry',
      'vfs_read',
      '--map',
      'hits:array:4:8:1',
      ...client(a),
    ]);
    expect(r.error).toMatchObject({ code: 'EBUSY' });
    expect(r.error?.message).toMatch(/--map hits: the kernel gave fd 4, not 3/);
  });

  it('maps dump prints what the embedded engine prints', async () => {
    const a = await agent();
    const cmd = ['maps', 'dump', obj('latency.bpfel.o')];
    const r = await runStatus([...cmd, ...client(a)]);
    expect(r.code).toBe(0);
    expect(r.out).toBe(await run(cmd));
    expect(r.out).toMatch(/Found [1-9]\d* elements?/);
  });

  it('takes the server from TRACELAB_NATS_URL and the agent from --agent', async () => {
    const a = await agent();
    const cmd = ['trace', '--workload', 'syscalls', '--filter', 'vfs_read'];
    const out = await run([...cmd, '--agent', a.info.id], { TRACELAB_NATS_URL: server.url });
    expect(out).toBe(await run(cmd));
  });

  it.each([
    ['--arch', 'arm64'],
    ['--cpus', '4'],
    ['--btf', '/sys/kernel/btf/vmlinux'],
  ])('refuses %s with --nats, naming it', async (flag, value) => {
    const a = await agent();
    const r = await runStatus(['trace', '--workload', 'syscalls', flag, value, ...client(a)]);
    expect(r.error?.code).toBe('EINVAL');
    expect(r.error?.message).toContain(`${flag} describes an in-process kernel`);
  });

  it('names the agent when no agent of that id is on the server', async () => {
    const r = await runStatus(['fprobe', 'list', '--nats', server.url, '--agent', 'nobody']);
    expect(r.error?.code).toBe('EHOSTUNREACH');
    expect(r.error?.message).toContain(`agent nobody at ${server.url}`);
    expect(r.error?.message).not.toMatch(/\n\s+at /);
  });

  it('names the URL when no NATS server listens there', async () => {
    const url = `nats://127.0.0.1:${await closedPort()}`;
    const r = await runStatus(['fprobe', 'list', '--nats', url]);
    expect(r.error?.code).toBe('EHOSTUNREACH');
    expect(r.error?.message).toContain(`no NATS server at ${url}`);
    expect(r.error?.message).toContain('agent agent-0');
  });

  it('times out, naming the agent, when the agent takes no turn to answer', async () => {
    const mute = await NatsBus.connect({ servers: server.url });
    try {
      await mute.serve(subjects.agentInfo('mute'), () => new Promise<never>(() => undefined));
      await mute.flush();
      const r = await runStatus([
        'fprobe',
        'list',
        '--nats',
        server.url,
        '--agent',
        'mute',
        '--timeout',
        '200',
      ]);
      expect(r.error?.code).toBe('ETIMEDOUT');
      expect(r.error?.message).toBe(
        `agent mute at ${server.url} did not answer info within 200 ms`,
      );
    } finally {
      await mute.close();
    }
  });
});
