import { archInfo, type ArchName } from '@tracelab/arch-isa';
import type { KernelEnv } from '@tracelab/vm';
import { KernelError } from './errors.js';
import { KernelImage } from './image.js';
import { Kernel, type Cpu, type CallNode } from './machine.js';
import type { Task } from './task.js';
import {
  builtinWorkload,
  compileWorkload,
  parseWorkload,
  type CompiledWorkload,
  type WorkloadSpec,
} from './workload.js';

/** Simulated cost of a context switch, charged to the CPU that switches. */
const SWITCH_COST_NS = 1500;

export interface RunOptions {
  readonly arch?: ArchName;
  readonly cpus?: number;
  readonly seed?: number;
  /** A BTF blob to build the image from instead of the built-in image. */
  readonly btf?: Uint8Array;
}

export interface RunSummary {
  readonly workload: string;
  readonly arch: ArchName;
  readonly cpus: number;
  readonly seed: number;
  readonly calls: number;
  readonly switches: number;
  /** The latest CPU clock when the workload ended, in ns. */
  readonly elapsedNs: number;
  readonly cpuClocksNs: readonly number[];
  readonly tasks: readonly { pid: number; comm: string; cpu: number; calls: number }[];
  /** Most-called functions, most first. */
  readonly topFunctions: readonly { name: string; calls: number }[];
  readonly fault: string | null;
}

/**
 * Runs a compiled workload to the end on a kernel: the seeded scheduler picks, at each call
 * boundary of a task's outer calls, the CPU furthest behind in time and one of its runnable tasks.
 */
export function runCompiled(
  kernel: Kernel,
  w: CompiledWorkload,
  seed: number,
): { switches: number; fault: string | null } | KernelError {
  kernel.seed(seed);
  kernel.irqs.length = 0;
  kernel.irqs.push(...w.irqs);
  interface Runnable {
    task: Task;
    calls: readonly CallNode[];
    next: number;
    loopsLeft: number;
  }
  const perCpu: Runnable[][] = kernel.cpus.map(() => []);
  for (const t of w.tasks) {
    const task = kernel.createTask(t.spec.comm, {
      pid: t.spec.pid,
      tgid: t.spec.tgid,
      cpu: t.spec.cpu,
    });
    if (task instanceof KernelError) return task;
    perCpu[task.cpu]?.push({ task, calls: t.calls, next: 0, loopsLeft: t.spec.loops ?? 1 });
  }
  let switches = 0;
  for (;;) {
    let cpu: Cpu | null = null;
    for (const c of kernel.cpus) {
      if ((perCpu[c.id]?.length ?? 0) > 0 && (cpu === null || c.clock < cpu.clock)) cpu = c;
    }
    if (cpu === null) break;
    const queue = perCpu[cpu.id] as Runnable[];
    const pick = queue[kernel.rand() % queue.length] as Runnable;
    if (cpu.current !== pick.task) {
      if (cpu.current !== null) {
        switches++;
        cpu.clock += SWITCH_COST_NS;
      }
      kernel.switchTo(cpu, pick.task);
    }
    const fault = kernel.run(cpu, pick.calls[pick.next] as CallNode);
    if (fault !== null) return { switches, fault: fault.toString() };
    pick.next++;
    if (pick.next === pick.calls.length) {
      pick.next = 0;
      pick.loopsLeft--;
      if (pick.loopsLeft === 0) queue.splice(queue.indexOf(pick), 1);
    }
  }
  return { switches, fault: null };
}

/** Builds the kernel image for an arch: the built-in one, or every function of a BTF blob. */
export function loadImage(arch: ArchName, btf?: Uint8Array): KernelImage | KernelError {
  return btf === undefined ? KernelImage.builtin(arch) : KernelImage.fromBtf(arch, btf);
}

/**
 * `tracelab kernel run`: runs a built-in workload by name, or a workload object (parsed JSON or
 * YAML), and summarises what ran.
 */
export function runWorkload(
  workload: string | unknown,
  opts: RunOptions = {},
): RunSummary | KernelError {
  const arch = opts.arch ?? 'x86_64';
  const spec: WorkloadSpec | KernelError =
    typeof workload === 'string' ? builtinWorkload(workload, arch) : parseWorkload(workload);
  if (spec instanceof KernelError) return spec;
  const image = loadImage(arch, opts.btf);
  if (image instanceof KernelError) return image;
  const compiled = compileWorkload(image, spec);
  if (compiled instanceof KernelError) return compiled;
  const ncpu = opts.cpus ?? spec.cpus ?? 2;
  let kernel: Kernel;
  try {
    kernel = new Kernel({ image, cpus: ncpu });
  } catch (e) {
    return e instanceof KernelError ? e : new KernelError('EINVAL', (e as Error).message);
  }
  const counts = new Uint32Array(image.count);
  kernel.observer = { onCall: (_cpu, fn) => void (counts[fn] = (counts[fn] as number) + 1) };
  const seed = opts.seed ?? spec.seed ?? 1;
  const r = runCompiled(kernel, compiled, seed);
  if (r instanceof KernelError) return r;
  const top = [...counts.entries()]
    .filter(([, c]) => c > 0)
    .sort((a, b) => b[1] - a[1] || a[0] - b[0])
    .slice(0, 10)
    .map(([i, c]) => ({ name: image.functions[i]?.name ?? '?', calls: c }));
  return {
    workload: spec.name,
    arch,
    cpus: ncpu,
    seed,
    calls: kernel.cpus.reduce((s, c) => s + c.calls, 0),
    switches: r.switches,
    elapsedNs: Math.max(...kernel.cpus.map((c) => c.clock)),
    cpuClocksNs: kernel.cpus.map((c) => c.clock),
    tasks: kernel.tasks.map((t) => ({ pid: t.pid, comm: t.comm, cpu: t.cpu, calls: t.calls })),
    topFunctions: top,
    fault: r.fault,
  };
}

/** `tracelab kernel info`: the image and machine facts for an arch. */
export function kernelInfo(
  arch: ArchName = 'x86_64',
  btf?: Uint8Array,
): Record<string, unknown> | KernelError {
  const image = loadImage(arch, btf);
  if (image instanceof KernelError) return image;
  const info = archInfo(arch);
  const modules = new Set(image.functions.flatMap((f) => (f.module === null ? [] : [f.module])));
  return {
    arch,
    wordSize: info.wordSize,
    textBase: `0x${image.textBase.toString(16)}`,
    functions: image.count,
    traceable: image.functions.filter((f) => f.traceable).length,
    notrace: image.functions.filter((f) => !f.traceable).length,
    modules: [...modules].sort(),
    btfBytes: image.btfBytes?.length ?? 0,
    capabilities: info.capabilities,
    ptRegsSize: info.ptRegs.size,
    ftraceRegsSize: info.ftraceRegs.size,
  };
}

/** `tracelab kernel symbols [GLOB]`: kallsyms lines `addr t name [module]`, address order. */
export function formatSymbols(
  glob = '*',
  arch: ArchName = 'x86_64',
  btf?: Uint8Array,
): string[] | KernelError {
  const image = loadImage(arch, btf);
  if (image instanceof KernelError) return image;
  const width = archInfo(arch).wordSize * 2;
  return image.glob(glob).map((i) => {
    const f = image.functions[i] as (typeof image.functions)[number];
    const mod = f.module === null ? '' : `\t[${f.module}]`;
    return `${f.addr.toString(16).padStart(width, '0')} ${f.module === null ? 'T' : 't'} ${f.name}${mod}`;
  });
}

/**
 * The kernel side of BPF helpers for programs running on one CPU: vm's KernelEnv (current task,
 * pid/tgid, comm, time, CPU, stack traces, trace_printk, prandom). Kernel memory reads go through
 * `kernel.mm`, the address space the vm is given.
 */
export function kernelEnv(
  kernel: Kernel,
  cpu: number,
  tracePrintk: (line: string) => void = (line) => void kernel.printkLines.push(line),
): KernelEnv {
  const c = kernel.cpus[cpu];
  if (c === undefined) throw new KernelError('EINVAL', `kernelEnv: no cpu ${cpu}`);
  const encoder = new TextEncoder();
  // The last task's encoded comm: bpf_get_current_comm runs per traced call and must not
  // allocate (comm is fixed for a task's life here).
  let commOf: Task | null | undefined;
  let comm = new Uint8Array(0);
  return {
    ktimeGetNs: (out) => {
      const ns = Math.floor(c.clock);
      out[0] = ns | 0;
      out[1] = Math.floor(ns / 0x100000000) | 0;
    },
    smpProcessorId: () => cpu,
    currentPidTgid: (out) => {
      const t = c.current;
      out[0] = t === null ? 0 : t.pid;
      out[1] = t === null ? 0 : t.tgid;
    },
    currentComm: () => {
      if (c.current !== commOf) {
        commOf = c.current;
        comm = encoder.encode((commOf?.comm ?? 'swapper').slice(0, 15));
      }
      return comm;
    },
    currentTask: (out) => {
      const t = c.current;
      out[0] = t === null ? 0 : t.taskStructLo;
      out[1] = t === null ? 0 : t.taskStructHi;
    },
    // The simulated machine runs no user code, so user stacks are empty.
    stack: (user) => (user ? [] : kernel.stackTrace(c)),
    tracePrintk,
    prandomU32: () => kernel.rand(),
  };
}
