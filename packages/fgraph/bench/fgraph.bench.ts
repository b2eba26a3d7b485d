import type { Bench } from 'tinybench';
import { Ftrace, FtraceOps } from '@tracelab/ftrace-core';
import {
  compileWorkload,
  Kernel,
  KernelError,
  KernelImage,
  type CallNode,
  type Cpu,
} from '@tracelab/kernel';
import { Fgraph, FgraphOps, FunctionGraphTracer } from '../src/index.js';

const BATCH = 1000;

function ok<T>(v: T): Exclude<T, Error> {
  if (v instanceof Error) throw v;
  return v as Exclude<T, Error>;
}

/** A kernel running one call with BATCH leaf children: per-call cost is mean / (BATCH + 1). */
function setup(arch: 'x86_64' | 'arm64'): { k: Kernel; cpu: Cpu; call: CallNode; fg: Fgraph } {
  const image = ok(KernelImage.builtin(arch));
  const k = new Kernel({ image });
  const task = ok(k.createTask('bench'));
  const cpu = k.cpus[0] as Cpu;
  k.switchTo(cpu, task);
  const w = compileWorkload(image, {
    name: 'bench',
    tasks: [
      {
        comm: 'bench',
        calls: [
          {
            fn: 'vfs_read',
            cost: 10,
            calls: [{ fn: 'rw_verify_area', cost: 2, ret: 0, repeat: BATCH }],
          },
        ],
      },
    ],
  });
  if (w instanceof KernelError) throw w;
  const fg = ok(Fgraph.attach(ok(Ftrace.attach(k))));
  return { k, cpu, call: w.tasks[0]?.calls[0] as CallNode, fg };
}

function users(fg: Fgraph, n: number, data: boolean): void {
  for (let i = 0; i < n; i++) {
    const g: FgraphOps = new FgraphOps({
      name: `u${i}`,
      entryfunc: () => {
        if (data) fg.reserveData(g, 8);
        return 1;
      },
      retfunc: () => {
        if (data) fg.retrieveData(g);
      },
    });
    ok(fg.register(g));
  }
}

export default function (bench: Bench): void {
  const label = `(${BATCH + 1} calls; per call = mean / ${BATCH + 1})`;
  for (const arch of ['x86_64', 'arm64'] as const) {
    const plain = setup(arch);
    bench.add(`${arch} untraced ${label}`, () => {
      plain.k.run(plain.cpu, plain.call);
    });
    // What ftrace alone costs (patched site, caller, one empty ops): fgraph's share is the rest.
    const f = setup(arch);
    const empty = new FtraceOps({ name: 'empty', func: () => undefined });
    ok(f.fg.ftrace.setFilter(empty, 'rw_verify_area vfs_read'));
    ok(f.fg.ftrace.registerFtraceFunction(empty));
    bench.add(`${arch} ftrace empty ops only ${label}`, () => {
      f.k.run(f.cpu, f.call);
    });
    for (const n of [1, 16]) {
      const s = setup(arch);
      users(s.fg, n, false);
      bench.add(`${arch} fgraph ${n} user${n > 1 ? 's' : ''} entry+return ${label}`, () => {
        s.k.run(s.cpu, s.call);
      });
    }
    const d = setup(arch);
    users(d.fg, 4, true);
    bench.add(`${arch} fgraph 4 users reserve+retrieve 8 bytes ${label}`, () => {
      d.k.run(d.cpu, d.call);
    });
    const t = setup(arch);
    const tr = new FunctionGraphTracer(t.fg, { bufferEvents: 1 << 14 });
    ok(tr.start());
    bench.add(`${arch} function_graph tracer ${label}`, () => {
      t.k.run(t.cpu, t.call);
    });
  }
}
