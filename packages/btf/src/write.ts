import { Btf } from './btf.js';
import { BtfError } from './error.js';
import { alignOfType, sizeOfType, type TypeSource } from './graph.js';
import {
  BTF_FUNC_GLOBAL,
  BTF_HEADER_LEN,
  BTF_INT_BOOL,
  BTF_INT_CHAR,
  BTF_INT_SIGNED,
  BTF_MAGIC,
  BTF_MAX_VLEN,
  BTF_VAR_GLOBAL_ALLOCATED,
  BTF_VERSION,
  kindNumber,
  type BtfEnum64Value,
  type BtfEnumValue,
  type BtfMember,
  type BtfType,
} from './types.js';

export interface WriteOptions {
  /** Byte order of the output; default little-endian. */
  littleEndian?: boolean;
  /** Write split BTF on top of this base: ids and string offsets continue after it. */
  base?: Btf;
  /** Extra strings for the string section (for example those .BTF.ext records refer to). */
  strings?: readonly string[];
}

const utf8 = new TextEncoder();

/** Deduplicating string table; offset 0 is always the empty string. */
class StringTable {
  private readonly offsets = new Map<string, number>();
  private readonly chunks: Uint8Array[] = [];
  private len = 0;

  constructor(private readonly base: Btf | undefined) {
    if (base) {
      // Split BTF: '' resolves to the base's offset 0, and the local section starts empty.
      this.offsets.set('', 0);
    } else {
      this.add('');
    }
  }

  add(s: string): number {
    const known = this.offsets.get(s);
    if (known !== undefined) return known;
    const start = this.base ? this.base.strLen : 0;
    const off = start + this.len;
    const bytes = utf8.encode(s);
    this.chunks.push(bytes, new Uint8Array(1));
    this.len += bytes.length + 1;
    this.offsets.set(s, off);
    return off;
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.len);
    let p = 0;
    for (const c of this.chunks) {
      out.set(c, p);
      p += c.length;
    }
    return out;
  }
}

function recordSize(t: BtfType): number {
  switch (t.kind) {
    case 'int':
    case 'var':
    case 'decl_tag':
      return 16;
    case 'array':
      return 24;
    case 'struct':
    case 'union':
      return 12 + 12 * t.members.length;
    case 'enum':
      return 12 + 8 * t.values.length;
    case 'enum64':
      return 12 + 12 * t.values.length;
    case 'func_proto':
      return 12 + 8 * t.params.length;
    case 'datasec':
      return 12 + 12 * t.vars.length;
    default:
      return 12;
  }
}

function checkVlen(id: number, n: number): number {
  if (n > BTF_MAX_VLEN) {
    throw new BtfError('E2BIG', `vlen ${n} exceeds ${BTF_MAX_VLEN}`, { typeId: id });
  }
  return n;
}

/**
 * Serialize types to a raw BTF blob. `types[0]` gets id 1 (or the base's typeCount
 * for split BTF), and so on.
 */
export function writeBtf(types: readonly BtfType[], opts: WriteOptions = {}): Uint8Array {
  const le = opts.littleEndian ?? true;
  const firstId = opts.base ? opts.base.typeCount : 1;
  const strs = new StringTable(opts.base);
  let typeLen = 0;
  for (const t of types) typeLen += recordSize(t);
  const typeBytes = new Uint8Array(typeLen);
  const dv = new DataView(typeBytes.buffer);
  let p = 0;
  const u32 = (v: number): void => {
    dv.setUint32(p, v >>> 0, le);
    p += 4;
  };
  const head = (name: string, kind: number, vlen: number, kflag: boolean, sizeOrType: number) => {
    u32(strs.add(name));
    u32(((kflag ? 1 : 0) << 31) | (kind << 24) | vlen);
    u32(sizeOrType);
  };
  types.forEach((t, i) => {
    const id = firstId + i;
    const kind = kindNumber(t.kind);
    switch (t.kind) {
      case 'int':
        head(t.name, kind, 0, false, t.size);
        u32(((t.encoding & 0x0f) << 24) | ((t.bitsOffset & 0xff) << 16) | (t.bits & 0xff));
        break;
      case 'ptr':
        head('', kind, 0, false, t.type);
        break;
      case 'array':
        head('', kind, 0, false, 0);
        u32(t.type);
        u32(t.indexType);
        u32(t.nelems);
        break;
      case 'struct':
      case 'union': {
        const kflag = t.members.some((m) => m.bitfieldSize !== 0);
        head(t.name, kind, checkVlen(id, t.members.length), kflag, t.size);
        for (const m of t.members) {
          if (kflag && (m.bitsOffset > 0xffffff || m.bitfieldSize > 0xff)) {
            throw new BtfError(
              'E2BIG',
              `member '${m.name}' offset ${m.bitsOffset}/bitfield ${m.bitfieldSize} does not fit`,
              { typeId: id },
            );
          }
          u32(strs.add(m.name));
          u32(m.type);
          u32(kflag ? (m.bitfieldSize << 24) | m.bitsOffset : m.bitsOffset);
        }
        break;
      }
      case 'enum':
        head(t.name, kind, checkVlen(id, t.values.length), t.signed, t.size);
        for (const v of t.values) {
          u32(strs.add(v.name));
          u32(v.value);
        }
        break;
      case 'enum64':
        head(t.name, kind, checkVlen(id, t.values.length), t.signed, t.size);
        for (const v of t.values) {
          const raw = BigInt.asUintN(64, v.value);
          u32(strs.add(v.name));
          u32(Number(raw & 0xffffffffn));
          u32(Number(raw >> 32n));
        }
        break;
      case 'fwd':
        head(t.name, kind, 0, t.union, 0);
        break;
      case 'typedef':
      case 'type_tag':
        head(t.name, kind, 0, false, t.type);
        break;
      case 'volatile':
      case 'const':
      case 'restrict':
        head('', kind, 0, false, t.type);
        break;
      case 'func':
        head(t.name, kind, t.linkage, false, t.type);
        break;
      case 'func_proto':
        head('', kind, checkVlen(id, t.params.length), false, t.returnType);
        for (const prm of t.params) {
          u32(strs.add(prm.name));
          u32(prm.type);
        }
        break;
      case 'var':
        head(t.name, kind, 0, false, t.type);
        u32(t.linkage);
        break;
      case 'datasec':
        head(t.name, kind, checkVlen(id, t.vars.length), false, t.size);
        for (const v of t.vars) {
          u32(v.type);
          u32(v.offset);
          u32(v.size);
        }
        break;
      case 'float':
        head(t.name, kind, 0, false, t.size);
        break;
      case 'decl_tag':
        head(t.name, kind, 0, false, t.type);
        u32(t.componentIdx);
        break;
    }
  });
  for (const s of opts.strings ?? []) strs.add(s);
  const strBytes = strs.bytes();
  const out = new Uint8Array(BTF_HEADER_LEN + typeLen + strBytes.length);
  const hv = new DataView(out.buffer);
  hv.setUint16(0, BTF_MAGIC, le);
  hv.setUint8(2, BTF_VERSION);
  hv.setUint8(3, 0);
  hv.setUint32(4, BTF_HEADER_LEN, le);
  hv.setUint32(8, 0, le);
  hv.setUint32(12, typeLen, le);
  hv.setUint32(16, typeLen, le);
  hv.setUint32(20, strBytes.length, le);
  out.set(typeBytes, BTF_HEADER_LEN);
  out.set(strBytes, BTF_HEADER_LEN + typeLen);
  return out;
}

/** A struct/union member for the builder; omit bitsOffset to get C's natural layout. */
export interface MemberSpec {
  name: string;
  type: number;
  bitsOffset?: number;
  bitfieldSize?: number;
}

export interface IntOptions {
  signed?: boolean;
  char?: boolean;
  bool?: boolean;
}

function roundUp(v: number, a: number): number {
  return Math.ceil(v / a) * a;
}

/**
 * Build BTF from code. Each method appends one type and returns its id; `reserve()`
 * + `set()` make self-referencing types. `write()` serializes, `build()` parses the
 * result back into a Btf.
 */
export class BtfBuilder implements TypeSource {
  readonly ptrSize: number;
  private readonly list: (BtfType | undefined)[] = [];
  private readonly firstId: number;
  private arraySizeType = 0;
  private readonly extraStrings: string[] = [];

  constructor(private readonly opts: { base?: Btf; ptrSize?: number } = {}) {
    this.firstId = opts.base ? opts.base.typeCount : 1;
    this.ptrSize = opts.ptrSize ?? opts.base?.ptrSize ?? 8;
  }

  /** The id the next added type will get. */
  get nextId(): number {
    return this.firstId + this.list.length;
  }

  type(id: number): BtfType | undefined {
    if (id === 0) return undefined;
    if (id < this.firstId) {
      if (!this.opts.base)
        throw new BtfError('ENOENT', `type id ${id} out of range`, { typeId: id });
      return this.opts.base.type(id);
    }
    const t = this.list[id - this.firstId];
    if (t === undefined) {
      throw new BtfError('ENOENT', `type id ${id} is not defined (yet)`, { typeId: id });
    }
    return t;
  }

  add(t: BtfType): number {
    this.list.push(t);
    return this.nextId - 1;
  }

  /** Reserve an id to be filled by set(), for types that refer to themselves. */
  reserve(): number {
    this.list.push(undefined);
    return this.nextId - 1;
  }

  set(id: number, t: BtfType): number {
    const i = id - this.firstId;
    if (i < 0 || i >= this.list.length) {
      throw new BtfError('ENOENT', `type id ${id} was not reserved`, { typeId: id });
    }
    this.list[i] = t;
    return id;
  }

  int(name: string, size: number, o: IntOptions = {}): number {
    const encoding =
      (o.signed ? BTF_INT_SIGNED : 0) | (o.char ? BTF_INT_CHAR : 0) | (o.bool ? BTF_INT_BOOL : 0);
    return this.add({ kind: 'int', name, size, encoding, bitsOffset: 0, bits: size * 8 });
  }

  float(name: string, size: number): number {
    return this.add({ kind: 'float', name, size });
  }

  ptr(type: number): number {
    return this.add({ kind: 'ptr', type });
  }

  const(type: number): number {
    return this.add({ kind: 'const', type });
  }

  volatile(type: number): number {
    return this.add({ kind: 'volatile', type });
  }

  restrict(type: number): number {
    return this.add({ kind: 'restrict', type });
  }

  typedef(name: string, type: number): number {
    return this.add({ kind: 'typedef', name, type });
  }

  typeTag(name: string, type: number): number {
    return this.add({ kind: 'type_tag', name, type });
  }

  /** An array; the index type defaults to clang's `__ARRAY_SIZE_TYPE__`. */
  array(elem: number, nelems: number, indexType?: number): number {
    let idx = indexType;
    if (idx === undefined) {
      if (this.arraySizeType === 0) {
        this.arraySizeType = this.add({
          kind: 'int',
          name: '__ARRAY_SIZE_TYPE__',
          size: 4,
          encoding: 0,
          bitsOffset: 0,
          bits: 32,
        });
      }
      idx = this.arraySizeType;
    }
    return this.add({ kind: 'array', type: elem, indexType: idx, nelems });
  }

  struct(name: string, members: readonly MemberSpec[], size?: number): number {
    return this.add(this.layout('struct', name, members, size));
  }

  union(name: string, members: readonly MemberSpec[], size?: number): number {
    return this.add(this.layout('union', name, members, size));
  }

  /** Lay out members as a C compiler would for this ABI (natural alignment). */
  layout(
    kind: 'struct' | 'union',
    name: string,
    specs: readonly MemberSpec[],
    size?: number,
  ): BtfType {
    let bit = 0;
    let end = 0;
    let maxAlign = 1;
    const members: BtfMember[] = specs.map((s) => {
      const align = alignOfType(this, s.type);
      if (align > maxAlign) maxAlign = align;
      const bf = s.bitfieldSize ?? 0;
      let at: number;
      if (s.bitsOffset !== undefined) at = s.bitsOffset;
      else if (kind === 'union') at = 0;
      else if (bf > 0) {
        // A bitfield starts a new storage unit only when it would straddle one.
        const unit = sizeOfType(this, s.type) * 8;
        at =
          Math.floor(bit / unit) === Math.floor((bit + bf - 1) / unit) ? bit : roundUp(bit, unit);
      } else at = roundUp(bit, align * 8);
      const width = bf > 0 ? bf : sizeOfType(this, s.type) * 8;
      bit = at + width;
      if (bit > end) end = bit;
      return { name: s.name, type: s.type, bitsOffset: at, bitfieldSize: bf };
    });
    const natural = roundUp(Math.ceil(end / 8), maxAlign);
    return { kind, name, size: size ?? natural, members };
  }

  /** An enum; values are [name, value] pairs. Negative values make it signed. */
  enum(name: string, values: readonly (readonly [string, number])[], size = 4): number {
    const vals: BtfEnumValue[] = values.map(([n, v]) => ({ name: n, value: v }));
    return this.add({
      kind: 'enum',
      name,
      size,
      signed: vals.some((v) => v.value < 0),
      values: vals,
    });
  }

  enum64(name: string, values: readonly (readonly [string, bigint])[], size = 8): number {
    const vals: BtfEnum64Value[] = values.map(([n, v]) => ({ name: n, value: v }));
    return this.add({
      kind: 'enum64',
      name,
      size,
      signed: vals.some((v) => v.value < 0n),
      values: vals,
    });
  }

  fwd(name: string, union = false): number {
    return this.add({ kind: 'fwd', name, union });
  }

  /** A prototype; params are type ids or {name, type}; `variadic` appends `...`. */
  funcProto(
    returnType: number,
    params: readonly (number | { name: string; type: number })[],
    variadic = false,
  ): number {
    const ps = params.map((p) => (typeof p === 'number' ? { name: '', type: p } : { ...p }));
    if (variadic) ps.push({ name: '', type: 0 });
    return this.add({ kind: 'func_proto', returnType, params: ps });
  }

  func(name: string, proto: number, linkage: number = BTF_FUNC_GLOBAL): number {
    return this.add({ kind: 'func', name, type: proto, linkage });
  }

  /** FUNC_PROTO + FUNC in one call; returns the FUNC's id. */
  function(
    name: string,
    returnType: number,
    params: readonly (number | { name: string; type: number })[],
    opts: { variadic?: boolean; linkage?: number } = {},
  ): number {
    const proto = this.funcProto(returnType, params, opts.variadic ?? false);
    return this.func(name, proto, opts.linkage ?? BTF_FUNC_GLOBAL);
  }

  var(name: string, type: number, linkage: number = BTF_VAR_GLOBAL_ALLOCATED): number {
    return this.add({ kind: 'var', name, type, linkage });
  }

  datasec(
    name: string,
    vars: readonly { type: number; offset: number; size: number }[],
    size?: number,
  ): number {
    const end = vars.reduce((m, v) => Math.max(m, v.offset + v.size), 0);
    return this.add({
      kind: 'datasec',
      name,
      size: size ?? end,
      vars: vars.map((v) => ({ ...v })),
    });
  }

  declTag(name: string, type: number, componentIdx = -1): number {
    return this.add({ kind: 'decl_tag', name, type, componentIdx });
  }

  /** Put strings in the string section even if no type names them (for .BTF.ext). */
  addStrings(...strings: string[]): this {
    this.extraStrings.push(...strings);
    return this;
  }

  /** The types added so far, in id order (first is id 1, or the base's typeCount). */
  types(): BtfType[] {
    return this.list.map((t, i) => {
      if (t === undefined) {
        throw new BtfError('EINVAL', 'reserved type id was never set', {
          typeId: this.firstId + i,
        });
      }
      return t;
    });
  }

  write(opts: { littleEndian?: boolean } = {}): Uint8Array {
    const w: WriteOptions = { littleEndian: opts.littleEndian ?? true, strings: this.extraStrings };
    if (this.opts.base) w.base = this.opts.base;
    return writeBtf(this.types(), w);
  }

  build(opts: { littleEndian?: boolean } = {}): Btf {
    const p: { base?: Btf; ptrSize: number } = { ptrSize: this.ptrSize };
    if (this.opts.base) p.base = this.opts.base;
    return new Btf(this.write(opts), p);
  }
}
