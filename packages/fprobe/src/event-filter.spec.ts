import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ErrnoCode } from '@tracelab/contracts';
import {
  EventFilter,
  EventFilterError,
  FILTER_ERRORS,
  filterString,
  MAX_FILTER_STR_VAL,
  TASK_COMM_LEN,
  type FilterErrorName,
  type FilterSymbols,
} from './event-filter.js';
import { COMMON_FIELDS, type EventField } from './trace-event.js';

/** The entry layout of testdata/event_filter_*.txt. */
const FIELDS: EventField[] = [
  { type: 's8', name: 'a', offset: 8, size: 1, signed: true },
  { type: 'u16', name: 'b', offset: 10, size: 2, signed: false },
  { type: 's32', name: 'c', offset: 12, size: 4, signed: true },
  { type: 'u32', name: 'd', offset: 16, size: 4, signed: false },
  { type: 's64', name: 'e', offset: 24, size: 8, signed: true },
  { type: 'u64', name: 'f', offset: 32, size: 8, signed: false },
  { type: '__data_loc char[]', name: 'name', offset: 40, size: 4, signed: true },
  { type: 'char[8]', name: 'tag', offset: 44, size: 8, signed: true },
  { type: 'unsigned long', name: 'ip', offset: 56, size: 8, signed: false },
  { type: 'u8[3]', name: 'arr', offset: 64, size: 3, signed: false },
];
const FIXED_SIZE = 72;
const FUNCTIONS: Record<string, { start: bigint; size: number }> = {
  vfs_read: { start: 0xffffffff81001000n, size: 0x140 },
  ksys_read: { start: 0xffffffff81002000n, size: 0x80 },
};
const symbols: FilterSymbols = {
  address: (name) => FUNCTIONS[name]?.start ?? null,
  functionAt: (addr) =>
    Object.values(FUNCTIONS).find((f) => addr >= f.start && addr < f.start + BigInt(f.size)) ??
    null,
};
const OPTS = { fields: FIELDS, common: COMMON_FIELDS, longSize: 8, symbols };

const lines = (file: string) =>
  readFileSync(new URL(`../testdata/${file}`, import.meta.url), 'utf8')
    .split('\n')
    .filter((l) => l.length > 0 && !l.startsWith('#'));

interface Entry {
  name: string;
  view: DataView;
  bytes: Uint8Array;
  cpu: number;
  comm: Uint8Array;
}

const encode = (s: string) => new TextEncoder().encode(s);

/** A record's number: decimal or 0x, or FUNCTION[+OFFSET]. */
function number(v: string): bigint {
  const m = /^([a-z_]\w*)(?:\+(\w+))?$/.exec(v);
  const fn = m === null ? undefined : FUNCTIONS[m[1] as string];
  if (fn !== undefined) return fn.start + BigInt(m?.[2] ?? 0);
  return v.startsWith('-') ? -BigInt(v.slice(1)) : BigInt(v);
}

/** An entry from a record line: `@NAME field=value ...`. */
function entry(line: string): Entry {
  const [tag, ...pairs] = line.split(' ');
  const bytes = new Uint8Array(FIXED_SIZE + 64);
  const view = new DataView(bytes.buffer);
  const comm = new Uint8Array(TASK_COMM_LEN);
  let cpu = 0;
  view.setUint16(0, 7, true);
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    const key = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    if (key === 'cpu') cpu = Number(value);
    else if (key === 'comm') comm.set(encode(value).subarray(0, TASK_COMM_LEN - 1));
    else {
      const f = [...COMMON_FIELDS, ...FIELDS].find((x) => x.name === key);
      if (f === undefined) throw new Error(`no field ${key}`);
      if (key === 'name') {
        const s = value === '(fault)' ? new Uint8Array(0) : encode(`${value}\0`);
        bytes.set(s, FIXED_SIZE);
        view.setUint32(f.offset, ((s.length << 16) | FIXED_SIZE) >>> 0, true);
      } else if (key === 'tag') bytes.set(encode(value), f.offset);
      else {
        const u = BigInt.asUintN(f.size * 8, number(value));
        for (let k = 0; k < f.size; k++) bytes[f.offset + k] = Number((u >> BigInt(8 * k)) & 0xffn);
      }
    }
  }
  return { name: (tag as string).slice(1), view, bytes, cpu, comm };
}

const matchRows = lines('event_filter_match.txt');
const entries = matchRows.filter((l) => l.startsWith('@')).map(entry);
const filters = matchRows
  .filter((l) => !l.startsWith('@'))
  .map((l) => {
    const [filter, keeps] = l.split('\t') as [string, string];
    return { filter, keeps: keeps === '-' ? [] : keeps.split(' ') };
  });

function compile(filter: string): EventFilter {
  const got = EventFilter.compile(filterString(filter) as string, OPTS);
  if (got instanceof EventFilterError) throw got;
  return got;
}

describe('event filters (testdata/event_filter_match.txt)', () => {
  it.each(filters)('$filter keeps $keeps', ({ filter, keeps }) => {
    const f = compile(filter);
    const kept = entries.filter((e) => f.match(e.view, e.bytes, 0, e.cpu, e.comm));
    expect(kept.map((e) => e.name)).toEqual(keeps);
  });

  it('reads an entry where it starts in the buffer', () => {
    const r2 = entries[1] as Entry;
    const shifted = new Uint8Array(r2.bytes.length + 40);
    shifted.set(r2.bytes, 40);
    const f = compile('name == "cat" && e > 0 && tag ~ "*an*"');
    expect(f.match(new DataView(shifted.buffer), shifted, 40, 1, r2.comm)).toBe(true);
    expect(f.match(r2.view, r2.bytes, 0, 1, r2.comm)).toBe(true);
  });

  it('knows which filters read the current comm', () => {
    expect(compile('comm == "bash"').usesComm).toBe(true);
    expect(compile('name == "bash" || cpu == 0').usesComm).toBe(false);
  });

  it(`takes a quoted value shorter than MAX_FILTER_STR_VAL (${MAX_FILTER_STR_VAL}) bytes`, () => {
    const x = 'x'.repeat(MAX_FILTER_STR_VAL - 1);
    expect(compile(`name == "${x}"`)).toBeInstanceOf(EventFilter);
    const long = `name == "${x}x"`;
    const err = EventFilter.compile(long, OPTS) as EventFilterError;
    expect([err.err, err.pos]).toEqual(['OPERAND_TOO_LONG', long.length]);
  });
});

const errorRows = lines('event_filter_errors.txt').map((l) => {
  const [filter, pos, err, code] = l.split('\t') as [string, string, string, ErrnoCode];
  return { filter, pos: Number(pos), err: err === '-' ? null : (err as FilterErrorName), code };
});

describe('malformed event filters (testdata/event_filter_errors.txt)', () => {
  it.each(errorRows)('$filter -> $err at $pos, $code', ({ filter, pos, err, code }) => {
    const got = EventFilter.compile(filter, OPTS);
    expect(got).toBeInstanceOf(EventFilterError);
    const e = got as EventFilterError;
    expect([e.code, e.err, e.pos]).toEqual([code, err, pos]);
    expect(e.details?.offset).toBe(pos);
    expect(e.message).toContain(filter);
    // The filter file: the filter, the caret (never past the filter's end), the message.
    const file = e.fileText().split('\n');
    expect(file[0]).toBe(filter);
    if (err === null) expect(file.slice(1)).toEqual(['Error: (0)', '', '']);
    else {
      expect(file[1]).toBe(`${' '.repeat(Math.min(pos, filter.length))}^`);
      expect(file.slice(2)).toEqual([`parse_error: ${FILTER_ERRORS[err]}`, '', '']);
    }
    // error_log: the caret at the kernel's position itself.
    const log = e.logEntry().split('\n');
    expect(log[0]).toBe(`event filter parse error: error: ${FILTER_ERRORS[err ?? 'ERRNO']}`);
    expect(log[1]).toBe(`  Command: ${filter}`);
    expect(log[2]).toBe(`${' '.repeat('  Command: '.length + (err === null ? 0 : pos))}^`);
  });

  it('prints the filter file and error_log as the kernel does', () => {
    const e = EventFilter.compile('dsig == 17', OPTS) as EventFilterError;
    expect(e.fileText()).toBe('dsig == 17\n     ^\nparse_error: Field not found\n\n');
    expect(e.logEntry()).toBe(
      'event filter parse error: error: Field not found\n' +
        '  Command: dsig == 17\n' +
        '                ^\n',
    );
    expect(e.message).toBe("event filter 'dsig == 17': Field not found: 'dsig' at offset 0");
    // A group's write reports every event it could not set at the start.
    expect(e.inGroup().fileText()).toBe(
      "dsig == 17\n^\nparse_error: Couldn't find or set field in one of a subsystem's events\n\n",
    );
  });
});

describe('filter writes (apply_event_filter)', () => {
  it.each([
    ['0', null],
    ['0\n', null],
    [' 0 \n', null],
    ['00', '00'],
    ['a == 1\n', 'a == 1'],
    ['  a == 1 \t\n', '  a == 1'],
    ['a == 1\0b == 2', 'a == 1'],
    ['\n', ''],
  ])('%j keeps %j', (data, kept) => {
    expect(filterString(data)).toBe(kept);
  });
});

/** A boolean expression over the u8 fields a..h, and how the kernel's grammar writes it. */
type Expr =
  | { k: 'pred'; field: number; op: '==' | '!=' | '<' | '&'; value: number }
  | { k: 'not'; e: Expr }
  | { k: 'paren'; e: Expr }
  | { k: '&&' | '||'; l: Expr; r: Expr };

const NAMES = 'abcdefgh';
const EIGHT: EventField[] = [...NAMES].map((name, i) => ({
  type: 'u8',
  name,
  offset: 8 + i,
  size: 1,
  signed: false,
}));

function text(e: Expr): string {
  switch (e.k) {
    case 'pred':
      return `${NAMES[e.field] as string} ${e.op} ${e.value}`;
    case 'not':
      // '!' takes the next predicate or parenthesised group.
      return e.e.k === '&&' || e.e.k === '||' ? `!(${text(e.e)})` : `!${text(e.e)}`;
    case 'paren':
      return `(${text(e.e)})`;
    case '&&': {
      const side = (x: Expr) => (x.k === '||' ? `(${text(x)})` : text(x));
      return `${side(e.l)} && ${side(e.r)}`;
    }
    default:
      return `${text(e.l)} || ${text(e.r)}`;
  }
}

function evaluate(e: Expr, rec: number[]): boolean {
  switch (e.k) {
    case 'pred': {
      const v = rec[e.field] as number;
      if (e.op === '==') return v === e.value;
      if (e.op === '!=') return v !== e.value;
      if (e.op === '<') return v < e.value;
      return (v & e.value) !== 0;
    }
    case 'not':
      return !evaluate(e.e, rec);
    case 'paren':
      return evaluate(e.e, rec);
    case '&&':
      return evaluate(e.l, rec) && evaluate(e.r, rec);
    default:
      return evaluate(e.l, rec) || evaluate(e.r, rec);
  }
}

const exprArb = fc.letrec<{ expr: Expr }>((tie) => ({
  expr: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({
      k: fc.constant('pred' as const),
      field: fc.nat(7),
      op: fc.constantFrom('==' as const, '!=' as const, '<' as const, '&' as const),
      value: fc.nat(3),
    }),
    fc.record({ k: fc.constant('not' as const), e: tie('expr') }),
    fc.record({ k: fc.constant('paren' as const), e: tie('expr') }),
    fc.record({ k: fc.constantFrom('&&' as const, '||' as const), l: tie('expr'), r: tie('expr') }),
  ),
})).expr;

describe('the branch program predicate_parse builds', () => {
  it('agrees with && over ||, ! and parentheses on random expressions and entries', () => {
    fc.assert(
      fc.property(
        exprArb,
        fc.array(fc.array(fc.nat(3), { minLength: 8, maxLength: 8 })),
        (e, recs) => {
          const f = EventFilter.compile(text(e), {
            fields: EIGHT,
            common: COMMON_FIELDS,
            longSize: 8,
            symbols,
          });
          if (f instanceof EventFilterError) throw f;
          const bytes = new Uint8Array(16);
          const view = new DataView(bytes.buffer);
          for (const rec of recs) {
            bytes.set(rec, 8);
            expect(f.match(view, bytes, 0, 0, new Uint8Array(TASK_COMM_LEN)), text(e)).toBe(
              evaluate(e, rec),
            );
          }
        },
      ),
      { numRuns: 400 },
    );
  });
});
