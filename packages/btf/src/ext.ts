import type { Btf } from './btf.js';
import { BtfError } from './error.js';
import { BTF_MAGIC } from './types.js';

/** bpf_func_info: a function starts at insnOff (bytes in an object file). */
export interface BpfFuncInfo {
  insnOff: number;
  typeId: number;
}

/** bpf_line_info: source position of the instruction at insnOff. */
export interface BpfLineInfo {
  insnOff: number;
  fileName: string;
  /** The source line's text, as clang stored it. */
  line: string;
  lineNum: number;
  lineCol: number;
}

/** bpf_core_relo: a CO-RE relocation of the instruction at insnOff. */
export interface BpfCoreRelo {
  insnOff: number;
  typeId: number;
  /** Access string such as `0:1:2` (member/array indices from the root type). */
  accessStr: string;
  /** An enum bpf_core_relo_kind value (see BPF_CORE_RELO_KIND). */
  kind: number;
}

/** enum bpf_core_relo_kind. */
export const BPF_CORE_RELO_KIND = {
  FIELD_BYTE_OFFSET: 0,
  FIELD_BYTE_SIZE: 1,
  FIELD_EXISTS: 2,
  FIELD_SIGNED: 3,
  FIELD_LSHIFT_U64: 4,
  FIELD_RSHIFT_U64: 5,
  TYPE_ID_LOCAL: 6,
  TYPE_ID_TARGET: 7,
  TYPE_EXISTS: 8,
  TYPE_SIZE: 9,
  ENUMVAL_EXISTS: 10,
  ENUMVAL_VALUE: 11,
  TYPE_MATCHES: 12,
} as const;

/** Records of one ELF section (for example `.text` or `kprobe/do_sys_open`). */
export interface BtfExtSection<R> {
  secName: string;
  records: R[];
}

/** A parsed .BTF.ext section. */
export interface BtfExt {
  funcInfo: BtfExtSection<BpfFuncInfo>[];
  lineInfo: BtfExtSection<BpfLineInfo>[];
  coreRelo: BtfExtSection<BpfCoreRelo>[];
}

const EXT_HDR_MIN = 24;
const EXT_HDR_CORE = 32;
const MIN_REC = { func: 8, line: 16, core: 16 } as const;

/**
 * Parse .BTF.ext against the .BTF it belongs to (its string offsets index that BTF's
 * string section). Record sizes larger than known are accepted, extra bytes ignored,
 * as libbpf does for forward compatibility.
 */
export function parseBtfExt(blob: Uint8Array, btf: Btf): BtfExt {
  if (blob.byteLength < EXT_HDR_MIN) {
    throw new BtfError(
      'EINVAL',
      `.BTF.ext of ${blob.byteLength} bytes is shorter than its header`,
      { offset: 0 },
    );
  }
  const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  let le: boolean;
  if (dv.getUint16(0, true) === BTF_MAGIC) le = true;
  else if (dv.getUint16(0, false) === BTF_MAGIC) le = false;
  else throw new BtfError('EINVAL', 'bad .BTF.ext magic', { offset: 0 });
  if (dv.getUint8(2) !== 1)
    throw new BtfError('ENOTSUP', `unsupported .BTF.ext version ${dv.getUint8(2)}`, { offset: 2 });
  if (dv.getUint8(3) !== 0)
    throw new BtfError('ENOTSUP', `unsupported .BTF.ext flags ${dv.getUint8(3)}`, { offset: 3 });
  const hdrLen = dv.getUint32(4, le);
  if (hdrLen < EXT_HDR_MIN || hdrLen > blob.byteLength) {
    throw new BtfError('EINVAL', `.BTF.ext header length ${hdrLen} out of bounds`, { offset: 4 });
  }
  const u32 = (off: number) => dv.getUint32(off, le);
  const str = (off: number, at: number): string => {
    if (!btf.validStrOff(off)) {
      throw new BtfError('EINVAL', `string offset ${off} outside the BTF string section`, {
        offset: at,
      });
    }
    return btf.str(off);
  };

  function sections<R>(
    field: number,
    minRec: number,
    what: string,
    decode: (p: number) => R,
  ): BtfExtSection<R>[] {
    if (field + 8 > hdrLen) return [];
    const off = u32(field);
    const len = u32(field + 4);
    if (len === 0) return [];
    const start = hdrLen + off;
    const end = start + len;
    if (end > blob.byteLength || start + 4 > end) {
      throw new BtfError('EINVAL', `${what} section [${start}, ${end}) out of bounds`, {
        offset: field,
      });
    }
    if (off % 4 !== 0)
      throw new BtfError('EINVAL', `${what} section offset ${off} is not 4-byte aligned`, {
        offset: field,
      });
    const recSize = u32(start);
    if (recSize < minRec || recSize % 4 !== 0) {
      throw new BtfError(
        'EINVAL',
        `${what} record size ${recSize} is invalid (minimum ${minRec}, 4-byte multiple)`,
        {
          offset: start,
        },
      );
    }
    const out: BtfExtSection<R>[] = [];
    let p = start + 4;
    while (p < end) {
      if (p + 8 > end)
        throw new BtfError('EINVAL', `${what}: truncated section header`, { offset: p });
      const secName = str(u32(p), p);
      const n = u32(p + 4);
      if (n === 0)
        throw new BtfError('EINVAL', `${what}: section '${secName}' has no records`, { offset: p });
      p += 8;
      if (n > (end - p) / recSize) {
        throw new BtfError(
          'EINVAL',
          `${what}: section '${secName}' claims ${n} records of ${recSize} bytes beyond the end`,
          {
            offset: p - 4,
          },
        );
      }
      const records: R[] = [];
      for (let i = 0; i < n; i++, p += recSize) records.push(decode(p));
      out.push({ secName, records });
    }
    return out;
  }

  return {
    funcInfo: sections(8, MIN_REC.func, 'func_info', (p) => ({
      insnOff: u32(p),
      typeId: u32(p + 4),
    })),
    lineInfo: sections(16, MIN_REC.line, 'line_info', (p) => {
      const lineCol = u32(p + 12);
      return {
        insnOff: u32(p),
        fileName: str(u32(p + 4), p + 4),
        line: str(u32(p + 8), p + 8),
        lineNum: lineCol >>> 10,
        lineCol: lineCol & 0x3ff,
      };
    }),
    coreRelo:
      hdrLen >= EXT_HDR_CORE
        ? sections(24, MIN_REC.core, 'core_relo', (p) => ({
            insnOff: u32(p),
            typeId: u32(p + 4),
            accessStr: str(u32(p + 8), p + 8),
            kind: u32(p + 12),
          }))
        : [],
  };
}

/** Every string a .BTF.ext refers to; add them to the BTF (BtfBuilder.addStrings) before writing it. */
export function btfExtStrings(ext: BtfExt): string[] {
  const out = new Set<string>();
  for (const s of ext.funcInfo) out.add(s.secName);
  for (const s of ext.lineInfo) {
    out.add(s.secName);
    for (const r of s.records) out.add(r.fileName).add(r.line);
  }
  for (const s of ext.coreRelo) {
    out.add(s.secName);
    for (const r of s.records) out.add(r.accessStr);
  }
  return [...out];
}

/**
 * Serialize .BTF.ext. String fields must already be in `btf`'s string section
 * (ENOENT otherwise); a header with the CO-RE part is written when there are relocations.
 */
export function writeBtfExt(
  ext: BtfExt,
  btf: Btf,
  opts: { littleEndian?: boolean } = {},
): Uint8Array {
  const le = opts.littleEndian ?? btf.littleEndian;
  const offsets = btf.stringOffsets();
  const off = (s: string): number => {
    const o = offsets.get(s);
    if (o === undefined)
      throw new BtfError('ENOENT', `string '${s}' is not in the BTF string section`);
    return o;
  };
  const words: number[][] = [];
  const section = <R>(
    secs: BtfExtSection<R>[],
    recSize: number,
    encode: (r: R) => number[],
  ): number[] => {
    if (secs.length === 0) return [];
    const w = [recSize];
    for (const s of secs) {
      if (s.records.length === 0)
        throw new BtfError('EINVAL', `section '${s.secName}' has no records`);
      w.push(off(s.secName), s.records.length);
      for (const r of s.records) w.push(...encode(r));
    }
    return w;
  };
  words.push(section(ext.funcInfo, 8, (r) => [r.insnOff, r.typeId]));
  words.push(
    section(ext.lineInfo, 16, (r) => [
      r.insnOff,
      off(r.fileName),
      off(r.line),
      ((r.lineNum << 10) | (r.lineCol & 0x3ff)) >>> 0,
    ]),
  );
  words.push(section(ext.coreRelo, 16, (r) => [r.insnOff, r.typeId, off(r.accessStr), r.kind]));
  const hdrLen = ext.coreRelo.length > 0 ? EXT_HDR_CORE : EXT_HDR_MIN;
  const total = hdrLen + 4 * words.reduce((n, w) => n + w.length, 0);
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  dv.setUint16(0, BTF_MAGIC, le);
  dv.setUint8(2, 1);
  dv.setUint8(3, 0);
  dv.setUint32(4, hdrLen, le);
  let p = hdrLen;
  let rel = 0;
  words.forEach((w, i) => {
    if (8 + i * 8 + 8 > hdrLen) return;
    dv.setUint32(8 + i * 8, w.length ? rel : 0, le);
    dv.setUint32(12 + i * 8, w.length * 4, le);
    for (const v of w) {
      dv.setUint32(p, v >>> 0, le);
      p += 4;
    }
    rel += w.length * 4;
  });
  return out;
}

/**
 * Bit offset a CO-RE access string denotes in `btf` (the local side of a field
 * relocation): the first index steps over whole root objects, later ones select
 * struct/union members by index or array elements.
 */
export function coreAccessBitOffset(btf: Btf, typeId: number, accessStr: string): number {
  const parts = accessStr.split(':').map((s) => (/^\d+$/.test(s) ? Number(s) : NaN));
  if (parts.length === 0 || parts.some((n) => Number.isNaN(n))) {
    throw new BtfError('EINVAL', `malformed CO-RE access string '${accessStr}'`, { typeId });
  }
  let cur = typeId;
  let bits = (parts[0] as number) * btf.sizeOf(typeId) * 8;
  for (const idx of parts.slice(1)) {
    const id = btf.resolve(cur);
    const t = btf.type(id);
    if (t?.kind === 'struct' || t?.kind === 'union') {
      const m = t.members[idx];
      if (!m)
        throw new BtfError('EINVAL', `access '${accessStr}': no member #${idx} in '${t.name}'`, {
          typeId: id,
        });
      bits += m.bitsOffset;
      cur = m.type;
    } else if (t?.kind === 'array') {
      bits += idx * btf.sizeOf(t.type) * 8;
      cur = t.type;
    } else {
      throw new BtfError(
        'EINVAL',
        `access '${accessStr}': index ${idx} into ${t?.kind ?? 'void'}`,
        { typeId: id },
      );
    }
  }
  return bits;
}
