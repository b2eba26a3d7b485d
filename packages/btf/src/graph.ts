import { BtfError } from './error.js';
import type { BtfMember, BtfType } from './types.js';

/** Anything that maps type ids to types: a parsed Btf or a builder in progress. */
export interface TypeSource {
  /** The type with this id; id 0 (void) returns undefined. Throws ENOENT when out of range. */
  type(id: number): BtfType | undefined;
  /** Size of a pointer in bytes for this BTF's target (8 on 64-bit). */
  readonly ptrSize: number;
}

/** The kernel's MAX_RESOLVE_DEPTH: chains of modifiers longer than this are loops. */
const MAX_RESOLVE_DEPTH = 32;
/** Bound on by-value nesting walks (struct in struct, anonymous members) so cycles fail cleanly. */
const MAX_NESTING = 256;

function isModifierKind(kind: string): boolean {
  return (
    kind === 'typedef' ||
    kind === 'volatile' ||
    kind === 'const' ||
    kind === 'restrict' ||
    kind === 'type_tag'
  );
}

/** Follow typedefs, cv-qualifiers and type tags to the underlying type id (0 for void). */
export function resolveType(src: TypeSource, id: number): number {
  let cur = id;
  for (let depth = 0; depth <= MAX_RESOLVE_DEPTH; depth++) {
    const t = src.type(cur);
    if (t === undefined || !isModifierKind(t.kind)) return cur;
    cur = (t as { type: number }).type;
  }
  throw new BtfError('EINVAL', 'loop detected while resolving modifiers/typedefs', {
    typeId: id,
  });
}

/** Size in bytes of a type as C's sizeof would give it. */
export function sizeOfType(src: TypeSource, id: number): number {
  let cur = id;
  let mult = 1;
  for (let depth = 0; depth <= MAX_RESOLVE_DEPTH; depth++) {
    const t = src.type(cur);
    if (t === undefined) throw new BtfError('EINVAL', 'void has no size', { typeId: id });
    switch (t.kind) {
      case 'int':
      case 'struct':
      case 'union':
      case 'enum':
      case 'enum64':
      case 'datasec':
      case 'float':
        return mult * t.size;
      case 'ptr':
        return mult * src.ptrSize;
      case 'array':
        mult *= t.nelems;
        cur = t.type;
        break;
      case 'typedef':
      case 'volatile':
      case 'const':
      case 'restrict':
      case 'type_tag':
      case 'var':
      case 'decl_tag':
        cur = t.type;
        break;
      default:
        throw new BtfError('EINVAL', `${t.kind.toUpperCase()} has no size`, { typeId: cur });
    }
  }
  throw new BtfError('EINVAL', 'loop detected while computing size', { typeId: id });
}

/** Natural alignment in bytes, as libbpf's btf__align_of computes it (packed structs -> 1). */
export function alignOfType(src: TypeSource, id: number, depth = 0): number {
  if (depth > MAX_NESTING) {
    throw new BtfError('EINVAL', `nesting deeper than ${MAX_NESTING} (a by-value cycle?)`, {
      typeId: id,
    });
  }
  const rid = resolveType(src, id);
  const t = src.type(rid);
  if (t === undefined) throw new BtfError('EINVAL', 'void has no alignment', { typeId: id });
  switch (t.kind) {
    case 'int':
    case 'enum':
    case 'enum64':
    case 'float':
      return Math.max(1, Math.min(src.ptrSize, t.size));
    case 'ptr':
      return src.ptrSize;
    case 'array':
      return alignOfType(src, t.type, depth + 1);
    case 'struct':
    case 'union': {
      let max = 1;
      for (const m of t.members) {
        const a = alignOfType(src, m.type, depth + 1);
        // A non-bitfield member off its natural alignment means the struct is packed.
        if (m.bitfieldSize === 0 && m.bitsOffset % (8 * a) !== 0) return 1;
        if (a > max) max = a;
      }
      if (t.size % max !== 0) return 1;
      return max;
    }
    default:
      throw new BtfError('EINVAL', `${t.kind.toUpperCase()} has no alignment`, { typeId: rid });
  }
}

/** Where a member lives, counted from the start of the outermost type of the path. */
export interface MemberLocation {
  /** Bit offset from the start of the root type. */
  bitsOffset: number;
  /** Bitfield width, or 0 when the member is a whole object. */
  bitfieldSize: number;
  /** The member's type id. */
  type: number;
  /** Byte offset (floor of bitsOffset / 8). */
  byteOffset: number;
}

/** Effective bitfield width of a member: its own bitfield size, or an old-style INT bitfield. */
function memberBitfield(src: TypeSource, m: BtfMember): { extraBits: number; width: number } {
  if (m.bitfieldSize !== 0) return { extraBits: 0, width: m.bitfieldSize };
  const t = src.type(m.type);
  if (t !== undefined && t.kind === 'int' && (t.bits !== t.size * 8 || t.bitsOffset !== 0)) {
    return { extraBits: t.bitsOffset, width: t.bits };
  }
  return { extraBits: 0, width: 0 };
}

/** Find a named member, looking through anonymous struct/union members as C does. */
function findMember(
  src: TypeSource,
  compositeId: number,
  name: string,
  depth = 0,
): { bitsOffset: number; member: BtfMember } | undefined {
  if (depth > MAX_NESTING) {
    throw new BtfError('EINVAL', `anonymous members nested deeper than ${MAX_NESTING}`, {
      typeId: compositeId,
    });
  }
  const t = src.type(compositeId);
  if (t === undefined || (t.kind !== 'struct' && t.kind !== 'union')) return undefined;
  for (const m of t.members) {
    if (m.name === name) return { bitsOffset: m.bitsOffset, member: m };
  }
  for (const m of t.members) {
    if (m.name !== '') continue;
    const inner = findMember(src, resolveType(src, m.type), name, depth + 1);
    if (inner) return { bitsOffset: m.bitsOffset + inner.bitsOffset, member: inner.member };
  }
  return undefined;
}

const PATH_STEP = /^([A-Za-z_][A-Za-z0-9_]*)?((?:\[\d+\])*)$/;

/**
 * Offset of a member reached by a path such as `pid`, `__sk_common.skc_family` or
 * `buf[3].len`, starting from type `rootId`.
 */
export function memberOffset(src: TypeSource, rootId: number, path: string): MemberLocation {
  let cur = rootId;
  let bits = 0;
  let bitfieldSize = 0;
  const steps = path.split('.');
  for (const step of steps) {
    const m = PATH_STEP.exec(step);
    if (!m || (m[1] === undefined && m[2] === '')) {
      throw new BtfError('EINVAL', `malformed member path '${path}' at '${step}'`, {
        typeId: rootId,
      });
    }
    if (bitfieldSize !== 0) {
      throw new BtfError('EINVAL', `'${step}' follows a bitfield in '${path}'`, {
        typeId: rootId,
      });
    }
    if (m[1] !== undefined) {
      const composite = resolveType(src, cur);
      const t = src.type(composite);
      if (t === undefined || (t.kind !== 'struct' && t.kind !== 'union')) {
        throw new BtfError('EINVAL', `'${m[1]}' is looked up in a non-struct/union type`, {
          typeId: composite,
        });
      }
      const found = findMember(src, composite, m[1]);
      if (!found) {
        throw new BtfError('ENOENT', `no member '${m[1]}' in ${t.kind} '${t.name}'`, {
          typeId: composite,
        });
      }
      const bf = memberBitfield(src, found.member);
      bits += found.bitsOffset + bf.extraBits;
      bitfieldSize = bf.width;
      cur = found.member.type;
    }
    const indices = m[2] ? m[2].slice(1, -1).split('][') : [];
    for (const idxText of indices) {
      const arrId = resolveType(src, cur);
      const arr = src.type(arrId);
      if (arr === undefined || arr.kind !== 'array') {
        throw new BtfError('EINVAL', `'${step}' indexes a non-array type`, { typeId: arrId });
      }
      const idx = Number(idxText);
      if (idx >= arr.nelems) {
        throw new BtfError('EINVAL', `index ${idx} out of bounds of array[${arr.nelems}]`, {
          typeId: arrId,
        });
      }
      bits += idx * sizeOfType(src, arr.type) * 8;
      cur = arr.type;
    }
  }
  return { bitsOffset: bits, bitfieldSize, type: cur, byteOffset: Math.floor(bits / 8) };
}

/** What an access at a byte offset inside a type touches (see memberAt). */
export interface MemberAccess {
  /** C member path from the root, e.g. `se.avg.load_avg` or `comm[3]`; '' for the root itself. */
  path: string;
  /** Type of the innermost member (or array element) that holds the access. */
  type: number;
  /** Offset of that member from the start of the root, in bits. */
  bitsOffset: number;
  /** Bitfield width when the access lands in a bitfield, else 0. */
  bitfieldSize: number;
  /** True when the access covers only part of a scalar or pointer member. */
  partial: boolean;
}

const isAggregate = (t: BtfType | undefined): boolean =>
  t !== undefined && (t.kind === 'struct' || t.kind === 'union' || t.kind === 'array');

/**
 * Which member an access of `size` bytes at byte `offset` into type `rootId` reads,
 * descending through nested structs, unions (first matching member) and arrays, the
 * way the verifier walks a PTR_TO_BTF_ID access (btf_struct_walk).
 */
export function memberAt(
  src: TypeSource,
  rootId: number,
  offset: number,
  size: number,
): MemberAccess {
  let cur = rootId;
  const off = offset * 8;
  const end = off + size * 8;
  let base = 0;
  let path = '';
  for (let depth = 0; depth <= MAX_NESTING; depth++) {
    const id = resolveType(src, cur);
    const t = src.type(id);
    if (t === undefined) throw new BtfError('EINVAL', 'access into void', { typeId: cur });
    const tsize = sizeOfType(src, id) * 8;
    if (off < 0 || end - base > tsize) {
      throw new BtfError(
        'EINVAL',
        `access beyond ${t.kind} '${'name' in t ? t.name : ''}' at off ${offset} size ${size}`,
        { typeId: id },
      );
    }
    if (t.kind === 'array') {
      const elemBits = sizeOfType(src, t.type) * 8;
      const idx = elemBits === 0 ? 0 : Math.floor((off - base) / elemBits);
      base += idx * elemBits;
      path += `[${idx}]`;
      cur = t.type;
      if (!isAggregate(src.type(resolveType(src, cur)))) {
        const partial = off !== base || end - base !== elemBits;
        return { path, type: cur, bitsOffset: base, bitfieldSize: 0, partial };
      }
      continue;
    }
    if (t.kind !== 'struct' && t.kind !== 'union') {
      const partial = off !== base || end - base !== tsize;
      return { path, type: cur, bitsOffset: base, bitfieldSize: 0, partial };
    }
    let found: BtfMember | undefined;
    let mStart = 0;
    let mBits = 0;
    for (const m of t.members) {
      const bf = memberBitfield(src, m);
      const start = base + m.bitsOffset + bf.extraBits;
      const width = bf.width !== 0 ? bf.width : sizeOfType(src, m.type) * 8;
      // The access must start inside the member; a zero-sized member only matches exactly.
      if (off >= start && (off < start + width || (width === 0 && off === start && end === off))) {
        found = m;
        mStart = start;
        mBits = bf.width;
        break;
      }
    }
    if (!found) {
      throw new BtfError(
        'EINVAL',
        `no member of ${t.kind} '${t.name}' at off ${offset} size ${size}`,
        {
          typeId: id,
        },
      );
    }
    if (found.name !== '') path += path === '' ? found.name : `.${found.name}`;
    base = mStart;
    cur = found.type;
    if (mBits !== 0) {
      return {
        path,
        type: cur,
        bitsOffset: base,
        bitfieldSize: mBits,
        partial: off !== base || end - base !== mBits,
      };
    }
    if (!isAggregate(src.type(resolveType(src, cur)))) {
      const width = sizeOfType(src, cur) * 8;
      if (end > base + width) {
        throw new BtfError(
          'EINVAL',
          `access at off ${offset} size ${size} crosses member '${path}'`,
          {
            typeId: id,
          },
        );
      }
      return {
        path,
        type: cur,
        bitsOffset: base,
        bitfieldSize: 0,
        partial: off !== base || end - base !== width,
      };
    }
  }
  throw new BtfError('EINVAL', `nesting deeper than ${MAX_NESTING}`, { typeId: rootId });
}
