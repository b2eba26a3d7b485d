import type { Btf } from '@tracelab/btf';
import type { KernelImage } from '@tracelab/kernel';
import { FPROBE_DATA_SIZE_MAX_LONGS } from './fprobe.js';

/** Kernel limits (trace_probe.h). */
export const MAX_TRACE_ARGS = 128;
export const MAX_ARG_NAME_LEN = 32;
export const MAX_ARGSTR_LEN = 63;
export const MAX_EVENT_NAME_LEN = 64;
export const MAX_ARRAY_LEN = 64;
export const FPROBE_EVENT_SYSTEM = 'fprobes';
/** $argN / $stackN bound: what one page of trace entry can hold. */
export const PARAM_MAX_STACK = 509;
/** Nested dereferences allowed (FETCH_INSN_MAX minus the load and store ops). */
const MAX_DEREF = 12;

/** The messages of the kernel's ERRORS list that fprobe events can raise. */
export const PROBE_ERRORS = {
  BAD_MAXACT: 'Invalid maxactive number',
  BAD_PROBE_ADDR: 'Invalid probed address or symbol',
  BAD_ADDR_SUFFIX: 'Invalid probed address suffix',
  NO_GROUP_NAME: 'Group name is not specified',
  GROUP_TOO_LONG: 'Group name is too long',
  BAD_GROUP_NAME: 'Group name must follow the same rules as C identifiers',
  NO_EVENT_NAME: 'Event name is not specified',
  EVENT_TOO_LONG: 'Event name is too long',
  BAD_EVENT_NAME: 'Event name must follow the same rules as C identifiers',
  EVENT_EXIST: 'Given group/event name is already used by another event',
  RETVAL_ON_PROBE: '$retval is not available on probe',
  NO_RETVAL: "This function returns 'void' type",
  BAD_STACK_NUM: 'Invalid stack number',
  BAD_ARG_NUM: 'Invalid argument number',
  BAD_VAR: 'Invalid $-valiable specified',
  BAD_MEM_ADDR: 'Invalid memory address',
  BAD_IMM: 'Invalid immediate value',
  IMMSTR_NO_CLOSE: "String is not closed with '\"'",
  FILE_ON_KPROBE: 'File offset is not available with kprobe',
  TOO_MANY_OPS: 'Dereference is too much nested',
  DEREF_NEED_BRACE: 'Dereference needs a brace',
  BAD_DEREF_OFFS: 'Invalid dereference offset',
  DEREF_OPEN_BRACE: 'Dereference brace is not closed',
  COMM_CANT_DEREF: '$comm can not be dereferenced',
  BAD_FETCH_ARG: 'Invalid fetch argument',
  ARRAY_NO_CLOSE: 'Array is not closed',
  BAD_ARRAY_SUFFIX: 'Array has wrong suffix',
  BAD_ARRAY_NUM: 'Invalid array size',
  ARRAY_TOO_BIG: 'Array number is too big',
  BAD_TYPE: 'Unknown type is specified',
  BAD_STRING: 'String accepts only memory argument',
  BAD_BITFIELD: 'Invalid bitfield',
  ARG_NAME_TOO_LONG: 'Argument name is too long',
  NO_ARG_NAME: 'Argument name is not specified',
  BAD_ARG_NAME: 'Argument name must follow the same rules as C identifiers',
  USED_ARG_NAME: 'This argument name is already used',
  ARG_TOO_LONG: 'Argument expression is too long',
  NO_ARG_BODY: 'No argument expression',
  NO_BTFARG: 'This variable is not found at this probe point',
  NO_PTR_STRCT: 'This is not a pointer to union/structure.',
  NOSUP_DAT_ARG: 'Non pointer structure/union argument is not supported.',
  BAD_HYPHEN: "Failed to parse single hyphen. Forgot '>'?",
  NO_BTF_FIELD: 'This field is not found.',
  BAD_TYPE4STR: 'This type does not fit for string.',
  TOO_MANY_ARGS: 'Too many arguments are specified',
  TOO_MANY_EARGS: 'Too many entry arguments specified',
  NOSUP_BTFARG: 'BTF is not available or not supported',
  BAD_VAR_ARGS: '$arg* must be an independent parameter without name etc.',
  DOUBLE_ARGS: '$arg* can be used only once in the parameters',
} as const;
export type ProbeErrorName = keyof typeof PROBE_ERRORS;

/** A parse failure: the error's name and the caret's position in the command. */
export class ProbeParseError extends Error {
  constructor(
    readonly err: ProbeErrorName,
    readonly pos: number,
    readonly command: string,
  ) {
    super(PROBE_ERRORS[err]);
  }

  /** The error_log entry, without its timestamp: message, command, caret line. */
  format(subsystem = 'trace_fprobe'): string {
    const head = '  Command: ';
    return `${subsystem}: error: ${this.message}\n${head}${this.command}\n${' '.repeat(head.length + this.pos)}^\n`;
  }
}

/** A fetch argument as parsed: where the value comes from. */
export type FetchArg =
  | { kind: 'arg'; n: number }
  | { kind: 'retval' }
  | { kind: 'stack'; n: number | null }
  | { kind: 'comm' }
  | { kind: 'imm'; value: bigint }
  | { kind: 'immstr'; value: string }
  | { kind: 'mem'; addr: bigint }
  | { kind: 'sym'; name: string; offset: number }
  | { kind: 'deref'; offset: number; user: boolean; inner: FetchArg }
  | { kind: 'btfarg'; name: string; index: number };

/** A fetch type: basic, string-like, bitfield, with an optional array length. */
export interface FetchType {
  name: string;
  size: number;
  signed: boolean;
  hex: boolean;
  array: number | null;
  bitfield: { width: number; offset: number; container: number } | null;
}

export interface ProbeArg {
  name: string;
  fetch: FetchArg;
  type: FetchType;
  /** The text as written after NAME=, for listings. */
  comm: string;
}

export interface FprobeEvent {
  group: string;
  event: string;
  symbol: string;
  isReturn: boolean;
  args: ProbeArg[];
}

/** What the parser needs to know about a probed function (from the image's BTF). */
export interface ProbeTarget {
  params: readonly string[] | null;
  returnsVoid: boolean;
  /** sizeof(long): the default type is x32 or x64, symbol takes one long. */
  wordSize: 4 | 8;
  /** The image's BTF and the type ids of the parameters and the return value, when known. */
  btf?: Btf;
  paramTypes?: readonly number[];
  returnType?: number;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

const BASIC: Record<string, [number, boolean, boolean]> = {
  u8: [1, false, false],
  u16: [2, false, false],
  u32: [4, false, false],
  u64: [8, false, false],
  s8: [1, true, false],
  s16: [2, true, false],
  s32: [4, true, false],
  s64: [8, true, false],
  x8: [1, false, true],
  x16: [2, false, true],
  x32: [4, false, true],
  x64: [8, false, true],
  char: [1, false, false],
  string: [4, false, false],
  ustring: [4, false, false],
  symbol: [8, false, true],
  symstr: [4, false, false],
};

/** The parameter names and void-ness of a function in the image's BTF, or null when absent. */
export function imageTarget(image: KernelImage, sym: string): ProbeTarget | null {
  const fn = image.indexOf(sym);
  if (fn < 0) return null;
  const btf = image.btf;
  const f = image.functions[fn];
  const wordSize = image.arch === 'i386' ? 4 : 8;
  if (btf === null || f === undefined) return { params: null, returnsVoid: false, wordSize };
  const t = btf.type(f.btfId);
  const proto = t !== undefined && t.kind === 'func' ? btf.type(t.type) : undefined;
  if (proto === undefined || proto.kind !== 'func_proto')
    return { params: null, returnsVoid: false, wordSize };
  return {
    params: proto.params.map((p) => p.name),
    returnsVoid: proto.returnType === 0,
    wordSize,
    btf,
    paramTypes: proto.params.map((p) => p.type),
    returnType: proto.returnType,
  };
}

/**
 * Parses a dynamic_events fprobe definition `f[:[GRP/][EVENT]] SYM[%return] [ARGS]` (and
 * `-:[GRP/]EVENT` deletions are handled by FprobeEvents). Throws ProbeParseError with the
 * kernel's caret position.
 */
export function parseFprobeEvent(
  command: string,
  lookup: (sym: string) => ProbeTarget | null,
): FprobeEvent {
  const toks: { text: string; pos: number }[] = [];
  for (const m of command.matchAll(/\S+/g)) toks.push({ text: m[0], pos: m.index });
  const fail = (err: ProbeErrorName, pos: number): never => {
    throw new ProbeParseError(err, pos, command);
  };
  const head = toks[0] ?? fail('BAD_PROBE_ADDR', 0);
  let group = FPROBE_EVENT_SYSTEM;
  let event: string | null = null;
  const colon = head.text.indexOf(':');
  const kind = colon < 0 ? head.text : head.text.slice(0, colon);
  if (kind !== 'f') fail('BAD_MAXACT', head.pos + 1);
  if (colon >= 0) {
    const spec = head.text.slice(colon + 1);
    const at = head.pos + colon + 1;
    const slash = spec.indexOf('/');
    if (slash >= 0) {
      const g = spec.slice(0, slash);
      if (g.length === 0) fail('NO_GROUP_NAME', at);
      if (g.length >= MAX_EVENT_NAME_LEN) fail('GROUP_TOO_LONG', at);
      if (!IDENT.test(g)) fail('BAD_GROUP_NAME', at);
      group = g;
    }
    const e = spec.slice(slash + 1);
    const eat = at + slash + 1;
    if (e.length === 0 && slash < 0) fail('NO_EVENT_NAME', eat);
    if (e.length >= MAX_EVENT_NAME_LEN) fail('EVENT_TOO_LONG', eat);
    if (e.length > 0 && !IDENT.test(e)) fail('BAD_EVENT_NAME', eat);
    if (e.length > 0) event = e;
  }
  const symTok = toks[1] ?? fail('BAD_PROBE_ADDR', head.pos + head.text.length);
  let sym = symTok.text;
  let isReturn = false;
  const pct = sym.indexOf('%');
  if (pct >= 0) {
    if (sym.slice(pct) !== '%return') fail('BAD_ADDR_SUFFIX', symTok.pos + pct);
    isReturn = true;
    sym = sym.slice(0, pct);
  }
  const target = IDENT.test(sym) ? lookup(sym) : null;
  if (target === null) fail('BAD_PROBE_ADDR', symTok.pos);
  const t = target as ProbeTarget;
  const args: ProbeArg[] = [];
  const argToks = expandMetaArgs(toks.slice(2), t, fail);
  if (argToks.length > MAX_TRACE_ARGS)
    fail('TOO_MANY_ARGS', (argToks[MAX_TRACE_ARGS] as { pos: number }).pos);
  for (const [i, tok] of argToks.entries()) {
    args.push(parseProbeArg(tok.text, tok.pos, i, args, t, isReturn, fail));
  }
  const ev: FprobeEvent = {
    group,
    event: event ?? `${sym}__${isReturn ? 'exit' : 'entry'}`,
    symbol: sym,
    isReturn,
    args,
  };
  // Every saved entry argument takes one long of the fprobe's entry data.
  if (entryArgs(ev).length > FPROBE_DATA_SIZE_MAX_LONGS) {
    fail('TOO_MANY_EARGS', (argToks[0] as { pos: number }).pos);
  }
  return ev;
}

/**
 * traceprobe_expand_meta_args: with BTF parameters, a bare `$argN[:TYPE]` becomes the N-th
 * parameter's name (so it is named and typed as that BTF argument) and `$arg*` becomes every
 * parameter; without them `$argN` stays and `$arg*` is refused. The rewritten arguments keep the
 * position of the text they replace, for carets.
 */
function expandMetaArgs(
  toks: readonly { text: string; pos: number }[],
  target: ProbeTarget,
  fail: (err: ProbeErrorName, pos: number) => never,
): { text: string; pos: number }[] {
  const params = target.params ?? [];
  const out: { text: string; pos: number }[] = [];
  let all = false;
  for (const tok of toks) {
    if (!tok.text.startsWith('$arg')) {
      out.push(tok);
      continue;
    }
    const c = tok.text[4] ?? '';
    if (c === '*') {
      if (all) fail('DOUBLE_ARGS', tok.pos);
      all = true;
      if (params.length === 0) fail('NOSUP_BTFARG', tok.pos);
      for (const p of params) out.push({ text: p, pos: tok.pos });
      continue;
    }
    if (!/[0-9]/.test(c)) fail('BAD_VAR', tok.pos);
    if (params.length === 0) {
      out.push(tok);
      continue;
    }
    const m = /^\$arg(\d+)(.*)$/.exec(tok.text) as RegExpExecArray;
    const type = m[2] as string;
    if (type !== '' && !type.startsWith(':')) fail('BAD_VAR', tok.pos);
    const n = Number(m[1]);
    if (n < 1) fail('BAD_ARG_NUM', tok.pos);
    if (n > params.length) fail('NO_BTFARG', tok.pos);
    out.push({ text: `${params[n - 1] as string}${type}`, pos: tok.pos });
  }
  return out;
}

function parseProbeArg(
  text: string,
  pos: number,
  index: number,
  prev: readonly ProbeArg[],
  target: ProbeTarget,
  isReturn: boolean,
  fail: (err: ProbeErrorName, pos: number) => never,
): ProbeArg {
  if (text.length > MAX_ARGSTR_LEN) fail('ARG_TOO_LONG', pos);
  let name: string;
  let body = text;
  let bodyPos = pos;
  const eq = text.indexOf('=');
  if (eq >= 0) {
    name = text.slice(0, eq);
    if (name.length === 0) fail('NO_ARG_NAME', pos);
    if (name.length > MAX_ARG_NAME_LEN) fail('ARG_NAME_TOO_LONG', pos);
    if (!IDENT.test(name)) fail('BAD_ARG_NAME', pos);
    body = text.slice(eq + 1);
    bodyPos = pos + eq + 1;
    if (body.length === 0) fail('NO_ARG_BODY', bodyPos);
  } else {
    // generate_probe_arg_name: the text before any ':' if it is an identifier, else argN.
    const bare = text.split(':')[0] as string;
    name = IDENT.test(bare) ? bare : `arg${index + 1}`;
  }
  if (prev.some((a) => a.name === name)) fail('USED_ARG_NAME', pos);
  // The type follows the last ':' outside an immediate string.
  let typeText: string | null = null;
  let typePos = 0;
  const colon = body.startsWith('\\"') ? -1 : body.lastIndexOf(':');
  if (colon >= 0) {
    typeText = body.slice(colon + 1);
    typePos = bodyPos + colon + 1;
    body = body.slice(0, colon);
  }
  const ctx: BtfContext = { last: null };
  let fetch = parseFetch(body, bodyPos, target, isReturn, 0, fail, ctx);
  const last = ctx.last as BtfLast | null;
  let type: FetchType;
  if (last !== null && typeText === null) type = btfType(last, target);
  else {
    type = parseType(typeText, typePos, fetch, target.wordSize, fail);
    if (last !== null && (type.name === 'string' || type.name === 'ustring')) {
      fetch = btfString(last, fetch, type.name === 'ustring', fail);
    }
  }
  return { name, fetch, type, comm: text.slice(eq + 1) };
}

/** The BTF type a fetch ended on (ctx->last_type) and where its last field name stood. */
interface BtfLast {
  btf: Btf;
  /** Type id with modifiers and typedefs skipped. */
  type: number;
  bitoffs: number;
  bitsize: number;
  pos: number;
}
interface BtfContext {
  last: BtfLast | null;
}

/** fetch_type_from_btf_type: the fetch type a BTF type stores as when none is given. */
function btfType(last: BtfLast, target: ProbeTarget): FetchType {
  const t = last.btf.type(last.type);
  const word = `x${target.wordSize * 8}`;
  const bitfield = (size: number, width: number) => ({
    ...basic(`u${size * 8}`, null),
    bitfield: { width, offset: last.bitoffs, container: size * 8 },
  });
  switch (t?.kind) {
    case 'enum':
      return basic('s32', null);
    case 'enum64':
      return basic('s64', null);
    case 'ptr':
      return basic(word, null);
    case 'int': {
      if (last.bitsize !== 0 || last.bitoffs !== 0) return bitfield(t.size, last.bitsize || t.bits);
      if (t.bits !== t.size * 8) return bitfield(8, t.bits);
      return basic(`${(t.encoding & 1) !== 0 ? 's' : 'u'}${t.bits}`, null);
    }
    default:
      return basic(word, null);
  }
}

/** check_prepare_btf_string_fetch: char[] is the string, char * is dereferenced once more. */
function btfString(
  last: BtfLast,
  fetch: FetchArg,
  user: boolean,
  fail: (err: ProbeErrorName, pos: number) => never,
): FetchArg {
  const t = last.btf.type(last.type);
  const isChar = (id: number) => {
    const c = last.btf.type(last.btf.resolve(id));
    return c?.kind === 'int' && c.bits === 8 && (c.encoding & 1) === 0;
  };
  if (t?.kind === 'array' && isChar(t.type)) return fetch;
  if (t?.kind === 'ptr' && isChar(t.type)) return { kind: 'deref', offset: 0, user, inner: fetch };
  return fail('BAD_TYPE4STR', last.pos);
}

/**
 * parse_btf_field: `->` follows a pointer to a struct or union (one dereference per arrow),
 * `.` steps into an embedded member; offsets come from the image's BTF.
 */
function btfField(
  btf: Btf,
  base: FetchArg,
  typeId: number,
  text: string,
  pos: number,
  ctx: BtfContext,
  fail: (err: ProbeErrorName, pos: number) => never,
): FetchArg {
  let fetch = base;
  let type = btf.resolve(typeId);
  let rest: string | null = text;
  let at = pos;
  while (rest !== null) {
    const ptr = btf.type(type);
    if (ptr?.kind !== 'ptr') return fail('NO_PTR_STRCT', at);
    type = btf.resolve(ptr.type);
    let bitoffs = 0;
    let bitsize = 0;
    let arrow = false;
    do {
      const cur: string = rest;
      const sep = cur.search(/[.-]/);
      let name = cur;
      rest = null;
      let next = cur.length;
      if (sep >= 0) {
        if (cur[sep] === '-' && cur[sep + 1] !== '>') return fail('BAD_HYPHEN', at + sep);
        arrow = cur[sep] === '-';
        name = cur.slice(0, sep);
        next = sep + (arrow ? 2 : 1);
        rest = cur.slice(next);
      } else arrow = false;
      let loc: { bitsOffset: number; bitfieldSize: number; type: number };
      try {
        loc = btf.offsetOf(name, type);
      } catch {
        return fail('NO_BTF_FIELD', at);
      }
      bitoffs += loc.bitsOffset;
      bitsize = loc.bitfieldSize;
      type = btf.resolve(loc.type);
      ctx.last = { btf, type, bitoffs: bitoffs % 8, bitsize, pos: at };
      at += next;
    } while (!arrow && rest !== null);
    fetch = { kind: 'deref', offset: Math.floor(bitoffs / 8), user: false, inner: fetch };
  }
  return fetch;
}

/** A BTF variable (argument name or $retval) with an optional `->field` chain. */
function btfVariable(
  s: string,
  pos: number,
  target: ProbeTarget,
  isReturn: boolean,
  ctx: BtfContext,
  fail: (err: ProbeErrorName, pos: number) => never,
): FetchArg {
  const sep = s.search(/[.-]/);
  const head = sep < 0 ? s : s.slice(0, sep);
  let field: string | null = null;
  if (sep >= 0) {
    if (s[sep] === '.') return fail('NOSUP_DAT_ARG', pos + sep + 1);
    if (s[sep + 1] !== '>') return fail('BAD_HYPHEN', pos + sep);
    field = s.slice(sep + 2);
  }
  let fetch: FetchArg;
  let typeId: number | undefined;
  if (head === '$retval') {
    if (!isReturn) return fail('RETVAL_ON_PROBE', pos);
    if (target.returnsVoid) return fail('NO_RETVAL', pos);
    fetch = { kind: 'retval' };
    typeId = target.returnType;
  } else {
    const i = target.params === null ? -1 : target.params.indexOf(head);
    if (i < 0 || !IDENT.test(head)) return fail('NO_BTFARG', pos);
    fetch = { kind: 'btfarg', name: head, index: i };
    typeId = target.paramTypes?.[i];
  }
  const btf = target.btf;
  if (btf === undefined || typeId === undefined) return fetch;
  ctx.last = { btf, type: btf.resolve(typeId), bitoffs: 0, bitsize: 0, pos };
  if (field === null) return fetch;
  return btfField(btf, fetch, typeId, field, pos + sep + 2, ctx, fail);
}

function parseFetch(
  s: string,
  pos: number,
  target: ProbeTarget,
  isReturn: boolean,
  depth: number,
  fail: (err: ProbeErrorName, pos: number) => never,
  ctx: BtfContext,
): FetchArg {
  const num = (t: string): number | null => (/^\d+$/.test(t) ? Number(t) : null);
  const c = s[0];
  if (c === '$') {
    const v = s.slice(1);
    if (v.startsWith('retval')) return btfVariable(s, pos, target, isReturn, ctx, fail);
    if (v === 'comm' || v === 'COMM') return { kind: 'comm' };
    if (v === 'stack') return { kind: 'stack', n: null };
    if (v.startsWith('stack')) {
      const n = num(v.slice(5));
      if (n === null || n > PARAM_MAX_STACK) fail('BAD_STACK_NUM', pos);
      return { kind: 'stack', n: n as number };
    }
    if (v.startsWith('arg')) {
      // $arg* expands only as a whole argument of its own (expandMetaArgs).
      if (v === 'arg*') fail('BAD_VAR_ARGS', pos);
      const n = num(v.slice(3));
      if (n === null) fail('BAD_VAR', pos);
      if ((n as number) < 1 || (n as number) > PARAM_MAX_STACK) fail('BAD_ARG_NUM', pos);
      return { kind: 'arg', n: n as number };
    }
    return fail('BAD_VAR', pos);
  }
  if (c === '%') return fail('BAD_VAR', pos);
  if (c === '@') {
    const rest = s.slice(1);
    if (rest.startsWith('+') || rest.startsWith('-')) return fail('FILE_ON_KPROBE', pos);
    if (/^\d/.test(rest)) {
      if (!/^(0x[0-9a-fA-F]+|\d+)$/.test(rest)) fail('BAD_MEM_ADDR', pos);
      return { kind: 'mem', addr: BigInt(rest) };
    }
    const m = /^([A-Za-z_][A-Za-z0-9_.]*)([+-]\d+)?$/.exec(rest);
    if (m === null) return fail('BAD_MEM_ADDR', pos);
    return { kind: 'sym', name: m[1] as string, offset: Number(m[2] ?? 0) };
  }
  if (c === '\\') {
    const rest = s.slice(1);
    if (rest.startsWith('"')) {
      if (rest.length < 2 || !rest.endsWith('"')) fail('IMMSTR_NO_CLOSE', pos + s.length);
      return { kind: 'immstr', value: rest.slice(1, -1) };
    }
    if (!/^-?(0x[0-9a-fA-F]+|\d+)$/.test(rest)) fail('BAD_IMM', pos + 1);
    const neg = rest.startsWith('-');
    const v = BigInt(neg ? rest.slice(1) : rest);
    return { kind: 'imm', value: BigInt.asUintN(64, neg ? -v : v) };
  }
  if (c === '+' || c === '-' || (c === 'u' && (s[1] === '+' || s[1] === '-'))) {
    const user = c === 'u';
    const open = s.indexOf('(');
    if (open < 0) fail('DEREF_NEED_BRACE', pos);
    const offText = s.slice(user ? 1 : 0, open);
    if (!/^[+-](0x[0-9a-fA-F]+|\d+)$/.test(offText)) fail('BAD_DEREF_OFFS', pos);
    const close = s.lastIndexOf(')');
    if (close < open) fail('DEREF_OPEN_BRACE', pos + s.length);
    if (depth + 1 > MAX_DEREF) fail('TOO_MANY_OPS', pos);
    const inner = s.slice(open + 1, close);
    const innerPos = pos + open + 1;
    const sign = offText.startsWith('-') ? -1 : 1;
    const f = parseFetch(inner, innerPos, target, isReturn, depth + 1, fail, ctx);
    // A dereference stores what the user's type says, not the BTF type.
    ctx.last = null;
    if (f.kind === 'comm') fail('COMM_CANT_DEREF', innerPos);
    if (close !== s.length - 1) fail('BAD_FETCH_ARG', pos + close + 1);
    return { kind: 'deref', offset: sign * Number(offText.slice(1)), user, inner: f };
  }
  if (/^[A-Za-z_]/.test(s)) return btfVariable(s, pos, target, isReturn, ctx, fail);
  return fail('BAD_FETCH_ARG', pos);
}

function parseType(
  text: string | null,
  pos: number,
  fetch: FetchArg,
  wordSize: number,
  fail: (err: ProbeErrorName, pos: number) => never,
): FetchType {
  const isString = (n: string) => n === 'string' || n === 'ustring' || n === 'symstr';
  if (text === null) {
    if (fetch.kind === 'comm' || fetch.kind === 'immstr') return basic('string', null);
    return basic(`x${wordSize * 8}`, null);
  }
  let t = text;
  let array: number | null = null;
  const lb = t.indexOf('[');
  if (lb >= 0) {
    const rb = t.indexOf(']', lb);
    if (rb < 0) fail('ARRAY_NO_CLOSE', pos + t.length);
    if (rb !== t.length - 1) fail('BAD_ARRAY_SUFFIX', pos + rb + 1);
    const n = t.slice(lb + 1, rb);
    if (!/^\d+$/.test(n) || Number(n) === 0) fail('BAD_ARRAY_NUM', pos + lb + 1);
    if (Number(n) > MAX_ARRAY_LEN) fail('ARRAY_TOO_BIG', pos + lb + 1);
    array = Number(n);
    t = t.slice(0, lb);
  }
  if (t.startsWith('b') && /^b\d/.test(t)) {
    const m = /^b(\d+)@(\d+)\/(8|16|32|64)$/.exec(t);
    if (m === null) return fail('BAD_BITFIELD', pos);
    const width = Number(m[1]);
    const offset = Number(m[2]);
    const container = Number(m[3]);
    if (width === 0 || width + offset > container) fail('BAD_BITFIELD', pos);
    return { ...basic(`u${container}`, array), bitfield: { width, offset, container } };
  }
  if (!(t in BASIC)) fail('BAD_TYPE', pos);
  if (isString(t)) {
    const memory = fetch.kind === 'deref' || fetch.kind === 'mem' || fetch.kind === 'sym';
    const ok =
      memory ||
      fetch.kind === 'comm' ||
      fetch.kind === 'immstr' ||
      fetch.kind === 'btfarg' ||
      fetch.kind === 'arg';
    if (!ok) fail('BAD_STRING', pos);
  }
  // symbol holds one long.
  return t === 'symbol' ? { ...basic(t, array), size: wordSize } : basic(t, array);
}

function basic(name: string, array: number | null): FetchType {
  const b = BASIC[name] as [number, boolean, boolean];
  return { name, size: b[0], signed: b[1], hex: b[2], array, bitfield: null };
}

/**
 * The entry arguments a %return event saves at entry (__store_entry_arg): every $argN and BTF
 * argument its fetches start from, once each, in first-use order. Argument registers are not
 * valid at function exit, so the exit side reads these saved values (FETCH_OP_EDATA).
 */
export function entryArgs(ev: FprobeEvent): FetchArg[] {
  if (!ev.isReturn) return [];
  const out: FetchArg[] = [];
  const visit = (f: FetchArg) => {
    if (f.kind === 'deref') return visit(f.inner);
    if (f.kind !== 'arg' && f.kind !== 'btfarg') return;
    if (!out.some((o) => entryArgKey(o) === entryArgKey(f))) out.push(f);
  };
  for (const a of ev.args) visit(a.fetch);
  return out;
}

/** What identifies a saved entry argument: the register word ($argN) or the BTF parameter. */
export function entryArgKey(f: FetchArg): string {
  return f.kind === 'arg' ? `a${f.n}` : f.kind === 'btfarg' ? `b${f.index}` : '';
}

/** A definition as dynamic_events lists it. */
export function formatFprobeEvent(ev: FprobeEvent): string {
  const args = ev.args.map((a) => ` ${a.name}=${a.comm}`).join('');
  return `f:${ev.group}/${ev.event} ${ev.symbol}${ev.isReturn ? '%return' : ''}${args}`;
}
