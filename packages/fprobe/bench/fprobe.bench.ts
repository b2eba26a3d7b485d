import { existsSync, readFileSync } from 'node:fs';
import type { Bench } from 'tinybench';
import { Fgraph } from '@tracelab/fgraph';
import { Ftrace } from '@tracelab/ftrace-core';
import {
  BUILTIN_IMAGE,
  compileWorkload,
  Kernel,
  KernelError,
  KernelImage,
  type CallNode,
  type Cpu,
} from '@tracelab/kernel';
import { Fprobe, Fprobes, FprobeTraceEvent, TraceEventRing } from '../src/index.js';

const BATCH = 1000;
const VMLINUX = '/sys/kernel/btf/vmlinux';
const VMLINUX_FUNCS = 8000;

function ok<T>(v: T): Exclude<T, Error> {
  if (v instanceof Error) throw v;
  return v as Exclude<T, Error>;
}

/**
 * The built-in image plus 8,000 synthetic functions for the per-call rows (seven vmlinux-sized
 * images, one per task, exhaust the heap).
 */
function image(): KernelImage {
  const protos = Array.from({ length: VMLINUX_FUNCS }, (_, i) => `void bench_fn_${i}(void)`);
  return ok(KernelImage.builtin('x86_64', [...BUILTIN_IMAGE, { subsystem: 'bench', protos }]));
}

/** One call with BATCH leaf children: per-call cost is mean / (BATCH + 1). */
function setup(): { k: Kernel; cpu: Cpu; call: CallNode; fp: Fprobes } {
  // A kernel patches its image's text, so every kernel gets its own image.
  const img = image();
  const k = new Kernel({ image: img });
  const task = ok(k.createTask('bench'));
  const cpu = k.cpus[0] as Cpu;
  k.switchTo(cpu, task);
  const w = compileWorkload(img, {
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
  const fp = Fprobes.attach(ok(Fgraph.attach(ok(Ftrace.attach(k)))));
  return { k, cpu, call: w.tasks[0]?.calls[0] as CallNode, fp };
}

// Handlers write here so their work is not optimised away.
const hits = new Float64Array(1);
const entryOnly = (): Fprobe =>
  new Fprobe({
    entryHandler: () => {
      hits[0]++;
    },
  });
const entryExit = (): Fprobe =>
  new Fprobe({
    entryDataSize: 8,
    entryHandler: (_fp, ip, _r, _f, d) => {
      d?.setWord(0, ip);
    },
    exitHandler: () => {
      hits[0]++;
    },
  });

export default function (bench: Bench): void {
  const plain = setup();
  const n = plain.k.image.count;
  const label = `(${n} fns; ${BATCH + 1} calls, per call = mean / ${BATCH + 1})`;
  bench.add(`untraced ${label}`, () => {
    plain.k.run(plain.cpu, plain.call);
  });
  for (const [kind, make] of [
    ['entry-only', entryOnly],
    ['entry+exit', entryExit],
  ] as const) {
    const one = setup();
    ok(one.fp.registerFprobe(make(), 'vfs_read'));
    ok(one.fp.registerFprobe(make(), 'rw_verify_area'));
    bench.add(`fprobe ${kind}, target functions only ${label}`, () => {
      one.k.run(one.cpu, one.call);
    });
    const all = setup();
    ok(all.fp.registerFprobe(make(), '*'));
    bench.add(`fprobe ${kind}, every function attached ${label}`, () => {
      all.k.run(all.cpu, all.call);
    });
  }
  // An fprobe event: the fetch-arg program in the vm plus the entry stored in a ring, per hit.
  for (const [kind, def] of [
    ['3 register args', 'f rw_verify_area rw=$arg1:s32 file=$arg2 count=$arg4:u64'],
    [
      'register, deref, string, comm',
      'f rw_verify_area c=$arg4 m=+0($arg2):u32 s=$arg3:string n=$comm',
    ],
  ] as const) {
    const ev = setup();
    const e = ok(FprobeTraceEvent.create(ev.fp, def, 1000));
    ok(e.enableIn(new TraceEventRing(ev.k.cpus.length, 1 << 20)));
    bench.add(`fprobe event, ${kind} (${BATCH} hits per run, per hit = mean / ${BATCH})`, () => {
      ev.k.run(ev.cpu, ev.call);
    });
  }
  // The first row's event with an instance filter that keeps every hit: the entry is built in
  // the buffered event, matched (a number, then a glob on comm) and copied into the ring.
  const fe = setup();
  const filtered = ok(
    FprobeTraceEvent.create(
      fe.fp,
      'f rw_verify_area rw=$arg1:s32 file=$arg2 count=$arg4:u64',
      1000,
    ),
  );
  const ring = new TraceEventRing(fe.k.cpus.length, 1 << 20);
  ok(filtered.enableIn(ring));
  const bad = filtered.setFilter(ring, 'count == 0 && comm ~ "ben*"');
  if (bad !== null) throw bad;
  bench.add(
    `fprobe event, 3 register args, filter of 2 predicates (${BATCH} hits per run, per hit = mean / ${BATCH})`,
    () => {
      fe.k.run(fe.cpu, fe.call);
    },
  );
  const a = setup();
  bench.add(`register_fprobe('*') + unregister, ${n} functions`, () => {
    const p = entryOnly();
    ok(a.fp.registerFprobe(p, '*'));
    ok(a.fp.unregisterFprobe(p));
  });
  vmlinuxAttach();
}

/**
 * register_fprobe('*') on every function of this machine's vmlinux, timed by hand on one kernel
 * (one vmlinux-sized image per tinybench task would exhaust the heap): entry-only and with an
 * exit handler, best of 3.
 */
function vmlinuxAttach(): void {
  if (!existsSync(VMLINUX)) {
    console.warn(`fprobe bench: ${VMLINUX} is absent; no vmlinux attach figure`);
    return;
  }
  const img = ok(KernelImage.fromBtf('x86_64', readFileSync(VMLINUX)));
  const fp = Fprobes.attach(ok(Fgraph.attach(ok(Ftrace.attach(new Kernel({ image: img }))))));
  for (const [kind, make] of [
    ['entry-only', entryOnly],
    ['entry+exit', entryExit],
  ] as const) {
    const reg: number[] = [];
    const unreg: number[] = [];
    for (let round = 0; round < 3; round++) {
      const p = make();
      const t0 = performance.now();
      ok(fp.registerFprobe(p, '*'));
      const t1 = performance.now();
      ok(fp.unregisterFprobe(p));
      reg.push(t1 - t0);
      unreg.push(performance.now() - t1);
    }
    console.log(
      `fprobe bench: ${kind} fprobe on all ${fp.ftrace.table.functions.length} vmlinux functions: ` +
        `register ${Math.min(...reg).toFixed(1)} ms, unregister ${Math.min(...unreg).toFixed(1)} ms (best of 3)`,
    );
  }
}
