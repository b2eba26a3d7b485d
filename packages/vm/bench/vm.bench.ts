import type { Bench } from 'tinybench';
import {
  AddressSpace,
  PROT_READ,
  PROT_WRITE,
  Program,
  Vm,
  VmError,
  assemble,
  installConformanceHelpers,
} from '../src/index.js';
import { PROGRAMS } from './programs.js';

const MEM_BASE = 0x7f0000000000n;

interface Runner {
  name: string;
  insns: number;
  run: () => void;
}

function prepare(): Runner[] {
  const runners: Runner[] = [];
  for (const p of PROGRAMS) {
    const insns = assemble(p.asm);
    if (insns instanceof VmError) throw insns;
    const prog = Program.load(insns);
    if (prog instanceof VmError) throw prog;
    const memory = new AddressSpace();
    const vm = Vm.create({ memory, budget: 1e9 });
    if (vm instanceof VmError) throw vm;
    installConformanceHelpers(vm);
    let base = 0n;
    if (p.mem !== undefined) {
      const data = new Uint8Array(p.mem);
      for (let k = 0; k < data.length; k++) data[k] = (k * 7) & 0xff;
      memory.map({ name: 'input', base: MEM_BASE, prot: PROT_READ | PROT_WRITE, data });
      base = MEM_BASE;
    }
    const len = BigInt(p.mem ?? 0);
    // Check the answer before timing anything.
    if (vm.run(prog, base, len) !== 0) throw vm.error;
    if (vm.r0 !== p.result) throw new Error(`${p.name}: r0 = ${vm.r0}, expected ${p.result}`);
    runners.push({
      name: `interp ${p.name}`,
      insns: vm.executed,
      run: () => void vm.run(prog, base, len),
    });
    if (vm.runJit(prog, base, len) !== 0) throw vm.error;
    if (vm.r0 !== p.result) throw new Error(`${p.name} (jit): r0 = ${vm.r0}, expected ${p.result}`);
    runners.push({
      name: `jit ${p.name}`,
      insns: vm.executed,
      run: () => void vm.runJit(prog, base, len),
    });
  }
  return runners;
}

export default function setup(bench: Bench): void {
  const runners = prepare();
  for (const r of runners) bench.add(r.name, r.run);
  bench.addEventListener('complete', () => {
    const rows = runners.map((r) => {
      const task = bench.tasks.find((t) => t.name === r.name);
      const res = task?.result;
      const ms =
        res !== undefined && res.state === 'completed'
          ? (res.latency.p50 ?? res.latency.mean)
          : NaN;
      return { task: r.name, insns: r.insns, 'ns/insn': Number(((ms * 1e6) / r.insns).toFixed(2)) };
    });
    console.table(rows);
    for (const engine of ['interp', 'jit']) {
      const sorted = rows
        .filter((r) => r.task.startsWith(`${engine} `))
        .map((r) => r['ns/insn'])
        .sort((a, b) => a - b);
      const mid = sorted.length / 2;
      const median =
        sorted.length % 2
          ? sorted[Math.floor(mid)]
          : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
      console.log(`${engine} median ns per executed instruction: ${median}`);
    }
  });
}
