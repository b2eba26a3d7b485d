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
/** Where the counting program's counter lives: a kernel object (addresses of 2^63 and up). */
const KERNEL_BASE = 0xffff888000100000n;
/** Runs per task call of the counting program, which is too short to time one by one. */
const BATCH = 1000;

interface Runner {
  name: string;
  /** Instructions executed per task call. */
  insns: number;
  /** Program runs per task call. */
  runs: number;
  run: () => void;
}

/**
 * The fentry counting program a traced call runs (trampoline issue): one u64 counter in kernel
 * memory, +1 per run, entered through runRaw / runJitRaw as the trampoline enters it.
 */
function counting(): Runner[] {
  const memory = new AddressSpace();
  const counter = memory.map({
    name: 'kobj',
    base: KERNEL_BASE,
    size: 64,
    prot: PROT_READ | PROT_WRITE,
  });
  if (counter instanceof VmError) throw counter;
  const insns = assemble(
    [
      `lddw %r1, 0x${KERNEL_BASE.toString(16)}`,
      'ldxdw %r2, [%r1+0]',
      'add %r2, 1',
      'stxdw [%r1+0], %r2',
      'mov %r0, 0',
      'exit',
    ].join('\n'),
  );
  if (insns instanceof VmError) throw insns;
  const prog = Program.load(insns, { name: 'count' });
  if (prog instanceof VmError) throw prog;
  const vm = Vm.create({ memory });
  if (vm instanceof VmError) throw vm;
  const runners: Runner[] = [];
  for (const jit of [false, true]) {
    const before = counter.view.getBigUint64(0, true);
    if ((jit ? vm.runJitRaw(prog, 0, 0, 0, 0) : vm.runRaw(prog, 0, 0, 0, 0)) !== 0) throw vm.error;
    if (counter.view.getBigUint64(0, true) !== before + 1n) throw new Error('counting: no count');
    runners.push({
      name: `${jit ? 'jit' : 'interp'} fentry counting program, ${BATCH} runs`,
      insns: vm.executed * BATCH,
      runs: BATCH,
      run: jit
        ? () => {
            for (let i = 0; i < BATCH; i++) vm.runJitRaw(prog, 0, 0, 0, 0);
          }
        : () => {
            for (let i = 0; i < BATCH; i++) vm.runRaw(prog, 0, 0, 0, 0);
          },
    });
  }
  return runners;
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
      runs: 1,
      run: () => void vm.run(prog, base, len),
    });
    if (vm.runJit(prog, base, len) !== 0) throw vm.error;
    if (vm.r0 !== p.result) throw new Error(`${p.name} (jit): r0 = ${vm.r0}, expected ${p.result}`);
    runners.push({
      name: `jit ${p.name}`,
      insns: vm.executed,
      runs: 1,
      run: () => void vm.runJit(prog, base, len),
    });
  }
  return [...runners, ...counting()];
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
      return {
        task: r.name,
        insns: r.insns,
        'ns/insn': Number(((ms * 1e6) / r.insns).toFixed(2)),
        'ns/run': Number(((ms * 1e6) / r.runs).toFixed(1)),
      };
    });
    console.table(rows);
    for (const engine of ['interp', 'jit']) {
      // Over the benchmark programs: a counting run is mostly per-run cost, not instructions.
      const sorted = rows
        .filter((r, i) => r.task.startsWith(`${engine} `) && (runners[i] as Runner).runs === 1)
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
