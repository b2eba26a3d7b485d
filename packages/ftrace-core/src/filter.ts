import { FtraceError } from './errors.js';

/** How a set_ftrace_filter word matches a name (enum regex_type in the kernel). */
export const MATCH_FULL = 0;
export const MATCH_FRONT_ONLY = 1;
export const MATCH_MIDDLE_ONLY = 2;
export const MATCH_END_ONLY = 3;
export const MATCH_GLOB = 4;
export const MATCH_INDEX = 5;
export type MatchType =
  | typeof MATCH_FULL
  | typeof MATCH_FRONT_ONLY
  | typeof MATCH_MIDDLE_ONLY
  | typeof MATCH_END_ONLY
  | typeof MATCH_GLOB
  | typeof MATCH_INDEX;

/** A parsed search word (struct ftrace_glob plus the `!` of filter_parse_regex). */
export interface FtraceGlob {
  readonly type: MatchType;
  readonly search: string;
  /** The word started with `!`: remove matches instead of adding them. */
  readonly not: boolean;
}

/**
 * filter_parse_regex(): a leading `!` negates; a leading digit selects by index; `*` first is a
 * suffix match, `*` last a prefix match, both a substring match; a `*` inside or any of `?[\`
 * makes the whole word a glob.
 */
export function filterParseRegex(word: string): FtraceGlob {
  let buff = word;
  let not = false;
  if (buff.startsWith('!')) {
    not = true;
    buff = buff.slice(1);
  }
  const c0 = buff.charCodeAt(0);
  if (c0 >= 0x30 && c0 <= 0x39) return { type: MATCH_INDEX, search: buff, not };
  let type: MatchType = MATCH_FULL;
  let search = buff;
  for (let i = 0; i < buff.length; i++) {
    const c = buff[i];
    if (c === '*') {
      if (i === 0) type = MATCH_END_ONLY;
      else if (i === buff.length - 1) {
        type = type === MATCH_END_ONLY ? MATCH_MIDDLE_ONLY : MATCH_FRONT_ONLY;
        search = buff.slice(0, i);
        break;
      } else return { type: MATCH_GLOB, search: buff, not };
    } else if (c === '?' || c === '[' || c === '\\') {
      return { type: MATCH_GLOB, search: buff, not };
    }
  }
  if (search.startsWith('*')) search = search.slice(1);
  return { type, search, not };
}

/**
 * glob_match() of lib/glob.c: `*` any run, `?` one character, `[...]` a class with ranges and
 * a leading `!` to invert, `\` escapes the next character.
 */
export function globMatch(pat: string, str: string): boolean {
  let p = 0;
  let s = 0;
  let backP = -1;
  let backS = -1;
  for (;;) {
    const c = s < str.length ? str[s] : '';
    const d = p < pat.length ? pat[p] : '';
    let ok = true;
    if (d === '' && c === '') return true;
    if (d === '*') {
      backP = ++p;
      backS = s;
      continue;
    }
    if (c === '') ok = false;
    else if (d === '?') p++;
    else if (d === '[') {
      let q = p + 1;
      const inverted = pat[q] === '!';
      if (inverted) q++;
      let match = false;
      let first = true;
      // `]` right after `[` (or `[!`) is a literal member of the class.
      while (q < pat.length && (first || pat[q] !== ']')) {
        first = false;
        let a = pat[q] as string;
        let b = a;
        if (pat[q + 1] === '-' && q + 2 < pat.length && pat[q + 2] !== ']') {
          b = pat[q + 2] as string;
          q += 3;
        } else q++;
        if (a > b) [a, b] = [b, a];
        if (c >= a && c <= b) match = true;
      }
      if (q >= pat.length || match === inverted) ok = false;
      else p = q + 1;
    } else {
      let lit = d;
      let adv = 1;
      if (d === '\\' && p + 1 < pat.length) {
        lit = pat[p + 1] as string;
        adv = 2;
      }
      if (c !== lit) ok = false;
      else p += adv;
    }
    if (ok) {
      s++;
      continue;
    }
    // Mismatch: retry from the last `*` consuming one more character, or fail.
    if (backP < 0 || backS >= str.length) return false;
    p = backP;
    s = ++backS;
  }
}

/** ftrace_match(): one name against a parsed word (index words never match by name). */
export function ftraceMatch(name: string, g: FtraceGlob): boolean {
  switch (g.type) {
    case MATCH_FULL:
      return name === g.search;
    case MATCH_FRONT_ONLY:
      return name.startsWith(g.search);
    case MATCH_MIDDLE_ONLY:
      return name.includes(g.search);
    case MATCH_END_ONLY:
      return name.endsWith(g.search);
    case MATCH_GLOB:
      return globMatch(g.search, name);
    default:
      return false;
  }
}

/** One traceable function, as available_filter_functions lists it. */
export interface FilterFunction {
  /** The function's index in the kernel image; hashes are keyed by it. */
  readonly id: number;
  readonly name: string;
  readonly module: string | null;
}

/**
 * The functions a hash may hold, in available_filter_functions order (by address, as the
 * kernel sorts its dyn_ftrace records). Index words count from 1 in this order.
 */
export class FilterTable {
  declare readonly functions: readonly FilterFunction[];
  /** One more than the largest id: the size of every hash bitmap over this table. */
  declare readonly idLimit: number;
  declare private readonly byId: Int32Array;

  constructor(functions: readonly FilterFunction[]) {
    this.functions = functions;
    let limit = 0;
    for (const f of functions) limit = Math.max(limit, f.id + 1);
    this.idLimit = limit;
    this.byId = new Int32Array(limit).fill(-1);
    functions.forEach((f, i) => {
      this.byId[f.id] = i;
    });
  }

  /** Position of a function id in the table, or -1 when it is not traceable. */
  position(id: number): number {
    return id >= 0 && id < this.idLimit ? (this.byId[id] as number) : -1;
  }

  /** `name` or `name [module]`, as %ps prints a symbol. */
  label(id: number): string {
    const f = this.functions[this.position(id)];
    if (f === undefined) return `#${id}`;
    return f.module === null ? f.name : `${f.name} [${f.module}]`;
  }

  /** available_filter_functions. */
  format(): string {
    let out = '';
    for (const f of this.functions) out += `${this.label(f.id)}\n`;
    return out;
  }
}

/**
 * struct ftrace_hash: a set of functions, as a bitmap over image function indices so the traced
 * call tests membership with one typed-array load. Empty means "all functions" for a filter.
 */
export class FtraceHash {
  declare readonly bits: Uint8Array;
  count = 0;
  /** `:mod:` words that matched nothing yet, kept as the kernel's module cache keeps them. */
  readonly modCache: { func: string; module: string }[] = [];

  constructor(size: number) {
    this.bits = new Uint8Array(size);
  }

  get size(): number {
    return this.bits.length;
  }

  get empty(): boolean {
    return this.count === 0;
  }

  has(id: number): boolean {
    return this.bits[id] === 1;
  }

  add(id: number): void {
    if (this.bits[id] !== 1) {
      this.bits[id] = 1;
      this.count++;
    }
  }

  remove(id: number): void {
    if (this.bits[id] === 1) {
      this.bits[id] = 0;
      this.count--;
    }
  }

  clear(): void {
    this.bits.fill(0);
    this.count = 0;
    this.modCache.length = 0;
  }

  copyFrom(other: FtraceHash): void {
    this.bits.set(other.bits);
    this.count = other.count;
    this.modCache.length = 0;
    this.modCache.push(...other.modCache.map((m) => ({ ...m })));
  }

  /** Member ids in ascending order. */
  ids(): number[] {
    const out: number[] = [];
    const b = this.bits;
    for (let i = 0; i < b.length; i++) if (b[i] === 1) out.push(i);
    return out;
  }
}

/**
 * A `func:command[:param]` handler (struct ftrace_func_command). `mod` is built in; tracers add
 * traceon, traceoff, stacktrace and the like.
 */
export interface FtraceCommand {
  readonly name: string;
  run(
    hash: FtraceHash,
    table: FilterTable,
    func: string,
    param: string | null,
    enable: boolean,
  ): FtraceError | null;
}

/**
 * match_records(): adds (or with `!` removes) every function matching `func`, optionally
 * restricted by a module word (`!NAME` excludes that module, empty means any module). Returns
 * whether anything matched.
 */
export function matchRecords(
  hash: FtraceHash,
  table: FilterTable,
  func: string,
  mod: string | null,
): boolean {
  const g = filterParseRegex(func);
  if (g.type === MATCH_INDEX) {
    const f = table.functions[parseIndex(g.search) - 1];
    if (f === undefined) return false;
    if (g.not) hash.remove(f.id);
    else hash.add(f.id);
    return true;
  }
  const mg = mod === null ? null : filterParseRegex(mod);
  let found = false;
  for (const f of table.functions) {
    if (mg !== null) {
      if (mg.search.length === 0) {
        // A blank module word matches every module, or with `!` every built-in function.
        if (mg.not === (f.module !== null)) continue;
      } else {
        const modMatches = f.module !== null && ftraceMatch(f.module, mg);
        if (modMatches === mg.not) continue;
      }
      if (g.search.length === 0) {
        enter(hash, f.id, g.not);
        found = true;
        continue;
      }
    }
    if (ftraceMatch(f.name, g)) {
      enter(hash, f.id, g.not);
      found = true;
    }
  }
  return found;
}

function enter(hash: FtraceHash, id: number, remove: boolean): void {
  if (remove) hash.remove(id);
  else hash.add(id);
}

/** simple_strtoul(s, NULL, 0): leading digits in base 0 (0x hex, 0 octal), garbage after ignored. */
function parseIndex(s: string): number {
  const m = /^0[xX]([0-9a-fA-F]+)/.exec(s);
  if (m !== null) return parseInt(m[1] as string, 16);
  if (s.startsWith('0')) {
    const o = /^0([0-7]*)/.exec(s) as RegExpExecArray;
    return o[1] === '' ? 0 : parseInt(o[1] as string, 8);
  }
  return parseInt(/^[0-9]+/.exec(s)?.[0] ?? '0', 10);
}

/** The `mod` command: `func:mod:module`; an unmatched module is cached, not an error. */
export const MOD_COMMAND: FtraceCommand = {
  name: 'mod',
  run(hash, table, func, param) {
    if (param === null) return new FtraceError('EINVAL', `'${func}:mod' names no module`);
    if (matchRecords(hash, table, func, param)) return null;
    hash.modCache.push({ func, module: param });
    return null;
  },
};

export interface FilterWriteOptions {
  /** O_APPEND (`>>`) keeps the hash; a plain open (`>`) truncates it first. */
  readonly append?: boolean;
  /** Commands beyond `mod`, by name. */
  readonly commands?: ReadonlyMap<string, FtraceCommand>;
  /** Writing set_ftrace_filter (true) or set_ftrace_notrace (false). */
  readonly enable?: boolean;
}

/**
 * A write to set_ftrace_filter / set_ftrace_notrace: whitespace-separated words, each a
 * function pattern or `func:command[:param]`. Words apply in order; the first failing word
 * stops the write with EINVAL naming it and its offset, and earlier words stay applied, as
 * ftrace_regex_write leaves them.
 */
export function writeFilter(
  hash: FtraceHash,
  table: FilterTable,
  text: string,
  options: FilterWriteOptions = {},
): FtraceError | null {
  if (options.append !== true) hash.clear();
  const re = /\S+/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const word = m[0];
    const err = processRegex(hash, table, word, options);
    if (err !== null) {
      return new FtraceError(err.code, `${err.message} (word '${word}' at offset ${m.index})`, {
        offset: m.index,
      });
    }
  }
  return null;
}

/** ftrace_process_regex(): one word. */
function processRegex(
  hash: FtraceHash,
  table: FilterTable,
  word: string,
  options: FilterWriteOptions,
): FtraceError | null {
  const colon = word.indexOf(':');
  if (colon < 0) {
    if (matchRecords(hash, table, word, null)) return null;
    return new FtraceError('EINVAL', `no traceable function matches '${word}'`);
  }
  const func = word.slice(0, colon);
  const rest = word.slice(colon + 1);
  const c2 = rest.indexOf(':');
  const command = c2 < 0 ? rest : rest.slice(0, c2);
  const param = c2 < 0 ? null : rest.slice(c2 + 1);
  const cmd = command === MOD_COMMAND.name ? MOD_COMMAND : options.commands?.get(command);
  if (cmd === undefined) {
    return new FtraceError('EINVAL', `unknown ftrace command '${command}'`);
  }
  return cmd.run(hash, table, func, param, options.enable ?? true);
}

/**
 * Reading set_ftrace_filter or set_ftrace_notrace: the hashed functions in table order, then
 * cached module words; an empty filter reads as all functions enabled.
 */
export function formatFilter(hash: FtraceHash, table: FilterTable, isFilter: boolean): string {
  if (hash.empty && hash.modCache.length === 0) {
    return isFilter ? '#### all functions enabled ####\n' : '';
  }
  let out = '';
  for (const f of table.functions) if (hash.has(f.id)) out += `${table.label(f.id)}\n`;
  for (const m of hash.modCache) out += `${m.func}:mod:${m.module}\n`;
  return out;
}
