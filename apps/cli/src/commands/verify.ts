import type { ArchName } from '@tracelab/arch-isa';
import { parseBtf } from '@tracelab/btf';
import { TracelabError } from '@tracelab/contracts';
import { KernelImage } from '@tracelab/kernel';
import { BpfObject, verifyObject } from '@tracelab/loader';
import { type Command, InvalidArgumentError } from 'commander';
import { readInput } from '../input.js';
import { arch, unwrap } from '../workload.js';

function logLevel(value: string): 0 | 1 | 2 {
  if (value === '0' || value === '1' || value === '2') return Number(value) as 0 | 1 | 2;
  throw new InvalidArgumentError('expected 0, 1 or 2');
}

interface VerifyOpts {
  btf?: string;
  arch: ArchName;
  logLevel: 0 | 1 | 2;
  section?: string;
  json?: boolean;
}

/** `tracelab verify`: what the kernel's verifier would say about each program of an object. */
export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description(
      "verify every program of a BPF object as BPF_PROG_LOAD would, with the kernel's log",
    )
    .argument('<file>', 'BPF ELF object (.o) built by clang -target bpf')
    .option(
      '--btf <file>',
      'kernel BTF for tracing programs and CO-RE (default: the simulated kernel image)',
    )
    .option(
      '--arch <arch>',
      'architecture whose pt_regs kprobe programs see',
      arch,
      'x86_64' as ArchName,
    )
    .option(
      '--log-level <n>',
      'verifier log level: 0, 1 (instructions) or 2 (states)',
      logLevel,
      0 as const,
    )
    .option('--section <name>', 'only programs of this section')
    .option('--json', 'print the verdicts as JSON')
    .action((file: string, opts: VerifyOpts) => {
      const btf = opts.btf
        ? parseBtf(readInput(opts.btf))
        : unwrap(KernelImage.builtin(opts.arch)).btf;
      const obj = BpfObject.open(readInput(file));
      if (btf) obj.setTargetBtf(btf);
      const verdicts = verifyObject(obj, {
        arch: opts.arch,
        logLevel: opts.logLevel,
        ...(btf ? { btf } : {}),
      }).filter((v) => opts.section === undefined || v.section === opts.section);
      if (verdicts.length === 0)
        throw new TracelabError('ENOENT', `${file}: no program in section '${opts.section}'`);
      if (opts.json) console.log(JSON.stringify(verdicts, null, 2));
      else {
        for (const { name, section, result } of verdicts) {
          if (result.log !== '')
            process.stdout.write(result.log.endsWith('\n') ? result.log : `${result.log}\n`);
          const s = result.stats;
          console.log(
            result.ok
              ? `${section} (${name}): accepted, ${s.processedInsns} insns processed, ${s.totalStates} states`
              : `${section} (${name}): rejected ${result.errnoName ?? result.errno}: ${result.error?.message ?? ''} (insn ${result.error?.insn ?? '?'})`,
          );
        }
      }
      if (verdicts.some((v) => !v.result.ok)) process.exitCode = 1;
    });
}
