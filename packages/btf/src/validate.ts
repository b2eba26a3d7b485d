import type { Btf } from './btf.js';
import { BtfError, type Errno } from './error.js';
import {
  BTF_FUNC_GLOBAL,
  BTF_HEADER_LEN,
  BTF_INT_BOOL,
  BTF_INT_CHAR,
  BTF_INT_SIGNED,
  BTF_MAX_NAME_OFFSET,
  BTF_VAR_GLOBAL_EXTERN,
  BTF_VERSION,
  type BtfType,
} from './types.js';

/** KSYM_NAME_LEN: the kernel stops checking identifiers at this length and rejects them. */
const KSYM_NAME_LEN = 512;
/** The kernel's MAX_RESOLVE_DEPTH for nested by-value types and modifier chains. */
const MAX_RESOLVE_DEPTH = 32;
/** Bits of btf_type.info that must be zero (BTF_INFO_MASK is 0x9f00ffff). */
const INFO_RESERVED = ~0x9f00ffff;

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SECTION = /^[\x20-\x7e]+$/;

function validIdent(s: string): boolean {
  return s.length < KSYM_NAME_LEN && IDENT.test(s);
}

function validSection(s: string): boolean {
  return s.length < KSYM_NAME_LEN && SECTION.test(s);
}

class Invalid extends Error {
  constructor(
    readonly errno: Errno,
    msg: string,
  ) {
    super(msg);
  }
}

function bad(msg: string, errno: Errno = 'EINVAL'): never {
  throw new Invalid(errno, msg);
}

/** Header and section checks of btf_parse_hdr / btf_check_sec_info / btf_parse_str_sec. */
function checkHeader(btf: Btf): BtfError | undefined {
  const h = btf.header;
  const blob = btf.blob;
  const e = (msg: string, offset: number, errno: Errno = 'EINVAL') =>
    new BtfError(errno, msg, { offset });
  if (h.version !== BTF_VERSION) return e(`Unsupported version ${h.version}`, 2, 'ENOTSUP');
  if (h.flags !== 0) return e(`Unsupported flags ${h.flags}`, 3, 'ENOTSUP');
  for (let i = BTF_HEADER_LEN; i < h.hdrLen; i++) {
    if (blob[i] !== 0)
      return e('Unsupported btf_header: non-zero bytes beyond the known header', i, 'E2BIG');
  }
  const data = blob.byteLength - h.hdrLen;
  if (data === 0) return e('No data', h.hdrLen);
  if (h.typeOff % 4 !== 0) return e('Unaligned type_off', 8);
  const secs = [
    { name: 'type', off: h.typeOff, len: h.typeLen, field: 8 },
    { name: 'string', off: h.strOff, len: h.strLen, field: 16 },
  ].sort((a, b) => a.off - b.off);
  let expected = 0;
  for (const s of secs) {
    if (s.off < expected) return e(`Section overlap found at ${s.name} section`, s.field);
    if (s.off > expected)
      return e(`Unsupported section found: gap before ${s.name} section`, s.field);
    if (s.off + s.len > data) return e(`Invalid ${s.name} section offset/length`, s.field);
    expected = s.off + s.len;
  }
  if (expected !== data) return e('Total section length too long', h.hdrLen + expected);
  const { start, end } = btf.stringSection;
  if (h.strLen > BTF_MAX_NAME_OFFSET + 1) return e('Invalid string section: too long', 20, 'E2BIG');
  if (!btf.base && (h.strLen === 0 || blob[start] !== 0)) {
    return e('Invalid string section: must start with an empty string', start);
  }
  if (h.strLen > 0 && blob[end - 1] !== 0)
    return e('Invalid string section: not NUL-terminated', end - 1);
  return undefined;
}

const INT_SIZES = new Set([1, 2, 4, 8, 16]);
const ENUM_SIZES = new Set([1, 2, 4, 8]);
const FLOAT_SIZES = new Set([2, 4, 8, 12, 16]);

function typeOk(btf: Btf, ref: number, what = 'type_id'): void {
  if (ref >= btf.typeCount) bad(`Invalid ${what} ${ref}`);
}

function noVlen(vlen: number): void {
  if (vlen !== 0) bad('vlen != 0');
}

function noKflag(kflag: boolean): void {
  if (kflag) bad('Invalid btf_info kind_flag');
}

function noName(nameOff: number): void {
  if (nameOff !== 0) bad('Invalid name');
}

/** Per-type checks done before resolution (the kernel's check_meta callbacks). */
function checkMeta(btf: Btf, id: number, t: BtfType): void {
  const info = btf.info(id);
  const nameOff = btf.nameOff(id);
  const vlen = info & 0xffff;
  const kflag = info >>> 31 === 1;
  const kind = (info >>> 24) & 0x1f;
  if ((info & INFO_RESERVED) !== 0) bad(`Invalid btf_info 0x${(info >>> 0).toString(16)}`);
  switch (t.kind) {
    case 'int': {
      noVlen(vlen);
      noKflag(kflag);
      if (!INT_SIZES.has(t.size)) bad(`Unsupported size ${t.size}`);
      if (t.bits > 128 || t.bitsOffset + t.bits > 128) bad('Invalid int_data: nr_bits exceeds 128');
      if (Math.ceil((t.bitsOffset + t.bits) / 8) > t.size) bad('nr_bits exceeds type_size');
      const enc = t.encoding;
      if (enc !== 0 && enc !== BTF_INT_SIGNED && enc !== BTF_INT_CHAR && enc !== BTF_INT_BOOL) {
        bad(`Unsupported encoding ${enc}`);
      }
      return;
    }
    case 'ptr':
    case 'const':
    case 'volatile':
    case 'restrict':
      noVlen(vlen);
      noKflag(kflag);
      noName(nameOff);
      typeOk(btf, t.type);
      return;
    case 'typedef':
      noVlen(vlen);
      noKflag(kflag);
      if (!validIdent(t.name)) bad('Invalid name');
      typeOk(btf, t.type);
      return;
    case 'type_tag':
      noVlen(vlen);
      if (t.name === '') bad('Invalid name');
      typeOk(btf, t.type);
      return;
    case 'array':
      noVlen(vlen);
      noKflag(kflag);
      noName(nameOff);
      if (btf.rawHeader(id).sizeOrType !== 0) bad('size != 0');
      typeOk(btf, t.type, 'elem type_id');
      typeOk(btf, t.indexType, 'index type_id');
      return;
    case 'struct':
    case 'union': {
      if (t.name !== '' && !validIdent(t.name)) bad('Invalid name');
      let last = 0;
      for (let i = 0; i < t.members.length; i++) {
        const m = t.members[i] as (typeof t.members)[number];
        if (m.name !== '' && !validIdent(m.name)) bad(`Invalid member name (member ${i})`);
        typeOk(btf, m.type, `member type_id (member ${i})`);
        if (m.type === 0) bad(`Invalid member (member ${i} is void)`);
        if (t.kind === 'union' && m.bitsOffset !== 0)
          bad(`Invalid member bits_offset (member ${i})`);
        if (m.bitsOffset < last) bad(`Invalid member bits_offset (member ${i} out of order)`);
        last = m.bitsOffset;
        if (Math.ceil(m.bitsOffset / 8) > t.size) {
          bad(`Member bits_offset exceeds its struct size (member ${i})`);
        }
      }
      return;
    }
    case 'enum':
    case 'enum64':
      if (!ENUM_SIZES.has(t.size)) bad(`Unexpected size ${t.size}`);
      if (t.name !== '' && !validIdent(t.name)) bad('Invalid name');
      for (let i = 0; i < t.values.length; i++) {
        const v = t.values[i] as (typeof t.values)[number];
        if (!validIdent(v.name)) bad(`Invalid name (value ${i})`);
      }
      return;
    case 'fwd':
      noVlen(vlen);
      if (!validIdent(t.name)) bad('Invalid name');
      return;
    case 'func':
      noKflag(kflag);
      if (vlen > BTF_FUNC_GLOBAL) bad(`Invalid func linkage ${vlen}`);
      if (!validIdent(t.name)) bad('Invalid name');
      typeOk(btf, t.type);
      return;
    case 'func_proto':
      noKflag(kflag);
      noName(nameOff);
      typeOk(btf, t.returnType, 'return type_id');
      for (let i = 0; i < t.params.length; i++) {
        const p = t.params[i] as (typeof t.params)[number];
        typeOk(btf, p.type, `arg#${i} type_id`);
        if (p.type === 0 && (i !== t.params.length - 1 || p.name !== ''))
          bad(`Invalid arg#${i + 1}`);
        if (p.name !== '' && !validIdent(p.name)) bad(`Invalid arg#${i + 1} name`);
      }
      return;
    case 'var':
      noVlen(vlen);
      noKflag(kflag);
      if (!validIdent(t.name)) bad('Invalid name');
      if (t.linkage > BTF_VAR_GLOBAL_EXTERN) bad(`Linkage ${t.linkage} not supported`);
      typeOk(btf, t.type);
      return;
    case 'datasec': {
      noKflag(kflag);
      if (!validSection(t.name)) bad('Invalid name');
      if (vlen === 0) bad('vlen == 0');
      if (t.size === 0) bad('size == 0');
      let end = 0;
      for (let i = 0; i < t.vars.length; i++) {
        const v = t.vars[i] as (typeof t.vars)[number];
        typeOk(btf, v.type, `var type_id (var ${i})`);
        if (v.size === 0) bad(`Invalid size (var ${i})`);
        if (v.offset < end) bad(`Invalid offset (var ${i})`);
        if (v.offset + v.size > t.size) bad(`Invalid offset+size (var ${i})`);
        end = v.offset + v.size;
      }
      return;
    }
    case 'float':
      noVlen(vlen);
      noKflag(kflag);
      if (!FLOAT_SIZES.has(t.size)) bad(`Invalid type_size ${t.size}`);
      return;
    case 'decl_tag':
      noVlen(vlen);
      if (t.name === '') bad('Invalid name');
      if (t.componentIdx < -1) bad(`Invalid component_idx ${t.componentIdx}`);
      typeOk(btf, t.type);
      return;
  }
  bad(`Unknown kind ${kind}`);
}

const SIZED_KINDS = new Set(['int', 'enum', 'enum64', 'float', 'struct', 'union', 'ptr', 'array']);

/** Size of a member/element type, which must be a sized kind (not void, fwd, func...). */
function sizedSize(btf: Btf, ref: number, what: string, member?: number): number {
  const where = member === undefined ? what : `${what} (member ${member})`;
  if (ref === 0) bad(`Invalid ${where}: void`);
  const r = btf.type(btf.resolve(ref));
  if (r === undefined || !SIZED_KINDS.has(r.kind))
    bad(`Invalid ${where}: ${r?.kind ?? 'void'} has no size`);
  return btf.sizeOf(ref);
}

/**
 * Resolution (btf_resolve): follows by-value references, detects loops, and checks
 * what needs sizes — array elements, struct members and bitfields, vars, datasec
 * entries, func/decl_tag targets. `state` is 0 unvisited, 1 on the stack, 2 done.
 */
function resolve(btf: Btf, id: number, state: Uint8Array, depth: number): void {
  if (id === 0 || id < btf.startId || state[id] === 2) return;
  if (state[id] === 1) bad('Loop detected');
  if (depth >= MAX_RESOLVE_DEPTH) bad(`Exceeded max resolving depth ${MAX_RESOLVE_DEPTH}`, 'E2BIG');
  state[id] = 1;
  const t = btf.type(id) as BtfType;
  switch (t.kind) {
    case 'typedef':
    case 'const':
    case 'volatile':
    case 'restrict':
    case 'type_tag':
    case 'var':
      resolve(btf, t.type, state, depth + 1);
      if (t.kind === 'var') sizedSize(btf, t.type, 'type_id');
      break;
    case 'ptr':
      // Pointers end a by-value chain, but the pointee must itself be well-formed later.
      break;
    case 'array': {
      resolve(btf, t.type, state, depth + 1);
      resolve(btf, t.indexType, state, depth + 1);
      const idx = btf.type(btf.resolve(t.indexType));
      if (idx?.kind !== 'int') bad('Invalid index');
      const elem = sizedSize(btf, t.type, 'elem');
      if (elem * t.nelems > 0xffffffff) bad('Array size overflows U32_MAX');
      break;
    }
    case 'struct':
    case 'union':
      for (let i = 0; i < t.members.length; i++) {
        const m = t.members[i] as (typeof t.members)[number];
        resolve(btf, m.type, state, depth + 1);
        const target = btf.type(btf.resolve(m.type));
        const size = sizedSize(btf, m.type, 'member', i);
        let bits = m.bitfieldSize;
        let start = m.bitsOffset;
        if (bits === 0 && target?.kind === 'int' && target.bits !== target.size * 8) {
          // Old-style bitfield: the INT itself carries offset and width.
          bits = target.bits;
          start += target.bitsOffset;
        }
        if (bits !== 0) {
          if (target?.kind !== 'int' && target?.kind !== 'enum' && target?.kind !== 'enum64') {
            bad(`Invalid member bitfield (member ${i} is not an int or enum)`);
          }
          if (bits > 128 || bits > size * 8) bad(`Invalid member bitfield_size (member ${i})`);
          if (Math.ceil((start + bits) / 8) > t.size)
            bad(`Member exceeds struct_size (member ${i})`);
        } else {
          if (start % 8 !== 0) bad(`Member is not byte aligned (member ${i})`);
          if (start / 8 + size > t.size) bad(`Member exceeds struct_size (member ${i})`);
        }
      }
      break;
    case 'func': {
      const p = btf.type(t.type);
      if (p?.kind !== 'func_proto') bad(`Invalid type_id: FUNC points at ${p?.kind ?? 'void'}`);
      break;
    }
    case 'func_proto':
      if (t.returnType !== 0) {
        const r = btf.type(btf.resolve(t.returnType));
        if (r?.kind === 'fwd' || r?.kind === 'func' || r?.kind === 'datasec')
          bad('Invalid return type');
      }
      for (let i = 0; i < t.params.length; i++) {
        const p = t.params[i] as (typeof t.params)[number];
        if (p.type === 0) continue;
        const r = btf.type(btf.resolve(p.type));
        if (r === undefined || r.kind === 'func' || r.kind === 'datasec' || r.kind === 'var') {
          bad(`Invalid arg#${i + 1}`);
        }
      }
      break;
    case 'datasec':
      for (let i = 0; i < t.vars.length; i++) {
        const v = t.vars[i] as (typeof t.vars)[number];
        const r = btf.type(v.type);
        if (r?.kind !== 'var') bad(`Not a VAR kind member (var ${i})`);
        if (btf.sizeOf(r.type) > v.size) bad(`Invalid size (var ${i})`);
      }
      break;
    case 'decl_tag': {
      const target = btf.type(t.type);
      if (target === undefined) bad('Invalid type_id: void');
      if (t.componentIdx !== -1) {
        const n =
          target.kind === 'struct' || target.kind === 'union'
            ? target.members.length
            : target.kind === 'func'
              ? ((btf.type(target.type) as { params?: unknown[] } | undefined)?.params?.length ?? 0)
              : -1;
        if (n < 0 || t.componentIdx >= n) bad(`Invalid component_idx ${t.componentIdx}`);
      } else if (
        target.kind !== 'struct' &&
        target.kind !== 'union' &&
        target.kind !== 'func' &&
        target.kind !== 'var' &&
        target.kind !== 'typedef'
      ) {
        bad(`Invalid decl_tag target kind ${target.kind}`);
      }
      break;
    }
    default:
      break;
  }
  state[id] = 2;
}

/**
 * Validate a parsed BTF as strictly as the kernel's btf_parse does. Returns every
 * problem found (at most one per type), each naming the type id and record offset;
 * an empty array means the kernel would accept it.
 */
export function validateBtf(btf: Btf, opts: { maxErrors?: number } = {}): BtfError[] {
  const max = opts.maxErrors ?? 100;
  const errors: BtfError[] = [];
  const hdr = checkHeader(btf);
  if (hdr) return [hdr];
  const at = (id: number, e: unknown): BtfError => {
    if (e instanceof Invalid) {
      return new BtfError(e.errno, e.message, { typeId: id, offset: btf.recordOffset(id) });
    }
    if (e instanceof BtfError) {
      return new BtfError(e.code, e.message.replace(/^\w+: /, '').replace(/ \(.*\)$/, ''), {
        typeId: id,
        offset: btf.recordOffset(id),
      });
    }
    throw e;
  };
  const metaOk = new Uint8Array(btf.typeCount);
  for (let id = btf.startId; id < btf.typeCount && errors.length < max; id++) {
    try {
      checkMeta(btf, id, btf.type(id) as BtfType);
      metaOk[id] = 1;
    } catch (e) {
      errors.push(at(id, e));
    }
  }
  if (errors.length > 0) return errors;
  const state = new Uint8Array(btf.typeCount);
  for (let id = btf.startId; id < btf.typeCount && errors.length < max; id++) {
    try {
      resolve(btf, id, state, 0);
    } catch (e) {
      errors.push(at(id, e));
      // Leave the failed chain marked so one bad type does not report on every user.
      for (let k = btf.startId; k < btf.typeCount; k++) if (state[k] === 1) state[k] = 2;
    }
  }
  return errors;
}

/** Throw the first validation error, as the kernel's BTF load would fail. */
export function checkBtf(btf: Btf): void {
  const errs = validateBtf(btf, { maxErrors: 1 });
  if (errs[0]) throw errs[0];
}
