import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { VmError } from './errors.js';
import { AddressSpace, MemFault, PROT_EXEC, PROT_READ, PROT_WRITE, isMemFault } from './memory.js';

interface Fixture {
  regions: { name: string; base: string; size: number; prot: string }[];
  cases: {
    what: string;
    op: 'load' | 'store';
    addr: string;
    size: 1 | 2 | 4 | 8;
    fault: string | null;
  }[];
}

const fixture = JSON.parse(
  readFileSync(new URL('./testdata/memory-accesses.json', import.meta.url), 'utf8'),
) as Fixture;

function prot(s: string): number {
  return (
    (s[0] === 'r' ? PROT_READ : 0) |
    (s[1] === 'w' ? PROT_WRITE : 0) |
    (s[2] === 'x' ? PROT_EXEC : 0)
  );
}

function fixtureSpace(options = {}): AddressSpace {
  const as = new AddressSpace(options);
  for (const r of fixture.regions) {
    const res = as.map({ name: r.name, base: BigInt(r.base), size: r.size, prot: prot(r.prot) });
    expect(res).not.toBeInstanceOf(VmError);
  }
  return as;
}

describe('AddressSpace accesses', () => {
  const as = fixtureSpace();
  for (const c of fixture.cases) {
    it(c.what, () => {
      const res =
        c.op === 'load'
          ? as.load(BigInt(c.addr), c.size)
          : as.store(BigInt(c.addr), c.size, 0x1234n);
      if (c.fault === null) {
        expect(isMemFault(res)).toBe(false);
      } else {
        expect(res).toBeInstanceOf(MemFault);
        const f = res as MemFault;
        expect(f.kind).toBe(c.fault);
        expect(f.addr).toBe(BigInt(c.addr));
        expect(f.size).toBe(c.size);
        expect(f.access).toBe(c.op === 'load' ? 'read' : 'write');
        expect(f.message).toContain(BigInt(c.addr).toString(16));
      }
    });
  }
});

describe('AddressSpace values', () => {
  it('stores and loads little-endian values of every size', () => {
    const data = new Uint8Array(16);
    const as = new AddressSpace();
    as.map({ name: 'd', base: 0xffff888000001000n, prot: PROT_READ | PROT_WRITE, data });
    expect(as.store(0xffff888000001000n, 8, 0x0102030405060708n)).toBeUndefined();
    expect([...data.subarray(0, 8)]).toEqual([8, 7, 6, 5, 4, 3, 2, 1]);
    expect(as.load(0xffff888000001000n, 1)).toBe(8n);
    expect(as.load(0xffff888000001000n, 2)).toBe(0x0708n);
    expect(as.load(0xffff888000001000n, 4)).toBe(0x05060708n);
    expect(as.load(0xffff888000001004n, 4)).toBe(0x01020304n);
    // Stores truncate to their size and do not touch neighbours.
    as.store(0xffff888000001008n, 2, 0xabcdefn);
    expect([...data.subarray(8, 11)]).toEqual([0xef, 0xcd, 0]);
  });

  it('round-trips random u64 values at random offsets', () => {
    const as = new AddressSpace();
    as.map({ name: 'd', base: 0x10000n, size: 256, prot: PROT_READ | PROT_WRITE });
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        fc.integer({ min: 0, max: 248 }),
        (v, off) => {
          expect(as.store(0x10000n + BigInt(off), 8, v)).toBeUndefined();
          expect(as.load(0x10000n + BigInt(off), 8)).toBe(v);
        },
      ),
    );
  });

  it('reads and writes byte ranges across adjacent regions', () => {
    const as = new AddressSpace();
    as.map({ name: 'a', base: 0x1000n, size: 4, prot: PROT_READ | PROT_WRITE });
    as.map({ name: 'b', base: 0x1004n, size: 4, prot: PROT_READ | PROT_WRITE });
    expect(as.write(0x1002n, Uint8Array.of(1, 2, 3, 4))).toBeUndefined();
    expect([...(as.read(0x1000n, 8) as Uint8Array)]).toEqual([0, 0, 1, 2, 3, 4, 0, 0]);
    const f = as.read(0x1006n, 4);
    expect(f).toBeInstanceOf(MemFault);
    expect((f as MemFault).addr).toBe(0x1008n);
  });

  it('writes nothing when part of the range faults', () => {
    const data = new Uint8Array(4);
    const as = new AddressSpace();
    as.map({ name: 'a', base: 0x1000n, prot: PROT_READ | PROT_WRITE, data });
    expect(as.write(0x1002n, Uint8Array.of(9, 9, 9, 9))).toBeInstanceOf(MemFault);
    expect([...data]).toEqual([0, 0, 0, 0]);
  });

  it('reads C strings up to NUL or the limit', () => {
    const as = new AddressSpace();
    as.map({
      name: 's',
      base: 0x1000n,
      prot: PROT_READ,
      data: new TextEncoder().encode('bash\0xyz'),
    });
    expect(new TextDecoder().decode(as.readCString(0x1000n, 16) as Uint8Array)).toBe('bash');
    expect(new TextDecoder().decode(as.readCString(0x1000n, 2) as Uint8Array)).toBe('ba');
    expect(as.readCString(0x1005n, 16)).toBeInstanceOf(MemFault);
  });
});

describe('AddressSpace mapping', () => {
  it('rejects overlaps, bad sizes and unknown regions with errno values', () => {
    const as = fixtureSpace();
    const cases: [() => unknown, string][] = [
      [() => as.map({ name: 'x', base: 0x100fn, size: 2, prot: PROT_READ }), 'EEXIST'],
      [() => as.map({ name: 'x', base: 0x5000n, size: 0, prot: PROT_READ }), 'EINVAL'],
      [() => as.map({ name: 'x', base: 0xfffffffffffffff0n, size: 32, prot: PROT_READ }), 'EINVAL'],
      [() => as.map({ name: 'x', base: 0x5000n, size: 4, prot: 8 }), 'EINVAL'],
      [
        () =>
          as.map({ name: 'x', base: 0x5000n, size: 4, prot: PROT_READ, data: new Uint8Array(3) }),
        'EINVAL',
      ],
      [() => as.unmap(0x1234n), 'ENOENT'],
      [() => as.protect(0x1234n, PROT_READ), 'ENOENT'],
    ];
    for (const [op, errno] of cases) {
      const res = op();
      expect(res).toBeInstanceOf(VmError);
      expect((res as VmError).code).toBe(errno);
    }
  });

  it('finds regions by address and stops translating unmapped ones', () => {
    const as = fixtureSpace();
    expect(as.regionAt(0xffffffff81000fffn)?.name).toBe('text');
    expect(as.regionAt(0xffffffff81001000n)).toBeUndefined();
    expect(as.load(0x1000n, 4)).toBe(0n);
    expect(as.unmap(0x1000n)).not.toBeInstanceOf(VmError);
    expect((as.load(0x1000n, 4) as MemFault).kind).toBe('unmapped');
  });

  it('protect changes what an access may do', () => {
    const as = fixtureSpace();
    expect(as.store(0x1000n, 1, 1n)).toBeInstanceOf(MemFault);
    as.protect(0x1000n, PROT_READ | PROT_WRITE);
    expect(as.store(0x1000n, 1, 1n)).toBeUndefined();
  });

  it('faults misaligned accesses only in strict-alignment mode', () => {
    expect(isMemFault(fixtureSpace().load(0xffff888000000001n, 4))).toBe(false);
    const strict = fixtureSpace({ strictAlignment: true });
    expect((strict.load(0xffff888000000001n, 4) as MemFault).kind).toBe('misaligned');
    expect(isMemFault(strict.load(0xffff888000000004n, 4))).toBe(false);
  });

  it('translate alternating between regions sees unmap and protect of each', () => {
    const as = new AddressSpace();
    for (const [name, base] of [
      ['a', 0x10000n],
      ['b', 0x20000n],
      ['c', 0x30000n],
    ] as const) {
      expect(as.map({ name, base, size: 0x100, prot: PROT_READ | PROT_WRITE })).not.toBeInstanceOf(
        VmError,
      );
    }
    for (let round = 0; round < 3; round++) {
      for (const [lo, name] of [
        [0x10008, 'a'],
        [0x20010, 'b'],
        [0x30018, 'c'],
        [0x20020, 'b'],
      ] as const) {
        expect(as.translate(0, lo, 8, PROT_WRITE)).toBe(lo & 0xff);
        expect(as.hit?.name).toBe(name);
      }
    }
    // b and a are the two remembered regions now; neither may outlive a change.
    as.protect(0x10000n, PROT_READ);
    expect(as.translate(0, 0x20000, 8, PROT_READ)).toBe(0);
    expect(as.translate(0, 0x10000, 8, PROT_WRITE)).toBe(-1);
    expect(as.fault?.kind).toBe('permission');
    expect(as.translate(0, 0x20000, 8, PROT_READ)).toBe(0);
    expect(as.translate(0, 0x10000, 8, PROT_READ)).toBe(0);
    as.unmap(0x20000n);
    expect(as.translate(0, 0x20000, 8, PROT_READ)).toBe(-1);
    expect(as.fault?.kind).toBe('unmapped');
    expect(as.translate(0, 0x100f8, 16, PROT_READ)).toBe(-1);
    expect(as.translate(0, 0x300f8, 8, PROT_READ)).toBe(0xf8);
  });

  it('translate of a region across a 4 GiB line does not match addresses 4 GiB below it', () => {
    // The fast path compares low halves mod 2^32: 0x1_00000004 is 260 bytes past
    // 0x1_ffffff00 that way, though it lies 4 GiB below the region.
    const as = new AddressSpace();
    expect(
      as.map({ name: 'x', base: 0x1_ffffff00n, size: 0x200, prot: PROT_READ }),
    ).not.toBeInstanceOf(VmError);
    expect(as.translate(1, 0xffffff10, 8, PROT_READ)).toBe(0x10);
    expect(as.translate(1, 0x00000004, 8, PROT_READ)).toBe(-1);
    expect(as.fault?.kind).toBe('unmapped');
    // Above the line the high half differs, and the slow path finds the offset.
    expect(as.translate(2, 0x00000010, 8, PROT_READ)).toBe(0x110);
    expect(as.translate(1, 0xffffff10, 8, PROT_READ)).toBe(0x10);
  });

  // Region.offsetOf is the int32 test translate's fast path and the helpers' stack-key path share.
  // Halves are given as a caller has them: uint32s (kernel addresses are 2^31 and up) or int32s.
  it.each([
    ['base', 0xffff8880, 0x00001000, 8, 0],
    ['last 8 bytes', 0xffff8880, 0x00001ff8, 8, 0xff8],
    ['int32 halves', 0xffff8880 | 0, 0x00001ff8, 8, 0xff8],
    ['one byte past the end', 0xffff8880, 0x00001ff9, 8, -1],
    ['just below the base', 0xffff8880, 0x00000ff8, 8, -1],
    ['another high half', 0xffff8881, 0x00001000, 8, -1],
    ['2 GiB above (negative as int32)', 0xffff8880, 0x80001000, 8, -1],
  ] as const)('Region.offsetOf: %s', (_name, hi, lo, size, want) => {
    const as = new AddressSpace();
    const r = as.map({ name: 'k', base: 0xffff8880_00001000n, size: 0x1000, prot: PROT_READ });
    if (r instanceof VmError) throw r;
    expect(r.offsetOf(hi, lo, size)).toBe(want);
  });

  it('Region.offsetOf never matches in a region across a 4 GiB line (fastSize 0)', () => {
    const as = new AddressSpace();
    const r = as.map({ name: 'x', base: 0x1_ffffff00n, size: 0x200, prot: PROT_READ });
    if (r instanceof VmError) throw r;
    expect(r.offsetOf(1, 0xffffff10, 8)).toBe(-1);
    expect(r.offsetOf(1, 0x00000004, 8)).toBe(-1);
  });

  it('translate reports the offset and region without allocating a fault', () => {
    const as = fixtureSpace();
    const off = as.translate(0xffff8880, 0x10, 8, PROT_READ);
    expect(off).toBe(0x10);
    expect(as.hit?.name).toBe('data');
    expect(as.translate(0, 0x10, 1, PROT_READ)).toBe(-1);
    expect(as.fault?.kind).toBe('unmapped');
  });
});
