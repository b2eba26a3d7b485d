import { ARCHES, type ArchName } from '@tracelab/arch-isa';
import { TracelabError } from '@tracelab/contracts';
import { Engine, type WorkloadResult } from '@tracelab/engine';
import type { WorkloadSpec } from '@tracelab/kernel';
import type { Command } from 'commander';
import { readInput } from '../input.js';
import { arch, positiveInt, seed, unwrap, WORKLOAD_HELP } from '../workload.js';
import { aboutFile } from './errors.js';
import type { Progress } from './progress.js';

/** The kernel image of an embedded-engine command. */
export interface ImageOpts {
  arch: ArchName;
  btf?: string;
}

/** The machine an embedded-engine command builds and the workload it runs on it. */
export interface MachineOpts extends ImageOpts {
  workload: string;
  cpus: number;
  seed: number;
}

export function imageOptions(cmd: Command): Command {
  return cmd
    .option('--arch <arch>', `architecture (${ARCHES.join(', ')})`, arch, 'x86_64' as ArchName)
    .option(
      '--btf <file>',
      'build the kernel image from this BTF (e.g. /sys/kernel/btf/vmlinux) instead of the built-in one',
    );
}

export function machineOptions(cmd: Command): Command {
  return imageOptions(cmd)
    .option('--workload <workload>', WORKLOAD_HELP, 'syscalls')
    .option('--cpus <n>', 'number of CPUs', positiveInt, 2)
    .option('--seed <n>', 'scheduler seed', seed, 1);
}

/** Steps createEngine takes on the progress bar. */
export const engineSteps = (opts: ImageOpts): number => (opts.btf === undefined ? 1 : 2);

/** An in-process engine for the options; a BTF that does not make a kernel is named in the error. */
export function createEngine(
  opts: ImageOpts & { cpus?: number; seed?: number },
  progress: Progress,
): Engine {
  const file = opts.btf;
  const btf =
    file === undefined ? undefined : progress.step(`reading ${file}`, () => readInput(file));
  const engine = progress.step('building the kernel', () =>
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

/** Runs the workload; a fault that stopped it is reported on stderr, as `tracelab trace` does. */
export function runWorkload(
  engine: Engine,
  workload: string | WorkloadSpec,
  opts: MachineOpts,
  progress: Progress,
): WorkloadResult {
  const result = unwrap(
    progress.step(`running ${opts.workload}`, () => engine.run(workload, { seed: opts.seed })),
  );
  if (result.fault !== null)
    console.error(`tracelab: workload stopped by a fault: ${result.fault}`);
  return result;
}
