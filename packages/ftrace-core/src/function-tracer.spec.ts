import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { HARDIRQ_OFFSET, Kernel, KernelImage, type Cpu } from '@tracelab/kernel';
import { node } from '../test/helpers.js';
import { Ftrace } from './ftrace.js';
import { FunctionTracer, latencyFlags, traceCtx } from './function-tracer.js';

const golden = readFileSync(
  new URL('./testdata/function-trace.golden.txt', import.meta.url),
  'utf8',
);

function setup(options: { bufferSizeKb?: number; overwrite?: boolean } = {}) {
  const image = KernelImage.builtin('x86_64') as KernelImage;
  const kernel = new Kernel({ image, cpus: 2 });
  const ft = Ftrace.attach(kernel) as Ftrace;
  const bash = kernel.createTask('bash', { pid: 1977, cpu: 0 });
  const cat = kernel.createTask('cat', { pid: 2001, cpu: 1 });
  if (bash instanceof Error || cat instanceof Error) throw new Error('tasks');
  const [c0, c1] = kernel.cpus as [Cpu, Cpu];
  kernel.switchTo(c0, bash);
  kernel.switchTo(c1, cat);
  const tracer = new FunctionTracer(ft, options);
  const workload = (): void => {
    kernel.run(
      c0,
      node(image, {
        fn: 'ksys_read',
        cost: 3_000_000,
        calls: [
          { fn: 'vfs_read', cost: 2_000_000, calls: [{ fn: 'rw_verify_area', cost: 500_000 }] },
        ],
      }),
    );
    kernel.run(
      c1,
      node(image, {
        fn: 'ksys_write',
        cost: 2_000_000,
        calls: [{ fn: 'vfs_write', cost: 1_000_000 }],
      }),
    );
    c0.preemptCount += HARDIRQ_OFFSET;
    kernel.run(c0, node(image, { fn: 'hrtimer_interrupt', cost: 10_000 }));
    c0.preemptCount -= HARDIRQ_OFFSET;
  };
  return { kernel, ft, tracer, workload };
}

describe('the function tracer', () => {
  it('prints the trace file line for line as the hand-written golden file', () => {
    const { tracer, workload } = setup();
    expect(tracer.start()).toBeNull();
    workload();
    expect(tracer.readTrace()).toBe(golden);
  });

  it('trace_pipe gives the same lines without the header and consumes them', () => {
    const { tracer, workload } = setup();
    tracer.start();
    workload();
    const body = golden.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    expect(tracer.readTracePipe()).toBe(`${body.join('\n')}\n`);
    expect(tracer.readTracePipe()).toBe('');
    // Consumed entries leave both counts, as ring_buffer_entries_cpu subtracts what was read.
    expect(tracer.readTrace()).toContain('# entries-in-buffer/entries-written: 0/0   #P:2\n');
  });

  it('honours the filter, tracing_on, and nop', () => {
    const { tracer, workload, kernel } = setup();
    expect(tracer.setFilter('vfs_read vfs_write')).toBeNull();
    expect(tracer.readFilter()).toBe('vfs_read\nvfs_write\n');
    tracer.start();
    workload();
    const lines = tracer.readTracePipe().trimEnd().split('\n');
    expect(lines.map((l) => l.split(': ')[1])).toEqual([
      'vfs_write <-ksys_write',
      'vfs_read <-ksys_read',
    ]);
    tracer.tracingOn = false;
    workload();
    expect(tracer.readTracePipe()).toBe('');
    tracer.tracingOn = true;
    expect(tracer.stop()).toBeNull();
    expect(kernel.decodeEntry(kernel.image.indexOf('vfs_read'))).toMatchObject({ kind: 'nop' });
    workload();
    expect(tracer.readTracePipe()).toBe('');
  });

  it('counts what a small buffer overwrote, and reports it in trace_pipe', () => {
    const { tracer, kernel } = setup({ bufferSizeKb: 1 });
    tracer.start();
    const cpu = kernel.cpus[0] as Cpu;
    kernel.run(cpu, node(kernel.image, { fn: 'vfs_read', repeat: 40 }));
    expect(tracer.readTrace()).toContain('# entries-in-buffer/entries-written: 32/40   #P:2\n');
    const pipe = tracer.readTracePipe().split('\n');
    expect(pipe[0]).toBe('CPU:0 [LOST 8 EVENTS]');
    expect(pipe.filter((l) => l.includes('vfs_read'))).toHaveLength(32);
    expect(tracer.setBufferSizeKb(0)?.code).toBe('EINVAL');
    expect(tracer.setBufferSizeKb(2)).toBeNull();
    expect(tracer.bufferSizeKb).toBe(2);
  });

  it('drops the newest entries with overwrite off', () => {
    const { tracer, kernel } = setup({ bufferSizeKb: 1, overwrite: false });
    tracer.start();
    kernel.run(kernel.cpus[0] as Cpu, node(kernel.image, { fn: 'vfs_read', repeat: 40 }));
    expect(tracer.readTrace()).toContain('entries-in-buffer/entries-written: 32/32 ');
    expect(tracer.buffer.dropped[0]).toBe(8);
  });
});

describe('latency flags', () => {
  it.each([
    [0, '.....'],
    [3, '...3.'],
    [0x100, '..s..'],
    [0x200, 'b....'],
    [0x10000, 'd.h..'],
    [0x10100, 'd.H..'],
    [0x100000, 'd.z..'],
    [0x110000, 'd.Z..'],
  ])('preempt count %s -> %s', (pc, want) => {
    expect(latencyFlags(traceCtx(pc))).toBe(want);
  });
});
