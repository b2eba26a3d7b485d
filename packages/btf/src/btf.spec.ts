import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Btf, parseBtf } from './btf.js';
import { BtfError } from './error.js';
import { BTF_INT_SIGNED, type BtfType } from './types.js';
import { BtfBuilder, writeBtf } from './write.js';

const ident = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,12}$/);
const maybeName = fc.oneof(fc.constant(''), ident);
const u32 = fc.integer({ min: 0, max: 0xffffffff });

/** Any type of any kind; references stay below `n` so they are ids of the same blob. */
function typeArb(n: number): fc.Arbitrary<BtfType> {
  const ref = fc.integer({ min: 0, max: n });
  return fc.oneof(
    fc.record({
      kind: fc.constant('int' as const),
      name: ident,
      size: fc.constantFrom(1, 2, 4, 8, 16),
      encoding: fc.integer({ min: 0, max: 15 }),
      bitsOffset: fc.integer({ min: 0, max: 255 }),
      bits: fc.integer({ min: 0, max: 255 }),
    }),
    fc.record({ kind: fc.constant('ptr' as const), type: ref }),
    fc.record({ kind: fc.constant('array' as const), type: ref, indexType: ref, nelems: u32 }),
    fc.boolean().chain((bitfields) =>
      fc.record({
        kind: fc.constantFrom('struct' as const, 'union' as const),
        name: maybeName,
        size: u32,
        members: fc.array(
          fc.record({
            name: maybeName,
            type: ref,
            bitsOffset: bitfields ? fc.integer({ min: 0, max: 0xffffff }) : u32,
            bitfieldSize: bitfields ? fc.integer({ min: 0, max: 255 }) : fc.constant(0),
          }),
          { maxLength: 6 },
        ),
      }),
    ),
    fc.boolean().chain((signed) =>
      fc.record({
        kind: fc.constant('enum' as const),
        name: maybeName,
        size: fc.constantFrom(1, 2, 4, 8),
        signed: fc.constant(signed),
        values: fc.array(
          fc.record({
            name: ident,
            value: signed ? fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }) : u32,
          }),
          { maxLength: 5 },
        ),
      }),
    ),
    fc.boolean().chain((signed) =>
      fc.record({
        kind: fc.constant('enum64' as const),
        name: maybeName,
        size: fc.constantFrom(1, 2, 4, 8),
        signed: fc.constant(signed),
        values: fc.array(
          fc.record({
            name: ident,
            value: signed
              ? fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n })
              : fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
          }),
          { maxLength: 5 },
        ),
      }),
    ),
    fc.record({ kind: fc.constant('fwd' as const), name: ident, union: fc.boolean() }),
    fc.record({ kind: fc.constant('typedef' as const), name: ident, type: ref }),
    fc.record({
      kind: fc.constantFrom('volatile' as const, 'const' as const, 'restrict' as const),
      type: ref,
    }),
    fc.record({ kind: fc.constant('type_tag' as const), name: ident, type: ref }),
    fc.record({
      kind: fc.constant('func' as const),
      name: ident,
      type: ref,
      linkage: fc.integer({ min: 0, max: 2 }),
    }),
    fc.record({
      kind: fc.constant('func_proto' as const),
      returnType: ref,
      params: fc.array(fc.record({ name: maybeName, type: ref }), { maxLength: 14 }),
    }),
    fc.record({
      kind: fc.constant('var' as const),
      name: ident,
      type: ref,
      linkage: fc.integer({ min: 0, max: 2 }),
    }),
    fc.record({
      kind: fc.constant('datasec' as const),
      name: ident,
      size: u32,
      vars: fc.array(fc.record({ type: ref, offset: u32, size: u32 }), { maxLength: 4 }),
    }),
    fc.record({
      kind: fc.constant('float' as const),
      name: ident,
      size: fc.constantFrom(2, 4, 8, 12, 16),
    }),
    fc.record({
      kind: fc.constant('decl_tag' as const),
      name: ident,
      type: ref,
      componentIdx: fc.integer({ min: -1, max: 100 }),
    }),
  );
}

const typesArb = fc
  .integer({ min: 0, max: 30 })
  .chain((n) => fc.array(typeArb(n), { minLength: n, maxLength: n }));

describe('parse(write(x)) round trip', () => {
  it('gives back every type of every kind, in both byte orders', () => {
    fc.assert(
      fc.property(typesArb, fc.boolean(), (types, littleEndian) => {
        const btf = parseBtf(writeBtf(types, { littleEndian }));
        expect(btf.littleEndian).toBe(littleEndian);
        expect(btf.typeCount).toBe(types.length + 1);
        expect(btf.types().slice(1)).toEqual(types);
      }),
      { numRuns: 300 },
    );
  });

  it('is byte-identical when written again', () => {
    fc.assert(
      fc.property(typesArb, (types) => {
        const blob = writeBtf(types);
        const again = writeBtf(parseBtf(blob).types().slice(1) as BtfType[]);
        expect(again).toEqual(blob);
      }),
      { numRuns: 100 },
    );
  });

  it('round-trips split BTF on top of a base', () => {
    fc.assert(
      fc.property(typesArb, typesArb, (baseTypes, modTypes) => {
        const base = parseBtf(writeBtf(baseTypes));
        const shifted = modTypes.map((t) => t);
        const mod = parseBtf(writeBtf(shifted, { base }), { base });
        expect(mod.startId).toBe(baseTypes.length + 1);
        expect(mod.typeCount).toBe(baseTypes.length + modTypes.length + 1);
        const all = mod.types().slice(1);
        expect(all).toEqual([...baseTypes, ...modTypes]);
      }),
      { numRuns: 100 },
    );
  });
});

describe('split BTF', () => {
  it('resolves names and types across base and module', () => {
    const b = new BtfBuilder();
    const int = b.int('int', 4, { signed: true });
    const base = b.build();
    const m = new BtfBuilder({ base });
    const s = m.struct('mod_state', [{ name: 'count', type: int }]);
    m.function('mod_fn', int, [{ name: 'st', type: m.ptr(s) }]);
    const mod = parseBtf(m.write(), { base });
    expect(mod.find('int', 'int')).toBe(int);
    expect(mod.find('mod_state', 'struct')).toBe(s);
    expect(mod.offsetOf('mod_state.count').type).toBe(int);
    expect(mod.funcs().map((f) => f.name)).toEqual(['mod_fn']);
    // Local string section does not repeat the base's leading empty string.
    expect(mod.header.strLen).toBe(
      new TextEncoder().encode('mod_state\0count\0mod_fn\0st\0').length,
    );
  });
});

function errorOf(fn: () => unknown): BtfError {
  try {
    fn();
  } catch (e) {
    if (e instanceof BtfError) return e;
    throw e;
  }
  throw new Error('expected a BtfError');
}

describe('hostile input', () => {
  const good = (() => {
    const b = new BtfBuilder();
    const i = b.int('int', 4, { signed: true });
    b.struct('s', [
      { name: 'a', type: i },
      { name: 'b', type: b.ptr(i) },
    ]);
    return b.write();
  })();

  it.each([
    ['empty blob', new Uint8Array(0), 'EINVAL', 0],
    ['bad magic', Uint8Array.from([1, 2, 3, 4, ...new Array<number>(20).fill(0)]), 'EINVAL', 0],
    ['truncated type section', good.subarray(0, 30), 'EINVAL', 8],
  ] as const)('%s', (_label, blob, errno, offset) => {
    const e = errorOf(() => parseBtf(blob));
    expect(e.code).toBe(errno);
    expect(e.offset).toBe(offset);
  });

  it('names the type id and offset of a record cut short', () => {
    const blob = good.slice();
    const dv = new DataView(blob.buffer);
    // Claim 5 members for the struct (type id 3, third record).
    const structOff = 24 + 16 + 12;
    dv.setUint32(structOff + 4, (4 << 24) | 5, true);
    const e = errorOf(() => parseBtf(blob));
    expect(e.code).toBe('EINVAL');
    expect(e.typeId).toBe(3);
    expect(e.offset).toBe(structOff);
  });

  it('rejects an unknown kind with its id', () => {
    const blob = good.slice();
    new DataView(blob.buffer).setUint32(24 + 4, 25 << 24, true);
    const e = errorOf(() => parseBtf(blob));
    expect(e.typeId).toBe(1);
    expect(e.message).toContain('invalid kind 25');
  });

  it('never hangs or throws anything but BtfError on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (tail, keepHeader) => {
        const blob = keepHeader ? Uint8Array.from([...good.subarray(0, 24), ...tail]) : tail;
        try {
          const btf = parseBtf(blob);
          btf.types();
          btf.funcs();
        } catch (e) {
          expect(e).toBeInstanceOf(BtfError);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('survives random corruption of a valid blob', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })), {
          maxLength: 8,
        }),
        (edits) => {
          const blob = good.slice();
          for (const [at, v] of edits) blob[at] = v;
          try {
            const btf = parseBtf(blob);
            btf.types();
          } catch (e) {
            expect(e).toBeInstanceOf(BtfError);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('type access', () => {
  it('reports ENOENT for ids out of range', () => {
    const btf = new BtfBuilder().build();
    expect(errorOf(() => btf.type(5)).code).toBe('ENOENT');
    expect(btf.type(0)).toBeUndefined();
  });

  it('decodes signed enum values and int encodings', () => {
    const b = new BtfBuilder();
    b.enum('e', [
      ['NEG', -1],
      ['POS', 7],
    ]);
    b.int('long', 8, { signed: true });
    const btf: Btf = b.build();
    expect(btf.typeOf(1, 'enum')).toMatchObject({
      signed: true,
      values: [{ value: -1 }, { value: 7 }],
    });
    expect(btf.typeOf(2, 'int').encoding).toBe(BTF_INT_SIGNED);
  });
});
