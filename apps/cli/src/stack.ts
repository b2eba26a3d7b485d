import { randomBytes } from 'node:crypto';
import { Agent, type MachineOptions } from '@tracelab/agent';
import { LocalBus, NatsBus, type Bus } from '@tracelab/bus';
import { Collector, FileStore, type CollectedEvent } from '@tracelab/collector';
import { buildGateway, type Gateway } from '@tracelab/gateway';
import { VERSION } from './version.js';

export interface StackOptions {
  /** NATS server URL; without one every app runs in this process over the in-process bus. */
  natsUrl?: string;
  agentId: string;
  host: string;
  port: number;
  /** Where collected trace events go. */
  sink?: (event: CollectedEvent) => void;
  /** A directory the collector stores batches in (per agent and stream), for `tracelab export`. */
  storeDir?: string;
  /** The simulated machine the agent's kernel runs on (default x86_64, 2 CPUs). */
  machine?: MachineOptions;
  /** Bearer token of the gateway's mutating routes; generated when not given. */
  token?: string;
  /** Trace one run of the built-in syscalls workload at start, so the first look shows a trace. */
  demo?: boolean;
}

/** What the demo sets up: the call tree of every vfs_read, as function_graph prints it. */
export const DEMO = {
  workload: 'syscalls',
  writes: [
    ['set_graph_function', 'vfs_read'],
    ['current_tracer', 'function_graph'],
  ],
} as const;

/** The apps of tracelab composed in one process: the main job of `tracelab start`. */
export interface Stack {
  readonly bus: Bus;
  readonly agent: Agent;
  readonly collector: Collector | undefined;
  readonly gateway: Gateway;
  readonly url: string;
  readonly token: string;
  close(): Promise<void>;
}

export async function startStack(options: StackOptions): Promise<Stack> {
  const transport = options.natsUrl ? 'nats' : 'local';
  const bus: Bus = options.natsUrl
    ? await NatsBus.connect({ servers: options.natsUrl, name: `tracelab-${options.agentId}` })
    : new LocalBus();
  const agent = new Agent({
    bus,
    id: options.agentId,
    version: VERSION,
    transport,
    ...(options.machine ? { machine: options.machine } : {}),
  });
  const store = options.storeDir ? new FileStore({ dir: options.storeDir }) : undefined;
  // a collector runs when its output goes somewhere: a sink, a store, or both
  const collector =
    options.sink || store
      ? new Collector({
          bus,
          durable: 'tracelab-collector',
          ...(options.sink ? { sink: options.sink } : {}),
          ...(store ? { store } : {}),
        })
      : undefined;
  const token = options.token ?? randomBytes(16).toString('hex');
  const gateway = await buildGateway({ bus, version: VERSION, transport, token });
  try {
    await collector?.start();
    await agent.start();
    if (options.demo) {
      for (const [file, data] of DEMO.writes) {
        const written = agent.engine.tracefs.write(file, data);
        if (typeof written !== 'number') throw written;
      }
      const ran = agent.engine.run(DEMO.workload);
      if (!('calls' in ran)) throw ran;
      agent.publishStreams();
    }
    const url = await gateway.listen({ host: options.host, port: options.port });
    return {
      bus,
      agent,
      collector,
      gateway,
      url,
      token,
      async close() {
        await gateway.close();
        await collector?.stop();
        await agent.stop();
        await bus.drain();
      },
    };
  } catch (err) {
    await gateway.close();
    await bus.close();
    throw err;
  }
}
