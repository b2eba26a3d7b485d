import type { ArchName } from '@tracelab/arch-isa';
import { TracelabError } from '@tracelab/contracts';
import { Fgraph } from '@tracelab/fgraph';
import { Fprobes } from '@tracelab/fprobe';
import { Ftrace } from '@tracelab/ftrace-core';
import {
  builtinWorkload,
  compileWorkload,
  Kernel,
  KernelError,
  kernelEnv,
  loadImage,
  parseWorkload,
  type CallNode,
  type Cpu,
  type Task,
  type WorkloadSpec,
} from '@tracelab/kernel';
import { Trampolines } from '@tracelab/trampoline';
import { installHelpers, MapTable } from '@tracelab/vm';
import { Bpf } from './bpf.js';
import { attempt } from './errors.js';
import { PrintkLog } from './printk-log.js';
import { Streams } from './streams.js';
import { Tracefs } from './tracefs.js';

export interface EngineOptions {
  readonly arch?: ArchName;
  readonly cpus?: number;
  /** Scheduler seed of workloads started without their own. */
  readonly seed?: number;
  /** A BTF blob (vmlinux) to build the kernel image from instead of the built-in image. */
  readonly btf?: Uint8Array;
  /** Run BPF programs with the vm's JIT. */
  readonly jit?: boolean;
}

/** What one workload run did. */
export interface WorkloadResult {
  readonly workload: string;
  readonly seed: number;
  /** Calls started by the workload's tasks (not counting nested calls). */
  readonly calls: number;
  readonly switches: number;
  /** The kernel fault that stopped the run, or null. */
  readonly fault: string | null;
  /** Present when stop() (or the engine's close) halted the run before its end. */
  readonly stopped?: true;
  /** The latest CPU clock when the run ended, in ns. */
  readonly elapsedNs: number;
}

/** A workload started with Engine.start: its result when it ends, and a way to halt it. */
export interface RunningWorkload {
  readonly workload: string;
  readonly seed: number;
  readonly done: Promise<WorkloadResult>;
  /** Halts the run between two calls; resolves as `done` does. */
  stop(): Promise<WorkloadResult>;
}

/** Scheduler cost of a context switch, as the kernel package's own runner charges it. */
const SWITCH_COST_NS = 1500;

/** One task's calls in a workload run, and how far it got. */
interface Runnable {
  task: Task;
  calls: readonly CallNode[];
  next: number;
  loopsLeft: number;
}

/**
 * A workload in progress: the engine's scheduler (the CPU with the earliest clock runs a seeded
 * pick of its tasks' next call), advanced a number of calls at a time.
 */
class WorkloadRun {
  calls = 0;
  switches = 0;
  fault: string | null = null;

  constructor(
    private readonly kernel: Kernel,
    readonly name: string,
    readonly seed: number,
    private readonly perCpu: Runnable[][],
  ) {}

  /** Runs up to `max` calls; false once the workload has ended (or faulted). */
  step(max: number): boolean {
    const kernel = this.kernel;
    const perCpu = this.perCpu;
    for (let n = 0; n < max; n++) {
      if (this.fault !== null) return false;
      let cpu: Cpu | null = null;
      for (const c of kernel.cpus) {
        if ((perCpu[c.id]?.length ?? 0) > 0 && (cpu === null || c.clock < cpu.clock)) cpu = c;
      }
      if (cpu === null) return false;
      const queue = perCpu[cpu.id] as Runnable[];
      const pick = queue[kernel.rand() % queue.length] as Runnable;
      if (cpu.current !== pick.task) {
        if (cpu.current !== null) {
          this.switches++;
          cpu.clock += SWITCH_COST_NS;
        }
        kernel.switchTo(cpu, pick.task);
      }
      this.calls++;
      const f = kernel.run(cpu, pick.calls[pick.next] as CallNode);
      if (f !== null) {
        this.fault = f.toString();
        return false;
      }
      pick.next++;
      if (pick.next === pick.calls.length) {
        pick.next = 0;
        pick.loopsLeft--;
        if (pick.loopsLeft === 0) queue.splice(queue.indexOf(pick), 1);
      }
    }
    return true;
  }
}

/**
 * One traced kernel: a simulated kernel on its own image, with ftrace, fgraph, fprobe and the BPF
 * trampolines attached once, a map table in the kernel's address space, the tracefs file API and
 * the bpf() API over them.
 */
export class Engine {
  declare readonly tracefs: Tracefs;
  declare readonly bpf: Bpf;
  /** Maps of every program and BPF_MAP_CREATE live here, in the kernel's memory. */
  declare readonly maps: MapTable;
  /** Where the map table starts in the kernel's address space. */
  declare readonly mapBase: bigint;
  /** The output streams: trace, trace_pipe, ringbuf, perf and printk. */
  declare readonly streams: Streams;
  private runs = 0;
  private closed = false;

  private constructor(
    readonly kernel: Kernel,
    readonly ftrace: Ftrace,
    readonly fgraph: Fgraph,
    readonly fprobes: Fprobes,
    readonly trampolines: Trampolines,
    readonly seed: number,
    maps: MapTable,
    /** bpf_trace_printk lines of the engine's programs. */
    readonly printk: PrintkLog,
    /** BPF programs run compiled to JavaScript (trampolines and kprobe_multi links alike). */
    readonly jit: boolean,
  ) {
    this.maps = maps;
    this.mapBase = mapBase(kernel.arch);
    this.tracefs = new Tracefs(this);
    this.bpf = new Bpf(this);
    this.streams = new Streams(this);
  }

  static create(options: EngineOptions = {}): Engine | TracelabError {
    const arch = options.arch ?? 'x86_64';
    // A fresh image per engine: kernels built on one image share its text bytes, so two engines
    // on one image would see each other's call-site patches.
    const image = loadImage(arch, options.btf);
    if (image instanceof KernelError) return image;
    const kernel = attempt(() => new Kernel({ image, cpus: options.cpus ?? 2 }));
    if (kernel instanceof TracelabError) return kernel;
    const ftrace = Ftrace.attach(kernel);
    if (ftrace instanceof TracelabError) return ftrace;
    const fgraph = Fgraph.attach(ftrace);
    if (fgraph instanceof TracelabError) return fgraph;
    const fprobes = Fprobes.attach(fgraph);
    const maps = new MapTable(kernel.mm, mapBase(arch), kernel.cpus.length);
    const printk = new PrintkLog(kernel);
    const trampolines = attempt(
      () =>
        new Trampolines(kernel, {
          ftrace,
          jit: options.jit === true,
          setupVm: (vm, cpu) => installHelpers(vm, maps, kernelEnv(kernel, cpu, printk.sink(cpu))),
        }),
    );
    if (trampolines instanceof TracelabError) return trampolines;
    const seed = options.seed ?? 1;
    return new Engine(
      kernel,
      ftrace,
      fgraph,
      fprobes,
      trampolines,
      seed,
      maps,
      printk,
      options.jit === true,
    );
  }

  get arch(): ArchName {
    return this.kernel.arch;
  }

  /** Grows after each workload run or slice of one (output streams wake up when it does). */
  get generation(): number {
    return this.runs;
  }

  /**
   * Runs a workload (a built-in name or a WorkloadSpec object) to completion with the scheduler
   * seeded deterministically. A task whose pid already exists from an earlier run runs again as
   * that task.
   */
  run(
    workload: string | WorkloadSpec,
    options: { seed?: number } = {},
  ): WorkloadResult | TracelabError {
    const r = this.begin(workload, options);
    if (r instanceof TracelabError) return r;
    r.step(Infinity);
    return this.finish(r);
  }

  /**
   * Starts a workload in the background: it runs `sliceCalls` calls at a time between turns of
   * the event loop, so output streams (and `onSlice`) see its output while it runs, until it ends
   * or `stop()` halts it between two calls. The same run as `run()` gives, call for call, when
   * it is not stopped. One workload runs at a time (EBUSY).
   */
  start(
    workload: string | WorkloadSpec,
    options: { seed?: number; sliceCalls?: number; onSlice?: () => void } = {},
  ): RunningWorkload | TracelabError {
    const slice = options.sliceCalls ?? 10_000;
    if (!Number.isInteger(slice) || slice < 1)
      return new TracelabError('EINVAL', `sliceCalls must be a positive integer, got ${slice}`);
    const r = this.begin(workload, options);
    if (r instanceof TracelabError) return r;
    let stop = false;
    const done = new Promise<WorkloadResult>((resolve) => {
      const turn = (): void => {
        const more = !stop && !this.closed && r.step(slice);
        if (more) {
          this.wake();
          options.onSlice?.();
          setImmediate(turn);
          return;
        }
        resolve(this.finish(r, stop || this.closed));
        options.onSlice?.();
      };
      setImmediate(turn);
    });
    return {
      workload: r.name,
      seed: r.seed,
      done,
      stop: () => {
        stop = true;
        return done;
      },
    };
  }

  /** The workload running now (started or in run()), or null. */
  get running(): string | null {
    return this.current?.name ?? null;
  }

  private current: WorkloadRun | null = null;

  private begin(
    workload: string | WorkloadSpec,
    options: { seed?: number },
  ): WorkloadRun | TracelabError {
    if (this.closed) return new TracelabError('ESHUTDOWN', 'the engine is closed');
    if (this.current !== null)
      return new TracelabError('EBUSY', `workload '${this.current.name}' is running`);
    const spec =
      typeof workload === 'string' ? builtinWorkload(workload, this.arch) : parseWorkload(workload);
    if (spec instanceof KernelError) return spec;
    const compiled = compileWorkload(this.kernel.image, spec);
    if (compiled instanceof KernelError) return compiled;
    const seed = options.seed ?? spec.seed ?? this.seed;
    const kernel = this.kernel;
    kernel.seed(seed);
    kernel.irqs.length = 0;
    kernel.irqs.push(...compiled.irqs);
    const perCpu: Runnable[][] = kernel.cpus.map(() => []);
    for (const t of compiled.tasks) {
      const task = this.task(t.spec.comm, t.spec.pid, t.spec.tgid, t.spec.cpu);
      if (task instanceof TracelabError) return task;
      perCpu[task.cpu]?.push({ task, calls: t.calls, next: 0, loopsLeft: t.spec.loops ?? 1 });
    }
    this.current = new WorkloadRun(kernel, spec.name, seed, perCpu);
    return this.current;
  }

  private finish(r: WorkloadRun, stopped = false): WorkloadResult {
    this.current = null;
    this.wake();
    const kernel = this.kernel;
    return {
      workload: r.name,
      seed: r.seed,
      calls: r.calls,
      switches: r.switches,
      fault: r.fault,
      ...(stopped ? { stopped: true } : {}),
      elapsedNs: Math.max(...kernel.cpus.map((c) => c.clock)),
    };
  }

  /** Output streams read again when this grows. */
  private wake(): void {
    this.runs++;
    this.streams.wake();
  }

  /**
   * Closes the engine: stream readers get what their streams still hold, then end; workloads
   * and streams refuse to start (ESHUTDOWN).
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.streams.shutdown();
  }

  /** The kernel's clock for log timestamps: the latest CPU clock, in ns. */
  get now(): number {
    return Math.max(...this.kernel.cpus.map((c) => c.clock));
  }

  private task(
    comm: string,
    pid: number | undefined,
    tgid: number | undefined,
    cpu: number | undefined,
  ): Task | TracelabError {
    const old = pid === undefined ? undefined : this.kernel.tasks.find((t) => t.pid === pid);
    if (old !== undefined) {
      if (old.comm !== comm) {
        return new TracelabError('EEXIST', `pid ${pid} exists as '${old.comm}', not '${comm}'`);
      }
      return old;
    }
    const opts: { pid?: number; tgid?: number; cpu?: number } = {};
    if (pid !== undefined) opts.pid = pid;
    if (tgid !== undefined) opts.tgid = tgid;
    if (cpu !== undefined) opts.cpu = cpu;
    const task = this.kernel.createTask(comm, opts);
    return task;
  }
}

/** Where BPF maps are placed: above the kernel's own objects in each arch's kernel heap. */
function mapBase(arch: ArchName): bigint {
  switch (arch) {
    case 'i386':
      return 0xe0000000n;
    case 'arm64':
      return 0xffff000100000000n;
    case 'riscv64':
      return 0xffffffd900000000n;
    default:
      return 0xffff888100000000n;
  }
}
