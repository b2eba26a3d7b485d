import fc from 'fast-check';
import type { ArchName } from '@tracelab/arch-isa';
import { Ftrace } from '@tracelab/ftrace-core';
import {
  builtinWorkload,
  compileWorkload,
  Kernel,
  KernelImage,
  runCompiled,
  type BuiltinWorkloadName,
  type WorkloadSpec,
} from '@tracelab/kernel';
import { describe, expect, it } from 'vitest';
import { ok } from '../test/helpers.js';
import { Fgraph, FgraphOps } from './fgraph.js';

interface Action {
  at: number;
  user: number;
  attach: boolean;
}

interface Outcome {
  returns: string[];
  fault: string | null;
  lateReturns: number;
  unbalanced: string[];
  retCalls: number;
}

/** Runs a built-in workload, attaching and detaching three graph users at given call counts. */
function runWith(
  arch: ArchName,
  name: BuiltinWorkloadName,
  seed: number,
  actions: readonly Action[] | null,
): Outcome {
  // A fresh image each run: ftrace patches the image's text in place.
  const img = ok(KernelImage.builtin(arch));
  const kernel = new Kernel({ image: img, cpus: 2 });
  const spec = ok(builtinWorkload(name, arch)) as WorkloadSpec;
  // One loop per task keeps a run short; the interleaving still comes from the seed.
  const w = ok(
    compileWorkload(img, { ...spec, tasks: spec.tasks.map((t) => ({ ...t, loops: 1 })) }),
  );
  const out: Outcome = { returns: [], fault: null, lateReturns: 0, unbalanced: [], retCalls: 0 };
  let fg: Fgraph | null = null;
  const users: FgraphOps[] = [];
  if (actions !== null) {
    const ft = ok(Ftrace.attach(kernel));
    fg = ok(Fgraph.attach(ft));
    for (let u = 0; u < 3; u++) {
      const g: FgraphOps = new FgraphOps({
        name: `u${u}`,
        entryfunc: (t) => (t.fn + u) % 3 !== 0,
        retfunc: () => {
          out.retCalls++;
          // A return callback after unregister completed is the bug this guards against.
          if (g.idx < 0) out.lateReturns++;
        },
      });
      users.push(g);
    }
    ok(fg.setFilter(users[2] as FgraphOps, '*read* *write* *irq*'));
  }
  let calls = 0;
  const todo = [...(actions ?? [])].sort((a, b) => a.at - b.at);
  kernel.observer = {
    onCall: () => {
      calls++;
      while (fg !== null && todo.length > 0 && (todo[0] as Action).at <= calls) {
        const a = todo.shift() as Action;
        const g = users[a.user] as FgraphOps;
        if (a.attach && g.idx < 0) ok(fg.register(g));
        else if (!a.attach && g.idx >= 0) ok(fg.unregister(g));
      }
    },
    onReturn: (c, fn) => void out.returns.push(`${c.id}:${fn}:${c.clock}`),
  };
  const r = ok(runCompiled(kernel, w, seed));
  out.fault = r.fault;
  if (fg !== null) {
    for (const t of kernel.tasks) {
      const st = fg.stackOf(t);
      if (st !== null && (st.curr !== 0 || st.depth !== -1)) {
        out.unbalanced.push(`${t.comm}: curr ${st.curr} depth ${st.depth}`);
      }
    }
  }
  return out;
}

describe('attach and detach graph users while calls are in flight', () => {
  it('never calls a return callback after unregister, restores every return, balances stacks', () => {
    const action = fc.record({
      at: fc.integer({ min: 1, max: 400 }),
      user: fc.integer({ min: 0, max: 2 }),
      attach: fc.boolean(),
    });
    let retCalls = 0;
    fc.assert(
      fc.property(
        fc.constantFrom<ArchName>('x86_64', 'i386', 'arm64', 'riscv64'),
        fc.constantFrom<BuiltinWorkloadName>('syscalls', 'timer', 'net-rx', 'recursion'),
        fc.integer({ min: 1, max: 1000 }),
        fc.array(action, { minLength: 1, maxLength: 12 }),
        (arch, name, seed, actions) => {
          const plain = runWith(arch, name, seed, null);
          const traced = runWith(arch, name, seed, actions);
          expect(plain.fault).toBeNull();
          expect(traced.fault).toBeNull();
          retCalls += traced.retCalls;
          expect(traced.lateReturns).toBe(0);
          expect(traced.unbalanced).toEqual([]);
          // Execution is unchanged: the same returns, in the same order, at the same times.
          expect(traced.returns).toEqual(plain.returns);
        },
      ),
      { numRuns: 24, seed: 9 },
    );
    // The runs did hook returns, so the checks above were exercised.
    expect(retCalls).toBeGreaterThan(100);
    // A ceiling for a loaded CI machine, not a timing assertion.
  }, 120_000);
});
