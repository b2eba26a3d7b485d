import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { RELOC_NAMES, parseElf } from './index.js';

const dir = new URL('../testdata/', import.meta.url);
const objects = readdirSync(dir).filter((f) => f.endsWith('.o'));

const TYPES: Record<string, number> = {
  NULL: 0,
  PROGBITS: 1,
  SYMTAB: 2,
  STRTAB: 3,
  RELA: 4,
  NOBITS: 8,
  REL: 9,
  LLVM_ADDRSIG: 0x6fff4c03,
};

interface ReadelfSection {
  index: number;
  name: string;
  type: number;
  offset: number;
  size: number;
  entsize: number;
  link: number;
  info: number;
}

/** Sections and relocations as `llvm-readelf -S -r --wide` prints them. */
function readelf(text: string): {
  sections: ReadelfSection[];
  relocs: Map<string, { offset: number; type: string; symbol: string }[]>;
} {
  const sections: ReadelfSection[] = [];
  const relocs = new Map<string, { offset: number; type: string; symbol: string }[]>();
  let current: { offset: number; type: string; symbol: string }[] | undefined;
  for (const line of text.split('\n')) {
    const s =
      /^\s+\[\s*(\d+)\] (.*?)\s+([A-Z_]+)\s+([0-9a-f]{16}) ([0-9a-f]+) ([0-9a-f]+) ([0-9a-f]+)\s+[A-Za-z]*\s+(\d+)\s+(\d+)\s+\d+$/.exec(
        line,
      );
    if (s) {
      sections.push({
        index: Number(s[1]),
        name: (s[2] as string).trim(),
        type: TYPES[s[3] as string] ?? -1,
        offset: parseInt(s[5] as string, 16),
        size: parseInt(s[6] as string, 16),
        entsize: parseInt(s[7] as string, 16),
        link: Number(s[8]),
        info: Number(s[9]),
      });
      continue;
    }
    const h = /^Relocation section '(.*)' at offset/.exec(line);
    if (h) {
      current = [];
      relocs.set(h[1] as string, current);
      continue;
    }
    const r = /^([0-9a-f]{16})\s+[0-9a-f]{16}\s+(R_BPF_\w+)\s+[0-9a-f]{16}\s+(.*)$/.exec(line);
    if (r && current) {
      current.push({
        offset: parseInt(r[1] as string, 16),
        type: r[2] as string,
        symbol: (r[3] as string).trim(),
      });
    }
  }
  return { sections, relocs };
}

describe.each(objects)('%s matches llvm-readelf', (file) => {
  const bytes = new Uint8Array(readFileSync(new URL(file, dir)));
  const elf = parseElf(bytes);
  const want = readelf(readFileSync(new URL(file.replace(/\.o$/, '.readelf.txt'), dir), 'utf8'));

  it('byte order from the file name', () => {
    expect(elf.littleEndian).toBe(file.includes('.bpfel.'));
  });

  it('sections: names, types, offsets, sizes, links', () => {
    expect(want.sections.length).toBeGreaterThan(5);
    expect(
      elf.sections.map((s) => ({
        index: s.index,
        name: s.name,
        type: s.type,
        offset: s.offset,
        size: s.size,
        entsize: s.entsize,
        link: s.link,
        info: s.info,
      })),
    ).toEqual(want.sections);
  });

  it('relocations: per section, offsets, types and symbols', () => {
    const got = new Map(
      [...elf.relocations.values()].map((r) => [
        r.section.name,
        r.relocs.map((x) => {
          const sym = elf.symbols[x.symbol];
          // readelf names a section symbol after its section.
          const name = sym === undefined ? '' : sym.name || (elf.sections[sym.shndx]?.name ?? '');
          return { offset: x.offset, type: RELOC_NAMES[x.type] ?? '', symbol: name };
        }),
      ]),
    );
    expect(got).toEqual(want.relocs);
  });
});
