import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { run } from '../../test/run.js';

// clang-built objects the loader package keeps as its fixtures
const fixture = (name: string) =>
  fileURLToPath(new URL(`../../../../packages/loader/testdata/${name}`, import.meta.url));

describe('tracelab obj', () => {
  it('info lists the programs and maps of a clang-built object, in either byte order', async () => {
    for (const order of ['bpfel', 'bpfeb']) {
      const out = await run(['obj', 'info', fixture(`latency.${order}.o`)]);
      expect(out).toMatch(/^programs: 2$/m);
      expect(out).toMatch(/read_entry\s+fentry\/vfs_read/);
      expect(out).toMatch(/read_exit\s+fexit\/vfs_read/);
      expect(out).toMatch(/^\s+\.rodata\s+array/m);
    }
  });

  it('info --json is machine-readable', async () => {
    const info = JSON.parse(await run(['obj', 'info', fixture('latency.bpfel.o'), '--json']));
    expect(info.license).toBe('GPL');
  });

  it('dump disassembles one section with source lines', async () => {
    const out = await run(['obj', 'dump', fixture('latency.bpfel.o'), 'fexit/vfs_read']);
    expect(out).toContain('Disassembly of section fexit/vfs_read:');
    expect(out).not.toContain('fentry/vfs_read:');
    expect(out).toMatch(/^; .*\[latency\.c:\d+:\d+\]$/m);
    expect(out).toMatch(/^\s+0:\s+\S/m);
  });

  it('names what is wrong with a file that is not an object', async () => {
    await expect(run(['obj', 'info', fixture('latency.c')])).rejects.toThrow(/ELF.*offset 0x0/);
    await expect(run(['obj', 'dump', fixture('latency.bpfel.o'), 'kprobe/none'])).rejects.toThrow(
      /kprobe\/none/,
    );
  });
});
