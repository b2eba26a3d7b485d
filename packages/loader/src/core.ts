import { BTF_INT_SIGNED, type Btf, type BtfMember, type BtfType, typeName } from '@tracelab/btf';
import {
  BPF_ALU,
  BPF_ALU64,
  BPF_B,
  BPF_CALL,
  BPF_DW,
  BPF_H,
  BPF_JMP,
  BPF_K,
  BPF_LDX,
  BPF_ST,
  BPF_STX,
  BPF_W,
  type Insn,
  cls,
  isLddw,
  size as sizeField,
  sizeBytes,
  srcBit,
} from '@tracelab/vm';
import { BPF_CORE, CORE_RELO_KIND_NAMES, type CoreRelo } from './btf-ext.js';

/** libbpf poisons an unresolvable relocation with a call to this helper id (0xbad2310, "bad relo"). */
export const POISON_HELPER_ID = 195896080;

const MAX_DEPTH = 32;

/** One step of an access spec: a member (named or anonymous) or an array index. */
interface Accessor {
  typeId: number;
  idx: number;
  /** Member name; undefined for array indexes and anonymous members. */
  name: string | undefined;
}

interface Spec {
  btf: Btf;
  rootId: number;
  /** Raw indexes from the access string. */
  raw: number[];
  /** High-level accessors: the first array index, then named members and array indexes. */
  access: Accessor[];
  bitOffset: number;
  /** For enum value relocations. */
  enumValue?: bigint;
}

/** The outcome of one CO-RE relocation, as libbpf's bpf_core_relo_res. */
export interface CoreResult {
  kind: number;
  /** Value the instruction was compiled with (local BTF). */
  origVal: number;
  newVal: number;
  /** Relocation failed: the instruction becomes a call to POISON_HELPER_ID. */
  poison: boolean;
  /** Field size locally and in the target (memory access size adjustments). */
  origSize: number;
  newSize: number;
  failMemszAdjust: boolean;
  /** Check the instruction holds origVal before patching (off for bitfields: compilers differ). */
  validate: boolean;
  /** Target type id the relocation resolved to (0 when none). */
  targetId: number;
}

/** Name without a `___flavor` suffix (libbpf's bpf_core_essential_name_len). */
export function essentialName(name: string): string {
  const at = name.lastIndexOf('___');
  return at > 0 ? name.slice(0, at) : name;
}

const candIndex = new WeakMap<Btf, Map<string, number[]>>();

/** Target ids by essential name, built once per target BTF. */
function essentialIndex(btf: Btf): Map<string, number[]> {
  let idx = candIndex.get(btf);
  if (idx !== undefined) return idx;
  idx = new Map();
  for (let id = 1; id < btf.typeCount; id++) {
    const name = btf.name(id);
    if (name === '') continue;
    const key = essentialName(name);
    const list = idx.get(key);
    if (list) list.push(id);
    else idx.set(key, [id]);
  }
  candIndex.set(btf, idx);
  return idx;
}

function typeAt(btf: Btf, id: number): BtfType | undefined {
  return id === 0 || id >= btf.typeCount ? undefined : btf.type(id);
}

/** Skips typedefs, cv-qualifiers and type tags (btf_type_skip_modifiers). */
export function skipMods(btf: Btf, id: number): number {
  for (let d = 0; d < MAX_DEPTH; d++) {
    const t = typeAt(btf, id);
    if (
      t === undefined ||
      (t.kind !== 'typedef' &&
        t.kind !== 'const' &&
        t.kind !== 'volatile' &&
        t.kind !== 'restrict' &&
        t.kind !== 'type_tag')
    )
      return id;
    id = t.type;
  }
  return id;
}

function kindOf(t: BtfType | undefined): string {
  return t === undefined ? 'void' : t.kind;
}

function isComposite(t: BtfType | undefined): t is Extract<BtfType, { kind: 'struct' | 'union' }> {
  return t !== undefined && (t.kind === 'struct' || t.kind === 'union');
}

function isAnyEnum(t: BtfType | undefined): t is Extract<BtfType, { kind: 'enum' | 'enum64' }> {
  return t !== undefined && (t.kind === 'enum' || t.kind === 'enum64');
}

/** Same kind for CO-RE purposes (enum and enum64 are interchangeable). */
function kindsCompat(a: BtfType | undefined, b: BtfType | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.kind === b.kind || (isAnyEnum(a) && isAnyEnum(b));
}

function sizeOf(btf: Btf, id: number): number {
  return btf.sizeOf(id);
}

/** Parses an access string such as "0:1:2" against the local root type. */
function parseSpec(btf: Btf, rootId: number, accessStr: string, kind: number): Spec {
  if (!/^\d+(:\d+)*$/.test(accessStr)) throw new Error(`malformed access string '${accessStr}'`);
  const raw = accessStr.split(':').map(Number);
  const spec: Spec = { btf, rootId, raw, access: [], bitOffset: 0 };
  if (kind >= BPF_CORE.TYPE_ID_LOCAL && kind <= BPF_CORE.TYPE_SIZE) {
    if (raw.length !== 1 || raw[0] !== 0) throw new Error(`type relocation needs access "0"`);
    return spec;
  }
  if (kind === BPF_CORE.TYPE_MATCHES) {
    if (raw.length !== 1 || raw[0] !== 0) throw new Error(`type relocation needs access "0"`);
    return spec;
  }
  if (kind === BPF_CORE.ENUMVAL_EXISTS || kind === BPF_CORE.ENUMVAL_VALUE) {
    const t = typeAt(btf, skipMods(btf, rootId));
    if (!isAnyEnum(t) || raw.length !== 1)
      throw new Error('enum value relocation on a non-enum type');
    const v = t.values[raw[0] as number];
    if (v === undefined) throw new Error(`enumerator #${raw[0]} out of range`);
    spec.access.push({ typeId: rootId, idx: raw[0] as number, name: v.name });
    spec.enumValue = BigInt(v.value);
    return spec;
  }
  // Field relocation: the first index is pointer arithmetic on the root type.
  let id = skipMods(btf, rootId);
  spec.access.push({ typeId: id, idx: raw[0] as number, name: undefined });
  spec.bitOffset = (raw[0] as number) * sizeOf(btf, id) * 8;
  for (let i = 1; i < raw.length; i++) {
    const t = typeAt(btf, id);
    const idx = raw[i] as number;
    if (isComposite(t)) {
      const m = t.members[idx];
      if (m === undefined) throw new Error(`member #${idx} out of range of '${t.name}'`);
      spec.bitOffset += m.bitsOffset;
      if (m.name !== '') spec.access.push({ typeId: id, idx, name: m.name });
      id = skipMods(btf, m.type);
    } else if (t !== undefined && t.kind === 'array') {
      const elem = skipMods(btf, t.type);
      spec.access.push({ typeId: id, idx, name: undefined });
      spec.bitOffset += idx * sizeOf(btf, elem) * 8;
      id = elem;
    } else {
      throw new Error(`access #${i} into ${kindOf(t)} type [${id}]`);
    }
  }
  return spec;
}

/** Types compatible for TYPE_* relocations and typed ksyms (bpf_core_types_are_compat). */
export function typesAreCompat(lb: Btf, lid: number, tb: Btf, tid: number, depth = 0): boolean {
  if (depth > MAX_DEPTH) return false;
  lid = skipMods(lb, lid);
  tid = skipMods(tb, tid);
  const l = typeAt(lb, lid);
  const t = typeAt(tb, tid);
  if (!kindsCompat(l, t)) return false;
  if (l === undefined || t === undefined) return true;
  switch (l.kind) {
    case 'struct':
    case 'union':
    case 'enum':
    case 'enum64':
    case 'fwd':
    case 'float':
      return true;
    case 'int':
      return l.bitsOffset === 0 && t.kind === 'int' && t.bitsOffset === 0;
    case 'ptr':
      return typesAreCompat(lb, l.type, tb, (t as typeof l).type, depth + 1);
    case 'array':
      return typesAreCompat(lb, l.type, tb, (t as typeof l).type, depth + 1);
    case 'func_proto': {
      const tp = t as typeof l;
      if (l.params.length !== tp.params.length) return false;
      for (let k = 0; k < l.params.length; k++) {
        const a = l.params[k] as { type: number };
        const b = tp.params[k] as { type: number };
        if (!typesAreCompat(lb, a.type, tb, b.type, depth + 1)) return false;
      }
      return typesAreCompat(lb, l.returnType, tb, tp.returnType, depth + 1);
    }
    default:
      return false;
  }
}

/** Field types compatible for FIELD_* relocations (bpf_core_fields_are_compat). */
function fieldsAreCompat(lb: Btf, lid: number, tb: Btf, tid: number, depth = 0): boolean {
  if (depth > MAX_DEPTH) return false;
  const l = typeAt(lb, skipMods(lb, lid));
  const t = typeAt(tb, skipMods(tb, tid));
  if (isComposite(l) && isComposite(t)) return true;
  if (!kindsCompat(l, t) || l === undefined || t === undefined) return false;
  switch (l.kind) {
    case 'ptr':
    case 'float':
      return true;
    case 'fwd':
    case 'enum':
    case 'enum64':
      return essentialName(typeName(l)) === essentialName(typeName(t));
    case 'int':
      return l.bitsOffset === 0 && t.kind === 'int' && t.bitsOffset === 0;
    case 'array':
      return fieldsAreCompat(lb, l.type, tb, (t as typeof l).type, depth + 1);
    default:
      return false;
  }
}

/** Strict structural match for TYPE_MATCHES (bpf_core_types_match). */
function typesMatch(lb: Btf, lid: number, tb: Btf, tid: number, depth = 0): boolean {
  if (depth > MAX_DEPTH) return false;
  lid = skipMods(lb, lid);
  tid = skipMods(tb, tid);
  const l = typeAt(lb, lid);
  const t = typeAt(tb, tid);
  if (l === undefined || t === undefined) return l === t;
  if (typeName(l) !== '' && essentialName(typeName(l)) !== essentialName(typeName(t))) return false;
  if (!kindsCompat(l, t) && !(l.kind === 'fwd' || t.kind === 'fwd')) return false;
  switch (l.kind) {
    case 'fwd':
      return true;
    case 'int':
      return (
        t.kind === 'int' &&
        l.size === t.size &&
        (l.encoding & BTF_INT_SIGNED) === (t.encoding & BTF_INT_SIGNED)
      );
    case 'float':
      return t.kind === 'float' && l.size === t.size;
    case 'enum':
    case 'enum64': {
      if (!isAnyEnum(t)) return false;
      return l.values.every((v) => t.values.some((w) => w.name === v.name));
    }
    case 'struct':
    case 'union': {
      if (!isComposite(t) || l.kind !== t.kind) return false;
      return l.members.every((m) =>
        t.members.some((n) => n.name === m.name && typesMatch(lb, m.type, tb, n.type, depth + 1)),
      );
    }
    case 'ptr':
      return t.kind === 'ptr' && typesMatch(lb, l.type, tb, t.type, depth + 1);
    case 'array':
      return (
        t.kind === 'array' && l.nelems === t.nelems && typesMatch(lb, l.type, tb, t.type, depth + 1)
      );
    case 'func_proto': {
      if (t.kind !== 'func_proto' || l.params.length !== t.params.length) return false;
      return (
        l.params.every((p, k) =>
          typesMatch(lb, p.type, tb, (t.params[k] as { type: number }).type, depth + 1),
        ) && typesMatch(lb, l.returnType, tb, t.returnType, depth + 1)
      );
    }
    default:
      return false;
  }
}

/** Finds a member by name in a target composite, through anonymous members (bpf_core_match_member). */
function findTargetMember(
  tb: Btf,
  compositeId: number,
  name: string,
  depth = 0,
): { bitsOffset: number; member: BtfMember; idx: number; parent: number } | undefined {
  const t = typeAt(tb, compositeId);
  if (!isComposite(t) || depth > MAX_DEPTH) return undefined;
  for (let k = 0; k < t.members.length; k++) {
    const m = t.members[k] as BtfMember;
    if (m.name === name)
      return { bitsOffset: m.bitsOffset, member: m, idx: k, parent: compositeId };
    if (m.name === '') {
      const inner = findTargetMember(tb, skipMods(tb, m.type), name, depth + 1);
      if (inner) return { ...inner, bitsOffset: inner.bitsOffset + m.bitsOffset };
    }
  }
  return undefined;
}

/** Matches a local spec against one candidate (bpf_core_spec_match); undefined = no match. */
function matchSpec(local: Spec, tb: Btf, targetId: number, kind: number): Spec | undefined {
  const lb = local.btf;
  const targ: Spec = { btf: tb, rootId: targetId, raw: [], access: [], bitOffset: 0 };
  if (kind === BPF_CORE.TYPE_MATCHES) {
    return typesMatch(lb, local.rootId, tb, targetId) ? targ : undefined;
  }
  if (kind >= BPF_CORE.TYPE_ID_TARGET && kind <= BPF_CORE.TYPE_SIZE) {
    return typesAreCompat(lb, local.rootId, tb, targetId) ? targ : undefined;
  }
  if (kind === BPF_CORE.ENUMVAL_EXISTS || kind === BPF_CORE.ENUMVAL_VALUE) {
    const t = typeAt(tb, skipMods(tb, targetId));
    if (!isAnyEnum(t)) return undefined;
    const want = essentialName((local.access[0] as Accessor).name ?? '');
    const k = t.values.findIndex((v) => essentialName(v.name) === want);
    if (k < 0) return undefined;
    targ.access.push({ typeId: targetId, idx: k, name: (t.values[k] as { name: string }).name });
    targ.raw.push(k);
    targ.enumValue = BigInt((t.values[k] as { value: number | bigint }).value);
    return targ;
  }
  let id = skipMods(tb, targetId);
  for (const acc of local.access) {
    if (acc === local.access[0]) {
      targ.raw.push(acc.idx);
      targ.access.push({ typeId: id, idx: acc.idx, name: undefined });
      targ.bitOffset = acc.idx * sizeOf(tb, id) * 8;
      continue;
    }
    if (acc.name !== undefined) {
      const t = typeAt(tb, id);
      if (!isComposite(t)) return undefined;
      const found = findTargetMember(tb, id, acc.name);
      if (found === undefined) return undefined;
      const lt = typeAt(lb, acc.typeId);
      const lm = (lt as Extract<BtfType, { kind: 'struct' | 'union' }>).members[
        acc.idx
      ] as BtfMember;
      if (!fieldsAreCompat(lb, lm.type, tb, found.member.type)) return undefined;
      targ.bitOffset += found.bitsOffset;
      targ.access.push({ typeId: found.parent, idx: found.idx, name: acc.name });
      targ.raw.push(found.idx);
      id = skipMods(tb, found.member.type);
    } else {
      const t = typeAt(tb, id);
      const lt = typeAt(lb, acc.typeId);
      if (t === undefined || t.kind !== 'array' || lt === undefined || lt.kind !== 'array')
        return undefined;
      const flex = t.nelems === 0;
      if (!flex && acc.idx >= t.nelems) return undefined;
      const elem = skipMods(tb, t.type);
      targ.bitOffset += acc.idx * sizeOf(tb, elem) * 8;
      targ.access.push({ typeId: id, idx: acc.idx, name: undefined });
      targ.raw.push(acc.idx);
      id = elem;
    }
  }
  return targ;
}

/** The member an access spec ends on (undefined when it ends on an array element or the root). */
function lastMember(spec: Spec): BtfMember | undefined {
  const acc = spec.access[spec.access.length - 1] as Accessor;
  if (spec.access.length === 1 || acc.name === undefined) return undefined;
  const t = typeAt(spec.btf, acc.typeId);
  return isComposite(t) ? t.members[acc.idx] : undefined;
}

/** Field type id the spec ends on. */
function fieldTypeId(spec: Spec): number {
  const m = lastMember(spec);
  if (m !== undefined) return m.type;
  const acc = spec.access[spec.access.length - 1] as Accessor;
  if (spec.access.length === 1) return spec.rootId;
  const arr = typeAt(spec.btf, acc.typeId);
  return arr !== undefined && arr.kind === 'array' ? arr.type : acc.typeId;
}

interface FieldValue {
  val: number;
  size: number;
  bitfield: boolean;
  /** Field kind allows memory size adjustment (ints, enums, pointers). */
  sizable: boolean;
}

/** Computes a field relocation's value for one spec (bpf_core_calc_field_relo). */
function calcField(spec: Spec, kind: number): FieldValue {
  const btf = spec.btf;
  if (kind === BPF_CORE.FIELD_EXISTS) return { val: 1, size: 0, sizable: false, bitfield: false };
  const m = lastMember(spec);
  const fid = skipMods(btf, fieldTypeId(spec));
  const ft = typeAt(btf, fid);
  let bitSz = m?.bitfieldSize ?? 0;
  let bitOff = spec.bitOffset;
  if (bitSz === 0 && ft !== undefined && ft.kind === 'int' && ft.bits !== ft.size * 8) {
    bitSz = ft.bits;
    bitOff += ft.bitsOffset;
  }
  const sizable = ft !== undefined && (ft.kind === 'int' || ft.kind === 'ptr' || isAnyEnum(ft));
  const bitfield = bitSz !== 0;
  let byteSz: number;
  let byteOff: number;
  if (!bitfield) {
    byteSz = sizeOf(btf, fid);
    byteOff = bitOff / 8;
  } else {
    byteSz = sizeOf(btf, fid);
    byteOff = Math.floor(bitOff / 8 / byteSz) * byteSz;
    while (bitOff + bitSz - byteOff * 8 > byteSz * 8) {
      if (byteSz >= 8) throw new Error('bitfield does not fit in 8 bytes');
      byteSz *= 2;
      byteOff = Math.floor(bitOff / 8 / byteSz) * byteSz;
    }
  }
  switch (kind) {
    case BPF_CORE.FIELD_BYTE_OFFSET:
      return { val: byteOff, size: byteSz, sizable: sizable && !bitfield, bitfield };
    case BPF_CORE.FIELD_BYTE_SIZE:
      return { val: byteSz, size: byteSz, sizable: false, bitfield };
    case BPF_CORE.FIELD_SIGNED: {
      const signed =
        (isAnyEnum(ft) && ft.signed) ||
        (ft !== undefined && ft.kind === 'int' && (ft.encoding & BTF_INT_SIGNED) !== 0);
      return { val: signed ? 1 : 0, size: byteSz, sizable: false, bitfield: false };
    }
    case BPF_CORE.FIELD_LSHIFT_U64: {
      if (!bitfield) return { val: 64 - byteSz * 8, size: byteSz, sizable: false, bitfield };
      const val = btf.littleEndian
        ? 64 - (bitOff + bitSz - byteOff * 8)
        : 64 - byteSz * 8 + (bitOff - byteOff * 8);
      return { val, size: byteSz, sizable: false, bitfield };
    }
    default:
      return {
        val: bitfield ? 64 - bitSz : 64 - byteSz * 8,
        size: byteSz,
        sizable: false,
        bitfield,
      };
  }
}

function calcOne(local: Spec, targ: Spec | undefined, relo: CoreRelo): Omit<CoreResult, 'kind'> {
  const kind = relo.kind;
  const res = {
    origVal: 0,
    newVal: 0,
    poison: false,
    origSize: 0,
    newSize: 0,
    failMemszAdjust: false,
    validate: true,
    targetId: targ?.rootId ?? 0,
  };
  if (kind <= BPF_CORE.FIELD_RSHIFT_U64) {
    const l = calcField(local, kind);
    res.origVal = l.val;
    res.origSize = l.size;
    res.validate = !l.bitfield;
    if (targ === undefined) {
      if (kind === BPF_CORE.FIELD_EXISTS) return { ...res, newVal: 0 };
      return { ...res, poison: true };
    }
    const t = calcField(targ, kind);
    res.newVal = t.val;
    res.newSize = t.size;
    if (kind === BPF_CORE.FIELD_BYTE_OFFSET && l.size !== t.size && !(l.sizable && t.sizable)) {
      res.failMemszAdjust = true;
    }
    return res;
  }
  if (kind === BPF_CORE.ENUMVAL_EXISTS || kind === BPF_CORE.ENUMVAL_VALUE) {
    res.origVal =
      kind === BPF_CORE.ENUMVAL_EXISTS ? 1 : Number(BigInt.asIntN(64, local.enumValue ?? 0n));
    if (targ === undefined)
      return kind === BPF_CORE.ENUMVAL_EXISTS ? res : { ...res, poison: true };
    res.newVal =
      kind === BPF_CORE.ENUMVAL_EXISTS ? 1 : Number(BigInt.asIntN(64, targ.enumValue ?? 0n));
    return res;
  }
  // Type-based relocations.
  const lb = local.btf;
  switch (kind) {
    case BPF_CORE.TYPE_EXISTS:
    case BPF_CORE.TYPE_MATCHES:
      res.origVal = 1;
      res.newVal = targ === undefined ? 0 : 1;
      return res;
    case BPF_CORE.TYPE_SIZE:
      res.origVal = sizeOf(lb, local.rootId);
      if (targ === undefined) return { ...res, poison: true };
      res.newVal = sizeOf(targ.btf, targ.rootId);
      return res;
    default:
      // TYPE_ID_TARGET
      res.origVal = local.rootId;
      if (targ === undefined) return { ...res, poison: true };
      res.newVal = targ.rootId;
      return res;
  }
}

/**
 * Resolves one CO-RE relocation against a target BTF with libbpf's rules: candidates share the
 * local type's kind and essential name; every matching candidate must agree; no candidate means
 * 0 for the *_EXISTS/TYPE_MATCHES kinds and poison for the rest. Errors are plain Errors; the
 * caller wraps them with the section and offset.
 */
export function calcCoreRelo(local: Btf, target: Btf, relo: CoreRelo): CoreResult {
  const lt = typeAt(local, relo.typeId);
  if (lt === undefined) throw new Error(`relocation names missing local type [${relo.typeId}]`);
  const spec = parseSpec(local, relo.typeId, relo.accessStr, relo.kind);
  if (relo.kind === BPF_CORE.TYPE_ID_LOCAL) {
    return {
      kind: relo.kind,
      origVal: relo.typeId,
      newVal: relo.typeId,
      poison: false,
      origSize: 0,
      newSize: 0,
      failMemszAdjust: false,
      validate: true,
      targetId: relo.typeId,
    };
  }
  const name = typeName(lt);
  if (name === '') {
    throw Object.assign(
      new Error(`<${CORE_RELO_KIND_NAMES[relo.kind]}> relocation doesn't support anonymous types`),
      { errno: 'EOPNOTSUPP' },
    );
  }
  const ess = essentialName(name);
  const cands = (essentialIndex(target).get(ess) ?? []).filter((id) => {
    const t = typeAt(target, id);
    if (t === undefined) return false;
    if (lt.kind === 'fwd' || t.kind === 'fwd') return false;
    return t.kind === lt.kind || (isAnyEnum(t) && isAnyEnum(lt));
  });
  let chosen: Omit<CoreResult, 'kind'> | undefined;
  let chosenSpec: Spec | undefined;
  for (const id of cands) {
    const cs = matchSpec(spec, target, id, relo.kind);
    if (cs === undefined) continue;
    const r = calcOne(spec, cs, relo);
    if (chosen === undefined || chosenSpec === undefined) {
      chosen = r;
      chosenSpec = cs;
    } else if (cs.bitOffset !== chosenSpec.bitOffset) {
      throw new Error(`field offset ambiguity: ${cs.bitOffset} != ${chosenSpec.bitOffset}`);
    } else if (r.poison !== chosen.poison || r.newVal !== chosen.newVal) {
      throw new Error(`relocation decision ambiguity: ${r.newVal} != ${chosen.newVal}`);
    }
  }
  return { kind: relo.kind, ...(chosen ?? calcOne(spec, undefined, relo)) };
}

const SIZE_CODE: Record<number, number> = { 1: BPF_B, 2: BPF_H, 4: BPF_W, 8: BPF_DW };

function poison(insn: Insn): void {
  insn.code = BPF_JMP | BPF_CALL;
  insn.dst = 0;
  insn.src = 0;
  insn.off = 0;
  insn.imm = POISON_HELPER_ID;
  insn.imm2 = 0;
}

/**
 * Patches the instruction at idx with a relocation result (bpf_core_patch_insn): ALU immediates,
 * memory offsets (and access sizes when the field changed size), lddw's 64-bit value. A poisoned
 * result turns the instruction (both slots of lddw) into a call to POISON_HELPER_ID.
 */
export function patchCoreInsn(insns: Insn[], idx: number, res: CoreResult): void {
  const insn = insns[idx];
  if (insn === undefined) throw new Error(`instruction #${idx} out of range`);
  if (res.poison || res.failMemszAdjust) {
    const second = isLddw(insn) ? insns[idx + 1] : undefined;
    poison(insn);
    if (second !== undefined) poison(second);
    return;
  }
  const c = insn.code;
  switch (cls(c)) {
    case BPF_ALU:
    case BPF_ALU64:
      if (srcBit(c) !== BPF_K) throw new Error(`instruction #${idx} is an ALU insn without imm`);
      if (res.validate && insn.imm !== res.origVal)
        throw new Error(
          `unexpected insn #${idx} value: got ${insn.imm}, exp ${res.origVal} -> ${res.newVal}`,
        );
      insn.imm = res.newVal | 0;
      return;
    case BPF_LDX:
    case BPF_ST:
    case BPF_STX: {
      if (res.validate && insn.off !== res.origVal)
        throw new Error(
          `unexpected insn #${idx} offset: got ${insn.off}, exp ${res.origVal} -> ${res.newVal}`,
        );
      if (res.newVal > 0x7fff) throw new Error(`insn #${idx} offset ${res.newVal} exceeds s16`);
      insn.off = res.newVal;
      if (res.kind === BPF_CORE.FIELD_BYTE_OFFSET && res.origSize !== res.newSize) {
        const cur = sizeBytes(sizeField(c));
        const code = SIZE_CODE[res.newSize];
        if (cur !== res.origSize || code === undefined)
          throw new Error(`insn #${idx} cannot change access size to ${res.newSize}`);
        insn.code = (c & ~0x18) | code;
      }
      return;
    }
    default: {
      if (!isLddw(insn)) throw new Error(`instruction #${idx} cannot carry a CO-RE relocation`);
      const next = insns[idx + 1];
      if (next === undefined) throw new Error(`lddw #${idx} lacks its second half`);
      const cur = (BigInt(next.imm >>> 0) << 32n) | BigInt(insn.imm >>> 0);
      if (res.validate && cur !== BigInt(res.origVal))
        throw new Error(`unexpected insn #${idx} value: got ${cur}, exp ${res.origVal}`);
      const v = BigInt.asUintN(64, BigInt(res.newVal));
      insn.imm = Number(v & 0xffffffffn) | 0;
      insn.imm2 = Number(v >> 32n) | 0;
      next.imm = insn.imm2;
    }
  }
}
