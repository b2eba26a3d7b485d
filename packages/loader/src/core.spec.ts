import { readFileSync } from 'node:fs';
import { BtfBuilder, parseBtf } from '@tracelab/btf';
import { BPF_CALL, BPF_JMP, type Insn } from '@tracelab/vm';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BPF_CORE,
  BpfObject,
  POISON_HELPER_ID,
  calcCoreRelo,
  essentialName,
  linkObject,
  parseObject,
  patchCoreInsn,
} from './index.js';

const fixture = (name: string): Uint8Array =>
  new Uint8Array(readFileSync(new URL(`../testdata/${name}`, import.meta.url)));

const target = parseObject(fixture('target.bpfel.o')).btf;
if (target === undefined) throw new Error('target.bpfel.o has no BTF');

/**
 * What each relocation of core.c must resolve to against target.c. Layout of target's
 * struct sample (x86-64 ABI): c@0 (8), pad[3]@8, a@20, name[16]@24, b@40 (short),
 * flag:3 at bit 336, level:7 at bit 339 (int storage at byte 40), size 48.
 * enum sample_state: SAMPLE_BUSY = 9. No pt_regs, no typedef sample_id_t, no field 'gone'.
 */
const EXPECT: { kind: string; access: string; type: string; newVal: number; poison: boolean }[] = [
  { kind: 'byte_off', access: '0:13', type: 'pt_regs', newVal: 0, poison: true },
  { kind: 'byte_off', access: '0:14', type: 'pt_regs', newVal: 0, poison: true },
  { kind: 'field_exists', access: '0:1', type: 'sample', newVal: 1, poison: false },
  { kind: 'byte_sz', access: '0:4', type: 'sample', newVal: 8, poison: false },
  { kind: 'byte_off', access: '0:5', type: 'sample', newVal: 24, poison: false },
  { kind: 'signed', access: '0:3', type: 'sample', newVal: 1, poison: false },
  { kind: 'byte_off', access: '0:3', type: 'sample', newVal: 40, poison: false },
  { kind: 'byte_sz', access: '0:3', type: 'sample', newVal: 4, poison: false },
  {
    kind: 'lshift_u64',
    access: '0:3',
    type: 'sample',
    newVal: 64 - (339 + 7 - 320),
    poison: false,
  },
  // Two right shifts: clang emits the signed and the unsigned one behind a FIELD_SIGNED test.
  { kind: 'rshift_u64', access: '0:3', type: 'sample', newVal: 64 - 7, poison: false },
  { kind: 'rshift_u64', access: '0:3', type: 'sample', newVal: 64 - 7, poison: false },
  { kind: 'local_type_id', access: '0', type: 'sample', newVal: -1, poison: false },
  { kind: 'target_type_id', access: '0', type: 'sample', newVal: -2, poison: false },
  { kind: 'enumval_exists', access: '2', type: 'sample_state', newVal: 1, poison: false },
  { kind: 'enumval_value', access: '1', type: 'sample_state', newVal: 9, poison: false },
  { kind: 'field_exists', access: '0:1', type: 'sample___old', newVal: 0, poison: false },
  { kind: 'type_exists', access: '0', type: 'sample', newVal: 1, poison: false },
  { kind: 'type_size', access: '0', type: 'sample', newVal: 48, poison: false },
  { kind: 'type_exists', access: '0', type: 'sample_id_t', newVal: 0, poison: false },
  { kind: 'byte_off', access: '0:0', type: 'sample', newVal: 20, poison: false },
  { kind: 'byte_off', access: '0:1', type: 'sample___old', newVal: 0, poison: true },
];

describe('CO-RE against target.c', () => {
  const obj = parseObject(fixture('core.bpfel.o'));
  const linked = linkObject(obj, {
    targetBtf: target,
    kconfig: { LINUX_KERNEL_VERSION: 1, CONFIG_BPF_SYSCALL: true },
    ksym: () => 0n,
  });
  const localSample = obj.btf?.find('sample', 'struct');
  const targetSample = target.find('sample', 'struct');
  const got = linked.coreRelos.map((r) => ({
    kind: r.kindName,
    access: r.accessStr,
    type: obj.btf?.name(r.typeId) ?? '',
    newVal: r.newVal,
    poison: r.poison,
  }));
  const want = EXPECT.map((e) => ({
    ...e,
    newVal: e.newVal === -1 ? localSample : e.newVal === -2 ? targetSample : e.newVal,
  }));
  it.each(want.map((w, k) => [k, w] as const))('relocation #%i', (k, w) => {
    expect(got[k]).toEqual(w);
  });
  it('covers every relocation clang emitted', () => {
    expect(got.length).toBe(want.length);
  });

  it('poisons both slots of the failed instructions', () => {
    const prog = linked.programs[0];
    for (const r of linked.coreRelos.filter((x) => x.poison)) {
      const i = prog?.insns[r.insnIdx];
      expect(i?.code).toBe(BPF_JMP | BPF_CALL);
      expect(i?.imm).toBe(POISON_HELPER_ID);
    }
  });

  it('patches the field offset into the load that reads it', () => {
    const r = linked.coreRelos.find((x) => x.kindName === 'byte_off' && x.accessStr === '0:0');
    const prog = linked.programs[0];
    expect(r).toBeDefined();
    // BPF_CORE_READ(s, a) passes &s->a to probe_read: the relocated ALU immediate is 20.
    expect(prog?.insns[r?.insnIdx ?? 0]?.imm).toBe(20);
  });
});

/** Offsets pahole prints for `pahole -C STRUCT` members: `type name; /* offset size *\/`. */
function paholeOffsets(text: string, struct: string): Map<string, number> {
  const out = new Map<string, number>();
  const start = text.indexOf(`struct ${struct} {`);
  const end = text.indexOf('\n};', start);
  for (const line of text.slice(start, end).split('\n')) {
    const m = /\s\**([A-Za-z_]\w*)(\[\d+\])*;\s+\/\*\s+(\d+)\s+(\d+)\s+\*\//.exec(line);
    if (m && !out.has(m[1] as string)) out.set(m[1] as string, Number(m[3]));
  }
  return out;
}

describe('CO-RE against vmlinux (BTFgen subset) agrees with pahole', () => {
  const pahole = readFileSync(new URL('../testdata/vmlinux.pahole.txt', import.meta.url), 'utf8');
  const vmlinux = parseBtf(fixture('vmlinux-min.btf')).index();

  it.each([
    ['ringbuf.bpfel.o', 'task_struct', ['tgid', 'real_parent', 'comm']],
    ['ringbuf.bpfeb.o', 'task_struct', ['tgid', 'real_parent', 'comm']],
    ['counts.bpfel.o', 'pt_regs', ['ip']],
  ] as const)('%s: %s', (file, struct, fields) => {
    const obj = parseObject(fixture(file));
    const local = obj.btf;
    if (local === undefined) throw new Error(`${file} has no BTF`);
    const { coreRelos } = linkObject(obj, { targetBtf: vmlinux });
    const offsets = paholeOffsets(pahole, struct);
    for (const field of fields) {
      const r = coreRelos.find((x) => {
        if (x.kindName !== 'byte_off' || local.name(x.typeId) !== (struct as string)) return false;
        const comp = local.type(x.typeId);
        const idx = Number(x.accessStr.split(':')[1]);
        return comp?.kind === 'struct' && comp.members[idx]?.name === field;
      });
      expect(r, `${struct}.${field}`).toBeDefined();
      expect(r?.poison).toBe(false);
      expect(r?.newVal).toBe(offsets.get(field));
    }
  });
});

describe('CO-RE rules on hand-built BTF', () => {
  // Local: struct foo { int x; long y; } and a flavor foo___v2 { int z; }.
  const local = new BtfBuilder();
  const int = local.int('int', 4, { signed: true });
  const long = local.int('long', 8, { signed: true });
  const foo = local.struct(
    'foo',
    [
      { name: 'x', type: int, bitsOffset: 0 },
      { name: 'y', type: long, bitsOffset: 64 },
    ],
    16,
  );
  local.struct('foo___v2', [{ name: 'z', type: int, bitsOffset: 0 }], 4);
  const localBtf = local.build().index();

  const relo = (kind: number, accessStr: string, typeId = foo) => ({
    insnOff: 0,
    typeId,
    accessStr,
    kind,
  });

  it('finds flavored candidates by essential name', () => {
    expect(essentialName('foo___v2')).toBe('foo');
    expect(essentialName('foo')).toBe('foo');
    expect(essentialName('___x')).toBe('___x');
    const t = new BtfBuilder();
    const i = t.int('int', 4, { signed: true });
    const l = t.int('long', 8, { signed: true });
    t.struct(
      'foo___new',
      [
        { name: 'pad', type: l, bitsOffset: 0 },
        { name: 'x', type: i, bitsOffset: 64 },
        { name: 'y', type: l, bitsOffset: 128 },
      ],
      24,
    );
    const tb = t.build().index();
    expect(calcCoreRelo(localBtf, tb, relo(BPF_CORE.FIELD_BYTE_OFFSET, '0:1')).newVal).toBe(16);
    expect(calcCoreRelo(localBtf, tb, relo(BPF_CORE.TYPE_SIZE, '0')).newVal).toBe(24);
  });

  it('rejects ambiguous candidates', () => {
    const t = new BtfBuilder();
    const i = t.int('int', 4, { signed: true });
    t.struct('foo', [{ name: 'x', type: i, bitsOffset: 0 }], 8);
    t.struct('foo___b', [{ name: 'x', type: i, bitsOffset: 32 }], 8);
    const tb = t.build().index();
    expect(() => calcCoreRelo(localBtf, tb, relo(BPF_CORE.FIELD_BYTE_OFFSET, '0:0'))).toThrow(
      /ambiguity/,
    );
  });

  it('skips candidates whose field types are incompatible', () => {
    const t = new BtfBuilder();
    const i = t.int('int', 4, { signed: true });
    const p = t.ptr(i);
    t.struct(
      'foo',
      [
        { name: 'x', type: p, bitsOffset: 0 },
        { name: 'y', type: i, bitsOffset: 64 },
      ],
      16,
    );
    const tb = t.build().index();
    const r = calcCoreRelo(localBtf, tb, relo(BPF_CORE.FIELD_BYTE_OFFSET, '0:0'));
    expect(r.poison).toBe(true);
    expect(calcCoreRelo(localBtf, tb, relo(BPF_CORE.FIELD_EXISTS, '0:0')).newVal).toBe(0);
    expect(calcCoreRelo(localBtf, tb, relo(BPF_CORE.FIELD_BYTE_OFFSET, '0:1')).newVal).toBe(8);
  });

  it('matches types strictly for TYPE_MATCHES', () => {
    const same = new BtfBuilder();
    const i = same.int('int', 4, { signed: true });
    const l = same.int('long', 8, { signed: true });
    same.struct(
      'foo',
      [
        { name: 'y', type: l, bitsOffset: 0 },
        { name: 'x', type: i, bitsOffset: 64 },
      ],
      16,
    );
    const other = new BtfBuilder();
    const oi = other.int('int', 4, { signed: true });
    other.struct(
      'foo',
      [
        { name: 'x', type: oi, bitsOffset: 0 },
        { name: 'y', type: oi, bitsOffset: 32 },
      ],
      8,
    );
    const m = (b: BtfBuilder) =>
      calcCoreRelo(localBtf, b.build().index(), relo(BPF_CORE.TYPE_MATCHES, '0')).newVal;
    expect(m(same)).toBe(1);
    expect(m(other)).toBe(0);
  });

  it('rejects malformed access strings and anonymous roots', () => {
    const tb = new BtfBuilder().build().index();
    expect(() => calcCoreRelo(localBtf, tb, relo(BPF_CORE.FIELD_BYTE_OFFSET, '0:x'))).toThrow(
      /malformed access string/,
    );
    expect(() => calcCoreRelo(localBtf, tb, relo(BPF_CORE.FIELD_BYTE_OFFSET, '0:7'))).toThrow(
      /out of range/,
    );
    expect(() => calcCoreRelo(localBtf, tb, relo(BPF_CORE.TYPE_SIZE, '0', 999))).toThrow(
      /missing local type/,
    );
  });

  it('follows array indexes in access strings and checks their bounds', () => {
    const lb = new BtfBuilder();
    const li = lb.int('int', 4, { signed: true });
    const bar = lb.struct('bar', [
      { name: 'arr', type: lb.array(li, 4) },
      { name: 'z', type: li },
    ]);
    const localBar = lb.build().index();
    const target = (nelems: number) => {
      const tb = new BtfBuilder();
      const ti = tb.int('int', 4, { signed: true });
      const tl = tb.int('long', 8, { signed: true });
      tb.struct('bar', [
        { name: 'pad', type: tl },
        { name: 'arr', type: tb.array(ti, nelems) },
      ]);
      return tb.build().index();
    };
    const r = { insnOff: 0, typeId: bar, accessStr: '0:0:2', kind: BPF_CORE.FIELD_BYTE_OFFSET };
    // local: arr[2] at 8; target: pad (8 bytes) then arr, so arr[2] at 16.
    expect(calcCoreRelo(localBar, target(8), r)).toMatchObject({ origVal: 8, newVal: 16 });
    expect(calcCoreRelo(localBar, target(2), r).poison).toBe(true);
    // The first index is pointer arithmetic on the root: (&b[1])->z.
    const r2 = { insnOff: 0, typeId: bar, accessStr: '1:1', kind: BPF_CORE.FIELD_BYTE_OFFSET };
    expect(calcCoreRelo(localBar, localBar, r2)).toMatchObject({ origVal: 20 + 16, newVal: 36 });
  });

  it('refuses to patch an instruction that does not hold the local value', () => {
    const insns: Insn[] = [{ code: 0xb7, dst: 1, src: 0, off: 0, imm: 5, imm2: 0 }];
    const res = calcCoreRelo(localBtf, localBtf, relo(BPF_CORE.FIELD_BYTE_OFFSET, '0:1'));
    expect(() => patchCoreInsn(insns, 0, res)).toThrow(/unexpected insn #0 value: got 5, exp 8/);
  });

  it('adjusts the load size when an integer field changes size', () => {
    const t = new BtfBuilder();
    const i = t.int('int', 4, { signed: true });
    t.struct(
      'foo',
      [
        { name: 'x', type: i, bitsOffset: 0 },
        { name: 'y', type: i, bitsOffset: 32 },
      ],
      8,
    );
    const res = calcCoreRelo(localBtf, t.build().index(), relo(BPF_CORE.FIELD_BYTE_OFFSET, '0:1'));
    // r1 = *(u64 *)(r2 + 8) becomes r1 = *(u32 *)(r2 + 4).
    const insns: Insn[] = [{ code: 0x79, dst: 1, src: 2, off: 8, imm: 0, imm2: 0 }];
    patchCoreInsn(insns, 0, res);
    expect(insns[0]).toMatchObject({ code: 0x61, off: 4 });
  });

  it('an object API load applies CO-RE from a target BTF given as bytes', () => {
    const obj = BpfObject.open(fixture('ringbuf.bpfel.o'));
    obj.setTargetBtf(fixture('vmlinux-min.btf'));
    const linked = obj.link();
    expect(linked.coreRelos.every((r) => !r.poison)).toBe(true);
  });
});

describe('CO-RE property: field offsets follow the target layout', () => {
  const SIZES = [1, 2, 4, 8] as const;
  const field = fc.record({ size: fc.constantFrom(...SIZES), pad: fc.integer({ min: 0, max: 3 }) });

  it('byte_off and byte_sz of every member equal the target offsetOf and size', () => {
    fc.assert(
      fc.property(
        fc.array(field, { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 0, max: 1_000_000 }),
        (fields, seed) => {
          const build = (order: number[], withPad: boolean) => {
            const b = new BtfBuilder();
            const ints = SIZES.map((sz) => b.int(`u${sz * 8}`, sz));
            const members: { name: string; type: number }[] = [];
            for (const k of order) {
              const f = fields[k] as { size: 1 | 2 | 4 | 8; pad: number };
              if (withPad && f.pad > 0)
                members.push({ name: `pad${k}`, type: b.array(ints[0] as number, f.pad) });
              members.push({ name: `f${k}`, type: ints[SIZES.indexOf(f.size)] as number });
            }
            const id = b.struct('rec', members);
            return { btf: b.build().index(), id };
          };
          const idx = fields.map((_, k) => k);
          const shuffled = [...idx].sort(
            (a, b) => ((a * 7919 + seed) % 97) - ((b * 7919 + seed) % 97),
          );
          const local = build(idx, false);
          const target = build(shuffled, true);
          fields.forEach((_, k) => {
            const accessStr = `0:${k}`;
            const off = calcCoreRelo(local.btf, target.btf, {
              insnOff: 0,
              typeId: local.id,
              accessStr,
              kind: BPF_CORE.FIELD_BYTE_OFFSET,
            });
            const loc = target.btf.offsetOf(`f${k}`, target.id);
            expect(off.poison).toBe(false);
            expect(off.newVal).toBe(loc.byteOffset);
            expect(off.origVal).toBe(local.btf.offsetOf(`f${k}`, local.id).byteOffset);
            const sz = calcCoreRelo(local.btf, target.btf, {
              insnOff: 0,
              typeId: local.id,
              accessStr,
              kind: BPF_CORE.FIELD_BYTE_SIZE,
            });
            expect(sz.newVal).toBe((fields[k] as { size: number }).size);
          });
        },
      ),
      { numRuns: 200 },
    );
  });
});
