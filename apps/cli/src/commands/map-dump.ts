import { BTF_INT_BOOL, BTF_INT_CHAR, BTF_INT_SIGNED, type Btf } from '@tracelab/btf';
import { TracelabError } from '@tracelab/contracts';
import type { Target } from '../target/target.js';
import { bareMessage } from './errors.js';

/** A map to dump: its fd in the engine and, when the object described it, its BTF types. */
export interface MapRef {
  readonly name: string;
  readonly fd: number;
  readonly btf?: Btf | undefined;
  /** BTF ids of key and value (0: none, as for the key of a global data map). */
  readonly keyTypeId?: number;
  readonly valueTypeId?: number;
}

/**
 * bpftool's fprint_hex: bytes as two hex digits, a space between, two spaces after every 8th
 * byte and a new line after every 16th.
 */
export function hexBytes(bytes: Uint8Array): string {
  let out = '';
  bytes.forEach((b, i) => {
    if (i > 0) out += i % 16 === 0 ? '\n' : i % 8 === 0 ? '  ' : ' ';
    out += b.toString(16).padStart(2, '0');
  });
  return out;
}

/** A decoded value: bigints print exactly, as bpftool prints u64 (JSON numbers lose them). */
type Decoded = bigint | number | boolean | string | Decoded[] | { [name: string]: Decoded };

function show(v: Decoded): string {
  if (typeof v === 'bigint' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(show).join(',')}]`;
  return `{${Object.entries(v)
    .map(([k, x]) => `${JSON.stringify(k)}: ${show(x)}`)
    .join(', ')}}`;
}

/** An integer of `size` bytes at `off`; every simulated machine's memory is little-endian. */
function readInt(bytes: Uint8Array, off: number, size: number, signed: boolean): bigint {
  let v = 0n;
  for (let i = 0; i < size; i++) {
    const b = BigInt(bytes[off + size - 1 - i] ?? 0);
    v = (v << 8n) | b;
  }
  return signed ? BigInt.asIntN(size * 8, v) : v;
}

/** btf_dumper: a value of BTF type `id` read from bytes at `off`, in bpftool's JSON shape. */
function decode(btf: Btf, id: number, bytes: Uint8Array, off: number): Decoded {
  const t = btf.type(id);
  if (t === undefined) return hexBytes(bytes.subarray(off));
  switch (t.kind) {
    case 'typedef':
    case 'volatile':
    case 'const':
    case 'restrict':
    case 'type_tag':
    case 'var':
      return decode(btf, t.type, bytes, off);
    case 'int': {
      const raw = readInt(bytes, off, t.size, false);
      // old-style bitfields keep the value at bitsOffset inside the int's storage
      const bits = BigInt.asUintN(t.bits, raw >> BigInt(t.bitsOffset));
      if ((t.encoding & BTF_INT_BOOL) !== 0) return bits !== 0n;
      if ((t.encoding & BTF_INT_SIGNED) !== 0) return BigInt.asIntN(t.bits, bits);
      return bits;
    }
    case 'enum':
    case 'enum64': {
      const v = readInt(bytes, off, t.size, t.signed);
      const named = t.values.find((e) => BigInt(e.value) === v);
      return named === undefined ? v : named.name;
    }
    case 'ptr':
      return `0x${readInt(bytes, off, btf.ptrSize, false).toString(16)}`;
    case 'float': {
      const view = new DataView(bytes.buffer, bytes.byteOffset + off, t.size);
      return t.size === 4 ? view.getFloat32(0) : view.getFloat64(0);
    }
    case 'array': {
      const size = btf.sizeOf(t.type);
      const elem = btf.type(btf.resolve(t.type));
      if (elem?.kind === 'int' && (elem.encoding & BTF_INT_CHAR) !== 0 && elem.size === 1) {
        // char arrays print as strings, up to the first NUL
        const s = bytes.subarray(off, off + t.nelems);
        const end = s.indexOf(0);
        return new TextDecoder().decode(end < 0 ? s : s.subarray(0, end));
      }
      return Array.from({ length: t.nelems }, (_, i) => decode(btf, t.type, bytes, off + i * size));
    }
    case 'struct':
    case 'union': {
      const out: { [name: string]: Decoded } = {};
      for (const m of t.members) {
        const at = off + Math.floor(m.bitsOffset / 8);
        if (m.bitfieldSize === 0) {
          out[m.name] = decode(btf, m.type, bytes, at);
          continue;
        }
        // a bitfield member: read the bytes it spans, little-endian bit order
        const shift = m.bitsOffset % 8;
        const span = Math.ceil((shift + m.bitfieldSize) / 8);
        const raw = readInt(bytes, at, span, false);
        out[m.name] = BigInt.asUintN(m.bitfieldSize, raw >> BigInt(shift));
      }
      return out;
    }
    case 'datasec':
      return {
        [t.name]: t.vars.map((v) => ({ [btf.name(v.type)]: decode(btf, v.type, bytes, v.offset) })),
      };
    default:
      return hexBytes(bytes.subarray(off, off + Math.max(0, btf.sizeOf(id))));
  }
}

/**
 * The values of one element: one, or for a per-CPU map one per CPU, each padded to 8 bytes as
 * BPF_MAP_LOOKUP_ELEM returns them.
 */
function cpuValues(value: Uint8Array, valueSize: number): Uint8Array[] | null {
  if (value.length <= valueSize) return null;
  const stride = Math.ceil(valueSize / 8) * 8;
  const out: Uint8Array[] = [];
  for (let at = 0; at < value.length; at += stride) out.push(value.subarray(at, at + valueSize));
  return out;
}

/** One element as bpftool's print_entry_plain prints it, per CPU for per-CPU maps. */
function plainEntry(key: Uint8Array, value: Uint8Array, valueSize: number): string {
  const perCpu = cpuValues(value, valueSize);
  if (perCpu !== null) {
    let out = `key:\n${hexBytes(key)}\n`;
    perCpu.forEach((v, cpu) => {
      out += `value (CPU ${String(cpu).padStart(2, '0')}):${valueSize > 16 ? '\n' : ' '}${hexBytes(v)}\n`;
    });
    return out;
  }
  const breakNames = key.length > 16 || valueSize > 16;
  const singleLine = key.length + valueSize <= 24 && !breakNames;
  const sep = breakNames ? '\n' : ' ';
  return `key:${sep}${hexBytes(key)}${singleLine ? '  ' : '\n'}value:${sep}${hexBytes(value)}\n`;
}

/** The decoded form of one element (bpftool's "values" per CPU), or null without value BTF. */
function decodedEntry(
  ref: MapRef,
  key: Uint8Array,
  value: Uint8Array,
  valueSize: number,
): string | null {
  const { btf, keyTypeId, valueTypeId } = ref;
  if (btf === undefined || !valueTypeId) return null;
  const out: { [name: string]: Decoded } = {};
  if (keyTypeId) out.key = decode(btf, keyTypeId, key, 0);
  const perCpu = cpuValues(value, valueSize);
  if (perCpu === null) out.value = decode(btf, valueTypeId, value, 0);
  else out.values = perCpu.map((v, cpu) => ({ cpu, value: decode(btf, valueTypeId, v, 0) }));
  return show(out);
}

/**
 * `bpftool map show` and `bpftool map dump` of one map: a header, each element as hex bytes and,
 * when the object gave the map BTF, decoded; a map that cannot be walked says why.
 */
export async function formatMap(target: Target, ref: MapRef): Promise<string> {
  const { type, keySize, valueSize, maxEntries } = await target.mapInfo(ref.fd);
  let out = `${ref.fd}: ${type}  name ${ref.name}  key ${keySize}B  value ${valueSize}B  max_entries ${maxEntries}\n`;
  let entries;
  try {
    entries = await target.mapEntries(ref.fd);
  } catch (err) {
    if (!(err instanceof TracelabError)) throw err;
    return `${out}  cannot dump: ${err.code}: ${bareMessage(err)}\n`;
  }
  for (const [key, value] of entries) {
    out += plainEntry(key, value, valueSize);
    const decoded = decodedEntry(ref, key, value, valueSize);
    if (decoded !== null) out += `${decoded}\n`;
  }
  return `${out}Found ${entries.length} element${entries.length === 1 ? '' : 's'}\n`;
}
