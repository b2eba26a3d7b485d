import type { ArchName } from '@tracelab/arch-isa';
import { parseBtf, type Btf } from '@tracelab/btf';
import { TracelabError } from '@tracelab/contracts';
import { KernelImage } from '@tracelab/kernel';
import { BpfObject, verifyObject, type ProgramVerdict } from '@tracelab/loader';
import { PROG_TYPES, verify, type AttachType, type ProgType } from '@tracelab/verifier';
import { assemble } from '@tracelab/vm';
import { type Command, InvalidArgumentError } from 'commander';
import { readInput } from '../input.js';
import { arch, unwrap } from '../workload.js';

const ATTACH_TYPES: readonly AttachType[] = ['fentry', 'fexit', 'fmod_ret'];

function choice<T extends string>(values: readonly T[]): (value: string) => T {
  return (value) => {
    const v = values.find((x) => x === value);
    if (v === undefined) throw new InvalidArgumentError(`expected one of ${values.join(', ')}`);
    return v;
  };
}

function logLevel(value: string): 0 | 1 | 2 {
  if (value === '0' || value === '1' || value === '2') return Number(value) as 0 | 1 | 2;
  throw new InvalidArgumentError('expected 0, 1 or 2');
}

interface VerifyOpts {
  btf?: string;
  arch: ArchName;
  log: 0 | 1 | 2;
  section?: string;
  type: ProgType;
  attachType?: AttachType;
  attachTarget?: string;
  json?: boolean;
}

export const isElf = (b: Uint8Array): boolean =>
  b[0] === 0x7f && b[1] === 0x45 && b[2] === 0x4c && b[3] === 0x46;

/** An assembly file is one program whose type the command line gives, as bpftool prog load does. */
function verifyAsm(
  file: string,
  bytes: Uint8Array,
  btf: Btf | null,
  opts: VerifyOpts,
): ProgramVerdict {
  const insns = assemble(new TextDecoder().decode(bytes));
  if (insns instanceof Error) throw new TracelabError(insns.code, `${file}: ${insns.message}`);
  const result = verify(insns, {
    progType: opts.type,
    arch: opts.arch,
    logLevel: opts.log,
    ...(btf ? { btf } : {}),
    ...(opts.attachType ? { attachType: opts.attachType } : {}),
    ...(opts.attachTarget ? { attachTarget: opts.attachTarget } : {}),
  });
  return { name: file, section: opts.type, insnOff: 0, result };
}

/** `tracelab verify`: what the kernel's verifier would say about each program of an object. */
export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description("verify programs as BPF_PROG_LOAD would, with the kernel's log; exit 1 on reject")
    .argument('<file>', 'BPF ELF object (.o) built by clang -target bpf, or an assembly file')
    .option('--section <name>', 'only the programs of this section (objects)')
    .option(
      '--type <type>',
      `program type of an assembly file (${PROG_TYPES.join(', ')})`,
      choice(PROG_TYPES),
      'socket_filter' as ProgType,
    )
    .option(
      '--attach-type <type>',
      'tracing programs in an assembly file: fentry, fexit or fmod_ret',
      choice(ATTACH_TYPES),
    )
    .option('--attach-target <func>', 'tracing programs in an assembly file: the traced function')
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
      '--log <n>',
      'verifier log level: 0, 1 (instructions) or 2 (states)',
      logLevel,
      0 as const,
    )
    .option('--json', 'print the verdicts as JSON')
    .action((file: string, opts: VerifyOpts) => {
      const btf = opts.btf
        ? parseBtf(readInput(opts.btf))
        : unwrap(KernelImage.builtin(opts.arch)).btf;
      const bytes = readInput(file);
      let verdicts: ProgramVerdict[];
      if (isElf(bytes)) {
        const obj = BpfObject.open(bytes);
        if (btf) obj.setTargetBtf(btf);
        verdicts = verifyObject(obj, {
          arch: opts.arch,
          logLevel: opts.log,
          ...(btf ? { btf } : {}),
        }).filter((v) => opts.section === undefined || v.section === opts.section);
        if (verdicts.length === 0)
          throw new TracelabError('ENOENT', `${file}: no program in section '${opts.section}'`);
      } else {
        verdicts = [verifyAsm(file, bytes, btf, opts)];
      }
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
