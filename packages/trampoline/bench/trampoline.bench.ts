import { existsSync, readFileSync } from 'node:fs';
import type { Bench } from 'tinybench';
import { ARCHES, type ArchName } from '@tracelab/arch-isa';
import { TracelabError } from '@tracelab/contracts';
import { Ftrace } from '@tracelab/ftrace-core';
import { Kernel, KernelImage, kernelEnv, type CallNode, type Cpu } from '@tracelab/kernel';
import {
  assemble,
  BPF_MAP_TYPE_HASH,
  BpfMap,
  installHelpers,
  MapTable,
  mapResolver,
  Program,
  Vm,
  type Insn,
} from '@tracelab/vm';
import {
  BPF_TRAMP_FENTRY,
  BPF_TRAMP_FEXIT,
  Trampolines,
  type BpfTracingLink,
} from '../src/index.js';

const BATCH = 1000;

function load(text: string, maps?: MapTable): Program {
  const p = Program.load(assemble(text) as Insn[], {
    name: 'count',
    ...(maps === undefined ? {} : { resolveLddw: mapResolver(maps) }),
  });
  if (!(p instanceof Program)) throw p;
  return p;
}

/** The fentry counting program: one u64 counter in kernel memory, +1 per call. */
const counting = (mem: bigint): Program =>
  load(
    [
      `lddw %r1, 0x${mem.toString(16)}`,
      'ldxdw %r2, [%r1+0]',
      'add %r2, 1',
      'stxdw [%r1+0], %r2',
      'mov %r0, 0',
      'exit',
    ].join('\n'),
  );

/**
 * What a latency tool does on one call, entry and return in one program: start[pid] = now, then
 * look it up and delete it (helpers for time, pid/tgid and a hash map).
 */
function latency(maps: MapTable): Program {
  const start = maps.create({ type: BPF_MAP_TYPE_HASH, keySize: 4, valueSize: 8, maxEntries: 64 });
  if (!(start instanceof BpfMap)) throw start;
  const m = `r1 = map_fd[${start.id}, 0] ll`;
  return load(
    `call 5 // bpf_ktime_get_ns
    *(u64 *)(r10 - 8) = r0
    call 14 // bpf_get_current_pid_tgid
    *(u32 *)(r10 - 12) = r0
    ${m}
    r2 = r10
    r2 += -12
    r3 = r10
    r3 += -8
    r4 = 0
    call 2 // bpf_map_update_elem
    ${m}
    r2 = r10
    r2 += -12
    call 1 // bpf_map_lookup_elem
    if r0 == 0 goto out
    ${m}
    r2 = r10
    r2 += -12
    call 3 // bpf_map_delete_elem
  out:
    r0 = 0
    exit`,
    maps,
  );
}

function rig(
  image: KernelImage,
  jit = false,
): { k: Kernel; cpu: Cpu; tr: Trampolines; mem: bigint; maps: MapTable } {
  const k = new Kernel({ image });
  const task = k.createTask('bench');
  if (!('pid' in task)) throw task;
  const cpu = k.cpus[0] as Cpu;
  k.switchTo(cpu, task);
  const ft = Ftrace.attach(k);
  if (!(ft instanceof Ftrace)) throw ft;
  // Maps above the kernel's regions on every arch (as the fprobe event tests place them).
  const maps = new MapTable(k.mm, 0xd9000000n, k.cpus.length);
  const setupVm = (vm: Vm, c: number): void => installHelpers(vm, maps, kernelEnv(k, c));
  return {
    k,
    cpu,
    tr: new Trampolines(k, { ftrace: ft, jit, setupVm }),
    mem: k.kmalloc(64) as bigint,
    maps,
  };
}

function vfsRead(k: Kernel): CallNode {
  return {
    fn: k.image.indexOf('vfs_read'),
    argLo: Uint32Array.of(0x1000, 0x7ffd0000, 300, 0x4f00),
    argHi: Uint32Array.of(0xffff8880, 0, 0, 0xffffc900),
    gen: null,
    cost: 10,
    retLo: 300,
    retHi: 0,
    repeat: BATCH,
    children: [],
  };
}

export default function (bench: Bench): void {
  // Per traced call over untraced = (traced mean - untraced mean) / BATCH.
  for (const arch of ARCHES) {
    const image = KernelImage.builtin(arch);
    if (!(image instanceof KernelImage)) throw image;
    const plain = rig(image);
    const node = vfsRead(plain.k);
    bench.add(`${arch}: ${BATCH} untraced vfs_read calls`, () => {
      plain.k.run(plain.cpu, node);
    });
    for (const kind of [BPF_TRAMP_FENTRY, BPF_TRAMP_FEXIT] as const) {
      const r = rig(KernelImage.builtin(arch) as KernelImage);
      const l = r.tr.attach(counting(r.mem), kind, 'vfs_read');
      if (l instanceof TracelabError) throw l;
      const n = vfsRead(r.k);
      bench.add(
        `${arch}: ${BATCH} vfs_read calls, ${kind === BPF_TRAMP_FENTRY ? 'fentry' : 'fexit'} counting (interpreter)`,
        () => {
          r.k.run(r.cpu, n);
        },
      );
    }
  }
  // A program that calls helpers: time, pid/tgid, hash map update, lookup and delete.
  const h = rig(KernelImage.builtin('x86_64') as KernelImage);
  const hl = h.tr.attach(latency(h.maps), BPF_TRAMP_FENTRY, 'vfs_read');
  if (hl instanceof TracelabError) throw hl;
  const hn = vfsRead(h.k);
  bench.add(`x86_64: ${BATCH} vfs_read calls, fentry latency program (interpreter)`, () => {
    h.k.run(h.cpu, hn);
  });
  // The same program compiled to JavaScript (Vm.runJitRaw), as the kernel JITs BPF programs.
  const j = rig(KernelImage.builtin('x86_64') as KernelImage, true);
  j.tr.attach(counting(j.mem), BPF_TRAMP_FENTRY, 'vfs_read');
  const jn = vfsRead(j.k);
  bench.add(`x86_64: ${BATCH} vfs_read calls, fentry counting (JIT)`, () => {
    j.k.run(j.cpu, jn);
  });
  // Attaching one program to 10k functions of vmlinux (multi-attach: M images, M ftrace ops).
  const path = '/sys/kernel/btf/vmlinux';
  if (!existsSync(path)) return;
  const bytes = new Uint8Array(readFileSync(path));
  for (const arch of ['x86_64', 'i386'] as ArchName[]) {
    const image = KernelImage.fromBtf(arch, bytes);
    if (!(image instanceof KernelImage)) throw image;
    const r = rig(image);
    const fns: number[] = [];
    for (const f of image.functions) {
      if (fns.length === 10_000) break;
      if (!(r.tr.plan(f.index) instanceof TracelabError)) fns.push(f.index);
    }
    const prog = counting(r.mem);
    bench.add(`${arch}: attach + detach one fentry program on 10k vmlinux functions`, () => {
      const l = r.tr.attach(prog, BPF_TRAMP_FENTRY, fns) as BpfTracingLink;
      r.tr.detach(l);
    });
  }
}
