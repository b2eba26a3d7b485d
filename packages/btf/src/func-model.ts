import type { Btf } from './btf.js';
import { BtfError } from './error.js';
import { BTF_INT_SIGNED, type BtfFuncProto, type BtfType } from './types.js';

/** MAX_BPF_FUNC_ARGS: the most arguments a trampoline handles. */
export const MAX_BPF_FUNC_ARGS = 12;
/** MAX_BPF_FUNC_REG_ARGS: the fallback argument count when there is no prototype. */
export const MAX_BPF_FUNC_REG_ARGS = 5;
/** BTF_FMODEL_STRUCT_ARG: the argument (or return) is a struct/union passed by value. */
export const BTF_FMODEL_STRUCT_ARG = 1 << 0;
/** BTF_FMODEL_SIGNED_ARG: the argument (or return) is a signed integer. */
export const BTF_FMODEL_SIGNED_ARG = 1 << 1;

/** struct btf_func_model. */
export interface FuncModel {
  retSize: number;
  retFlags: number;
  nrArgs: number;
  argSize: number[];
  argFlags: number[];
}

export type FuncModelResult = { ok: true; model: FuncModel } | { ok: false; error: BtfError };

const MAX_RESOLVE_DEPTH = 32;

function isModifier(t: BtfType): boolean {
  return (
    t.kind === 'typedef' ||
    t.kind === 'volatile' ||
    t.kind === 'const' ||
    t.kind === 'restrict' ||
    t.kind === 'type_tag'
  );
}

/**
 * The kernel's __get_type_size: size of a type after modifiers, counting only
 * pointers (kernel pointer size), ints, enums and structs/unions; -1 otherwise.
 * Also reports the resolved type for flags and error texts.
 */
function typeSize(btf: Btf, id: number): { size: number; t: BtfType | undefined } {
  if (id === 0) return { size: 0, t: undefined };
  let t = btf.type(id);
  for (let depth = 0; t !== undefined && isModifier(t); depth++) {
    if (depth > MAX_RESOLVE_DEPTH) return { size: -1, t };
    t = btf.type((t as { type: number }).type);
  }
  if (t === undefined) return { size: -1, t };
  switch (t.kind) {
    case 'ptr':
      return { size: btf.ptrSize, t };
    case 'int':
    case 'enum':
    case 'enum64':
    case 'struct':
    case 'union':
      return { size: t.size, t };
    default:
      return { size: -1, t };
  }
}

function flagsOf(t: BtfType | undefined): number {
  if (t === undefined) return 0;
  let f = 0;
  if (t.kind === 'struct' || t.kind === 'union') f |= BTF_FMODEL_STRUCT_ARG;
  if (t.kind === 'int' && (t.encoding & BTF_INT_SIGNED) !== 0) f |= BTF_FMODEL_SIGNED_ARG;
  return f;
}

function kstr(t: BtfType | undefined): string {
  // btf_type_str(): void prints as UNKN.
  return t === undefined ? 'UNKN' : t.kind.toUpperCase();
}

function fail(typeId: number, message: string): FuncModelResult {
  return { ok: false, error: new BtfError('EINVAL', message, { typeId }) };
}

/**
 * btf_distill_func_proto: the calling-convention summary a trampoline needs.
 * `id` is a FUNC or FUNC_PROTO id; `null` means the function has no BTF prototype,
 * which gives the kernel's fallback of 5 eight-byte arguments.
 */
export function funcModel(btf: Btf, id: number | null, name?: string): FuncModelResult {
  try {
    return distill(btf, id, name);
  } catch (e) {
    // Ids out of range or modifier loops in malformed BTF are rejections too, not crashes.
    if (e instanceof BtfError) return { ok: false, error: e };
    throw e;
  }
}

function distill(btf: Btf, id: number | null, name?: string): FuncModelResult {
  if (id === null) {
    return {
      ok: true,
      model: {
        retSize: 8,
        retFlags: 0,
        nrArgs: MAX_BPF_FUNC_REG_ARGS,
        argSize: new Array<number>(MAX_BPF_FUNC_REG_ARGS).fill(8),
        argFlags: new Array<number>(MAX_BPF_FUNC_REG_ARGS).fill(0),
      },
    };
  }
  let t = btf.type(id);
  let tname = name ?? '';
  let protoId = id;
  if (t?.kind === 'func') {
    if (name === undefined) tname = t.name;
    protoId = t.type;
    t = btf.type(t.type);
  }
  if (t?.kind !== 'func_proto') {
    return fail(protoId, `type is ${kstr(t)}, not FUNC_PROTO`);
  }
  const proto: BtfFuncProto = t;
  const nargs = proto.params.length;
  if (nargs > MAX_BPF_FUNC_ARGS) {
    return fail(protoId, `The function ${tname} has ${nargs} arguments. Too many.`);
  }
  const ret = typeSize(btf, proto.returnType);
  if (ret.size < 0 || ret.t?.kind === 'struct' || ret.t?.kind === 'union') {
    return fail(protoId, `The function ${tname} return type ${kstr(ret.t)} is unsupported.`);
  }
  const argSize: number[] = [];
  const argFlags: number[] = [];
  for (let i = 0; i < nargs; i++) {
    const p = proto.params[i] as { type: number };
    if (i === nargs - 1 && p.type === 0) {
      return fail(protoId, `The function ${tname} with variable args is unsupported.`);
    }
    const a = typeSize(btf, p.type);
    // Structs over 16 bytes are not passed in registers by any supported ABI.
    if (a.size < 0 || a.size > 16) {
      return fail(protoId, `The function ${tname} arg${i} type ${kstr(a.t)} is unsupported.`);
    }
    if (a.size === 0) {
      return fail(protoId, `The function ${tname} has malformed void argument.`);
    }
    argSize.push(a.size);
    argFlags.push(flagsOf(a.t));
  }
  return {
    ok: true,
    model: { retSize: ret.size, retFlags: flagsOf(ret.t), nrArgs: nargs, argSize, argFlags },
  };
}

/** A stable key for a model: equal keys mean the same register/stack marshalling. */
export function funcModelKey(m: FuncModel): string {
  const args = m.argSize.map((s, i) => `${s}${m.argFlags[i] ? `:${m.argFlags[i]}` : ''}`);
  return `${m.retSize}${m.retFlags ? `:${m.retFlags}` : ''}(${args.join(',')})`;
}

export interface FuncModelSummary {
  functions: number;
  modeled: number;
  distinctModels: number;
  /** Distinct (return size, argument sizes) tuples, ignoring flags. */
  distinctSizeModels: number;
  rejected: number;
  /** Rejections grouped by reason (the kernel message with the function name removed). */
  rejectedBy: Record<string, number>;
  structArgs: number;
  maxArgs: number;
}

/** Distill every FUNC of a BTF and summarise models and rejections. */
export function summarizeFuncModels(btf: Btf): FuncModelSummary {
  const funcs = btf.funcs();
  const keys = new Set<string>();
  const sizeKeys = new Set<string>();
  const rejectedBy: Record<string, number> = {};
  let modeled = 0;
  let structArgs = 0;
  let maxArgs = 0;
  for (const f of funcs) {
    const r = funcModel(btf, f.id);
    if (r.ok) {
      modeled++;
      keys.add(funcModelKey(r.model));
      sizeKeys.add(`${r.model.retSize}(${r.model.argSize.join(',')})`);
      if (r.model.argFlags.some((x) => (x & BTF_FMODEL_STRUCT_ARG) !== 0)) structArgs++;
      if (r.model.nrArgs > maxArgs) maxArgs = r.model.nrArgs;
    } else {
      const reason = r.error.message
        .replace(/ \(type id \d+\)$/, '')
        .replace(/^EINVAL: The function \S+ /, '')
        .replace(/^has \d+ arguments/, 'has >12 arguments')
        .replace(/^arg\d+ /, 'argN ');
      rejectedBy[reason] = (rejectedBy[reason] ?? 0) + 1;
    }
  }
  return {
    functions: funcs.length,
    modeled,
    distinctModels: keys.size,
    distinctSizeModels: sizeKeys.size,
    rejected: funcs.length - modeled,
    rejectedBy,
    structArgs,
    maxArgs,
  };
}
