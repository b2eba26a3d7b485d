import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { assemble } from './asm.js';
import { VmError } from './errors.js';
import { encode, parseHex } from './insn.js';
import { runConformance } from './conformance.js';

interface Case {
  name: string;
  asm: string;
  mem: string;
  result?: string;
  error?: string;
}

/** Reads our conformance-style fixtures: `== name` then `-- asm`, `-- mem`, `-- result|error`. */
export function parseCases(text: string): Case[] {
  const cases: Case[] = [];
  for (const block of text.split(/^== /m).slice(1)) {
    const [name, ...rest] = block.split('\n');
    const sections: Record<string, string[]> = {};
    let cur = '';
    for (const line of rest) {
      const m = /^-- (\w+)/.exec(line);
      if (m !== null) cur = m[1] as string;
      else if (cur !== '') (sections[cur] ??= []).push(line);
    }
    const c: Case = {
      name: (name as string).trim(),
      asm: (sections['asm'] ?? []).join('\n'),
      mem: (sections['mem'] ?? []).join(' '),
    };
    if (sections['result'] !== undefined) c.result = sections['result'].join('').trim();
    if (sections['error'] !== undefined) c.error = sections['error'].join('\n').trim();
    cases.push(c);
  }
  return cases;
}

const dir = new URL('./testdata/conformance/', import.meta.url);
for (const file of readdirSync(dir).filter((f) => f.endsWith('.data'))) {
  describe(`conformance ${file}`, () => {
    for (const c of parseCases(readFileSync(new URL(file, dir), 'utf8'))) {
      it.each([
        ['interpreter', false],
        ['jit', true],
      ])(`${c.name} (%s)`, (_mode, jit) => {
        const prog = assemble(c.asm);
        if (prog instanceof VmError) throw prog;
        const mem = parseHex(c.mem);
        if (mem instanceof VmError) throw mem;
        const r0 = runConformance(encode(prog), mem, 100_000, { jit });
        if (c.error !== undefined) {
          expect(r0).toBeInstanceOf(VmError);
          expect((r0 as VmError).message).toContain(c.error);
        } else {
          if (r0 instanceof VmError) throw r0;
          expect(`0x${r0.toString(16)}`).toBe(`0x${BigInt(c.result as string).toString(16)}`);
        }
      });
    }
  });
}
