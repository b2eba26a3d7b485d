// Finds bench files across the workspace, runs them with tinybench, prints one table per package
// and writes bench-results/<package>.json. A bench never fails the build: errors are reported.
//
// A bench file is `<package>/bench/*.bench.ts` and default-exports a function that adds tasks to
// the Bench it is given (it may be async, to prepare data first).
import { mkdirSync, readdirSync, existsSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Bench } from 'tinybench';

type BenchSetup = (bench: Bench) => void | Promise<void>;

const root = resolve(import.meta.dirname, '../..');
const only = process.argv.slice(2);

function benchFiles(): Map<string, string[]> {
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
 * A full GC before each task's warmup and run. Setup allocates enough to start incremental
 * marking, and an allocation-free hot path never allocates enough to finish it: until then every
 * pointer store goes through the write barrier's slow path (13% of an interpreter run, measured),
 * so a task's figure depended on where the previous one left the heap.
 */
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) console.warn('bench: run node with --expose-gc for settled-heap figures');
function settleHeap(): void {
  gc?.();
}

const outDir = join(root, 'bench-results');
mkdirSync(outDir, { recursive: true });
let failures = 0;
for (const [pkg, files] of benchFiles()) {
  const rows: Record<string, unknown>[] = [];
  for (const file of files) {
    const bench = new Bench({ time: 500, warmupTime: 100, setup: settleHeap });
    try {
      const mod = (await import(pathToFileURL(file).href)) as { default: BenchSetup };
      await mod.default(bench);
      await bench.run();
    } catch (err) {
      failures++;
      console.error(`bench ${relative(root, file)} failed: ${(err as Error).message}`);
      continue;
    }
    for (const task of bench.tasks) {
      const r = task.result;
      if (!r || r.state !== 'completed') {
        rows.push({
          file: relative(root, file),
          task: task.name,
          error: String(r?.state ?? 'no result'),
        });
        continue;
      }
      rows.push({
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
      });
    }
  }
  console.log(`\n${pkg}`);
  console.table(rows);
  writeFileSync(
    join(outDir, `${pkg}.json`),
    JSON.stringify(
      { package: pkg, date: new Date().toISOString(), node: process.version, results: rows },
      null,
      2,
    ),
  );
}
if (failures > 0) console.error(`${failures} bench file(s) failed; see above`);
