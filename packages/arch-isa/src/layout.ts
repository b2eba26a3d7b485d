/** One member of a kernel struct: its name as the kernel spells it, byte offset and size. */
export interface FieldLayout {
  readonly name: string;
  readonly offset: number;
  readonly size: 4 | 8;
}

/** A kernel struct laid out as the kernel defines it (field order and offsets). */
export interface StructLayout {
  readonly name: string;
  readonly size: number;
  readonly fields: readonly FieldLayout[];
  /** Field index by name, for O(1) lookups off the hot path. */
  readonly index: ReadonlyMap<string, number>;
}

/** Lays fields out in order with natural alignment, as a C compiler does for these structs. */
export function layoutStruct(
  name: string,
  members: readonly (readonly [string, 4 | 8])[],
  align: 4 | 8,
): StructLayout {
  const fields: FieldLayout[] = [];
  let offset = 0;
  for (const [fieldName, size] of members) {
    offset = Math.ceil(offset / size) * size;
    fields.push({ name: fieldName, offset, size });
    offset += size;
  }
  const size = Math.ceil(offset / align) * align;
  return { name, size, fields, index: new Map(fields.map((f, i) => [f.name, i])) };
}
