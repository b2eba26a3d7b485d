import { extraSize, type Btf } from './btf.js';

const hostLittleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * The type records of a parsed BTF as 32-bit words in host byte order. Every field of a
 * BTF record is a 32-bit word (or packs into one), so hot paths such as the C dump read
 * them straight from here instead of materialising a million type and member objects.
 */
export interface TypeWords {
  /** The type sections, the base's first for split BTF. */
  words: Uint32Array;
  /** `rec[id]` is the index in `words` of type `id`'s record; `rec[0]` is unused (void). */
  rec: Uint32Array;
}

export function typeWords(btf: Btf): TypeWords {
  const chain: Btf[] = [];
  for (let b: Btf | undefined = btf; b !== undefined; b = b.base) chain.unshift(b);
  const sections = chain.map((b) => ({
    b,
    start: b.header.hdrLen + b.header.typeOff,
    count: b.header.typeLen >>> 2,
  }));
  const only = sections.length === 1 ? sections[0] : undefined;
  let words: Uint32Array;
  if (
    only !== undefined &&
    only.b.littleEndian === hostLittleEndian &&
    (only.b.blob.byteOffset + only.start) % 4 === 0
  ) {
    // The usual case (vmlinux read from a file): a view, no copy.
    const { blob } = only.b;
    words = new Uint32Array(blob.buffer, blob.byteOffset + only.start, only.count);
  } else {
    words = new Uint32Array(sections.reduce((n, s) => n + s.count, 0));
    let at = 0;
    for (const { b, start, count } of sections) {
      const dv = new DataView(b.blob.buffer, b.blob.byteOffset + start, count * 4);
      for (let i = 0; i < count; i++) words[at + i] = dv.getUint32(i * 4, b.littleEndian);
      at += count;
    }
  }
  const rec = new Uint32Array(btf.typeCount);
  let at = 0;
  for (const { b, count } of sections) {
    // The parser has walked these records already, so their sizes are known to fit.
    let p = at;
    for (let id = b.startId; id < b.typeCount; id++) {
      rec[id] = p;
      const info = words[p + 1] as number;
      p += 3 + (extraSize((info >>> 24) & 0x1f, info & 0xffff) >>> 2);
    }
    at += count;
  }
  return { words, rec };
}
