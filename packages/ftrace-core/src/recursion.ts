import { HARDIRQ_MASK, NMI_MASK, SOFTIRQ_MASK } from '@tracelab/kernel';

/** Context bits of trace_recursion.h: one per context, then the transition bit. */
export const TRACE_CTX_NMI = 0;
export const TRACE_CTX_IRQ = 1;
export const TRACE_CTX_SOFTIRQ = 2;
export const TRACE_CTX_NORMAL = 3;
export const TRACE_CTX_TRANSITION = 4;
/** First bit of the set a callback's assist wrapper uses, and of the list function's set. */
export const TRACE_FTRACE_START = 0;
export const TRACE_LIST_START = 5;

/** Pids run 1..16383 in the simulated kernel; the recursion word lives per task. */
const MAX_PID = 16384;

/** The TRACE_CTX_* bit for a preempt count (NMI over hardirq over softirq over task). */
export function traceContextBit(preemptCount: number): number {
  if ((preemptCount & NMI_MASK) !== 0) return TRACE_CTX_NMI;
  if ((preemptCount & HARDIRQ_MASK) !== 0) return TRACE_CTX_IRQ;
  if ((preemptCount & SOFTIRQ_MASK) !== 0) return TRACE_CTX_SOFTIRQ;
  return TRACE_CTX_NORMAL;
}

/**
 * The recursion guard (trace_test_and_set_recursion): current->trace_recursion holds one bit per
 * context, so a callback interrupted by an irq may trace the irq, but a callback that reaches
 * traced code in its own context is stopped. The transition bit lets exactly one such nested
 * entry through, because an interrupt can trace before preempt_count says it is an interrupt.
 */
export class RecursionGuard {
  /** current->trace_recursion, indexed by pid. */
  readonly words = new Uint32Array(MAX_PID);
  /** Entries refused, per TRACE_CTX_* context they arrived in. */
  readonly skipped = new Float64Array(4);
  /** Entries let through on the transition bit. */
  transitions = 0;
  /** The last refused entries (ip low halves), as recursed_functions records them. */
  readonly recursedIp = new Uint32Array(128);
  readonly recursedParent = new Uint32Array(128);
  recursedCount = 0;

  /**
   * Returns the bit taken (pass it to unlock), or -1 when the entry must be skipped. Allocates
   * nothing.
   */
  lock(pid: number, preemptCount: number, start: number, ip: number, parentIp: number): number {
    const ctx = traceContextBit(preemptCount);
    let val = this.words[pid] as number;
    let bit = ctx + start;
    if ((val & (1 << bit)) !== 0) {
      bit = TRACE_CTX_TRANSITION + start;
      if ((val & (1 << bit)) !== 0) {
        this.skipped[ctx] = (this.skipped[ctx] as number) + 1;
        const slot = this.recursedCount % this.recursedIp.length;
        this.recursedIp[slot] = ip;
        this.recursedParent[slot] = parentIp;
        this.recursedCount++;
        return -1;
      }
      this.transitions++;
    }
    val |= 1 << bit;
    this.words[pid] = val;
    return bit;
  }

  unlock(pid: number, bit: number): void {
    this.words[pid] = (this.words[pid] as number) & ~(1 << bit);
  }

  /** Total entries refused. */
  get totalSkipped(): number {
    const s = this.skipped;
    return (s[0] as number) + (s[1] as number) + (s[2] as number) + (s[3] as number);
  }

  reset(): void {
    this.words.fill(0);
    this.skipped.fill(0);
    this.transitions = 0;
    this.recursedCount = 0;
  }
}
