import type { Bench } from 'tinybench';
import { TracelabError } from '@tracelab/contracts';
import { compileWorkload, KernelError, type CallNode, type Cpu } from '@tracelab/kernel';
import { assemble, BPF_MAP_TYPE_ARRAY, BPF_PSEUDO_MAP_FD, VmError, type Insn } from '@tracelab/vm';
import { Engine, type LinkAttr } from '../src/index.js';

const BATCH = 1000;

function ok<T>(v: T): Exclude<T, Error> {
  if (v instanceof Error) throw v;
  return v as Exclude<T, Error>;
}

/** The counting program of the issues' figures: one array slot, +1 per run (bpf() load path). */
const COUNT = (map: number): Insn[] => {
  const insns = assemble(
    `r1 = 0\n*(u32 *)(r10 - 4) = r1\nr2 = r10\nr2 += -4\nr1 = ${map} ll\ncall 1\n` +
      `if r0 == 0 goto +2\nr1 = 1\nlock *(u64 *)(r0 + 0) += r1\nr0 = 0\nexit`,
  );
  if (insns instanceof VmError) throw insns;
  return insns.map((i) => (i.code === 0x18 && i.imm > 0 ? { ...i, src: BPF_PSEUDO_MAP_FD } : i));
};

/** An engine whose CPU 0 runs vfs_read BATCH times per call of the returned function. */
function rig(attach?: (e: Engine, map: number) => void, jit = false): () => void {
  const e = ok(Engine.create({ arch: 'x86_64', cpus: 1, seed: 1, jit }));
  const k = e.kernel;
  const task = ok(k.createTask('bench', { pid: 4242, cpu: 0 }));
  const cpu = k.cpus[0] as Cpu;
  k.switchTo(cpu, task);
  const w = compileWorkload(k.image, {
    name: 'bench',
    tasks: [
      {
        comm: 'bench',
        calls: [{ fn: 'vfs_read', args: [3, 0, 4096, 0], cost: 10, ret: 4096, repeat: BATCH }],
      },
    ],
  });
  if (w instanceof KernelError) throw w;
  const call = w.tasks[0]?.calls[0] as CallNode;
  const map = ok(
    e.bpf.mapCreate({ type: BPF_MAP_TYPE_ARRAY, keySize: 4, valueSize: 8, maxEntries: 1 }),
  );
  attach?.(e, map);
  return () => {
    const f = k.run(cpu, call);
    if (f !== null) throw f;
  };
}

function linked(progType: 'kprobe' | 'tracing', link: LinkAttr): (e: Engine, map: number) => void {
  return (e, map) => {
    const prog = ok(
      e.bpf.progLoad({
        insns: COUNT(map),
        progType,
        ...(progType === 'tracing'
          ? { attachType: 'fentry' as const, attachTarget: 'vfs_read' }
          : {}),
      }),
    );
    const l = e.bpf.linkCreate(prog.fd, link);
    if (l instanceof TracelabError) throw l;
  };
}

export default function (bench: Bench): void {
  // Per traced call over untraced = (traced mean - untraced mean) / BATCH.
  const label = `${BATCH} vfs_read calls`;
  bench.add(`${label}, untraced`, rig());
  bench.add(
    `${label}, kprobe_multi counting program`,
    rig(linked('kprobe', { attachType: 'kprobe_multi', syms: ['vfs_read'] })),
  );
  bench.add(
    `${label}, kprobe_multi counting program (JIT)`,
    rig(linked('kprobe', { attachType: 'kprobe_multi', syms: ['vfs_read'] }), true),
  );
  bench.add(
    `${label}, fentry counting program`,
    rig(linked('tracing', { attachType: 'fentry', targets: 'vfs_read' })),
  );
}
