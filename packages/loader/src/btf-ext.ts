import type { Btf } from '@tracelab/btf';
import { LoaderError } from './errors.js';

/** CO-RE relocation kinds (enum bpf_core_relo_kind, include/uapi/linux/bpf.h). */
export const BPF_CORE = {
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

/** libbpf's short names for relocation kinds, as its debug log prints them. */
export const CORE_RELO_KIND_NAMES = [
  'byte_off',
  'byte_sz',
  'field_exists',
  'signed',
  'lshift_u64',
  'rshift_u64',
  'local_type_id',
  'target_type_id',
  'type_exists',
  'type_size',
  'enumval_exists',
  'enumval_value',
  'type_matches',
] as const;

export interface FuncInfo {
  /** Instruction index inside the section. */
  insnOff: number;
  typeId: number;
}

export interface LineInfo {
  insnOff: number;
  fileName: string;
  line: string;
  lineNum: number;
  lineCol: number;
}

export interface CoreRelo {
  insnOff: number;
  typeId: number;
  accessStr: string;
  kind: number;
}

/** Per-section records of .BTF.ext, keyed by ELF section name. */
export interface BtfExt {
  funcInfo: Map<string, FuncInfo[]>;
  lineInfo: Map<string, LineInfo[]>;
  coreRelos: Map<string, CoreRelo[]>;
}

const SECTION = '.BTF.ext';

/**
 * Parses .BTF.ext (func_info, line_info, CO-RE relocations) in the byte order of its BTF.
 * Instruction offsets, stored in bytes, come back as instruction indexes.
 */
export function parseBtfExt(bytes: Uint8Array, btf: Btf): BtfExt {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = btf.littleEndian;
  const fail = (msg: string, offset: number): never => {
    throw new LoaderError('EINVAL', msg, { section: SECTION, offset });
  };
  if (bytes.length < 24) fail(`header needs 24 bytes, section has ${bytes.length}`, 0);
  const magic = dv.getUint16(0, le);
  if (magic !== 0xeb9f) fail(`bad magic 0x${magic.toString(16)}`, 0);
  if (dv.getUint8(2) !== 1) fail(`unsupported version ${dv.getUint8(2)}`, 2);
  const hdrLen = dv.getUint32(4, le);
  if (hdrLen < 24 || hdrLen > bytes.length) fail(`header length ${hdrLen} out of range`, 4);
  const str = (off: number, at: number): string => {
    if (!btf.validStrOff(off)) fail(`string offset ${off} outside the BTF string section`, at);
    return btf.str(off);
  };

  function walk<T>(
    fieldOff: number,
    minRec: number,
    read: (pos: number, secName: string) => T,
  ): Map<string, T[]> {
    const out = new Map<string, T[]>();
    const off = dv.getUint32(fieldOff, le);
    const len = dv.getUint32(fieldOff + 4, le);
    if (len === 0) return out;
    const start = hdrLen + off;
    const end = start + len;
    if (end > bytes.length || start < hdrLen)
      fail(`records [0x${start.toString(16)}, 0x${end.toString(16)}) beyond the section`, fieldOff);
    if (len < 4) fail('record block too short for its record size', start);
    const recSize = dv.getUint32(start, le);
    if (recSize < minRec || recSize % 4 !== 0) fail(`record size ${recSize} invalid`, start);
    let p = start + 4;
    while (p < end) {
      if (p + 8 > end) fail('truncated section info header', p);
      const secName = str(dv.getUint32(p, le), p);
      const n = dv.getUint32(p + 4, le);
      p += 8;
      if (n === 0) fail(`section '${secName}' has zero records`, p - 4);
      if (p + n * recSize > end) fail(`${n} records of section '${secName}' overrun the block`, p);
      const list = out.get(secName) ?? [];
      for (let k = 0; k < n; k++, p += recSize) list.push(read(p, secName));
      out.set(secName, list);
    }
    return out;
  }

  const insnOff = (pos: number): number => {
    const v = dv.getUint32(pos, le);
    if (v % 8 !== 0) fail(`instruction offset ${v} is not a multiple of 8`, pos);
    return v / 8;
  };
  const funcInfo = walk<FuncInfo>(8, 8, (p) => ({
    insnOff: insnOff(p),
    typeId: dv.getUint32(p + 4, le),
  }));
  const lineInfo = walk<LineInfo>(16, 16, (p) => {
    const col = dv.getUint32(p + 12, le);
    return {
      insnOff: insnOff(p),
      fileName: str(dv.getUint32(p + 4, le), p + 4),
      line: str(dv.getUint32(p + 8, le), p + 8),
      lineNum: col >>> 10,
      lineCol: col & 0x3ff,
    };
  });
  const coreRelos =
    hdrLen >= 32
      ? walk<CoreRelo>(24, 16, (p) => {
          const kind = dv.getUint32(p + 12, le);
          if (kind > BPF_CORE.TYPE_MATCHES) fail(`unknown CO-RE relocation kind ${kind}`, p + 12);
          return {
            insnOff: insnOff(p),
            typeId: dv.getUint32(p + 4, le),
            accessStr: str(dv.getUint32(p + 8, le), p + 8),
            kind,
          };
        })
      : new Map<string, CoreRelo[]>();
  return { funcInfo, lineInfo, coreRelos };
}
