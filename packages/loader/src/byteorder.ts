import type { Btf } from '@tracelab/btf';
import { LoaderError } from './errors.js';
import type { MapDef } from './object.js';

/** [offset, size] of one scalar whose bytes swap between the byte orders. */
type Span = readonly [number, number];

/** Where the scalars of a BTF type lie; undefined when the layout depends on the byte order. */
function spans(btf: Btf, id: number, base: number, out: Span[]): string | undefined {
  const t = btf.type(btf.resolve(id));
  switch (t?.kind) {
    case 'int':
    case 'enum':
    case 'enum64':
    case 'float':
      if (t.size > 1) out.push([base, t.size]);
      return undefined;
    case 'ptr':
      out.push([base, 8]);
      return undefined;
    case 'array': {
      const size = btf.sizeOf(t.type);
      for (let k = 0; k < t.nelems; k++) {
        const why = spans(btf, t.type, base + k * size, out);
        if (why !== undefined) return why;
      }
      return undefined;
    }
    case 'struct':
      for (const m of t.members) {
        // A bitfield's bits count from the other end of its storage unit in big-endian.
        if (m.bitfieldSize !== 0 || m.bitsOffset % 8 !== 0) return `bitfield '${m.name}'`;
        const why = spans(btf, m.type, base + m.bitsOffset / 8, out);
        if (why !== undefined) return why;
      }
      return undefined;
    case 'union': {
      // Members that overlay different scalars leave no one right way to swap the bytes.
      let first: Span[] | undefined;
      for (const m of t.members) {
        const mine: Span[] = [];
        const why = spans(btf, m.type, base, mine);
        if (why !== undefined) return why;
        if (first === undefined) first = mine;
        else if (JSON.stringify(mine) !== JSON.stringify(first)) return `union member '${m.name}'`;
      }
      out.push(...(first ?? []));
      return undefined;
    }
    default:
      return `type [${id}] of kind ${t?.kind ?? 'unknown'}`;
  }
}

/**
 * A big-endian object's global data in the vm's little-endian order: each variable's scalars,
 * as its BTF type lays them out, are byte-swapped; padding is left alone. Data whose meaning
 * depends on the byte order (bitfields, unions of different scalars, variables without BTF wider
 * than a byte) cannot be converted and is EOPNOTSUPP.
 */
export function dataToLittleEndian(
  btf: Btf | undefined,
  def: MapDef,
  data: Uint8Array,
): Uint8Array {
  const out = data.slice();
  for (const v of def.vars) {
    const where = { section: def.section, offset: v.offset };
    const found: Span[] = [];
    let why: string | undefined;
    if (btf === undefined || v.typeId === 0) {
      if (v.size > 1) why = 'no BTF type';
    } else {
      why = spans(btf, v.typeId, v.offset, found);
    }
    if (why !== undefined)
      throw new LoaderError(
        'EOPNOTSUPP',
        `big-endian variable '${v.name}' of '${def.name}' cannot be converted for the little-endian vm: ${why}`,
        where,
      );
    for (const [off, size] of found) {
      if (off + size > out.length)
        throw new LoaderError('EINVAL', `variable '${v.name}' runs past '${def.name}'`, where);
      out.subarray(off, off + size).reverse();
    }
  }
  return out;
}
