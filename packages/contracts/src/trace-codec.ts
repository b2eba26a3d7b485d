import { AgentIdSchema } from './agent.js';
import { TracelabError, formatPath, parseOrThrow, type ErrnoCode } from './errors.js';
import {
  Base64Schema,
  CommSchema,
  MAX_BATCH_EVENTS,
  TraceEventBatchSchema,
  U64Schema,
  type StreamKind,
  type TraceEvent,
  type TraceEventBatch,
} from './events.js';

/*
 * The binary wire encoding of a TraceEventBatch (version 1). JSON costs the agent a stringify and
 * the collector a parse plus a zod walk of every event; this layout is written and read with
 * typed reads, repeated strings (comm, function names, addresses) are sent once, and the decoder
 * checks every string once per batch instead of once per event. The zod schemas stay the model:
 * the decoder returns only what TraceEventBatchSchema accepts.
 *
 * All numbers little-endian; "f64" fields carry integers exactly up to 2^53, "str" is a u32 index
 * into the string table.
 *
 *   0  u8  magic 0xb7 (no JSON text starts with it, so a receiver tells the two apart)
 *   1  u8  version 1
 *   2  u8  stream tag (STREAM_TAGS)
 *   3  u8  0 (reserved)
 *   4  u32 event count
 *   8  f64 firstSeq
 *  16  f64 lost
 *  24  u32 string count N (>= 1; string 0 is the agent id)
 *  28  u32 string bytes B
 *  32  u32 x N: end offset of each string in the UTF-8 blob that follows, non-decreasing
 *      B bytes: the blob
 *      the events, each: u8 type tag (TYPE_TAGS), f64 ts, f64 cpu, f64 pid, str comm, then
 *        function        str ip, str parentIp, str func, str parent
 *        funcgraph_entry str func, f64 depth
 *        funcgraph_exit  str func, f64 depth, f64 calltime, u8 has retval, [str retval]
 *        probe           str event, u8 flags (1 group, 2 ip, 4 retIp), [str group] [str ip]
 *                        [str retIp], u32 field count, per field: str key, u8 kind (0 f64, 1 str),
 *                        the value
 *        record          str base64
 *        text            str text
 *  The events end the message: trailing bytes are an error.
 */

export const TRACE_BATCH_MAGIC = 0xb7;
export const TRACE_BATCH_VERSION = 1;

// Wire tags: append only, never reorder.
const STREAM_TAGS: readonly StreamKind[] = ['trace', 'trace_pipe', 'ringbuf', 'perf', 'printk'];
const TYPE_TAGS: readonly TraceEvent['type'][] = [
  'function',
  'funcgraph_entry',
  'funcgraph_exit',
  'probe',
  'record',
  'text',
];
const HEADER_BYTES = 32;
// type tag, ts, cpu, pid, comm: what the smallest event takes
const MIN_EVENT_BYTES = 1 + 8 * 3 + 4;
const PROBE_GROUP = 1;
const PROBE_IP = 2;
const PROBE_RET_IP = 4;

const utf8 = new TextEncoder();
// fatal: bad UTF-8 is an error, not U+FFFD; ignoreBOM: a string may start with U+FEFF
const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
// with the u flag a surrogate pair is one code point, so this finds only unpaired halves
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** A failure inside the codec, turned into a TracelabError at its entry points. */
class WireFailure {
  constructor(
    readonly code: ErrnoCode,
    readonly reason: string,
    readonly offset: number,
    readonly path: (string | number)[],
  ) {}
}

/** A growable byte buffer, reused between encodes so a batch allocates only its result. */
class Writer {
  bytes = new Uint8Array(1 << 16);
  view = new DataView(this.bytes.buffer);
  pos = 0;

  ensure(n: number): void {
    if (this.pos + n <= this.bytes.length) return;
    const grown = new Uint8Array(Math.max(this.bytes.length * 2, this.pos + n));
    grown.set(this.bytes.subarray(0, this.pos));
    this.bytes = grown;
    this.view = new DataView(grown.buffer);
  }
  u8(v: number): void {
    this.bytes[this.pos++] = v;
  }
  u32(v: number): void {
    this.view.setUint32(this.pos, v, true);
    this.pos += 4;
  }
  f64(v: number): void {
    this.view.setFloat64(this.pos, v, true);
    this.pos += 8;
  }
}

const scratch = new Writer();

/**
 * Encodes a batch in the binary layout above. The input is trusted to be a TraceEventBatch (the
 * receiver validates); the one thing refused is what UTF-8 cannot carry, a string with an unpaired
 * surrogate, which is an EINVAL naming the field (JSON can carry it).
 */
export function encodeTraceBatch(batch: TraceEventBatch): Uint8Array | TracelabError {
  const strings: string[] = [];
  const index = new Map<string, number>();
  let event = -1;
  const str = (s: string, field: Field): number => {
    let i = index.get(s);
    if (i === undefined) {
      if (LONE_SURROGATE.test(s))
        throw new WireFailure('EINVAL', 'an unpaired UTF-16 surrogate', 0, path(event, field));
      i = strings.length;
      strings.push(s);
      index.set(s, i);
    }
    return i;
  };
  const w = scratch;
  w.pos = 0;
  try {
    str(batch.agentId, 'agentId');
    const streamTag = STREAM_TAGS.indexOf(batch.stream);
    if (streamTag < 0) throw new WireFailure('EINVAL', 'unknown stream', 0, ['stream']);
    for (const e of batch.events) {
      event++;
      const tag = TYPE_TAGS.indexOf(e.type);
      if (tag < 0) throw new WireFailure('EINVAL', 'unknown event type', 0, path(event, 'type'));
      // the largest fixed part: funcgraph_exit, 1 + 8 * 3 + 4 + 4 + 8 + 8 + 1 + 4
      w.ensure(62);
      w.u8(tag);
      w.f64(e.ts);
      w.f64(e.cpu);
      w.f64(e.pid);
      w.u32(str(e.comm, 'comm'));
      switch (e.type) {
        case 'function':
          w.u32(str(e.ip, 'ip'));
          w.u32(str(e.parentIp, 'parentIp'));
          w.u32(str(e.func, 'func'));
          w.u32(str(e.parent, 'parent'));
          break;
        case 'funcgraph_entry':
          w.u32(str(e.func, 'func'));
          w.f64(e.depth);
          break;
        case 'funcgraph_exit':
          w.u32(str(e.func, 'func'));
          w.f64(e.depth);
          w.f64(e.calltime);
          w.u8(e.retval === undefined ? 0 : 1);
          if (e.retval !== undefined) w.u32(str(e.retval, 'retval'));
          break;
        case 'probe': {
          w.u32(str(e.event, 'event'));
          w.u8(
            (e.group === undefined ? 0 : PROBE_GROUP) |
              (e.ip === undefined ? 0 : PROBE_IP) |
              (e.retIp === undefined ? 0 : PROBE_RET_IP),
          );
          if (e.group !== undefined) w.u32(str(e.group, 'group'));
          if (e.ip !== undefined) w.u32(str(e.ip, 'ip'));
          if (e.retIp !== undefined) w.u32(str(e.retIp, 'retIp'));
          const keys = Object.keys(e.fields);
          w.ensure(4);
          w.u32(keys.length);
          for (const key of keys) {
            const value = e.fields[key];
            w.ensure(13);
            w.u32(str(key, 'fields'));
            if (typeof value === 'number') {
              w.u8(0);
              w.f64(value);
            } else {
              w.u8(1);
              w.u32(str(value, ['fields', key]));
            }
          }
          break;
        }
        case 'record':
          w.u32(str(e.base64, 'base64'));
          break;
        case 'text':
          w.u32(str(e.text, 'text'));
          break;
      }
    }
    const encoded = strings.map((s) => utf8.encode(s));
    let blob = 0;
    for (const b of encoded) blob += b.length;
    const out = new Uint8Array(HEADER_BYTES + 4 * strings.length + blob + w.pos);
    const view = new DataView(out.buffer);
    out[0] = TRACE_BATCH_MAGIC;
    out[1] = TRACE_BATCH_VERSION;
    out[2] = streamTag;
    view.setUint32(4, batch.events.length, true);
    view.setFloat64(8, batch.firstSeq, true);
    view.setFloat64(16, batch.lost, true);
    view.setUint32(24, strings.length, true);
    view.setUint32(28, blob, true);
    let at = HEADER_BYTES + 4 * strings.length;
    let end = 0;
    encoded.forEach((b, i) => {
      end += b.length;
      view.setUint32(HEADER_BYTES + 4 * i, end, true);
      out.set(b, at);
      at += b.length;
    });
    out.set(w.bytes.subarray(0, w.pos), at);
    return out;
  } catch (err) {
    if (err instanceof WireFailure)
      return new TracelabError(
        err.code,
        `cannot encode trace batch: ${formatPath(err.path)}: ${err.reason}`,
        { path: err.path },
      );
    throw err;
  }
}

/** A field of an event (or of the batch, before the first event): a name or a path under it. */
type Field = string | readonly string[];

function path(event: number, field: Field): (string | number)[] {
  const rest = typeof field === 'string' ? [field] : field;
  return event < 0 ? [...rest] : ['events', event, ...rest];
}

/** The schema's `.int().nonnegative()`: a safe integer, so a f64 carries it exactly. */
function isNat(v: number): boolean {
  return Number.isSafeInteger(v) && v >= 0;
}

/** Validity of a string for one schema, computed once per string table entry. */
type Verdicts = Int8Array; // 0 not checked yet, 1 valid, -1 invalid

/** Reads one message; every read checks its bounds and names the field it is reading. */
class Reader {
  private pos: number;
  event = -1;
  private readonly u64Ok: Verdicts;
  private readonly commOk: Verdicts;
  private readonly base64Ok: Verdicts;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly view: DataView,
    private readonly strings: string[],
    start: number,
  ) {
    this.pos = start;
    this.u64Ok = new Int8Array(strings.length);
    this.commOk = new Int8Array(strings.length);
    this.base64Ok = new Int8Array(strings.length);
  }

  get done(): boolean {
    return this.pos === this.bytes.length;
  }
  get offset(): number {
    return this.pos;
  }

  fail(code: ErrnoCode, reason: string, field: Field, offset = this.pos): WireFailure {
    return new WireFailure(code, reason, offset, path(this.event, field));
  }

  private need(n: number, field: Field): void {
    if (this.pos + n > this.bytes.length)
      throw this.fail(
        'EPROTO',
        `truncated: ${n} bytes needed, ${this.bytes.length - this.pos} left`,
        field,
      );
  }

  u8(field: Field): number {
    this.need(1, field);
    return this.bytes[this.pos++] as number;
  }

  u32(field: Field): number {
    this.need(4, field);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  f64(field: Field): number {
    this.need(8, field);
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  nat(field: Field): number {
    const at = this.pos;
    const v = this.f64(field);
    if (!isNat(v)) throw this.fail('EINVAL', `${v} is not a non-negative integer`, field, at);
    return v;
  }

  str(field: Field): string {
    const at = this.pos;
    const i = this.u32(field);
    const s = this.strings[i];
    if (s === undefined)
      throw this.fail(
        'EPROTO',
        `string ${i} is not in the table of ${this.strings.length}`,
        field,
        at,
      );
    return s;
  }

  /** A string the schema constrains; each table entry is checked once per batch and kind. */
  checked(
    field: Field,
    verdicts: Verdicts,
    schema: { safeParse(s: string): { success: boolean } },
    what: string,
  ): string {
    const at = this.pos;
    const s = this.str(field);
    const i = this.view.getUint32(at, true);
    if (verdicts[i] === 0) verdicts[i] = schema.safeParse(s).success ? 1 : -1;
    if (verdicts[i] === -1)
      throw this.fail('EINVAL', `${JSON.stringify(s)} is not ${what}`, field, at);
    return s;
  }

  u64(field: string): string {
    return this.checked(field, this.u64Ok, U64Schema, 'a u64 in decimal');
  }
  comm(): string {
    return this.checked('comm', this.commOk, CommSchema, 'a comm of at most 16 characters');
  }
  base64(): string {
    return this.checked('base64', this.base64Ok, Base64Schema, 'base64');
  }

  event1(): TraceEvent {
    const at = this.pos;
    const tag = this.u8('type');
    const type = TYPE_TAGS[tag];
    if (type === undefined) throw this.fail('EPROTO', `unknown event type tag ${tag}`, 'type', at);
    const ts = this.nat('ts');
    const cpu = this.nat('cpu');
    const pid = this.nat('pid');
    const comm = this.comm();
    switch (type) {
      case 'function':
        return {
          type,
          ts,
          cpu,
          pid,
          comm,
          ip: this.u64('ip'),
          parentIp: this.u64('parentIp'),
          func: this.str('func'),
          parent: this.str('parent'),
        };
      case 'funcgraph_entry':
        return { type, ts, cpu, pid, comm, func: this.str('func'), depth: this.nat('depth') };
      case 'funcgraph_exit': {
        const func = this.str('func');
        const depth = this.nat('depth');
        const calltime = this.nat('calltime');
        const hasAt = this.pos;
        const has = this.u8('retval');
        if (has > 1) throw this.fail('EPROTO', `retval flag ${has} is not 0 or 1`, 'retval', hasAt);
        return has === 1
          ? { type, ts, cpu, pid, comm, func, depth, calltime, retval: this.u64('retval') }
          : { type, ts, cpu, pid, comm, func, depth, calltime };
      }
      case 'probe':
        return this.probe(ts, cpu, pid, comm);
      case 'record':
        return { type, ts, cpu, pid, comm, base64: this.base64() };
      case 'text':
        return { type, ts, cpu, pid, comm, text: this.str('text') };
    }
  }

  private probe(ts: number, cpu: number, pid: number, comm: string): TraceEvent {
    const event = this.str('event');
    const flagsAt = this.pos;
    const flags = this.u8('flags');
    if (flags > (PROBE_GROUP | PROBE_IP | PROBE_RET_IP))
      throw this.fail('EPROTO', `unknown probe flags ${flags}`, 'flags', flagsAt);
    const group = flags & PROBE_GROUP ? this.str('group') : undefined;
    const ip = flags & PROBE_IP ? this.u64('ip') : undefined;
    const retIp = flags & PROBE_RET_IP ? this.u64('retIp') : undefined;
    const countAt = this.pos;
    const count = this.u32('fields');
    // a field takes at least 9 bytes: a lie about the count fails before it allocates
    if (count * 9 > this.bytes.length - this.pos)
      throw this.fail('EPROTO', `${count} fields do not fit in the message`, 'fields', countAt);
    const fields: Record<string, string | number> = {};
    for (let f = 0; f < count; f++) {
      const key = this.str('fields');
      const kindAt = this.pos;
      const field = ['fields', key];
      const kind = this.u8(field);
      let value: string | number;
      if (kind === 0) {
        value = this.f64(field);
        if (!Number.isFinite(value))
          throw this.fail('EINVAL', `${value} is not a finite number`, field, kindAt + 1);
      } else if (kind === 1) value = this.str(field);
      else throw this.fail('EPROTO', `unknown field kind ${kind}`, field, kindAt);
      // as JSON.parse does, "__proto__" is an own key, not the object's prototype
      if (key === '__proto__')
        Object.defineProperty(fields, key, {
          value,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      else fields[key] = value;
    }
    return {
      type: 'probe',
      ts,
      cpu,
      pid,
      comm,
      event,
      fields,
      ...(group === undefined ? {} : { group }),
      ...(ip === undefined ? {} : { ip }),
      ...(retIp === undefined ? {} : { retIp }),
    };
  }
}

function binary(bytes: Uint8Array): TraceEventBatch {
  const len = bytes.length;
  if (len < HEADER_BYTES)
    throw new WireFailure('EPROTO', `truncated: a header is ${HEADER_BYTES} bytes`, len, []);
  const view = new DataView(bytes.buffer, bytes.byteOffset, len);
  if (bytes[1] !== TRACE_BATCH_VERSION)
    throw new WireFailure('EPROTO', `unsupported version ${bytes[1]}`, 1, []);
  const stream = STREAM_TAGS[bytes[2] as number];
  if (stream === undefined)
    throw new WireFailure('EPROTO', `unknown stream tag ${bytes[2]}`, 2, ['stream']);
  if (bytes[3] !== 0) throw new WireFailure('EPROTO', `reserved byte is ${bytes[3]}`, 3, []);
  const count = view.getUint32(4, true);
  const nat = (at: number, field: string): number => {
    const v = view.getFloat64(at, true);
    if (!isNat(v))
      throw new WireFailure('EINVAL', `${v} is not a non-negative integer`, at, [field]);
    return v;
  };
  const firstSeq = nat(8, 'firstSeq');
  const lost = nat(16, 'lost');
  const nStrings = view.getUint32(24, true);
  const blobBytes = view.getUint32(28, true);
  const blobStart = HEADER_BYTES + 4 * nStrings;
  if (nStrings === 0) throw new WireFailure('EPROTO', 'no string table (no agent id)', 24, []);
  if (blobStart + blobBytes > len)
    throw new WireFailure(
      'EPROTO',
      `string table of ${nStrings} strings, ${blobBytes} bytes overruns the message`,
      24,
      [],
    );
  const eventsStart = blobStart + blobBytes;
  if (count > MAX_BATCH_EVENTS)
    throw new WireFailure('EINVAL', `${count} events, more than ${MAX_BATCH_EVENTS}`, 4, [
      'events',
    ]);
  if (count * MIN_EVENT_BYTES > len - eventsStart)
    throw new WireFailure('EPROTO', `${count} events do not fit in the message`, 4, ['events']);
  const strings = new Array<string>(nStrings);
  let start = 0;
  for (let i = 0; i < nStrings; i++) {
    const at = HEADER_BYTES + 4 * i;
    const end = view.getUint32(at, true);
    if (end < start || end > blobBytes)
      throw new WireFailure(
        'EPROTO',
        `string ${i} ends at ${end}, outside ${start}..${blobBytes}`,
        at,
        [],
      );
    try {
      strings[i] = utf8Strict.decode(bytes.subarray(blobStart + start, blobStart + end));
    } catch {
      throw new WireFailure('EPROTO', `string ${i} is not UTF-8`, blobStart + start, []);
    }
    start = end;
  }
  const agentId = strings[0] as string;
  const agentOk = AgentIdSchema.safeParse(agentId);
  if (!agentOk.success)
    throw new WireFailure('EINVAL', agentOk.error.issues[0]?.message ?? 'bad agent id', blobStart, [
      'agentId',
    ]);
  const reader = new Reader(bytes, view, strings, eventsStart);
  const events = new Array<TraceEvent>(count);
  for (let i = 0; i < count; i++) {
    reader.event = i;
    events[i] = reader.event1();
  }
  if (!reader.done)
    throw new WireFailure(
      'EPROTO',
      `${len - reader.offset} bytes after the last event`,
      reader.offset,
      [],
    );
  return { agentId, stream, firstSeq, events, lost };
}

/**
 * Decodes a message published on a trace subject: the binary layout above, or a batch as JSON
 * (what agents published before it, and what the stream may still hold). Untrusted input: the
 * result is a batch TraceEventBatchSchema accepts, or an error (never a throw): EPROTO for a
 * broken encoding, EINVAL for a value the schema refuses, with the byte offset and the field path
 * (`events[3].comm`) in its details.
 */
export function decodeTraceBatch(bytes: Uint8Array): TraceEventBatch | TracelabError {
  if (bytes[0] !== TRACE_BATCH_MAGIC) return fromJson(bytes);
  try {
    return binary(bytes);
  } catch (err) {
    if (!(err instanceof WireFailure)) throw err;
    const where = err.path.length === 0 ? '' : `${formatPath(err.path)}: `;
    return new TracelabError(
      err.code,
      `invalid trace batch${batchName(bytes)}: ${where}${err.reason} (byte ${err.offset})`,
      { path: err.path, offset: err.offset },
    );
  }
}

/** Which batch a broken message claims to be, for the error message, if its header says. */
function batchName(bytes: Uint8Array): string {
  if (bytes.length < HEADER_BYTES) return '';
  const firstSeq = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES).getFloat64(8, true);
  return ` (${STREAM_TAGS[bytes[2] as number] ?? '?'} firstSeq ${firstSeq})`;
}

const jsonText = new TextDecoder();

function fromJson(bytes: Uint8Array): TraceEventBatch | TracelabError {
  let body: unknown;
  try {
    body = JSON.parse(jsonText.decode(bytes));
  } catch (err) {
    return new TracelabError('EINVAL', `invalid trace batch: not JSON: ${(err as Error).message}`);
  }
  try {
    return parseOrThrow(TraceEventBatchSchema, body, 'trace batch');
  } catch (err) {
    return err as TracelabError;
  }
}
