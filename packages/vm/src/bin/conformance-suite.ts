#!/usr/bin/env node
// Runs a directory of bpf_conformance `.data` tests through a plugin executable, speaking the
// suite's protocol (program hex on stdin, memory hex as the first argument, r0 hex on stdout).
// The suite's own runner needs Boost to build; this one assembles the tests with our assembler.
//   tracelab-bpf-conformance-suite TESTS_DIR [--plugin PATH] [--jit]
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { assemble } from '../asm.js';
import { VmError } from '../errors.js';
import { encode, toHex } from '../insn.js';

function sections(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let cur: string[] | null = null;
  for (const line of text.split(/\r?\n/)) {
    const m = /^-- ([\w ]+)/.exec(line);
    if (m !== null) {
      cur = [];
      out.set((m[1] as string).trim(), cur);
    } else if (cur !== null && !line.startsWith('#')) {
      cur.push(line);
    }
  }
  return out;
}

function main(argv: string[]): number {
  const dir = argv.find((a) => !a.startsWith('--'));
  if (dir === undefined) {
    process.stderr.write(
      'usage: tracelab-bpf-conformance-suite TESTS_DIR [--plugin PATH] [--jit]\n',
    );
    return 2;
  }
  const pi = argv.indexOf('--plugin');
  const plugin =
    pi >= 0
      ? (argv[pi + 1] as string)
      : fileURLToPath(new URL('./conformance-plugin.js', import.meta.url));
  let pass = 0;
  let fail = 0;
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith('.data'))
    .sort()) {
    const sec = sections(readFileSync(join(dir, file), 'utf8'));
    const prog = assemble((sec.get('asm') ?? []).join('\n'));
    if (prog instanceof VmError) {
      process.stdout.write(`FAIL ${file}: ${prog.message}\n`);
      fail++;
      continue;
    }
    const mem = (sec.get('mem') ?? []).join(' ').trim();
    const args = [
      plugin,
      ...(mem === '' ? [] : [mem]),
      ...(argv.includes('--jit') ? ['--jit'] : []),
    ];
    const r = spawnSync(process.execPath, args, { input: toHex(encode(prog)), encoding: 'utf8' });
    const expectError = sec.has('error');
    const want = BigInt.asUintN(64, BigInt((sec.get('result') ?? ['0']).join('').trim() || '0'));
    const ok = expectError
      ? r.status !== 0
      : r.status === 0 &&
        /^[0-9a-f]+$/i.test(r.stdout.trim()) &&
        BigInt(`0x${r.stdout.trim()}`) === want;
    if (ok) pass++;
    else {
      fail++;
      process.stdout.write(
        `FAIL ${file}: got ${(r.stdout || r.stderr).trim()} (exit ${r.status}), want ${expectError ? 'an error' : `0x${want.toString(16)}`}\n`,
      );
    }
  }
  process.stdout.write(`PASS ${pass} FAIL ${fail}\n`);
  return fail === 0 ? 0 : 1;
}

process.exitCode = main(process.argv.slice(2));
