import { readFileSync } from 'node:fs';
import { VM_CLI_USAGE, VmError, vmCli, type CliIo } from '@tracelab/vm';
import type { Command } from 'commander';

const io: CliIo = {
  readFile: (path) => {
    try {
      return readFileSync(path);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'ENOENT' : 'EINVAL';
      return new VmError(code, `cannot read ${path}: ${(e as Error).message}`);
    }
  },
  readStdin: () => readFileSync(0, 'utf8'),
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
};

/** `tracelab vm ...`: the eBPF vm on its own (assembler, disassembler, runs, conformance plugin). */
export function registerVm(program: Command): void {
  program
    .command('vm')
    .description('assemble, disassemble and run eBPF programs; the bpf_conformance plugin')
    .argument(
      '<args...>',
      'asm FILE | disasm FILE | run FILE [--mem HEX] [--trace] [--jit] | plugin [MEMHEX]',
    )
    .allowUnknownOption()
    .helpOption(false)
    .addHelpText('after', `\n${VM_CLI_USAGE}`)
    .action((args: string[]) => {
      const code = vmCli(args, io);
      if (code !== 0) process.exitCode = code;
    });
}
