import { dumpBtf, formatFuncs, parseBtf, type DumpFormat } from '@tracelab/btf';
import { type Command, InvalidArgumentError } from 'commander';
import { readInput } from '../input.js';

const FORMATS: readonly DumpFormat[] = ['c', 'raw', 'json'];

function format(value: string): DumpFormat {
  const f = FORMATS.find((x) => x === value);
  if (!f) throw new InvalidArgumentError(`expected one of ${FORMATS.join(', ')}`);
  return f;
}

/** `tracelab btf ...`: BPF Type Format files, as bpftool shows them. */
export function registerBtf(program: Command): void {
  const btf = program
    .command('btf')
    .description('read BPF Type Format files (vmlinux, .BTF sections)');
  btf
    .command('dump')
    .description('dump a raw BTF file as a C header (bpftool format c), a raw listing or JSON')
    .argument('<file>', 'raw BTF blob, e.g. /sys/kernel/btf/vmlinux')
    .option('--format <format>', 'c, raw or json', format, 'raw' as DumpFormat)
    .option('--base <file>', 'base BTF for split (module) BTF, e.g. vmlinux for a module')
    .action((file: string, opts: { format: DumpFormat; base?: string }) => {
      const base = opts.base ? parseBtf(readInput(opts.base)) : undefined;
      process.stdout.write(dumpBtf(readInput(file), opts.format, base ? { base } : {}));
    });
  btf
    .command('funcs')
    .description('list functions with their prototypes and btf_func_model, or summarise the models')
    .argument('<file>', 'raw BTF blob, e.g. /sys/kernel/btf/vmlinux')
    .argument('[glob]', 'only functions matching this glob')
    .option('--model', "append each function's btf_func_model (or why it has none)")
    .option('--summary', 'count functions, distinct models and rejections instead of listing')
    .action(
      (file: string, glob: string | undefined, opts: { model?: boolean; summary?: boolean }) => {
        process.stdout.write(formatFuncs(parseBtf(readInput(file)), glob, opts));
      },
    );
}
