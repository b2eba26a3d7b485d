import type { ArchName } from '@tracelab/arch-isa';
import { Fgraph } from '@tracelab/fgraph';
import { Ftrace } from '@tracelab/ftrace-core';
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
import { entryType, TraceEventRing } from '../src/event-ring.js';
import { Fprobes } from '../src/fprobe.js';
import { FprobeTraceEvent } from '../src/trace-event.js';

export interface Machine {
  kernel: Kernel;
  ft: Ftrace;
  fg: Fgraph;
  fp: Fprobes;
  image: KernelImage;
  cpu: Cpu;
  task: Task;
}

export function ok<T>(v: T): Exclude<T, Error> {
  if (v instanceof Error) throw v;
  return v as Exclude<T, Error>;
}

/** A kernel on the built-in image with ftrace, fgraph and fprobe attached, one task on CPU 0. */
export function machine(arch: ArchName = 'x86_64', cpus = 1): Machine {
  const image = ok(KernelImage.builtin(arch));
  const kernel = new Kernel({ image, cpus });
  const ft = ok(Ftrace.attach(kernel));
  const fg = ok(Fgraph.attach(ft));
  const fp = Fprobes.attach(fg);
  const task = ok(kernel.createTask('bash', { pid: 1977, cpu: 0 }));
  const cpu = kernel.cpus[0] as Cpu;
  kernel.switchTo(cpu, task);
  return { kernel, ft, fg, fp, image, cpu, task };
}

export function node(image: KernelImage, spec: CallSpec): CallNode {
  const w = compileWorkload(image, { name: 't', tasks: [{ comm: 't', calls: [spec] }] });
  if (w instanceof KernelError) throw w;
  return w.tasks[0]?.calls[0] as CallNode;
}

/** Runs a call on the machine's CPU and fails the test on a fault. */
export function run(m: Machine, spec: CallSpec): void {
  const fault = m.kernel.run(m.cpu, node(m.image, spec));
  if (fault !== null) throw new Error(fault.toString());
}

export const fnName = (m: Machine, fn: number): string => m.image.functions[fn]?.name ?? '?';

/** ksys_read -> vfs_read -> {rw_verify_area -> security_file_permission, fsnotify_access}. */
export const READ: CallSpec = {
  fn: 'ksys_read',
  cost: 100,
  ret: 4,
  args: [3, 0x1000, 4096],
  calls: [
    {
      fn: 'vfs_read',
      cost: 200,
      ret: 4,
      calls: [
        {
          fn: 'rw_verify_area',
          cost: 50,
          ret: 0,
          calls: [{ fn: 'security_file_permission', cost: 30, ret: 0 }],
        },
        { fn: 'fsnotify_access', cost: 20 },
      ],
    },
  ],
};

export const ARCHES: readonly ArchName[] = ['x86_64', 'arm64', 'i386', 'riscv64'];

/** A trace ring with events enabled in it, and the lines its entries print as. */
export class EventSink {
  readonly ring: TraceEventRing;
  readonly events: FprobeTraceEvent[] = [];

  constructor(readonly m: Machine) {
    this.ring = new TraceEventRing(m.kernel.cpus.length, 1 << 16);
  }

  /** Creates an event (ids from 1000) and enables it in the ring. */
  add(def: string): FprobeTraceEvent {
    const ev = ok(FprobeTraceEvent.create(this.m.fp, def, 1000 + this.events.length));
    const err = ev.enableIn(this.ring);
    if (err !== null) throw err;
    this.events.push(ev);
    return ev;
  }

  /** Every entry as a trace line, oldest first, with its CPU. */
  entries(): { line: string; cpu: number }[] {
    const out: { line: string; cpu: number }[] = [];
    this.ring.read((cpu, ts, bytes, at) => {
      const id = entryType(bytes, at);
      const ev = this.events.find((e) => e.id === id);
      if (ev === undefined) throw new Error(`entry of unknown type ${id}`);
      out.push({ line: ev.printLine(cpu, ts, bytes, at), cpu });
    }, false);
    return out;
  }

  get lines(): string[] {
    return this.entries().map((e) => e.line);
  }
}
