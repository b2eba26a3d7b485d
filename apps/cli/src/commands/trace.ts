import { ARCHES, type ArchName } from '@tracelab/arch-isa';
import { DEFAULT_GRAPH_OPTIONS, traceFunctionGraph, type GraphOptions } from '@tracelab/fgraph';
import { Ftrace, FunctionTracer } from '@tracelab/ftrace-core';
import {
  builtinWorkload,
  compileWorkload,
  Kernel,
  KernelImage,
  runCompiled,
} from '@tracelab/kernel';
import { TracelabError } from '@tracelab/contracts';
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
  graphFunction?: string;
  graphNotrace?: string;
  maxGraphDepth?: number;
  traceOptions?: string;
}

const TRACERS = ['function', 'function_graph', 'nop'] as const;

/** trace_options names of the graph options (`funcgraph-proc`, `nofuncgraph-irqs`, ...). */
const GRAPH_OPTION_NAMES: Record<string, keyof GraphOptions> = {
  'funcgraph-cpu': 'cpu',
  'funcgraph-overhead': 'overhead',
  'funcgraph-proc': 'proc',
  'funcgraph-duration': 'duration',
  'funcgraph-abstime': 'abstime',
  'funcgraph-irqs': 'irqs',
  'funcgraph-tail': 'tail',
  'funcgraph-retval': 'retval',
  'funcgraph-retval-hex': 'retvalHex',
};

function graphOptions(list: string | undefined): GraphOptions {
  const options: GraphOptions = { ...DEFAULT_GRAPH_OPTIONS };
  for (const word of (list ?? '').split(',').filter((w) => w !== '')) {
    const off = word.startsWith('no');
    const key = GRAPH_OPTION_NAMES[off ? word.slice(2) : word];
    if (key === undefined) {
      throw new TracelabError(
        'EINVAL',
        `trace_options: unknown option '${word}' (have ${Object.keys(GRAPH_OPTION_NAMES).join(', ')})`,
      );
    }
    options[key] = !off;
  }
  return options;
}

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
    .option('--graph-function <glob>', 'function_graph: set_graph_function')
    .option('--graph-notrace <glob>', 'function_graph: set_graph_notrace')
    .option('--max-graph-depth <n>', 'function_graph: max_graph_depth', positiveInt)
    .option(
      '--trace-options <list>',
      'function_graph: trace_options, e.g. funcgraph-proc,nofuncgraph-irqs',
    )
    .action((opts: TraceOpts) => {
      if (!(TRACERS as readonly string[]).includes(opts.tracer)) {
        throw new TracelabError(
          'EINVAL',
          `current_tracer: no tracer '${opts.tracer}' (have ${TRACERS.join(', ')})`,
        );
      }
      if (opts.tracer === 'function_graph') {
        traceGraph(opts);
        return;
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

function traceGraph(opts: TraceOpts): void {
  if (opts.btf !== undefined || opts.enabled) {
    throw new TracelabError(
      'EOPNOTSUPP',
      '--btf and --enabled are not available with the function_graph tracer yet',
    );
  }
  const out = traceFunctionGraph(workloadSpec(opts.workload, opts.replay === true), {
    arch: opts.arch,
    cpus: opts.cpus,
    seed: opts.seed,
    options: graphOptions(opts.traceOptions),
    ...(opts.filter !== undefined ? { filter: opts.filter } : {}),
    ...(opts.notrace !== undefined ? { notrace: opts.notrace } : {}),
    ...(opts.graphFunction !== undefined ? { graphFunction: opts.graphFunction } : {}),
    ...(opts.graphNotrace !== undefined ? { graphNotrace: opts.graphNotrace } : {}),
    ...(opts.maxGraphDepth !== undefined ? { maxDepth: opts.maxGraphDepth } : {}),
  });
  process.stdout.write(unwrap(out));
}

function throwIf(err: Error | null): void {
  if (err) throw err;
}
