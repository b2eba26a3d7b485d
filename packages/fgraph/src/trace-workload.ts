import type { ArchName } from '@tracelab/arch-isa';
import { TracelabError } from '@tracelab/contracts';
import { Ftrace } from '@tracelab/ftrace-core';
import {
  builtinWorkload,
  compileWorkload,
  Kernel,
  KernelError,
  loadImage,
  parseWorkload,
  runCompiled,
  type WorkloadSpec,
} from '@tracelab/kernel';
import { Fgraph } from './fgraph.js';
import { FunctionGraphTracer, type GraphOptions } from './graph-tracer.js';

/** What `tracelab trace --tracer function_graph` asks for. */
export interface FunctionGraphRun {
  readonly arch?: ArchName;
  readonly cpus?: number;
  readonly seed?: number;
  /** set_ftrace_filter of the instance (which functions are hooked at all). */
  readonly filter?: string;
  readonly notrace?: string;
  /** set_graph_function / set_graph_notrace globs. */
  readonly graphFunction?: string;
  readonly graphNotrace?: string;
  readonly maxDepth?: number;
  readonly options?: Partial<GraphOptions>;
  readonly bufferEvents?: number;
}

/**
 * Runs a built-in workload (by name) or a workload object under the function_graph tracer and
 * returns the `trace` file, for the CLI's `trace --tracer function_graph --graph-function GLOB`.
 */
export function traceFunctionGraph(
  workload: string | unknown,
  run: FunctionGraphRun = {},
): string | TracelabError {
  const arch = run.arch ?? 'x86_64';
  const spec: WorkloadSpec | KernelError =
    typeof workload === 'string' ? builtinWorkload(workload, arch) : parseWorkload(workload);
  if (spec instanceof KernelError) return spec;
  const image = loadImage(arch);
  if (image instanceof KernelError) return image;
  const compiled = compileWorkload(image, spec);
  if (compiled instanceof KernelError) return compiled;
  let kernel: Kernel;
  try {
    kernel = new Kernel({ image, cpus: run.cpus ?? spec.cpus ?? 2 });
  } catch (e) {
    return e instanceof KernelError ? e : new TracelabError('EINVAL', String(e));
  }
  const ft = Ftrace.attach(kernel);
  if (ft instanceof Error) return ft;
  const fg = Fgraph.attach(ft);
  if (fg instanceof Error) return fg;
  const tr = new FunctionGraphTracer(fg, {
    options: run.options ?? {},
    ...(run.bufferEvents === undefined ? {} : { bufferEvents: run.bufferEvents }),
  });
  tr.maxDepth = run.maxDepth ?? 0;
  const steps: (() => TracelabError | null)[] = [
    () => (run.filter === undefined ? null : tr.setFilter(run.filter)),
    () => (run.notrace === undefined ? null : tr.setFilter(run.notrace, { notrace: true })),
    () => (run.graphFunction === undefined ? null : tr.setGraphFunction(run.graphFunction)),
    () => (run.graphNotrace === undefined ? null : tr.setGraphNotrace(run.graphNotrace)),
    () => tr.start(),
  ];
  for (const step of steps) {
    const err = step();
    if (err !== null) return err;
  }
  const r = runCompiled(kernel, compiled, run.seed ?? spec.seed ?? 1);
  if (r instanceof KernelError) return r;
  if (r.fault !== null) return new TracelabError('EFAULT', r.fault);
  return tr.output();
}
