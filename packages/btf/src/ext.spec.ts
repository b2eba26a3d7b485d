import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseBtf } from './btf.js';
import { BtfError } from './error.js';
import {
  BPF_CORE_RELO_KIND,
  btfExtStrings,
  coreAccessBitOffset,
  parseBtfExt,
  writeBtfExt,
  type BtfExt,
} from './ext.js';
import { BtfBuilder } from './write.js';

const testdata = join(import.meta.dirname, 'testdata');
const btf = parseBtf(readFileSync(join(testdata, 'kinds.btf')));
const extBlob = readFileSync(join(testdata, 'kinds.btf.ext'));
const source = readFileSync(join(testdata, 'kinds.c'), 'utf8').split('\n');

describe('.BTF.ext of the clang-built fixture', () => {
  const ext = parseBtfExt(extBlob, btf);

  it('func_info points at the FUNC of every function, in instruction order', () => {
    const recs = ext.funcInfo.flatMap((s) => s.records);
    expect(recs.map((r) => btf.typeOf(r.typeId, 'func').name)).toEqual([
      'wake_up_process',
      'prog',
      'sum_pair',
      'core_read',
    ]);
    const offs = recs.map((r) => r.insnOff);
    expect([...offs].sort((a, b) => a - b)).toEqual(offs);
    expect(offs.every((o) => o % 8 === 0)).toBe(true);
  });

  it('line_info carries the source line text of its line number', () => {
    const recs = ext.lineInfo.flatMap((s) => s.records);
    expect(recs.length).toBeGreaterThan(5);
    for (const r of recs) {
      expect(r.fileName).toBe('./kinds.c');
      expect(source[r.lineNum - 1]).toBe(r.line);
      expect(r.lineCol).toBeGreaterThan(0);
    }
  });

  it('CO-RE relocations resolve to the fields the C source names', () => {
    const recs = ext.coreRelo.flatMap((s) => s.records);
    const task = btf.get('task_struct', 'struct');
    const want: [string, number, string][] = [
      ['0:8:3', BPF_CORE_RELO_KIND.FIELD_BYTE_OFFSET, 'fl.d'],
      ['0:2', BPF_CORE_RELO_KIND.FIELD_EXISTS, 'tgid'],
    ];
    expect(recs.map((r) => [r.accessStr, r.kind])).toEqual(want.map(([a, k]) => [a, k]));
    for (const [i, r] of recs.entries()) {
      expect(r.typeId).toBe(task);
      expect(coreAccessBitOffset(btf, r.typeId, r.accessStr)).toBe(
        btf.offsetOf((want[i] as [string, number, string])[2], task).bitsOffset,
      );
    }
  });

  it('writes back byte for byte', () => {
    expect(writeBtfExt(ext, btf)).toEqual(new Uint8Array(extBlob));
  });
});

describe('.BTF.ext round trip through the builder', () => {
  const ident = fc.stringMatching(/^[a-z_./][a-z0-9_./ ]{0,10}$/);
  const rec = <T>(a: fc.Arbitrary<T>) =>
    fc.array(fc.record({ secName: ident, records: fc.array(a, { minLength: 1, maxLength: 4 }) }), {
      maxLength: 3,
    });
  const extArb: fc.Arbitrary<BtfExt> = fc.record({
    funcInfo: rec(fc.record({ insnOff: fc.nat(), typeId: fc.nat() })),
    lineInfo: rec(
      fc.record({
        insnOff: fc.nat(),
        fileName: ident,
        line: fc.string({ maxLength: 20 }).map((s) => s.replace(/\0/g, '')),
        lineNum: fc.integer({ min: 0, max: 2 ** 22 - 1 }),
        lineCol: fc.integer({ min: 0, max: 1023 }),
      }),
    ),
    coreRelo: rec(
      fc.record({
        insnOff: fc.nat(),
        typeId: fc.nat(),
        accessStr: fc.stringMatching(/^\d(:\d){0,3}$/),
        kind: fc.integer({ min: 0, max: 12 }),
      }),
    ),
  });

  it('parse(write(x)) equals x in both byte orders', () => {
    fc.assert(
      fc.property(extArb, fc.boolean(), (ext, littleEndian) => {
        const b = new BtfBuilder();
        b.int('int', 4, { signed: true });
        b.addStrings(...btfExtStrings(ext));
        const owner = b.build({ littleEndian });
        expect(parseBtfExt(writeBtfExt(ext, owner), owner)).toEqual(ext);
      }),
      { numRuns: 200 },
    );
  });

  it('refuses strings the BTF does not hold', () => {
    const owner = new BtfBuilder().build();
    const ext: BtfExt = {
      funcInfo: [{ secName: 'missing', records: [{ insnOff: 0, typeId: 1 }] }],
      lineInfo: [],
      coreRelo: [],
    };
    expect(() => writeBtfExt(ext, owner)).toThrow(/ENOENT: string 'missing'/);
  });
});

describe('hostile .BTF.ext', () => {
  const errorOf = (blob: Uint8Array): BtfError => {
    try {
      parseBtfExt(blob, btf);
    } catch (e) {
      if (e instanceof BtfError) return e;
      throw e;
    }
    throw new Error('expected a BtfError');
  };
  const patched = (at: number, value: number) => {
    const b = new Uint8Array(extBlob);
    new DataView(b.buffer).setUint32(at, value, true);
    return b;
  };
  const hdrLen = new DataView(extBlob.buffer, extBlob.byteOffset).getUint32(4, true);

  it.each([
    ['short blob', new Uint8Array(10), 0, 'shorter than its header'],
    ['func_info beyond the end', patched(12, 1 << 20), 8, 'out of bounds'],
    ['record size too small', patched(hdrLen, 4), hdrLen, 'record size 4'],
    ['zero records', patched(hdrLen + 8, 0), hdrLen + 4, 'has no records'],
    ['huge record count', patched(hdrLen + 8, 0x7fffffff), hdrLen + 8, 'beyond the end'],
    [
      'bad section name offset',
      patched(hdrLen + 4, 0xffffff),
      hdrLen + 4,
      'outside the BTF string section',
    ],
  ] as const)('%s', (_l, blob, offset, text) => {
    const e = errorOf(blob);
    expect(e.offset).toBe(offset);
    expect(e.message).toContain(text);
  });

  it('only ever raises BtfError on corrupted input', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(extBlob.length - 1), fc.integer({ min: 0, max: 255 })), {
          maxLength: 6,
        }),
        (edits) => {
          const b = new Uint8Array(extBlob);
          for (const [at, v] of edits) b[at] = v;
          try {
            parseBtfExt(b, btf);
          } catch (e) {
            expect(e).toBeInstanceOf(BtfError);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
