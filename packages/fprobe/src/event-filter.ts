import { TracelabError, type ErrnoCode } from '@tracelab/contracts';
import type { EventField } from './trace-event.js';

/** The messages of trace_events_filter.c's err_text that this parser reports, by FILT_ERR_ name. */
export const FILTER_ERRORS = {
  INVALID_OP: 'Invalid operator',
  TOO_MANY_OPEN: "Too many '('",
  TOO_MANY_CLOSE: "Too few '('",
  MISSING_QUOTE: 'Missing matching quote',
  OPERAND_TOO_LONG: 'Operand too long',
  EXPECT_STRING: 'Expecting string field',
  EXPECT_DIGIT: 'Expecting numeric field',
  ILLEGAL_FIELD_OP: 'Illegal operation for field type',
  FIELD_NOT_FOUND: 'Field not found',
  ILLEGAL_INTVAL: 'Illegal integer value',
  BAD_SUBSYS_FILTER: "Couldn't find or set field in one of a subsystem's events",
  TOO_MANY_PREDS: 'Too many terms in predicate expression',
  INVALID_VALUE: 'Invalid value (did you forget quotes)?',
  NO_FUNCTION: 'Function not found',
  ERRNO: 'Error',
  NO_FILTER: 'No filter found',
} as const;
export type FilterErrorName = keyof typeof FILTER_ERRORS;

/** What a group's filter file reads (DEFAULT_SYS_FILTER_MESSAGE): it never shows a filter. */
export const GROUP_FILTER_MESSAGE =
  '### global filter ###\n' +
  '# Use this to set filters for multiple events.\n' +
  '# Only events with the given fields will be affected.\n' +
  '# If no events are modified, an error message will be displayed here';

/** MAX_FILTER_STR_VAL: a quoted value must be shorter. */
export const MAX_FILTER_STR_VAL = 256;
/** TASK_COMM_LEN: the bytes of current->comm a `comm` predicate compares. */
export const TASK_COMM_LEN = 16;
/** num_buf in parse_pred: a number must be shorter ("0xfeedfacedeadbeef" fits). */
const NUM_BUF = 24;

/**
 * A filter write that failed. The kernel keeps the failed filter in place of the old one (the
 * event is then unfiltered) and the filter file shows the filter, a caret and the error.
 */
export class EventFilterError extends TracelabError {
  override name = 'EventFilterError';

  constructor(
    code: ErrnoCode,
    /** The kernel's FILT_ERR_ name, or null when the kernel records none (it prints "Error: (0)"). */
    readonly err: FilterErrorName | null,
    /** The kernel's error position (lasterr_pos); the caret goes under it. */
    readonly pos: number,
    /** The filter as the kernel keeps it: the written text without trailing whitespace. */
    readonly filter: string,
    message: string,
  ) {
    super(code, `event filter '${filter}': ${message}`, { offset: pos });
  }

  /** append_filter_err: what the filter file reads (print_event_filter adds the last newline). */
  fileText(): string {
    if (this.err === null) return `${this.filter}\nError: (0)\n\n`;
    // Positions count bytes, as the kernel's do.
    const col = Math.min(this.pos, new TextEncoder().encode(this.filter).length);
    return `${this.filter}\n${' '.repeat(col)}^\nparse_error: ${FILTER_ERRORS[this.err]}\n\n`;
  }

  /** The error_log entry, without its timestamp (tracing_log_err's caret is not clamped). */
  logEntry(): string {
    const head = '  Command: ';
    const err = this.err ?? 'ERRNO';
    const pos = this.err === null ? 0 : this.pos;
    return (
      `event filter parse error: error: ${FILTER_ERRORS[err]}\n` +
      `${head}${this.filter}\n${' '.repeat(head.length + pos)}^\n`
    );
  }

  /** The same failure met by a write to the group's filter (process_system_preds). */
  inGroup(): EventFilterError {
    return new EventFilterError(
      this.code,
      'BAD_SUBSYS_FILTER',
      0,
      this.filter,
      FILTER_ERRORS.BAD_SUBSYS_FILTER,
    );
  }
}

/** kallsyms for `FIELD.function`: a name's address, and the function an address falls in. */
export interface FilterSymbols {
  address(name: string): bigint | null;
  functionAt(addr: bigint): { start: bigint; size: number } | null;
}

export interface EventFilterOptions {
  /** The event's own fields: found before the generic (cpu, comm) and the common ones. */
  readonly fields: readonly EventField[];
  readonly common: readonly EventField[];
  /** sizeof(long): the only field size `.function` accepts. */
  readonly longSize: number;
  readonly symbols: FilterSymbols;
}

/**
 * apply_event_filter's reading of a write: null for "0" (clear the filter), otherwise the filter
 * string as kept: strstrip ends the buffer before trailing whitespace but the filter keeps its
 * leading whitespace, as the kernel passes the unstripped start on. A NUL ends the string.
 */
export function filterString(data: string): string | null {
  const nul = data.indexOf('\0');
  const s = (nul < 0 ? data : data.slice(0, nul)).replace(/[ \t\n\v\f\r]+$/, '');
  return s.replace(/^[ \t\n\v\f\r]+/, '') === '0' ? null : s;
}

// Field kinds (filter_assign_type and the generic fields' FILTER_CPU / FILTER_COMM).
const F_OTHER = 0;
const F_DYN_STRING = 1;
const F_STATIC_STRING = 2;
const F_COMM = 3;
const F_CPU = 4;

// ops[] in the kernel's order: "<=" before "<" and ">=" before ">" so the longer one matches.
const OPS = ['~', '!=', '==', '<=', '<', '>=', '>', '&'] as const;
const OP_GLOB = 0;
const OP_NE = 1;
const OP_EQ = 2;
const OP_LE = 3;
const OP_LT = 4;
const OP_GE = 5;
const OP_GT = 6;
const OP_BAND = 7;

// Predicate kinds.
/** A numeric field of a size the kernel has no compare function for: never matches. */
const P_NONE = 0;
/** == and != of the field's unsigned value (filter_pred_8..64). */
const P_EQ = 1;
/** <, <=, >, >=, & as the field's signedness says (filter_pred_LT_s32, ...). */
const P_CMP = 2;
const P_STRING = 3;
/** The CPU the event fires on (filter_pred_cpu). */
const P_CPU = 4;
/** FIELD.function: the address lies inside a function (filter_pred_function). */
const P_FUNCTION = 5;

// String match types (filter_parse_regex).
const M_FULL = 0;
const M_FRONT = 1;
const M_MIDDLE = 2;
const M_END = 3;
const M_GLOB = 4;

interface FilterField {
  readonly offset: number;
  readonly size: number;
  readonly signed: boolean;
  readonly kind: number;
}

/** The generic fields (trace_define_generic_fields): offset and size 0, read from the context. */
const CPU_FIELD: FilterField = { offset: 0, size: 0, signed: true, kind: F_CPU };
const COMM_FIELD: FilterField = { offset: 0, size: 0, signed: false, kind: F_COMM };
const GENERIC_FIELDS: ReadonlyMap<string, FilterField> = new Map([
  ['CPU', CPU_FIELD],
  ['cpu', CPU_FIELD],
  ['common_cpu', CPU_FIELD],
  ['COMM', COMM_FIELD],
  ['comm', COMM_FIELD],
]);

function fieldKind(type: string): number {
  if (type.includes('__data_loc') && type.includes('char')) return F_DYN_STRING;
  if (type.includes('[') && type.includes('char')) return F_STATIC_STRING;
  return F_OTHER;
}

const isString = (f: FilterField) =>
  f.kind === F_DYN_STRING || f.kind === F_STATIC_STRING || f.kind === F_COMM;

/** A faulted string (data_loc length 0) compares as the empty string. */
const EMPTY = new Uint8Array(0);

/** One predicate, its value split into 32-bit halves so a test needs no bigint. */
class Pred {
  kind = P_NONE;
  op = OP_EQ;
  not = false;
  offset = 0;
  size = 0;
  signed = false;
  lo = 0;
  hi = 0;
  /** P_FUNCTION: the end of the function. */
  endLo = 0;
  endHi = 0;
  strKind = F_OTHER;
  matchType = M_FULL;
  pattern: Uint8Array = EMPTY;
}

/**
 * A compiled event filter (trace_events_filter.c): the predicates and the branch program
 * predicate_parse builds from the && / || / ! / ( ) structure. `match` runs over the entry bytes
 * and allocates nothing.
 */
export class EventFilter {
  /** Whether a predicate reads current->comm: the caller then fills `comm` before `match`. */
  declare readonly usesComm: boolean;

  private constructor(
    /** The filter as written, what the filter file shows. */
    readonly text: string,
    private readonly preds: readonly Pred[],
    /** Per predicate, the result that takes its branch; then where the branch goes. */
    private readonly when: Uint8Array,
    /** Per predicate the branch target; the two entries after them say TRUE (1) and FALSE (0). */
    private readonly target: Int32Array,
  ) {
    this.usesComm = preds.some((p) => p.kind === P_STRING && p.strKind === F_COMM);
  }

  /**
   * Compiles a filter string (as `filterString` returns it) against an event's fields, the
   * generic cpu/comm fields and the common ones, as apply_event_filter does; a failure is the
   * errno the write returns and what the filter file then shows.
   */
  static compile(text: string, opts: EventFilterOptions): EventFilter | EventFilterError {
    const got = new FilterParser(text, opts).parse();
    if (got instanceof EventFilterError) return got;
    return new EventFilter(text, got.preds, got.when, got.target);
  }

  /**
   * filter_match_preds: whether the entry at `at` passes. `cpu` is the CPU the event fires on
   * and `comm` the current task's comm (TASK_COMM_LEN bytes, NUL padded).
   */
  match(view: DataView, bytes: Uint8Array, at: number, cpu: number, comm: Uint8Array): boolean {
    const n = this.preds.length;
    let i = 0;
    for (; i < n; i++) {
      const r = this.test(this.preds[i] as Pred, view, bytes, at, cpu, comm) ? 1 : 0;
      // A branch lands on the entry after its target.
      if (r === this.when[i]) i = this.target[i] as number;
    }
    return this.target[i] === 1;
  }

  private test(
    p: Pred,
    v: DataView,
    b: Uint8Array,
    at: number,
    cpu: number,
    comm: Uint8Array,
  ): boolean {
    switch (p.kind) {
      case P_EQ:
        return equal(p, v, at + p.offset) !== p.not;
      case P_CMP:
        return compare(p, v, at + p.offset);
      case P_STRING:
        return matchString(p, v, b, at, comm) !== p.not;
      case P_CPU:
        return compareCpu(p, cpu);
      case P_FUNCTION:
        return inFunction(p, v, at + p.offset) === (p.op === OP_EQ);
      default:
        return false;
    }
  }
}

function equal(p: Pred, v: DataView, o: number): boolean {
  switch (p.size) {
    case 1:
      return v.getUint8(o) === p.lo;
    case 2:
      return v.getUint16(o, true) === p.lo;
    case 4:
      return v.getUint32(o, true) === p.lo;
    default:
      return v.getUint32(o, true) === p.lo && v.getUint32(o + 4, true) === p.hi;
  }
}

function readSmall(v: DataView, o: number, size: number, signed: boolean): number {
  if (size === 1) return signed ? v.getInt8(o) : v.getUint8(o);
  if (size === 2) return signed ? v.getInt16(o, true) : v.getUint16(o, true);
  return signed ? v.getInt32(o, true) : v.getUint32(o, true);
}

function compare(p: Pred, v: DataView, o: number): boolean {
  let c: number;
  if (p.size === 8) {
    const lo = v.getUint32(o, true);
    const hi = p.signed ? v.getInt32(o + 4, true) : v.getUint32(o + 4, true);
    if (p.op === OP_BAND) return ((lo & p.lo) | (hi & p.hi)) !== 0;
    c = hi !== p.hi ? hi - p.hi : lo - p.lo;
  } else {
    const x = readSmall(v, o, p.size, p.signed);
    if (p.op === OP_BAND) return (x & p.lo) !== 0;
    c = x - p.lo;
  }
  switch (p.op) {
    case OP_LT:
      return c < 0;
    case OP_LE:
      return c <= 0;
    case OP_GT:
      return c > 0;
    default:
      return c >= 0;
  }
}

function compareCpu(p: Pred, cpu: number): boolean {
  switch (p.op) {
    case OP_EQ:
      return cpu === p.lo;
    case OP_NE:
      return cpu !== p.lo;
    case OP_LT:
      return cpu < p.lo;
    case OP_LE:
      return cpu <= p.lo;
    case OP_GT:
      return cpu > p.lo;
    case OP_GE:
      return cpu >= p.lo;
    default:
      return false;
  }
}

function inFunction(p: Pred, v: DataView, o: number): boolean {
  const lo = v.getUint32(o, true);
  const hi = p.size === 8 ? v.getUint32(o + 4, true) : 0;
  const geStart = hi !== p.hi ? hi > p.hi : lo >= p.lo;
  const ltEnd = hi !== p.endHi ? hi < p.endHi : lo < p.endLo;
  return geStart && ltEnd;
}

function matchString(p: Pred, v: DataView, b: Uint8Array, at: number, comm: Uint8Array): boolean {
  let s: Uint8Array = b;
  let start: number;
  let len: number;
  if (p.strKind === F_DYN_STRING) {
    // __data_loc: length in the high half (with the NUL), offset from the entry in the low.
    const item = v.getUint32(at + p.offset, true);
    len = item >>> 16;
    start = at + (item & 0xffff);
    if (len === 0) {
      s = EMPTY;
      start = 0;
    }
  } else if (p.strKind === F_STATIC_STRING) {
    start = at + p.offset;
    len = p.size;
  } else {
    s = comm;
    start = 0;
    len = TASK_COMM_LEN;
  }
  const pat = p.pattern;
  switch (p.matchType) {
    case M_FULL:
      return matchFull(s, start, len, pat);
    case M_FRONT:
      return matchFront(s, start, len, pat);
    case M_MIDDLE:
      return matchMiddle(s, start, len, pat);
    case M_END:
      return matchEnd(s, start, len, pat);
    default:
      return globMatch(pat, s, start, len);
  }
}

/** regex_match_full: strncmp over the field's length (len 0: the empty string). */
function matchFull(s: Uint8Array, at: number, len: number, p: Uint8Array): boolean {
  if (len === 0) return p.length === 0;
  if (len < p.length) return false;
  for (let i = 0; i < len; i++) {
    const c = s[at + i] as number;
    if (c !== (i < p.length ? (p[i] as number) : 0)) return false;
    if (c === 0) return true;
  }
  return true;
}

/** regex_match_front: the string starts with the pattern. */
function matchFront(s: Uint8Array, at: number, len: number, p: Uint8Array): boolean {
  if (len === 0) return p.length === 0;
  if (len < p.length) return false;
  for (let i = 0; i < p.length; i++) if (s[at + i] !== p[i]) return false;
  return true;
}

/** regex_match_middle: strnstr, which looks at all `len` bytes, NULs included. */
function matchMiddle(s: Uint8Array, at: number, len: number, p: Uint8Array): boolean {
  if (p.length === 0) return true;
  for (let k = 0; len - k >= p.length; k++) {
    let i = 0;
    while (i < p.length && s[at + k + i] === p[i]) i++;
    if (i === p.length) return true;
  }
  return false;
}

/** regex_match_end: the pattern ends at len - 1 (for a __data_loc string, before its NUL). */
function matchEnd(s: Uint8Array, at: number, len: number, p: Uint8Array): boolean {
  const end = len - 1;
  if (end < p.length) return false;
  for (let i = 0; i < p.length; i++) if (s[at + end - p.length + i] !== p[i]) return false;
  return true;
}

/** The byte at i of a string that ends after `len` bytes (0 past it, as after a NUL). */
function at0(s: Uint8Array, from: number, i: number, len: number): number {
  return i < len ? (s[from + i] as number) : 0;
}

/**
 * glob_match (lib/glob.c) of the pattern against the string, which ends at its NUL or after
 * `len` bytes: `*`, `?`, `[...]` with ranges and a leading `!`, `\` escapes. One backtrack point
 * is enough because `*` matches every character.
 */
function globMatch(pat: Uint8Array, s: Uint8Array, from: number, len: number): boolean {
  const plen = pat.length;
  let pi = 0;
  let si = 0;
  let backPat = -1;
  let backStr = 0;
  for (;;) {
    const c = at0(s, from, si++, len);
    let d = at0(pat, 0, pi++, plen);
    let ok: boolean;
    if (d === 0x3f) {
      // '?': anything but the end
      ok = c !== 0;
    } else if (d === 0x2a) {
      // '*': a trailing one matches the rest; otherwise remember where to retry
      if (at0(pat, 0, pi, plen) === 0) return true;
      backPat = pi;
      backStr = --si;
      continue;
    } else if (d === 0x5b && classEnd(pat, pi) >= 0) {
      const inverted = pat[pi] === 0x21;
      let k = pi + (inverted ? 1 : 0);
      let a = pat[k++] as number;
      let hit = false;
      do {
        let z = a;
        if (pat[k] === 0x2d && pat[k + 1] !== 0x5d) {
          z = pat[k + 1] as number;
          k += 2;
        }
        if (a <= c && c <= z) hit = true;
        a = pat[k++] as number;
      } while (a !== 0x5d);
      ok = hit !== inverted;
      if (ok) pi = k;
    } else {
      if (d === 0x5c) d = at0(pat, 0, pi++, plen);
      if (c === d && d === 0) return true;
      ok = c === d;
    }
    if (ok) continue;
    if (c === 0 || backPat < 0) return false;
    pi = backPat;
    si = ++backStr;
  }
}

/**
 * Where a character class opened before `from` ends, or -1 when it is malformed (glob_match
 * then takes the `[` literally): a first `]` belongs to the class, a range needs its end.
 */
function classEnd(pat: Uint8Array, from: number): number {
  let k = from + (pat[from] === 0x21 ? 1 : 0);
  let first = true;
  while (k < pat.length) {
    const a = pat[k] as number;
    if (a === 0x5d && !first) return k;
    first = false;
    if (pat[k + 1] === 0x2d && pat[k + 2] !== 0x5d) {
      if (k + 2 >= pat.length) return -1;
      k += 3;
    } else k++;
  }
  return -1;
}

const isSpace = (c: number) => c === 0x20 || (c >= 0x09 && c <= 0x0d);
const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
const isAlpha = (c: number) => (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a;
const isAlnum = (c: number) => isDigit(c) || isAlpha(c);
const isXdigit = (c: number) => isDigit(c) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66);

/**
 * kstrtoull / kstrtoll with base 0 (0x hex, leading 0 octal, else decimal): the value as u64 bits,
 * or null where the kernel returns -EINVAL or -ERANGE.
 */
function parseInteger(tok: string, signed: boolean, bits = 64): bigint | null {
  let t = tok;
  const neg = signed && t.startsWith('-');
  if (neg) t = t.slice(1);
  let base = 10;
  if (t.startsWith('0')) {
    const x = t.charCodeAt(1) | 0x20;
    if (x === 0x78 && isXdigit(t.charCodeAt(2))) {
      base = 16;
      t = t.slice(2);
    } else base = 8;
  }
  if (t.length === 0) return null;
  let v = 0n;
  for (let i = 0; i < t.length; i++) {
    const c = t.charCodeAt(i);
    const d = isDigit(c) ? c - 0x30 : isAlpha(c) ? (c | 0x20) - 0x61 + 10 : 99;
    if (d >= base) return null;
    v = v * BigInt(base) + BigInt(d);
    if (v >= 1n << BigInt(bits)) return null;
  }
  if (neg) return v > 1n << 63n ? null : BigInt.asUintN(64, -v);
  return signed && v >= 1n << 63n ? null : v;
}

const lo32 = (v: bigint) => Number(BigInt.asUintN(32, v));
const hi32 = (v: bigint, signed: boolean) =>
  Number(signed ? BigInt.asIntN(32, v >> 32n) : BigInt.asUintN(32, v >> 32n));

/** A parse failure: the errno the write returns, the kernel's error and position, our words. */
interface Fail {
  readonly fail: true;
  readonly code: ErrnoCode;
  readonly err: FilterErrorName | null;
  readonly pos: number;
  readonly message: string;
}

const fail = (
  code: ErrnoCode,
  err: FilterErrorName | null,
  pos: number,
  message?: string,
): Fail => ({
  fail: true,
  code,
  err,
  pos,
  message: message ?? `${FILTER_ERRORS[err ?? 'ERRNO']} at offset ${pos}`,
});

/** What predicate_parse makes: the predicates and their branches. */
interface Program {
  readonly preds: Pred[];
  readonly when: Uint8Array;
  readonly target: Int32Array;
}

// The op stack's flags (predicate_parse): the invert in scope, then pending && and ||.
const INVERT = 1;
const PROCESS_AND = 2;
const PROCESS_OR = 4;

/** The parser of one filter string: calc_stack, predicate_parse and parse_pred over its bytes. */
class FilterParser {
  declare private readonly s: Uint8Array;
  private readonly preds: Pred[] = [];

  constructor(
    private readonly text: string,
    private readonly opts: EventFilterOptions,
  ) {
    this.s = new TextEncoder().encode(text);
  }

  /** The byte at i, 0 past the end (the C string's NUL). */
  private c(i: number): number {
    return i < this.s.length ? (this.s[i] as number) : 0;
  }

  private slice(from: number, to: number): string {
    return new TextDecoder().decode(this.s.subarray(from, to));
  }

  parse(): Program | EventFilterError {
    const got = this.calcStack() ?? this.program();
    if ('fail' in got) {
      return new EventFilterError(got.code, got.err, got.pos, this.text, got.message);
    }
    return got;
  }

  /**
   * calc_stack: parentheses balanced and quotes closed (outside quotes), and at least one
   * predicate. Its failures return the kernel's own negative codes as the write's errno.
   */
  private calcStack(): Fail | null {
    let open = 1;
    let quote = 0;
    let lastQuote = 0;
    let isPred = false;
    let preds = 0;
    let i = 0;
    for (; this.c(i) !== 0; i++) {
      const c = this.c(i);
      if (isSpace(c)) continue;
      if (quote !== 0) {
        if (c === quote) quote = 0;
        continue;
      }
      if (c === 0x27 || c === 0x22) {
        quote = c;
        lastQuote = i;
      } else if ((c === 0x26 || c === 0x7c) && this.c(i + 1) === c) {
        isPred = false;
        continue;
      } else if (c === 0x28) {
        isPred = false;
        open++;
        continue;
      } else if (c === 0x29) {
        isPred = false;
        if (open === 1) return fail('EPERM', 'TOO_MANY_CLOSE', i);
        open--;
        continue;
      }
      if (!isPred) {
        preds++;
        isPred = true;
      }
    }
    if (quote !== 0) return fail('ESRCH', 'MISSING_QUOTE', lastQuote);
    if (open !== 1) {
      // The unclosed '(' is the last one with no ')' after it; index 0 is never looked at.
      let level = open;
      for (i--; i > 0; i--) {
        const c = this.c(i);
        if (quote !== 0) {
          if (c === quote) quote = 0;
          continue;
        }
        if (c === 0x28) {
          if (level === open) return fail('ENOENT', 'TOO_MANY_OPEN', i);
          level--;
        } else if (c === 0x29) level++;
        else if (c === 0x27 || c === 0x22) quote = c;
      }
      return fail('ENOENT', 'TOO_MANY_OPEN', 0);
    }
    if (preds === 0) return fail('EINVAL', null, 0, 'no predicate');
    return null;
  }

  /**
   * predicate_parse: one pass over the tokens makes a program of predicates, each with the
   * result that branches and where to; && binds tighter than ||, and ! and parentheses set
   * which predicates are inverted. Two passes over the program then shorten the branches and
   * fold the inverts in. The parentheses are balanced (calc_stack saw to it).
   */
  private program(): Program | Fail {
    const target: number[] = [];
    const when: number[] = [];
    const inverts: number[] = [];
    const stack = [0];
    const top = () => stack[stack.length - 1] as number;
    const setTop = (v: number) => {
      stack[stack.length - 1] = v;
    };
    // update_preds: the entry N's target names the entry whose branch now comes to N.
    const update = (n: number, invert: number) => {
      const t = target[n] as number;
      const s = target[t] as number;
      when[t] = invert;
      target[t] = n;
      target[n] = s;
    };
    let invert = 0;
    let n = 0;
    let ptr = 0;
    outer: while (this.c(ptr) !== 0) {
      const next = ptr++;
      const c = this.c(next);
      if (isSpace(c)) continue;
      if (c === 0x28) {
        stack.push(invert);
        continue;
      }
      // "!=" and "!~" are not a '!'.
      if (c === 0x21 && this.c(next + 1) !== 0x3d && this.c(next + 1) !== 0x7e) {
        invert ^= 1;
        continue;
      }
      inverts[n] = invert;
      target[n] = n - 1;
      when[n] = 0;
      const len = this.parsePred(next, ptr);
      if (typeof len !== 'number') return len;
      ptr = next + len;
      n++;
      for (;;) {
        const at = ptr++;
        const t = this.c(at);
        if (isSpace(t)) continue;
        if ((t === 0x26 || t === 0x7c) && this.c(at + 1) === t) ptr++;
        else if (t !== 0x29 && t !== 0) return fail('EPERM', 'TOO_MANY_PREDS', at);
        invert = top() & INVERT;
        if (top() & PROCESS_AND) {
          update(n - 1, invert);
          setTop(top() & ~PROCESS_AND);
        }
        if (t === 0x26) {
          setTop(top() | PROCESS_AND);
          break;
        }
        if (top() & PROCESS_OR) {
          update(n - 1, invert ^ 1);
          setTop(top() & ~PROCESS_OR);
        }
        if (t === 0x7c) {
          setTop(top() | PROCESS_OR);
          break;
        }
        if (t === 0) break outer;
        stack.pop();
      }
    }
    if (n === 0) return fail('EINVAL', 'NO_FILTER', ptr);
    // The two entries after the program: TRUE and FALSE.
    target[n] = 1;
    target[n + 1] = 0;
    target[n - 1] = n;
    when[n - 1] = 0;
    // A branch to an entry that branches on the same result can go where that one goes.
    for (let i = n - 2; i >= 0; i--) {
      const t = target[i] as number;
      if (when[i] === when[t]) target[i] = target[t] as number;
    }
    for (let i = 0; i < n; i++) when[i] = ((inverts[i] as number) ^ (when[i] as number)) & 1;
    return { preds: this.preds, when: Uint8Array.from(when), target: Int32Array.from(target) };
  }

  private findField(name: string): FilterField | null {
    const f =
      this.opts.fields.find((x) => x.name === name) ??
      GENERIC_FIELDS.get(name) ??
      this.opts.common.find((x) => x.name === name);
    if (f === undefined) return null;
    return 'kind' in f ? f : { ...f, kind: fieldKind(f.type) };
  }

  /**
   * parse_pred: FIELD[.ustring][.function] OP VALUE starting at `start`; returns the bytes it
   * took. The kernel reports its errors at `pos` (start + 1) plus the offset inside the
   * predicate, so its carets sit one past the spot.
   */
  private parsePred(start: number, pos: number): number | Fail {
    const c = (i: number) => this.c(start + i);
    let i = 0;
    while (isSpace(c(i))) i++;
    let s = i;
    while (isAlnum(c(i)) || c(i) === 0x5f) i++;
    if (i === s) {
      // The kernel records no error here and the write fails with -1 (EPERM).
      return fail('EPERM', null, 0, `no field name at offset ${start + s}`);
    }
    const name = this.slice(start + s, start + i);
    const field = this.findField(name);
    if (field === null) {
      const what = `Field not found: '${name}' at offset ${start + s}`;
      return fail('EINVAL', 'FIELD_NOT_FOUND', pos + i, what);
    }
    const suffix = (w: string) => {
      for (let k = 0; k < w.length; k++) if (c(i + k) !== w.charCodeAt(k)) return false;
      i += w.length;
      return true;
    };
    // .ustring only changes how a char * field is read; this event has none.
    suffix('.ustring');
    const fn = suffix('.function');
    while (isSpace(c(i))) i++;
    const op = OPS.findIndex((o) => {
      for (let k = 0; k < o.length; k++) if (c(i + k) !== o.charCodeAt(k)) return false;
      return true;
    });
    if (op < 0) return fail('EINVAL', 'INVALID_OP', pos + i);
    i += (OPS[op] as string).length;
    while (isSpace(c(i))) i++;
    s = i;
    const p = new Pred();
    p.op = op;
    p.offset = field.offset;
    p.size = field.size;
    p.signed = field.signed;
    const q = c(i);
    if (fn) {
      if (field.size !== this.opts.longSize) return fail('EINVAL', 'ILLEGAL_FIELD_OP', pos + i);
      if (op !== OP_EQ && op !== OP_NE) return fail('EINVAL', 'INVALID_OP', pos + i);
      let ip: bigint | null;
      if (isDigit(q)) {
        while (isAlnum(c(i))) i++;
        if (i - s >= NUM_BUF) return fail('EINVAL', 'OPERAND_TOO_LONG', pos + i);
        ip = parseInteger(this.slice(start + s, start + i), false, this.opts.longSize * 8);
        if (ip === null) return fail('EINVAL', 'INVALID_VALUE', pos + i);
      } else {
        while (c(i) !== 0 && !isSpace(c(i))) i++;
        ip = this.opts.symbols.address(this.slice(start + s, start + i));
        if (ip === null) return fail('EINVAL', 'NO_FUNCTION', pos + i);
      }
      const f = this.opts.symbols.functionAt(ip);
      if (f === null) return fail('EINVAL', 'NO_FUNCTION', pos + i);
      const bits = this.opts.longSize * 8;
      const end = BigInt.asUintN(bits, f.start + BigInt(f.size));
      p.kind = P_FUNCTION;
      p.lo = lo32(f.start);
      p.hi = hi32(f.start, false);
      p.endLo = lo32(end);
      p.endHi = hi32(end, false);
    } else if (q === 0x27 || q === 0x22) {
      if (op !== OP_NE && op !== OP_GLOB && op !== OP_EQ) {
        return fail('EINVAL', 'ILLEGAL_FIELD_OP', pos + i);
      }
      if (!isString(field)) return fail('EINVAL', 'EXPECT_DIGIT', pos + i);
      // calc_stack saw every quote closed.
      for (i++; c(i) !== q; i++);
      s++;
      if (i - s >= MAX_FILTER_STR_VAL) return fail('EINVAL', 'OPERAND_TOO_LONG', pos + i);
      p.kind = P_STRING;
      p.strKind = field.kind;
      p.not = op === OP_NE;
      this.buildRegex(p, this.s.slice(start + s, start + i));
      i++;
    } else if (isDigit(q) || q === 0x2d) {
      if (isString(field)) return fail('EINVAL', 'EXPECT_STRING', pos + i);
      if (op === OP_GLOB) return fail('EINVAL', 'ILLEGAL_FIELD_OP', pos + i);
      if (q === 0x2d) i++;
      while (isAlnum(c(i))) i++;
      if (i - s >= NUM_BUF) return fail('EINVAL', 'OPERAND_TOO_LONG', pos + i);
      const tok = this.slice(start + s, start + i);
      const val = parseInteger(tok, field.signed);
      if (val === null) {
        const kind = field.signed ? 'signed' : 'unsigned';
        const what = `Illegal integer value '${tok}' for a ${kind} field at offset ${start + s}`;
        return fail('EINVAL', 'ILLEGAL_INTVAL', pos + s, what);
      }
      this.numeric(p, field, op, val);
    } else return fail('EINVAL', 'INVALID_VALUE', pos + i);
    this.preds.push(p);
    return i;
  }

  /** The compare of a number: the value cut to the field's size as C's casts cut it. */
  private numeric(p: Pred, field: FilterField, op: number, val: bigint): void {
    if (field.kind === F_CPU) {
      p.kind = P_CPU;
      p.lo = Number(BigInt.asIntN(32, val));
      return;
    }
    const bits = field.size * 8;
    if (field.size !== 1 && field.size !== 2 && field.size !== 4 && field.size !== 8) return;
    if (op === OP_EQ || op === OP_NE) {
      const u = BigInt.asUintN(bits, val);
      p.kind = P_EQ;
      p.not = op === OP_NE;
      p.lo = lo32(u);
      p.hi = hi32(u, false);
      return;
    }
    const t = field.signed ? BigInt.asIntN(bits, val) : BigInt.asUintN(bits, val);
    p.kind = P_CMP;
    p.lo = field.size === 8 ? lo32(t) : Number(t);
    p.hi = hi32(t, field.signed);
  }

  /**
   * filter_build_regex: == and != compare the whole string; ~ reads the pattern as
   * filter_parse_regex does (a leading '!' inverts; `*` first, last or both match the end, the
   * front or the middle; any other `*`, `?`, `[` or `\` make it a glob; a leading digit keeps
   * it whole).
   */
  private buildRegex(p: Pred, value: Uint8Array): void {
    p.matchType = M_FULL;
    p.pattern = value;
    if (p.op !== OP_GLOB) return;
    const b = value[0] === 0x21 ? value.subarray(1) : value;
    p.not = b !== value;
    p.pattern = b.slice();
    if (isDigit(b[0] ?? 0)) return;
    let type = M_FULL;
    let end = b.length;
    for (let i = 0; i < b.length; i++) {
      const ch = b[i] as number;
      if (ch === 0x2a) {
        if (i === 0) type = M_END;
        else if (i === b.length - 1) {
          type = type === M_END ? M_MIDDLE : M_FRONT;
          end = i;
          break;
        } else {
          p.matchType = M_GLOB;
          return;
        }
      } else if (ch === 0x5b || ch === 0x3f || ch === 0x5c) {
        p.matchType = M_GLOB;
        return;
      }
    }
    p.matchType = type;
    p.pattern = b.slice(b[0] === 0x2a ? 1 : 0, end);
  }
}
