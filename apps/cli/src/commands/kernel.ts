import { ARCHES, type ArchName } from '@tracelab/arch-isa';
import { formatSymbols, kernelInfo, runWorkload, type RunSummary } from '@tracelab/kernel';
import type { Command } from 'commander';
import { readInput } from '../input.js';
import { arch, positiveInt, seed, unwrap, WORKLOAD_HELP, workloadSpec } from '../workload.js';

interface ImageOpts {
  arch: ArchName;
  btf?: string;
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
    .argument('<workload>', WORKLOAD_HELP)
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
