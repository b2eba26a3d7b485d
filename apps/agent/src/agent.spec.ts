import { decodeJson, encodeJson, LocalBroker, LocalBus, type BusMsg } from '@tracelab/bus';
import {
  AgentHealthSchema,
  AgentInfoSchema,
  decodeTraceBatch,
  RunReplySchema,
  subjects,
  TRACE_BATCH_MAGIC,
  TraceEventBatchSchema,
  type TraceEventBatch,
} from '@tracelab/contracts';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent } from './index.js';

describe('agent', () => {
  const broker = new LocalBroker();
  const buses: LocalBus[] = [];
  const bus = () => {
    const b = new LocalBus({ broker });
    buses.push(b);
    return b;
  };
  afterEach(async () => {
    for (const b of buses.splice(0)) await b.close();
  });

  it('refuses an id that is not a subject token', () => {
    expect(() => new Agent({ bus: bus(), id: 'a.b', version: '1', transport: 'local' })).toThrow(
      /id/,
    );
  });

  it('serves its info and health and announces itself on start and on ping', async () => {
    const client = bus();
    const announced: unknown[] = [];
    await client.subscribe(subjects.agentAnnounce, (m: BusMsg) => {
      announced.push(m.json());
    });
    const agent = new Agent({ bus: bus(), id: 'm1', version: '9.9.9', transport: 'local' });
    await agent.start();
    await client.flush();
    expect(announced).toHaveLength(1);
    client.publish(subjects.agentPing, new Uint8Array());
    await client.flush();
    await agent.stop();
    expect(announced).toHaveLength(2);
    expect(AgentInfoSchema.parse(announced[1])).toMatchObject({
      id: 'm1',
      version: '9.9.9',
      pid: process.pid,
    });
  });

  it('answers info and health requests until stopped', async () => {
    const client = bus();
    const agent = new Agent({ bus: bus(), id: 'm2', version: '1', transport: 'local' });
    await agent.start();
    const info = await client.request(subjects.agentInfo('m2'), new Uint8Array(), {
      timeoutMs: 500,
    });
    expect(AgentInfoSchema.parse(info.json()).id).toBe('m2');
    const health = AgentHealthSchema.parse(
      decodeJson(
        (await client.request(subjects.agentHealth('m2'), new Uint8Array(), { timeoutMs: 500 }))
          .data,
      ),
    );
    expect(health).toMatchObject({ id: 'm2', status: 'ok' });
    await agent.stop();
    await expect(
      client.request(subjects.agentHealth('m2'), new Uint8Array(), { timeoutMs: 100 }),
    ).rejects.toMatchObject({
      code: 'EHOSTUNREACH',
    });
  });

  describe('its traced kernel on the bus', () => {
    const req = async (client: LocalBus, subject: string, body: unknown) =>
      (await client.request(subject, encodeJson(body), { timeoutMs: 5000 })).json();

    it('writes and reads tracefs, runs a workload and shows the trace', async () => {
      const client = bus();
      const agent = new Agent({
        bus: bus(),
        id: 'k1',
        version: '1',
        transport: 'local',
        machine: { arch: 'arm64', cpus: 2 },
      });
      await agent.start();
      const shipped: TraceEventBatch[] = [];
      const encodings = new Set<number | undefined>();
      await client.subscribe(subjects.trace('k1', 'trace'), (m: BusMsg) => {
        encodings.add(m.data[0]);
        shipped.push(TraceEventBatchSchema.parse(decodeTraceBatch(m.data)));
      });
      expect(agent.info.machine).toEqual({ arch: 'arm64', cpus: 2 });
      expect(
        await req(client, subjects.tracefsWrite('k1'), {
          path: 'set_ftrace_filter',
          data: 'vfs_read',
        }),
      ).toEqual({ written: 8 });
      await req(client, subjects.tracefsWrite('k1'), { path: 'current_tracer', data: 'function' });
      const ran = RunReplySchema.parse(
        await req(client, subjects.run('k1'), { workload: 'syscalls', seed: 3 }),
      );
      expect(ran).toMatchObject({ workload: 'syscalls', seed: 3, fault: null });
      const { data } = (await req(client, subjects.tracefsRead('k1'), { path: 'trace' })) as {
        data: string;
      };
      const rows = data.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
      expect(rows.length).toBeGreaterThan(0);
      for (const row of rows) expect(row).toMatch(/: vfs_read <-/);
      // the run's trace entries were published once, as batches with consecutive sequence numbers
      await client.flush();
      const seqs = shipped.flatMap((b) => b.events.map((_, i) => b.firstSeq + i));
      expect(seqs).toEqual(rows.map((_, i) => i));
      expect(
        shipped.flatMap((b) => b.events.map((e) => (e.type === 'function' ? e.func : ''))),
      ).toEqual(rows.map(() => 'vfs_read'));
      expect(agent.health()).toMatchObject({ published: rows.length, lost: 0 });
      // every batch went in the binary encoding, not as JSON
      expect([...encodings]).toEqual([TRACE_BATCH_MAGIC]);
      const { entries } = (await req(client, subjects.tracefsList('k1'), {})) as {
        entries: string[];
      };
      expect(entries).toEqual(
        expect.arrayContaining(['trace', 'current_tracer', 'set_ftrace_filter']),
      );
      await agent.stop();
    });

    it('starts a workload in the background, publishes it slice by slice, and stops it', async () => {
      const client = bus();
      const agent = new Agent({ bus: bus(), id: 'k2', version: '1', transport: 'local' });
      await agent.start();
      const shipped: TraceEventBatch[] = [];
      await client.subscribe(subjects.trace('k2', 'trace'), (m: BusMsg) => {
        shipped.push(TraceEventBatchSchema.parse(decodeTraceBatch(m.data)));
      });
      await req(client, subjects.tracefsWrite('k2'), { path: 'current_tracer', data: 'function' });
      const started = await req(client, subjects.workloadStart('k2'), {
        workload: 'syscalls',
        seed: 5,
        sliceCalls: 2,
      });
      expect(started).toEqual({ workload: 'syscalls', seed: 5 });
      const busy = client.request(subjects.run('k2'), encodeJson({ workload: 'syscalls' }), {
        timeoutMs: 5000,
      });
      await expect(busy).rejects.toMatchObject({ code: 'EBUSY' });
      // a slice's output is published before the run ends
      for (let i = 0; i < 200 && shipped.length === 0; i++)
        await new Promise((r) => setImmediate(r));
      expect(shipped.length).toBeGreaterThan(0);
      const stopped = RunReplySchema.parse(await req(client, subjects.workloadStop('k2'), {}));
      expect(stopped).toMatchObject({ workload: 'syscalls', seed: 5, stopped: true });
      await client.flush();
      // every entry made before the stop was published, in sequence
      const { data } = (await req(client, subjects.tracefsRead('k2'), { path: 'trace' })) as {
        data: string;
      };
      const rows = data.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
      expect(shipped.flatMap((b) => b.events.map((_, i) => b.firstSeq + i))).toEqual(
        rows.map((_, i) => i),
      );
      const none = client.request(subjects.workloadStop('k2'), encodeJson({}), { timeoutMs: 5000 });
      await expect(none).rejects.toMatchObject({ code: 'ENOENT' });
      await agent.stop();
    });

    it('answers bad requests with the errno and the failing field', async () => {
      const client = bus();
      const agent = new Agent({ bus: bus(), id: 'k2', version: '1', transport: 'local' });
      await agent.start();
      await expect(
        req(client, subjects.tracefsRead('k2'), { path: '../etc/passwd' }),
      ).rejects.toMatchObject({
        code: 'EINVAL',
        remote: true,
        message: expect.stringContaining('path'),
      });
      await expect(
        req(client, subjects.tracefsRead('k2'), { path: 'no_such_file' }),
      ).rejects.toMatchObject({ code: 'ENOENT' });
      await expect(
        req(client, subjects.run('k2'), { workload: 'syscalls', seed: -1 }),
      ).rejects.toMatchObject({
        code: 'EINVAL',
        message: expect.stringContaining('seed'),
      });
      await expect(
        req(client, subjects.run('k2'), {
          workload: { name: 'w', tasks: [{ comm: 'x', calls: [{ fn: 'nope' }] }] },
        }),
      ).rejects.toMatchObject({
        code: 'ENOENT',
        message: expect.stringContaining('nope'),
      });
      await agent.stop();
    });
  });
});
