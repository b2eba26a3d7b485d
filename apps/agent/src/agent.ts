import { hostname } from 'node:os';
import {
  AgentInfoSchema,
  encodeTraceBatch,
  FdRequestSchema,
  FunctionsRequestSchema,
  LinkCreateRequestSchema,
  MapCreateRequestSchema,
  MapDumpRequestSchema,
  MapKeyRequestSchema,
  MapUpdateRequestSchema,
  parseOrThrow,
  ProgLoadRequestSchema,
  RunRequestSchema,
  subjects,
  TRACE_STREAM,
  TracefsDirRequestSchema,
  TracefsListRequestSchema,
  TracefsReadRequestSchema,
  TracefsWriteRequestSchema,
  TracelabError,
  WorkloadStartRequestSchema,
  type AgentHealth,
  type AgentInfo,
  type Arch,
  type BpfOp,
  type RunRequest,
  type StreamKind,
  type TraceEventBatch,
} from '@tracelab/contracts';
import { encodeJson, type Bus, type BusMsg, type Subscription } from '@tracelab/bus';
import { Engine, type RunningWorkload } from '@tracelab/engine';
import { z } from 'zod';
import { AgentBpf } from './bpf.js';

/** What Engine.run takes; a document is checked by the kernel's workload schema there. */
type Workload = Parameters<Engine['run']>[0];

const workloadOf = (req: RunRequest): Workload =>
  typeof req.workload === 'string' ? req.workload : (req.workload as Workload);
const seedOf = (req: RunRequest): { seed?: number } =>
  req.seed !== undefined ? { seed: req.seed } : {};

export interface MachineOptions {
  arch: Arch;
  cpus: number;
  /** Scheduler seed of workloads run without their own. */
  seed?: number;
}

export interface AgentOptions {
  bus: Bus;
  id: string;
  version: string;
  transport: 'local' | 'nats';
  machine?: MachineOptions;
}

/** Layers return errors as values; over the bus they travel as the thrown error's code. */
function ok<T>(value: T): Exclude<T, TracelabError> {
  if (value instanceof TracelabError) throw value;
  return value as Exclude<T, TracelabError>;
}

function body(msg: BusMsg): unknown {
  try {
    return msg.data.length === 0 ? {} : msg.json();
  } catch {
    throw new TracelabError('EINVAL', 'request body is not JSON');
  }
}

/**
 * The streams an agent ships after every run. trace_pipe is left out: it consumes, and a person
 * reading the trace_pipe file through the gateway must still see its entries.
 */
const PUBLISHED: readonly StreamKind[] = ['trace', 'ringbuf', 'perf', 'printk'];

/**
 * One agent: hosts a traced kernel (an engine) and answers for it on the bus: its identity and
 * health, tracefs reads and writes, workload runs. It announces itself so gateways find it.
 */
export class Agent {
  readonly info: AgentInfo;
  readonly engine: Engine;
  /** The bpf() operations the agent serves, and the fds it opened. */
  readonly bpf: AgentBpf;
  private readonly started = Date.now();
  private readonly subscriptions: Subscription[] = [];
  private published = 0;
  /** The workload started in the background, until it ends or is stopped. */
  private running: RunningWorkload | null = null;
  private lost = 0;

  constructor(private readonly options: AgentOptions) {
    const machine = options.machine ?? { arch: 'x86_64', cpus: 2 };
    this.info = AgentInfoSchema.parse({
      id: options.id,
      version: options.version,
      hostname: hostname(),
      pid: process.pid,
      startedAt: new Date(this.started).toISOString(),
      transport: options.transport,
      machine: { arch: machine.arch, cpus: machine.cpus },
    });
    this.engine = ok(
      Engine.create({
        arch: machine.arch,
        cpus: machine.cpus,
        ...(machine.seed !== undefined ? { seed: machine.seed } : {}),
      }),
    );
    this.bpf = new AgentBpf(this.engine);
  }

  async start(): Promise<void> {
    const { bus } = this.options;
    // on NATS a JetStream stream keeps the trace output for consumers that restart
    await bus.ensureStream({ name: TRACE_STREAM, subjects: [subjects.traceAll] });
    const id = this.info.id;
    const tracefs = this.engine.tracefs;
    this.subscriptions.push(
      await bus.serve(subjects.agentInfo(id), () => encodeJson(this.info)),
      await bus.serve(subjects.agentHealth(id), () => encodeJson(this.health())),
      await bus.serve(subjects.tracefsRead(id), (msg) => {
        const req = parseOrThrow(TracefsReadRequestSchema, body(msg), 'tracefs read');
        return encodeJson({ data: ok(tracefs.read(req.path)) });
      }),
      await bus.serve(subjects.tracefsWrite(id), (msg) => {
        const req = parseOrThrow(TracefsWriteRequestSchema, body(msg), 'tracefs write');
        return encodeJson({
          written: ok(tracefs.write(req.path, req.data, { append: req.append })),
        });
      }),
      await bus.serve(subjects.tracefsList(id), (msg) => {
        const req = parseOrThrow(TracefsListRequestSchema, body(msg), 'tracefs list');
        return encodeJson({ entries: ok(tracefs.list(req.dir)) });
      }),
      await bus.serve(subjects.tracefsMkdir(id), (msg) => {
        const req = parseOrThrow(TracefsDirRequestSchema, body(msg), 'tracefs mkdir');
        ok(tracefs.mkdir(req.path));
        return encodeJson({ path: req.path });
      }),
      await bus.serve(subjects.tracefsRmdir(id), (msg) => {
        const req = parseOrThrow(TracefsDirRequestSchema, body(msg), 'tracefs rmdir');
        ok(tracefs.rmdir(req.path));
        return encodeJson({ path: req.path });
      }),
      await bus.serve(subjects.run(id), (msg) => {
        const req = parseOrThrow(RunRequestSchema, body(msg), 'run');
        const result = ok(this.engine.run(workloadOf(req), seedOf(req)));
        this.publishStreams();
        return encodeJson(result);
      }),
      await bus.serve(subjects.workloadStart(id), (msg) => {
        const req = parseOrThrow(WorkloadStartRequestSchema, body(msg), 'workload start');
        const running = ok(
          this.engine.start(workloadOf(req), {
            ...seedOf(req),
            ...(req.sliceCalls !== undefined ? { sliceCalls: req.sliceCalls } : {}),
            // each slice's output leaves as it is made: a live page follows the run
            onSlice: () => this.publishStreams(),
          }),
        );
        this.running = running;
        void running.done.then(() => {
          if (this.running === running) this.running = null;
        });
        return encodeJson({ workload: running.workload, seed: running.seed });
      }),
      await bus.serve(subjects.workloadStop(id), async (msg) => {
        parseOrThrow(z.object({}).strict(), body(msg), 'workload stop');
        const running = this.running;
        if (running === null) throw new TracelabError('ENOENT', 'no workload is running');
        return encodeJson(await running.stop());
      }),
      await this.endpoint(subjects.functions(id), FunctionsRequestSchema, 'functions', (r) =>
        this.bpf.functions(r),
      ),
      ...(await this.bpfEndpoints()),
      await bus.subscribe(subjects.agentPing, () => this.announce()),
    );
    this.announce();
    await bus.flush();
  }

  /** Serves one request schema: the body is checked (EINVAL naming the field), the reply JSON. */
  private endpoint<T>(
    subject: string,
    schema: z.ZodType<T>,
    what: string,
    handle: (req: T) => unknown,
  ): Promise<Subscription> {
    return this.options.bus.serve(subject, (msg) =>
      encodeJson(handle(parseOrThrow(schema, body(msg), what))),
    );
  }

  private bpfEndpoints(): Promise<Subscription[]> {
    const id = this.info.id;
    const bpf = this.bpf;
    const none = z.object({}).strict();
    const serve = <T>(op: BpfOp, schema: z.ZodType<T>, handle: (req: T) => unknown) =>
      this.endpoint(subjects.bpf(id, op), schema, op, handle);
    return Promise.all([
      serve('prog.load', ProgLoadRequestSchema, (r) => bpf.load(r)),
      serve('prog.verify', ProgLoadRequestSchema, (r) => bpf.verify(r)),
      serve('prog.list', none, () => ({ programs: bpf.programs() })),
      serve('prog.close', FdRequestSchema, (r) => {
        bpf.close(r.fd, 'prog');
        return { fd: r.fd };
      }),
      serve('map.create', MapCreateRequestSchema, (r) => ({ fd: bpf.mapCreate(r) })),
      serve('map.list', none, () => ({ maps: bpf.mapList() })),
      serve('map.dump', MapDumpRequestSchema, (r) => bpf.mapDump(r)),
      serve('map.lookup', MapKeyRequestSchema, (r) => ({ value: bpf.mapLookup(r) })),
      serve('map.update', MapUpdateRequestSchema, (r) => {
        bpf.mapUpdate(r);
        return { fd: r.fd };
      }),
      serve('map.delete', MapKeyRequestSchema, (r) => {
        bpf.mapDelete(r);
        return { fd: r.fd };
      }),
      serve('map.close', FdRequestSchema, (r) => {
        bpf.close(r.fd, 'map');
        return { fd: r.fd };
      }),
      serve('link.create', LinkCreateRequestSchema, (r) => bpf.linkCreate(r)),
      serve('link.list', none, () => ({ links: bpf.linkList() })),
      serve('link.detach', FdRequestSchema, (r) => {
        bpf.close(r.fd, 'link');
        return { fd: r.fd };
      }),
    ]);
  }

  health(): AgentHealth {
    return {
      id: this.info.id,
      status: 'ok',
      uptimeMs: Date.now() - this.started,
      published: this.published,
      lost: this.lost,
    };
  }

  /**
   * Ships what each output stream produced since the last call, in batches with sequence numbers,
   * in the contracts' binary encoding.
   */
  publishStreams(): void {
    for (const stream of PUBLISHED) {
      for (const b of ok(this.engine.streams.drain(stream))) {
        const batch: TraceEventBatch = {
          agentId: this.info.id,
          stream,
          firstSeq: b.firstSeq,
          events: b.events,
          lost: b.lost,
        };
        const bytes = encodeTraceBatch(batch);
        // the one batch the binary encoding refuses (an unpaired surrogate) still goes, as JSON
        this.options.bus.publish(
          subjects.trace(this.info.id, stream),
          bytes instanceof TracelabError ? encodeJson(batch) : bytes,
        );
        this.published += b.events.length;
        this.lost += b.lost;
      }
    }
  }

  async stop(): Promise<void> {
    for (const s of this.subscriptions.splice(0)) s.unsubscribe();
    // a background workload ends with the agent; what it made so far is still published
    await this.running?.stop();
    await this.options.bus.flush();
  }

  private announce(): void {
    this.options.bus.publish(subjects.agentAnnounce, encodeJson(this.info));
  }
}
