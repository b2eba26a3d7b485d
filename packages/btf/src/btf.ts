import { BtfError } from './error.js';
import {
  alignOfType,
  memberAt,
  memberOffset,
  resolveType,
  sizeOfType,
  type MemberAccess,
  type MemberLocation,
  type TypeSource,
} from './graph.js';
import {
  BTF_HEADER_LEN,
  BTF_KIND,
  BTF_KIND_MAX,
  BTF_MAGIC,
  BTF_MAX_TYPE,
  KIND_NAMES,
  kindNumber,
  kindString,
  type BtfFunc,
  type BtfFuncProto,
  type BtfKindName,
  type BtfType,
} from './types.js';

export interface ParseOptions {
  /** Base BTF for split (module) BTF: ids and string offsets continue after the base's. */
  base?: Btf;
  /**
   * Pointer size of the target. By default it is the size of the C `long` this BTF
   * describes (as libbpf guesses it), else the base's, else 8.
   */
  ptrSize?: number;
}

/** The header fields of a raw BTF blob. */
export interface BtfHeader {
  magic: number;
  version: number;
  flags: number;
  hdrLen: number;
  typeOff: number;
  typeLen: number;
  strOff: number;
  strLen: number;
}

/** A function with its prototype, as listed by `Btf.funcs()`. */
export interface BtfFuncEntry {
  id: number;
  name: string;
  func: BtfFunc;
  /** Undefined when the FUNC does not point at a FUNC_PROTO. */
  proto: BtfFuncProto | undefined;
  protoId: number;
}

/** Size in bytes of the kind-specific data that follows a type's 12-byte common header. */
export function extraSize(kind: number, vlen: number): number {
  switch (kind) {
    case BTF_KIND.INT:
    case BTF_KIND.VAR:
    case BTF_KIND.DECL_TAG:
      return 4;
    case BTF_KIND.ARRAY:
      return 12;
    case BTF_KIND.STRUCT:
    case BTF_KIND.UNION:
    case BTF_KIND.DATASEC:
    case BTF_KIND.ENUM64:
      return vlen * 12;
    case BTF_KIND.ENUM:
    case BTF_KIND.FUNC_PROTO:
      return vlen * 8;
    default:
      return 0;
  }
}

const latin1 = new TextDecoder('latin1');
const utf8 = new TextDecoder('utf-8', { fatal: false });
const utf8enc = new TextEncoder();

/** FNV-1a over a NUL-terminated byte string (the NUL is hashed too). */
function hashBytes(bytes: Uint8Array, pos: number, end: number): number {
  let h = 0x811c9dc5;
  for (let k = pos; k < end; k++) {
    const c = bytes[k] as number;
    h = Math.imul(h ^ c, 0x01000193);
    if (c === 0) break;
  }
  return h >>> 0;
}

/** Read the header of a raw blob, detecting the byte order from the magic. */
export function readHeader(blob: Uint8Array): { header: BtfHeader; littleEndian: boolean } {
  if (blob.byteLength < BTF_HEADER_LEN) {
    throw new BtfError('EINVAL', `blob of ${blob.byteLength} bytes is shorter than the header`, {
      offset: 0,
    });
  }
  const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  let le: boolean;
  if (dv.getUint16(0, true) === BTF_MAGIC) le = true;
  else if (dv.getUint16(0, false) === BTF_MAGIC) le = false;
  else {
    throw new BtfError('EINVAL', `bad magic 0x${dv.getUint16(0, true).toString(16)}`, {
      offset: 0,
    });
  }
  const header: BtfHeader = {
    magic: BTF_MAGIC,
    version: dv.getUint8(2),
    flags: dv.getUint8(3),
    hdrLen: dv.getUint32(4, le),
    typeOff: dv.getUint32(8, le),
    typeLen: dv.getUint32(12, le),
    strOff: dv.getUint32(16, le),
    strLen: dv.getUint32(20, le),
  };
  return { header, littleEndian: le };
}

/**
 * A parsed BTF blob. Parsing walks the records once (bounds-checked); types are
 * materialised on first use and cached. Ids are global: a split BTF's ids follow its base's.
 */
export class Btf implements TypeSource {
  readonly header: BtfHeader;
  readonly littleEndian: boolean;
  readonly base: Btf | undefined;
  /** First type id defined by this blob (1, or the base's typeCount for split BTF). */
  readonly startId: number;
  /** First string offset defined by this blob (0, or the base's string length). */
  readonly startStrOff: number;
  private ptrSizeValue: number | undefined;
  /** The raw blob (kept so strict validation and dumps can cite byte offsets). */
  readonly blob: Uint8Array;

  private readonly dv: DataView;
  /** Absolute byte offset of each local type record. */
  private readonly recOff: Uint32Array;
  private readonly infos: Uint32Array;
  private readonly cache: (BtfType | undefined)[];
  private readonly strStart: number;
  private readonly strEnd: number;
  private strText: string | undefined;
  private strAscii = true;
  private nameTable: Int32Array | undefined;
  private nameNext: Int32Array | undefined;
  private nameHashes: Uint32Array | undefined;

  constructor(blob: Uint8Array, opts: ParseOptions = {}) {
    const { header, littleEndian } = readHeader(blob);
    this.header = header;
    this.littleEndian = littleEndian;
    this.blob = blob;
    this.base = opts.base;
    this.ptrSizeValue = opts.ptrSize;
    this.startId = opts.base ? opts.base.typeCount : 1;
    this.startStrOff = opts.base ? opts.base.strLen : 0;
    this.dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);

    const { hdrLen, typeOff, typeLen, strOff, strLen } = header;
    if (hdrLen < BTF_HEADER_LEN || hdrLen > blob.byteLength) {
      throw new BtfError('EINVAL', `header length ${hdrLen} out of bounds`, { offset: 4 });
    }
    const typeStart = hdrLen + typeOff;
    const typeEnd = typeStart + typeLen;
    this.strStart = hdrLen + strOff;
    this.strEnd = this.strStart + strLen;
    if (typeEnd > blob.byteLength) {
      throw new BtfError(
        'EINVAL',
        `type section [${typeStart}, ${typeEnd}) beyond blob of ${blob.byteLength} bytes`,
        { offset: 8 },
      );
    }
    if (this.strEnd > blob.byteLength) {
      throw new BtfError(
        'EINVAL',
        `string section [${this.strStart}, ${this.strEnd}) beyond blob of ${blob.byteLength} bytes`,
        { offset: 16 },
      );
    }
    if (typeOff % 4 !== 0) {
      throw new BtfError('EINVAL', `type section offset ${typeOff} is not 4-byte aligned`, {
        offset: 8,
      });
    }
    const le = littleEndian;
    const dv = this.dv;
    // Each record is at least 12 bytes, which bounds the count before walking.
    let cap = Math.floor(typeLen / 12);
    let offs = new Uint32Array(cap);
    let infos = new Uint32Array(cap);
    let n = 0;
    let off = typeStart;
    while (off < typeEnd) {
      const id = this.startId + n;
      if (off + 12 > typeEnd) {
        throw new BtfError('EINVAL', `truncated type header (${typeEnd - off} bytes left)`, {
          typeId: id,
          offset: off,
        });
      }
      const info = dv.getUint32(off + 4, le);
      const kind = (info >>> 24) & 0x1f;
      if (kind === BTF_KIND.UNKN || kind > BTF_KIND_MAX) {
        throw new BtfError('EINVAL', `invalid kind ${kind}`, { typeId: id, offset: off + 4 });
      }
      const next = off + 12 + extraSize(kind, info & 0xffff);
      if (next > typeEnd) {
        throw new BtfError(
          'EINVAL',
          `${kindString(kind)} record needs ${next - off} bytes, only ${typeEnd - off} left`,
          { typeId: id, offset: off },
        );
      }
      if (id > BTF_MAX_TYPE) {
        throw new BtfError('E2BIG', `more than ${BTF_MAX_TYPE} types`, { typeId: id, offset: off });
      }
      if (n === cap) {
        cap *= 2;
        const o2 = new Uint32Array(cap);
        o2.set(offs);
        offs = o2;
        const i2 = new Uint32Array(cap);
        i2.set(infos);
        infos = i2;
      }
      offs[n] = off;
      infos[n] = info;
      n++;
      off = next;
    }
    this.recOff = offs.subarray(0, n);
    this.infos = infos.subarray(0, n);
    this.cache = new Array<BtfType | undefined>(n);
  }

  /** Size of a pointer on the target (see ParseOptions.ptrSize), determined on first use. */
  get ptrSize(): number {
    if (this.ptrSizeValue === undefined) {
      let size: number | undefined;
      for (const name of ['long', 'long int', 'unsigned long', 'long unsigned int']) {
        const id = this.firstInt(name);
        const t = id === undefined ? undefined : this.type(id);
        if (t?.kind === 'int' && (t.size === 4 || t.size === 8)) {
          size = t.size;
          break;
        }
      }
      this.ptrSizeValue = size ?? this.base?.ptrSize ?? 8;
    }
    return this.ptrSizeValue;
  }

  /**
   * find(name, 'int') by a scan of the few INTs: a dump of freshly parsed BTF needs the
   * pointer size but no name index, and building one costs more than the scan.
   */
  private firstInt(name: string): number | undefined {
    const inBase = this.base?.firstInt(name);
    if (inBase !== undefined) return inBase;
    for (let i = 0; i < this.infos.length; i++) {
      if ((((this.infos[i] as number) >>> 24) & 0x1f) !== BTF_KIND.INT) continue;
      const off = this.dv.getUint32(this.recOff[i] as number, this.littleEndian);
      // Names the index would skip: anonymous or out of range.
      if (off === 0 || off >= this.strLen) continue;
      if (this.str(off) === name) return this.startId + i;
    }
    return undefined;
  }

  /** Total number of type ids, including void (id 0) and any base types. */
  get typeCount(): number {
    return this.startId + this.recOff.length;
  }

  /** Total string-space length, including the base's. */
  get strLen(): number {
    return this.startStrOff + (this.strEnd - this.strStart);
  }

  /** Number of types defined by this blob alone. */
  get localTypeCount(): number {
    return this.recOff.length;
  }

  /** Absolute byte offset of a local type's record in `blob`. */
  recordOffset(id: number): number {
    this.checkLocal(id);
    return this.recOff[id - this.startId] as number;
  }

  /** The raw 12-byte common header of a local type, for checks the model cannot express. */
  rawHeader(id: number): { nameOff: number; info: number; sizeOrType: number; offset: number } {
    const offset = this.recordOffset(id);
    return {
      nameOff: this.dv.getUint32(offset, this.littleEndian),
      info: this.dv.getUint32(offset + 4, this.littleEndian),
      sizeOrType: this.dv.getUint32(offset + 8, this.littleEndian),
      offset,
    };
  }

  /** The raw name offset of a type (0 for anonymous types). */
  nameOff(id: number): number {
    if (id < this.startId) return this.base ? this.base.nameOff(id) : 0;
    this.checkRange(id);
    return this.dv.getUint32(this.recOff[id - this.startId] as number, this.littleEndian);
  }

  /** Absolute byte range of the string section inside `blob`. */
  get stringSection(): { start: number; end: number } {
    return { start: this.strStart, end: this.strEnd };
  }

  /** Raw info word of a type (vlen, kind, kflag). */
  info(id: number): number {
    if (id < this.startId) return this.base ? this.base.info(id) : 0;
    this.checkRange(id);
    return this.infos[id - this.startId] as number;
  }

  /** Kind number of a type; 0 for void. */
  kind(id: number): number {
    return (this.info(id) >>> 24) & 0x1f;
  }

  private checkRange(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.typeCount) {
      throw new BtfError('ENOENT', `type id ${id} out of range [0, ${this.typeCount})`, {
        typeId: id,
      });
    }
  }

  private checkLocal(id: number): void {
    this.checkRange(id);
    if (id < this.startId) {
      throw new BtfError('EINVAL', `type id ${id} belongs to the base BTF`, { typeId: id });
    }
  }

  private strings(): string {
    if (this.strText === undefined) {
      const bytes = this.blob.subarray(this.strStart, this.strEnd);
      // One latin1 string keeps byte offsets equal to character offsets; slices are cheap.
      // The usual all-ASCII section decodes faster as UTF-8, to the same string.
      const text = utf8.decode(bytes);
      this.strAscii = !/[\u0080-\uffff]/.test(text);
      this.strText = this.strAscii ? text : latin1.decode(bytes);
    }
    return this.strText;
  }

  /** Whether a string offset points inside this BTF's (or its base's) string section. */
  validStrOff(off: number): boolean {
    return off >= 0 && off < this.strLen;
  }

  /** The NUL-terminated string at `off` in the (split-aware) string space. */
  str(off: number): string {
    if (off < this.startStrOff) {
      return (this.base as Btf).str(off);
    }
    const local = off - this.startStrOff;
    const text = this.strings();
    if (local >= text.length) {
      throw new BtfError('EINVAL', `string offset ${off} beyond string section of ${this.strLen}`, {
        offset: this.strStart + local,
      });
    }
    let end = text.indexOf('\0', local);
    if (end < 0) end = text.length;
    if (this.strAscii) return text.slice(local, end);
    return utf8.decode(this.blob.subarray(this.strStart + local, this.strStart + end));
  }

  /** Map from every string of the (split-aware) string space to its first offset. */
  stringOffsets(): Map<string, number> {
    const out = this.base ? this.base.stringOffsets() : new Map<string, number>();
    const text = this.strings();
    let p = 0;
    while (p < text.length) {
      let end = text.indexOf('\0', p);
      if (end < 0) end = text.length;
      const s = this.str(this.startStrOff + p);
      if (!out.has(s)) out.set(s, this.startStrOff + p);
      p = end + 1;
    }
    return out;
  }

  /** The name of a type ('' for anonymous types and void). */
  name(id: number): string {
    if (id === 0) return '';
    if (id < this.startId) return (this.base as Btf).name(id);
    this.checkRange(id);
    return this.str(this.dv.getUint32(this.recOff[id - this.startId] as number, this.littleEndian));
  }

  /** The type with this id; undefined for void (id 0). Throws ENOENT when out of range. */
  type(id: number): BtfType | undefined {
    if (id === 0) return undefined;
    if (id < this.startId) return (this.base as Btf).type(id);
    this.checkRange(id);
    const i = id - this.startId;
    const cached = this.cache[i];
    if (cached !== undefined) return cached;
    const t = this.decode(i);
    this.cache[i] = t;
    return t;
  }

  /** Like type(), but void or an id of another kind is an error. */
  typeOf<K extends BtfKindName>(id: number, kind: K): Extract<BtfType, { kind: K }> {
    const t = this.type(id);
    if (t === undefined || t.kind !== kind) {
      throw new BtfError(
        'EINVAL',
        `expected ${kind.toUpperCase()}, found ${t === undefined ? 'void' : t.kind.toUpperCase()}`,
        { typeId: id },
      );
    }
    return t as Extract<BtfType, { kind: K }>;
  }

  /** All types in id order, index 0 being void (undefined). */
  types(): (BtfType | undefined)[] {
    const out: (BtfType | undefined)[] = [undefined];
    for (let id = 1; id < this.typeCount; id++) out.push(this.type(id));
    return out;
  }

  private decode(i: number): BtfType {
    const dv = this.dv;
    const le = this.littleEndian;
    const off = this.recOff[i] as number;
    const info = this.infos[i] as number;
    const kind = (info >>> 24) & 0x1f;
    const vlen = info & 0xffff;
    const kflag = info >>> 31 === 1;
    const nameOff = dv.getUint32(off, le);
    const sizeOrType = dv.getUint32(off + 8, le);
    const name = this.str(nameOff);
    const x = off + 12;
    switch (kind) {
      case BTF_KIND.INT: {
        const v = dv.getUint32(x, le);
        return {
          kind: 'int',
          name,
          size: sizeOrType,
          encoding: (v >>> 24) & 0x0f,
          bitsOffset: (v >>> 16) & 0xff,
          bits: v & 0xff,
        };
      }
      case BTF_KIND.PTR:
        return { kind: 'ptr', type: sizeOrType };
      case BTF_KIND.ARRAY:
        return {
          kind: 'array',
          type: dv.getUint32(x, le),
          indexType: dv.getUint32(x + 4, le),
          nelems: dv.getUint32(x + 8, le),
        };
      case BTF_KIND.STRUCT:
      case BTF_KIND.UNION: {
        const members = new Array<{
          name: string;
          type: number;
          bitsOffset: number;
          bitfieldSize: number;
        }>(vlen);
        for (let k = 0, p = x; k < vlen; k++, p += 12) {
          const o = dv.getUint32(p + 8, le);
          members[k] = {
            name: this.str(dv.getUint32(p, le)),
            type: dv.getUint32(p + 4, le),
            bitsOffset: kflag ? o & 0xffffff : o,
            bitfieldSize: kflag ? o >>> 24 : 0,
          };
        }
        return {
          kind: kind === BTF_KIND.STRUCT ? 'struct' : 'union',
          name,
          size: sizeOrType,
          members,
        };
      }
      case BTF_KIND.ENUM: {
        const values = new Array<{ name: string; value: number }>(vlen);
        for (let k = 0, p = x; k < vlen; k++, p += 8) {
          values[k] = {
            name: this.str(dv.getUint32(p, le)),
            value: kflag ? dv.getInt32(p + 4, le) : dv.getUint32(p + 4, le),
          };
        }
        return { kind: 'enum', name, size: sizeOrType, signed: kflag, values };
      }
      case BTF_KIND.ENUM64: {
        const values = new Array<{ name: string; value: bigint }>(vlen);
        for (let k = 0, p = x; k < vlen; k++, p += 12) {
          const raw = (BigInt(dv.getUint32(p + 8, le)) << 32n) | BigInt(dv.getUint32(p + 4, le));
          values[k] = {
            name: this.str(dv.getUint32(p, le)),
            value: kflag ? BigInt.asIntN(64, raw) : raw,
          };
        }
        return { kind: 'enum64', name, size: sizeOrType, signed: kflag, values };
      }
      case BTF_KIND.FWD:
        return { kind: 'fwd', name, union: kflag };
      case BTF_KIND.TYPEDEF:
        return { kind: 'typedef', name, type: sizeOrType };
      case BTF_KIND.VOLATILE:
        return { kind: 'volatile', type: sizeOrType };
      case BTF_KIND.CONST:
        return { kind: 'const', type: sizeOrType };
      case BTF_KIND.RESTRICT:
        return { kind: 'restrict', type: sizeOrType };
      case BTF_KIND.TYPE_TAG:
        return { kind: 'type_tag', name, type: sizeOrType };
      case BTF_KIND.FUNC:
        return { kind: 'func', name, type: sizeOrType, linkage: vlen };
      case BTF_KIND.FUNC_PROTO: {
        const params = new Array<{ name: string; type: number }>(vlen);
        for (let k = 0, p = x; k < vlen; k++, p += 8) {
          params[k] = { name: this.str(dv.getUint32(p, le)), type: dv.getUint32(p + 4, le) };
        }
        return { kind: 'func_proto', returnType: sizeOrType, params };
      }
      case BTF_KIND.VAR:
        return { kind: 'var', name, type: sizeOrType, linkage: dv.getUint32(x, le) };
      case BTF_KIND.DATASEC: {
        const vars = new Array<{ type: number; offset: number; size: number }>(vlen);
        for (let k = 0, p = x; k < vlen; k++, p += 12) {
          vars[k] = {
            type: dv.getUint32(p, le),
            offset: dv.getUint32(p + 4, le),
            size: dv.getUint32(p + 8, le),
          };
        }
        return { kind: 'datasec', name, size: sizeOrType, vars };
      }
      case BTF_KIND.FLOAT:
        return { kind: 'float', name, size: sizeOrType };
      case BTF_KIND.DECL_TAG:
        return { kind: 'decl_tag', name, type: sizeOrType, componentIdx: dv.getInt32(x, le) };
      default:
        throw new BtfError('EINVAL', `invalid kind ${kind}`, {
          typeId: this.startId + i,
          offset: off + 4,
        });
    }
  }

  /** Where the bytes of string `off` live: this blob's or a base's string section. */
  private strBytes(off: number): { bytes: Uint8Array; pos: number } {
    if (off < this.startStrOff) return (this.base as Btf).strBytes(off);
    return { bytes: this.blob, pos: this.strStart + off - this.startStrOff };
  }

  /**
   * Open-addressing hash table over the raw name bytes: no JS strings are created,
   * which keeps indexing vmlinux's ~126k names within a few milliseconds.
   * Each slot holds the lowest local index of one distinct name; nameNext chains
   * the other types with the same name in ascending id order.
   */
  private buildIndex(): void {
    const n = this.recOff.length;
    let size = 16;
    while (size < n * 2) size *= 2;
    const table = new Int32Array(size).fill(-1);
    const next = new Int32Array(n).fill(-1);
    const hashes = new Uint32Array(n);
    const dv = this.dv;
    const le = this.littleEndian;
    const mask = size - 1;
    for (let i = n - 1; i >= 0; i--) {
      const nameOff = dv.getUint32(this.recOff[i] as number, le);
      if (nameOff === 0 || nameOff >= this.strLen) continue;
      const { bytes, pos } = this.strBytes(nameOff);
      const h = hashBytes(bytes, pos, bytes.length);
      hashes[i] = h;
      let slot = h & mask;
      for (;;) {
        const head = table[slot] as number;
        if (head < 0) {
          table[slot] = i;
          break;
        }
        if (hashes[head] === h && this.sameName(head, nameOff)) {
          next[i] = head;
          table[slot] = i;
          break;
        }
        slot = (slot + 1) & mask;
      }
    }
    this.nameTable = table;
    this.nameNext = next;
    this.nameHashes = hashes;
  }

  private sameName(i: number, nameOff: number): boolean {
    const other = this.dv.getUint32(this.recOff[i] as number, this.littleEndian);
    if (other === nameOff) return true;
    const a = this.strBytes(other);
    const b = this.strBytes(nameOff);
    for (let k = 0; ; k++) {
      const x = a.pos + k < a.bytes.length ? (a.bytes[a.pos + k] as number) : 0;
      const y = b.pos + k < b.bytes.length ? (b.bytes[b.pos + k] as number) : 0;
      if (x !== y) return false;
      if (x === 0) return true;
    }
  }

  /** Local index of the first type with this name, or -1. */
  private lookupHead(name: string): number {
    if (this.nameTable === undefined) this.buildIndex();
    const table = this.nameTable as Int32Array;
    const hashes = this.nameHashes as Uint32Array;
    const q = utf8enc.encode(name + '\0');
    const h = hashBytes(q, 0, q.length);
    const mask = table.length - 1;
    for (let slot = h & mask; ; slot = (slot + 1) & mask) {
      const head = table[slot] as number;
      if (head < 0) return -1;
      if (hashes[head] !== h) continue;
      const { bytes, pos } = this.strBytes(
        this.dv.getUint32(this.recOff[head] as number, this.littleEndian),
      );
      let k = 0;
      while (k < q.length && pos + k < bytes.length && bytes[pos + k] === q[k]) k++;
      if (k === q.length) return head;
    }
  }

  /** Build the name index now (it is otherwise built on the first lookup). */
  index(): this {
    if (this.nameTable === undefined) this.buildIndex();
    if (this.base) this.base.index();
    return this;
  }

  /** All type ids with this name (any kind), ascending, including the base's. */
  idsByName(name: string): number[] {
    const out = this.base ? this.base.idsByName(name) : [];
    if (name === '') return out;
    const head = this.lookupHead(name);
    // lookupHead builds the index on first use, so read the chains only after it.
    const next = this.nameNext as Int32Array;
    for (let i = head; i >= 0; i = next[i] as number) out.push(this.startId + i);
    return out;
  }

  /** The first type id with this name and kind, or undefined. O(1) through the name index. */
  find(name: string, kind: BtfKindName): number | undefined {
    const want = kindNumber(kind);
    if (this.base) {
      const b = this.base.find(name, kind);
      if (b !== undefined) return b;
    }
    if (name === '') return undefined;
    const head = this.lookupHead(name);
    // lookupHead builds the index on first use, so read the chains only after it.
    const next = this.nameNext as Int32Array;
    for (let i = head; i >= 0; i = next[i] as number) {
      if ((((this.infos[i] as number) >>> 24) & 0x1f) === want) return this.startId + i;
    }
    return undefined;
  }

  /** Like find(), but a missing type is an ENOENT error. */
  get(name: string, kind: BtfKindName): number {
    const id = this.find(name, kind);
    if (id === undefined) throw new BtfError('ENOENT', `no ${kind.toUpperCase()} named '${name}'`);
    return id;
  }

  /** Follow typedefs, cv-qualifiers and type tags to the underlying type id. */
  resolve(id: number): number {
    return resolveType(this, id);
  }

  sizeOf(id: number): number {
    return sizeOfType(this, id);
  }

  alignOf(id: number): number {
    return alignOfType(this, id);
  }

  /**
   * Member location by path. `path` is `type.member[.member...]` (for example
   * `task_struct.pid`, `sock.__sk_common.skc_family`), or just the member path when
   * `rootId` is given. The root name is looked up as struct, then union, then typedef.
   */
  offsetOf(path: string, rootId?: number): MemberLocation {
    if (rootId !== undefined) return memberOffset(this, rootId, path);
    const dot = path.indexOf('.');
    if (dot <= 0) {
      throw new BtfError('EINVAL', `member path '${path}' needs 'type.member'`);
    }
    const root = path.slice(0, dot);
    const id = this.find(root, 'struct') ?? this.find(root, 'union') ?? this.find(root, 'typedef');
    if (id === undefined) throw new BtfError('ENOENT', `no struct, union or typedef '${root}'`);
    return memberOffset(this, id, path.slice(dot + 1));
  }

  /** Which member an access of `size` bytes at byte `offset` into `rootId` reads. */
  memberAt(rootId: number, offset: number, size: number): MemberAccess {
    return memberAt(this, rootId, offset, size);
  }

  /** Every FUNC with its prototype, in id order (base functions first). */
  funcs(): BtfFuncEntry[] {
    const out: BtfFuncEntry[] = this.base ? this.base.funcs() : [];
    for (let i = 0; i < this.recOff.length; i++) {
      if ((((this.infos[i] as number) >>> 24) & 0x1f) !== BTF_KIND.FUNC) continue;
      const id = this.startId + i;
      const func = this.type(id) as BtfFunc;
      const p = func.type === 0 || func.type >= this.typeCount ? undefined : this.type(func.type);
      out.push({
        id,
        name: func.name,
        func,
        proto: p?.kind === 'func_proto' ? p : undefined,
        protoId: func.type,
      });
    }
    return out;
  }

  /** Number of types of each kind (local types only), keyed by upper-case kind name. */
  kindCounts(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (let i = 0; i < this.infos.length; i++) {
      const k = KIND_NAMES[((this.infos[i] as number) >>> 24) & 0x1f] as string;
      const key = k.toUpperCase();
      counts[key] = (counts[key] ?? 0) + 1;
    }
    return counts;
  }
}

/** Parse a raw BTF blob (either byte order; split when `opts.base` is given). */
export function parseBtf(blob: Uint8Array, opts: ParseOptions = {}): Btf {
  return new Btf(blob, opts);
}
