import type { Btf } from './btf.js';
import { BtfError } from './error.js';
import { TextSink } from './sink.js';
import { BTF_KIND } from './types.js';
import { typeWords } from './words.js';

const HEADER =
  '#ifndef __VMLINUX_H__\n#define __VMLINUX_H__\n\n#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n' +
  '#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)\n#endif\n\n';
const FOOTER =
  '#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n#pragma clang attribute pop\n#endif\n\n#endif /* __VMLINUX_H__ */\n';

const ORDERING = 1;
/** Deeper type chains than this only come from reference cycles. */
const MAX_DEPTH = 512;
/** Largest hole (in bits, 64 KiB) the C dump spells out with unnamed bitfields. */
const MAX_PAD_BITS = 64 * 1024 * 8;
const ORDERED = 2;
/** The bounds graph.ts's resolveType and alignOfType give up at (the kernel's MAX_RESOLVE_DEPTH). */
const MAX_RESOLVE_DEPTH = 32;
const MAX_NESTING = 256;

const {
  INT,
  PTR,
  ARRAY,
  STRUCT,
  UNION,
  ENUM,
  FWD,
  TYPEDEF,
  VOLATILE,
  CONST,
  RESTRICT,
  FUNC_PROTO,
  VAR,
  DATASEC,
  FLOAT,
  DECL_TAG,
  TYPE_TAG,
  ENUM64,
} = BTF_KIND;

const TABS = Array.from({ length: 64 }, (_, i) => '\t'.repeat(i));
const tabs = (n: number): string => TABS[n] ?? '\t'.repeat(n);

function join(base: string, declarator: string): string {
  return declarator === '' ? base : `${base} ${declarator}`;
}

function roundUp(v: number, a: number): number {
  return Math.ceil(v / a) * a;
}

/** const, volatile, restrict and type tags: kinds a pointer's target is looked through. */
function isQualifier(kind: number): boolean {
  return kind === VOLATILE || kind === CONST || kind === RESTRICT || kind === TYPE_TAG;
}

function qualifierKeyword(kind: number): string {
  return kind === CONST ? 'const' : kind === VOLATILE ? 'volatile' : 'restrict';
}

function isWordChar(c: number): boolean {
  return c === 95 || (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

/** `/^(const|volatile|restrict)\b/.test(s)` without a regex run per pointer. */
function startsQualified(s: string): boolean {
  let n: number;
  if (s.startsWith('const')) n = 5;
  else if (s.startsWith('volatile') || s.startsWith('restrict')) n = 8;
  else return false;
  return s.length === n || !isWordChar(s.charCodeAt(n));
}

/**
 * C header writer in the manner of libbpf's btf_dump: types are ordered so that every
 * by-value use follows its definition, pointers only need forward declarations (which
 * are emitted just before first use), anonymous types are inlined, and clashing names
 * get `___N` suffixes so the header compiles.
 *
 * It reads the raw type records (see words.ts) rather than Btf.type(): decoding all of
 * vmlinux into objects made the garbage collector the biggest cost of the dump.
 */
class CDumper {
  private readonly sink = new TextSink();
  private readonly words: Uint32Array;
  private readonly rec: Uint32Array;
  private readonly kinds: Uint8Array;
  private readonly n: number;
  /**
   * Strings by offset (BTF deduplicates names, so most lookups hit): `strAt[off]` is 1 +
   * the string's index in `strList`, 0 when not read yet.
   */
  private readonly strAt: Uint32Array;
  private readonly strList: string[] = [];
  /** Each type's own (not yet deduplicated) name. */
  private readonly ownNames: (string | undefined)[];
  private readonly ptrSize: number;
  private readonly order: Uint8Array;
  /** 0 nothing emitted, 1 forward-declared, 2 defined. */
  private readonly emitted: Uint8Array;
  private readonly referenced: Uint8Array;
  private readonly names: (string | undefined)[];
  private readonly typeNames = new Map<string, number>();
  private readonly identNames = new Map<string, number>();
  private readonly queue: number[] = [];
  /** Generation stamps instead of a Set per walk: seen[id] === gen means visited. */
  private readonly seen: Uint32Array;
  private gen = 0;
  private depth = 0;
  /** Padding types from widest to narrowest, `long` being pointer-sized. */
  private readonly pads: readonly (readonly [string, number])[];
  private readonly alignCache: Int8Array;
  /** alignOf's memo: the alignment (0 when not known) and the depth of the walk below. */
  private readonly alignMemo: Int8Array;
  private readonly alignHeight: Uint16Array;
  /** Deepest level the current alignOf walk has reached. */
  private alignReach = 0;
  private readonly sizeCache: Float64Array;

  constructor(private readonly btf: Btf) {
    const n = btf.typeCount;
    ({ words: this.words, rec: this.rec } = typeWords(btf));
    this.n = n;
    this.kinds = new Uint8Array(n);
    this.ptrSize = btf.ptrSize;
    this.order = new Uint8Array(n);
    this.emitted = new Uint8Array(n);
    this.referenced = new Uint8Array(n);
    this.pads = [
      ['long', this.ptrSize * 8],
      ['int', 32],
      ['short', 16],
      ['char', 8],
    ];
    this.names = new Array<string | undefined>(n);
    this.ownNames = new Array<string | undefined>(n);
    this.strAt = new Uint32Array(btf.strLen);
    this.seen = new Uint32Array(n);
    this.alignCache = new Int8Array(n);
    this.alignMemo = new Int8Array(n);
    this.alignHeight = new Uint16Array(n);
    this.sizeCache = new Float64Array(n).fill(-1);
    this.prepare();
  }

  private w(i: number): number {
    return this.words[i] as number;
  }

  private kind(id: number): number {
    return this.kinds[id] as number;
  }

  /** The record's third word: a size or a type id, depending on the kind. */
  private sizeOrType(id: number): number {
    return this.w((this.rec[id] as number) + 2);
  }

  private vlen(id: number): number {
    return this.w((this.rec[id] as number) + 1) & 0xffff;
  }

  private kflag(id: number): boolean {
    return this.w((this.rec[id] as number) + 1) >>> 31 === 1;
  }

  /** Index in `words` of the kind-specific data after the 12-byte common header. */
  private data(id: number): number {
    return (this.rec[id] as number) + 3;
  }

  private str(off: number): string {
    const at = this.strAt[off] as number;
    if (at !== 0) return this.strList[at - 1] as string;
    const s = this.btf.str(off);
    this.strAt[off] = this.strList.push(s);
    return s;
  }

  private typeName(id: number): string {
    const cached = this.ownNames[id];
    if (cached !== undefined) return cached;
    const name = this.str(this.w(this.rec[id] as number));
    this.ownNames[id] = name;
    return name;
  }

  /**
   * Record kinds, mark anonymous types used by another type (those are inlined rather
   * than emitted alone), and check every string and every type id the dump may follow
   * up front, so bad ones fail as Btf.str() and Btf.type() do and later reads need no checks.
   */
  private prepare(): void {
    const { n, btf } = this;
    const strLen = btf.strLen;
    const name = (off: number) => {
      if (off >= strLen) btf.str(off);
    };
    // Ids the dump never follows (a VAR's type, an array's index type) are only marked.
    const mark = (id: number) => {
      if (id < n) this.referenced[id] = 1;
    };
    const ref = (id: number) => {
      if (id >= n) btf.type(id);
      this.referenced[id] = 1;
    };
    for (let id = 1; id < n; id++) {
      const r = this.rec[id] as number;
      const info = this.w(r + 1);
      const kind = (info >>> 24) & 0x1f;
      const vlen = info & 0xffff;
      const x = r + 3;
      this.kinds[id] = kind;
      name(this.w(r));
      switch (kind) {
        case STRUCT:
        case UNION:
          for (let k = 0, p = x; k < vlen; k++, p += 3) {
            name(this.w(p));
            ref(this.w(p + 1));
          }
          break;
        case ENUM:
          for (let k = 0, p = x; k < vlen; k++, p += 2) name(this.w(p));
          break;
        case ENUM64:
          for (let k = 0, p = x; k < vlen; k++, p += 3) name(this.w(p));
          break;
        case FUNC_PROTO:
          ref(this.w(r + 2));
          for (let k = 0, p = x; k < vlen; k++, p += 2) {
            name(this.w(p));
            ref(this.w(p + 1));
          }
          break;
        case ARRAY:
          ref(this.w(x));
          mark(this.w(x + 1));
          break;
        case PTR:
        case TYPEDEF:
        case CONST:
        case VOLATILE:
        case RESTRICT:
        case TYPE_TAG:
          ref(this.w(r + 2));
          break;
        case VAR:
          mark(this.w(r + 2));
          break;
        default:
          break;
      }
    }
    this.referenced[0] = 0;
  }

  private resolveName(id: number): string {
    const cached = this.names[id];
    if (cached !== undefined) return cached;
    const base = this.typeName(id);
    if (base === '') return '';
    const map = this.kind(id) === TYPEDEF ? this.identNames : this.typeNames;
    const count = (map.get(base) ?? 0) + 1;
    map.set(base, count);
    const name = count > 1 ? `${base}___${count}` : base;
    this.names[id] = name;
    return name;
  }

  private identName(name: string): string {
    const count = (this.identNames.get(name) ?? 0) + 1;
    this.identNames.set(name, count);
    return count > 1 ? `${name}___${count}` : name;
  }

  /**
   * Queue the types `id` needs defined, dependencies first. Returns whether `id` is
   * "strong": a use of it needs its full definition, not just a forward declaration.
   */
  private orderType(id: number, throughPtr: boolean): boolean {
    this.enter(id);
    try {
      return this.orderTypeInner(id, throughPtr);
    } finally {
      this.depth--;
    }
  }

  /** Bounds recursion so cyclic (invalid) BTF fails with an error, not a stack overflow. */
  private enter(id: number): void {
    if (++this.depth > MAX_DEPTH) {
      this.depth = 0;
      throw new BtfError('ELOOP', `type chain deeper than ${MAX_DEPTH} (a reference cycle?)`, {
        typeId: id,
      });
    }
  }

  private orderTypeInner(id: number, throughPtr: boolean): boolean {
    if (id === 0 || this.order[id] === ORDERED) return true;
    if (this.order[id] === ORDERING) {
      // A cycle is fine only through a pointer to a named struct/union.
      return false;
    }
    switch (this.kind(id)) {
      case INT:
      case FLOAT:
        this.order[id] = ORDERED;
        return false;
      case PTR:
        return this.orderType(this.sizeOrType(id), true);
      case ARRAY:
        return this.orderType(this.w(this.data(id)), false);
      case CONST:
      case VOLATILE:
      case RESTRICT:
      case TYPE_TAG:
        return this.orderType(this.sizeOrType(id), throughPtr);
      case STRUCT:
      case UNION: {
        const named = this.typeName(id) !== '';
        if (throughPtr && named) return false;
        this.order[id] = ORDERING;
        const vlen = this.vlen(id);
        for (let k = 0, p = this.data(id) + 1; k < vlen; k++, p += 3) {
          this.orderType(this.w(p), false);
        }
        if (named) this.queue.push(id);
        this.order[id] = ORDERED;
        return true;
      }
      case ENUM:
      case ENUM64:
      case FWD:
        if (this.typeName(id) !== '' || !this.referenced[id]) this.queue.push(id);
        this.order[id] = ORDERED;
        return true;
      case TYPEDEF: {
        const strong = this.orderType(this.sizeOrType(id), throughPtr);
        // Like a struct, a typedef used only through pointers is declared on first use.
        if (throughPtr && !strong) return false;
        this.queue.push(id);
        this.order[id] = ORDERED;
        return true;
      }
      case FUNC_PROTO: {
        let strong = this.orderType(this.sizeOrType(id), throughPtr);
        const vlen = this.vlen(id);
        for (let k = 0, p = this.data(id) + 1; k < vlen; k++, p += 2) {
          if (this.orderType(this.w(p), throughPtr)) strong = true;
        }
        return strong;
      }
      default:
        this.order[id] = ORDERED;
        return false;
    }
  }

  /** Emit forward declarations for named structs/unions that `id` uses but are not out yet. */
  private emitFwds(id: number, self: number): void {
    if (id === 0 || this.seen[id] === this.gen) return;
    this.seen[id] = this.gen;
    switch (this.kind(id)) {
      case PTR:
      case CONST:
      case VOLATILE:
      case RESTRICT:
      case TYPE_TAG:
        this.emitFwds(this.sizeOrType(id), self);
        return;
      case ARRAY:
        this.emitFwds(this.w(this.data(id)), self);
        return;
      case FUNC_PROTO: {
        this.emitFwds(this.sizeOrType(id), self);
        const vlen = this.vlen(id);
        for (let k = 0, p = this.data(id) + 1; k < vlen; k++, p += 2) {
          this.emitFwds(this.w(p), self);
        }
        return;
      }
      case STRUCT:
      case UNION:
        if (this.typeName(id) === '') {
          const vlen = this.vlen(id);
          for (let k = 0, p = this.data(id) + 1; k < vlen; k++, p += 3) {
            this.emitFwds(this.w(p), self);
          }
        } else if (id !== self && this.emitted[id] === 0) {
          this.write(`${this.compositeKeyword(id)} ${this.resolveName(id)};\n\n`);
          this.emitted[id] = 1;
        }
        return;
      case FWD:
        if (this.emitted[id] === 0) this.emitFwdDef(id);
        return;
      case TYPEDEF:
        if (this.emitted[id] === 0) this.emitTypedef(id);
        return;
      default:
        return;
    }
  }

  private compositeKeyword(id: number): string {
    return this.kind(id) === STRUCT ? 'struct' : 'union';
  }

  private emitTypedef(id: number): void {
    this.emitted[id] = 2;
    if (this.typeName(id) === '__builtin_va_list') return;
    const target = this.sizeOrType(id);
    this.newWalk(id);
    this.emitFwds(target, id);
    this.write(`typedef ${this.decl(target, this.resolveName(id), 0)};\n\n`);
  }

  private write(text: string): void {
    this.sink.write(text);
  }

  private newWalk(start: number): void {
    this.gen++;
    this.seen[start] = this.gen;
  }

  private emitFwdDef(id: number): void {
    this.write(`${this.kflag(id) ? 'union' : 'struct'} ${this.resolveName(id)};\n\n`);
    this.emitted[id] = 2;
  }

  private emitQueued(id: number): void {
    if (this.emitted[id] === 2) return;
    switch (this.kind(id)) {
      case FWD:
        this.emitFwdDef(id);
        return;
      case ENUM:
      case ENUM64:
        this.emitted[id] = 2;
        this.write(`${this.enumDef(id, 0)};\n\n`);
        return;
      case STRUCT:
      case UNION: {
        this.newWalk(id);
        const vlen = this.vlen(id);
        for (let k = 0, p = this.data(id) + 1; k < vlen; k++, p += 3) {
          this.emitFwds(this.w(p), id);
        }
        this.emitted[id] = 2;
        this.write(`${this.compositeDef(id, 0)};\n\n`);
        return;
      }
      case TYPEDEF:
        this.emitTypedef(id);
        return;
      default:
        return;
    }
  }

  private enumDef(id: number, indent: number): string {
    const name = this.resolveName(id);
    let s = name ? `enum ${name} {\n` : 'enum {\n';
    const signed = this.kflag(id);
    const vlen = this.vlen(id);
    const ind = tabs(indent + 1);
    if (this.kind(id) === ENUM) {
      for (let k = 0, p = this.data(id); k < vlen; k++, p += 2) {
        const v = signed ? this.w(p + 1) | 0 : this.w(p + 1);
        s += `${ind}${this.identName(this.str(this.w(p)))} = ${v},\n`;
      }
    } else {
      const suffix = signed ? 'LL' : 'ULL';
      for (let k = 0, p = this.data(id); k < vlen; k++, p += 3) {
        const raw = (BigInt(this.w(p + 2)) << 32n) | BigInt(this.w(p + 1));
        const v = signed ? BigInt.asIntN(64, raw) : raw;
        s += `${ind}${this.identName(this.str(this.w(p)))} = ${v}${suffix},\n`;
      }
    }
    return s + `${tabs(indent)}}`;
  }

  private compositeDef(id: number, indent: number): string {
    const name = this.resolveName(id);
    const isStruct = this.kind(id) === STRUCT;
    const vlen = this.vlen(id);
    const size = this.sizeOrType(id);
    const kflag = this.kflag(id);
    const packed = vlen > 0 && this.safeAlign(id) === 1 && this.naturalAlign(id) > 1;
    const keyword = isStruct ? 'struct' : 'union';
    const open = name ? `${keyword} ${name} {` : `${keyword} {`;
    if (vlen === 0 && size === 0) return `${open}}`;
    let s = `${open}\n`;
    const ind = tabs(indent + 1);
    let cur = 0;
    let prevBitfield = false;
    for (let k = 0, p = this.data(id); k < vlen; k++, p += 3) {
      const mname = this.str(this.w(p));
      const mtype = this.w(p + 1);
      const o = this.w(p + 2);
      const bitsOffset = kflag ? o & 0xffffff : o;
      let bits = kflag ? o >>> 24 : 0;
      if (bits === 0 && this.kind(mtype) === INT) {
        // An old-style bitfield: an INT narrower than its storage.
        const intBits = this.w(this.data(mtype)) & 0xff;
        if (intBits !== this.sizeOrType(mtype) * 8) bits = intBits;
      }
      if (isStruct) {
        const align = packed ? 1 : this.safeAlign(mtype);
        s += this.padding(
          cur,
          bitsOffset,
          align,
          prevBitfield && bits !== 0,
          indent + 1,
          id,
          mname,
        );
      }
      s += `${ind}${this.decl(mtype, mname, indent + 1)}${bits > 0 ? `: ${bits}` : ''};\n`;
      cur = bitsOffset + (bits > 0 ? bits : this.safeSize(mtype) * 8);
      prevBitfield = bits !== 0;
    }
    if (isStruct) {
      s += this.padding(cur, size * 8, packed ? 1 : this.safeAlign(id), false, indent + 1, id);
    }
    return s + `${tabs(indent)}}${packed ? ' __attribute__((packed))' : ''}`;
  }

  private naturalAlign(id: number): number {
    let a = 1;
    const vlen = this.vlen(id);
    for (let k = 0, p = this.data(id) + 1; k < vlen; k++, p += 3) {
      a = Math.max(a, this.safeAlign(this.w(p)));
    }
    return a;
  }

  /** Alignment, memoised; a type whose alignment cannot be computed counts as 1. */
  private safeAlign(id: number): number {
    const cached = this.alignCache[id] as number;
    if (cached !== 0) return cached;
    const computed = this.alignOf(id, 0);
    const a = computed < 0 ? 1 : computed;
    this.alignCache[id] = a;
    return a;
  }

  /**
   * graph.ts's alignOfType over the raw records; -1 where that one throws. Successes are
   * memoised with how many levels below `id` their walk went, so a query from a depth where
   * that walk would cross MAX_NESTING walks again and fails as alignOfType does.
   */
  private alignOf(id: number, depth: number): number {
    const memo = this.alignMemo[id] as number;
    if (memo !== 0) {
      const reach = depth + (this.alignHeight[id] as number);
      if (reach <= MAX_NESTING) {
        if (reach > this.alignReach) this.alignReach = reach;
        return memo;
      }
    }
    const outer = this.alignReach;
    this.alignReach = depth;
    const a = this.alignWalk(id, depth);
    if (a > 0) {
      this.alignMemo[id] = a;
      this.alignHeight[id] = this.alignReach - depth;
    }
    if (outer > this.alignReach) this.alignReach = outer;
    return a;
  }

  private alignWalk(id: number, depth: number): number {
    if (depth > MAX_NESTING) return -1;
    const rid = this.resolve(id);
    if (rid <= 0) return -1;
    switch (this.kind(rid)) {
      case INT:
      case ENUM:
      case ENUM64:
      case FLOAT:
        return Math.max(1, Math.min(this.ptrSize, this.sizeOrType(rid)));
      case PTR:
        return this.ptrSize;
      case ARRAY:
        return this.alignOf(this.w(this.data(rid)), depth + 1);
      case STRUCT:
      case UNION: {
        const kflag = this.kflag(rid);
        const vlen = this.vlen(rid);
        let max = 1;
        for (let k = 0, p = this.data(rid); k < vlen; k++, p += 3) {
          const a = this.alignOf(this.w(p + 1), depth + 1);
          if (a < 0) return -1;
          const o = this.w(p + 2);
          const bitfieldSize = kflag ? o >>> 24 : 0;
          const bitsOffset = kflag ? o & 0xffffff : o;
          // A non-bitfield member off its natural alignment means the struct is packed.
          if (bitfieldSize === 0 && bitsOffset % (8 * a) !== 0) return 1;
          if (a > max) max = a;
        }
        return this.sizeOrType(rid) % max !== 0 ? 1 : max;
      }
      default:
        return -1;
    }
  }

  /** graph.ts's resolveType over the raw records; -1 where that one throws. */
  private resolve(id: number): number {
    let cur = id;
    for (let depth = 0; depth <= MAX_RESOLVE_DEPTH; depth++) {
      if (cur >= this.n) return -1;
      const kind = this.kind(cur);
      if (cur === 0 || (kind !== TYPEDEF && !isQualifier(kind))) return cur;
      cur = this.sizeOrType(cur);
    }
    return -1;
  }

  /** Size, memoised; a type without a size counts as 0. */
  private safeSize(id: number): number {
    const cached = this.sizeCache[id] as number;
    if (cached >= 0) return cached;
    const computed = this.sizeOf(id);
    const n = computed < 0 ? 0 : computed;
    this.sizeCache[id] = n;
    return n;
  }

  /** graph.ts's sizeOfType over the raw records; -1 where that one throws. */
  private sizeOf(id: number): number {
    let cur = id;
    let mult = 1;
    for (let depth = 0; depth <= MAX_RESOLVE_DEPTH; depth++) {
      if (cur === 0 || cur >= this.n) return -1;
      switch (this.kind(cur)) {
        case INT:
        case STRUCT:
        case UNION:
        case ENUM:
        case ENUM64:
        case DATASEC:
        case FLOAT:
          return mult * this.sizeOrType(cur);
        case PTR:
          return mult * this.ptrSize;
        case ARRAY:
          mult *= this.w(this.data(cur) + 2);
          cur = this.w(this.data(cur));
          break;
        case TYPEDEF:
        case VOLATILE:
        case CONST:
        case RESTRICT:
        case TYPE_TAG:
        case VAR:
        case DECL_TAG:
          cur = this.sizeOrType(cur);
          break;
        default:
          return -1;
      }
    }
    return -1;
  }

  /**
   * Unnamed bitfields that make clang leave the gap [from, to) the BTF layout has,
   * relying on natural alignment where it already produces the gap (libbpf's rules).
   * `member` names the member the gap precedes (none for the tail), for the error.
   */
  private padding(
    from: number,
    to: number,
    nextAlign: number,
    inBitfield: boolean,
    indent: number,
    id: number,
    member?: string,
  ): string {
    if (from >= to) return '';
    if (to - from > MAX_PAD_BITS) {
      const where = { id, what: member === undefined ? 'at the end' : `before member '${member}'` };
      // Only corrupt BTF has such holes; spelling them out would mean gigabytes of text.
      throw new BtfError(
        'E2BIG',
        `gap of ${Math.floor((to - from) / 8)} bytes ${where.what} is too large to pad`,
        {
          typeId: where.id,
        },
      );
    }
    const pads = this.pads;
    let s = '';
    let cur = from;
    let [padType, padBits] = pads[pads.length - 1] as [string, number];
    let newOff = cur;
    for (const [name, bits] of pads) {
      padType = name;
      padBits = bits;
      newOff = roundUp(cur, bits);
      if (newOff <= to) break;
    }
    if (newOff > cur && newOff <= to) {
      // An explicit `type: 0` mark is needed when natural alignment alone would not land there.
      if (
        inBitfield ||
        (newOff === to && roundUp(cur, nextAlign * 8) !== newOff) ||
        (newOff !== to && to - newOff <= newOff - cur)
      ) {
        s += `${tabs(indent)}${padType}: ${inBitfield ? newOff - cur : 0};\n`;
      }
      cur = newOff;
    }
    while (cur !== to) {
      const bits = Math.min(to - cur, padBits);
      if (bits === padBits) {
        s += `${tabs(indent)}${padType}: ${padBits};\n`;
        cur += bits;
        continue;
      }
      // The remainder uses the smallest type that holds it.
      for (let i = pads.length - 1; i >= 0; i--) {
        const [name, width] = pads[i] as [string, number];
        if (width < bits) continue;
        s += `${tabs(indent)}${name}: ${bits};\n`;
        cur += bits;
        break;
      }
    }
    return s;
  }

  /** A C declaration of `inner` (a declarator, possibly empty) with type `id`. */
  decl(id: number, inner: string, indent: number): string {
    this.enter(id);
    try {
      return this.declInner(id, inner, indent);
    } finally {
      this.depth--;
    }
  }

  private declInner(id: number, inner: string, indent: number): string {
    if (id === 0) return join('void', inner);
    const kind = this.kind(id);
    switch (kind) {
      case INT:
      case FLOAT:
        return join(this.typeName(id), inner);
      case STRUCT:
      case UNION:
        return join(
          this.typeName(id) === ''
            ? this.compositeDef(id, indent)
            : `${this.compositeKeyword(id)} ${this.resolveName(id)}`,
          inner,
        );
      case ENUM:
      case ENUM64:
        return join(
          this.typeName(id) === '' ? this.enumDef(id, indent) : `enum ${this.resolveName(id)}`,
          inner,
        );
      case FWD:
        return join(`${this.kflag(id) ? 'union' : 'struct'} ${this.resolveName(id)}`, inner);
      case TYPEDEF:
        return join(this.resolveName(id), inner);
      case PTR: {
        const to = this.sizeOrType(id);
        let target = to;
        while (target !== 0 && isQualifier(this.kind(target))) target = this.sizeOrType(target);
        let d = startsQualified(inner) || inner.startsWith('(') ? `* ${inner}` : `*${inner}`;
        const tk = this.kind(target);
        if (target !== 0 && (tk === ARRAY || tk === FUNC_PROTO)) d = `(${d})`;
        return this.decl(to, d, indent);
      }
      case CONST:
      case VOLATILE:
      case RESTRICT: {
        const to = this.sizeOrType(id);
        const keyword = qualifierKeyword(kind);
        const tk = to === 0 ? 0 : this.kind(to);
        if (tk === PTR) return this.decl(to, join(keyword, inner), indent);
        const d = this.decl(to, inner, indent);
        // A qualified array is written as an array of qualified elements; avoid repeating it.
        return tk === ARRAY && d.startsWith(`${keyword} `) ? d : `${keyword} ${d}`;
      }
      case TYPE_TAG:
        return this.decl(this.sizeOrType(id), inner, indent);
      case ARRAY: {
        const x = this.data(id);
        return this.decl(this.w(x), `${inner}[${this.w(x + 2)}]`, indent);
      }
      case FUNC_PROTO: {
        const vlen = this.vlen(id);
        let params = vlen === 0 ? 'void' : '';
        for (let k = 0, p = this.data(id) + 1; k < vlen; k++, p += 2) {
          const type = this.w(p);
          const param = type === 0 ? '...' : this.decl(type, '', indent);
          params = k === 0 ? param : `${params}, ${param}`;
        }
        return this.decl(this.sizeOrType(id), `${inner}(${params})`, indent);
      }
      default:
        return join(this.typeName(id), inner);
    }
  }

  dump(): string {
    this.write(HEADER);
    for (let id = 1; id < this.n; id++) {
      // Most ids were ordered as dependencies of earlier ones; nothing to queue for them.
      if (this.order[id] === ORDERED) continue;
      this.queue.length = 0;
      this.orderType(id, false);
      for (const q of this.queue) this.emitQueued(q);
    }
    this.write(FOOTER);
    return this.sink.toString();
  }
}

/** The C header `bpftool btf dump file F format c` would print for this BTF. */
export function dumpC(btf: Btf): string {
  return new CDumper(btf).dump();
}
