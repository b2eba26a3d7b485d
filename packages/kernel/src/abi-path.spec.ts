import {
  ARCHES,
  archInfo,
  BTF_FMODEL_SIGNED_ARG,
  encodeEntryCall,
  readArgs,
} from '@tracelab/arch-isa';
import { isMemFault, MemFault } from '@tracelab/vm';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KernelError } from './errors.js';
import { KernelImage } from './image.js';
import { ENTRY_CONTINUE, Kernel, type CallNode, type Cpu } from './machine.js';
import { kernelEnv } from './run.js';
import { compileWorkload, type CompiledWorkload } from './workload.js';

function boot(arch: (typeof ARCHES)[number]): { k: Kernel; cpu: Cpu } {
  const image = KernelImage.builtin(arch) as KernelImage;
  const k = new Kernel({ image, cpus: 2 });
  const task = k.createTask('abi', { pid: 77, tgid: 70 });
  if (task instanceof KernelError) throw task;
  k.switchTo(k.cpus[0] as Cpu, task);
  return { k, cpu: k.cpus[0] as Cpu };
}

describe('arguments through the call path', () => {
  it.each(ARCHES)('%s: random functions and values arrive where the ABI puts them', (arch) => {
    const { k, cpu } = boot(arch);
    const image = k.image;
    const candidates = image.functions.filter((f) => f.traceable && image.model(f.index) !== null);
    const caller = k.symbolAddress('ftrace_caller') as bigint;
    let seen: bigint[] = [];
    k.registerHandler(caller, 'ftrace_caller', (c, fn) => {
      const sp = c.regs.stackPointer();
      seen = readArgs(k.callPlacement(fn), c.regs, {
        readWord: (off) => {
          const v = k.mm.load(sp + BigInt(off), archInfo(arch).wordSize as 4 | 8);
          if (v instanceof MemFault) throw new Error(v.message);
          return v;
        },
        writeWord: () => undefined,
      });
      return ENTRY_CONTINUE;
    });
    for (const f of candidates) {
      const bytes = encodeEntryCall(arch, f.addr, caller) as Uint8Array;
      k.textPoke(f.addr, bytes, 'abi test');
    }
    fc.assert(
      fc.property(
        fc.constantFrom(...candidates),
        fc.array(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), { minLength: 12, maxLength: 12 }),
        (f, raw) => {
          const model = image.model(f.index);
          if (model === null) return;
          const args = raw.slice(0, model.nrArgs).map((v, i) => {
            const bits = Math.min(64, (model.argSize[i] as number) * 8);
            return BigInt.asUintN(bits, v);
          });
          const w = compileWorkload(image, {
            name: 'abi',
            tasks: [
              {
                comm: 'abi',
                calls: [{ fn: f.name, args: args.map((a) => `0x${a.toString(16)}`) }],
              },
            ],
          });
          if (w instanceof KernelError) throw w;
          expect(k.run(cpu, w.tasks[0]?.calls[0] as CallNode)).toBeNull();
          const want = args.map((v, i) => {
            const bits = (model.argSize[i] as number) * 8;
            return ((model.argFlags[i] as number) & BTF_FMODEL_SIGNED_ARG) !== 0
              ? BigInt.asIntN(bits, v)
              : v;
          });
          expect(seen).toEqual(want);
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe('faults and the helper interface', () => {
  it('a CPU runs on normally after a fault', () => {
    const { k, cpu } = boot('x86_64');
    const w = compileWorkload(k.image, {
      name: 'f',
      tasks: [{ comm: 'f', calls: [{ fn: 'vfs_read', calls: [{ fn: 'rw_verify_area' }] }] }],
    }) as CompiledWorkload;
    const sp = cpu.regs.stackPointer();
    const fn = k.symbolAddress('rw_verify_area') as bigint;
    k.textPoke(
      fn,
      encodeEntryCall('x86_64', fn, k.symbolAddress('ftrace_stub') as bigint) as Uint8Array,
      'break',
    );
    expect(k.run(cpu, w.tasks[0]?.calls[0] as CallNode)?.code).toBe('EFAULT');
    expect(cpu.regs.stackPointer()).toBe(sp);
    expect(cpu.depth).toBe(0);
    k.registerHandler(
      k.symbolAddress('ftrace_stub') as bigint,
      'ftrace_stub',
      () => ENTRY_CONTINUE,
    );
    expect(k.run(cpu, w.tasks[0]?.calls[0] as CallNode)).toBeNull();
    expect(cpu.fault).toBeNull();
  });

  it("serves vm's KernelEnv: current task, time, CPU, stack, printk, prandom", () => {
    const { k, cpu } = boot('arm64');
    const env = kernelEnv(k, 0);
    const idle = kernelEnv(k, 1);
    // The 64-bit answers come as int32 halves.
    const u64 = (get: (out: Int32Array) => void): bigint => {
      const out = new Int32Array(2).fill(-1);
      get(out);
      return (BigInt(out[1] as number) << 32n) | BigInt((out[0] as number) >>> 0);
    };
    expect(u64(env.currentPidTgid)).toBe((70n << 32n) | 77n);
    expect(new TextDecoder().decode(env.currentComm())).toBe('abi');
    expect(new TextDecoder().decode(idle.currentComm())).toBe('swapper');
    expect(u64(idle.currentPidTgid)).toBe(0n);
    expect(u64(env.currentTask)).toBe(BigInt.asIntN(64, k.tasks[0]?.taskStruct as bigint));
    expect(u64(idle.currentTask)).toBe(0n);
    cpu.clock = 1234.5;
    expect(u64(env.ktimeGetNs)).toBe(1234n);
    // Past 2^32 ns (4.3 s), with a low half past 2^31.
    cpu.clock = 0x19abcdef0 + 0.25;
    expect(u64(env.ktimeGetNs)).toBe(0x19abcdef0n);
    expect(idle.smpProcessorId()).toBe(1);
    env.tracePrintk('hello');
    expect(k.printkLines).toEqual(['hello']);
    k.seed(3);
    const a = env.prandomU32();
    k.seed(3);
    expect(env.prandomU32()).toBe(a);
    expect(isMemFault(k.mm.read(0x10n, 8))).toBe(true);
    expect(() => kernelEnv(k, 5)).toThrow(/no cpu 5/);
    let depthTrace: readonly bigint[] = [];
    k.observer = { onCall: (c) => void (c.depth === 2 && (depthTrace = env.stack(false))) };
    const w = compileWorkload(k.image, {
      name: 's',
      tasks: [{ comm: 's', calls: [{ fn: 'vfs_read', calls: [{ fn: 'rw_verify_area' }] }] }],
    }) as CompiledWorkload;
    k.run(cpu, w.tasks[0]?.calls[0] as CallNode);
    expect(depthTrace.map((a) => k.image.lookup(a)?.fn.name)).toEqual([
      'rw_verify_area',
      'vfs_read',
    ]);
    expect(env.stack(true)).toEqual([]);
  });

  it('maps a per-CPU area for every CPU', () => {
    const { k } = boot('riscv64');
    for (const c of k.cpus) expect(k.mm.regionAt(c.percpuBase)?.name).toBe(`percpu:${c.id}`);
  });
});
