import { ERRNO } from '@tracelab/contracts';
import { VmError } from './errors.js';
import { copyBytes, type Region } from './memory.js';
import type { Program } from './program.js';

// enum bpf_map_type (include/uapi/linux/bpf.h)
export const BPF_MAP_TYPE_HASH = 1;
export const BPF_MAP_TYPE_ARRAY = 2;
export const BPF_MAP_TYPE_PROG_ARRAY = 3;
export const BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4;
export const BPF_MAP_TYPE_PERCPU_HASH = 5;
export const BPF_MAP_TYPE_PERCPU_ARRAY = 6;
export const BPF_MAP_TYPE_STACK_TRACE = 7;
export const BPF_MAP_TYPE_LRU_HASH = 9;
export const BPF_MAP_TYPE_ARRAY_OF_MAPS = 12;
export const BPF_MAP_TYPE_HASH_OF_MAPS = 13;
export const BPF_MAP_TYPE_RINGBUF = 27;

// Update flags.
export const BPF_ANY = 0;
export const BPF_NOEXIST = 1;
export const BPF_EXIST = 2;

/** Map flag: an inner map whose max_entries may differ from the template's. */
export const BPF_F_INNER_MAP = 1 << 12;

export interface MapAttr {
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  name?: string;
  mapFlags?: number;
  /** Map-in-map: the template inner map (BPF_MAP_CREATE's inner_map_fd, an id here). */
  innerMapId?: number;
}

export const PAGE = 4096;
/** Hash elements are limited like the kernel's htab (no more than this many). */
export const MAX_ENTRIES_LIMIT = 1 << 24;

export function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** FNV-1a over key bytes; allocation-free. */
function hashBytes(bytes: Uint8Array, off: number, len: number): number {
  let h = 0x811c9dc5;
  for (let k = 0; k < len; k++) h = Math.imul(h ^ (bytes[off + k] as number), 0x01000193);
  return h >>> 0;
}

// Program-side results are negative errnos, as the helpers return them (no VmError per call).
const EINVAL = -ERRNO.EINVAL;
const EEXIST = -ERRNO.EEXIST;
const ENOENT = -ERRNO.ENOENT;
const E2BIG = -ERRNO.E2BIG;

/**
 * A BPF map. User-side operations take and return byte arrays; the program-side ones (used by
 * helpers) take addresses and return value addresses inside the address space, so a program can
 * read and write the value in place as it does in the kernel.
 */
export abstract class BpfMap {
  /** The value storage, mapped in the address space (absent for maps without values there). */
  abstract readonly values: Region | null;

  constructor(
    readonly id: number,
    readonly attr: MapAttr,
    /** What lddw of this map's fd loads (its struct bpf_map address). */
    readonly address: bigint,
    readonly ncpus: number,
  ) {
    this.addressLo = Number(address & 0xffffffffn);
    this.addressHi = Number(address >> 32n);
  }

  /** address as two words, for helpers that return it without a bigint. */
  declare readonly addressLo: number;
  declare readonly addressHi: number;

  get name(): string {
    return this.attr.name ?? `map${this.id}`;
  }

  protected checkKey(key: Uint8Array): VmError | null {
    if (key.length !== this.attr.keySize) {
      return new VmError(
        'EINVAL',
        `${this.name}: key has ${key.length} bytes, key_size is ${this.attr.keySize}`,
      );
    }
    return null;
  }

  /** Slot offset in `values` of key's value for cpu, or -1 when absent. */
  abstract lookupSlot(key: Uint8Array, keyOff: number, cpu: number): number;
  abstract update(key: Uint8Array, value: Uint8Array, flags: number, cpu?: number): VmError | null;
  abstract delete(key: Uint8Array): VmError | null;
  abstract getNextKey(key: Uint8Array | null): Uint8Array | VmError;

  /**
   * For maps whose values live in `values`: the slot an update of key (at keyOff) under flags
   * writes for cpu, the element made if new, or a negative errno. null for the other maps.
   */
  protected updateSlot(
    _key: Uint8Array,
    _keyOff: number,
    _flags: number,
    _cpu: number,
  ): number | null {
    return null;
  }

  /**
   * Program side (bpf_map_update_elem): key and value read in place at offsets of byte arrays,
   * the value for cpu only; 0 or a negative errno. Maps with an updateSlot do this without
   * allocating (a program updates them per traced call); the others copy both for update.
   */
  updateAt(
    key: Uint8Array,
    keyOff: number,
    value: Uint8Array,
    valueOff: number,
    flags: number,
    cpu: number,
  ): number {
    const slot = this.updateSlot(key, keyOff, flags, cpu);
    if (slot !== null) {
      if (slot < 0) return slot;
      copyBytes((this.values as Region).bytes, slot, value, valueOff, this.attr.valueSize);
      return 0;
    }
    const err = this.update(
      key.slice(keyOff, keyOff + this.attr.keySize),
      value.slice(valueOff, valueOff + this.attr.valueSize),
      flags,
      cpu,
    );
    return err === null ? 0 : err.errno;
  }

  /** Program side (bpf_map_delete_elem), as updateAt: 0 or a negative errno. */
  deleteAt(key: Uint8Array, keyOff: number): number {
    const err = this.delete(key.slice(keyOff, keyOff + this.attr.keySize));
    return err === null ? 0 : err.errno;
  }

  /** Bytes of one value as user space sees it (all CPUs for per-CPU maps). */
  get userValueSize(): number {
    return this.attr.valueSize;
  }

  /** User-side lookup: a copy of the value (all CPUs' values, 8-byte aligned, for per-CPU maps). */
  lookup(key: Uint8Array): Uint8Array | VmError {
    const e = this.checkKey(key);
    if (e !== null) return e;
    if (this.values === null)
      return new VmError('EOPNOTSUPP', `${this.name}: lookup is not supported`);
    if (this.lookupSlot(key, 0, 0) < 0) return new VmError('ENOENT', `${this.name}: no such key`);
    const percpu = this.userValueSize !== this.attr.valueSize;
    const stride = percpu ? roundUp(this.attr.valueSize, 8) : this.attr.valueSize;
    const out = new Uint8Array(this.userValueSize);
    const cpus = percpu ? this.ncpus : 1;
    for (let c = 0; c < cpus; c++) {
      const off = this.lookupSlot(key, 0, c);
      out.set(this.values.bytes.subarray(off, off + this.attr.valueSize), c * stride);
    }
    return out;
  }
}

export class ArrayMap extends BpfMap {
  declare private readonly stride: number;

  constructor(
    id: number,
    attr: MapAttr,
    address: bigint,
    ncpus: number,
    readonly values: Region,
    readonly percpu: boolean,
  ) {
    super(id, attr, address, ncpus);
    this.stride = roundUp(attr.valueSize, 8);
  }

  override get userValueSize(): number {
    return this.percpu ? this.stride * this.ncpus : this.attr.valueSize;
  }

  lookupSlot(key: Uint8Array, keyOff: number, cpu: number): number {
    const index =
      ((key[keyOff] as number) |
        ((key[keyOff + 1] as number) << 8) |
        ((key[keyOff + 2] as number) << 16) |
        ((key[keyOff + 3] as number) << 24)) >>>
      0;
    if (index >= this.attr.maxEntries) return -1;
    return this.percpu ? (index * this.ncpus + cpu) * this.stride : index * this.stride;
  }

  protected override updateSlot(
    key: Uint8Array,
    keyOff: number,
    flags: number,
    cpu: number,
  ): number {
    if (flags < 0 || flags > BPF_EXIST) return EINVAL;
    const off = this.lookupSlot(key, keyOff, cpu);
    if (off < 0) return E2BIG;
    // Every array element always exists.
    return flags === BPF_NOEXIST ? EEXIST : off;
  }

  update(key: Uint8Array, value: Uint8Array, flags: number, cpu = 0): VmError | null {
    const e = this.checkKey(key);
    if (e !== null) return e;
    const off = this.updateSlot(key, 0, flags, cpu);
    if (off === EINVAL) return new VmError('EINVAL', `${this.name}: unknown update flags ${flags}`);
    if (off === E2BIG)
      return new VmError(
        'E2BIG',
        `${this.name}: index out of range (max_entries ${this.attr.maxEntries})`,
      );
    if (off === EEXIST) return new VmError('EEXIST', `${this.name}: array elements always exist`);
    if (this.percpu && value.length === this.userValueSize) {
      for (let c = 0; c < this.ncpus; c++) {
        this.values.bytes.set(
          value.subarray(c * this.stride, c * this.stride + this.attr.valueSize),
          this.lookupSlot(key, 0, c),
        );
      }
      return null;
    }
    if (value.length !== this.attr.valueSize)
      return new VmError(
        'EINVAL',
        `${this.name}: value has ${value.length} bytes, value_size is ${this.attr.valueSize}`,
      );
    this.values.bytes.set(value, off);
    return null;
  }

  delete(key: Uint8Array): VmError | null {
    return (
      this.checkKey(key) ?? new VmError('EINVAL', `${this.name}: array elements cannot be deleted`)
    );
  }

  override deleteAt(): number {
    return EINVAL;
  }

  getNextKey(key: Uint8Array | null): Uint8Array | VmError {
    let next = 0;
    if (key !== null) {
      const e = this.checkKey(key);
      if (e !== null) return e;
      const index = new DataView(key.buffer, key.byteOffset).getUint32(0, true);
      next = index >= this.attr.maxEntries ? 0 : index + 1;
    }
    if (next >= this.attr.maxEntries) return new VmError('ENOENT', `${this.name}: no next key`);
    const out = new Uint8Array(4);
    new DataView(out.buffer).setUint32(0, next, true);
    return out;
  }
}

const EMPTY = -1;
const TOMBSTONE = -2;

/** hash, percpu_hash and lru_hash: open addressing over preallocated elements (no allocation per op). */
export class HashMap extends BpfMap {
  declare private readonly stride: number;
  declare private readonly keys: Uint8Array;
  declare private readonly buckets: Int32Array;
  declare private readonly mask: number;
  declare private readonly free: Int32Array;
  declare private nfree: number;
  declare private readonly lastUsed: Float64Array;
  private tick = 0;
  private tombstones = 0;
  count = 0;

  constructor(
    id: number,
    attr: MapAttr,
    address: bigint,
    ncpus: number,
    readonly values: Region,
    readonly percpu: boolean,
    readonly lru: boolean,
  ) {
    super(id, attr, address, ncpus);
    this.stride = roundUp(attr.valueSize, 8);
    this.keys = new Uint8Array(attr.keySize * attr.maxEntries);
    let nb = 2;
    while (nb < attr.maxEntries * 2) nb *= 2;
    this.buckets = new Int32Array(nb).fill(EMPTY);
    this.mask = nb - 1;
    this.free = new Int32Array(attr.maxEntries);
    for (let k = 0; k < attr.maxEntries; k++) this.free[k] = attr.maxEntries - 1 - k;
    this.nfree = attr.maxEntries;
    this.lastUsed = new Float64Array(attr.maxEntries);
  }

  override get userValueSize(): number {
    return this.percpu ? this.stride * this.ncpus : this.attr.valueSize;
  }

  private slotOf(elem: number, cpu: number): number {
    return this.percpu ? (elem * this.ncpus + cpu) * this.stride : elem * this.stride;
  }

  /** Bucket index holding key, or -1. */
  private findBucket(key: Uint8Array, keyOff: number): number {
    const ks = this.attr.keySize;
    let b = hashBytes(key, keyOff, ks) & this.mask;
    for (let probes = 0; probes <= this.mask; probes++) {
      const e = this.buckets[b] as number;
      if (e === EMPTY) return -1;
      if (e >= 0) {
        let same = true;
        for (let k = 0; k < ks; k++) {
          if (this.keys[e * ks + k] !== key[keyOff + k]) {
            same = false;
            break;
          }
        }
        if (same) return b;
      }
      b = (b + 1) & this.mask;
    }
    return -1;
  }

  lookupSlot(key: Uint8Array, keyOff: number, cpu: number): number {
    const b = this.findBucket(key, keyOff);
    if (b < 0) return -1;
    const e = this.buckets[b] as number;
    if (this.lru) this.lastUsed[e] = ++this.tick;
    return this.slotOf(e, cpu);
  }

  /** The element an update of key under flags writes (made if new), or a negative errno. */
  private elemFor(key: Uint8Array, keyOff: number, flags: number): number {
    if (flags < 0 || flags > BPF_EXIST) return EINVAL;
    const b = this.findBucket(key, keyOff);
    if (b >= 0 && flags === BPF_NOEXIST) return EEXIST;
    if (b < 0 && flags === BPF_EXIST) return ENOENT;
    let e: number;
    if (b >= 0) {
      e = this.buckets[b] as number;
    } else {
      if (this.nfree === 0) {
        if (!this.lru) return E2BIG;
        this.evictOldest();
      }
      e = this.free[--this.nfree] as number;
      const ks = this.attr.keySize;
      copyBytes(this.keys, e * ks, key, keyOff, ks);
      let nb = hashBytes(key, keyOff, ks) & this.mask;
      while ((this.buckets[nb] as number) >= 0) nb = (nb + 1) & this.mask;
      if (this.buckets[nb] === TOMBSTONE) this.tombstones--;
      this.buckets[nb] = e;
      this.count++;
      // A new element starts zeroed on every CPU.
      for (let c = 0; c < (this.percpu ? this.ncpus : 1); c++) {
        const o = this.slotOf(e, c);
        this.values.bytes.fill(0, o, o + this.stride);
      }
    }
    if (this.lru) this.lastUsed[e] = ++this.tick;
    return e;
  }

  protected override updateSlot(
    key: Uint8Array,
    keyOff: number,
    flags: number,
    cpu: number,
  ): number {
    const e = this.elemFor(key, keyOff, flags);
    return e < 0 ? e : this.slotOf(e, cpu);
  }

  update(key: Uint8Array, value: Uint8Array, flags: number, cpu = 0): VmError | null {
    const err = this.checkKey(key);
    if (err !== null) return err;
    if (flags < 0 || flags > BPF_EXIST)
      return new VmError('EINVAL', `${this.name}: unknown update flags ${flags}`);
    const whole = this.percpu && value.length === this.userValueSize;
    if (!whole && value.length !== this.attr.valueSize) {
      return new VmError(
        'EINVAL',
        `${this.name}: value has ${value.length} bytes, value_size is ${this.attr.valueSize}`,
      );
    }
    const e = this.elemFor(key, 0, flags);
    if (e === EEXIST) return new VmError('EEXIST', `${this.name}: key exists`);
    if (e === ENOENT) return new VmError('ENOENT', `${this.name}: no such key`);
    if (e === E2BIG)
      return new VmError(
        'E2BIG',
        `${this.name}: map is full (max_entries ${this.attr.maxEntries})`,
      );
    if (whole) {
      for (let c = 0; c < this.ncpus; c++) {
        this.values.bytes.set(
          value.subarray(c * this.stride, c * this.stride + this.attr.valueSize),
          this.slotOf(e, c),
        );
      }
    } else {
      this.values.bytes.set(value, this.slotOf(e, cpu));
    }
    return null;
  }

  private evictOldest(): void {
    let victim = -1;
    let best = Infinity;
    for (let b = 0; b <= this.mask; b++) {
      const e = this.buckets[b] as number;
      if (e >= 0 && (this.lastUsed[e] as number) < best) {
        best = this.lastUsed[e] as number;
        victim = b;
      }
    }
    this.removeBucket(victim);
  }

  private removeBucket(b: number): void {
    const e = this.buckets[b] as number;
    this.buckets[b] = TOMBSTONE;
    this.free[this.nfree++] = e;
    this.count--;
    // Probe chains only end at empty buckets; rebuild before tombstones make lookups linear.
    if (++this.tombstones > (this.mask + 1) >> 2) this.rehash();
  }

  private rehash(): void {
    const live: number[] = [];
    for (let b = 0; b <= this.mask; b++) {
      const e = this.buckets[b] as number;
      if (e >= 0) live.push(e);
    }
    this.buckets.fill(EMPTY);
    this.tombstones = 0;
    const ks = this.attr.keySize;
    for (const e of live) {
      let nb = hashBytes(this.keys, e * ks, ks) & this.mask;
      while ((this.buckets[nb] as number) >= 0) nb = (nb + 1) & this.mask;
      this.buckets[nb] = e;
    }
  }

  delete(key: Uint8Array): VmError | null {
    const err = this.checkKey(key);
    if (err !== null) return err;
    return this.deleteAt(key, 0) === 0 ? null : new VmError('ENOENT', `${this.name}: no such key`);
  }

  override deleteAt(key: Uint8Array, keyOff: number): number {
    const b = this.findBucket(key, keyOff);
    if (b < 0) return ENOENT;
    this.removeBucket(b);
    return 0;
  }

  getNextKey(key: Uint8Array | null): Uint8Array | VmError {
    const ks = this.attr.keySize;
    let start = 0;
    if (key !== null) {
      const err = this.checkKey(key);
      if (err !== null) return err;
      const b = this.findBucket(key, 0);
      // A key that is not there restarts the walk, as the kernel's htab does.
      start = b < 0 ? 0 : b + 1;
    }
    for (let b = start; b <= this.mask; b++) {
      const e = this.buckets[b] as number;
      if (e >= 0) return this.keys.slice(e * ks, e * ks + ks);
    }
    return new VmError('ENOENT', `${this.name}: no next key`);
  }
}

/** prog_array: index -> program, for bpf_tail_call. */
export class ProgArray extends BpfMap {
  readonly values = null;
  readonly progs: (Program | undefined)[];

  constructor(id: number, attr: MapAttr, address: bigint, ncpus: number) {
    super(id, attr, address, ncpus);
    this.progs = new Array<Program | undefined>(attr.maxEntries);
  }

  lookupSlot(): number {
    return -1;
  }

  /** User side: place a program at index (the kernel takes its fd). */
  set(index: number, prog: Program | undefined, flags = BPF_ANY): VmError | null {
    if (!Number.isInteger(index) || index < 0 || index >= this.attr.maxEntries) {
      return new VmError(
        'E2BIG',
        `${this.name}: index ${index} out of range (max_entries ${this.attr.maxEntries})`,
      );
    }
    if (flags === BPF_NOEXIST)
      return new VmError('EEXIST', `${this.name}: prog_array elements always exist`);
    this.progs[index] = prog;
    return null;
  }

  update(): VmError | null {
    return new VmError('EINVAL', `${this.name}: prog_array is updated with programs, use set()`);
  }

  delete(key: Uint8Array): VmError | null {
    const err = this.checkKey(key);
    if (err !== null) return err;
    const index = new DataView(key.buffer, key.byteOffset).getUint32(0, true);
    if (index >= this.attr.maxEntries)
      return new VmError('E2BIG', `${this.name}: index ${index} out of range`);
    if (this.progs[index] === undefined)
      return new VmError('ENOENT', `${this.name}: no program at ${index}`);
    this.progs[index] = undefined;
    return null;
  }

  getNextKey(key: Uint8Array | null): Uint8Array | VmError {
    const index = key === null ? -1 : new DataView(key.buffer, key.byteOffset).getUint32(0, true);
    // As for arrays: a key out of range restarts at index 0.
    const next =
      index >= this.attr.maxEntries ? 0 : index + 1 >= this.attr.maxEntries ? -1 : index + 1;
    if (next < 0) return new VmError('ENOENT', `${this.name}: no next key`);
    return Uint8Array.of(next & 0xff, (next >> 8) & 0xff, (next >> 16) & 0xff, next >>> 24);
  }
}

/**
 * array_of_maps and hash_of_maps: each value is an inner map (its id from user space, its
 * struct bpf_map pointer for programs). Inner maps must match the template the outer map was
 * created with (bpf_map_meta_equal). The ids live in an array or hash of 4-byte values, so a
 * program's lookup finds its inner map without allocating.
 */
export class MapOfMaps extends BpfMap {
  readonly values = null;

  constructor(
    id: number,
    attr: MapAttr,
    address: bigint,
    ncpus: number,
    private readonly slots: ArrayMap | HashMap,
    readonly template: MapAttr,
    private readonly mapById: (id: number) => BpfMap | undefined,
  ) {
    super(id, attr, address, ncpus);
  }

  /** Programs reach inner maps through innerAt, never through value memory. */
  lookupSlot(): number {
    return -1;
  }

  private idAt(key: Uint8Array, keyOff: number): number {
    const off = this.slots.lookupSlot(key, keyOff, 0);
    if (off < 0) return 0;
    const b = this.slots.values.bytes;
    return (
      ((b[off] as number) |
        ((b[off + 1] as number) << 8) |
        ((b[off + 2] as number) << 16) |
        ((b[off + 3] as number) << 24)) >>>
      0
    );
  }

  /** Program side: the inner map at key (bpf_map_lookup_elem's result), or undefined. */
  innerAt(key: Uint8Array, keyOff: number): BpfMap | undefined {
    const id = this.idAt(key, keyOff);
    return id === 0 ? undefined : this.mapById(id);
  }

  /** User side: the inner map's id. */
  override lookup(key: Uint8Array): Uint8Array | VmError {
    const e = this.checkKey(key);
    if (e !== null) return e;
    const id = this.idAt(key, 0);
    if (id === 0) return new VmError('ENOENT', `${this.name}: no such key`);
    return Uint8Array.of(id & 0xff, (id >> 8) & 0xff, (id >> 16) & 0xff, id >>> 24);
  }

  /** User side: value is the inner map's id (the kernel takes its fd). */
  update(key: Uint8Array, value: Uint8Array, flags: number): VmError | null {
    const e = this.checkKey(key);
    if (e !== null) return e;
    if (value.length !== 4)
      return new VmError('EINVAL', `${this.name}: value is an inner map id of 4 bytes`);
    const id = new DataView(value.buffer, value.byteOffset, 4).getUint32(0, true);
    const inner = this.mapById(id);
    if (inner === undefined) return new VmError('EBADF', `${this.name}: ${id} is not a map`);
    const t = this.template;
    const sameSize =
      inner.attr.maxEntries === t.maxEntries ||
      ((t.mapFlags ?? 0) & BPF_F_INNER_MAP) !== 0 ||
      (t.type !== BPF_MAP_TYPE_ARRAY && t.type !== BPF_MAP_TYPE_PERCPU_ARRAY);
    if (
      inner.attr.type !== t.type ||
      inner.attr.keySize !== t.keySize ||
      inner.attr.valueSize !== t.valueSize ||
      (inner.attr.mapFlags ?? 0) !== (t.mapFlags ?? 0) ||
      !sameSize
    )
      return new VmError(
        'EINVAL',
        `${this.name}: map ${inner.name} does not match the inner map template`,
      );
    return this.slots.update(key, value, flags);
  }

  delete(key: Uint8Array): VmError | null {
    if (this.slots instanceof HashMap) return this.slots.delete(key);
    const e = this.checkKey(key);
    if (e !== null) return e;
    if (this.idAt(key, 0) === 0) return new VmError('ENOENT', `${this.name}: no map at this key`);
    return this.slots.update(key, new Uint8Array(4), BPF_ANY);
  }

  getNextKey(key: Uint8Array | null): Uint8Array | VmError {
    return this.slots.getNextKey(key);
  }
}
