import { ARCHES, type ArchName } from '@tracelab/arch-isa';
import { Ftrace, FunctionTracer } from '@tracelab/ftrace-core';
import {
  builtinWorkload,
  compileWorkload,
  Kernel,
  KernelImage,
  runCompiled,
} from '@tracelab/kernel';
import type { Command } from 'commander';
import { readInput } from '../input.js';
import { arch, positiveInt, seed, unwrap, WORKLOAD_HELP, workloadSpec } from '../workload.js';

interface TraceOpts {
  tracer: string;
  workload: string;
  replay?: boolean;
  filter?: string;
  notrace?: string;
  arch: ArchName;
  cpus: number;
  seed: number;
  btf?: string;
  bufferSizeKb: number;
  enabled?: boolean;
}

const TRACERS = ['function', 'nop'] as const;

/** `tracelab trace`: run a workload on a kernel traced by one of ftrace's tracers and print `trace`. */
export function registerTrace(program: Command): void {
  program
    .command('trace')
    .description('run a workload under an ftrace tracer and print the trace file')
    .requiredOption('--workload <workload>', WORKLOAD_HELP)
    .option('--tracer <tracer>', `current_tracer (${TRACERS.join(', ')})`, 'function')
    .option('--filter <expr>', 'set_ftrace_filter expression, e.g. "vfs_* !vfs_open"')
    .option('--notrace <expr>', 'set_ftrace_notrace expression')
    .option('--replay', 'the workload is a function_graph trace to replay')
    .option('--arch <arch>', `architecture (${ARCHES.join(', ')})`, arch, 'x86_64' as ArchName)
    .option('--cpus <n>', 'number of CPUs', positiveInt, 2)
    .option('--seed <n>', 'scheduler seed', seed, 1)
    .option('--btf <file>', 'build the kernel image from this BTF instead of the built-in one')
    .option('--buffer-size-kb <kb>', 'per-CPU ring buffer size', positiveInt, 1408)
    .option('--enabled', 'print enabled_functions after the trace')
    .action((opts: TraceOpts) => {
      if (!(TRACERS as readonly string[]).includes(opts.tracer)) {
        throw Object.assign(
          new Error(`current_tracer: no tracer '${opts.tracer}' (have ${TRACERS.join(', ')})`),
          { code: 'EINVAL' },
        );
      }
      const image = unwrap(
        opts.btf
          ? KernelImage.fromBtf(opts.arch, readInput(opts.btf))
          : KernelImage.builtin(opts.arch),
      );
      const named = workloadSpec(opts.workload, opts.replay === true);
      const spec = typeof named === 'string' ? unwrap(builtinWorkload(named, opts.arch)) : named;
      const compiled = unwrap(compileWorkload(image, spec));
      const kernel = new Kernel({ image, cpus: opts.cpus });
      const ft = unwrap(Ftrace.attach(kernel));
      const tracer = new FunctionTracer(ft, { bufferSizeKb: opts.bufferSizeKb });
      if (opts.filter !== undefined) throwIf(tracer.setFilter(opts.filter));
      if (opts.notrace !== undefined) throwIf(tracer.setFilter(opts.notrace, { notrace: true }));
      if (opts.tracer === 'function') throwIf(tracer.start());
      const result = unwrap(runCompiled(kernel, compiled, opts.seed));
      process.stdout.write(tracer.readTrace());
      if (opts.enabled) process.stdout.write(`\n# enabled_functions\n${ft.enabledFunctions()}`);
      if (result.fault) console.error(`tracelab: workload stopped by a fault: ${result.fault}`);
    });
}

function throwIf(err: Error | null): void {
  if (err) throw err;
}
