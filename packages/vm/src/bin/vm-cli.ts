#!/usr/bin/env node
// `tracelab-vm asm|disasm|run FILE ...`: the vm's command line (apps/cli mounts the same vmCli).
import { readFileSync } from 'node:fs';
import { vmCli } from '../cli.js';
import { VmError } from '../errors.js';

process.exitCode = vmCli(process.argv.slice(2), {
  readFile: (path) => {
    try {
      return new Uint8Array(readFileSync(path));
    } catch (e) {
      return new VmError('ENOENT', (e as Error).message);
    }
  },
  readStdin: () => readFileSync(0, 'utf8'),
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
});
