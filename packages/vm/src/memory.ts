import { VmError } from './errors.js';

/** Region permissions, as mmap's PROT_* bits. An access kind uses the same bits. */
export const PROT_NONE = 0;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const PROT_EXEC = 4;

/** Whether the address (hi:lo), as unsigned halves, falls in r. */
function holds(r: Region, hi: number, lo: number): boolean {
  const off = (hi - r.baseHi) * TWO32 + (lo - r.baseLo);
  return off >= 0 && off < r.size;
}

export type AccessKind = 'read' | 'write' | 'exec';
export type FaultKind = 'unmapped' | 'permission' | 'misaligned';

const TWO32 = 4294967296;
const U64_MASK = (1n << 64n) - 1n;
/** Largest region we back with one typed array (and keep offsets exact as numbers). */
export const MAX_REGION_SIZE = 0x4000_0000;

function accessName(access: number): AccessKind {
  // An atomic read-modify-write reports as a write: that is the half a read-only region refuses.
  return access & PROT_WRITE ? 'write' : access === PROT_EXEC ? 'exec' : 'read';
}

function hex(addr: bigint): string {
  return `0x${addr.toString(16)}`;
}

export function protString(prot: number): string {
  return `${prot & PROT_READ ? 'r' : '-'}${prot & PROT_WRITE ? 'w' : '-'}${prot & PROT_EXEC ? 'x' : '-'}`;
}

/**
 * A failed memory access, returned as a value: BPF helpers turn it into -EFAULT and the
 * interpreter reports it with the instruction index, so it never travels as an exception.
 */
export class MemFault {
  constructor(
    readonly kind: FaultKind,
    readonly addr: bigint,
    readonly size: number,
    readonly access: AccessKind,
    /** The region the address falls in, when it falls in one. */
    readonly region: string | undefined,
  ) {}

  get errno(): 'EFAULT' {
    return 'EFAULT';
  }

  get message(): string {
    const where = this.region === undefined ? '' : ` in region ${this.region}`;
    return `${this.kind} ${this.access} of ${this.size} byte(s) at ${hex(this.addr)}${where}`;
  }

  toString(): string {
    return `MemFault: ${this.message}`;
  }
}

export function isMemFault(value: unknown): value is MemFault {
  return value instanceof MemFault;
}

/**
 * Copies n bytes between byte arrays (region bytes, map storage) without a subarray, which
 * allocates; as memmove when both are the same array.
 */
export function copyBytes(dst: Uint8Array, d: number, src: Uint8Array, s: number, n: number): void {
  if (dst === src) dst.copyWithin(d, s, s + n);
  else for (let i = 0; i < n; i++) dst[d + i] = src[s + i] as number;
}

/** One mapped range of the address space, backed by its own bytes. */
export class Region {
  declare readonly view: DataView;
  /** The base split in unsigned 32-bit halves, for the number-only hot path. */
  declare readonly baseHi: number;
  declare readonly baseLo: number;
  // translate's fields are declared, not defined: a defined class field starts as undefined,
  // and V8 then stores the number tagged, which every load must check and untag.
  declare readonly size: number;
  declare prot: number;
  /**
   * The base halves as int32s, for translate's fast path: addresses are 2^31 or more as uint32s,
   * which V8 holds as doubles; int32 compares and subtracts stay in integer registers.
   */
  declare readonly baseHi32: number;
  declare readonly baseLo32: number;
  /**
   * What the fast paths may treat as the region's size: its size, or 0 when it crosses a 4 GiB
   * line. The fast paths take the offset as the low halves' distance mod 2^32, which for such a
   * region also matches addresses 4 GiB below it; 0 sends every access to the slow path.
   */
  declare readonly fastSize: number;

  constructor(
    readonly name: string,
    readonly base: bigint,
    size: number,
    prot: number,
    readonly bytes: Uint8Array,
  ) {
    this.size = size;
    this.prot = prot;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.baseHi = Number(base >> 32n);
    this.baseLo = Number(base & 0xffffffffn);
    this.baseHi32 = this.baseHi | 0;
    this.baseLo32 = this.baseLo | 0;
    this.fastSize = this.baseLo + size <= TWO32 ? size : 0;
  }

  /**
   * The offset of a size-byte access at (hi:lo) in int32 arithmetic, or -1 when the access is
   * not wholly inside (or the region crosses a 4 GiB line: fastSize 0). The low halves'
   * distance is taken mod 2^32 as an int32: regions are at most 1 GiB, so an address below the
   * base, or 2 GiB or more above it, comes out negative and fails. The uint32 halves of kernel
   * addresses are doubles in V8; their int32 forms stay in integer registers.
   */
  offsetOf(hi: number, lo: number, size: number): number {
    const off = ((lo | 0) - this.baseLo32) | 0;
    return (hi | 0) === this.baseHi32 && off >= 0 && off <= this.fastSize - size ? off : -1;
  }

  /** First address past the region. */
  get end(): bigint {
    return this.base + BigInt(this.size);
  }

  contains(addr: bigint): boolean {
    return addr >= this.base && addr < this.end;
  }
}

export interface MapSpec {
  name: string;
  base: bigint;
  /** Defaults to data.length. */
  size?: number;
  prot: number;
  /** Backing bytes, shared (not copied) so the owner sees the program's stores. */
  data?: Uint8Array;
}

export interface AddressSpaceOptions {
  /** Fault on accesses not aligned to their size (strict-alignment architectures). */
  strictAlignment?: boolean;
}

/**
 * A 64-bit address space of non-overlapping regions with permissions. Addresses are bigint at the
 * API edge; the hot path (`translate`) takes the address as two unsigned 32-bit halves so the
 * interpreter and JIT never create a bigint for a successful access.
 */
export class AddressSpace {
  declare readonly strictAlignment: boolean;
  /** Sorted by base. */
  private list: Region[] = [];
  /**
   * The regions of the last two successful translations: a program alternates between two
   * regions (its context and a map value, say), which would miss a single one every time.
   */
  private last: Region | null = null;
  private prev: Region | null = null;
  /** The region of the last successful `translate` (always the last one it remembers). */
  get hit(): Region | null {
    return this.last;
  }
  // The last failed translate as plain values, made into a MemFault only when `fault` is read:
  // a helper that meets a fault by design (a probe read of a NULL pointer) translates on every
  // traced call, and the call path allocates nothing.
  private faulted = false;
  private faultKind: FaultKind = 'unmapped';
  private faultHi = 0;
  private faultLo = 0;
  private faultSize = 0;
  private faultAccess = 0;
  private faultRegion: string | undefined = undefined;
  private faultMade: MemFault | null = null;

  /** The fault of the last failed `translate`. */
  get fault(): MemFault | null {
    if (!this.faulted) return null;
    return (this.faultMade ??= new MemFault(
      this.faultKind,
      (BigInt(this.faultHi) << 32n) | BigInt(this.faultLo),
      this.faultSize,
      accessName(this.faultAccess),
      this.faultRegion,
    ));
  }

  constructor(options: AddressSpaceOptions = {}) {
    this.strictAlignment = options.strictAlignment ?? false;
  }

  /** Maps a region. Overlap is EEXIST, a bad size or base EINVAL. */
  map(spec: MapSpec): Region | VmError {
    const size = spec.size ?? spec.data?.length;
    if (size === undefined)
      return new VmError('EINVAL', `map ${spec.name}: neither size nor data given`);
    if (!Number.isInteger(size) || size <= 0 || size > MAX_REGION_SIZE) {
      return new VmError('EINVAL', `map ${spec.name}: size ${size} outside 1..${MAX_REGION_SIZE}`);
    }
    if (spec.data !== undefined && spec.data.length !== size) {
      return new VmError(
        'EINVAL',
        `map ${spec.name}: data has ${spec.data.length} bytes, size is ${size}`,
      );
    }
    if (spec.base < 0n || spec.base + BigInt(size) > 1n << 64n) {
      return new VmError(
        'EINVAL',
        `map ${spec.name}: range ${hex(spec.base)}+${size} outside the 64-bit space`,
      );
    }
    if ((spec.prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)) !== 0) {
      return new VmError(
        'EINVAL',
        `map ${spec.name}: unknown prot bits 0x${spec.prot.toString(16)}`,
      );
    }
    const end = spec.base + BigInt(size);
    for (const r of this.list) {
      if (spec.base < r.end && r.base < end) {
        return new VmError(
          'EEXIST',
          `map ${spec.name}: ${hex(spec.base)}..${hex(end)} overlaps region ${r.name} ${hex(r.base)}..${hex(r.end)}`,
        );
      }
    }
    const region = new Region(
      spec.name,
      spec.base,
      size,
      spec.prot,
      spec.data ?? new Uint8Array(size),
    );
    this.list.push(region);
    this.list.sort((a, b) => (a.base < b.base ? -1 : a.base > b.base ? 1 : 0));
    return region;
  }

  /** Unmaps the region that starts at base (ENOENT when none does). */
  unmap(base: bigint): Region | VmError {
    const i = this.list.findIndex((r) => r.base === base);
    if (i < 0) return new VmError('ENOENT', `unmap: no region starts at ${hex(base)}`);
    const [region] = this.list.splice(i, 1) as [Region];
    if (this.last === region) this.last = null;
    if (this.prev === region) this.prev = null;
    return region;
  }

  /** Changes the permissions of the region that starts at base. */
  protect(base: bigint, prot: number): Region | VmError {
    const region = this.list.find((r) => r.base === base);
    if (region === undefined)
      return new VmError('ENOENT', `protect: no region starts at ${hex(base)}`);
    if ((prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)) !== 0) {
      return new VmError(
        'EINVAL',
        `protect ${region.name}: unknown prot bits 0x${prot.toString(16)}`,
      );
    }
    region.prot = prot;
    return region;
  }

  regions(): readonly Region[] {
    return this.list;
  }

  /** The region holding addr, if any. */
  regionAt(addr: bigint): Region | undefined {
    const a = BigInt.asUintN(64, addr);
    return this.find(Number(a >> 32n), Number(a & 0xffffffffn)) ?? undefined;
  }

  /** The region named name, if any. */
  regionNamed(name: string): Region | undefined {
    return this.list.find((r) => r.name === name);
  }

  /**
   * Hot path: checks an access of size bytes at (hi:lo) and returns its offset in `this.hit`,
   * or -1 with `this.fault` set. access is PROT_READ, PROT_WRITE or PROT_EXEC. Allocates nothing,
   * fault or not.
   */
  translate(hi: number, lo: number, size: number, access: number): number {
    const r = this.last;
    if (r !== null) {
      const off = r.offsetOf(hi, lo, size);
      if (
        off >= 0 &&
        (r.prot & access) === access &&
        (!this.strictAlignment || (lo & (size - 1)) === 0)
      ) {
        return off;
      }
    }
    return this.translateSlow(hi | 0, lo | 0, size, access);
  }

  // Takes the halves as int32s: uint32 halves past 2^31 are doubles, boxed as heap numbers when
  // passed to a call that is not inlined (this one), which a program alternating among three
  // regions made on every access.
  private translateSlow(hi32: number, lo32: number, size: number, access: number): number {
    const p = this.prev;
    // The other remembered region first, in the fast path's int32 arithmetic.
    const po = p === null ? -1 : p.offsetOf(hi32, lo32, size);
    let r: Region;
    let off: number;
    const hi = hi32 >>> 0;
    const lo = lo32 >>> 0;
    if (po >= 0) {
      r = p as Region;
      off = po;
    } else {
      const found = this.find(hi32, lo32);
      if (found === null) return this.fail('unmapped', hi32, lo32, size, access, undefined);
      r = found;
      off = (hi - r.baseHi) * TWO32 + (lo - r.baseLo);
      if (off + size > r.size) return this.fail('unmapped', hi32, lo32, size, access, r.name);
    }
    if ((r.prot & access) !== access)
      return this.fail('permission', hi32, lo32, size, access, r.name);
    if (this.strictAlignment && (lo & (size - 1)) !== 0)
      return this.fail('misaligned', hi32, lo32, size, access, r.name);
    if (r !== this.last) {
      this.prev = this.last;
      this.last = r;
    }
    // An int32 (regions are at most 1 GiB), as the fast path returns: callers compare and index
    // with it in integer registers instead of as a double.
    return off | 0;
  }

  /** Records a fault (the halves as int32s, see translateSlow) and answers -1. */
  private fail(
    kind: FaultKind,
    hi32: number,
    lo32: number,
    size: number,
    access: number,
    region: string | undefined,
  ): number {
    this.faulted = true;
    this.faultKind = kind;
    this.faultHi = hi32 >>> 0;
    this.faultLo = lo32 >>> 0;
    this.faultSize = size;
    this.faultAccess = access;
    this.faultRegion = region;
    this.faultMade = null;
    return -1;
  }

  /** Binary search for the region holding (hi:lo), given as int32 or uint32 halves. */
  private find(hi32: number, lo32: number): Region | null {
    const hi = hi32 >>> 0;
    const lo = lo32 >>> 0;
    const list = this.list;
    let low = 0;
    let high = list.length - 1;
    let best = -1;
    while (low <= high) {
      const mid = (low + high) >> 1;
      const r = list[mid] as Region;
      if (r.baseHi < hi || (r.baseHi === hi && r.baseLo <= lo)) {
        best = mid;
        low = mid + 1;
      } else {
        high = mid - 1;
      }
    }
    if (best < 0) return null;
    const r = list[best] as Region;
    return holds(r, hi, lo) ? r : null;
  }

  private check(addr: bigint, size: number, access: number): number {
    const a = BigInt.asUintN(64, addr);
    return this.translate(Number(a >> 32n), Number(a & 0xffffffffn), size, access);
  }

  /** Loads an unsigned little-endian value of 1, 2, 4 or 8 bytes. */
  load(addr: bigint, size: 1 | 2 | 4 | 8): bigint | MemFault {
    const off = this.check(addr, size, PROT_READ);
    if (off < 0) return this.fault as MemFault;
    const v = (this.hit as Region).view;
    switch (size) {
      case 1:
        return BigInt(v.getUint8(off));
      case 2:
        return BigInt(v.getUint16(off, true));
      case 4:
        return BigInt(v.getUint32(off, true));
      default:
        return v.getBigUint64(off, true);
    }
  }

  /** Stores the low size bytes of value, little-endian. */
  store(addr: bigint, size: 1 | 2 | 4 | 8, value: bigint): MemFault | undefined {
    const off = this.check(addr, size, PROT_WRITE);
    if (off < 0) return this.fault as MemFault;
    const v = (this.hit as Region).view;
    const x = value & U64_MASK;
    switch (size) {
      case 1:
        v.setUint8(off, Number(x & 0xffn));
        break;
      case 2:
        v.setUint16(off, Number(x & 0xffffn), true);
        break;
      case 4:
        v.setUint32(off, Number(x & 0xffffffffn), true);
        break;
      default:
        v.setBigUint64(off, x, true);
    }
    return undefined;
  }

  /**
   * Copies len bytes out. The range may span adjacent regions, as a kernel copy would; it faults
   * at the first byte that is unmapped or not readable.
   */
  read(addr: bigint, len: number): Uint8Array | MemFault {
    const out = new Uint8Array(len);
    const f = this.copy(addr, len, PROT_READ, (r, off, done, n) =>
      out.set(r.bytes.subarray(off, off + n), done),
    );
    return f ?? out;
  }

  /** Copies bytes in; may span adjacent regions; nothing is written if any part faults. */
  write(addr: bigint, bytes: Uint8Array): MemFault | undefined {
    const f = this.copy(addr, bytes.length, PROT_WRITE, () => undefined);
    if (f !== undefined) return f;
    return this.copy(addr, bytes.length, PROT_WRITE, (r, off, done, n) =>
      r.bytes.set(bytes.subarray(done, done + n), off),
    );
  }

  /** Reads a NUL-terminated string of at most max bytes (without the NUL). */
  readCString(addr: bigint, max: number): Uint8Array | MemFault {
    let a = BigInt.asUintN(64, addr);
    const out: number[] = [];
    while (out.length < max) {
      const b = this.load(a, 1);
      if (typeof b !== 'bigint') return b;
      if (b === 0n) break;
      out.push(Number(b));
      a = BigInt.asUintN(64, a + 1n);
    }
    return Uint8Array.from(out);
  }

  private copy(
    addr: bigint,
    len: number,
    access: number,
    each: (r: Region, off: number, done: number, n: number) => void,
  ): MemFault | undefined {
    let a = BigInt.asUintN(64, addr);
    let done = 0;
    while (done < len) {
      const r = this.find(Number(a >> 32n), Number(a & 0xffffffffn));
      const kind: FaultKind | null =
        r === null ? 'unmapped' : (r.prot & access) !== access ? 'permission' : null;
      if (r === null || kind !== null) {
        return new MemFault(kind ?? 'unmapped', a, len - done, accessName(access), r?.name);
      }
      const off = Number(a - r.base);
      const n = Math.min(len - done, r.size - off);
      each(r, off, done, n);
      done += n;
      a += BigInt(n);
      if (a > U64_MASK && done < len)
        return new MemFault('unmapped', a & U64_MASK, len - done, accessName(access), undefined);
    }
    return undefined;
  }
}
