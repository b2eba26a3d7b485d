import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { LoaderError, dumpObject, formatObjectInfo, objectInfo, parseObject } from './index.js';

const fixture = (name: string): Uint8Array =>
  new Uint8Array(readFileSync(new URL(`../testdata/${name}`, import.meta.url)));

describe('obj info', () => {
  it('summarises programs, maps, relocations and BTF', () => {
    const info = objectInfo(fixture('latency.bpfel.o'));
    expect(info.byteOrder).toBe('little');
    expect(info.programs.map((p) => p.name)).toEqual(['read_entry', 'read_exit']);
    expect(info.maps.map((m) => `${m.name}:${m.type}`)).toEqual([
      'start:hash',
      '.rodata:array',
      '.bss:array',
      '.data:array',
    ]);
    // fexit/vfs_read references start (lookup, delete), hist, samples, dropped, in_usecs.
    const kinds = info.relocations.filter((r) => r.section === 'fexit/vfs_read').map((r) => r.kind);
    expect(kinds.filter((k) => k === 'map')).toHaveLength(2);
    expect(kinds.filter((k) => k === 'map_value')).toHaveLength(4);
    expect(info.btf?.funcInfo).toBe(2);
    expect(info.btf?.kinds.DATASEC).toBe(5);
    const text = formatObjectInfo(info);
    expect(text).toContain('read_exit  fexit/vfs_read  TRACING BPF_TRACE_FEXIT -> vfs_read');
    expect(text).toContain('.rodata  array  key 4B  value 5B  max_entries 1  flags 0x480  (data)');
    expect(text).toMatch(/BTF\.ext: 2 func_info, \d+ line_info, 0 CO-RE relocations/);
  });

  it('reports version, externs and CO-RE counts', () => {
    const legacy = formatObjectInfo(objectInfo(fixture('legacy.bpfeb.o')));
    expect(legacy).toContain('byte order: big-endian');
    expect(legacy).toContain('version: 0x60b00');
    const core = objectInfo(fixture('core.bpfel.o'));
    expect(core.externs).toContainEqual({ name: 'CONFIG_HZ', kind: 'kconfig', weak: true });
    expect(core.btf?.coreRelos).toBeGreaterThan(20);
  });
});

describe('obj info with a target BTF', () => {
  it('lists each CO-RE relocation with its result', () => {
    const target = parseObject(fixture('target.bpfel.o')).btf;
    const info = objectInfo(
      fixture('core.bpfel.o'),
      target === undefined ? {} : { targetBtf: target },
    );
    // target.c moved sample.name from 16 to 24 and has no pt_regs at all.
    expect(info.core).toContainEqual(
      expect.objectContaining({
        kind: 'byte_off',
        type: 'sample',
        access: '0:5',
        result: '16 -> 24',
      }),
    );
    expect(info.core.filter((c) => c.type === 'pt_regs').map((c) => c.result)).toEqual([
      'poisoned',
      'poisoned',
    ]);
    expect(formatObjectInfo(info)).toMatch(/<enumval_value>\s+sample_state 1\s+1 -> 9/);
    expect(objectInfo(fixture('core.bpfel.o')).core).toEqual([]);
  });
});

describe('obj dump', () => {
  it('disassembles with function labels, source lines and relocations', () => {
    const text = dumpObject(fixture('loops.bpfel.o'), '.text');
    expect(text).toContain('Disassembly of section .text:');
    expect(text).toMatch(/\nsquare:\n/);
    expect(text).toMatch(/; return x \* x;\s+\[loops\.c:\d+:\d+\]/);
    const sys = dumpObject(fixture('loops.bpfel.o'), 'syscall');
    expect(sys).toMatch(/R_BPF_64_32\s+\S+\s+\(call\)/);
    expect(sys).toMatch(/R_BPF_64_64\s+\S+\s+\(subprog_addr\)/);
  });

  it('annotates CO-RE relocations', () => {
    const text = dumpObject(fixture('ringbuf.bpfel.o'));
    expect(text).toMatch(/CO-RE <byte_off> task_struct 0:\d/);
  });

  it('names a missing section', () => {
    expect(() => dumpObject(fixture('minimal.bpfel.o'), 'nope')).toThrow(LoaderError);
    expect(() => dumpObject(fixture('minimal.bpfel.o'), 'nope')).toThrow(
      /ENOENT: no code section 'nope'/,
    );
  });
});
