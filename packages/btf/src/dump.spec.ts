import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseBtf } from './btf.js';
import { dumpBtf } from './dump.js';
import { BtfBuilder } from './write.js';

const BtfErrorRe = /E(INVAL|NOENT)/;
const testdata = join(import.meta.dirname, 'testdata');
const fixtures = ['kinds', 'kinds.pahole'];

function hasTool(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const hasClang = hasTool('clang');
if (!hasClang)
  console.warn('dump.spec: clang is absent; the compile checks of C dumps are skipped');

/** Compile a header with clang -target bpf, using one of its types so it is really parsed. */
function compiles(header: string, use: string): void {
  const dir = mkdtempSync(join(tmpdir(), 'btf-dump-'));
  try {
    writeFileSync(join(dir, 'types.h'), header);
    writeFileSync(join(dir, 'use.c'), `#include "types.h"\n${use}\n`);
    execFileSync(
      'clang',
      ['-target', 'bpf', '-O2', '-Wno-everything', '-c', 'use.c', '-o', 'use.o'],
      { cwd: dir, stdio: 'pipe' },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe.each(fixtures)('dumps of clang-built fixture %s', (name) => {
  const blob = readFileSync(join(testdata, `${name}.btf`));

  it('raw dump equals bpftool btf dump', () => {
    expect(dumpBtf(blob, 'raw')).toBe(readFileSync(join(testdata, `${name}.raw.txt`), 'utf8'));
  });

  it('C dump equals bpftool btf dump format c', () => {
    expect(dumpBtf(blob, 'c')).toBe(readFileSync(join(testdata, `${name}.bpftool.h`), 'utf8'));
  });

  it('JSON dump lists every type with bpftool field names', () => {
    const json = JSON.parse(dumpBtf(blob, 'json')) as {
      types: { id: number; kind: string; name: string }[];
    };
    const btf = parseBtf(blob);
    expect(json.types.length).toBe(btf.typeCount - 1);
    const raw = readFileSync(join(testdata, `${name}.raw.txt`), 'utf8');
    for (const t of json.types) expect(raw).toContain(`[${t.id}] ${t.kind} '${t.name}'`);
  });

  it.skipIf(!hasClang)('C dump compiles with clang -target bpf', () => {
    expect(() =>
      compiles(dumpBtf(blob, 'c'), 'int use(struct task_struct *t) { return t->pid; }'),
    ).not.toThrow();
  });
});

describe('JSON dump', () => {
  it('keeps 64-bit enum values exact', () => {
    const b = new BtfBuilder();
    b.enum64('big', [
      ['MAX', 2n ** 64n - 1n],
      ['ODD', 2n ** 53n + 1n],
    ]);
    const text = dumpBtf(b.build(), 'json');
    expect(text).toContain('"val":18446744073709551615');
    expect(text).toContain('"val":9007199254740993');
    expect(() => JSON.parse(text) as unknown).not.toThrow();
  });
});

describe('big-endian BTF from clang -target bpfeb', () => {
  const le = parseBtf(readFileSync(join(testdata, 'kinds.btf')));
  const be = parseBtf(readFileSync(join(testdata, 'kinds.be.btf')));

  it('parses to the same types as the little-endian build', () => {
    expect(be.littleEndian).toBe(false);
    expect(le.littleEndian).toBe(true);
    expect(be.types()).toEqual(le.types());
  });

  it('dumps exactly as bpftool dumps the little-endian build', () => {
    expect(dumpBtf(be, 'raw')).toBe(readFileSync(join(testdata, 'kinds.raw.txt'), 'utf8'));
    expect(dumpBtf(be, 'c')).toBe(readFileSync(join(testdata, 'kinds.bpftool.h'), 'utf8'));
  });
});

describe('C dump reads the raw records', () => {
  it('of a blob at an unaligned offset in its buffer', () => {
    const blob = readFileSync(join(testdata, 'kinds.btf'));
    const shifted = new Uint8Array(blob.length + 1);
    shifted.set(blob, 1);
    expect(dumpBtf(shifted.subarray(1), 'c')).toBe(
      readFileSync(join(testdata, 'kinds.bpftool.h'), 'utf8'),
    );
  });

  it('and gives up on alignment at the nesting depth alignOfType gives up at', () => {
    // s0 holds s1 by value, ..., s299 holds an int: alignOf(sK) nests 300 - K levels deep.
    const b = new BtfBuilder();
    let inner = b.int('int', 4, { signed: true });
    for (let k = 299; k >= 0; k--) {
      const id = b.reserve();
      // Set as raw types: the builder's own layout would compute (and fail) the alignment.
      const m = { name: 'm', type: inner, bitsOffset: 0, bitfieldSize: 0 };
      b.set(id, { kind: 'struct', name: `s${k}`, size: 4, members: [m] });
      inner = id;
    }
    const btf = b.build();
    expect(() => btf.alignOf(btf.get('s43', 'struct'))).toThrow(/nesting deeper/);
    expect(btf.alignOf(btf.get('s44', 'struct'))).toBe(4);
    // Only s43 has a member of known alignment while its own is unknown (taken as packed).
    const packed = [
      ...dumpBtf(btf, 'c').matchAll(/^struct (\w+) \{[^}]*\} __attribute__\(\(packed\)\)/gm),
    ];
    expect(packed.map((m) => m[1])).toEqual(['s43']);
  });

  it('and fails as Btf.type does on a member type beyond the last id', () => {
    const b = new BtfBuilder();
    const int = b.int('int', 4, { signed: true });
    b.struct('s', [{ name: 'a', type: int }]);
    const blob = b.write();
    const btf = parseBtf(blob);
    // The member's type id is the word after its name offset in the record's member list.
    const at = btf.recordOffset(btf.get('s', 'struct')) + 12 + 4;
    new DataView(blob.buffer, blob.byteOffset).setUint32(at, 99, btf.littleEndian);
    expect(() => dumpBtf(blob, 'c')).toThrow(/ENOENT: type id 99 out of range/);
  });

  it('and fails as Btf.str does on a name beyond the strings, even one the C form omits', () => {
    const b = new BtfBuilder();
    const int = b.int('int', 4, { signed: true });
    b.function('f', int, [{ name: 'x', type: int }]);
    const blob = b.write();
    const btf = parseBtf(blob);
    const at = btf.recordOffset(btf.get('f', 'func'));
    new DataView(blob.buffer, blob.byteOffset).setUint32(at, btf.strLen + 5, btf.littleEndian);
    expect(() => dumpBtf(blob, 'c')).toThrow(/EINVAL: string offset \d+ beyond string section/);
  });
});

describe('C dump of builder-made BTF', () => {
  function tricky() {
    const b = new BtfBuilder();
    const int = b.int('int', 4, { signed: true });
    const ch = b.int('char', 1, { signed: true, char: true });
    const long = b.int('long', 8, { signed: true });
    // Two different structs named `dup` and two enums with the same enumerator.
    b.struct('dup', [{ name: 'a', type: int }]);
    b.struct('dup', [{ name: 'b', type: long }]);
    b.enum('e1', [['SAME', 1]]);
    b.enum('e2', [['SAME', 2]]);
    // A typedef used through a pointer before its struct is defined.
    const node = b.reserve();
    const nodeT = b.typedef('node_t', node);
    b.set(
      node,
      b.layout('struct', 'node', [
        { name: 'next', type: b.ptr(nodeT) },
        { name: 'v', type: int },
      ]),
    );
    // Explicit padding, a packed struct and a function-pointer typedef.
    b.struct(
      'padded',
      [
        { name: 'c', type: ch },
        { name: 'x', type: long, bitsOffset: 128 },
      ],
      24,
    );
    b.struct(
      'packed',
      [
        { name: 'c', type: ch },
        { name: 'x', type: int, bitsOffset: 8 },
      ],
      5,
    );
    b.typedef(
      'handler_t',
      b.ptr(b.funcProto(b.ptr(ch), [int, { name: '', type: b.array(int, 4) }], true)),
    );
    return b.build();
  }

  it('renames clashing names with ___N and declares everything', () => {
    const c = dumpBtf(tricky(), 'c');
    expect(c).toContain('struct dup {\n\tint a;\n};');
    expect(c).toContain('struct dup___2 {\n\tlong b;\n};');
    expect(c).toContain('\tSAME = 1,');
    expect(c).toContain('\tSAME___2 = 2,');
    expect(c).toContain('typedef struct node node_t;');
    expect(c.indexOf('typedef struct node node_t;')).toBeLessThan(c.indexOf('struct node {'));
    expect(c).toContain('struct padded {\n\tchar c;\n\tlong: 64;\n\tlong x;\n};');
    expect(c).toContain('} __attribute__((packed));');
    expect(c).toContain('typedef char * (*handler_t)(int, int [4], ...);');
  });

  it.skipIf(!hasClang)('compiles, with the layout the BTF describes', () => {
    const use = [
      '_Static_assert(sizeof(struct padded) == 24, "padded");',
      '_Static_assert(__builtin_offsetof(struct padded, x) == 16, "padded.x");',
      '_Static_assert(sizeof(struct packed) == 5, "packed");',
      'int use(node_t *n) { return n->v; }',
    ].join('\n');
    expect(() => compiles(dumpBtf(tricky(), 'c'), use)).not.toThrow();
  });

  it('rejects an unknown format with EINVAL', () => {
    expect(() => dumpBtf(tricky(), 'yaml' as 'c')).toThrow(/EINVAL: unknown dump format/);
  });
});

describe('dumps of hostile input', () => {
  it('either dump or raise BtfError on corrupted blobs', async () => {
    const { default: fc } = await import('fast-check');
    const { BtfError } = await import('./error.js');
    const good = new Uint8Array(readFileSync(join(testdata, 'kinds.btf')));
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 6,
        }),
        (edits) => {
          const blob = good.slice();
          for (const [at, v] of edits) blob[at] = v;
          for (const format of ['raw', 'json', 'c'] as const) {
            try {
              dumpBtf(blob, format);
            } catch (e) {
              expect(e).toBeInstanceOf(BtfError);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('fails with ELOOP on a pointer cycle instead of overflowing the stack', () => {
    const b = new BtfBuilder();
    const p = b.reserve();
    b.set(p, { kind: 'ptr', type: p });
    b.typedef('loop_t', p);
    expect(() => dumpBtf(b.build(), 'c')).toThrow(/ELOOP/);
  });
});

describe('split BTF made by pahole --btf_base', () => {
  const base = parseBtf(readFileSync(join(testdata, 'kinds.pahole.btf')));
  const mod = parseBtf(readFileSync(join(testdata, 'module.split.btf')), { base });

  it('continues ids and strings after the base and shares its types', () => {
    expect(mod.startId).toBe(base.typeCount);
    const st = mod.get('mod_state', 'struct');
    expect(st).toBeGreaterThanOrEqual(mod.startId);
    const node = mod.offsetOf('mod_state.node');
    expect(node.type).toBe(base.get('list_head', 'struct'));
    expect(mod.offsetOf('mod_state.node.prev').byteOffset).toBe(8);
    expect(mod.funcs().map((f) => f.name)).toContain('mod_probe');
  });

  it('passes strict validation on top of its base', async () => {
    const { validateBtf } = await import('./validate.js');
    expect(validateBtf(mod)).toEqual([]);
  });

  it('raw dump lists only the module types, as bpftool -B does', () => {
    expect(dumpBtf(mod, 'raw')).toBe(readFileSync(join(testdata, 'module.split.raw.txt'), 'utf8'));
  });

  it('C dump covers base and module, as bpftool -B does', () => {
    expect(dumpBtf(mod, 'c')).toBe(readFileSync(join(testdata, 'module.split.bpftool.h'), 'utf8'));
  });

  it('needs its base: without it the ids and names do not resolve', () => {
    expect(() => dumpBtf(readFileSync(join(testdata, 'module.split.btf')), 'raw')).toThrow(
      BtfErrorRe,
    );
  });
});
