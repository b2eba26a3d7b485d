import { ARCHES, type ArchName } from '@tracelab/arch-isa';
import { btfGrouping, btfPlanText, formatGrouping } from '@tracelab/trampoline';
import { type Command } from 'commander';
import { readInput } from '../input.js';
import { arch, positiveInt, unwrap } from '../workload.js';

interface TrampOpts {
  arch: ArchName;
  btf: string;
  ilp32?: boolean;
}

/** `tracelab trampoline ...`: how BPF trampolines would marshal arguments for a kernel's functions. */
export function registerTrampoline(program: Command): void {
  const tramp = program
    .command('trampoline')
    .description('BPF trampoline argument plans and multi-attach groups');
  const common = (cmd: Command) =>
    cmd
      .option('--arch <arch>', `architecture (${ARCHES.join(', ')})`, arch, 'x86_64' as ArchName)
      .option('--btf <file>', 'kernel BTF', '/sys/kernel/btf/vmlinux')
      .option('--ilp32', 'read long as 4 bytes (a 32-bit kernel from a 64-bit BTF)');
  common(tramp.command('groups').description('N functions -> M trampolines, one per distinct plan'))
    .argument('[glob]', 'only functions matching this glob')
    .option('--top <n>', 'how many of the biggest groups to list', positiveInt, 10)
    .action((glob: string | undefined, opts: TrampOpts & { top: number }) => {
      const g = btfGrouping(opts.arch, readInput(opts.btf), {
        ...(glob !== undefined ? { glob } : {}),
        ...(opts.ilp32 ? { ilp32: true } : {}),
      });
      process.stdout.write(`${formatGrouping(g, opts.top)}\n`);
    });
  common(tramp.command('plan').description("one function's marshalling plan"))
    .argument('<func>', 'kernel function')
    .action((func: string, opts: TrampOpts) => {
      const text = unwrap(
        btfPlanText(opts.arch, readInput(opts.btf), func, opts.ilp32 ? { ilp32: true } : {}),
      );
      process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
    });
}
