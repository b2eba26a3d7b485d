import { describe } from 'vitest';
import { busContract } from '../test/bus-contract.js';
import { LocalBroker } from './local-bus.js';

describe('LocalBus', () => {
  const broker = new LocalBroker();
  busContract(async (options) => broker.connect(options));
});
