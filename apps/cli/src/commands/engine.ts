import { ARCHES, type ArchName } from '@tracelab/arch-isa';
import { isToken, TracelabError, type RunReply } from '@tracelab/contracts';
import { Engine } from '@tracelab/engine';
import type { WorkloadSpec } from '@tracelab/kernel';
import { InvalidArgumentError, type Command } from 'commander';
import { readInput } from '../input.js';
import { EmbeddedTarget } from '../target/embedded.js';
import { RemoteTarget } from '../target/remote.js';
import type { Target } from '../target/target.js';
import { arch, positiveInt, seed, unwrap, WORKLOAD_HELP } from '../workload.js';
import { aboutFile } from './errors.js';
import type { Progress } from './progress.js';

/** The kernel image of an embedded-engine command. */
export interface ImageOpts {
  arch: ArchName;
  btf?: string;
}

/** Where a command's kernel is: in this process, or a running agent's over NATS. */
export interface TargetOpts extends ImageOpts {
  cpus?: number;
  seed?: number;
  nats?: string;
  agent: string;
  timeout: number;
}

/** The machine an embedded-engine command builds and the workload it runs on it. */
export interface MachineOpts extends TargetOpts {
  workload: string;
  cpus: number;
  seed: number;
}

export function agentId(value: string): string {
  if (!isToken(value))
    throw new InvalidArgumentError('an agent id is 1-64 letters, digits, _ or -');
  return value;
}

/** --nats, --agent and --timeout: make the command a client of a running agent. */
export function targetOptions(cmd: Command, env: NodeJS.ProcessEnv): Command {
  return cmd
    .option(
      '--nats <url>',
      "work on a running agent's kernel over the NATS server at URL (default: TRACELAB_NATS_URL)",
      env.TRACELAB_NATS_URL,
    )
    .option('--agent <id>', 'with --nats: the agent', agentId, env.TRACELAB_AGENT_ID ?? 'agent-0')
    .option('--timeout <ms>', 'with --nats: how long to wait for each answer', positiveInt, 30_000);
}

export function imageOptions(cmd: Command, env: NodeJS.ProcessEnv): Command {
  return targetOptions(cmd, env)
    .option('--arch <arch>', `architecture (${ARCHES.join(', ')})`, arch, 'x86_64' as ArchName)
    .option(
      '--btf <file>',
      'build the kernel image from this BTF (e.g. /sys/kernel/btf/vmlinux) instead of the built-in one',
    );
}

export function machineOptions(
  cmd: Command,
  env: NodeJS.ProcessEnv,
  workload: 'optional' | 'required' = 'optional',
): Command {
  const withWorkload =
    workload === 'required'
      ? imageOptions(cmd, env).requiredOption('--workload <workload>', WORKLOAD_HELP)
      : imageOptions(cmd, env).option('--workload <workload>', WORKLOAD_HELP, 'syscalls');
  return withWorkload
    .option('--cpus <n>', 'number of CPUs', positiveInt, 2)
    .option('--seed <n>', 'scheduler seed', seed, 1);
}

/** Steps openTarget takes on the progress bar. */
export const targetSteps = (opts: TargetOpts): number =>
  opts.nats !== undefined || opts.btf === undefined ? 1 : 2;

/** An in-process engine for the options; a BTF that does not make a kernel is named in the error. */
async function createEngine(opts: TargetOpts, progress: Progress): Promise<Engine> {
  const file = opts.btf;
  const btf =
    file === undefined ? undefined : await progress.step(`reading ${file}`, () => readInput(file));
  const engine = await progress.step('building the kernel', () =>
    Engine.create({
      arch: opts.arch,
      ...(opts.cpus !== undefined ? { cpus: opts.cpus } : {}),
      ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
      ...(btf !== undefined ? { btf } : {}),
    }),
  );
  if (engine instanceof TracelabError && file !== undefined) throw aboutFile(file, engine);
  return unwrap(engine);
}

/** Options that build the in-process kernel; an agent's kernel is built already. */
const MACHINE_OPTIONS = ['arch', 'cpus', 'btf'];

/**
 * The kernel the options name: a running agent's with --nats (or TRACELAB_NATS_URL), else a
 * fresh engine. Options that describe a fresh machine are refused against an agent by name.
 */
export async function openTarget(
  opts: TargetOpts,
  cmd: Command,
  progress: Progress,
): Promise<Target> {
  const url = opts.nats;
  if (url === undefined) return new EmbeddedTarget(await createEngine(opts, progress));
  for (const name of MACHINE_OPTIONS) {
    if (cmd.getOptionValueSource(name) !== 'cli') continue;
    const flag = cmd.options.find((o) => o.attributeName() === name)?.long ?? name;
    throw new TracelabError(
      'EINVAL',
      `${flag} describes an in-process kernel; with --nats the kernel is agent ${opts.agent}'s at ${url}, built by its own options`,
    );
  }
  return progress.step(`connecting to ${url}`, () =>
    RemoteTarget.connect({ url, agent: opts.agent, timeoutMs: opts.timeout }),
  );
}

/** Runs the workload; a fault that stopped it is reported on stderr, as `tracelab trace` does. */
export async function runWorkload(
  target: Target,
  workload: string | WorkloadSpec,
  opts: MachineOpts,
  progress: Progress,
): Promise<RunReply> {
  const result = await progress.step(`running ${opts.workload}`, () =>
    target.run(workload, opts.seed),
  );
  if (result.fault !== null)
    console.error(`tracelab: workload stopped by a fault: ${result.fault}`);
  return result;
}

/** Registers work to undo what a command changed on its kernel, done before the target closes. */
export type Defer = (undo: () => Promise<void>) => void;

/**
 * Runs a command's work on the target the options name, then undoes what the work deferred (in
 * reverse) and closes the target, so a shared agent is left as found. When the work fails, its
 * error is the one reported, not a later one from undoing.
 */
export async function withTarget<T>(
  opts: TargetOpts,
  cmd: Command,
  progress: Progress,
  work: (target: Target, defer: Defer) => Promise<T>,
): Promise<T> {
  try {
    const target = await openTarget(opts, cmd, progress);
    const undo: (() => Promise<void>)[] = [];
    const errors: unknown[] = [];
    let out: T | undefined;
    try {
      out = await work(target, (u) => undo.push(u));
    } catch (err) {
      errors.push(err);
    }
    for (const step of [...undo.reverse(), () => target.close()]) {
      try {
        await step();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw errors[0];
    return out as T;
  } finally {
    progress.stop();
  }
}
