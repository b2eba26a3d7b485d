import { BusError, encodeJson, NatsBus, type Bus, type Subscription } from '@tracelab/bus';
import {
  AgentInfoSchema,
  decodeTraceBatch,
  ERRNO,
  FdReplySchema,
  LinkInfoSchema,
  MapDumpReplySchema,
  MapListReplySchema,
  parseOrThrow,
  ProgLoadResultSchema,
  RunReplySchema,
  subjects,
  TracefsReadReplySchema,
  TracefsWriteReplySchema,
  TracelabError,
  type AgentInfo,
  type BpfOp,
  type ErrnoCode,
  type LinkCreateRequest,
  type MapCreateRequest,
  type MapInfo,
  type ProgLoadRequest,
} from '@tracelab/contracts';
import type { WorkloadSpec } from '@tracelab/kernel';
import type { z } from 'zod';
import type { AsmLoadRequest, LoadResult, MapEntries, PrintkBatch, Target } from './target.js';

/** The most elements one map.dump reply may carry (the contract's bound). */
const DUMP_LIMIT = 100_000;

export interface RemoteOptions {
  /** NATS server URL. */
  readonly url: string;
  /** The agent's id on the bus. */
  readonly agent: string;
  /** How long one request may wait for the agent's answer. */
  readonly timeoutMs: number;
}

const isErrno = (code: string): code is ErrnoCode => Object.hasOwn(ERRNO, code);

const hex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'hex'));

/**
 * A running agent's kernel, over NATS: each operation is one request to the agent's subjects in
 * contracts. The agent is shared, so close() gives back the links, programs and maps this
 * client opened.
 */
export class RemoteTarget implements Target {
  /** Links and programs this client opened, to close in reverse (a link holds its program). */
  private readonly opened: { fd: number; op: 'link.detach' | 'prog.close' }[] = [];
  private batches: PrintkBatch[] = [];

  private constructor(
    private readonly bus: Bus,
    private readonly options: RemoteOptions,
    private readonly printkSub: Subscription,
    /** What the agent says it is. */
    readonly info: AgentInfo,
  ) {}

  /** Connects and asks the agent who it is, so a missing server or agent is named at once. */
  static async connect(options: RemoteOptions): Promise<RemoteTarget> {
    let bus: NatsBus;
    try {
      bus = await NatsBus.connect({ servers: options.url, name: `tracelab-cli-${process.pid}` });
    } catch (err) {
      throw new TracelabError(
        'EHOSTUNREACH',
        `no NATS server at ${options.url} (${(err as Error).message}); agent ${options.agent} is not reachable`,
      );
    }
    try {
      const info = parseOrThrow(
        AgentInfoSchema,
        await request(bus, options, 'info', subjects.agentInfo(options.agent), {}),
        `info reply of agent ${options.agent}`,
      );
      // the agent ships bpf_trace_printk lines after each run, before its reply to the run
      const batches: PrintkBatch[] = [];
      const sub = await bus.subscribe(subjects.trace(options.agent, 'printk'), (msg) => {
        // the contracts' binary batch encoding (or JSON); one that does not decode is left out
        const b = decodeTraceBatch(msg.data);
        if (!(b instanceof TracelabError)) batches.push({ lost: b.lost, events: b.events });
      });
      await bus.flush();
      const target = new RemoteTarget(bus, options, sub, info);
      target.batches = batches;
      return target;
    } catch (err) {
      await bus.close();
      throw err;
    }
  }

  private async call<T>(
    what: string,
    subject: string,
    body: unknown,
    schema: z.ZodType<T>,
  ): Promise<T> {
    const reply = await request(this.bus, this.options, what, subject, body);
    return parseOrThrow(schema, reply, `${what} reply of agent ${this.options.agent}`);
  }

  private bpf<T>(op: BpfOp, body: unknown, schema: z.ZodType<T>): Promise<T> {
    return this.call(op, subjects.bpf(this.options.agent, op), body, schema);
  }

  async read(path: string): Promise<string> {
    const id = this.options.agent;
    return (
      await this.call('tracefs read', subjects.tracefsRead(id), { path }, TracefsReadReplySchema)
    ).data;
  }

  async write(path: string, data: string, append = false): Promise<void> {
    const id = this.options.agent;
    await this.call(
      'tracefs write',
      subjects.tracefsWrite(id),
      { path, data, append },
      TracefsWriteReplySchema,
    );
  }

  run(workload: string | WorkloadSpec, seed: number) {
    return this.call('run', subjects.run(this.options.agent), { workload, seed }, RunReplySchema);
  }

  private async load(req: ProgLoadRequest): Promise<LoadResult> {
    const r = await this.bpf('prog.load', req, ProgLoadResultSchema);
    // maps stay open: the agent has no endpoint that closes one
    if (r.verdict === 'accepted')
      for (const p of r.programs) this.opened.push({ fd: p.fd, op: 'prog.close' });
    return r;
  }

  loadObject(bytes: Uint8Array, programs: readonly string[]): Promise<LoadResult> {
    return this.load({
      format: 'object',
      object: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64'),
      programs: [...programs],
      logLevel: 1,
    });
  }

  loadAsm(req: AsmLoadRequest): Promise<LoadResult> {
    return this.load(req);
  }

  async mapCreate(req: MapCreateRequest): Promise<number> {
    return (await this.bpf('map.create', req, FdReplySchema)).fd;
  }

  async attach(req: LinkCreateRequest): Promise<number> {
    const { fd } = await this.bpf('link.create', req, LinkInfoSchema);
    this.opened.push({ fd, op: 'link.detach' });
    return fd;
  }

  async mapInfo(fd: number): Promise<MapInfo> {
    const { maps } = await this.bpf('map.list', {}, MapListReplySchema);
    const map = maps.find((m) => m.fd === fd);
    if (map === undefined)
      throw new TracelabError('EBADF', `fd ${fd} is not a map of agent ${this.options.agent}`);
    return map;
  }

  async mapEntries(fd: number): Promise<MapEntries> {
    const r = await this.bpf(
      'map.dump',
      { fd, encoding: 'hex', limit: DUMP_LIMIT },
      MapDumpReplySchema,
    );
    if (r.truncated)
      throw new TracelabError('E2BIG', `map fd ${fd} holds more than ${DUMP_LIMIT} elements`);
    return r.entries.map((e) => [hex(e.key), hex(e.value)] as const);
  }

  async printk(): Promise<PrintkBatch[]> {
    return this.batches.splice(0);
  }

  async close(): Promise<void> {
    try {
      for (const { fd, op } of this.opened.splice(0).reverse())
        await this.bpf(op, { fd }, FdReplySchema);
    } finally {
      this.printkSub.unsubscribe();
      await this.bus.close();
    }
  }
}

/**
 * One request to the agent. Its own errors (errno envelopes) come back as they are; the bus's
 * say which server and agent did not answer.
 */
async function request(
  bus: Bus,
  { url, agent, timeoutMs }: RemoteOptions,
  what: string,
  subject: string,
  body: unknown,
): Promise<unknown> {
  try {
    return (await bus.request(subject, encodeJson(body), { timeoutMs })).json();
  } catch (err) {
    if (!(err instanceof BusError)) throw err;
    if (err.remote) throw new TracelabError(isErrno(err.code) ? err.code : 'EIO', err.message);
    if (err.code === 'EHOSTUNREACH')
      throw new TracelabError(
        'EHOSTUNREACH',
        `agent ${agent} at ${url} does not answer ${what}: no agent with that id is running there`,
      );
    if (err.code === 'ETIMEDOUT')
      throw new TracelabError(
        'ETIMEDOUT',
        `agent ${agent} at ${url} did not answer ${what} within ${timeoutMs} ms`,
      );
    throw new TracelabError(
      isErrno(err.code) ? err.code : 'EIO',
      `${what} to agent ${agent} at ${url}: ${err.message}`,
    );
  }
}
