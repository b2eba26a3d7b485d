import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type Insn, assemble } from '@tracelab/vm';
import { type AttachType, type MapDef, type MapType, type ProgType, verify } from './index.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), 'testdata', 'programs');

interface Fixture {
  name: string;
  header: Map<string, string>;
  insns: Insn[];
}

/** Raw slots from hex text, bypassing the assembler's own range checks. */
function fromHex(hex: string): Insn[] {
  const b = hex
    .trim()
    .split(/\s+/)
    .map((x) => parseInt(x, 16));
  const out: Insn[] = [];
  for (let k = 0; k < b.length; k += 8) {
    const v = new DataView(new Uint8Array(b.slice(k, k + 8)).buffer);
    out.push({
      code: v.getUint8(0),
      dst: v.getUint8(1) & 0xf,
      src: v.getUint8(1) >> 4,
      off: v.getInt16(2, true),
      imm: v.getInt32(4, true),
      imm2: 0,
    });
  }
  return out;
}

function load(file: string): Fixture {
  const text = readFileSync(join(dir, file), 'utf8');
  const header = new Map<string, string>();
  for (const m of text.matchAll(/^;; (\w+): (.*)$/gm)) header.set(m[1] as string, m[2] as string);
  const hex = header.get('hex');
  const insns = hex === undefined ? assemble(text) : fromHex(hex);
  if (!Array.isArray(insns)) throw new Error(`${file}: ${insns.message}`);
  return { name: file, header, insns };
}

/** `fd type ks vs max [inner type ks vs max]`, several separated by `;`. */
function maps(spec: string | undefined): Map<number, MapDef> {
  const out = new Map<number, MapDef>();
  const def = (type: string, ks: string, vs: string, max: string): MapDef => ({
    type: type as MapType,
    keySize: Number(ks),
    valueSize: Number(vs),
    maxEntries: Number(max),
  });
  for (const one of spec?.split(';') ?? []) {
    const [fd, type, ks, vs, max, inner, ...tmpl] = one.trim().split(/\s+/) as string[];
    const m = def(type as string, ks as string, vs as string, max as string);
    if (inner === 'inner') m.inner = def(...(tmpl as [string, string, string, string]));
    out.set(Number(fd), m);
  }
  return out;
}

const fixtures = readdirSync(dir)
  .filter((f) => f.endsWith('.bpf'))
  .sort()
  .map(load);

describe('kernel selftest-style programs', () => {
  it('has fixtures for accepted and rejected programs', () => {
    expect(fixtures.filter((f) => f.header.get('result') === 'accept').length).toBeGreaterThan(10);
    expect(fixtures.filter((f) => f.header.get('result') === 'reject').length).toBeGreaterThan(30);
  });

  it.each(fixtures.map((f) => [f.name, f] as const))('%s', (_name, f) => {
    const h = f.header;
    const res = verify(f.insns, {
      progType: h.get('type') as ProgType,
      attachType: h.get('attach') as AttachType | undefined,
      maps: maps(h.get('maps')),
      allowLoops: h.get('loops') !== 'no',
      insnLimit: h.has('limit') ? Number(h.get('limit')) : undefined,
      logLevel: 1,
    });
    if (h.get('result') === 'accept') {
      expect(res.error).toBeNull();
      expect(res.ok).toBe(true);
      expect(res.errno).toBe(0);
    } else {
      expect(res.ok).toBe(false);
      expect(res.error?.message).toBe(h.get('errstr'));
      expect(res.log).toContain(h.get('errstr'));
      expect(res.errno).toBe(Number(h.get('errno') ?? '13'));
      if (h.has('insn')) expect(res.error?.insn).toBe(Number(h.get('insn')));
    }
  });
});
