import { TracelabError } from '@tracelab/contracts';
import type { Engine } from '@tracelab/engine';
import type { Command } from 'commander';
import { unwrap, workloadSpec } from '../workload.js';
import {
  createEngine,
  engineSteps,
  imageOptions,
  machineOptions,
  runWorkload,
  type ImageOpts,
  type MachineOpts,
} from './engine.js';
import { inContext } from './errors.js';
import { Progress } from './progress.js';

/** What `fprobe list` shows without --event: one definition per form worth knowing. */
export const EXAMPLE_EVENTS: readonly string[] = [
  // BTF argument names; the kernel names the event vfs_read__entry in group fprobes
  'f vfs_read file count',
  // the exit, with the return value
  'f vfs_read%return $retval',
  // own group and name, typed registers, a string behind a pointer argument, the task's comm
  'f:syscalls/openat do_sys_openat2 dfd=$arg1:s32 path=+0($arg2):string comm=$comm',
];

const DEFINITION_HELP = "f[:[GRP/][EVENT]] SYM[%return] [ARGS], e.g. 'f vfs_read count=$arg3:u32'";

/** Exit status when dynamic_events refuses a definition: a usage error, apart from 1 for run-time failures. */
const EXIT_BAD_DEFINITION = 2;

/**
 * Writes each definition to dynamic_events. A refused one prints what the kernel leaves in
 * error_log (message, command, caret), or the write's own error when there is no entry, and
 * returns false.
 */
function defineEvents(engine: Engine, definitions: readonly string[]): boolean {
  for (const def of definitions) {
    const err = engine.tracefs.write('dynamic_events', def, { append: true });
    if (!(err instanceof TracelabError)) continue;
    const log = unwrap(engine.tracefs.read('error_log'));
    process.stderr.write(log !== '' ? log : `tracelab: ${err.code}: ${err.message}\n`);
    process.exitCode = EXIT_BAD_DEFINITION;
    return false;
  }
  return true;
}

/** GRP/EVENT of each event dynamic_events lists (`f:GRP/EVENT SYM ...`). */
function listedEvents(engine: Engine): string[] {
  return unwrap(engine.tracefs.read('dynamic_events'))
    .split('\n')
    .map((l) => /^f:(\S+\/\S+) /.exec(l)?.[1])
    .filter((name): name is string => name !== undefined);
}

/** echo 1 > events/GRP/EVENT/enable for every listed event. */
function enableEvents(engine: Engine): void {
  for (const name of listedEvents(engine)) {
    const err = engine.tracefs.write(`events/${name}/enable`, '1');
    if (err instanceof TracelabError) throw inContext(`enabling ${name}: `, err);
  }
}

/** `tracelab fprobe add|list`: fprobe dynamic events on an in-process engine. */
export function registerFprobe(program: Command): void {
  const fprobe = program
    .command('fprobe')
    .description('fprobe dynamic events: define through dynamic_events, enable, trace');

  machineOptions(
    fprobe
      .command('add')
      .description(
        'define events, enable them, run a workload and print the trace; a refused definition prints error_log and exits 2',
      )
      .argument('<definition...>', DEFINITION_HELP),
  ).action((definitions: string[], opts: MachineOpts) => {
    const workload = workloadSpec(opts.workload, false);
    const progress = new Progress(engineSteps(opts) + 2, opts.btf !== undefined);
    try {
      const engine = createEngine(opts, progress);
      if (!defineEvents(engine, definitions)) return;
      progress.step('enabling events', () => enableEvents(engine));
      runWorkload(engine, workload, opts, progress);
      process.stdout.write(unwrap(engine.tracefs.read('trace')));
    } finally {
      progress.stop();
    }
  });

  imageOptions(
    fprobe
      .command('list')
      .description(
        'print definitions as dynamic_events lists them (default group and event names filled in); without --event, a few examples',
      )
      .option(
        '--event <definition>',
        `a definition to list (repeatable): ${DEFINITION_HELP}`,
        (value: string, previous: string[]) => [...previous, value],
        [] as string[],
      ),
  ).action((opts: ImageOpts & { event: string[] }) => {
    const progress = new Progress(engineSteps(opts), opts.btf !== undefined);
    try {
      const engine = createEngine(opts, progress);
      if (!defineEvents(engine, opts.event.length > 0 ? opts.event : EXAMPLE_EVENTS)) return;
      process.stdout.write(unwrap(engine.tracefs.read('dynamic_events')));
    } finally {
      progress.stop();
    }
  });
}
