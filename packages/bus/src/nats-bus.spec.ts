import { afterAll, beforeAll, describe } from 'vitest';
import { busContract } from '../test/bus-contract.js';
import { NatsBus } from './nats-bus.js';
import { startNatsServer, type NatsServer } from './nats-server.js';

describe('NatsBus', () => {
  let server: NatsServer;
  beforeAll(async () => {
    server = await startNatsServer();
  });
  afterAll(async () => {
    await server.stop();
  });
  busContract((options) => NatsBus.connect({ servers: server.url, ...options }));
});
