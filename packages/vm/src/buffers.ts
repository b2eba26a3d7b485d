import { VmError } from './errors.js';
import { ERRNO } from '@tracelab/contracts';
import { copyBytes, type Region } from './memory.js';
import {
  BPF_MAP_TYPE_PERF_EVENT_ARRAY,
  BPF_MAP_TYPE_RINGBUF,
  BPF_MAP_TYPE_STACK_TRACE,
  BpfMap,
  type MapAttr,
} from './maps.js';

const PAGE = 4096;
const EAGAIN = -ERRNO.EAGAIN;
/** BPF_RINGBUF_BUSY_BIT, BPF_RINGBUF_DISCARD_BIT, BPF_RINGBUF_HDR_SZ. */
export const BPF_RINGBUF_BUSY_BIT = 1 << 31;
export const BPF_RINGBUF_DISCARD_BIT = 1 << 30;
export const BPF_RINGBUF_HDR_SZ = 8;

type Alloc = (name: string, size: number) => Region | VmError;

/**
 * BPF_MAP_TYPE_RINGBUF: one multi-producer ring shared by all CPUs. The kernel maps the data
 * pages twice back to back so a record that wraps is contiguous; here the region is 2x the size
 * and submit folds the part written past the end back to the start.
 */
export class RingBuf extends BpfMap {
  readonly values = null;
  declare readonly data: Region;
  declare private readonly view: DataView;
  declare private readonly size: number;
  private prod = 0;
  private cons = 0;
  /** Reservations refused because the ring was full. */
  lost = 0;

  private constructor(id: number, attr: MapAttr, address: bigint, data: Region) {
    super(id, attr, address, 1);
    this.data = data;
    this.size = attr.maxEntries;
    this.view = data.view;
  }

  static create(id: number, handle: bigint, attr: MapAttr, alloc: Alloc): RingBuf | VmError {
    const n = attr.maxEntries;
    const name = attr.name ?? `map${id}`;
    if (attr.keySize !== 0 || attr.valueSize !== 0)
      return new VmError('EINVAL', `${name}: ringbuf key_size and value_size must be 0`);
    if (n < PAGE || (n & (n - 1)) !== 0)
      return new VmError(
        'EINVAL',
        `${name}: ringbuf size ${n} must be a power of 2 and at least ${PAGE}`,
      );
    const data = alloc(`${name}:ringbuf`, 2 * n);
    if (data instanceof VmError) return data;
    return new RingBuf(id, { ...attr, type: BPF_MAP_TYPE_RINGBUF }, handle, data);
  }

  /** Bytes produced but not consumed. */
  get pending(): number {
    return this.prod - this.cons;
  }

  // The program side works in offsets of `data` (a traced call makes no bigint addresses).

  /**
   * Reserves size bytes: the sample's offset in `data` (past its header), or -1 when it does not
   * fit (lost++).
   */
  reserve(size: number): number {
    const len = Math.ceil((size + BPF_RINGBUF_HDR_SZ) / 8) * 8;
    if (size <= 0 || len > this.size || this.prod + len - this.cons > this.size) {
      this.lost++;
      return -1;
    }
    const off = this.prod % this.size;
    this.view.setUint32(off, (size | BPF_RINGBUF_BUSY_BIT) >>> 0, true);
    this.view.setUint32(off + 4, off, true);
    this.prod += len;
    return off + BPF_RINGBUF_HDR_SZ;
  }

  /** Commits (or discards) the sample at offset `at` of data; EINVAL if none was reserved there. */
  commit(at: number, discard: boolean): VmError | null {
    const off = at - BPF_RINGBUF_HDR_SZ;
    if (off < 0 || off >= this.size || off % 8 !== 0)
      return new VmError('EINVAL', `${this.name}: ${this.addressOf(at)} is not a ringbuf sample`);
    const hdr = this.view.getUint32(off, true);
    if ((hdr & BPF_RINGBUF_BUSY_BIT) === 0) {
      return new VmError(
        'EINVAL',
        `${this.name}: sample at ${this.addressOf(at)} was already committed`,
      );
    }
    const size = hdr & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);
    const end = off + BPF_RINGBUF_HDR_SZ + size;
    if (end > this.size) this.data.bytes.copyWithin(0, this.size, end);
    this.view.setUint32(off, (size | (discard ? BPF_RINGBUF_DISCARD_BIT : 0)) >>> 0, true);
    return null;
  }

  private addressOf(at: number): string {
    return `0x${(this.data.base + BigInt(at)).toString(16)}`;
  }

  /** bpf_ringbuf_output of n bytes at src[off]: reserve, copy, submit; 0 or -EAGAIN when full. */
  output(src: Uint8Array, off: number, n: number): number {
    const at = this.reserve(n);
    if (at < 0) return EAGAIN;
    copyBytes(this.data.bytes, at, src, off, n);
    this.commit(at, false);
    return 0;
  }

  /** The consumer: delivers committed samples in order, stops at the first one still busy. */
  consume(each: (sample: Uint8Array) => void): number {
    let n = 0;
    while (this.cons < this.prod) {
      const off = this.cons % this.size;
      const hdr = this.view.getUint32(off, true);
      if ((hdr & BPF_RINGBUF_BUSY_BIT) !== 0) break;
      const size = hdr & ~BPF_RINGBUF_DISCARD_BIT;
      if ((hdr & BPF_RINGBUF_DISCARD_BIT) === 0) {
        const start = off + BPF_RINGBUF_HDR_SZ;
        const out = new Uint8Array(size);
        // Samples that wrapped were folded back to the start by commit().
        for (let k = 0; k < size; k++) out[k] = this.data.bytes[(start + k) % this.size] as number;
        each(out);
        n++;
      }
      this.cons += Math.ceil((size + BPF_RINGBUF_HDR_SZ) / 8) * 8;
    }
    return n;
  }

  lookupSlot(): number {
    return -1;
  }
  update(): VmError | null {
    return new VmError('EOPNOTSUPP', `${this.name}: ringbuf has no elements to update`);
  }
  delete(): VmError | null {
    return new VmError('EOPNOTSUPP', `${this.name}: ringbuf has no elements to delete`);
  }
  getNextKey(): Uint8Array | VmError {
    return new VmError('EOPNOTSUPP', `${this.name}: ringbuf has no keys`);
  }
}

/** BPF_F_CURRENT_CPU in perf_event_output's flags. */
export const BPF_F_CURRENT_CPU = 0xffffffff;

/**
 * BPF_MAP_TYPE_PERF_EVENT_ARRAY: one bounded buffer per CPU, records of (u32 size, data padded
 * to 8); a record that does not fit is dropped and counted in that CPU's lost count.
 */
export class PerfEventArray extends BpfMap {
  readonly values = null;
  declare private readonly rings: Uint8Array[];
  declare private readonly head: number[];
  declare private readonly tail: number[];
  declare readonly lost: number[];
  /** Which CPUs have a reader (an open perf event); output to others is ENOENT. */
  declare readonly open: boolean[];

  constructor(id: number, handle: bigint, attr: MapAttr, ncpus: number, bytesPerCpu = 64 * 1024) {
    super(id, { ...attr, type: BPF_MAP_TYPE_PERF_EVENT_ARRAY }, handle, ncpus);
    this.rings = Array.from({ length: attr.maxEntries }, () => new Uint8Array(bytesPerCpu));
    this.head = new Array<number>(attr.maxEntries).fill(0);
    this.tail = new Array<number>(attr.maxEntries).fill(0);
    this.lost = new Array<number>(attr.maxEntries).fill(0);
    this.open = new Array<boolean>(attr.maxEntries).fill(true);
  }

  /** Appends a record for index (a CPU); returns 0 or a negative errno as the helper does. */
  output(index: number, src: Uint8Array, off: number, len: number): number {
    if (index >= this.attr.maxEntries) return -7; // -E2BIG
    if (!this.open[index]) return -2; // -ENOENT
    const ring = this.rings[index] as Uint8Array;
    const rec = 8 + Math.ceil(len / 8) * 8;
    const used = (this.head[index] as number) - (this.tail[index] as number);
    if (used + rec > ring.length) {
      this.lost[index] = (this.lost[index] as number) + 1;
      return -28; // -ENOSPC
    }
    // The u32 size, 4 zero bytes, then the data padded to 8 (no closure: this runs per call).
    const n = ring.length;
    let at = (this.head[index] as number) % n;
    for (let k = 0; k < rec; k++) {
      ring[at] =
        k < 4 ? (len >>> (8 * k)) & 0xff : k < 8 || k - 8 >= len ? 0 : (src[off + k - 8] as number);
      at = at + 1 === n ? 0 : at + 1;
    }
    this.head[index] = (this.head[index] as number) + rec;
    return 0;
  }

  /** Drains one CPU's records; returns them and the lost count accumulated since the last drain. */
  drain(index: number): { records: Uint8Array[]; lost: number } {
    const ring = this.rings[index] as Uint8Array;
    const records: Uint8Array[] = [];
    while ((this.tail[index] as number) < (this.head[index] as number)) {
      const at = (this.tail[index] as number) % ring.length;
      let len = 0;
      for (let k = 0; k < 4; k++) len |= (ring[(at + k) % ring.length] as number) << (8 * k);
      const out = new Uint8Array(len);
      for (let k = 0; k < len; k++) out[k] = ring[(at + 8 + k) % ring.length] as number;
      records.push(out);
      this.tail[index] = (this.tail[index] as number) + 8 + Math.ceil(len / 8) * 8;
    }
    const lost = this.lost[index] as number;
    this.lost[index] = 0;
    return { records, lost };
  }

  lookupSlot(): number {
    return -1;
  }
  update(): VmError | null {
    return new VmError(
      'EOPNOTSUPP',
      `${this.name}: perf event array is written with perf_event_output`,
    );
  }
  delete(): VmError | null {
    return new VmError('EOPNOTSUPP', `${this.name}: perf event array has no elements to delete`);
  }
  getNextKey(): Uint8Array | VmError {
    return new VmError('EOPNOTSUPP', `${this.name}: perf event array keys are CPUs`);
  }
}

export const BPF_F_SKIP_FIELD_MASK = 0xff;
export const BPF_F_USER_STACK = 1 << 8;
export const BPF_F_FAST_STACK_CMP = 1 << 9;
export const BPF_F_REUSE_STACKID = 1 << 10;

/** BPF_MAP_TYPE_STACK_TRACE: stack id (u32 key) -> array of u64 instruction pointers. */
export class StackTraceMap extends BpfMap {
  declare readonly values: Region;
  declare private readonly used: Uint8Array;
  declare private readonly depth: number;

  private constructor(id: number, handle: bigint, attr: MapAttr, values: Region) {
    super(id, attr, handle, 1);
    this.values = values;
    this.used = new Uint8Array(attr.maxEntries);
    this.depth = attr.valueSize / 8;
  }

  static create(id: number, handle: bigint, attr: MapAttr, alloc: Alloc): StackTraceMap | VmError {
    const name = attr.name ?? `map${id}`;
    if (attr.keySize !== 4) return new VmError('EINVAL', `${name}: stack_trace key_size must be 4`);
    if (attr.valueSize < 8 || attr.valueSize % 8 !== 0)
      return new VmError('EINVAL', `${name}: stack_trace value_size must be a multiple of 8`);
    const values = alloc(`${name}:stacks`, attr.valueSize * attr.maxEntries);
    if (values instanceof VmError) return values;
    return new StackTraceMap(id, handle, { ...attr, type: BPF_MAP_TYPE_STACK_TRACE }, values);
  }

  /** bpf_get_stackid's bucket logic: same stack -> same id; a different stack in the bucket -> -EEXIST unless REUSE. */
  stackId(ips: readonly bigint[], flags: number): number {
    const skip = flags & BPF_F_SKIP_FIELD_MASK;
    const frames = ips.slice(skip, skip + this.depth);
    if (frames.length === 0) return -14; // -EFAULT: no stack to record
    let h = 0x811c9dc5;
    for (const ip of frames) {
      h = Math.imul(h ^ Number(ip & 0xffffffffn), 0x01000193);
      h = Math.imul(h ^ Number(ip >> 32n), 0x01000193);
    }
    const id = (h >>> 0) % this.attr.maxEntries;
    const base = id * this.attr.valueSize;
    const v = this.values.view;
    if (this.used[id]) {
      let same = true;
      for (let k = 0; k < this.depth; k++) {
        const want = k < frames.length ? (frames[k] as bigint) : 0n;
        if (v.getBigUint64(base + k * 8, true) !== want) same = false;
      }
      if (same) return id;
      if ((flags & BPF_F_REUSE_STACKID) === 0) return -17; // -EEXIST
    }
    for (let k = 0; k < this.depth; k++)
      v.setBigUint64(base + k * 8, k < frames.length ? (frames[k] as bigint) : 0n, true);
    this.used[id] = 1;
    return id;
  }

  lookupSlot(key: Uint8Array, keyOff: number): number {
    const id =
      ((key[keyOff] as number) |
        ((key[keyOff + 1] as number) << 8) |
        ((key[keyOff + 2] as number) << 16) |
        ((key[keyOff + 3] as number) << 24)) >>>
      0;
    return id < this.attr.maxEntries && this.used[id] ? id * this.attr.valueSize : -1;
  }

  update(): VmError | null {
    return new VmError(
      'EINVAL',
      `${this.name}: stack_trace entries are written by bpf_get_stackid`,
    );
  }

  delete(key: Uint8Array): VmError | null {
    const err = this.checkKey(key);
    if (err !== null) return err;
    const off = this.lookupSlot(key, 0);
    if (off < 0) return new VmError('ENOENT', `${this.name}: no such stack id`);
    this.used[off / this.attr.valueSize] = 0;
    return null;
  }

  getNextKey(key: Uint8Array | null): Uint8Array | VmError {
    let id = key === null ? 0 : new DataView(key.buffer, key.byteOffset).getUint32(0, true) + 1;
    for (; id < this.attr.maxEntries; id++) {
      if (this.used[id])
        return Uint8Array.of(id & 0xff, (id >> 8) & 0xff, (id >> 16) & 0xff, id >>> 24);
    }
    return new VmError('ENOENT', `${this.name}: no next stack id`);
  }
}
