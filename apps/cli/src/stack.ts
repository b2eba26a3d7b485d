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

/**
 * What the demo sets up: the call tree of every vfs_read as function_graph prints it, an fprobe
 * event on vfs_read with its count argument, recorded in the tracing instance `demo` (the top
 * buffer's function_graph output does not show event lines yet), and a BPF program that counts
 * the calls of every vfs_* function in a hash map.
 */
export const DEMO = {
  workload: 'syscalls',
  instance: 'instances/demo',
  writes: [
    ['set_graph_function', 'vfs_read'],
    ['current_tracer', 'function_graph'],
    ['dynamic_events', 'f:demo/vfs_read_count vfs_read count=$arg3'],
    ['instances/demo/events/demo/vfs_read_count/enable', '1'],
  ],
  countPattern: 'vfs_*',
} as const;

/**
 * A kprobe program for a kprobe_multi link: map[bpf_get_func_ip()] += 1, inserting 1 the first
 * time a function is seen (BPF_NOEXIST, so a racing insert on another CPU is not overwritten).
 */
export function countCallsAsm(mapFd: number): string {
  return [
    'call 173', // bpf_get_func_ip(ctx): r1 still holds ctx
    '*(u64 *)(r10 - 8) = r0',
    `r1 = map_fd[${mapFd}, 0] ll`,
    'r2 = r10',
    'r2 += -8',
    'call 1', // bpf_map_lookup_elem
    'if r0 == 0 goto +4',
    'r1 = 1',
    'lock *(u64 *)(r0 + 0) += r1',
    'r0 = 0',
    'exit',
    'r1 = 1',
    '*(u64 *)(r10 - 16) = r1',
    `r1 = map_fd[${mapFd}, 0] ll`,
    'r2 = r10',
    'r2 += -8',
    'r3 = r10',
    'r3 += -16',
    'r4 = 1', // BPF_NOEXIST
    'call 2', // bpf_map_update_elem
    'r0 = 0',
    'exit',
  ].join('\n');
}

/** The fds of the demo's counting program, its map (key: function address) and its link. */
export interface DemoBpf {
  mapFd: number;
  progFd: number;
  linkFd: number;
}

/** Loads the counting program from assembly and attaches it to every vfs_* function. */
function loadCounter(agent: Agent): DemoBpf {
  const mapFd = agent.bpf.mapCreate({
    type: 'hash',
    keySize: 8,
    valueSize: 8,
    maxEntries: 1024,
    name: 'calls',
  });
  const loaded = agent.bpf.load({
    format: 'asm',
    text: countCallsAsm(mapFd),
    progType: 'kprobe',
    name: 'count_calls',
    logLevel: 1,
  });
  if (loaded.verdict === 'rejected') throw new Error(`demo program rejected: ${loaded.log}`);
  const progFd = (loaded.programs[0] as { fd: number }).fd;
  const link = agent.bpf.linkCreate({
    attachType: 'kprobe_multi',
    progFd,
    pattern: DEMO.countPattern,
    retprobe: false,
  });
  return { mapFd, progFd, linkFd: link.fd };
}

/** The apps of tracelab composed in one process: the main job of `tracelab start`. */
export interface Stack {
  readonly bus: Bus;
  readonly agent: Agent;
  readonly collector: Collector | undefined;
  readonly gateway: Gateway;
  readonly url: string;
  readonly token: string;
  /** The demo's BPF counting program, when the demo ran. */
  readonly demo: DemoBpf | undefined;
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
    let demo: DemoBpf | undefined;
    if (options.demo) {
      demo = loadCounter(agent);
      const made = agent.engine.tracefs.mkdir(DEMO.instance);
      if (made !== null) throw made;
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
      demo,
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
