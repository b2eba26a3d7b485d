import { TracelabError } from '@tracelab/contracts';
import type { Command } from 'commander';
import type { Target } from '../target/target.js';
import { workloadSpec } from '../workload.js';
import {
  imageOptions,
  machineOptions,
  runWorkload,
  targetSteps,
  withTarget,
  type Defer,
  type MachineOpts,
  type TargetOpts,
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

/** GRP/EVENT of an event line of dynamic_events (`f:GRP/EVENT SYM ...`). */
const eventName = (line: string): string | undefined => /^f:(\S+\/\S+) /.exec(line)?.[1];

/** GRP/EVENT of each event dynamic_events lists. */
async function listedEvents(target: Target): Promise<string[]> {
  return (await target.read('dynamic_events'))
    .split('\n')
    .map(eventName)
    .filter((name): name is string => name !== undefined);
}

/**
 * Writes each definition to dynamic_events and returns the names of the events they made. A
 * refused one prints what the kernel leaves in error_log (message, command, caret), or the
 * write's own error when there is no entry, and returns null. The events are removed again when
 * the command ends (disabled first: an enabled event cannot go), as an agent is shared.
 */
async function defineEvents(
  target: Target,
  definitions: readonly string[],
  defer: Defer,
): Promise<string[] | null> {
  const before = new Set(await listedEvents(target));
  const made = async () => (await listedEvents(target)).filter((e) => !before.has(e));
  defer(async () => {
    for (const name of await made()) {
      await target.write(`events/${name}/enable`, '0');
      await target.write('dynamic_events', `-:${name}`, true);
    }
  });
  // error_log keeps earlier refusals; only this command's belongs in its output
  await target.write('error_log', '');
  for (const def of definitions) {
    try {
      await target.write('dynamic_events', def, true);
    } catch (err) {
      if (!(err instanceof TracelabError)) throw err;
      const log = await target.read('error_log');
      process.stderr.write(log !== '' ? log : `tracelab: ${err.code}: ${err.message}\n`);
      process.exitCode = EXIT_BAD_DEFINITION;
      return null;
    }
  }
  return made();
}

/** echo 1 > events/GRP/EVENT/enable for each event. */
async function enableEvents(target: Target, names: readonly string[]): Promise<void> {
  for (const name of names) {
    try {
      await target.write(`events/${name}/enable`, '1');
    } catch (err) {
      throw err instanceof TracelabError ? inContext(`enabling ${name}: `, err) : err;
    }
  }
}

/** `tracelab fprobe add|list`: fprobe dynamic events on an in-process engine or an agent. */
export function registerFprobe(program: Command, env: NodeJS.ProcessEnv): void {
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
    env,
  ).action(async (definitions: string[], opts: MachineOpts, cmd: Command) => {
    const workload = workloadSpec(opts.workload, false);
    const progress = new Progress(targetSteps(opts) + 2, opts.btf !== undefined);
    await withTarget(opts, cmd, progress, async (target, defer) => {
      const events = await defineEvents(target, definitions, defer);
      if (events === null) return;
      await progress.step('enabling events', () => enableEvents(target, events));
      await target.write('trace', '');
      await runWorkload(target, workload, opts, progress);
      process.stdout.write(await target.read('trace'));
    });
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
    env,
  ).action(async (opts: TargetOpts & { event: string[] }, cmd: Command) => {
    const progress = new Progress(targetSteps(opts), opts.btf !== undefined);
    await withTarget(opts, cmd, progress, async (target, defer) => {
      const events = await defineEvents(
        target,
        opts.event.length > 0 ? opts.event : EXAMPLE_EVENTS,
        defer,
      );
      if (events === null) return;
      // only these definitions: an agent may list events of others too
      const lines = (await target.read('dynamic_events'))
        .split('\n')
        .filter((l) => events.includes(eventName(l) ?? ''));
      process.stdout.write(lines.map((l) => `${l}\n`).join(''));
    });
  });
}
