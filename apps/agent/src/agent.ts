import { hostname } from 'node:os';
import { AgentInfoSchema, subjects, type AgentHealth, type AgentInfo } from '@tracelab/contracts';
import { encodeJson, type Bus, type Subscription } from '@tracelab/bus';

export interface AgentOptions {
  bus: Bus;
  id: string;
  version: string;
  transport: 'local' | 'nats';
}

/**
 * One agent: hosts a traced kernel (the engine, in a later layer) and answers for it on the bus.
 * Today it serves its identity and health and announces itself so gateways can find it.
 */
export class Agent {
  readonly info: AgentInfo;
  private readonly started = Date.now();
  private readonly subscriptions: Subscription[] = [];

  constructor(private readonly options: AgentOptions) {
    this.info = AgentInfoSchema.parse({
      id: options.id,
      version: options.version,
      hostname: hostname(),
      pid: process.pid,
      startedAt: new Date(this.started).toISOString(),
      transport: options.transport,
    });
  }

  async start(): Promise<void> {
    const { bus } = this.options;
    this.subscriptions.push(
      await bus.serve(subjects.agentInfo(this.info.id), () => encodeJson(this.info)),
      await bus.serve(subjects.agentHealth(this.info.id), () => encodeJson(this.health())),
      await bus.subscribe(subjects.agentPing, () => this.announce()),
    );
    this.announce();
    await bus.flush();
  }

  health(): AgentHealth {
    return {
      id: this.info.id,
      status: 'ok',
      uptimeMs: Date.now() - this.started,
    };
  }

  async stop(): Promise<void> {
    for (const s of this.subscriptions.splice(0)) s.unsubscribe();
    await this.options.bus.flush();
  }

  private announce(): void {
    this.options.bus.publish(subjects.agentAnnounce, encodeJson(this.info));
  }
}
