// Prints whether V8's ArrayBufferDetaching protector is intact in this process after loading the
// tracing stack and running a traced call. Run it with the package scripts' node flags plus
// --allow-natives-syntax; `--detach` detaches a buffer first (the control case).
//
// While no ArrayBuffer of the isolate has ever been detached, optimized code indexes typed
// arrays without checking for detachment. One detach anywhere in the process (a transfer, or a
// WebAssembly.Memory growing) brings the check back into every typed-array access of every hot
// path from then on. tsx's CommonJS hook does that on the main thread: its module lexer is
// WebAssembly, and its memory grows while lexing a CommonJS package such as yaml. That made the
// traced call 10-15% slower in the bench than in compiled code on plain node, so the scripts
// load tsx's ESM hooks only (`--import tsx/esm`), which run on a thread of their own.
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

type Task = { name: string; fn: () => unknown };
type Status = (f: unknown) => number;

const BENCH = resolve(import.meta.dirname, '../../packages/trampoline/bench/trampoline.bench.ts');
const TASK = 'x86_64: 1000 vfs_read calls, fentry counting (interpreter)';
// V8's optimization status bit for code optimized by TurboFan.
const TURBOFANNED = 1 << 4;

function natives(): {
  status: Status;
  prepare: (f: unknown) => void;
  optimize: (f: unknown) => void;
} {
  try {
    return {
      status: new Function('f', 'return %GetOptimizationStatus(f)') as Status,
      prepare: new Function('f', '%PrepareFunctionForOptimization(f)') as (f: unknown) => void,
      optimize: new Function('f', '%OptimizeFunctionOnNextCall(f)') as (f: unknown) => void,
    };
  } catch {
    throw new Error('detach-probe needs node --allow-natives-syntax');
  }
}

const tasks: Task[] = [];
const collector = {
  add(name: string, fn: () => unknown) {
    tasks.push({ name, fn });
    return collector;
  },
};
const mod = (await import(pathToFileURL(BENCH).href)) as { default: (b: unknown) => unknown };
await mod.default(collector);
const task = tasks.find((t) => t.name === TASK);
if (task === undefined) throw new Error(`${BENCH} has no task '${TASK}'`);
for (let i = 0; i < 200; i++) task.fn();

if (process.argv.includes('--detach')) {
  const b = new ArrayBuffer(8);
  structuredClone(b, { transfer: [b] });
}

// Code that indexes a typed array without the check depends on the protector: detaching a
// buffer deoptimizes it if, and only if, the protector was intact until then.
const { status, prepare, optimize } = natives();
const words = new Int32Array(16);
const sum = (a: Int32Array): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s = (s + (a[i] as number)) | 0;
  return s;
};
prepare(sum);
sum(words);
sum(words);
optimize(sum);
sum(words);
if ((status(sum) & TURBOFANNED) === 0) throw new Error('detach-probe: the probe was not optimized');
const b = new ArrayBuffer(8);
structuredClone(b, { transfer: [b] });
console.log((status(sum) & TURBOFANNED) === 0 ? 'intact' : 'invalidated');
