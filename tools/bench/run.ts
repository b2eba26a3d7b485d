// Finds bench files across the workspace, runs them with tinybench, prints one table per package
// and writes bench-results/<package>.json. A bench never fails the build: errors are reported.
//
// A bench file is `<package>/bench/*.bench.ts` and default-exports a function that adds tasks to
// the Bench it is given (it may be async, to prepare data first).
//
// Each task runs in a process of its own (as JMH forks per benchmark): V8 optimizes the shared
// code of a traced call (the kernel's call path, ftrace's callers) for the objects and callbacks
// it has seen, so a task measured after other configurations in the same process pays for their
// type feedback (fgraph entry+return measured 25-50% slower after the rows before it). A child
// runs the file's setup, keeps only its task and reports one row; what the setup prints (one-shot
// figures) is shown once, from the first task's child. `--runs N` runs every task N times,
// round by round, and keeps each task's run with the lowest median (for hosts whose neighbours
// slow whole phases). `--shared` runs each file's tasks in one process, as a long-lived process
// tracing many configurations at once would see them.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, existsSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PerformanceObserver, constants as perfConstants, performance } from 'node:perf_hooks';
import { Bench } from 'tinybench';

type BenchSetup = (bench: Bench) => void | Promise<void>;
type Row = Record<string, unknown>;

const root = resolve(import.meta.dirname, '../..');
const ROW_MARK = '\u0000bench-row ';

/**
 * A full GC before each task's warmup and before its run (tinybench calls setup for both). Setup
 * allocates enough to start incremental marking, and an allocation-free hot path never allocates
 * enough to finish it: until then every pointer store goes through the write barrier's slow path
 * (13% of an interpreter run, measured), so a task's figure depended on where the previous one
 * left the heap.
 */
const gc = (globalThis as { gc?: () => void }).gc;

/** How long a task runs, after its warmup, between two settling GCs before it is measured. */
const SETTLE_MS = 200;

/**
 * Before the run: GC, run the task a little longer, GC again. A concurrent compile that lands
 * after the warmup allocates and can start marking that the measured loop never finishes (rows
 * 1.4-1.8x slower at random); the second GC ends any such marking.
 */
async function settleHeap(fn: (() => unknown) | undefined, mode: string): Promise<void> {
  gc?.();
  if (mode !== 'run' || fn === undefined || gc === undefined) return;
  for (const end = performance.now() + SETTLE_MS; performance.now() < end;) {
    const r = fn();
    if (r instanceof Promise) await r;
  }
  gc();
}

function benchFiles(only: readonly string[]): Map<string, string[]> {
  const byPackage = new Map<string, string[]>();
  for (const group of ['packages', 'apps']) {
    const groupDir = join(root, group);
    if (!existsSync(groupDir)) continue;
    for (const pkg of readdirSync(groupDir)) {
      if (only.length > 0 && !only.includes(pkg)) continue;
      const dir = join(groupDir, pkg, 'bench');
      if (!existsSync(dir)) continue;
      const files = readdirSync(dir)
        .filter((f) => f.endsWith('.bench.ts'))
        .map((f) => join(dir, f));
      if (files.length > 0) byPackage.set(pkg, files);
    }
  }
  return byPackage;
}

/**
 * Minor GCs (scavenges) that started in each task's measured run. The traced call allocates
 * nothing, so its rows show 0: a scavenge there means something on the path allocates per call
 * (a boxed double, a copied array), which the timings alone would hide as a few percent.
 */
class GcCounter {
  private readonly starts: number[] = [];
  private readonly observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (
        (e as { detail?: { kind?: number } }).detail?.kind ===
        perfConstants.NODE_PERFORMANCE_GC_MINOR
      )
        this.starts.push(e.startTime);
    }
  });
  private readonly windows = new Map<string, [number, number]>();

  constructor() {
    this.observer.observe({ entryTypes: ['gc'] });
  }

  begin(task: string): void {
    this.windows.set(task, [performance.now(), Infinity]);
  }

  end(task: string): void {
    const w = this.windows.get(task);
    if (w !== undefined) w[1] = performance.now();
  }

  /** The count per task; waits for the observer's queued entries first. */
  async counts(): Promise<Map<string, number>> {
    await new Promise((r) => setTimeout(r, 50));
    this.observer.disconnect();
    const out = new Map<string, number>();
    for (const [task, [from, to]] of this.windows) {
      out.set(task, this.starts.filter((t) => t >= from && t <= to).length);
    }
    return out;
  }
}

function resultRow(file: string, task: Bench['tasks'][number]): Row {
  const r = task.result;
  if (!r || r.state !== 'completed') {
    return { file: relative(root, file), task: task.name, error: String(r?.state ?? 'no result') };
  }
  return {
    file: relative(root, file),
    task: task.name,
    'ops/s': Math.round(r.throughput.mean),
    'mean ns': Number((r.latency.mean * 1e6).toFixed(1)),
    // Median and minimum resist the slow phases a shared VM's neighbours cause; the mean does
    // not. Per-call overheads compare best with best.
    'p50 ns': Number((r.latency.p50 * 1e6).toFixed(1)),
    'min ns': Number((r.latency.min * 1e6).toFixed(1)),
    'p99 ns': Number(((r.latency.p99 ?? r.latency.mean) * 1e6).toFixed(1)),
    samples: r.latency.samplesCount,
  };
}

/**
 * Runs a file's setup and its tasks in this process: all of them, or only the index-th
 * (`count` tells how many the file has).
 */
async function runFile(
  file: string,
  index: number | null,
): Promise<{ rows: Row[]; count: number }> {
  // Warmup long enough for V8's concurrent compiles of the hot path to land before the heap is
  // settled for the run: a compile finishing mid-run allocates, and marking that starts then
  // never finishes under an allocation-free loop (traced rows measured 1.4-1.8x slower so).
  const fns = new Map<string, () => unknown>();
  const gcs = new GcCounter();
  const bench = new Bench({
    time: 500,
    warmupTime: 400,
    setup: async (task, mode) => {
      await settleHeap(task === undefined ? undefined : fns.get(task.name), mode ?? '');
      if (mode === 'run' && task !== undefined) gcs.begin(task.name);
    },
    teardown: (task, mode) => {
      if (mode === 'run' && task !== undefined) gcs.end(task.name);
    },
  });
  let count = 0;
  // Tasks other than the one asked for (if any) are counted and dropped before they ever run.
  const add = bench.add.bind(bench);
  bench.add = (name, fn, opts) => {
    if (index !== null && count++ !== index) return bench;
    fns.set(name, fn);
    return add(name, fn, opts);
  };
  const mod = (await import(pathToFileURL(file).href)) as { default: BenchSetup };
  await mod.default(bench);
  await bench.run();
  const minor = await gcs.counts();
  return {
    rows: bench.tasks.map((t) => ({ ...resultRow(file, t), 'minor GCs': minor.get(t.name) ?? 0 })),
    count: index === null ? bench.tasks.length : count,
  };
}

/** A row's median, Infinity for a task that did not complete. */
function p50(row: Row): number {
  const v = row['p50 ns'];
  return typeof v === 'number' ? v : Infinity;
}

/** One task in a fresh node with this process's flags; its row comes back on a marked line. */
function runChild(
  file: string,
  index: number,
  show: boolean,
): { rows: Row[]; count: number; error?: string } {
  const child = spawnSync(
    process.execPath,
    [...process.execArgv, import.meta.filename, '--task', file, String(index)],
    { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const lines = child.stdout.split('\n');
  const marked = lines.find((l) => l.startsWith(ROW_MARK));
  if (show) {
    const shown = lines.filter((l) => !l.startsWith(ROW_MARK)).join('\n');
    if (shown.trim() !== '') console.log(shown.trimEnd());
  }
  if (marked === undefined) {
    return { rows: [], count: 0, error: `task ${index} exited with status ${child.status}` };
  }
  return JSON.parse(marked.slice(ROW_MARK.length)) as {
    rows: Row[];
    count: number;
    error?: string;
  };
}

async function main(argv: readonly string[]): Promise<number> {
  if (argv[0] === '--task') {
    const [file, index] = [argv[1] as string, Number(argv[2])];
    let out: { rows: Row[]; count: number; error?: string };
    try {
      out = await runFile(file, index);
    } catch (err) {
      out = { rows: [], count: 0, error: (err as Error).message };
    }
    process.stdout.write(`${ROW_MARK}${JSON.stringify(out)}\n`);
    // A setup may leave servers or timers behind; the row is out (pipes write synchronously).
    process.exit(0);
  }
  if (gc === undefined) console.warn('bench: run node with --expose-gc for settled-heap figures');
  const shared = argv.includes('--shared');
  const runsAt = argv.indexOf('--runs');
  const runs = runsAt < 0 ? 1 : Number(argv[runsAt + 1]);
  if (!Number.isInteger(runs) || runs < 1) {
    console.error(`bench: --runs needs a positive integer, got '${argv[runsAt + 1] ?? ''}'`);
    return 2;
  }
  const only = argv.filter(
    (a, i) => a !== '--shared' && (runsAt < 0 || (i !== runsAt && i !== runsAt + 1)),
  );
  const outDir = join(root, 'bench-results');
  mkdirSync(outDir, { recursive: true });
  let failures = 0;
  for (const [pkg, files] of benchFiles(only)) {
    const rows: Row[] = [];
    for (const file of files) {
      const name = relative(root, file);
      if (shared) {
        try {
          rows.push(...(await runFile(file, null)).rows);
        } catch (err) {
          failures++;
          console.error(`bench ${name} failed: ${(err as Error).message}`);
        }
        continue;
      }
      // Rounds go over every task before repeating one, so a slow phase of the host spreads
      // over tasks instead of spoiling all runs of one; each task keeps its lowest median.
      const best: Row[] = [];
      let count = 1;
      rounds: for (let r = 0; r < runs; r++) {
        for (let i = 0; i < count; i++) {
          const out = runChild(file, i, r === 0 && i === 0);
          if (out.error !== undefined) {
            failures++;
            console.error(`bench ${name} failed: ${out.error}`);
            break rounds;
          }
          count = out.count;
          const row = out.rows[0];
          const prev = best[i];
          if (row !== undefined && (prev === undefined || p50(row) < p50(prev))) best[i] = row;
        }
      }
      rows.push(...best.filter((row) => row !== undefined).map((row) => ({ ...row, runs })));
    }
    console.log(`\n${pkg}`);
    console.table(rows);
    writeFileSync(
      join(outDir, `${pkg}.json`),
      JSON.stringify(
        {
          package: pkg,
          date: new Date().toISOString(),
          node: process.version,
          process: shared ? 'shared' : 'per task',
          results: rows,
        },
        null,
        2,
      ),
    );
  }
  if (failures > 0) console.error(`${failures} bench file(s) failed; see above`);
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
