import { parseBtf } from '@tracelab/btf';
import { dumpObject, formatObjectInfo, objectInfo } from '@tracelab/loader';
import type { Command } from 'commander';
import { readInput } from '../input.js';

/** `tracelab obj ...`: BPF ELF objects built by clang, as libbpf sees them. */
export function registerObj(program: Command): void {
  const obj = program.command('obj').description('inspect BPF ELF objects (clang -target bpf)');
  obj
    .command('info')
    .description('programs, maps, relocations, externs and BTF of an object')
    .argument('<file>', 'BPF ELF object (.o)')
    .option(
      '--target-btf <file>',
      'resolve CO-RE relocations against this BTF (e.g. /sys/kernel/btf/vmlinux)',
    )
    .option('--json', 'print JSON')
    .action((file: string, opts: { targetBtf?: string; json?: boolean }) => {
      const targetBtf = opts.targetBtf ? parseBtf(readInput(opts.targetBtf)) : undefined;
      const info = objectInfo(readInput(file), targetBtf ? { targetBtf } : {});
      if (opts.json)
        console.log(
          JSON.stringify(info, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2),
        );
      else process.stdout.write(`${formatObjectInfo(info)}\n`);
    });
  obj
    .command('dump')
    .description('disassemble program sections with source lines from line_info')
    .argument('<file>', 'BPF ELF object (.o)')
    .argument('[section]', 'only this section, e.g. fentry/vfs_read')
    .action((file: string, section: string | undefined) => {
      process.stdout.write(dumpObject(readInput(file), section));
    });
}
