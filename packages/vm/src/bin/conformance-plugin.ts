#!/usr/bin/env node
// bpf_conformance plugin: program as hex on stdin, input memory as hex in the first argument;
// prints r0 in hex and exits 0, or prints the error and exits 1. --jit runs the compiled form.
import { readFileSync } from 'node:fs';
import { VmError } from '../errors.js';
import { parseHex } from '../insn.js';
import { runConformance } from '../conformance.js';

function main(argv: string[]): number {
  const args = argv.filter((a) => !a.startsWith('--'));
  if (argv.includes('--elf')) {
    process.stderr.write('ELF input is not supported by this plugin; run without --elf\n');
    return 1;
  }
  const prog = parseHex(readFileSync(0, 'utf8'));
  if (prog instanceof VmError) {
    process.stderr.write(`program: ${prog.message}\n`);
    return 1;
  }
  const mem = args.length > 0 ? parseHex(args[0] as string) : new Uint8Array(0);
  if (mem instanceof VmError) {
    process.stderr.write(`memory: ${mem.message}\n`);
    return 1;
  }
  const r0 = runConformance(prog, mem, 10_000_000, { jit: argv.includes('--jit') });
  if (r0 instanceof VmError) {
    process.stderr.write(`${r0.message}\n`);
    return 1;
  }
  process.stdout.write(`${r0.toString(16)}\n`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
