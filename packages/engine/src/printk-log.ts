import type { Kernel } from '@tracelab/kernel';

/** Lines the printk log keeps before it overwrites the oldest. */
export const PRINTK_LOG_LINES = 4096;

/** What a reader of the printk log is handed for each line. */
export type PrintkVisitor = (
  ts: number,
  cpu: number,
  pid: number,
  comm: string,
  text: string,
) => void;

/**
 * Where bpf_trace_printk() lines go (the kernel writes them to the trace buffer as TRACE_BPRINT
 * entries): a fixed ring of lines stamped with the CPU's clock, CPU, pid and comm. Writing stores
 * into preallocated slots; a full ring overwrites its oldest line and counts it as lost.
 */
export class PrintkLog {
  declare private readonly ts: Float64Array;
  declare private readonly cpu: Int32Array;
  declare private readonly pid: Int32Array;
  declare private readonly comm: string[];
  declare private readonly text: string[];
  private head = 0;
  private count = 0;
  /** Lines overwritten since the last consume. */
  private lost = 0;

  constructor(
    private readonly kernel: Kernel,
    readonly capacity = PRINTK_LOG_LINES,
  ) {
    this.ts = new Float64Array(capacity);
    this.cpu = new Int32Array(capacity);
    this.pid = new Int32Array(capacity);
    this.comm = new Array<string>(capacity).fill('');
    this.text = new Array<string>(capacity).fill('');
  }

  /** The kernelEnv sink of one CPU's BPF programs. */
  sink(cpu: number): (line: string) => void {
    return (line) => this.write(cpu, line);
  }

  write(cpu: number, line: string): void {
    const c = this.kernel.cpus[cpu];
    const cap = this.capacity;
    if (this.count === cap) {
      this.head = this.head + 1 === cap ? 0 : this.head + 1;
      this.count--;
      this.lost++;
    }
    let slot = this.head + this.count;
    if (slot >= cap) slot -= cap;
    this.count++;
    const task = c?.current ?? null;
    this.ts[slot] = c === undefined ? 0 : c.clock;
    this.cpu[slot] = cpu;
    this.pid[slot] = task === null ? 0 : task.pid;
    this.comm[slot] = task === null ? '<idle>' : task.comm;
    this.text[slot] = line;
  }

  /** Hands every held line to visit, oldest first, and empties the ring; returns the lines lost before them. */
  consume(visit: PrintkVisitor): number {
    const lost = this.lost;
    for (let k = 0; k < this.count; k++) {
      let slot = this.head + k;
      if (slot >= this.capacity) slot -= this.capacity;
      visit(
        this.ts[slot] as number,
        this.cpu[slot] as number,
        this.pid[slot] as number,
        this.comm[slot] as string,
        this.text[slot] as string,
      );
      // The ring drops its references to the strings it handed out.
      this.text[slot] = '';
    }
    this.head = 0;
    this.count = 0;
    this.lost = 0;
    return lost;
  }
}
