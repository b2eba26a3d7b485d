import { describe, expect, it } from 'vitest';
import { parseBtf } from './btf.js';
import type { BtfType } from './types.js';
import { checkBtf, validateBtf } from './validate.js';
import { writeBtf } from './write.js';

/** A valid base: ids 1..8. Each case below replaces or appends types. */
function baseTypes(): BtfType[] {
  return [
    { kind: 'int', name: 'int', size: 4, encoding: 1, bitsOffset: 0, bits: 32 }, // 1
    { kind: 'ptr', type: 1 }, // 2
    {
      kind: 'struct',
      name: 's',
      size: 16,
      members: [
        { name: 'a', type: 1, bitsOffset: 0, bitfieldSize: 0 },
        { name: 'f', type: 1, bitsOffset: 32, bitfieldSize: 3 },
        { name: 'p', type: 2, bitsOffset: 64, bitfieldSize: 0 },
      ],
    }, // 3
    { kind: 'func_proto', returnType: 1, params: [{ name: 'x', type: 2 }] }, // 4
    { kind: 'func', name: 'f', type: 4, linkage: 1 }, // 5
    { kind: 'array', type: 1, indexType: 1, nelems: 4 }, // 6
    { kind: 'var', name: 'v', type: 6, linkage: 1 }, // 7
    { kind: 'datasec', name: '.data', size: 16, vars: [{ type: 7, offset: 0, size: 16 }] }, // 8
  ];
}

function withChange(id: number, t: BtfType): BtfType[] {
  const types = baseTypes();
  types[id - 1] = t;
  return types;
}

describe('validateBtf', () => {
  it('accepts the valid base', () => {
    expect(validateBtf(parseBtf(writeBtf(baseTypes())))).toEqual([]);
  });

  it.each([
    [
      'int size 3',
      withChange(1, { kind: 'int', name: 'int', size: 3, encoding: 1, bitsOffset: 0, bits: 24 }),
      1,
      'Unsupported size',
    ],
    [
      'int two encodings',
      withChange(1, { kind: 'int', name: 'int', size: 4, encoding: 3, bitsOffset: 0, bits: 32 }),
      1,
      'Unsupported encoding',
    ],
    [
      'int bits beyond size',
      withChange(1, { kind: 'int', name: 'int', size: 4, encoding: 0, bitsOffset: 8, bits: 32 }),
      1,
      'nr_bits exceeds type_size',
    ],
    ['ptr to missing id', withChange(2, { kind: 'ptr', type: 99 }), 2, 'Invalid type_id 99'],
    [
      'member past struct end',
      withChange(3, {
        kind: 'struct',
        name: 's',
        size: 4,
        members: [{ name: 'a', type: 1, bitsOffset: 32, bitfieldSize: 0 }],
      }),
      3,
      'Member exceeds struct_size',
    ],
    [
      'member not byte aligned',
      withChange(3, {
        kind: 'struct',
        name: 's',
        size: 8,
        members: [{ name: 'a', type: 1, bitsOffset: 3, bitfieldSize: 0 }],
      }),
      3,
      'Member is not byte aligned',
    ],
    [
      'members out of order',
      withChange(3, {
        kind: 'struct',
        name: 's',
        size: 8,
        members: [
          { name: 'a', type: 1, bitsOffset: 32, bitfieldSize: 0 },
          { name: 'b', type: 1, bitsOffset: 0, bitfieldSize: 0 },
        ],
      }),
      3,
      'out of order',
    ],
    [
      'bitfield wider than its int',
      withChange(3, {
        kind: 'struct',
        name: 's',
        size: 8,
        members: [{ name: 'a', type: 1, bitsOffset: 0, bitfieldSize: 33 }],
      }),
      3,
      'Invalid member bitfield_size',
    ],
    [
      'bitfield on a pointer',
      withChange(3, {
        kind: 'struct',
        name: 's',
        size: 8,
        members: [{ name: 'a', type: 2, bitsOffset: 0, bitfieldSize: 3 }],
      }),
      3,
      'not an int or enum',
    ],
    [
      'union member with offset',
      withChange(3, {
        kind: 'union',
        name: 'u',
        size: 8,
        members: [{ name: 'a', type: 1, bitsOffset: 32, bitfieldSize: 0 }],
      }),
      3,
      'Invalid member bits_offset',
    ],
    [
      'bad member name',
      withChange(3, {
        kind: 'struct',
        name: 's',
        size: 8,
        members: [{ name: '9x', type: 1, bitsOffset: 0, bitfieldSize: 0 }],
      }),
      3,
      'Invalid member name',
    ],
    [
      'extern func linkage',
      withChange(5, { kind: 'func', name: 'f', type: 4, linkage: 2 }),
      5,
      'Invalid func linkage 2',
    ],
    [
      'func name not an identifier',
      withChange(5, { kind: 'func', name: 'a-b', type: 4, linkage: 1 }),
      5,
      'Invalid name',
    ],
    [
      'func pointing at an int',
      withChange(5, { kind: 'func', name: 'f', type: 1, linkage: 1 }),
      5,
      'FUNC points at int',
    ],
    [
      'varargs not last',
      withChange(4, {
        kind: 'func_proto',
        returnType: 1,
        params: [
          { name: '', type: 0 },
          { name: 'x', type: 1 },
        ],
      }),
      4,
      'Invalid arg#1',
    ],
    [
      'array index not an int',
      withChange(6, { kind: 'array', type: 1, indexType: 2, nelems: 4 }),
      6,
      'Invalid index',
    ],
    [
      'array of void',
      withChange(6, { kind: 'array', type: 0, indexType: 1, nelems: 4 }),
      6,
      'Invalid elem',
    ],
    [
      'array size overflow',
      withChange(6, { kind: 'array', type: 1, indexType: 1, nelems: 0x40000000 }),
      6,
      'Array size overflows U32_MAX',
    ],
    [
      'var linkage',
      withChange(7, { kind: 'var', name: 'v', type: 6, linkage: 3 }),
      7,
      'Linkage 3 not supported',
    ],
    [
      'datasec var overflow',
      withChange(8, {
        kind: 'datasec',
        name: '.data',
        size: 8,
        vars: [{ type: 7, offset: 0, size: 16 }],
      }),
      8,
      'Invalid offset+size',
    ],
    [
      'datasec of a non-var',
      withChange(8, {
        kind: 'datasec',
        name: '.data',
        size: 16,
        vars: [{ type: 1, offset: 0, size: 4 }],
      }),
      8,
      'Not a VAR kind member',
    ],
    [
      'enum size 3',
      [...baseTypes(), { kind: 'enum', name: 'e', size: 3, signed: false, values: [] }],
      9,
      'Unexpected size 3',
    ],
    [
      'float size 5',
      [...baseTypes(), { kind: 'float', name: 'float', size: 5 }],
      9,
      'Invalid type_size 5',
    ],
    [
      'empty type tag',
      [...baseTypes(), { kind: 'type_tag', name: '', type: 1 }],
      9,
      'Invalid name',
    ],
    [
      'decl_tag component out of range',
      [...baseTypes(), { kind: 'decl_tag', name: 'tag', type: 3, componentIdx: 3 }],
      9,
      'Invalid component_idx 3',
    ],
    [
      'typedef loop',
      [...baseTypes(), { kind: 'typedef', name: 'a', type: 10 }, { kind: 'const', type: 9 }],
      9,
      'Loop detected',
    ],
    [
      'struct containing itself',
      [
        ...baseTypes(),
        {
          kind: 'struct',
          name: 'self',
          size: 8,
          members: [{ name: 'me', type: 9, bitsOffset: 0, bitfieldSize: 0 }],
        },
      ],
      9,
      'Loop detected',
    ],
  ] as const)('%s: type id %d', (_label, types, typeId, text) => {
    const btf = parseBtf(writeBtf(types as BtfType[]));
    const errs = validateBtf(btf);
    expect(errs.length).toBeGreaterThan(0);
    const e = errs[0];
    expect(e?.typeId).toBe(typeId);
    expect(e?.offset).toBe(btf.recordOffset(typeId));
    expect(e?.message).toContain(text);
    expect(() => checkBtf(btf)).toThrow(text);
  });

  it('rejects nesting deeper than MAX_RESOLVE_DEPTH', () => {
    const types = baseTypes();
    for (let i = 0; i < 40; i++) {
      const inner = i === 0 ? 1 : types.length;
      types.push({
        kind: 'struct',
        name: `n${i}`,
        size: 4,
        members: [{ name: 'x', type: inner, bitsOffset: 0, bitfieldSize: 0 }],
      });
    }
    const errs = validateBtf(parseBtf(writeBtf(types)));
    // Inner types first: each resolves one level at a time, which the kernel accepts.
    expect(errs).toEqual([]);
    // Resolving from the outermost type first goes 40 levels deep.
    const outerFirst: BtfType[] = [baseTypes()[0] as BtfType];
    for (let i = 0; i < 40; i++) {
      outerFirst.push({
        kind: 'struct',
        name: `n${i}`,
        size: 4,
        members: [{ name: 'x', type: i + 3, bitsOffset: 0, bitfieldSize: 0 }],
      });
    }
    outerFirst.push({ kind: 'int', name: 'leaf', size: 4, encoding: 0, bitsOffset: 0, bits: 32 });
    const deep = validateBtf(parseBtf(writeBtf(outerFirst)));
    expect(deep[0]?.code).toBe('E2BIG');
    expect(deep[0]?.typeId).toBe(2);
  });

  it.each([
    ['version', 2, 2, 'Unsupported version'],
    ['flags', 3, 1, 'Unsupported flags'],
  ] as const)('header %s', (_l, at, value, text) => {
    const blob = writeBtf(baseTypes());
    blob[at] = value;
    const errs = validateBtf(parseBtf(blob));
    expect(errs[0]?.message).toContain(text);
    expect(errs[0]?.offset).toBe(at);
  });

  it('rejects a gap between sections and a string section without NUL', () => {
    const blob = writeBtf(baseTypes());
    const dv = new DataView(blob.buffer);
    const strOff = dv.getUint32(16, true);
    const strLen = dv.getUint32(20, true);
    dv.setUint32(16, strOff + 1, true);
    dv.setUint32(20, strLen - 1, true);
    expect(validateBtf(parseBtf(blob))[0]?.message).toContain('gap before string section');
    const blob2 = writeBtf(baseTypes());
    blob2[blob2.length - 1] = 0x41;
    expect(validateBtf(parseBtf(blob2))[0]?.message).toContain('not NUL-terminated');
  });
});

describe('validateBtf on hostile input', () => {
  it('reports errors (never throws, never hangs) on randomly corrupted blobs', async () => {
    const { default: fc } = await import('fast-check');
    const { readFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const good = new Uint8Array(readFileSync(join(import.meta.dirname, 'testdata', 'kinds.btf')));
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 6,
        }),
        (edits) => {
          const blob = good.slice();
          for (const [at, v] of edits) blob[at] = v;
          let btf;
          try {
            btf = parseBtf(blob);
          } catch {
            return;
          }
          const errs = validateBtf(btf);
          for (const e of errs) expect(e.typeId !== undefined || e.offset !== undefined).toBe(true);
        },
      ),
      { numRuns: 400 },
    );
  });
});

describe('validateBtf on compiler output', () => {
  it('accepts pahole-made BTF as the kernel does', async () => {
    const { readFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const btf = parseBtf(readFileSync(join(import.meta.dirname, 'testdata', 'kinds.pahole.btf')));
    expect(validateBtf(btf)).toEqual([]);
  });

  it('rejects clang object BTF only for the DATASEC sizes libbpf fills in at load time', async () => {
    const { readFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const btf = parseBtf(readFileSync(join(import.meta.dirname, 'testdata', 'kinds.btf')));
    const errs = validateBtf(btf);
    expect(errs.length).toBeGreaterThan(0);
    for (const e of errs) {
      expect(btf.type(e.typeId as number)?.kind).toBe('datasec');
      expect(e.message).toMatch(/size == 0|Invalid offset\+size/);
    }
  });
});

describe('validateBtf on split BTF', () => {
  it('accepts a module whose types use the base, and names bad module ids', async () => {
    const { BtfBuilder } = await import('./write.js');
    const b = new BtfBuilder();
    const int = b.int('int', 4, { signed: true });
    const base = b.build();
    const m = new BtfBuilder({ base });
    const s = m.struct('mod_state', [{ name: 'n', type: int }]);
    m.function('mod_init', int, [{ name: 'st', type: m.ptr(s) }]);
    const mod = parseBtf(m.write(), { base });
    expect(validateBtf(mod)).toEqual([]);

    const bad = new BtfBuilder({ base });
    bad.add({ kind: 'ptr', type: 40 });
    const errs = validateBtf(parseBtf(bad.write(), { base }));
    expect(errs[0]?.typeId).toBe(base.typeCount);
    expect(errs[0]?.message).toContain('Invalid type_id 40');
  });
});
