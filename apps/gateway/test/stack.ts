import { Agent } from '@tracelab/agent';
import { LocalBroker, LocalBus } from '@tracelab/bus';
import { buildGateway, type Gateway, type GatewayOptions } from '../src/index.js';

export const TOKEN = 'test-token';
export const auth = { authorization: `Bearer ${TOKEN}` };

/** A gateway in front of one real agent (a traced kernel) on an in-process bus. */
export interface TestStack {
  agent: Agent;
  app: Gateway;
  close(): Promise<void>;
}

export async function startTestStack(
  options: Partial<Pick<GatewayOptions, 'rateLimit' | 'keepAliveMs'>> = {},
): Promise<TestStack> {
  const broker = new LocalBroker();
  const agentBus = new LocalBus({ broker });
  const agent = new Agent({ bus: agentBus, id: 'm1', version: '0.0.0', transport: 'local' });
  await agent.start();
  const gatewayBus = new LocalBus({ broker });
  const app = await buildGateway({
    bus: gatewayBus,
    version: '0.0.0',
    transport: 'local',
    token: TOKEN,
    ...options,
  });
  await app.ready();
  return {
    agent,
    app,
    async close() {
      await app.close();
      await agent.stop();
      await gatewayBus.close();
      await agentBus.close();
    },
  };
}
