import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { TracelabError } from '@tracelab/contracts';
import { Ftrace } from '@tracelab/ftrace-core';
import { Kernel, KernelImage, type CallNode, type Cpu } from '@tracelab/kernel';
import { BpfObject } from '@tracelab/loader';
import { installHelpers } from '@tracelab/vm';
import { describe, expect, it } from 'vitest';
import { BPF_TRAMP_FENTRY, Trampolines } from './trampoline.js';

// The loader package's clang-built fixture (counts.c): fentry/vfs_read counts calls per ip in a
// hash map through bpf_get_func_ip and map helpers.
const loaderDir = dirname(createRequire(import.meta.url).resolve('@tracelab/loader/package.json'));
const counts = new Uint8Array(readFileSync(join(loaderDir, 'testdata/counts.bpfel.o')));

describe('a clang-built fentry program end to end', () => {
  it('fentry/vfs_read from counts.bpfel.o counts calls by ip in its hash map', () => {
    const image = KernelImage.builtin('x86_64');
    if (!(image instanceof KernelImage)) throw image;
    const k = new Kernel({ image, cpus: 2 });
    const task = k.createTask('cat');
    if (!('pid' in task)) throw task;
    const cpu = k.cpus[1] as Cpu;
    k.switchTo(cpu, task);
    const ft = Ftrace.attach(k);
    if (!(ft instanceof Ftrace)) throw ft;
    // Maps live in the kernel's address space, where the trampoline's programs run.
    const bpf = BpfObject.open(counts, { name: 'counts' });
    // CO-RE relocations (the kprobe programs' pt_regs reads) resolve against the kernel's BTF.
    bpf.setTargetBtf(image.btf as NonNullable<typeof image.btf>);
    const obj = bpf.load({ memory: k.mm });
    const tr = new Trampolines(k, {
      ftrace: ft,
      setupVm: (vm) => installHelpers(vm, obj.table, obj.env),
    });
    const link = tr.attach(obj.program('count_fentry'), BPF_TRAMP_FENTRY, 'vfs_read');
    expect(link).not.toBeInstanceOf(TracelabError);
    const fn = k.image.indexOf('vfs_read');
    const call: CallNode = {
      fn,
      argLo: Uint32Array.of(0x1000, 0x7ffd0000, 300, 0x4f00),
      argHi: Uint32Array.of(0xffff8880, 0, 0, 0xffffc900),
      gen: null,
      cost: 10,
      retLo: 300,
      retHi: 0,
      repeat: 3,
      children: [],
    };
    expect(k.run(cpu, call)).toBeNull();
    const key = new Uint8Array(8);
    new DataView(key.buffer).setBigUint64(0, k.image.functions[fn]?.addr as bigint, true);
    const v = obj.map('calls').lookup(key);
    expect(v).toBeInstanceOf(Uint8Array);
    expect(
      new DataView((v as Uint8Array).buffer, (v as Uint8Array).byteOffset).getBigUint64(0, true),
    ).toBe(3n);
    expect(tr.stats.errors).toBe(0);
  });
});
