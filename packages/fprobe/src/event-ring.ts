/** Smallest entry the ring expects (struct trace_entry + one long): sizes its index. */
const MIN_ENTRY_BYTES = 16;

/** The type of the trace entry at `at` (its common_type), which tells readers its event. */
export function entryType(bytes: Uint8Array, at: number): number {
  return (bytes[at] as number) | ((bytes[at + 1] as number) << 8);
}

/** What a reader is handed per entry: CPU, timestamp, the CPU's bytes and the entry's place. */
export type EventRingVisitor = (
  cpu: number,
  ts: number,
  bytes: Uint8Array,
  offset: number,
  length: number,
  lostBefore: number,
) => void;

/** One CPU's ring: entry bytes in one preallocated array, and an index of the entries held. */
class CpuRing {
  declare readonly bytes: Uint8Array;
  declare readonly view: DataView;
  declare readonly off: Int32Array;
  declare readonly len: Int32Array;
  declare readonly ts: Float64Array;
  /** Index slot of the oldest entry, entries held, byte where the next entry goes. */
  head = 0;
  count = 0;
  tail = 0;
  /** Entries written since the last reset (an entry's position is its rank among them). */
  written = 0;
  overrun = 0;
  dropped = 0;
  /** Losses not yet shown to a consuming reader. */
  lost = 0;

  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
    const n = Math.max(1, Math.floor(size / MIN_ENTRY_BYTES));
    this.off = new Int32Array(n);
    this.len = new Int32Array(n);
    this.ts = new Float64Array(n);
  }

  dropOldest(): void {
    this.head = this.head + 1 === this.off.length ? 0 : this.head + 1;
    this.count--;
    this.overrun++;
    this.lost++;
  }
}

/**
 * A per-CPU ring buffer of variable-size trace entries (the kernel's ring_buffer_lock_reserve
 * with a length): every CPU owns a preallocated byte array, entries never wrap inside it, and a
 * full ring overwrites its oldest entries. Writers never allocate. ftrace-core's RingBuffer has
 * fixed-size entries only, so dynamic events, whose entries carry strings, keep their own ring
 * beside the tracer's and readers merge the two by timestamp.
 */
export class TraceEventRing {
  declare private rings: CpuRing[];
  /** ring_buffer_record_on/off (tracing_on). */
  recording = true;

  constructor(
    readonly cpus: number,
    /** Bytes per CPU. */
    private bytesPerCpu: number,
  ) {
    this.rings = Array.from({ length: cpus }, () => new CpuRing(bytesPerCpu));
  }

  get size(): number {
    return this.bytesPerCpu;
  }

  /** buffer_size_kb: the rings are reallocated empty, as a resize does. */
  resize(bytesPerCpu: number): void {
    this.bytesPerCpu = bytesPerCpu;
    this.rings = Array.from({ length: this.cpus }, () => new CpuRing(bytesPerCpu));
  }

  /** The bytes and a DataView of a CPU's ring (writers fill a reserved entry through them). */
  bytes(cpu: number): Uint8Array {
    return (this.rings[cpu] as CpuRing).bytes;
  }

  view(cpu: number): DataView {
    return (this.rings[cpu] as CpuRing).view;
  }

  /**
   * Reserves `length` bytes on a CPU stamped `ts`; returns the entry's byte offset, or -1 when
   * recording is off or the entry is larger than the ring (counted as dropped).
   */
  reserve(cpu: number, ts: number, length: number): number {
    if (!this.recording) return -1;
    const r = this.rings[cpu] as CpuRing;
    const size = r.bytes.length;
    if (length > size) {
      r.dropped++;
      return -1;
    }
    const wrap = r.tail + length > size;
    const at = wrap ? 0 : r.tail;
    // The oldest entries sit right after the write position: those in the skipped tail
    // and those the new entry covers are overwritten, oldest first.
    while (r.count > 0) {
      const o = r.off[r.head] as number;
      const covered = o < at + length && o + (r.len[r.head] as number) > at;
      const skipped = wrap && o >= r.tail;
      if (!covered && !skipped && r.count < r.off.length) break;
      r.dropOldest();
    }
    let slot = r.head + r.count;
    if (slot >= r.off.length) slot -= r.off.length;
    r.off[slot] = at;
    r.len[slot] = length;
    r.ts[slot] = ts;
    r.count++;
    r.written++;
    r.tail = at + length;
    return at;
  }

  /** Entries held by a CPU (or all CPUs). */
  entries(cpu?: number): number {
    if (cpu !== undefined) return (this.rings[cpu] as CpuRing).count;
    let n = 0;
    for (const r of this.rings) n += r.count;
    return n;
  }

  /** Entries held plus entries overwritten. */
  written(): number {
    let n = 0;
    for (const r of this.rings) n += r.count + r.overrun;
    return n;
  }

  /** Position of a CPU's oldest held entry among the entries it wrote since the last reset. */
  first(cpu: number): number {
    const r = this.rings[cpu] as CpuRing;
    return r.written - r.count;
  }

  /** Entries a CPU overwrote or refused since the last reset. */
  lostCount(cpu: number): number {
    const r = this.rings[cpu] as CpuRing;
    return r.overrun + r.dropped;
  }

  /**
   * Visits the entries of all CPUs oldest first (ties go to the lower CPU); `consume` removes
   * them, as trace_pipe does, and reports each CPU's losses once before its next entry.
   */
  read(visit: EventRingVisitor, consume: boolean): number {
    const pos = Int32Array.from(this.rings, (r) => r.head);
    const left = Int32Array.from(this.rings, (r) => r.count);
    let seen = 0;
    for (;;) {
      let best = -1;
      let bestTs = 0;
      for (let c = 0; c < this.cpus; c++) {
        if ((left[c] as number) === 0) continue;
        const t = (this.rings[c] as CpuRing).ts[pos[c] as number] as number;
        if (best < 0 || t < bestTs) {
          best = c;
          bestTs = t;
        }
      }
      if (best < 0) break;
      const r = this.rings[best] as CpuRing;
      const slot = pos[best] as number;
      const lost = consume ? r.lost : 0;
      if (consume) r.lost = 0;
      visit(best, bestTs, r.bytes, r.off[slot] as number, r.len[slot] as number, lost);
      pos[best] = slot + 1 === r.off.length ? 0 : slot + 1;
      left[best] = (left[best] as number) - 1;
      seen++;
    }
    if (consume) {
      for (const [c, r] of this.rings.entries()) {
        r.head = pos[c] as number;
        r.count = 0;
      }
    }
    return seen;
  }

  /** Empties every CPU's ring and its counters. */
  reset(): void {
    for (const r of this.rings) {
      r.head = 0;
      r.count = 0;
      r.tail = 0;
      r.written = 0;
      r.overrun = 0;
      r.dropped = 0;
      r.lost = 0;
    }
  }
}
