import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  TOKEN_PATTERN,
  TRACE_BATCH_MAGIC,
  TraceEventBatchSchema,
  TracelabError,
  decodeTraceBatch,
  encodeTraceBatch,
  type TraceEvent,
  type TraceEventBatch,
} from './index.js';

// Valid batches, drawn from what the zod schemas accept; small pools make strings repeat, as
// comm and function names do in a real trace.
const nat = fc.maxSafeNat();
const text = fc.oneof(fc.string({ unit: 'binary' }), fc.constantFrom('vfs_read', 'ksys_read', ''));
const u64 = fc.oneof(
  fc.stringMatching(/^(0|[1-9][0-9]{0,19})$/),
  fc.constantFrom('18446744071562067968', '0'),
);
const comm = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 16 }).filter((s) => s.length <= 16),
  fc.constantFrom('bash', 'swapper/0'),
);
const head = { ts: nat, cpu: nat, pid: nat, comm };
const optional = { requiredKeys: ['type', 'ts', 'cpu', 'pid', 'comm'] as const };
const event: fc.Arbitrary<TraceEvent> = fc.oneof(
  fc.record({
    type: fc.constant('function' as const),
    ...head,
    ip: u64,
    parentIp: u64,
    func: text,
    parent: text,
  }),
  fc.record({ type: fc.constant('funcgraph_entry' as const), ...head, func: text, depth: nat }),
  fc.record(
    {
      type: fc.constant('funcgraph_exit' as const),
      ...head,
      func: text,
      depth: nat,
      calltime: nat,
      retval: u64,
    },
    { requiredKeys: [...optional.requiredKeys, 'func', 'depth', 'calltime'] },
  ),
  fc.record(
    {
      type: fc.constant('probe' as const),
      ...head,
      event: text,
      fields: fc.dictionary(
        fc.oneof(text, fc.constant('__proto__')),
        fc.oneof(text, fc.double({ noNaN: true, noDefaultInfinity: true })),
        { noNullPrototype: true },
      ),
      group: text,
      ip: u64,
      retIp: u64,
    },
    { requiredKeys: [...optional.requiredKeys, 'event', 'fields'] },
  ),
  fc.record({
    type: fc.constant('record' as const),
    ...head,
    base64: fc.uint8Array({ maxLength: 24 }).map((b) => Buffer.from(b).toString('base64')),
  }),
  fc.record({ type: fc.constant('text' as const), ...head, text }),
);
const batch: fc.Arbitrary<TraceEventBatch> = fc.record({
  agentId: fc.stringMatching(TOKEN_PATTERN),
  stream: fc.constantFrom('trace', 'trace_pipe', 'ringbuf', 'perf', 'printk'),
  firstSeq: nat,
  events: fc.array(event, { maxLength: 20 }),
  lost: nat,
});

function encoded(b: TraceEventBatch): Uint8Array {
  const bytes = encodeTraceBatch(b);
  if (bytes instanceof TracelabError) throw bytes;
  return bytes;
}

/** A message laid out by hand from the format's documentation, field by field. */
function message(parts: (['u8' | 'u32' | 'f64', number] | string)[]): Uint8Array {
  const chunks = parts.map((p) => {
    if (typeof p === 'string') return new TextEncoder().encode(p);
    const [kind, v] = p;
    const b = new Uint8Array(kind === 'u8' ? 1 : kind === 'u32' ? 4 : 8);
    const view = new DataView(b.buffer);
    if (kind === 'u8') view.setUint8(0, v);
    else if (kind === 'u32') view.setUint32(0, v, true);
    else view.setFloat64(0, v, true);
    return b;
  });
  return new Uint8Array(Buffer.concat(chunks));
}

// m1/trace, firstSeq 7, lost 2, one function event. Strings: m1 sh 18446744071562067968 0
// vfs_read ksys_read (42 bytes from byte 56); the event starts at byte 98: tag 98, ts 99, cpu 107,
// pid 115, comm 123, ip 127, parentIp 131, func 135, parent 139; the message is 143 bytes.
const handMade = (over: { version?: number; ts?: number; comm?: string } = {}) => {
  const comm = over.comm ?? 'sh';
  const strings = ['m1', comm, '18446744071562067968', '0', 'vfs_read', 'ksys_read'];
  const ends: ['u32', number][] = [];
  let end = 0;
  for (const s of strings) ends.push(['u32', (end += new TextEncoder().encode(s).length)]);
  return message([
    ['u8', TRACE_BATCH_MAGIC],
    ['u8', over.version ?? 1],
    ['u8', 0],
    ['u8', 0],
    ['u32', 1],
    ['f64', 7],
    ['f64', 2],
    ['u32', strings.length],
    ['u32', end],
    ...ends,
    ...strings,
    ['u8', 0],
    ['f64', over.ts ?? 10],
    ['f64', 1],
    ['f64', 42],
    ['u32', 1],
    ['u32', 2],
    ['u32', 3],
    ['u32', 4],
    ['u32', 5],
  ]);
};
const handMadeBatch: TraceEventBatch = {
  agentId: 'm1',
  stream: 'trace',
  firstSeq: 7,
  lost: 2,
  events: [
    {
      type: 'function',
      ts: 10,
      cpu: 1,
      pid: 42,
      comm: 'sh',
      ip: '18446744071562067968',
      parentIp: '0',
      func: 'vfs_read',
      parent: 'ksys_read',
    },
  ],
};

function error(result: TraceEventBatch | TracelabError): TracelabError {
  expect(result).toBeInstanceOf(TracelabError);
  return result as TracelabError;
}

describe('trace batch codec', () => {
  it('round-trips every valid batch, and what it decodes satisfies the zod schema', () => {
    fc.assert(
      fc.property(batch, (b) => {
        expect(TraceEventBatchSchema.safeParse(b).success).toBe(true);
        const decoded = decodeTraceBatch(encoded(b));
        expect(decoded).toEqual(b);
        expect(TraceEventBatchSchema.safeParse(decoded).error).toBeUndefined();
      }),
      { numRuns: 300 },
    );
  });

  it('sends each distinct string once', () => {
    const events = Array.from({ length: 100 }, () => handMadeBatch.events[0] as TraceEvent);
    const one = encoded(handMadeBatch).length;
    // 100 events add only their fixed 45-byte records: no string is repeated
    expect(encoded({ ...handMadeBatch, events }).length).toBe(one + 99 * 45);
  });

  it('reads the documented layout, and writes it', () => {
    expect(decodeTraceBatch(handMade())).toEqual(handMadeBatch);
    expect(encoded(handMadeBatch)).toEqual(handMade());
  });

  it('keeps reading batches sent as JSON', () => {
    const json = new TextEncoder().encode(JSON.stringify(handMadeBatch));
    expect(decodeTraceBatch(json)).toEqual(handMadeBatch);
    const broken = error(decodeTraceBatch(new TextEncoder().encode('{')));
    expect(broken.code).toBe('EINVAL');
    expect(broken.message).toMatch(/not JSON/);
    const bad = { ...handMadeBatch, events: [{ ...handMadeBatch.events[0], cpu: -1 }] };
    const invalid = error(decodeTraceBatch(new TextEncoder().encode(JSON.stringify(bad))));
    expect(invalid.code).toBe('EINVAL');
    expect(invalid.details?.path).toEqual(['events', 0, 'cpu']);
  });

  const patch = (at: number, kind: 'u8' | 'u32' | 'f64', v: number, bytes = handMade()) => {
    const copy = bytes.slice();
    const view = new DataView(copy.buffer);
    if (kind === 'u8') view.setUint8(at, v);
    else if (kind === 'u32') view.setUint32(at, v, true);
    else view.setFloat64(at, v, true);
    return copy;
  };
  const cases: [string, Uint8Array, string, number, (string | number)[]][] = [
    ['an unknown version', handMade({ version: 2 }), 'EPROTO', 1, []],
    ['an unknown stream tag', patch(2, 'u8', 9), 'EPROTO', 2, ['stream']],
    ['more events than a batch may hold', patch(4, 'u32', 65537), 'EINVAL', 4, ['events']],
    ['more events than the bytes hold', patch(4, 'u32', 2), 'EPROTO', 4, ['events']],
    ['a negative firstSeq', patch(8, 'f64', -7), 'EINVAL', 8, ['firstSeq']],
    ['a string ending past the table', patch(52, 'u32', 100), 'EPROTO', 52, []],
    ['a string that is not UTF-8', patch(58, 'u8', 0xff), 'EPROTO', 58, []],
    ['an agent id the schema refuses', patch(57, 'u8', 0x2e), 'EINVAL', 56, ['agentId']],
    ['an unknown event type', patch(98, 'u8', 6), 'EPROTO', 98, ['events', 0, 'type']],
    ['a negative time', handMade({ ts: -1 }), 'EINVAL', 99, ['events', 0, 'ts']],
    ['a fractional time', handMade({ ts: 1.5 }), 'EINVAL', 99, ['events', 0, 'ts']],
    [
      'a 17-character comm',
      handMade({ comm: 'x'.repeat(17) }),
      'EINVAL',
      138,
      ['events', 0, 'comm'],
    ],
    ['a string index past the table', patch(127, 'u32', 6), 'EPROTO', 127, ['events', 0, 'ip']],
    ['an address that is no u64', patch(127, 'u32', 1), 'EINVAL', 127, ['events', 0, 'ip']],
    ['a truncated event', handMade().subarray(0, 142), 'EPROTO', 139, ['events', 0, 'parent']],
    ['a byte after the last event', new Uint8Array([...handMade(), 0]), 'EPROTO', 143, []],
  ];
  it.each(cases)(
    'refuses %s with the code, byte offset and field',
    (_, bytes, code, offset, path) => {
      const err = error(decodeTraceBatch(bytes));
      expect(err.code).toBe(code);
      expect(err.details).toEqual({ offset, path });
      expect(err.message).toContain(`byte ${offset}`);
      if (path.length > 0) expect(err.message).toContain(path.join('.').replace('.0.', '[0].'));
    },
  );

  it('refuses to encode a string UTF-8 cannot carry, naming the field', () => {
    const lone = { ...handMadeBatch, events: [{ ...handMadeBatch.events[0], func: 'a\uD800' }] };
    const err = encodeTraceBatch(lone as TraceEventBatch);
    expect(err).toBeInstanceOf(TracelabError);
    expect((err as TracelabError).code).toBe('EINVAL');
    expect((err as TracelabError).details?.path).toEqual(['events', 0, 'func']);
  });
});

describe('trace batch decoder on hostile input', () => {
  /** Never a throw: a batch the schema accepts, or EPROTO/EINVAL pointing into the message. */
  function check(bytes: Uint8Array): void {
    const result = decodeTraceBatch(bytes);
    if (result instanceof TracelabError) {
      expect(['EPROTO', 'EINVAL']).toContain(result.code);
      expect(result.message).toMatch(/^invalid trace batch/);
      const offset = result.details?.offset;
      if (offset !== undefined) {
        expect(Number.isInteger(offset)).toBe(true);
        expect(offset).toBeGreaterThanOrEqual(0);
        expect(offset).toBeLessThanOrEqual(bytes.length);
      }
    } else expect(TraceEventBatchSchema.safeParse(result).error).toBeUndefined();
  }

  it('survives random bytes, with and without the binary header', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (tail, binary) => {
        check(binary ? new Uint8Array([TRACE_BATCH_MAGIC, 1, ...tail]) : tail);
      }),
      { numRuns: 2000 },
    );
  });

  it('survives valid batches with bytes overwritten, cut off or appended', () => {
    const mutation = fc.oneof(
      fc.record({
        kind: fc.constant('set' as const),
        at: fc.nat(),
        byte: fc.integer({ min: 0, max: 255 }),
      }),
      fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('append' as const), byte: fc.integer({ min: 0, max: 255 }) }),
    );
    fc.assert(
      fc.property(batch, fc.array(mutation, { minLength: 1, maxLength: 4 }), (b, mutations) => {
        let bytes = encoded(b);
        for (const m of mutations) {
          if (m.kind === 'append') bytes = new Uint8Array([...bytes, m.byte]);
          else if (bytes.length === 0) continue;
          else if (m.kind === 'cut') bytes = bytes.subarray(0, m.at % bytes.length);
          else {
            bytes = bytes.slice();
            bytes[m.at % bytes.length] = m.byte;
          }
        }
        check(bytes);
      }),
      { numRuns: 1000 },
    );
  });
});
