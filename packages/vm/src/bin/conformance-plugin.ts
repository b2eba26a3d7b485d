#!/usr/bin/env node
// bpf_conformance plugin: program as hex on stdin, input memory as hex in the first argument;
// prints r0 in hex and exits 0, or prints the error and exits 1. --jit runs the compiled form.
// The same protocol is `vm plugin` of the vm command line.
import { readFileSync } from 'node:fs';
import { vmCli } from '../cli.js';
import { VmError } from '../errors.js';

process.exitCode = vmCli(['plugin', ...process.argv.slice(2)], {
  readFile: () => new VmError('EINVAL', 'the plugin reads no files'),
  readStdin: () => readFileSync(0, 'utf8'),
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
});
