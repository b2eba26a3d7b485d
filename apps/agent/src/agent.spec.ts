import { decodeJson, LocalBroker, LocalBus, type BusMsg } from '@tracelab/bus';
import { AgentHealthSchema, AgentInfoSchema, subjects } from '@tracelab/contracts';
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
});
