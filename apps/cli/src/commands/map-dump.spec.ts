import { BtfBuilder } from '@tracelab/btf';
import { TracelabError } from '@tracelab/contracts';
import { Engine } from '@tracelab/engine';
import { BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_PERCPU_HASH } from '@tracelab/vm';
import { describe, expect, it } from 'vitest';
import { EmbeddedTarget } from '../target/embedded.js';
import { formatMap, hexBytes } from './map-dump.js';

function engine(): Engine {
  const e = Engine.create({ cpus: 2 });
  if (e instanceof TracelabError) throw e;
  return e;
}

function ok<T>(v: T): Exclude<T, Error> {
  if (v instanceof Error) throw v;
  return v as Exclude<T, Error>;
}

/** Little-endian bytes of `size`-byte integers, concatenated. */
function le(...parts: [bigint, number][]): Uint8Array {
  const out: number[] = [];
  for (const [v, size] of parts)
    for (let i = 0; i < size; i++)
      out.push(Number((BigInt.asUintN(64, v) >> BigInt(8 * i)) & 0xffn));
  return Uint8Array.from(out);
}

describe('hexBytes', () => {
  it.each([
    { n: 4, want: '00 01 02 03' },
    { n: 9, want: '00 01 02 03 04 05 06 07  08' },
    { n: 17, want: '00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f\n10' },
  ])('$n bytes: groups of 8, lines of 16 (bpftool fprint_hex)', ({ n, want }) => {
    expect(hexBytes(Uint8Array.from({ length: n }, (_, i) => i))).toBe(want);
  });
});

describe('formatMap', () => {
  it('decodes a struct by its BTF: signed ints, bitfields, a char array, an enum, a pointer', async () => {
    const b = new BtfBuilder();
    const u8 = b.int('unsigned char', 1);
    const int = b.int('int', 4, { signed: true });
    const u32 = b.typedef('u32', b.int('unsigned int', 4));
    const char = b.int('char', 1, { char: true, signed: true });
    const long = b.int('long', 8, { signed: true });
    const state = b.enum('state', [
      ['RUNNING', 0],
      ['SLEEPING', 1],
    ]);
    // struct event { int pid; u8 flag:3, kind:5; char comm[8]; enum state st; long delta; void *ptr; }
    const event = b.struct(
      'event',
      [
        { name: 'pid', type: int, bitsOffset: 0 },
        { name: 'flag', type: u8, bitsOffset: 32, bitfieldSize: 3 },
        { name: 'kind', type: u8, bitsOffset: 35, bitfieldSize: 5 },
        { name: 'comm', type: b.array(char, 8), bitsOffset: 40 },
        { name: 'st', type: state, bitsOffset: 128 },
        { name: 'delta', type: long, bitsOffset: 192 },
        { name: 'ptr', type: b.ptr(0), bitsOffset: 256 },
      ],
      40,
    );
    const btf = b.build();
    const e = engine();
    const fd = ok(
      e.bpf.mapCreate({ type: BPF_MAP_TYPE_HASH, keySize: 4, valueSize: 40, maxEntries: 4 }),
    );
    const value = new Uint8Array(40);
    value.set(le([-5n, 4]), 0);
    value[4] = 5 | (17 << 3); // flag = 5 in bits 0-2, kind = 17 in bits 3-7
    value.set(new TextEncoder().encode('bash'), 5);
    value.set(le([1n, 4]), 16);
    value.set(le([-1000n, 8], [0xffff888100001000n, 8]), 24);
    ok(e.bpf.mapUpdate(fd, le([7n, 4]), value));
    const out = await formatMap(new EmbeddedTarget(e), {
      name: 'events',
      fd,
      btf,
      keyTypeId: u32,
      valueTypeId: event,
    });
    expect(out.split('\n')).toEqual([
      `${fd}: hash  name events  key 4B  value 40B  max_entries 4`,
      'key:',
      '07 00 00 00',
      'value:',
      'fb ff ff ff 8d 62 61 73  68 00 00 00 00 00 00 00',
      '01 00 00 00 00 00 00 00  18 fc ff ff ff ff ff ff',
      '00 10 00 00 81 88 ff ff',
      '{"key": 7, "value": {"pid": -5, "flag": 5, "kind": 17, "comm": "bash", "st": "SLEEPING", "delta": -1000, "ptr": "0xffff888100001000"}}',
      'Found 1 element',
      '',
    ]);
  });

  it('prints a per-CPU element per CPU, in hex and decoded', async () => {
    const b = new BtfBuilder();
    const u64 = b.int('unsigned long long', 8);
    const btf = b.build();
    const e = engine();
    const fd = ok(
      e.bpf.mapCreate({ type: BPF_MAP_TYPE_PERCPU_HASH, keySize: 8, valueSize: 8, maxEntries: 4 }),
    );
    // BPF_MAP_UPDATE_ELEM of a per-CPU map takes one value per CPU
    ok(e.bpf.mapUpdate(fd, le([3n, 8]), le([10n, 8], [20n, 8])));
    const out = await formatMap(new EmbeddedTarget(e), {
      name: 'pc',
      fd,
      btf,
      keyTypeId: u64,
      valueTypeId: u64,
    });
    expect(out).toBe(
      `${fd}: percpu_hash  name pc  key 8B  value 8B  max_entries 4\n` +
        'key:\n03 00 00 00 00 00 00 00\n' +
        'value (CPU 00): 0a 00 00 00 00 00 00 00\n' +
        'value (CPU 01): 14 00 00 00 00 00 00 00\n' +
        '{"key": 3, "values": [{"cpu": 0, "value": 10},{"cpu": 1, "value": 20}]}\n' +
        'Found 1 element\n',
    );
  });

  it('prints hex only for a map without BTF', async () => {
    const e = engine();
    const fd = ok(
      e.bpf.mapCreate({ type: BPF_MAP_TYPE_HASH, keySize: 4, valueSize: 4, maxEntries: 2 }),
    );
    ok(e.bpf.mapUpdate(fd, le([1n, 4]), le([0xdeadbeefn, 4])));
    expect(await formatMap(new EmbeddedTarget(e), { name: 'raw', fd })).toBe(
      `${fd}: hash  name raw  key 4B  value 4B  max_entries 2\nkey: 01 00 00 00  value: ef be ad de\nFound 1 element\n`,
    );
  });
});
