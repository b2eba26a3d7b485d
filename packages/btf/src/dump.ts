import { Btf } from './btf.js';
import { BtfError } from './error.js';
import { dumpC } from './dump-c.js';
import { TextSink } from './sink.js';
import { BTF_INT_BOOL, BTF_INT_CHAR, BTF_INT_SIGNED, type BtfType } from './types.js';

export type DumpFormat = 'c' | 'raw' | 'json';

function intEncoding(enc: number): string {
  switch (enc) {
    case 0:
      return '(none)';
    case BTF_INT_SIGNED:
      return 'SIGNED';
    case BTF_INT_CHAR:
      return 'CHAR';
    case BTF_INT_BOOL:
      return 'BOOL';
    default:
      return 'UNKN';
  }
}

function linkage(l: number): string {
  return ['static', 'global', 'extern'][l] ?? '(unknown)';
}

function nameOrAnon(btf: Btf, id: number, t: BtfType): string {
  const off = btf.nameOff(id);
  if (off === 0) return '(anon)';
  return 'name' in t ? t.name : btf.str(off);
}

function anon(s: string): string {
  return s === '' ? '(anon)' : s;
}

/** One type in bpftool's raw listing (`bpftool btf dump file F`, v7.x). */
export function rawTypeLine(btf: Btf, id: number): string {
  const t = btf.type(id) as BtfType;
  let s = `[${id}] ${t.kind.toUpperCase()} '${nameOrAnon(btf, id, t)}'`;
  switch (t.kind) {
    case 'int':
      s += ` size=${t.size} bits_offset=${t.bitsOffset} nr_bits=${t.bits} encoding=${intEncoding(t.encoding)}`;
      break;
    case 'ptr':
    case 'const':
    case 'volatile':
    case 'restrict':
    case 'typedef':
    case 'type_tag':
      s += ` type_id=${t.type}`;
      break;
    case 'array':
      s += ` type_id=${t.type} index_type_id=${t.indexType} nr_elems=${t.nelems}`;
      break;
    case 'struct':
    case 'union':
      s += ` size=${t.size} vlen=${t.members.length}`;
      for (const m of t.members) {
        s += `\n\t'${anon(m.name)}' type_id=${m.type} bits_offset=${m.bitsOffset}`;
        if (m.bitfieldSize) s += ` bitfield_size=${m.bitfieldSize}`;
      }
      break;
    case 'enum':
    case 'enum64':
      s += ` encoding=${t.signed ? 'SIGNED' : 'UNSIGNED'} size=${t.size} vlen=${t.values.length}`;
      for (const v of t.values) {
        const suffix = t.kind === 'enum64' ? (t.signed ? 'LL' : 'ULL') : '';
        s += `\n\t'${anon(v.name)}' val=${String(v.value)}${suffix}`;
      }
      break;
    case 'fwd':
      s += ` fwd_kind=${t.union ? 'union' : 'struct'}`;
      break;
    case 'func':
      s += ` type_id=${t.type} linkage=${linkage(t.linkage)}`;
      break;
    case 'func_proto':
      s += ` ret_type_id=${t.returnType} vlen=${t.params.length}`;
      for (const p of t.params) s += `\n\t'${anon(p.name)}' type_id=${p.type}`;
      break;
    case 'var':
      s += ` type_id=${t.type}, linkage=${linkage(t.linkage)}`;
      break;
    case 'datasec':
      s += ` size=${t.size} vlen=${t.vars.length}`;
      for (const v of t.vars) {
        s += `\n\ttype_id=${v.type} offset=${v.offset} size=${v.size}`;
        if (v.type < btf.typeCount) {
          const vt = btf.type(v.type);
          s +=
            vt === undefined
              ? ` (UNKN '(anon)')`
              : ` (${vt.kind.toUpperCase()} '${nameOrAnon(btf, v.type, vt)}')`;
        }
      }
      break;
    case 'float':
      s += ` size=${t.size}`;
      break;
    case 'decl_tag':
      s += ` type_id=${t.type} component_idx=${t.componentIdx}`;
      break;
  }
  return s;
}

/** bpftool's raw listing of every type this BTF defines (a split BTF lists only its own). */
export function dumpRaw(btf: Btf): string {
  const sink = new TextSink();
  for (let id = btf.startId; id < btf.typeCount; id++) sink.write(`${rawTypeLine(btf, id)}\n`);
  return sink.toString();
}

/** JSON with bpftool's `-j` field names: `{ "types": [ { id, kind, name, ... } ] }`. */
export function dumpJson(btf: Btf): string {
  const types: Record<string, unknown>[] = [];
  for (let id = btf.startId; id < btf.typeCount; id++) {
    const t = btf.type(id) as BtfType;
    const o: Record<string, unknown> = {
      id,
      kind: t.kind.toUpperCase(),
      name: nameOrAnon(btf, id, t),
    };
    switch (t.kind) {
      case 'int':
        Object.assign(o, {
          size: t.size,
          bits_offset: t.bitsOffset,
          nr_bits: t.bits,
          encoding: intEncoding(t.encoding),
        });
        break;
      case 'ptr':
      case 'const':
      case 'volatile':
      case 'restrict':
      case 'typedef':
      case 'type_tag':
        o['type_id'] = t.type;
        break;
      case 'array':
        Object.assign(o, { type_id: t.type, index_type_id: t.indexType, nr_elems: t.nelems });
        break;
      case 'struct':
      case 'union':
        Object.assign(o, {
          size: t.size,
          vlen: t.members.length,
          members: t.members.map((m) => ({
            name: anon(m.name),
            type_id: m.type,
            bits_offset: m.bitsOffset,
            ...(m.bitfieldSize ? { bitfield_size: m.bitfieldSize } : {}),
          })),
        });
        break;
      case 'enum':
      case 'enum64':
        Object.assign(o, {
          encoding: t.signed ? 'SIGNED' : 'UNSIGNED',
          size: t.size,
          vlen: t.values.length,
          values: t.values.map((v) => ({
            name: anon(v.name),
            // 64-bit values beyond 2^53 stay exact as JSON numbers written from text.
            val: typeof v.value === 'bigint' ? new RawJson(v.value.toString()) : v.value,
          })),
        });
        break;
      case 'fwd':
        o['fwd_kind'] = t.union ? 'union' : 'struct';
        break;
      case 'func':
        Object.assign(o, { type_id: t.type, linkage: linkage(t.linkage) });
        break;
      case 'func_proto':
        Object.assign(o, {
          ret_type_id: t.returnType,
          vlen: t.params.length,
          params: t.params.map((p) => ({ name: anon(p.name), type_id: p.type })),
        });
        break;
      case 'var':
        Object.assign(o, { type_id: t.type, linkage: linkage(t.linkage) });
        break;
      case 'datasec':
        Object.assign(o, {
          size: t.size,
          vlen: t.vars.length,
          vars: t.vars.map((v) => ({ type_id: v.type, offset: v.offset, size: v.size })),
        });
        break;
      case 'float':
        o['size'] = t.size;
        break;
      case 'decl_tag':
        Object.assign(o, { type_id: t.type, component_idx: t.componentIdx });
        break;
    }
    types.push(o);
  }
  const raw: string[] = [];
  const text = JSON.stringify({ types }, (_k, v: unknown) => {
    if (v instanceof RawJson) {
      raw.push(v.text);
      return `\u0000RAW${raw.length - 1}\u0000`;
    }
    return v;
  });
  return (
    text.replace(/"\\u0000RAW(\d+)\\u0000"/g, (_m, i: string) => raw[Number(i)] as string) + '\n'
  );
}

/** A number kept as its decimal text so JSON output does not round it. */
class RawJson {
  constructor(readonly text: string) {}
}

/**
 * Dump a BTF blob (or a parsed Btf) as C (bpftool `format c`), raw (bpftool's default
 * listing) or JSON. `base` parses `blob` as split BTF on top of it.
 */
export function dumpBtf(
  input: Uint8Array | Btf,
  format: DumpFormat,
  opts: { base?: Btf } = {},
): string {
  const btf = input instanceof Btf ? input : new Btf(input, opts.base ? { base: opts.base } : {});
  switch (format) {
    case 'raw':
      return dumpRaw(btf);
    case 'json':
      return dumpJson(btf);
    case 'c':
      return dumpC(btf);
    default:
      throw new BtfError(
        'EINVAL',
        `unknown dump format '${String(format)}' (expected c, raw or json)`,
      );
  }
}
