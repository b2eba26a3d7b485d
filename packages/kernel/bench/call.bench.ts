import { existsSync, readFileSync } from 'node:fs';
import type { Bench } from 'tinybench';
import {
  compileWorkload,
  ENTRY_CONTINUE,
  Kernel,
  KernelError,
  KernelImage,
  type CallNode,
  type Cpu,
} from '../src/index.js';
import { encodeEntryCall } from '@tracelab/arch-isa';

function setup(arch: 'x86_64' | 'arm64' | 'i386' | 'riscv64'): {
  k: Kernel;
  cpu: Cpu;
  leaf: CallNode;
} {
  const image = KernelImage.builtin(arch);
  if (image instanceof KernelError) throw image;
  const k = new Kernel({ image });
  const task = k.createTask('bench');
  if (task instanceof KernelError) throw task;
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
            args: ['0xffff888000001000', '0x7ffd0000', 300, '0xffffc90000004f00'],
            cost: 10,
            ret: 300,
          },
        ],
      },
    ],
  });
  if (w instanceof KernelError) throw w;
  return { k, cpu, leaf: w.tasks[0]?.calls[0] as CallNode };
}

export default function (bench: Bench): void {
  for (const arch of ['x86_64', 'arm64', 'i386', 'riscv64'] as const) {
    const { k, cpu, leaf } = setup(arch);
    bench.add(`untraced call ${arch} (decode entry, ABI, body, return)`, () => {
      k.run(cpu, leaf);
    });
  }
  // tinybench times every iteration; a batch shows the per-call cost without that overhead.
  const b = setup('x86_64');
  bench.add('1000 untraced calls x86_64 (per call: mean / 1000)', () => {
    for (let i = 0; i < 1000; i++) b.k.run(b.cpu, b.leaf);
  });
  const t = setup('x86_64');
  const caller = t.k.symbolAddress('ftrace_caller') as bigint;
  t.k.registerHandler(caller, 'ftrace_caller', () => ENTRY_CONTINUE);
  const fn = t.k.symbolAddress('vfs_read') as bigint;
  t.k.textPoke(fn, encodeEntryCall('x86_64', fn, caller) as Uint8Array, 'bench');
  bench.add('call through a patched entry to an empty handler x86_64', () => {
    t.k.run(t.cpu, t.leaf);
  });
  bench.add('built-in image build + BTF encode x86_64', () => {
    KernelImage.builtin('x86_64');
  });
  const vmlinux = '/sys/kernel/btf/vmlinux';
  if (existsSync(vmlinux)) {
    const bytes = new Uint8Array(readFileSync(vmlinux));
    bench.add('load /sys/kernel/btf/vmlinux into a kernel image', () => {
      KernelImage.fromBtf('x86_64', bytes);
    });
  }
}
