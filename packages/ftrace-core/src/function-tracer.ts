import { HARDIRQ_MASK, NMI_MASK, SOFTIRQ_MASK, SOFTIRQ_OFFSET, type Cpu } from '@tracelab/kernel';
import { FtraceError } from './errors.js';
import type { Ftrace } from './ftrace.js';
import type { FilterWriteOptions } from './filter.js';
import { FtraceOps, type FtraceFunc } from './ops.js';
import { RingBuffer } from './ring-buffer.js';
import { TRACE_FTRACE_START } from './recursion.js';

/** enum trace_flag_type (kernel/trace/trace.h). */
export const TRACE_FLAG_IRQS_OFF = 0x01;
export const TRACE_FLAG_NEED_RESCHED = 0x04;
export const TRACE_FLAG_HARDIRQ = 0x08;
export const TRACE_FLAG_SOFTIRQ = 0x10;
export const TRACE_FLAG_NMI = 0x40;
export const TRACE_FLAG_BH_OFF = 0x80;

/** Bytes one function entry takes in the buffer (event header + struct ftrace_entry). */
export const FUNCTION_ENTRY_BYTES = 32;

// Payload words of a function entry.
const W_IP_LO = 0;
const W_IP_HI = 1;
const W_PARENT_LO = 2;
const W_PARENT_HI = 3;
const W_PID = 4;
/** trace flags << 8 | preempt count (low nibble) */
const W_CTX = 5;
const WORDS = 6;

/** tracing_gen_ctx(): trace flags and preempt depth from a preempt count. */
export function traceCtx(preemptCount: number): number {
  let flags = 0;
  if ((preemptCount & NMI_MASK) !== 0) flags |= TRACE_FLAG_NMI;
  if ((preemptCount & HARDIRQ_MASK) !== 0) flags |= TRACE_FLAG_HARDIRQ;
  if ((preemptCount & SOFTIRQ_OFFSET) !== 0) flags |= TRACE_FLAG_SOFTIRQ;
  // Softirq-disable depth counts in steps of two offsets; serving a softirq is one offset.
  if ((preemptCount & SOFTIRQ_MASK) >> 9 !== 0) flags |= TRACE_FLAG_BH_OFF;
  // Hard interrupt and NMI handlers run with interrupts off.
  if ((preemptCount & (HARDIRQ_MASK | NMI_MASK)) !== 0) flags |= TRACE_FLAG_IRQS_OFF;
  return (flags << 8) | Math.min(preemptCount & 0xff, 0xf);
}

/** The five latency-format columns (irqs-off, need-resched, hardirq/softirq, preempt, migrate). */
export function latencyFlags(ctx: number): string {
  const f = ctx >> 8;
  const bh = (f & TRACE_FLAG_BH_OFF) !== 0;
  const irqsOff = (f & TRACE_FLAG_IRQS_OFF) !== 0;
  const a = irqsOff && bh ? 'D' : irqsOff ? 'd' : bh ? 'b' : '.';
  const b = (f & TRACE_FLAG_NEED_RESCHED) !== 0 ? 'n' : '.';
  const nmi = (f & TRACE_FLAG_NMI) !== 0;
  const hard = (f & TRACE_FLAG_HARDIRQ) !== 0;
  const soft = (f & TRACE_FLAG_SOFTIRQ) !== 0;
  const c = nmi && hard ? 'Z' : nmi ? 'z' : hard && soft ? 'H' : hard ? 'h' : soft ? 's' : '.';
  const pc = ctx & 0xf;
  const d = pc === 0 ? '.' : pc.toString(16);
  return `${a}${b}${c}${d}.`;
}

export interface FunctionTracerOptions {
  /** buffer_size_kb: per-CPU buffer size (default 1408, the kernel's default). */
  readonly bufferSizeKb?: number;
  /** overwrite trace option (default on). */
  readonly overwrite?: boolean;
}

/**
 * The `function` tracer: a static ops whose callback records (ip, parent ip, pid, flags,
 * preempt depth, timestamp) in the per-CPU ring buffer, and the text of the trace and
 * trace_pipe files.
 */
export class FunctionTracer {
  declare readonly ftrace: Ftrace;
  declare readonly ops: FtraceOps;
  declare buffer: RingBuffer;
  private active = false;

  constructor(ftrace: Ftrace, options: FunctionTracerOptions = {}) {
    this.ftrace = ftrace;
    this.buffer = FunctionTracer.makeBuffer(
      ftrace.kernel.cpus.length,
      options.bufferSizeKb ?? 1408,
      options.overwrite ?? true,
    );
    const buffer = (): RingBuffer => this.buffer;
    const guard = ftrace.recursion;
    // function_trace_call(): takes the recursion guard itself, then writes one entry.
    const func: FtraceFunc = (ip, parentIp, _op, _fregs, cpu: Cpu) => {
      const task = cpu.current;
      const pid = task === null ? 0 : task.pid;
      const pc = cpu.preemptCount;
      const bit = guard.lock(pid, pc, TRACE_FTRACE_START, ip, parentIp);
      if (bit < 0) return;
      const rb = buffer();
      const off = rb.reserve(cpu.id, Math.floor(cpu.clock));
      if (off >= 0) {
        const d = rb.data[cpu.id] as Uint32Array;
        d[off + W_IP_LO] = ip;
        d[off + W_IP_HI] = ftrace.textHigh;
        d[off + W_PARENT_LO] = parentIp;
        // A parent below the text's 4 GiB window is the user-space return address.
        d[off + W_PARENT_HI] = parentIp >>> 0 >= ftrace.textLow ? ftrace.textHigh : 0;
        d[off + W_PID] = pid;
        d[off + W_CTX] = traceCtx(pc);
      }
      guard.unlock(pid, bit);
    };
    this.ops = new FtraceOps({ name: 'function_trace_call', func, static: true });
    ftrace.initOps(this.ops);
  }

  private static makeBuffer(cpus: number, kb: number, overwrite: boolean): RingBuffer {
    return new RingBuffer({
      cpus,
      entries: Math.max(1, Math.floor((kb * 1024) / FUNCTION_ENTRY_BYTES)),
      words: WORDS,
      overwrite,
    });
  }

  /** Whether the tracer is current_tracer. */
  get enabled(): boolean {
    return this.active;
  }

  /** echo function > current_tracer. */
  start(): FtraceError | null {
    if (this.active) return null;
    const err = this.ftrace.registerFtraceFunction(this.ops);
    if (err === null) this.active = true;
    return err;
  }

  /** echo nop > current_tracer. */
  stop(): FtraceError | null {
    if (!this.active) return null;
    this.active = false;
    return this.ftrace.unregisterFtraceFunction(this.ops);
  }

  /** set_ftrace_filter / set_ftrace_notrace writes for this tracer's ops. */
  setFilter(
    text: string,
    options: FilterWriteOptions & { notrace?: boolean } = {},
  ): FtraceError | null {
    return this.ftrace.setFilter(this.ops, text, options);
  }

  readFilter(notrace = false): string {
    return this.ftrace.readFilter(this.ops, notrace);
  }

  /** buffer_size_kb: resizing empties the buffer, as the kernel's resize does. */
  setBufferSizeKb(kb: number): FtraceError | null {
    if (!Number.isInteger(kb) || kb < 1) {
      return new FtraceError('EINVAL', `buffer_size_kb: '${kb}' is not a positive integer`);
    }
    const rb = this.buffer;
    const next = FunctionTracer.makeBuffer(rb.cpus, kb, rb.overwrite);
    next.recording = rb.recording;
    this.buffer = next;
    return null;
  }

  get bufferSizeKb(): number {
    return (this.buffer.capacity * FUNCTION_ENTRY_BYTES) / 1024;
  }

  /** tracing_on. */
  get tracingOn(): boolean {
    return this.buffer.recording;
  }

  set tracingOn(on: boolean) {
    this.buffer.recording = on;
  }

  /** The `trace` file: header, then every entry of all CPUs by time. */
  readTrace(): string {
    const rb = this.buffer;
    const lines = [
      '# tracer: function',
      '#',
      `# entries-in-buffer/entries-written: ${rb.entries()}/${rb.written()}   #P:${rb.cpus}`,
      '#',
      '#                                _-----=> irqs-off/BH-disabled',
      '#                               / _----=> need-resched',
      '#                              | / _---=> hardirq/softirq',
      '#                              || / _--=> preempt-depth',
      '#                              ||| / _-=> migrate-disable',
      '#                              |||| /     delay',
      '#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION',
      '#              | |         |   |||||     |         |',
    ];
    let out = `${lines.join('\n')}\n`;
    rb.read((cpu, ts, d, off) => {
      out += this.formatEntry(cpu, ts, d, off);
    }, false);
    return out;
  }

  /** The `trace_pipe` file: consumes the entries, with a line for each CPU's lost events. */
  readTracePipe(): string {
    let out = '';
    this.buffer.read((cpu, ts, d, off, lost) => {
      if (lost > 0) out += `CPU:${cpu} [LOST ${lost} EVENTS]\n`;
      out += this.formatEntry(cpu, ts, d, off);
    }, true);
    return out;
  }

  /** Writing to `trace` (echo > trace) clears the buffer. */
  clear(): void {
    this.buffer.reset();
  }

  private comm(pid: number): string {
    if (pid === 0) return '<idle>';
    const t = this.ftrace.kernel.tasks.find((x) => x.pid === pid);
    return t === undefined ? '<...>' : t.comm;
  }

  private sym(lo: number, hi: number): string {
    const addr = (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
    const hit = this.ftrace.kernel.image.lookup(addr);
    if (hit !== null) return hit.fn.name;
    return `0x${addr.toString(16).padStart(8, '0')}`;
  }

  private formatEntry(cpu: number, ts: number, d: Uint32Array, off: number): string {
    const pid = d[off + W_PID] as number;
    const secs = Math.floor(ts / 1e9);
    const usec = Math.floor((ts % 1e9) / 1000);
    const parentLo = d[off + W_PARENT_LO] as number;
    const parentHi = d[off + W_PARENT_HI] as number;
    const parent = parentLo === 0 && parentHi === 0 ? '' : ` <-${this.sym(parentLo, parentHi)}`;
    return (
      `${this.comm(pid).padStart(16)}-${String(pid).padEnd(7)} ` +
      `[${String(cpu).padStart(3, '0')}] ${latencyFlags(d[off + W_CTX] as number)} ` +
      `${String(secs).padStart(5)}.${String(usec).padStart(6, '0')}: ` +
      `${this.sym(d[off + W_IP_LO] as number, d[off + W_IP_HI] as number)}${parent}\n`
    );
  }
}
