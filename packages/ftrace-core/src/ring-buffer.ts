import { FtraceError } from './errors.js';

export interface RingBufferOptions {
  readonly cpus: number;
  /** Entries each CPU's buffer holds. */
  readonly entries: number;
  /** 32-bit payload words per entry. */
  readonly words: number;
  /** Overwrite the oldest entry when full (the default), or drop the newest. */
  readonly overwrite?: boolean;
}

/** What a reader is handed for each entry: its CPU, timestamp and where its payload lives. */
export type RingBufferVisitor = (
  cpu: number,
  ts: number,
  data: Uint32Array,
  offset: number,
  lostBefore: number,
) => void;

/**
 * The per-CPU trace ring buffer: fixed-size entries in preallocated typed arrays. Writers never
 * allocate; a full buffer either overwrites its oldest entry (counted as overrun) or refuses the
 * new one (counted as dropped). Readers merge the CPUs by timestamp.
 */
export class RingBuffer {
  declare readonly cpus: number;
  declare readonly capacity: number;
  declare readonly words: number;
  declare overwrite: boolean;
  /** ring_buffer_record_on/off (tracing_on). */
  recording = true;
  /** Per CPU: timestamps and payloads of the slots. */
  declare readonly ts: Float64Array[];
  declare readonly data: Uint32Array[];
  /** Per CPU: slot of the oldest unread entry, and how many entries are unread. */
  declare private readonly head: Int32Array;
  declare private readonly count: Int32Array;
  /** Per CPU: entries overwritten, entries refused, and losses not yet shown to a consumer. */
  declare readonly overrun: Float64Array;
  declare readonly dropped: Float64Array;
  declare private readonly lost: Float64Array;

  constructor(o: RingBufferOptions) {
    if (!Number.isInteger(o.cpus) || o.cpus < 1) {
      throw new FtraceError('EINVAL', `ring buffer: cpus ${o.cpus} is not a positive integer`);
    }
    if (!Number.isInteger(o.entries) || o.entries < 1) {
      throw new FtraceError('EINVAL', `ring buffer: ${o.entries} entries per CPU is too small`);
    }
    this.cpus = o.cpus;
    this.capacity = o.entries;
    this.words = o.words;
    this.overwrite = o.overwrite ?? true;
    this.ts = Array.from({ length: o.cpus }, () => new Float64Array(o.entries));
    this.data = Array.from({ length: o.cpus }, () => new Uint32Array(o.entries * o.words));
    this.head = new Int32Array(o.cpus);
    this.count = new Int32Array(o.cpus);
    this.overrun = new Float64Array(o.cpus);
    this.dropped = new Float64Array(o.cpus);
    this.lost = new Float64Array(o.cpus);
  }

  /**
   * Reserves the next entry of a CPU and stamps it; returns the word offset of its payload in
   * data[cpu], or -1 when recording is off or the entry was dropped.
   */
  reserve(cpu: number, ts: number): number {
    if (!this.recording) return -1;
    const cap = this.capacity;
    let n = this.count[cpu] as number;
    const h = this.head[cpu] as number;
    if (n === cap) {
      if (!this.overwrite) {
        this.dropped[cpu] = (this.dropped[cpu] as number) + 1;
        return -1;
      }
      this.head[cpu] = h + 1 === cap ? 0 : h + 1;
      this.overrun[cpu] = (this.overrun[cpu] as number) + 1;
      this.lost[cpu] = (this.lost[cpu] as number) + 1;
      n--;
    }
    let slot = (this.head[cpu] as number) + n;
    if (slot >= cap) slot -= cap;
    this.count[cpu] = n + 1;
    (this.ts[cpu] as Float64Array)[slot] = ts;
    return slot * this.words;
  }

  /** Entries now in a CPU's buffer (or all CPUs). */
  entries(cpu?: number): number {
    if (cpu !== undefined) return this.count[cpu] as number;
    let s = 0;
    for (let c = 0; c < this.cpus; c++) s += this.count[c] as number;
    return s;
  }

  /** Entries now held plus entries overwritten: the "entries-written" of the trace header. */
  written(): number {
    let s = this.entries();
    for (let c = 0; c < this.cpus; c++) s += this.overrun[c] as number;
    return s;
  }

  /**
   * Visits entries of all CPUs oldest first (ties go to the lower CPU). `consume` removes them,
   * as trace_pipe does, and reports each CPU's losses once before its next entry.
   */
  read(visit: RingBufferVisitor, consume: boolean): number {
    const pos = Int32Array.from(this.head);
    const left = Int32Array.from(this.count);
    let seen = 0;
    for (;;) {
      let best = -1;
      let bestTs = 0;
      for (let c = 0; c < this.cpus; c++) {
        if ((left[c] as number) === 0) continue;
        const t = (this.ts[c] as Float64Array)[pos[c] as number] as number;
        if (best < 0 || t < bestTs) {
          best = c;
          bestTs = t;
        }
      }
      if (best < 0) break;
      const slot = pos[best] as number;
      const lost = consume ? (this.lost[best] as number) : 0;
      if (consume) this.lost[best] = 0;
      visit(best, bestTs, this.data[best] as Uint32Array, slot * this.words, lost);
      pos[best] = slot + 1 === this.capacity ? 0 : slot + 1;
      left[best] = (left[best] as number) - 1;
      seen++;
    }
    if (consume) {
      this.head.set(pos);
      this.count.fill(0);
    }
    return seen;
  }

  /** Empties every CPU's buffer and its counters (writing to the trace file). */
  reset(): void {
    this.head.fill(0);
    this.count.fill(0);
    this.overrun.fill(0);
    this.dropped.fill(0);
    this.lost.fill(0);
  }
}
