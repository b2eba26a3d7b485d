import { type Insn, isLddw } from '@tracelab/vm';
import { LoaderError } from './errors.js';

/**
 * Decodes instruction slots in either byte order. A big-endian object stores off and imm
 * big-endian and swaps the register nibbles (src in the low nibble, dst in the high one), so
 * both byte orders decode to the same instructions. lddw's second slot keeps its imm and the
 * first slot's imm2 carries it too, as the vm expects.
 */
export function decodeInsns(data: Uint8Array, littleEndian: boolean, section: string): Insn[] {
  if (data.length % 8 !== 0) {
    throw new LoaderError('EINVAL', `size ${data.length} is not a multiple of 8`, {
      section,
      offset: data.length - (data.length % 8),
    });
  }
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out: Insn[] = [];
  for (let p = 0; p < data.length; p += 8) {
    const regs = dv.getUint8(p + 1);
    out.push({
      code: dv.getUint8(p),
      dst: littleEndian ? regs & 0xf : regs >> 4,
      src: littleEndian ? regs >> 4 : regs & 0xf,
      off: dv.getInt16(p + 2, littleEndian),
      imm: dv.getInt32(p + 4, littleEndian),
      imm2: 0,
    });
  }
  for (let k = 0; k < out.length; k++) {
    const i = out[k] as Insn;
    if (!isLddw(i)) continue;
    const next = out[k + 1];
    if (next === undefined) {
      throw new LoaderError('EINVAL', 'lddw at the end of the section lacks its second half', {
        section,
        offset: k * 8,
      });
    }
    i.imm2 = next.imm;
    k++;
  }
  return out;
}

export function cloneInsns(insns: readonly Insn[]): Insn[] {
  return insns.map((i) => ({ ...i }));
}
