import { describe, expect, it } from 'vitest';
import { BtfError } from './error.js';
import { BtfBuilder } from './write.js';

/** struct sock_common / sock / task_struct in miniature, laid out by the builder. */
function kernelish() {
  const b = new BtfBuilder();
  const int = b.int('int', 4, { signed: true });
  const u16 = b.int('unsigned short', 2);
  const u8 = b.int('unsigned char', 1);
  const uint = b.int('unsigned int', 4);
  const pidT = b.typedef('pid_t', int);
  const ch = b.int('char', 1, { signed: true, char: true });
  const comm = b.array(ch, 16);
  const task = b.reserve();
  const taskPtr = b.ptr(task);
  const anonU = b.union('', [
    { name: 'skc_hash', type: uint },
    { name: 'skc_u16hashes', type: b.array(u16, 2) },
  ]);
  const skc = b.struct('sock_common', [
    { name: 'skc_daddr', type: uint },
    { name: '', type: anonU },
    { name: 'skc_family', type: u16 },
    { name: 'skc_state', type: b.volatile(u8) },
    { name: 'skc_reuse', type: u8, bitfieldSize: 4 },
    { name: 'skc_reuseport', type: u8, bitfieldSize: 1 },
  ]);
  const sock = b.struct('sock', [
    { name: '__sk_common', type: skc },
    { name: 'sk_owner', type: taskPtr },
  ]);
  b.set(
    task,
    b.layout('struct', 'task_struct', [
      { name: 'state', type: uint },
      { name: 'flags', type: b.int('unsigned long', 8) },
      { name: 'pid', type: pidT },
      { name: 'tgid', type: pidT },
      { name: 'comm', type: comm },
      { name: 'parent', type: taskPtr },
    ]),
  );
  const packed = b.struct(
    'packed',
    [
      { name: 'c', type: u8 },
      { name: 'x', type: int, bitsOffset: 8 },
    ],
    5,
  );
  const loopA = b.reserve();
  const loopB = b.typedef('loop_b', loopA);
  b.set(loopA, { kind: 'typedef', name: 'loop_a', type: loopB });
  return { btf: b.build(), ids: { int, pidT, task, sock, skc, comm, packed, loopA, u8 } };
}

describe('type graph queries', () => {
  const { btf, ids } = kernelish();

  it.each([
    ['task_struct.state', 0, 0],
    ['task_struct.flags', 64, 0],
    ['task_struct.pid', 128, 0],
    ['task_struct.tgid', 160, 0],
    ['task_struct.comm', 192, 0],
    ['task_struct.comm[3]', 192 + 24, 0],
    ['task_struct.parent', 320, 0],
    ['sock_common.skc_hash', 32, 0],
    ['sock_common.skc_u16hashes[1]', 48, 0],
    ['sock_common.skc_family', 64, 0],
    ['sock_common.skc_state', 80, 0],
    ['sock_common.skc_reuse', 88, 4],
    ['sock_common.skc_reuseport', 92, 1],
    ['sock.__sk_common.skc_family', 64, 0],
    ['sock.sk_owner', 128, 0],
  ] as const)('%s is at bit %d (bitfield %d)', (path, bits, bitfield) => {
    const loc = btf.offsetOf(path);
    expect(loc.bitsOffset).toBe(bits);
    expect(loc.bitfieldSize).toBe(bitfield);
    expect(loc.byteOffset).toBe(Math.floor(bits / 8));
  });

  it('gives the member type', () => {
    expect(btf.offsetOf('task_struct.pid').type).toBe(ids.pidT);
    expect(btf.resolve(btf.offsetOf('task_struct.pid').type)).toBe(ids.int);
  });

  it.each([
    ['task_struct.nope', 'ENOENT'],
    ['nope.pid', 'ENOENT'],
    ['task_struct.pid.x', 'EINVAL'],
    ['task_struct.comm[16]', 'EINVAL'],
    ['task_struct.pid[0]', 'EINVAL'],
    ['task_struct.1bad', 'EINVAL'],
    ['sock_common.skc_reuse.x', 'EINVAL'],
    ['task_struct', 'EINVAL'],
  ] as const)('%s fails with %s', (path, errno) => {
    expect(() => btf.offsetOf(path)).toThrow(BtfError);
    try {
      btf.offsetOf(path);
    } catch (e) {
      expect((e as BtfError).code).toBe(errno);
    }
  });

  it('computes sizes and alignments like C', () => {
    expect(btf.sizeOf(ids.task)).toBe(48);
    expect(btf.alignOf(ids.task)).toBe(8);
    expect(btf.sizeOf(ids.comm)).toBe(16);
    expect(btf.alignOf(ids.comm)).toBe(1);
    expect(btf.sizeOf(ids.skc)).toBe(12);
    expect(btf.alignOf(ids.skc)).toBe(4);
    expect(btf.sizeOf(ids.sock)).toBe(24);
    expect(btf.alignOf(ids.packed)).toBe(1);
    expect(btf.sizeOf(ids.pidT)).toBe(4);
  });

  it('detects typedef loops instead of hanging', () => {
    expect(() => btf.resolve(ids.loopA)).toThrow(/loop/);
    expect(() => btf.sizeOf(ids.loopA)).toThrow(/loop/);
  });

  it('looks up by name and kind through the index', () => {
    expect(btf.find('task_struct', 'struct')).toBe(ids.task);
    expect(btf.find('task_struct', 'union')).toBeUndefined();
    expect(btf.find('pid_t', 'typedef')).toBe(ids.pidT);
    expect(btf.idsByName('unsigned char')).toEqual([ids.u8]);
    expect(btf.get('int', 'int')).toBe(ids.int);
    expect(() => btf.get('missing', 'func')).toThrow(/ENOENT/);
  });

  it.each([
    ['task_struct', 16, 4, 'pid', 128, 0, false],
    ['task_struct', 17, 1, 'pid', 128, 0, true],
    ['task_struct', 27, 1, 'comm[3]', 216, 0, false],
    ['task_struct', 40, 8, 'parent', 320, 0, false],
    ['sock', 8, 2, '__sk_common.skc_family', 64, 0, false],
    ['sock_common', 4, 4, 'skc_hash', 32, 0, false],
    ['sock_common', 6, 2, 'skc_hash', 32, 0, true],
    ['sock_common', 11, 1, 'skc_reuse', 88, 4, true],
    ['sock', 16, 8, 'sk_owner', 128, 0, false],
  ] as const)(
    'memberAt(%s, off %d, size %d) -> %s',
    (root, off, size, path, bits, bitfield, partial) => {
      const id = btf.get(root, 'struct');
      expect(btf.memberAt(id, off, size)).toMatchObject({
        path,
        bitsOffset: bits,
        bitfieldSize: bitfield,
        partial,
      });
    },
  );

  it.each([
    ['task_struct', 48, 1, 'access beyond struct'],
    ['task_struct', 14, 4, "crosses member 'flags'"],
    ['task_struct', 5, 1, 'no member of struct'],
  ] as const)('memberAt(%s, off %d, size %d) fails: %s', (root, off, size, text) => {
    expect(() => btf.memberAt(btf.get(root, 'struct'), off, size)).toThrow(text);
  });
});

describe('name index', () => {
  it('finds a later type of the wanted kind when the first of that name has another kind', () => {
    const b = new BtfBuilder();
    b.typedef('thing', b.int('int', 4, { signed: true }));
    const s = b.struct('thing', []);
    const fresh = b.build();
    // The first lookup on a fresh Btf builds the index and then walks the chain.
    expect(fresh.find('thing', 'struct')).toBe(s);
    expect(b.build().idsByName('thing')).toEqual([s - 1, s]);
  });
});
