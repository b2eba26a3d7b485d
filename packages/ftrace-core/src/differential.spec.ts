import { describe, expect, it } from 'vitest';
import type { ArchName } from '@tracelab/arch-isa';
import {
  BUILTIN_WORKLOADS,
  builtinWorkload,
  compileWorkload,
  Kernel,
  KernelError,
  KernelImage,
  runCompiled,
} from '@tracelab/kernel';
import { Ftrace } from './ftrace.js';
import { FunctionTracer } from './function-tracer.js';
import { FTRACE_OPS_FL_RECURSION, FTRACE_OPS_FL_SAVE_REGS, FtraceOps } from './ops.js';

interface Run {
  events: string[];
  clocks: number[];
  fault: string | null;
  traced: number;
}

/** Runs a built-in workload and records every call and return with its return value. */
function runWorkload(arch: ArchName, name: string, trace: boolean): Run {
  const image = KernelImage.builtin(arch);
  if (image instanceof KernelError) throw image;
  const spec = builtinWorkload(name, arch);
  if (spec instanceof KernelError) throw spec;
  const compiled = compileWorkload(image, spec);
  if (compiled instanceof KernelError) throw compiled;
  const kernel = new Kernel({ image, cpus: 2 });
  const events: string[] = [];
  kernel.observer = {
    onCall: (cpu, fn) => void events.push(`${cpu.id} > ${fn}`),
    onReturn: (cpu, fn) => void events.push(`${cpu.id} < ${fn} = ${cpu.regs.returnValue()}`),
  };
  let traced = 0;
  if (trace) {
    const ft = Ftrace.attach(kernel);
    if (ft instanceof Error) throw ft;
    // The function tracer on every function, a guarded counter, and a regs-saving ops.
    const tracer = new FunctionTracer(ft, { bufferSizeKb: 64 });
    expect(tracer.start()).toBeNull();
    const counter = new FtraceOps({
      name: 'count',
      flags: FTRACE_OPS_FL_RECURSION,
      func: () => void traced++,
    });
    expect(ft.registerFtraceFunction(counter)).toBeNull();
    if (kernel.info.capabilities.withRegs) {
      const regs = new FtraceOps({
        name: 'regs',
        flags: FTRACE_OPS_FL_SAVE_REGS,
        func: () => undefined,
      });
      expect(ft.setFilter(regs, '*read*')).toBeNull();
      expect(ft.registerFtraceFunction(regs)).toBeNull();
    }
  }
  const r = runCompiled(kernel, compiled, 7);
  const fault = r instanceof KernelError ? r.message : r.fault;
  return { events, clocks: kernel.cpus.map((c) => c.clock), fault, traced };
}

describe('traced and untraced runs of the same seeded workload', () => {
  for (const arch of ['x86_64', 'arm64', 'i386', 'riscv64'] as const) {
    for (const name of BUILTIN_WORKLOADS) {
      it(`${arch} ${name}: same calls, returns and clocks`, () => {
        const plain = runWorkload(arch, name, false);
        const traced = runWorkload(arch, name, true);
        expect(plain.fault).toBeNull();
        expect(traced.fault).toBeNull();
        expect(traced.events).toEqual(plain.events);
        expect(traced.clocks).toEqual(plain.clocks);
        expect(traced.traced).toBeGreaterThan(0);
      });
    }
  }
});
