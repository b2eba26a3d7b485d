import { existsSync, readFileSync } from 'node:fs';
import type { Bench } from 'tinybench';
import {
  compileWorkload,
  Kernel,
  KernelError,
  KernelImage,
  type CallNode,
  type Cpu,
} from '@tracelab/kernel';
import { Ftrace, FtraceOps, FTRACE_OPS_FL_RECURSION, type FtraceFunc } from '../src/index.js';

const VMLINUX = '/sys/kernel/btf/vmlinux';

function ok<T>(v: T): Exclude<T, Error> {
  if (v instanceof Error) throw v;
  return v as Exclude<T, Error>;
}

/** Calls per sample: per call = mean / BATCH, so the timer's own cost per sample drops out. */
const BATCH = 1000;

/** A kernel with one task on CPU 0 and a compiled leaf call of vfs_read, repeated BATCH times. */
function setup(): { kernel: Kernel; ft: Ftrace; cpu: Cpu; call: CallNode } {
  const image = ok(KernelImage.builtin('x86_64'));
  const kernel = new Kernel({ image, cpus: 1 });
  const ft = ok(Ftrace.attach(kernel));
  const task = ok(kernel.createTask('bench', { pid: 100, cpu: 0 }));
  const cpu = kernel.cpus[0] as Cpu;
  kernel.switchTo(cpu, task);
  const w = compileWorkload(image, {
    name: 'leaf',
    tasks: [
      {
        comm: 'bench',
        calls: [{ fn: 'vfs_read', args: [3, 4096, 128, 0], cost: 0, repeat: BATCH }],
      },
    ],
  });
  if (w instanceof KernelError) throw w;
  return { kernel, ft, cpu, call: w.tasks[0]?.calls[0] as CallNode };
}

let sink = 0;
const count: FtraceFunc = (ip) => {
  sink = (sink + ip) | 0;
};

function traced(n: number, opts: { static?: boolean; flags?: number }): () => void {
  const m = setup();
  for (let i = 0; i < n; i++) {
    const ops = new FtraceOps({
      name: `ops${i}`,
      func: count,
      static: opts.static,
      flags: opts.flags,
    });
    ok(m.ft.setFilter(ops, 'vfs_read') ?? 0);
    ok(m.ft.registerFtraceFunction(ops) ?? 0);
  }
  return () => {
    m.kernel.run(m.cpu, m.call);
  };
}

export default function benches(bench: Bench): void {
  const plain = setup();
  const per = `(${BATCH} calls; per call = mean / ${BATCH})`;
  bench.add(`call vfs_read, untraced (NOP site) ${per}`, () => {
    plain.kernel.run(plain.cpu, plain.call);
  });
  bench.add(
    `1 static ops: ftrace_caller -> func (single-ops path) ${per}`,
    traced(1, { static: true }),
  );
  bench.add(`1 dynamic ops: per-ops trampoline ${per}`, traced(1, {}));
  bench.add(
    `1 ops with RECURSION: trampoline -> assist wrapper ${per}`,
    traced(1, { flags: FTRACE_OPS_FL_RECURSION }),
  );
  bench.add(`4 ops: ftrace_caller -> ftrace_ops_list_func ${per}`, traced(4, {}));

  // Enabling every function is timed by hand on fresh kernels: repeating it inside tinybench
  // would keep every text_poke record of every round in the kernel's log.
  const real = existsSync(VMLINUX);
  if (!real)
    console.warn(`ftrace bench: ${VMLINUX} is absent; enabling the built-in image instead`);
  const blob = real ? readFileSync(VMLINUX) : null;
  const enable: number[] = [];
  const disable: number[] = [];
  let functions = 0;
  for (let round = 0; round < 3; round++) {
    const image = ok(
      blob === null ? KernelImage.builtin('x86_64') : KernelImage.fromBtf('x86_64', blob),
    );
    const ft = ok(Ftrace.attach(new Kernel({ image, cpus: 1 })));
    functions = ft.table.functions.length;
    const all = new FtraceOps({ name: 'all', func: count, static: true });
    ft.initOps(all);
    const t0 = performance.now();
    ok(ft.registerFtraceFunction(all) ?? 0);
    const t1 = performance.now();
    ok(ft.unregisterFtraceFunction(all) ?? 0);
    enable.push(t1 - t0);
    disable.push(performance.now() - t1);
  }
  console.log(
    `ftrace bench: one ops on all ${functions} functions: enable ${Math.min(...enable).toFixed(1)} ms, ` +
      `disable ${Math.min(...disable).toFixed(1)} ms (best of 3)`,
  );
}
