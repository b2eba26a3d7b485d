import { describe, expect, it } from 'vitest';
import { assemble } from './asm.js';
import { PerfEventArray, RingBuf, StackTraceMap } from './buffers.js';
import { VmError } from './errors.js';
import { type KernelEnv, installHelpers, mapResolver } from './helpers.js';
import {
  BPF_ANY,
  BPF_EXIST,
  BPF_F_INNER_MAP,
  BPF_MAP_TYPE_ARRAY,
  BPF_MAP_TYPE_ARRAY_OF_MAPS,
  BPF_MAP_TYPE_HASH,
  BPF_MAP_TYPE_HASH_OF_MAPS,
  BPF_MAP_TYPE_LRU_HASH,
  BPF_MAP_TYPE_PERCPU_ARRAY,
  BPF_MAP_TYPE_PERCPU_HASH,
  BPF_MAP_TYPE_PERF_EVENT_ARRAY,
  BPF_MAP_TYPE_PROG_ARRAY,
  BPF_MAP_TYPE_RINGBUF,
  BPF_MAP_TYPE_STACK_TRACE,
  BPF_NOEXIST,
  type BpfMap,
  ProgArray,
} from './maps.js';
import { AddressSpace, PROT_READ } from './memory.js';
import { Program } from './program.js';
import { MapTable } from './table.js';
import { Vm } from './vm.js';

const u32 = (n: number): Uint8Array =>
  Uint8Array.of(n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >>> 24);
const u64 = (n: bigint): Uint8Array => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, n, true);
  return b;
};
const readU64 = (b: Uint8Array, off = 0): bigint =>
  new DataView(b.buffer, b.byteOffset).getBigUint64(off, true);

function fakeEnv(over: Partial<KernelEnv> = {}): KernelEnv & { printed: string[] } {
  const printed: string[] = [];
  return {
    // 0x19abcdef0: a high half, and a low half past 2^31.
    ktimeGetNs: (out) => {
      out[0] = 0x9abcdef0 | 0;
      out[1] = 1;
    },
    smpProcessorId: () => 1,
    currentPidTgid: (out) => {
      out[0] = 4243;
      out[1] = 4242;
    },
    currentComm: () => new TextEncoder().encode('bash'),
    currentTask: (out) => {
      out[0] = 0x12340000;
      out[1] = 0xffff8880 | 0;
    },
    stack: (user) =>
      user ? [0x401000n] : [0xffffffff81000010n, 0xffffffff81000200n, 0xffffffff81000300n],
    tracePrintk: (line) => printed.push(line),
    prandomU32: () => 0xdeadbeef,
    printed,
    ...over,
  };
}

function setup(ncpus = 2, env = fakeEnv()) {
  const memory = new AddressSpace();
  const maps = new MapTable(memory, 0xffff888100000000n, ncpus);
  const vm = Vm.create({ memory }) as Vm;
  installHelpers(vm, maps, env);
  const load = (asm: string): Program => {
    const insns = assemble(asm);
    if (insns instanceof VmError) throw insns;
    const p = Program.load(insns, { resolveLddw: mapResolver(maps) });
    if (p instanceof VmError) throw p;
    return p;
  };
  const run = (asm: string | Program, ctx = 0n, jit = false): bigint => {
    const p = typeof asm === 'string' ? load(asm) : asm;
    const rc = jit ? vm.runJit(p, ctx) : vm.run(p, ctx);
    if (rc !== 0) throw vm.error;
    return vm.r0;
  };
  return { memory, maps, vm, load, run, env };
}

function create(
  maps: MapTable,
  type: number,
  keySize: number,
  valueSize: number,
  maxEntries: number,
): BpfMap {
  const m = maps.create({ type, keySize, valueSize, maxEntries });
  if (m instanceof VmError) throw m;
  return m;
}

function errno(x: unknown): string | undefined {
  return x instanceof VmError ? x.code : undefined;
}

describe('map handles', () => {
  it('byHandleHalves finds each map by its handle halves, in any order, and nothing else', () => {
    const { maps } = setup();
    const a = create(maps, BPF_MAP_TYPE_ARRAY, 4, 8, 1);
    const b = create(maps, BPF_MAP_TYPE_ARRAY, 4, 8, 1);
    const halves = (m: BpfMap): [number, number] => [
      Number(m.address >> 32n) | 0,
      Number(m.address & 0xffffffffn) | 0,
    ];
    const [ahi, alo] = halves(a);
    const [bhi, blo] = halves(b);
    // Repeats and alternation: the remembered last answer must never answer for another map.
    for (const [hi, lo, want] of [
      [ahi, alo, a],
      [ahi, alo, a],
      [bhi, blo, b],
      [ahi, alo, a],
      [ahi + 1, alo, undefined],
      [ahi, alo + 8, undefined],
      [bhi, blo, b],
      [bhi >>> 0, blo >>> 0, b],
    ] as const) {
      expect(maps.byHandleHalves(hi, lo)).toBe(want);
    }
  });
});

describe('array maps', () => {
  it('follow the kernel on update flags, delete and bounds', () => {
    const { maps } = setup();
    const a = create(maps, BPF_MAP_TYPE_ARRAY, 4, 8, 4);
    expect(readU64(a.lookup(u32(3)) as Uint8Array)).toBe(0n);
    expect(a.update(u32(3), u64(7n), BPF_ANY)).toBeNull();
    expect(a.update(u32(3), u64(8n), BPF_EXIST)).toBeNull();
    expect(readU64(a.lookup(u32(3)) as Uint8Array)).toBe(8n);
    const cases: [unknown, string][] = [
      [a.update(u32(1), u64(1n), BPF_NOEXIST), 'EEXIST'],
      [a.update(u32(4), u64(1n), BPF_ANY), 'E2BIG'],
      [a.update(u32(1), u64(1n), 9), 'EINVAL'],
      [a.update(u32(1), new Uint8Array(3), BPF_ANY), 'EINVAL'],
      [a.delete(u32(1)), 'EINVAL'],
      [a.lookup(u32(4)), 'ENOENT'],
      [a.lookup(new Uint8Array(2)), 'EINVAL'],
      [a.getNextKey(u32(3)), 'ENOENT'],
    ];
    for (const [res, want] of cases) expect(errno(res)).toBe(want);
    const keys: number[] = [];
    for (let k = a.getNextKey(null); !(k instanceof VmError); k = a.getNextKey(k))
      keys.push(k[0] as number);
    expect(keys).toEqual([0, 1, 2, 3]);
  });

  it('map_lookup_elem takes its key from the stack or any other readable memory', () => {
    const { maps, run } = setup();
    const a = create(maps, BPF_MAP_TYPE_ARRAY, 4, 8, 4);
    expect(a.update(u32(2), u64(3n), BPF_ANY)).toBeNull();
    expect(a.update(u32(3), u64(33n), BPF_ANY)).toBeNull();
    const lookup = (setKey: string): bigint =>
      run(`
        ${setKey}
        r1 = map_fd[${a.id}, 0] ll
        call 1
        if r0 == 0 goto +2
        r0 = *(u64 *)(r0 + 0)
        exit
        r0 = 99
        exit`);
    expect(lookup('*(u32 *)(r10 - 8) = 3\nr2 = r10\nr2 += -8')).toBe(33n);
    // The key is the value of element 2 (a map value, not the stack).
    expect(lookup(`r2 = map_value[${a.id}, 0] ll\nr2 += 16`)).toBe(33n);
    expect(lookup('*(u32 *)(r10 - 4) = 9\nr2 = r10\nr2 += -4')).toBe(99n);
    // A key running past the top of the stack is unreadable: NULL, as for any faulting key.
    expect(lookup('*(u16 *)(r10 - 2) = 3\nr2 = r10\nr2 += -2')).toBe(99n);
  });

  it('percpu arrays give user space one 8-byte-aligned value per CPU and programs their own CPU', () => {
    const { maps, run } = setup(2);
    const a = create(maps, BPF_MAP_TYPE_PERCPU_ARRAY, 4, 4, 2);
    // The fake env runs on CPU 1.
    run(`
      stw [%r10-4], 1
      r1 = map_fd[${a.id}, 0] ll
      r2 = r10
      r2 += -4
      call 1
      if r0 == 0 goto +2
      *(u32 *)(r0 + 0) = 77
      r0 = 0
      exit`);
    const v = a.lookup(u32(1)) as Uint8Array;
    expect(v.length).toBe(16);
    expect([...v]).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 77, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('rejects bad attributes', () => {
    const { maps } = setup();
    expect(
      errno(maps.create({ type: BPF_MAP_TYPE_ARRAY, keySize: 8, valueSize: 8, maxEntries: 1 })),
    ).toBe('EINVAL');
    expect(
      errno(maps.create({ type: BPF_MAP_TYPE_ARRAY, keySize: 4, valueSize: 8, maxEntries: 0 })),
    ).toBe('EINVAL');
    expect(errno(maps.create({ type: 99, keySize: 4, valueSize: 8, maxEntries: 1 }))).toBe(
      'EINVAL',
    );
    expect(
      errno(
        maps.create({ type: BPF_MAP_TYPE_RINGBUF, keySize: 0, valueSize: 0, maxEntries: 5000 }),
      ),
    ).toBe('EINVAL');
  });
});

describe('hash maps', () => {
  it('implement ANY/NOEXIST/EXIST, full maps and deletes with kernel errnos', () => {
    const { maps } = setup();
    const h = create(maps, BPF_MAP_TYPE_HASH, 8, 4, 3);
    expect(h.update(u64(1n), u32(10), BPF_NOEXIST)).toBeNull();
    expect(errno(h.update(u64(1n), u32(11), BPF_NOEXIST))).toBe('EEXIST');
    expect(errno(h.update(u64(2n), u32(11), BPF_EXIST))).toBe('ENOENT');
    expect(h.update(u64(1n), u32(12), BPF_EXIST)).toBeNull();
    expect([...(h.lookup(u64(1n)) as Uint8Array)]).toEqual([12, 0, 0, 0]);
    expect(h.update(u64(2n), u32(20), BPF_ANY)).toBeNull();
    expect(h.update(u64(3n), u32(30), BPF_ANY)).toBeNull();
    expect(errno(h.update(u64(4n), u32(40), BPF_ANY))).toBe('E2BIG');
    expect(h.delete(u64(2n))).toBeNull();
    expect(errno(h.delete(u64(2n)))).toBe('ENOENT');
    expect(errno(h.lookup(u64(2n)))).toBe('ENOENT');
    expect(h.update(u64(4n), u32(40), BPF_ANY)).toBeNull();
    const seen: bigint[] = [];
    for (let k = h.getNextKey(null); !(k instanceof VmError); k = h.getNextKey(k))
      seen.push(readU64(k));
    expect(seen.sort()).toEqual([1n, 3n, 4n]);
    // A key that is not in the map restarts the walk at the first key.
    expect(readU64(h.getNextKey(u64(99n)) as Uint8Array)).toBe(
      readU64(h.getNextKey(null) as Uint8Array),
    );
  });

  it('survive many inserts and deletes (tombstones do not lose keys)', () => {
    const { maps } = setup();
    const h = create(maps, BPF_MAP_TYPE_HASH, 4, 4, 64);
    const model = new Map<number, number>();
    let x = 1;
    for (let step = 0; step < 5000; step++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      const key = x % 100;
      if (x & 0x10000) {
        const r = h.update(u32(key), u32(step), BPF_ANY);
        if (model.has(key) || model.size < 64) {
          expect(r).toBeNull();
          model.set(key, step);
        } else expect(errno(r)).toBe('E2BIG');
      } else {
        expect(errno(h.delete(u32(key)))).toBe(model.delete(key) ? undefined : 'ENOENT');
      }
    }
    for (let key = 0; key < 100; key++) {
      const v = h.lookup(u32(key));
      if (model.has(key))
        expect(new DataView((v as Uint8Array).buffer).getUint32(0, true)).toBe(model.get(key));
      else expect(errno(v)).toBe('ENOENT');
    }
  });

  it('percpu_hash keeps one value per CPU; user updates set all CPUs at once', () => {
    const { maps, run } = setup(2);
    const h = create(maps, BPF_MAP_TYPE_PERCPU_HASH, 4, 4, 4);
    const all = new Uint8Array(16);
    all.set(u32(5), 0);
    all.set(u32(6), 8);
    expect(h.update(u32(1), all, BPF_ANY)).toBeNull();
    expect([...(h.lookup(u32(1)) as Uint8Array)]).toEqual([...all]);
    // The program runs on CPU 1 and sees only that CPU's copy.
    expect(
      run(`
        *(u32 *)(r10 - 4) = 1
        r1 = map_fd[${h.id}, 0] ll
        r2 = r10
        r2 += -4
        call 1
        r0 = *(u32 *)(r0 + 0)
        exit`),
    ).toBe(6n);
  });

  it('lru_hash evicts the least recently used element instead of failing', () => {
    const { maps } = setup();
    const h = create(maps, BPF_MAP_TYPE_LRU_HASH, 4, 4, 2);
    h.update(u32(1), u32(1), BPF_ANY);
    h.update(u32(2), u32(2), BPF_ANY);
    h.lookup(u32(1));
    expect(h.update(u32(3), u32(3), BPF_ANY)).toBeNull();
    expect(errno(h.lookup(u32(2)))).toBe('ENOENT');
    expect(h.lookup(u32(1))).toBeInstanceOf(Uint8Array);
  });

  it('programs count into a hash map with lookup, update and an atomic add', () => {
    const { maps, run } = setup();
    const h = create(maps, BPF_MAP_TYPE_HASH, 4, 8, 16);
    const prog = `
      *(u32 *)(r10 - 4) = 7
      *(u64 *)(r10 - 16) = 1
      r1 = map_fd[${h.id}, 0] ll
      r2 = r10
      r2 += -4
      call 1
      if r0 != 0 goto bump
      r1 = map_fd[${h.id}, 0] ll
      r2 = r10
      r2 += -4
      r3 = r10
      r3 += -16
      r4 = 1
      call 2
      exit
    bump:
      r1 = 1
      lock *(u64 *)(r0 + 0) += r1
      r0 = 0
      exit`;
    for (let k = 0; k < 5; k++) expect(run(prog, 0n, k % 2 === 1)).toBe(0n);
    expect(readU64(h.lookup(u32(7)) as Uint8Array)).toBe(5n);
    // map_update_elem with BPF_NOEXIST on an existing key returns -EEXIST to the program.
    const again = `
      *(u32 *)(r10 - 4) = 7
      *(u64 *)(r10 - 16) = 1
      r1 = map_fd[${h.id}, 0] ll
      r2 = r10
      r2 += -4
      r3 = r10
      r3 += -16
      r4 = 1
      call 2
      exit`;
    expect(BigInt.asIntN(64, run(again))).toBe(-17n);
  });
});

describe('program-side update and delete', () => {
  /** map_update_elem(map, &key, &value, flags) with key and value on the stack; returns r0. */
  const update = (id: number, key: number, value: number, flags: number): string => `
    *(u32 *)(r10 - 4) = ${key}
    r1 = ${value} ll
    *(u64 *)(r10 - 16) = r1
    r1 = map_fd[${id}, 0] ll
    r2 = r10
    r2 += -4
    r3 = r10
    r3 += -16
    r4 = ${flags}
    call 2
    exit`;
  const del = (id: number, key: number): string => `
    *(u32 *)(r10 - 4) = ${key}
    r1 = map_fd[${id}, 0] ll
    r2 = r10
    r2 += -4
    call 3
    exit`;
  const r0 = (run: (asm: string) => bigint, asm: string): number =>
    Number(BigInt.asIntN(64, run(asm)));

  it('hash: the kernel errnos for each flag, a full map, deletes and slot reuse', () => {
    const { maps, run } = setup();
    const h = create(maps, BPF_MAP_TYPE_HASH, 4, 8, 2);
    const steps: [string, string, number][] = [
      ['new key', update(h.id, 1, 10, BPF_ANY), 0],
      ['NOEXIST on an existing key', update(h.id, 1, 11, BPF_NOEXIST), -17],
      ['EXIST on a missing key', update(h.id, 2, 20, BPF_EXIST), -2],
      ['NOEXIST on a missing key', update(h.id, 2, 20, BPF_NOEXIST), 0],
      ['a third key in a map of 2', update(h.id, 3, 30, BPF_ANY), -7],
      ['EXIST on an existing key', update(h.id, 1, 12, BPF_EXIST), 0],
      ['unknown flags', update(h.id, 1, 13, 3), -22],
      ['delete', del(h.id, 2), 0],
      ['delete again', del(h.id, 2), -2],
      ['the freed element is reused', update(h.id, 3, 30, BPF_ANY), 0],
    ];
    for (const [what, asm, want] of steps) expect(r0(run, asm), what).toBe(want);
    expect(readU64(h.lookup(u32(1)) as Uint8Array)).toBe(12n);
    expect(readU64(h.lookup(u32(3)) as Uint8Array)).toBe(30n);
    expect(errno(h.lookup(u32(2)))).toBe('ENOENT');
  });

  it('array, percpu_hash and lru_hash', () => {
    const { maps, run } = setup(2);
    const a = create(maps, BPF_MAP_TYPE_ARRAY, 4, 8, 4);
    expect(r0(run, update(a.id, 1, 5, BPF_ANY))).toBe(0);
    expect(r0(run, update(a.id, 4, 5, BPF_ANY))).toBe(-7);
    expect(r0(run, update(a.id, 1, 6, BPF_NOEXIST))).toBe(-17);
    expect(r0(run, del(a.id, 1))).toBe(-22);
    expect(readU64(a.lookup(u32(1)) as Uint8Array)).toBe(5n);
    // The program runs on CPU 1: only that CPU's value is written, the other starts zeroed.
    const p = create(maps, BPF_MAP_TYPE_PERCPU_HASH, 4, 8, 4);
    expect(r0(run, update(p.id, 9, 99, BPF_ANY))).toBe(0);
    const both = p.lookup(u32(9)) as Uint8Array;
    expect([readU64(both, 0), readU64(both, 8)]).toEqual([0n, 99n]);
    const l = create(maps, BPF_MAP_TYPE_LRU_HASH, 4, 8, 2);
    for (const k of [1, 2, 3]) expect(r0(run, update(l.id, k, k, BPF_ANY))).toBe(0);
    expect(errno(l.lookup(u32(1)))).toBe('ENOENT');
  });

  it('keys outside the stack are read in place; a faulting value is -EFAULT', () => {
    const { maps, run } = setup();
    const a = create(maps, BPF_MAP_TYPE_ARRAY, 4, 8, 1);
    expect(a.update(u32(0), u64(0x2aaaan), BPF_ANY)).toBeNull();
    const h = create(maps, BPF_MAP_TYPE_HASH, 4, 8, 4);
    // The key is the low 4 bytes of the array's value, in the map's own region.
    expect(
      r0(
        run,
        `*(u64 *)(r10 - 16) = 7
        r1 = map_fd[${h.id}, 0] ll
        r2 = map_value[${a.id}, 0] ll
        r3 = r10
        r3 += -16
        r4 = 0
        call 2
        exit`,
      ),
    ).toBe(0);
    expect(readU64(h.lookup(u32(0x2aaaa)) as Uint8Array)).toBe(7n);
    expect(
      r0(
        run,
        `*(u32 *)(r10 - 4) = 1
        r1 = map_fd[${h.id}, 0] ll
        r2 = r10
        r2 += -4
        r3 = 0
        r4 = 0
        call 2
        exit`,
      ),
    ).toBe(-14);
    expect(errno(h.lookup(u32(1)))).toBe('ENOENT');
  });
});

describe('program loading with maps', () => {
  it('resolves map values and rejects unknown fds with the instruction index', () => {
    const { maps, load, run } = setup();
    const a = create(maps, BPF_MAP_TYPE_ARRAY, 4, 16, 1);
    a.update(
      u32(0),
      Uint8Array.from({ length: 16 }, (_, k) => k),
      BPF_ANY,
    );
    expect(run(`r1 = map_value[${a.id}, 8] ll\nr0 = *(u8 *)(r1 + 0)\nexit`)).toBe(8n);
    expect(() => load('r0 = 0\nr1 = map_fd[42, 0] ll\nexit')).toThrow(/EBADF: insn 1: fd 42/);
    expect(() => load(`r1 = map_value[${a.id}, 16] ll\nexit`)).toThrow(
      /insn 0: invalid access to map value/,
    );
  });
});

describe('ring buffer', () => {
  it('reserve/submit/discard and output reach the consumer in order; full rings count lost', () => {
    const { maps, run } = setup();
    const rb = create(maps, BPF_MAP_TYPE_RINGBUF, 0, 0, 4096) as RingBuf;
    const prog = `
      r1 = map_fd[${rb.id}, 0] ll
      r2 = 16
      r3 = 0
      call 131
      if r0 == 0 goto out
      r6 = r0
      r1 = 0x1122334455667788 ll
      *(u64 *)(r6 + 0) = r1
      *(u64 *)(r6 + 8) = r10
      r1 = r6
      r2 = 0
      call 132
      r1 = r6
      r1 = map_fd[${rb.id}, 0] ll
      r2 = 40
      r3 = 0
      call 131
      if r0 == 0 goto out
      r1 = r0
      r2 = 0
      call 133
      *(u32 *)(r10 - 4) = 0xabcd
      r1 = map_fd[${rb.id}, 0] ll
      r2 = r10
      r2 += -4
      r3 = 4
      r4 = 0
      call 130
    out:
      exit`;
    expect(run(prog)).toBe(0n);
    const got: Uint8Array[] = [];
    expect(rb.consume((s) => got.push(s))).toBe(2);
    expect(got.map((s) => s.length)).toEqual([16, 4]);
    expect(readU64(got[0] as Uint8Array)).toBe(0x1122334455667788n);
    expect([...(got[1] as Uint8Array)]).toEqual([0xcd, 0xab, 0, 0]);
    // 4096 bytes hold 170 records of 24 bytes; the rest are lost until consumed.
    const full: number[] = [];
    for (let k = 0; k < 200; k++) full.push(rb.output(new Uint8Array(16).fill(k), 0, 16));
    expect(rb.lost).toBe(200 - 170);
    expect(full.filter((rc) => rc === -11).length).toBe(200 - 170);
    const seen: number[] = [];
    rb.consume((s) => seen.push(s[0] as number));
    expect(seen.length).toBe(170);
    expect(seen[169]).toBe(169);
    // After wrapping, samples still come out whole.
    for (let k = 0; k < 10; k++) expect(rb.output(new Uint8Array(100).fill(k + 1), 0, 100)).toBe(0);
    const wrapped: Uint8Array[] = [];
    rb.consume((s) => wrapped.push(s));
    expect(wrapped.every((s, k) => s.length === 100 && s.every((b) => b === k + 1))).toBe(true);
  });

  it('submitting twice is an error that stops the program', () => {
    const { maps, vm, load } = setup();
    const rb = create(maps, BPF_MAP_TYPE_RINGBUF, 0, 0, 4096);
    const p = load(`
      r1 = map_fd[${rb.id}, 0] ll
      r2 = 8
      r3 = 0
      call 131
      r6 = r0
      r1 = r6
      r2 = 0
      call 132
      r1 = r6
      r2 = 0
      call 132
      exit`);
    expect(vm.run(p)).toBe(-22);
    expect(vm.error?.message).toContain('already committed');
    expect(vm.errorPc).toBe(11);
  });
});

describe('perf event array', () => {
  it('writes per-CPU records, BPF_F_CURRENT_CPU picks this CPU, full buffers count lost', () => {
    const { maps, run } = setup(2);
    const pe = create(maps, BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, 2) as PerfEventArray;
    const prog = (flags: string) => `
      *(u64 *)(r10 - 8) = 42
      r1 = 0
      r2 = map_fd[${pe.id}, 0] ll
      r3 = ${flags} ll
      r4 = r10
      r4 += -8
      r5 = 8
      call 25
      exit`;
    expect(run(prog('0xffffffff'))).toBe(0n);
    expect(run(prog('0'))).toBe(0n);
    expect(BigInt.asIntN(64, run(prog('5')))).toBe(-7n);
    const cpu1 = pe.drain(1);
    expect(cpu1.records.map((r) => readU64(r))).toEqual([42n]);
    expect(pe.drain(0).records.length).toBe(1);
    let lost = 0;
    for (let k = 0; k < 5000; k++) if (pe.output(0, new Uint8Array(64), 0, 64) !== 0) lost++;
    expect(lost).toBeGreaterThan(0);
    expect(pe.drain(0).lost).toBe(lost);
  });
});

describe('map-in-map', () => {
  // outer[key] -> inner; inner[0] += 1; r0 = inner[0], or 1000 + the step that found nothing.
  const bumpInner = (outer: number, key: number) => `
      *(u32 *)(r10 - 4) = ${key}
      r1 = map_fd[${outer}, 0] ll
      r2 = r10
      r2 += -4
      call 1
      if r0 != 0 goto +2
      r0 = 1001
      exit
      *(u32 *)(r10 - 8) = 0
      r1 = r0
      r2 = r10
      r2 += -8
      call 1
      if r0 != 0 goto +2
      r0 = 1002
      exit
      r1 = 1
      lock *(u64 *)(r0 + 0) += r1
      r0 = *(u64 *)(r0 + 0)
      exit`;

  it.each([
    ['array_of_maps', BPF_MAP_TYPE_ARRAY_OF_MAPS, false],
    ['array_of_maps', BPF_MAP_TYPE_ARRAY_OF_MAPS, true],
    ['hash_of_maps', BPF_MAP_TYPE_HASH_OF_MAPS, false],
    ['hash_of_maps', BPF_MAP_TYPE_HASH_OF_MAPS, true],
  ])('%s: a program looks up the outer map, then the inner one (jit %s)', (_, type, jit) => {
    const { maps, run } = setup();
    const a = create(maps, BPF_MAP_TYPE_ARRAY, 4, 8, 2);
    const b = create(maps, BPF_MAP_TYPE_ARRAY, 4, 8, 2);
    const outer = maps.create({ type, keySize: 4, valueSize: 4, maxEntries: 4, innerMapId: a.id });
    if (outer instanceof VmError) throw outer;
    expect(outer.update(u32(1), u32(a.id), BPF_ANY)).toBeNull();
    expect(outer.update(u32(2), u32(b.id), BPF_ANY)).toBeNull();
    expect(run(bumpInner(outer.id, 1), 0n, jit)).toBe(1n);
    expect(run(bumpInner(outer.id, 1), 0n, jit)).toBe(2n);
    expect(run(bumpInner(outer.id, 2), 0n, jit)).toBe(1n);
    expect(readU64(a.lookup(u32(0)) as Uint8Array)).toBe(2n);
    expect(readU64(b.lookup(u32(0)) as Uint8Array)).toBe(1n);
    // An empty slot, a key out of range: the outer lookup gives NULL.
    expect(run(bumpInner(outer.id, 3), 0n, jit)).toBe(1001n);
    expect(run(bumpInner(outer.id, 9), 0n, jit)).toBe(1001n);
    // User space reads back inner map ids and removes them.
    expect(outer.lookup(u32(2))).toEqual(u32(b.id));
    expect(errno(outer.lookup(u32(3)))).toBe('ENOENT');
    expect(outer.delete(u32(2))).toBeNull();
    expect(errno(outer.delete(u32(2)))).toBe('ENOENT');
    expect(run(bumpInner(outer.id, 2), 0n, jit)).toBe(1001n);
  });

  it('inner maps must match the template (bpf_map_meta_equal); creation needs one', () => {
    const { maps } = setup();
    const tmpl = create(maps, BPF_MAP_TYPE_ARRAY, 4, 8, 2);
    const outer = maps.create({
      type: BPF_MAP_TYPE_ARRAY_OF_MAPS,
      keySize: 4,
      valueSize: 4,
      maxEntries: 2,
      innerMapId: tmpl.id,
    });
    if (outer instanceof VmError) throw outer;
    const cases: [string, BpfMap, string | undefined][] = [
      ['other value size', create(maps, BPF_MAP_TYPE_ARRAY, 4, 16, 2), 'EINVAL'],
      ['other type', create(maps, BPF_MAP_TYPE_HASH, 4, 8, 2), 'EINVAL'],
      ['other max_entries of an array', create(maps, BPF_MAP_TYPE_ARRAY, 4, 8, 3), 'EINVAL'],
      ['same shape', create(maps, BPF_MAP_TYPE_ARRAY, 4, 8, 2), undefined],
    ];
    for (const [, inner, code] of cases)
      expect(errno(outer.update(u32(0), u32(inner.id), 0))).toBe(code);
    expect(errno(outer.update(u32(0), u32(999), 0))).toBe('EBADF');
    expect(errno(outer.update(u32(0), u64(1n), 0))).toBe('EINVAL');
    // BPF_F_INNER_MAP lets arrays of other sizes in.
    const flexible = maps.create({
      type: BPF_MAP_TYPE_ARRAY,
      keySize: 4,
      valueSize: 8,
      maxEntries: 2,
      mapFlags: BPF_F_INNER_MAP,
    });
    if (flexible instanceof VmError) throw flexible;
    const outer2 = maps.create({
      type: BPF_MAP_TYPE_HASH_OF_MAPS,
      keySize: 8,
      valueSize: 4,
      maxEntries: 2,
      innerMapId: flexible.id,
    });
    if (outer2 instanceof VmError) throw outer2;
    const big = maps.create({
      type: BPF_MAP_TYPE_ARRAY,
      keySize: 4,
      valueSize: 8,
      maxEntries: 64,
      mapFlags: BPF_F_INNER_MAP,
    });
    if (big instanceof VmError) throw big;
    expect(outer2.update(u64(7n), u32(big.id), 0)).toBeNull();
    const bad: [Parameters<MapTable['create']>[0], string][] = [
      [{ type: BPF_MAP_TYPE_ARRAY_OF_MAPS, keySize: 4, valueSize: 4, maxEntries: 2 }, 'EBADF'],
      [
        {
          type: BPF_MAP_TYPE_ARRAY_OF_MAPS,
          keySize: 4,
          valueSize: 8,
          maxEntries: 2,
          innerMapId: tmpl.id,
        },
        'EINVAL',
      ],
      [
        {
          type: BPF_MAP_TYPE_ARRAY_OF_MAPS,
          keySize: 8,
          valueSize: 4,
          maxEntries: 2,
          innerMapId: tmpl.id,
        },
        'EINVAL',
      ],
      [
        {
          type: BPF_MAP_TYPE_HASH_OF_MAPS,
          keySize: 4,
          valueSize: 4,
          maxEntries: 2,
          innerMapId: outer.id,
        },
        'EINVAL',
      ],
    ];
    for (const [attr, code] of bad) expect(errno(maps.create(attr))).toBe(code);
  });
});

describe('tail calls', () => {
  it('jump through a prog_array, fall through on an empty slot and stop after 33', () => {
    const { maps, run, load } = setup();
    const pa = create(maps, BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 4) as ProgArray;
    const counter = create(maps, BPF_MAP_TYPE_ARRAY, 4, 8, 1);
    const bump = `
      r6 = r1
      *(u32 *)(r10 - 4) = 0
      r1 = map_fd[${counter.id}, 0] ll
      r2 = r10
      r2 += -4
      call 1
      r1 = 1
      lock *(u64 *)(r0 + 0) += r1
      r1 = r6
      r2 = map_fd[${pa.id}, 0] ll
      r3 = 0
      call 12
      r0 = 99
      exit`;
    const self = load(bump);
    expect(pa.set(0, self)).toBeNull();
    expect(run(self)).toBe(99n);
    // The first run plus 33 tail calls, then the 34th attempt falls through.
    expect(readU64(counter.lookup(u32(0)) as Uint8Array)).toBe(34n);
    expect(run(self, 0n, true)).toBe(99n);
    expect(readU64(counter.lookup(u32(0)) as Uint8Array)).toBe(68n);
    expect(run('r2 = map_fd[' + pa.id + ', 0] ll\nr3 = 3\ncall 12\nr0 = 5\nexit')).toBe(5n);
    expect(errno(pa.set(4, self))).toBe('E2BIG');
  });
});

describe('kernel-facing helpers', () => {
  it('probe_read_kernel copies or fails with -EFAULT and a zeroed buffer', () => {
    const { memory, run } = setup();
    memory.map({
      name: 'obj',
      base: 0xffff888000001000n,
      prot: PROT_READ,
      data: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8),
    });
    const prog = (src: string) => `
      *(u64 *)(r10 - 8) = -1
      r1 = r10
      r1 += -8
      r2 = 8
      r3 = ${src} ll
      call 113
      r6 = r0
      r0 = *(u64 *)(r10 - 8)
      if r6 == 0 goto +1
      r0 = r6
      exit`;
    expect(run(prog('0xffff888000001000'))).toBe(0x0807060504030201n);
    expect(BigInt.asIntN(64, run(prog('0xffff888000001004')))).toBe(-14n);
    expect(BigInt.asIntN(64, run(prog('0')))).toBe(-14n);
  });

  it('probe_read_kernel_str stops at NUL or size-1 and returns the length with NUL', () => {
    const { memory, run } = setup();
    memory.map({
      name: 's',
      base: 0x5000n,
      prot: PROT_READ,
      data: new TextEncoder().encode('kworker/0:1\0'),
    });
    const prog = (size: number) => `
      r1 = r10
      r1 += -32
      r2 = ${size}
      r3 = 0x5000 ll
      call 115
      exit`;
    expect(run(prog(32))).toBe(12n);
    expect(run(prog(5))).toBe(5n);
  });

  // The copy helpers copy in place when each end lies whole in one region, and through the
  // address space's general copy otherwise; both must give the kernel's results.
  it('probe_read_kernel across two adjacent regions, and between overlapping stack bytes', () => {
    const { memory, run } = setup();
    memory.map({ name: 'a', base: 0x6000n, prot: PROT_READ, data: Uint8Array.of(1, 2, 3, 4) });
    memory.map({ name: 'b', base: 0x6004n, prot: PROT_READ, data: Uint8Array.of(5, 6, 7, 8) });
    expect(
      run(`
        r1 = r10
        r1 += -8
        r2 = 4
        r3 = 0x6002 ll
        call 113
        if r0 != 0 goto +1
        r0 = *(u32 *)(r10 - 8)
        exit`),
    ).toBe(0x06050403n);
    // Source and destination overlap in the stack: the bytes move as memmove moves them.
    expect(
      run(`
        r1 = 0x0807060504030201 ll
        *(u64 *)(r10 - 16) = r1
        r1 = r10
        r1 += -14
        r2 = 8
        r3 = r10
        r3 += -16
        call 113
        r0 = *(u64 *)(r10 - 16)
        exit`),
    ).toBe(0x0605040302010201n);
  });

  it('probe_read_kernel_str follows a string into the next region, and faults past the last', () => {
    const { memory, run } = setup();
    const enc = new TextEncoder();
    memory.map({ name: 'h', base: 0x7000n, prot: PROT_READ, data: enc.encode('kwor') });
    memory.map({ name: 't', base: 0x7004n, prot: PROT_READ, data: enc.encode('ker\0') });
    memory.map({ name: 'x', base: 0x9000n, prot: PROT_READ, data: enc.encode('abc') });
    const prog = (src: string, tail: string) => `
      *(u64 *)(r10 - 16) = -1
      r1 = r10
      r1 += -16
      r2 = 16
      r3 = ${src} ll
      call 115
      ${tail}
      exit`;
    expect(run(prog('0x7000', ''))).toBe(8n);
    expect(run(prog('0x7000', 'r0 = *(u64 *)(r10 - 16)'))).toBe(0x72656b726f776bn);
    // 'abc' runs into unmapped memory before a NUL: -EFAULT, and the destination starts with NUL.
    expect(BigInt.asIntN(64, run(prog('0x9000', '')))).toBe(-14n);
    expect(run(prog('0x9000', 'r0 = *(u8 *)(r10 - 16)'))).toBe(0n);
    // A NULL source faults at once: the same result.
    expect(BigInt.asIntN(64, run(prog('0', '')))).toBe(-14n);
    expect(run(prog('0', 'r0 = *(u8 *)(r10 - 16)'))).toBe(0n);
  });

  it('probe_read_kernel of a NULL pointer zeroes the whole destination', () => {
    const { run } = setup();
    expect(
      run(`
        *(u64 *)(r10 - 8) = -1
        r1 = r10
        r1 += -8
        r2 = 6
        r3 = 0
        call 113
        r0 = *(u64 *)(r10 - 8)
        exit`),
    ).toBe(0xffff_0000_0000_0000n);
  });

  it('get_current_comm NUL-terminates within size and zero-fills the rest', () => {
    const env = fakeEnv({ currentComm: () => new TextEncoder().encode('kworker/u16:2-events') });
    const { run } = setup(2, env);
    const prog = (size: number) => `
      r1 = -1
      *(u64 *)(r10 - 24) = r1
      *(u64 *)(r10 - 16) = r1
      *(u64 *)(r10 - 8) = r1
      r1 = r10
      r1 += -24
      r2 = ${size}
      call 16
      r0 = *(u64 *)(r10 - ${size > 16 ? 8 : 24})
      exit`;
    // size 4: three bytes and a NUL; the bytes past size are left alone.
    expect(run(prog(4))).toBe(0xffffffff_006f776bn);
    // size 24: 15 comm bytes, a NUL and zeros up to size.
    expect(run(prog(24))).toBe(0n);
  });

  it('pid/tgid, comm, cpu, time, task, prandom and trace_printk come from the kernel env', () => {
    const env = fakeEnv();
    const { run } = setup(2, env);
    expect(run('call 14\nexit')).toBe((4242n << 32n) | 4243n);
    expect(run('call 8\nexit')).toBe(1n);
    expect(run('call 5\nexit')).toBe(0x19abcdef0n);
    expect(run('call 35\nexit')).toBe(0xffff888012340000n);
    expect(run('call 7\nexit')).toBe(0xdeadbeefn);
    expect(run('r1 = r10\nr1 += -16\nr2 = 16\ncall 16\nr0 = *(u64 *)(r10 - 16)\nexit')).toBe(
      0x68736162n,
    );
    run(`
      *(u64 *)(r10 - 16) = 0
      r1 = 0x7525206425 ll
      *(u64 *)(r10 - 16) = r1
      r1 = r10
      r1 += -16
      r2 = 8
      r3 = -5
      r4 = 7
      call 6
      exit`);
    expect(env.printed).toEqual(['-5 7']);
  });

  it('get_stackid gives equal stacks one id, get_stack copies ips', () => {
    const { maps, run } = setup();
    const st = create(maps, BPF_MAP_TYPE_STACK_TRACE, 4, 8 * 4, 64) as StackTraceMap;
    const prog = `
      r1 = 0
      r2 = map_fd[${st.id}, 0] ll
      r3 = 0
      call 27
      exit`;
    const id = run(prog);
    expect(run(prog)).toBe(id);
    const v = st.lookup(u32(Number(id))) as Uint8Array;
    expect([readU64(v, 0), readU64(v, 8), readU64(v, 16), readU64(v, 24)]).toEqual([
      0xffffffff81000010n,
      0xffffffff81000200n,
      0xffffffff81000300n,
      0n,
    ]);
    expect(
      run('r1 = 0\nr2 = r10\nr2 += -16\nr3 = 16\nr4 = 1\ncall 67\nr0 = *(u64 *)(r10 - 16)\nexit'),
    ).toBe(0xffffffff81000200n);
  });
});

describe('bpf_loop', () => {
  const prog = `
      *(u64 *)(r10 - 8) = 0
      r6 = 66
      r1 = 10
      r2 = func[11, 0] ll
      r3 = r10
      r3 += -8
      r4 = 0
      call 181
      r7 = r0
      r0 = *(u64 *)(r10 - 8)
      r0 <<= 8
      r0 |= r7
      r0 += r6
      exit
      *(u64 *)(r10 - 8) = 1000
      r6 = 0
      r3 = *(u64 *)(r2 + 0)
      r3 += r1
      *(u64 *)(r2 + 0) = r3
      r0 = 0
      if r1 != 6 goto +1
      r0 = 1
      exit`;
  for (const jit of [false, true]) {
    it(`calls the callback in its own frame until it returns 1 (${jit ? 'jit' : 'interpreter'})`, () => {
      const { vm, load } = setup();
      const p = load(prog);
      expect(jit ? vm.runJit(p) : vm.run(p)).toBe(0);
      // sum 0..6 = 21 over 7 calls; r6 = 66 survives the callback clobbering its own r6.
      expect(vm.r0).toBe((21n << 8n) + 7n + 66n);
    });

    it(`rejects flags and too many loops (${jit ? 'jit' : 'interpreter'})`, () => {
      const { vm, load } = setup();
      const bad = (nr: string, flags: number) =>
        load(
          `r1 = ${nr} ll\nr2 = func[4, 0] ll\nr3 = 0\nr4 = ${flags}\ncall 181\nexit\nr0 = 0\nexit`,
        );
      for (const [p, want] of [
        [bad('1', 1), -22n],
        [bad('0x800001', 0), -7n],
        [bad('3', 0), 3n],
      ] as const) {
        expect(jit ? vm.runJit(p) : vm.run(p)).toBe(0);
        expect(BigInt.asIntN(64, vm.r0)).toBe(want);
      }
    });
  }

  it('rejects a function pointer outside the program at load time', () => {
    const { load } = setup();
    expect(() => load('r2 = func[40, 0] ll\nexit')).toThrow(/insn 0: function pointer to insn 41/);
  });
});
