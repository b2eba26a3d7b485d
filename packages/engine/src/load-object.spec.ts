import { BPF_MAP_TYPE_ARRAY } from '@tracelab/vm';
import { describe, expect, it } from 'vitest';
import { BpfLoadError } from './bpf.js';
import { engine, fixture, ok } from '../test/helpers.js';

const u32 = (n: number): Uint8Array => new Uint8Array(new Uint32Array([n]).buffer);

describe('Bpf.loadObject', () => {
  it.each(['bpfel', 'bpfeb'])(
    '%s: global data reaches the engine maps in its order (latency .data, .rodata)',
    (order) => {
      const e = engine();
      const obj = ok(e.bpf.loadObject(fixture(`latency.${order}.o`)));
      // latency.c: `__u64 samples = 7;` is the first variable of .data.
      const data = ok(e.bpf.mapLookup(obj.maps.get('.data') ?? -1, u32(0)));
      expect(new DataView(data.buffer, data.byteOffset).getBigUint64(0, true)).toBe(7n);
      expect(obj.programs.map((p) => p.log)).toEqual(
        obj.programs.map(() => expect.stringMatching(/^processed \d+ insns/m)),
      );
    },
  );

  it('map-in-map: outer maps get fds and hold the inner maps the object names', () => {
    const e = engine();
    const obj = ok(e.bpf.loadObject(fixture('mapinmap.bpfel.o')));
    const id = (name: string): Uint8Array => u32(ok(e.bpf.map(obj.maps.get(name) ?? -1)).id);
    const byIndex = obj.maps.get('by_index') ?? -1;
    expect(ok(e.bpf.mapLookup(byIndex, u32(0)))).toEqual(id('cpu_stats'));
    expect(ok(e.bpf.mapLookup(byIndex, u32(2)))).toEqual(id('io_stats'));
    expect(ok(e.bpf.mapLookup(obj.maps.get('by_id') ?? -1, u32(5)))).toEqual(id('io_stats'));
    expect(obj.programs.map((p) => p.name)).toEqual(['bump_by_index', 'bump_by_id']);
  });

  it('a rejected program is the verifier errno and log, and leaves no fd behind', () => {
    const e = engine();
    const r = e.bpf.loadObject(fixture('rejected.bpfel.o'), { programs: ['count_unchecked'] });
    expect(r).toBeInstanceOf(BpfLoadError);
    const err = r as BpfLoadError;
    expect(err.code).toBe('EACCES');
    expect(err.message).toBe("count_unchecked: R0 invalid mem access 'map_value_or_null'");
    expect(err.log).toContain("R0 invalid mem access 'map_value_or_null'");
    const fd = ok(
      e.bpf.mapCreate({ type: BPF_MAP_TYPE_ARRAY, keySize: 4, valueSize: 8, maxEntries: 1 }),
    );
    expect(fd).toBe(3);
  });

  it("typed ksyms resolve against the kernel's BTF: a VAR it lacks is ENOENT naming it", () => {
    const r = engine().bpf.loadObject(fixture('ksym.bpfel.o'));
    expect(r).toBeInstanceOf(BpfLoadError);
    expect((r as BpfLoadError).code).toBe('ENOENT');
    expect((r as BpfLoadError).message).toContain(
      "extern (var ksym) 'init_task': not found in kernel BTF",
    );
  });
});
