/**
 * The ip -> fprobes table: open addressing with linear probing over a power-of-two array that
 * doubles past half full and halves below an eighth, so a lookup costs the same with one
 * function attached as with every function attached (the kernel's fixed 256-bucket table grew
 * chains of hundreds of nodes). Values are immutable arrays replaced on every change, so a
 * traced call that captured a list keeps a consistent view while it is being updated (what RCU
 * gives the kernel's rhltable).
 */
export class FprobeIpTable<T> {
  /** Keys as int32 (`ip | 0`), the form ftrace passes ips in. */
  declare private keys: Int32Array;
  private vals: (readonly T[] | null)[];
  declare private mask: number;
  private used = 0;
  private static readonly MIN = 16;

  /** `expected`: how many ips to size for without a rehash. */
  constructor(expected = 0) {
    let cap = FprobeIpTable.MIN;
    while (cap < expected * 2) cap *= 2;
    this.keys = new Int32Array(cap);
    this.vals = new Array<readonly T[] | null>(cap).fill(null);
    this.mask = cap - 1;
  }

  /** Number of distinct ips. */
  get size(): number {
    return this.used;
  }

  /** Slots in the backing array. */
  get capacity(): number {
    return this.mask + 1;
  }

  /** Fibonacci hashing of the 32-bit ip; function addresses share low alignment bits. */
  private home(ip: number): number {
    return (Math.imul(ip, 0x9e3779b1) >>> 0) & this.mask;
  }

  /** The fprobes at ip, or null. Allocates nothing. */
  lookup(ip: number): readonly T[] | null {
    const keys = this.keys;
    const vals = this.vals;
    const mask = this.mask;
    let i = (Math.imul(ip, 0x9e3779b1) >>> 0) & mask;
    for (;;) {
      const v = vals[i];
      if (v === null || v === undefined) return null;
      if (keys[i] === (ip | 0)) return v;
      i = (i + 1) & mask;
    }
  }

  /** Adds value at ip (after the ones already there). */
  add(ip: number, value: T): void {
    const key = ip | 0;
    let i = this.home(key);
    for (;;) {
      const v = this.vals[i];
      if (v === null || v === undefined) break;
      if (this.keys[i] === key) {
        this.vals[i] = [...v, value];
        return;
      }
      i = (i + 1) & this.mask;
    }
    this.keys[i] = key;
    this.vals[i] = [value];
    this.used++;
    if (this.used * 2 > this.capacity) this.rehash(this.capacity * 2);
  }

  /** Removes value from ip; returns false when it was not there. */
  remove(ip: number, value: T): boolean {
    const key = ip | 0;
    let i = this.home(key);
    for (;;) {
      const v = this.vals[i];
      if (v === null || v === undefined) return false;
      if (this.keys[i] === key) {
        const at = v.indexOf(value);
        if (at < 0) return false;
        if (v.length > 1) {
          this.vals[i] = v.filter((_, k) => k !== at);
          return true;
        }
        this.deleteSlot(i);
        return true;
      }
      i = (i + 1) & this.mask;
    }
  }

  /** Backward-shift deletion: no tombstones, so probe lengths never grow with churn. */
  private deleteSlot(slot: number): void {
    const mask = this.mask;
    let hole = slot;
    let i = (slot + 1) & mask;
    for (;;) {
      const v = this.vals[i];
      if (v === null || v === undefined) break;
      const h = this.home(this.keys[i] as number);
      // Move the entry into the hole when its home is not cyclically within (hole, i].
      if (((i - h) & mask) >= ((i - hole) & mask)) {
        this.keys[hole] = this.keys[i] as number;
        this.vals[hole] = v;
        hole = i;
      }
      i = (i + 1) & mask;
    }
    this.vals[hole] = null;
    this.keys[hole] = 0;
    this.used--;
    if (this.capacity > FprobeIpTable.MIN && this.used * 8 < this.capacity) {
      this.rehash(this.capacity / 2);
    }
  }

  private rehash(cap: number): void {
    const oldKeys = this.keys;
    const oldVals = this.vals;
    this.keys = new Int32Array(cap);
    this.vals = new Array<readonly T[] | null>(cap).fill(null);
    this.mask = cap - 1;
    for (let j = 0; j < oldVals.length; j++) {
      const v = oldVals[j];
      if (v === null || v === undefined) continue;
      const key = oldKeys[j] as number;
      let i = this.home(key);
      while (this.vals[i] !== null) i = (i + 1) & this.mask;
      this.keys[i] = key;
      this.vals[i] = v;
    }
  }

  /** Every (ip, values) pair, in slot order. */
  *entries(): IterableIterator<[number, readonly T[]]> {
    for (let i = 0; i < this.vals.length; i++) {
      const v = this.vals[i];
      if (v !== null && v !== undefined) yield [(this.keys[i] as number) >>> 0, v];
    }
  }
}
