import type { Btf } from './btf.js';
import { BtfError } from './error.js';
import { funcModel, summarizeFuncModels, type FuncModel } from './func-model.js';

/** One function as `tracelab btf funcs` lists it. */
export interface FuncListing {
  id: number;
  name: string;
  /** The C prototype, e.g. `int wake_up_process(struct task_struct *p)`. */
  prototype: string;
  model?: FuncModel;
  /** The kernel's rejection text when no model can be distilled. */
  rejected?: string;
}

/** Shell-style glob (`*`, `?`, `[...]`) to a RegExp matching a whole name. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end < 0) throw new BtfError('EINVAL', `unterminated '[' in glob '${glob}' at ${i}`);
      let set = glob.slice(i + 1, end).replace(/\\/g, '\\\\');
      if (set.startsWith('!')) set = `^${set.slice(1)}`;
      re += `[${set}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

function paramDecl(btf: Btf, type: number, name: string): string {
  return cDecl(btf, type, name);
}

/** A compact C declaration of `name` with type `id` (named types only, no inline bodies). */
export function cDecl(btf: Btf, id: number, name: string): string {
  const join = (base: string, d: string) => (d === '' ? base : `${base} ${d}`);
  if (id === 0) return join('void', name);
  const t = btf.type(id);
  if (t === undefined) return join('void', name);
  switch (t.kind) {
    case 'ptr': {
      const target = btf.type(btf.resolve(t.type));
      const inner = name.startsWith('(') ? `* ${name}` : `*${name}`;
      return cDecl(
        btf,
        t.type,
        target?.kind === 'func_proto' || target?.kind === 'array' ? `(${inner})` : inner,
      );
    }
    case 'const':
    case 'volatile':
    case 'restrict': {
      const target = btf.type(t.type);
      return target?.kind === 'ptr'
        ? cDecl(btf, t.type, join(t.kind, name))
        : `${t.kind} ${cDecl(btf, t.type, name)}`;
    }
    case 'type_tag':
      return cDecl(btf, t.type, name);
    case 'array':
      return cDecl(btf, t.type, `${name}[${t.nelems}]`);
    case 'func_proto': {
      const ps = t.params.map((p) => (p.type === 0 ? '...' : paramDecl(btf, p.type, p.name)));
      return cDecl(btf, t.returnType, `${name}(${ps.length ? ps.join(', ') : 'void'})`);
    }
    case 'struct':
    case 'union':
      return join(`${t.kind} ${t.name || '(anon)'}`, name);
    case 'enum':
    case 'enum64':
      return join(`enum ${t.name || '(anon)'}`, name);
    case 'fwd':
      return join(`${t.union ? 'union' : 'struct'} ${t.name}`, name);
    default:
      return join(t.name, name);
  }
}

/** Functions whose names match `glob` (all when omitted), with prototypes and optionally models. */
export function listFuncs(btf: Btf, glob?: string, opts: { model?: boolean } = {}): FuncListing[] {
  const re = glob === undefined ? undefined : globToRegExp(glob);
  const out: FuncListing[] = [];
  for (const f of btf.funcs()) {
    if (re && !re.test(f.name)) continue;
    const item: FuncListing = { id: f.id, name: f.name, prototype: cDecl(btf, f.protoId, f.name) };
    if (opts.model) {
      const r = funcModel(btf, f.id);
      if (r.ok) item.model = r.model;
      else
        item.rejected = r.error.message.replace(/^EINVAL: /, '').replace(/ \(type id \d+\)$/, '');
    }
    out.push(item);
  }
  return out;
}

/** Text for `tracelab btf funcs`: one line per function, or the summary with `summary`. */
export function formatFuncs(
  btf: Btf,
  glob?: string,
  opts: { model?: boolean; summary?: boolean } = {},
): string {
  if (opts.summary) {
    const s = summarizeFuncModels(btf);
    const lines = [
      `functions: ${s.functions}`,
      `modeled: ${s.modeled}`,
      `distinct models: ${s.distinctModels} (${s.distinctSizeModels} by sizes only)`,
      `take a struct by value: ${s.structArgs}`,
      `rejected: ${s.rejected}`,
      ...Object.entries(s.rejectedBy)
        .sort((a, b) => b[1] - a[1])
        .map(([why, n]) => `  ${n}\t${why}`),
    ];
    return lines.join('\n') + '\n';
  }
  const lines = listFuncs(btf, glob, opts).map((f) => {
    if (!opts.model) return `${f.prototype};`;
    if (f.rejected) return `${f.prototype};\t# rejected: ${f.rejected}`;
    const m = f.model as FuncModel;
    const args = m.argSize
      .map((sz, i) => `${sz}${m.argFlags[i] ? `/${m.argFlags[i]}` : ''}`)
      .join(',');
    return `${f.prototype};\t# ret=${m.retSize}${m.retFlags ? `/${m.retFlags}` : ''} nr_args=${m.nrArgs} args=[${args}]`;
  });
  return lines.length ? lines.join('\n') + '\n' : '';
}
