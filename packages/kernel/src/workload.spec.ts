import { readFileSync } from 'node:fs';
import { ARCHES, type ArchName } from '@tracelab/arch-isa';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KernelError } from './errors.js';
import { KernelImage } from './image.js';
import { Kernel } from './machine.js';
import { formatSymbols, kernelInfo, runCompiled, runWorkload, type RunSummary } from './run.js';
import {
  BUILTIN_WORKLOADS,
  builtinWorkload,
  compileWorkload,
  parseWorkload,
  parseWorkloadText,
  replayWorkload,
  type WorkloadSpec,
} from './workload.js';

const bad = JSON.parse(
  readFileSync(new URL('./testdata/bad-workloads.json', import.meta.url), 'utf8'),
) as { name: string; workload: unknown; errno: string; message: string }[];

describe('workload validation', () => {
  it.each(bad)('$name', ({ workload, errno, message }) => {
    const r = runWorkload(workload, { arch: 'x86_64', cpus: 2 });
    expect(r).toBeInstanceOf(KernelError);
    expect((r as KernelError).code).toBe(errno);
    expect((r as KernelError).message).toContain(message);
  });

  it('names the source of a bad file', () => {
    const r = parseWorkload({ name: 1 }, 'net.yaml');
    expect((r as KernelError).message).toMatch(/^EINVAL: net\.yaml: name: /);
  });

  it('reads YAML workload files', () => {
    const text = readFileSync(new URL('./testdata/timer.yaml', import.meta.url), 'utf8');
    const spec = parseWorkloadText(text, 'timer.yaml') as WorkloadSpec;
    expect(spec.tasks[0]?.calls[0]?.args).toEqual([3, 0x7ffd0000, 64]);
    const r = runWorkload(spec, { arch: 'riscv64' }) as RunSummary;
    expect(r.fault).toBeNull();
    // One tick per 10 us of simulated time, checked at call boundaries.
    const ticks = r.topFunctions.find((f) => f.name === 'hrtimer_interrupt')?.calls ?? 0;
    expect(ticks).toBeGreaterThanOrEqual(Math.floor(r.elapsedNs / 10000) - 1);
    expect(ticks).toBeLessThanOrEqual(Math.floor(r.elapsedNs / 10000));
  });

  it.each([
    ['name: [unclosed', 'bad.yaml: '],
    ['name: w\ntasks: 3', 'bad.yaml: tasks: '],
  ])('rejects bad YAML %j naming the file', (text, msg) => {
    const r = parseWorkloadText(text.replace('\\n', '\n'), 'bad.yaml');
    expect((r as KernelError).message).toContain(msg);
  });

  it('unknown built-ins are ENOENT', () => {
    expect((builtinWorkload('nope', 'arm64') as KernelError).code).toBe('ENOENT');
  });
});

/** Runs a workload and records every call and return with CPU, pid, context and clock. */
function record(arch: ArchName, spec: WorkloadSpec, seed: number, cpus: number): string[] {
  const image = KernelImage.builtin(arch);
  if (image instanceof KernelError) throw image;
  const w = compileWorkload(image, spec);
  if (w instanceof KernelError) throw w;
  const k = new Kernel({ image, cpus });
  const log: string[] = [];
  k.observer = {
    onCall: (c, fn) => void log.push(`${c.id} ${c.current?.pid} ${c.context} > ${fn} @${c.clock}`),
    onReturn: (c, fn) =>
      void log.push(`${c.id} ${c.current?.pid} < ${fn} ${c.regs.returnValue()} @${c.clock}`),
    onSwitch: (c, prev, next) => void log.push(`${c.id} ${prev?.pid} => ${next.pid}`),
  };
  const r = runCompiled(k, w, seed);
  if (r instanceof KernelError) throw r;
  expect(r.fault).toBeNull();
  return log;
}

describe('built-in workloads', () => {
  it.each(ARCHES.flatMap((a) => BUILTIN_WORKLOADS.map((w) => [a, w] as const)))(
    '%s %s runs to the end without a fault',
    (arch, name) => {
      const r = runWorkload(name, { arch, cpus: 2, seed: 3 }) as RunSummary;
      expect(r).not.toBeInstanceOf(KernelError);
      expect(r.fault).toBeNull();
      expect(r.calls).toBeGreaterThan(100);
      expect(r.elapsedNs).toBeGreaterThan(0);
      expect(r.tasks.reduce((s, t) => s + t.calls, 0)).toBe(r.calls);
    },
  );

  it('syscalls: several tasks interleave on each CPU', () => {
    const log = record('x86_64', builtinWorkload('syscalls', 'x86_64') as WorkloadSpec, 9, 2);
    expect(log.filter((l) => l.includes('=>')).length).toBeGreaterThan(10);
  });

  it('timer: interrupt-path functions run in hardirq context inside the task', () => {
    const log = record('arm64', builtinWorkload('timer', 'arm64') as WorkloadSpec, 1, 1);
    const image = KernelImage.builtin('arm64') as KernelImage;
    const hr = image.indexOf('hrtimer_interrupt');
    const calls = log.filter((l) => l.includes(`> ${hr} `));
    expect(calls.length).toBeGreaterThan(10);
    expect(calls.every((l) => l.includes(' hardirq '))).toBe(true);
    const read = image.indexOf('ksys_read');
    expect(log.filter((l) => l.includes(`> ${read} `)).every((l) => l.includes(' task '))).toBe(
      true,
    );
  });

  it('net-rx: the softirq runs in softirq context', () => {
    const log = record('riscv64', builtinWorkload('net-rx', 'riscv64') as WorkloadSpec, 1, 1);
    const tcp = (KernelImage.builtin('riscv64') as KernelImage).indexOf('tcp_v4_rcv');
    const calls = log.filter((l) => l.includes(`> ${tcp} `));
    expect(calls.length).toBeGreaterThan(5);
    expect(calls.every((l) => l.includes(' softirq '))).toBe(true);
  });
});

describe('determinism', () => {
  it('a workload with a given seed gives the same calls, returns and times every run', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...ARCHES),
        fc.constantFrom(...BUILTIN_WORKLOADS),
        fc.integer({ min: 0, max: 2 ** 31 }),
        fc.integer({ min: 1, max: 4 }),
        (arch, name, seed, cpus) => {
          const spec = builtinWorkload(name, arch) as WorkloadSpec;
          expect(record(arch, spec, seed, cpus)).toEqual(record(arch, spec, seed, cpus));
        },
      ),
      { numRuns: 8 },
    );
    // Each run simulates thousands of calls twice; a loaded CI machine needs the headroom.
  }, 60_000);

  it('random argument generators follow the seed', () => {
    const spec: WorkloadSpec = {
      name: 'gen',
      tasks: [
        {
          comm: 'g',
          loops: 5,
          calls: [
            {
              fn: 'ksys_read',
              args: [{ random: { min: 0, max: 9 } }, 0, { seq: { start: 100, step: 10 } }],
              repeat: 3,
            },
          ],
        },
      ],
    };
    const args = (seed: number): string[] => {
      const image = KernelImage.builtin('x86_64') as KernelImage;
      const k = new Kernel({ image });
      const out: string[] = [];
      k.observer = { onCall: (c) => void out.push(`${c.regs.read('di')},${c.regs.read('dx')}`) };
      runCompiled(k, compileWorkload(image, spec) as never, seed);
      return out;
    };
    const a = args(5);
    expect(args(5)).toEqual(a);
    expect(a.map((s) => Number(s.split(',')[1]))).toEqual(
      Array.from({ length: 15 }, (_, i) => 100 + (i % 3) * 10),
    );
    expect(a.every((s) => Number(s.split(',')[0]) <= 9)).toBe(true);
    expect(args(6)).not.toEqual(a);
  });
});

describe('replay of a function_graph trace', () => {
  const text = readFileSync(new URL('./testdata/graph-trace.txt', import.meta.url), 'utf8');

  it('rebuilds the call trees with self costs', () => {
    const w = replayWorkload(text) as WorkloadSpec;
    expect(w.cpus).toBe(2);
    const t0 = w.tasks[0]?.calls[0];
    expect(t0?.fn).toBe('ksys_read');
    expect(t0?.cost).toBe(4000 - 318 - 3050);
    expect(t0?.calls?.map((c) => c.fn)).toEqual(['__fdget_pos', 'vfs_read']);
    expect(t0?.calls?.[1]?.cost).toBe(3050 - 250 - 2000);
    expect(w.tasks[1]?.calls[0]).toMatchObject({ fn: 'close_fd', cost: 12206 - 500 });
  });

  it('replays on the kernel: each CPU spends the traced time', () => {
    const r = runWorkload(replayWorkload(text), { arch: 'x86_64' }) as RunSummary;
    expect(r.fault).toBeNull();
    expect(r.cpuClocksNs).toEqual([4000, 12206]);
  });

  it.each([
    [' 0)   |  }', "'}' closes no call"],
    ['garbage', 'line 1: not a function_graph row'],
    [' 0)   |  what is this', "cannot read 'what is this'"],
    ['# only comments', 'no function_graph rows'],
  ])('rejects %j', (input, msg) => {
    const r = replayWorkload(input);
    expect((r as KernelError).message).toContain(msg);
  });
});

describe('CLI helpers', () => {
  it('kernelInfo describes the image', () => {
    const info = kernelInfo('riscv64') as Record<string, unknown>;
    expect(info).toMatchObject({
      arch: 'riscv64',
      wordSize: 8,
      modules: ['ext4', 'kvm', 'nf_conntrack', 'virtio_net'],
    });
    expect(info['functions']).toBe((info['traceable'] as number) + (info['notrace'] as number));
  });

  it('formatSymbols prints kallsyms lines for a glob', () => {
    const lines = formatSymbols('ext4_file_*', 'i386') as string[];
    expect(lines.length).toBe(3);
    for (const l of lines) expect(l).toMatch(/^[0-9a-f]{8} t ext4_file_\w+\t\[ext4\]$/);
    expect(formatSymbols('vfs_read', 'x86_64')).toEqual([
      expect.stringMatching(/^ffffffff81[0-9a-f]{6} T vfs_read$/),
    ]);
  });
});
