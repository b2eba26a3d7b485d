import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ARCHES, archInfo, type ArchName } from './arch.js';
import {
  decodeEntry,
  encodeEntryCall,
  encodeEntryNop,
  ENTRY_CALL,
  ENTRY_NOP,
  EntryDecoder,
  entrySiteInfo,
} from './entry.js';
import { ArchError } from './errors.js';

interface Fixture {
  nops: Record<ArchName, string>;
  calls: { arch: ArchName; func: string; target: string; bytes: string }[];
  invalid: { arch: ArchName; bytes: string }[];
  outOfRange: { arch: ArchName; func: string; target: string; errno: string }[];
}

const fx = JSON.parse(
  readFileSync(new URL('./testdata/entry-sites.json', import.meta.url), 'utf8'),
) as Fixture;
const hexBytes = (s: string): Uint8Array => Uint8Array.from(s.split(' '), (h) => parseInt(h, 16));
const toHex = (b: Uint8Array): string =>
  Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');

describe('entry-site encodings against known bytes', () => {
  it.each(ARCHES)('%s nop', (arch) => {
    expect(toHex(encodeEntryNop(arch))).toBe(fx.nops[arch]);
    const d = decodeEntry(arch, hexBytes(fx.nops[arch]), archInfo(arch).textBase);
    expect(d).toMatchObject({ kind: 'nop' });
  });

  it.each(fx.calls)('$arch call $func -> $target', ({ arch, func, target, bytes }) => {
    const enc = encodeEntryCall(arch, BigInt(func), BigInt(target));
    expect(enc).toBeInstanceOf(Uint8Array);
    expect(toHex(enc as Uint8Array)).toBe(bytes);
    const dec = decodeEntry(arch, hexBytes(bytes), BigInt(func));
    expect(dec).toMatchObject({ kind: 'call', target: BigInt(target) });
  });

  it.each(fx.invalid)('$arch rejects $bytes', ({ arch, bytes }) => {
    const dec = decodeEntry(arch, hexBytes(bytes), 0n);
    expect(dec).toBeInstanceOf(ArchError);
    expect((dec as ArchError).code).toBe('EINVAL');
    expect((dec as ArchError).message).toContain(bytes);
  });

  it.each(fx.outOfRange)('$arch cannot reach $target', ({ arch, func, target, errno }) => {
    const enc = encodeEntryCall(arch, BigInt(func), BigInt(target));
    expect(enc).toBeInstanceOf(ArchError);
    expect((enc as ArchError).code).toBe(errno);
  });

  it('reports a short site', () => {
    const dec = decodeEntry('arm64', new Uint8Array(4), 0n);
    expect((dec as ArchError).code).toBe('EINVAL');
  });
});

describe('entry-site properties', () => {
  it.each(ARCHES)('%s: every reachable call encodes to a valid site that decodes back', (arch) => {
    const info = archInfo(arch);
    const site = entrySiteInfo(arch);
    const align = arch === 'arm64' ? 4 : arch === 'riscv64' ? 2 : 1;
    const decoder = new EntryDecoder(arch);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 24 }),
        fc.integer({ min: -(2 ** 25), max: 2 ** 25 - 1 }),
        (funcOff, rawDisp) => {
          const func = info.textBase + BigInt(funcOff * 16);
          const target = func + BigInt(site.callOffset) + BigInt(rawDisp * align);
          const bytes = encodeEntryCall(arch, func, target);
          if (bytes instanceof ArchError) return false;
          expect(bytes.length).toBe(site.size);
          expect(decoder.decode(bytes, 0)).toBe(ENTRY_CALL);
          expect(func + BigInt(decoder.disp)).toBe(target);
          // The nop must never decode as a call and vice versa.
          expect(decoder.decode(encodeEntryNop(arch), 0)).toBe(ENTRY_NOP);
          return true;
        },
      ),
    );
  });
});
