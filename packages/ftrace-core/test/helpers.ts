import type { ArchName } from '@tracelab/arch-isa';
import {
  compileWorkload,
  Kernel,
  KernelError,
  KernelImage,
  type CallNode,
  type CallSpec,
  type Cpu,
  type Task,
} from '@tracelab/kernel';
import { Ftrace } from '../src/ftrace.js';

export interface Machine {
  kernel: Kernel;
  ft: Ftrace;
  image: KernelImage;
  cpu: Cpu;
  task: Task;
}

function ok<T>(v: T): Exclude<T, Error> {
  if (v instanceof Error) throw v;
  return v as Exclude<T, Error>;
}

/** A kernel on the built-in image with ftrace attached and one task on CPU 0. */
export function machine(arch: ArchName = 'x86_64', cpus = 1, comm = 'bash', pid = 1977): Machine {
  const image = ok(KernelImage.builtin(arch));
  const kernel = new Kernel({ image, cpus });
  const ft = ok(Ftrace.attach(kernel));
  const task = ok(kernel.createTask(comm, { pid, cpu: 0 }));
  const cpu = kernel.cpus[0] as Cpu;
  kernel.switchTo(cpu, task);
  return { kernel, ft, image, cpu, task };
}

/** Compiles one call tree against the image. */
export function node(image: KernelImage, spec: CallSpec): CallNode {
  const w = compileWorkload(image, { name: 't', tasks: [{ comm: 't', calls: [spec] }] });
  if (w instanceof KernelError) throw w;
  return w.tasks[0]?.calls[0] as CallNode;
}

export function fnIndex(image: KernelImage, name: string): number {
  const i = image.indexOf(name);
  if (i < 0) throw new Error(`no ${name}`);
  return i;
}

/** Runs a call on the machine's CPU and fails the test on a fault. */
export function run(m: Machine, spec: CallSpec): void {
  const fault = m.kernel.run(m.cpu, node(m.image, spec));
  if (fault !== null) throw new Error(fault.toString());
}
