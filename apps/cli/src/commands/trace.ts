import { DEFAULT_GRAPH_OPTIONS, type GraphOptions } from '@tracelab/fgraph';
import { TracelabError } from '@tracelab/contracts';
import type { Command } from 'commander';
import { positiveInt, workloadSpec } from '../workload.js';
import {
  machineOptions,
  runWorkload,
  targetSteps,
  withTarget,
  type MachineOpts,
} from './engine.js';
import { Progress } from './progress.js';

interface TraceOpts extends MachineOpts {
  tracer: string;
  replay?: boolean;
  filter?: string;
  notrace?: string;
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

/**
 * The tracefs writes that set the tracer up, every file the command controls written, defaults
 * included, so what an agent's kernel was set to before does not show in the trace.
 */
function setup(opts: TraceOpts, options: GraphOptions): [path: string, data: string][] {
  return [
    ['current_tracer', 'nop'],
    ['buffer_size_kb', String(opts.bufferSizeKb)],
    ['set_ftrace_filter', opts.filter ?? ''],
    ['set_ftrace_notrace', opts.notrace ?? ''],
    ['set_graph_function', opts.graphFunction ?? ''],
    ['set_graph_notrace', opts.graphNotrace ?? ''],
    ['max_graph_depth', String(opts.maxGraphDepth ?? 0)],
    ...Object.entries(GRAPH_OPTION_NAMES).map(([name, key]): [string, string] => [
      `options/${name}`,
      options[key] ? '1' : '0',
    ]),
    ['trace', ''],
    ['current_tracer', opts.tracer],
  ];
}

/** What setup changed back to the kernel's defaults, the tracer off first. */
const TEARDOWN: readonly [path: string, data: string][] = [
  ['current_tracer', 'nop'],
  ['set_ftrace_filter', ''],
  ['set_ftrace_notrace', ''],
  ['set_graph_function', ''],
  ['set_graph_notrace', ''],
  ['max_graph_depth', '0'],
];

/** `tracelab trace`: run a workload on a kernel traced by one of ftrace's tracers and print `trace`. */
export function registerTrace(program: Command, env: NodeJS.ProcessEnv): void {
  machineOptions(
    program
      .command('trace')
      .description('run a workload under an ftrace tracer and print the trace file')
      .option('--tracer <tracer>', `current_tracer (${TRACERS.join(', ')})`, 'function')
      .option('--filter <expr>', 'set_ftrace_filter expression, e.g. "vfs_* !vfs_open"')
      .option('--notrace <expr>', 'set_ftrace_notrace expression')
      .option('--replay', 'the workload is a function_graph trace to replay')
      .option('--buffer-size-kb <kb>', 'per-CPU ring buffer size', positiveInt, 1408)
      .option('--enabled', 'print enabled_functions after the trace')
      .option('--graph-function <glob>', 'function_graph: set_graph_function')
      .option('--graph-notrace <glob>', 'function_graph: set_graph_notrace')
      .option('--max-graph-depth <n>', 'function_graph: max_graph_depth', positiveInt)
      .option(
        '--trace-options <list>',
        'function_graph: trace_options, e.g. funcgraph-proc,nofuncgraph-irqs',
      ),
    env,
    'required',
  ).action(async (opts: TraceOpts, cmd: Command) => {
    if (!(TRACERS as readonly string[]).includes(opts.tracer)) {
      throw new TracelabError(
        'EINVAL',
        `current_tracer: no tracer '${opts.tracer}' (have ${TRACERS.join(', ')})`,
      );
    }
    const options = graphOptions(opts.traceOptions);
    const workload = workloadSpec(opts.workload, opts.replay === true);
    const progress = new Progress(targetSteps(opts) + 1, opts.btf !== undefined);
    await withTarget(opts, cmd, progress, async (target, defer) => {
      defer(async () => {
        for (const [path, data] of TEARDOWN) await target.write(path, data);
      });
      for (const [path, data] of setup(opts, options)) await target.write(path, data);
      await runWorkload(target, workload, opts, progress);
      process.stdout.write(await target.read('trace'));
      if (opts.enabled)
        process.stdout.write(`\n# enabled_functions\n${await target.read('enabled_functions')}`);
    });
  });
}
