import type { Btf } from './btf.js';
import { BtfError } from './error.js';
import { alignOfType } from './graph.js';
import { TextSink } from './sink.js';
import type { BtfComposite, BtfEnum, BtfEnum64, BtfType } from './types.js';

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

const TABS = Array.from({ length: 64 }, (_, i) => '\t'.repeat(i));
const tabs = (n: number): string => TABS[n] ?? '\t'.repeat(n);

function join(base: string, declarator: string): string {
  return declarator === '' ? base : `${base} ${declarator}`;
}

function roundUp(v: number, a: number): number {
  return Math.ceil(v / a) * a;
}

/**
 * C header writer in the manner of libbpf's btf_dump: types are ordered so that every
 * by-value use follows its definition, pointers only need forward declarations (which
 * are emitted just before first use), anonymous types are inlined, and clashing names
 * get `___N` suffixes so the header compiles.
 */
class CDumper {
  private readonly sink = new TextSink();
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
  private readonly sizeCache: Float64Array;

  constructor(private readonly btf: Btf) {
    const n = btf.typeCount;
    this.order = new Uint8Array(n);
    this.emitted = new Uint8Array(n);
    this.referenced = new Uint8Array(n);
    this.pads = [
      ['long', btf.ptrSize * 8],
      ['int', 32],
      ['short', 16],
      ['char', 8],
    ];
    this.names = new Array<string | undefined>(n);
    this.seen = new Uint32Array(n);
    this.alignCache = new Int8Array(n);
    this.sizeCache = new Float64Array(n).fill(-1);
    this.markReferenced();
  }

  private type(id: number): BtfType | undefined {
    return this.btf.type(id);
  }

  /** Anonymous types used by another type are inlined there rather than emitted alone. */
  private markReferenced(): void {
    const mark = (id: number) => {
      if (id > 0 && id < this.referenced.length) this.referenced[id] = 1;
    };
    for (let id = 1; id < this.btf.typeCount; id++) {
      const t = this.type(id) as BtfType;
      switch (t.kind) {
        case 'struct':
        case 'union':
          for (const m of t.members) mark(m.type);
          break;
        case 'func_proto':
          mark(t.returnType);
          for (const p of t.params) mark(p.type);
          break;
        case 'array':
          mark(t.type);
          mark(t.indexType);
          break;
        case 'ptr':
        case 'typedef':
        case 'const':
        case 'volatile':
        case 'restrict':
        case 'type_tag':
        case 'var':
          mark(t.type);
          break;
        default:
          break;
      }
    }
  }

  private resolveName(id: number, t: BtfType & { name: string }): string {
    const cached = this.names[id];
    if (cached !== undefined) return cached;
    if (t.name === '') return '';
    const map = t.kind === 'typedef' ? this.identNames : this.typeNames;
    const count = (map.get(t.name) ?? 0) + 1;
    map.set(t.name, count);
    const name = count > 1 ? `${t.name}___${count}` : t.name;
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
    const t = this.type(id) as BtfType;
    if (this.order[id] === ORDERING) {
      // A cycle is fine only through a pointer to a named struct/union.
      return false;
    }
    switch (t.kind) {
      case 'int':
      case 'float':
        this.order[id] = ORDERED;
        return false;
      case 'ptr':
        return this.orderType(t.type, true);
      case 'array':
        return this.orderType(t.type, false);
      case 'const':
      case 'volatile':
      case 'restrict':
      case 'type_tag':
        return this.orderType(t.type, throughPtr);
      case 'struct':
      case 'union':
        if (throughPtr && t.name !== '') return false;
        this.order[id] = ORDERING;
        for (const m of t.members) this.orderType(m.type, false);
        if (t.name !== '') this.queue.push(id);
        this.order[id] = ORDERED;
        return true;
      case 'enum':
      case 'enum64':
      case 'fwd':
        if (t.name !== '' || !this.referenced[id]) this.queue.push(id);
        this.order[id] = ORDERED;
        return true;
      case 'typedef': {
        const strong = this.orderType(t.type, throughPtr);
        // Like a struct, a typedef used only through pointers is declared on first use.
        if (throughPtr && !strong) return false;
        this.queue.push(id);
        this.order[id] = ORDERED;
        return true;
      }
      case 'func_proto': {
        let strong = this.orderType(t.returnType, throughPtr);
        for (const p of t.params) if (this.orderType(p.type, throughPtr)) strong = true;
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
    const t = this.type(id) as BtfType;
    switch (t.kind) {
      case 'ptr':
      case 'array':
      case 'const':
      case 'volatile':
      case 'restrict':
      case 'type_tag':
        this.emitFwds(t.type, self);
        return;
      case 'func_proto':
        this.emitFwds(t.returnType, self);
        for (const p of t.params) this.emitFwds(p.type, self);
        return;
      case 'struct':
      case 'union':
        if (t.name === '') {
          for (const m of t.members) this.emitFwds(m.type, self);
        } else if (id !== self && this.emitted[id] === 0) {
          this.write(`${t.kind} ${this.resolveName(id, t)};\n\n`);
          this.emitted[id] = 1;
        }
        return;
      case 'fwd':
        if (this.emitted[id] === 0) this.emitFwdDef(id);
        return;
      case 'typedef':
        if (this.emitted[id] === 0) this.emitTypedef(id, t);
        return;
      default:
        return;
    }
  }

  private emitTypedef(id: number, t: BtfType & { kind: 'typedef' }): void {
    this.emitted[id] = 2;
    if (t.name === '__builtin_va_list') return;
    this.newWalk(id);
    this.emitFwds(t.type, id);
    this.write(`typedef ${this.decl(t.type, this.resolveName(id, t), 0)};\n\n`);
  }

  private write(text: string): void {
    this.sink.write(text);
  }

  private newWalk(start: number): void {
    this.gen++;
    this.seen[start] = this.gen;
  }

  private emitFwdDef(id: number): void {
    const t = this.type(id) as BtfType & { kind: 'fwd' };
    this.write(`${t.union ? 'union' : 'struct'} ${this.resolveName(id, t)};\n\n`);
    this.emitted[id] = 2;
  }

  private emitQueued(id: number): void {
    if (this.emitted[id] === 2) return;
    const t = this.type(id) as BtfType;
    switch (t.kind) {
      case 'fwd':
        this.emitFwdDef(id);
        return;
      case 'enum':
      case 'enum64':
        this.emitted[id] = 2;
        this.write(`${this.enumDef(id, t, 0)};\n\n`);
        return;
      case 'struct':
      case 'union':
        this.newWalk(id);
        for (const m of t.members) this.emitFwds(m.type, id);
        this.emitted[id] = 2;
        this.write(`${this.compositeDef(id, t, 0)};\n\n`);
        return;
      case 'typedef':
        this.emitTypedef(id, t);
        return;
      default:
        return;
    }
  }

  private enumDef(id: number, t: BtfEnum | BtfEnum64, indent: number): string {
    const name = this.resolveName(id, t);
    let s = name ? `enum ${name} {\n` : 'enum {\n';
    for (const v of t.values) {
      s += `${tabs(indent + 1)}${this.identName(v.name)} = ${String(v.value)}${
        t.kind === 'enum64' ? (t.signed ? 'LL' : 'ULL') : ''
      },\n`;
    }
    return s + `${tabs(indent)}}`;
  }

  private compositeDef(id: number, t: BtfComposite, indent: number): string {
    const name = this.resolveName(id, t);
    const packed = t.members.length > 0 && this.safeAlign(id) === 1 && this.naturalAlign(t) > 1;
    const open = name ? `${t.kind} ${name} {` : `${t.kind} {`;
    if (t.members.length === 0 && t.size === 0) return `${open}}`;
    let s = `${open}\n`;
    let cur = 0;
    let prevBitfield = false;
    for (const m of t.members) {
      const mt = this.type(m.type);
      let bits = m.bitfieldSize;
      if (bits === 0 && mt?.kind === 'int' && mt.bits !== mt.size * 8) bits = mt.bits;
      if (t.kind === 'struct') {
        const align = packed ? 1 : this.safeAlign(m.type);
        s += this.padding(cur, m.bitsOffset, align, prevBitfield && bits !== 0, indent + 1, {
          id,
          what: `before member '${m.name}'`,
        });
      }
      s += `${tabs(indent + 1)}${this.decl(m.type, m.name, indent + 1)}${bits > 0 ? `: ${bits}` : ''};\n`;
      cur = m.bitsOffset + (bits > 0 ? bits : this.safeSize(m.type) * 8);
      prevBitfield = bits !== 0;
    }
    if (t.kind === 'struct') {
      s += this.padding(cur, t.size * 8, packed ? 1 : this.safeAlign(id), false, indent + 1, {
        id,
        what: 'at the end',
      });
    }
    return s + `${tabs(indent)}}${packed ? ' __attribute__((packed))' : ''}`;
  }

  private naturalAlign(t: BtfComposite): number {
    let a = 1;
    for (const m of t.members) a = Math.max(a, this.safeAlign(m.type));
    return a;
  }

  /** Alignment, memoised; a type whose alignment cannot be computed counts as 1. */
  private safeAlign(id: number): number {
    const cached = this.alignCache[id] as number;
    if (cached !== 0) return cached;
    let a: number;
    try {
      a = alignOfType(this.btf, id);
    } catch {
      a = 1;
    }
    this.alignCache[id] = a;
    return a;
  }

  /** Size, memoised; a type without a size counts as 0. */
  private safeSize(id: number): number {
    const cached = this.sizeCache[id] as number;
    if (cached >= 0) return cached;
    let n: number;
    try {
      n = this.btf.sizeOf(id);
    } catch {
      n = 0;
    }
    this.sizeCache[id] = n;
    return n;
  }

  /**
   * Unnamed bitfields that make clang leave the gap [from, to) the BTF layout has,
   * relying on natural alignment where it already produces the gap (libbpf's rules).
   */
  private padding(
    from: number,
    to: number,
    nextAlign: number,
    inBitfield: boolean,
    indent: number,
    where: { id: number; what: string },
  ): string {
    if (from >= to) return '';
    if (to - from > MAX_PAD_BITS) {
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
    const t = this.type(id) as BtfType;
    switch (t.kind) {
      case 'int':
      case 'float':
        return join(t.name, inner);
      case 'struct':
      case 'union':
        return join(
          t.name === '' ? this.compositeDef(id, t, indent) : `${t.kind} ${this.resolveName(id, t)}`,
          inner,
        );
      case 'enum':
      case 'enum64':
        return join(
          t.name === '' ? this.enumDef(id, t, indent) : `enum ${this.resolveName(id, t)}`,
          inner,
        );
      case 'fwd':
        return join(`${t.union ? 'union' : 'struct'} ${this.resolveName(id, t)}`, inner);
      case 'typedef':
        return join(this.resolveName(id, t), inner);
      case 'ptr': {
        let target = this.type(t.type);
        while (
          target &&
          (target.kind === 'const' ||
            target.kind === 'volatile' ||
            target.kind === 'restrict' ||
            target.kind === 'type_tag')
        ) {
          target = this.type(target.type);
        }
        const qualified = /^(const|volatile|restrict)\b/.test(inner);
        let d = qualified || inner.startsWith('(') ? `* ${inner}` : `*${inner}`;
        if (target && (target.kind === 'array' || target.kind === 'func_proto')) d = `(${d})`;
        return this.decl(t.type, d, indent);
      }
      case 'const':
      case 'volatile':
      case 'restrict': {
        const target = this.type(t.type);
        if (target?.kind === 'ptr') return this.decl(t.type, join(t.kind, inner), indent);
        const d = this.decl(t.type, inner, indent);
        // A qualified array is written as an array of qualified elements; avoid repeating it.
        return target?.kind === 'array' && d.startsWith(`${t.kind} `) ? d : `${t.kind} ${d}`;
      }
      case 'type_tag':
        return this.decl(t.type, inner, indent);
      case 'array':
        return this.decl(t.type, `${inner}[${t.nelems}]`, indent);
      case 'func_proto': {
        const params = t.params.map((p) => (p.type === 0 ? '...' : this.decl(p.type, '', indent)));
        return this.decl(
          t.returnType,
          `${inner}(${params.length ? params.join(', ') : 'void'})`,
          indent,
        );
      }
      default:
        return join('name' in t ? t.name : '', inner);
    }
  }

  dump(): string {
    this.write(HEADER);
    for (let id = 1; id < this.btf.typeCount; id++) {
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
