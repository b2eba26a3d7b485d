import type {
  ErrnoCode,
  LinkCreateRequest,
  MapCreateRequest,
  MapInfo,
  ProgLoadRequest,
  RunReply,
  TraceEvent,
} from '@tracelab/contracts';
import type { WorkloadSpec } from '@tracelab/kernel';

/** A program the kernel took: what the commands print about it. */
export interface TargetProg {
  readonly fd: number;
  readonly name: string;
  readonly progType: string;
  /** The object section it came from, '' for assembly. */
  readonly section: string;
  readonly attachTarget: string;
  /** The verifier's log. */
  readonly log: string;
}

/** BPF_PROG_LOAD's outcome, shaped as the agent's reply so both targets answer alike. */
export type LoadResult =
  | {
      readonly verdict: 'accepted';
      readonly programs: readonly TargetProg[];
      /** The object's maps by name, with their fds (none for assembly). */
      readonly maps: Readonly<Record<string, number>>;
    }
  | {
      readonly verdict: 'rejected';
      readonly code: ErrnoCode;
      readonly message: string;
      readonly log: string;
    };

export type AsmLoadRequest = Extract<ProgLoadRequest, { format: 'asm' }>;

/** bpf_trace_printk lines of one batch, and how many the ring dropped before them. */
export interface PrintkBatch {
  readonly lost: number;
  readonly events: readonly TraceEvent[];
}

export type MapEntries = readonly (readonly [key: Uint8Array, value: Uint8Array])[];

/**
 * The traced kernel a command works on: a fresh in-process engine, or a running agent's over
 * NATS. Commands speak only this, so each has one code path for both; every failure is a
 * TracelabError with the errno the kernel (or the agent forwarding it) gave.
 */
export interface Target {
  read(path: string): Promise<string>;
  write(path: string, data: string, append?: boolean): Promise<void>;
  run(workload: string | WorkloadSpec, seed: number): Promise<RunReply>;
  /** A clang object's programs named (all others stay unloaded) and its maps. */
  loadObject(bytes: Uint8Array, programs: readonly string[]): Promise<LoadResult>;
  loadAsm(req: AsmLoadRequest): Promise<LoadResult>;
  mapCreate(req: MapCreateRequest): Promise<number>;
  /** BPF_LINK_CREATE, or attach as the program's section says; the link's fd. */
  attach(req: LinkCreateRequest): Promise<number>;
  mapInfo(fd: number): Promise<MapInfo>;
  /** Every element, in get_next_key order; a map that cannot be walked (ringbuf) throws why. */
  mapEntries(fd: number): Promise<MapEntries>;
  /** bpf_trace_printk output since the last call. */
  printk(): Promise<PrintkBatch[]>;
  /** Gives back what the command opened; the target is unusable afterwards. */
  close(): Promise<void>;
}
