import { describe, expect, it } from 'vitest';
import { HARDIRQ_OFFSET, NMI_OFFSET, SOFTIRQ_OFFSET } from '@tracelab/kernel';
import { fnIndex, machine, run } from '../test/helpers.js';
import { FTRACE_OPS_FL_RECURSION, FtraceOps } from './ops.js';
import {
  RecursionGuard,
  TRACE_CTX_IRQ,
  TRACE_CTX_NMI,
  TRACE_CTX_NORMAL,
  TRACE_CTX_SOFTIRQ,
  TRACE_CTX_TRANSITION,
  TRACE_FTRACE_START,
  TRACE_LIST_START,
  traceContextBit,
} from './recursion.js';

describe('RecursionGuard bits', () => {
  it('maps preempt counts to the context bits, NMI over hardirq over softirq', () => {
    expect(traceContextBit(0)).toBe(TRACE_CTX_NORMAL);
    expect(traceContextBit(SOFTIRQ_OFFSET)).toBe(TRACE_CTX_SOFTIRQ);
    expect(traceContextBit(HARDIRQ_OFFSET | SOFTIRQ_OFFSET)).toBe(TRACE_CTX_IRQ);
    expect(traceContextBit(NMI_OFFSET | HARDIRQ_OFFSET)).toBe(TRACE_CTX_NMI);
  });

  it('lets one nested entry through on the transition bit, then refuses', () => {
    const g = new RecursionGuard();
    const a = g.lock(5, 0, TRACE_FTRACE_START, 0x10, 0x20);
    expect(a).toBe(TRACE_CTX_NORMAL);
    const b = g.lock(5, 0, TRACE_FTRACE_START, 0x11, 0x21);
    expect(b).toBe(TRACE_CTX_TRANSITION);
    expect(g.lock(5, 0, TRACE_FTRACE_START, 0x12, 0x22)).toBe(-1);
    expect(g.skipped[TRACE_CTX_NORMAL]).toBe(1);
    expect(g.recursedIp[0]).toBe(0x12);
    expect(g.recursedParent[0]).toBe(0x22);
    expect(g.transitions).toBe(1);
    // Each context has its own bit: an interrupt inside the callback traces.
    const irq = g.lock(5, HARDIRQ_OFFSET, TRACE_FTRACE_START, 1, 2);
    expect(irq).toBe(TRACE_CTX_IRQ);
    const nmi = g.lock(5, NMI_OFFSET, TRACE_FTRACE_START, 1, 2);
    expect(nmi).toBe(TRACE_CTX_NMI);
    g.unlock(5, nmi);
    g.unlock(5, irq);
    g.unlock(5, b);
    // With the transition bit free again, one nested entry passes once more.
    expect(g.lock(5, 0, TRACE_FTRACE_START, 0, 0)).toBe(TRACE_CTX_TRANSITION);
    // The list function's bits are separate from the callbacks' bits, and tasks are separate.
    expect(g.lock(5, 0, TRACE_LIST_START, 0, 0)).toBe(TRACE_LIST_START + TRACE_CTX_NORMAL);
    expect(g.lock(6, 0, TRACE_FTRACE_START, 0, 0)).toBe(TRACE_CTX_NORMAL);
    expect(g.totalSkipped).toBe(1);
  });
});

describe('recursion through the kernel', () => {
  /**
   * A RECURSION ops on vfs_read whose callback calls vfs_read again (in the context the test
   * chooses), bounded so a broken guard cannot loop forever.
   */
  function recursiveOps(enter: (depth: number) => number) {
    const m = machine();
    const depths: number[] = [];
    let depth = 0;
    const ops = new FtraceOps({
      name: 'recurse',
      flags: FTRACE_OPS_FL_RECURSION,
      static: true,
      func: (_ip, _p, _op, _f, cpu) => {
        depths.push(cpu.preemptCount);
        if (depth >= 8) return;
        depth++;
        const add = enter(depth);
        cpu.preemptCount += add;
        run(m, { fn: 'vfs_read', args: [1, 2, 3, 4] });
        cpu.preemptCount -= add;
        depth--;
      },
    });
    m.ft.setFilter(ops, 'vfs_read');
    m.ft.registerFtraceFunction(ops);
    return { m, depths };
  }

  it('a callback reaching traced code in its own context runs once more, then is stopped', () => {
    const { m, depths } = recursiveOps(() => 0);
    run(m, { fn: 'vfs_read', args: [1, 2, 3, 4] });
    expect(depths).toEqual([0, 0]);
    expect(m.ft.recursion.skipped[TRACE_CTX_NORMAL]).toBe(1);
    expect(m.ft.recursion.transitions).toBe(1);
    expect(m.ft.recursion.recursedIp[0]).toBe(m.image.addrLo[fnIndex(m.image, 'vfs_read')]);
  });

  it('an interrupt inside a callback is traced: its context has its own bit', () => {
    // First nesting enters a hardirq, the next ones stay in it.
    const { m, depths } = recursiveOps((d) => (d === 1 ? HARDIRQ_OFFSET : 0));
    run(m, { fn: 'vfs_read', args: [1, 2, 3, 4] });
    // task entry, irq entry (IRQ bit), irq nested once (transition), then refused in irq.
    expect(depths).toEqual([0, HARDIRQ_OFFSET, HARDIRQ_OFFSET]);
    expect(m.ft.recursion.skipped[TRACE_CTX_IRQ]).toBe(1);
    expect(m.ft.recursion.skipped[TRACE_CTX_NORMAL]).toBe(0);
  });

  it('softirq, hardirq and NMI stacked inside each other each get through', () => {
    const ctx = [SOFTIRQ_OFFSET, HARDIRQ_OFFSET, NMI_OFFSET, 0];
    const { m, depths } = recursiveOps((d) => ctx[d - 1] ?? 0);
    run(m, { fn: 'vfs_read', args: [1, 2, 3, 4] });
    const s = SOFTIRQ_OFFSET;
    const h = s + HARDIRQ_OFFSET;
    const n = h + NMI_OFFSET;
    // task, softirq, hardirq, NMI, NMI again on the transition bit, then refused.
    expect(depths).toEqual([0, s, h, n, n]);
    expect(m.ft.recursion.skipped[TRACE_CTX_NMI]).toBe(1);
  });

  it('without RECURSION the single-ops path has no guard, so the callback must bring its own', () => {
    const m = machine();
    let calls = 0;
    const ops = new FtraceOps({
      name: 'unguarded',
      static: true,
      func: () => {
        calls++;
        if (calls < 4) run(m, { fn: 'vfs_read', args: [1, 2, 3, 4] });
      },
    });
    m.ft.setFilter(ops, 'vfs_read');
    m.ft.registerFtraceFunction(ops);
    run(m, { fn: 'vfs_read', args: [1, 2, 3, 4] });
    expect(calls).toBe(4);
    expect(m.ft.recursion.totalSkipped).toBe(0);
  });
});
