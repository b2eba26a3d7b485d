import { AgentInfoSchema, subjects, type AgentInfo } from '@tracelab/contracts';
import type { Bus, Subscription } from '@tracelab/bus';

/**
 * The agents the gateway knows, learnt from their announcements. Agents announce when they start
 * and whenever someone pings, so a gateway that starts after them still finds them.
 */
export class AgentDirectory {
  private readonly agents = new Map<string, AgentInfo>();
  private subscription: Subscription | undefined;

  constructor(
    private readonly bus: Bus,
    private readonly onInvalid: (reason: string) => void,
  ) {}

  async start(): Promise<void> {
    this.subscription = await this.bus.subscribe(subjects.agentAnnounce, (msg) => {
      let body: unknown;
      try {
        body = msg.json();
      } catch {
        this.onInvalid('announcement is not JSON');
        return;
      }
      const parsed = AgentInfoSchema.safeParse(body);
      if (parsed.success) this.agents.set(parsed.data.id, parsed.data);
      else this.onInvalid(`announcement rejected: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    });
    this.bus.publish(subjects.agentPing, new Uint8Array());
    await this.bus.flush();
  }

  list(): AgentInfo[] {
    return [...this.agents.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  stop(): void {
    this.subscription?.unsubscribe();
  }
}
