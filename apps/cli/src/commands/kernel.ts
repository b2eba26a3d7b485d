import { ARCHES, type ArchName } from '@tracelab/arch-isa';
import {
  BUILTIN_WORKLOADS,
  formatSymbols,
  kernelInfo,
  parseWorkloadText,
  replayWorkload,
  runWorkload,
  type RunSummary,
  type WorkloadSpec,
} from '@tracelab/kernel';
import { type Command, InvalidArgumentError } from 'commander';
import { readInput } from '../input.js';

function arch(value: string): ArchName {
  const a = ARCHES.find((x) => x === value);
  if (!a) throw new InvalidArgumentError(`expected one of ${ARCHES.join(', ')}`);
  return a;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

function seed(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff)
    throw new InvalidArgumentError('expected an integer from 0 to 2^32-1');
  return n;
}

/** Layer results are error values; the CLI turns them back into thrown errors at its edge. */
function unwrap<T>(value: T): Exclude<T, Error> {
  if (value instanceof Error) throw value;
  return value as Exclude<T, Error>;
}

interface ImageOpts {
  arch: ArchName;
  btf?: string;
}

const decoder = new TextDecoder();

function workloadSpec(workload: string, replay: boolean): string | WorkloadSpec {
  if (replay) return unwrap(replayWorkload(decoder.decode(readInput(workload)), workload));
  if ((BUILTIN_WORKLOADS as readonly string[]).includes(workload)) return workload;
  return unwrap(parseWorkloadText(decoder.decode(readInput(workload)), workload));
}

function printSummary(s: RunSummary): void {
  console.log(`workload ${s.workload} on ${s.arch}, ${s.cpus} CPUs, seed ${s.seed}`);
  console.log(
    `calls ${s.calls}, task switches ${s.switches}, elapsed ${(s.elapsedNs / 1000).toFixed(3)} us`,
  );
  console.log(`CPU clocks (ns): ${s.cpuClocksNs.map((c) => Math.round(c)).join(' ')}`);
  console.log('tasks:');
  for (const t of s.tasks)
    console.log(`  ${`${t.comm}-${t.pid}`.padEnd(24)} cpu ${t.cpu}  calls ${t.calls}`);
  console.log('most called:');
  for (const f of s.topFunctions) console.log(`  ${String(f.calls).padStart(8)}  ${f.name}`);
  if (s.fault) console.log(`fault: ${s.fault}`);
}

/** `tracelab kernel ...`: the simulated kernel on its own, untraced. */
export function registerKernel(program: Command): void {
  const kernel = program
    .command('kernel')
    .description('the simulated kernel: image, symbols, workloads');
  const imageOptions = (cmd: Command) =>
    cmd
      .option('--arch <arch>', `architecture (${ARCHES.join(', ')})`, arch, 'x86_64' as ArchName)
      .option(
        '--btf <file>',
        'build the image from this BTF (e.g. /sys/kernel/btf/vmlinux) instead of the built-in one',
      );
  const btfOf = (opts: ImageOpts) => (opts.btf ? readInput(opts.btf) : undefined);

  imageOptions(kernel.command('info').description('describe the kernel image'))
    .option('--json', 'print JSON')
    .action((opts: ImageOpts & { json?: boolean }) => {
      const info = unwrap(kernelInfo(opts.arch, btfOf(opts)));
      if (opts.json) console.log(JSON.stringify(info, null, 2));
      else
        for (const [k, v] of Object.entries(info))
          console.log(`${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
    });

  imageOptions(kernel.command('symbols').description('list kernel symbols like /proc/kallsyms'))
    .argument('[glob]', 'only symbols matching this glob', '*')
    .action((glob: string, opts: ImageOpts) => {
      for (const line of unwrap(formatSymbols(glob, opts.arch, btfOf(opts)))) console.log(line);
    });

  imageOptions(kernel.command('run').description('run a workload and summarise what ran'))
    .argument(
      '<workload>',
      `a built-in workload (${BUILTIN_WORKLOADS.join(', ')}) or a JSON/YAML workload file`,
    )
    .option('--cpus <n>', 'number of CPUs', positiveInt)
    .option('--seed <n>', 'scheduler seed', seed, 1)
    .option('--replay', 'WORKLOAD is a function_graph trace to replay')
    .option('--json', 'print the summary as JSON')
    .action(
      (
        workload: string,
        opts: ImageOpts & { cpus?: number; seed: number; replay?: boolean; json?: boolean },
      ) => {
        const spec = workloadSpec(workload, opts.replay === true);
        const btf = btfOf(opts);
        const summary = unwrap(
          runWorkload(spec, {
            arch: opts.arch,
            seed: opts.seed,
            ...(opts.cpus ? { cpus: opts.cpus } : {}),
            ...(btf ? { btf } : {}),
          }),
        );
        if (opts.json) console.log(JSON.stringify(summary, null, 2));
        else printSummary(summary);
      },
    );
}
