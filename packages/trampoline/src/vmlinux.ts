import { archInfo, type ArchName } from '@tracelab/arch-isa';
import { funcModel, globToRegExp, parseBtf, type Btf, type FuncModel } from '@tracelab/btf';
import { TracelabError } from '@tracelab/contracts';
import { groupTargets, type AttachTarget, type Grouping } from './groups.js';
import { formatPlan, marshalPlan } from './plan.js';

const MODIFIERS = new Set(['typedef', 'const', 'volatile', 'restrict', 'type_tag']);

/** Whether a type is C `long`/`unsigned long` (through typedefs): 4 bytes on a 32-bit build. */
function isLong(btf: Btf, id: number): boolean {
  let t = btf.type(id);
  for (let depth = 0; t !== undefined && MODIFIERS.has(t.kind) && depth < 32; depth++) {
    t = btf.type((t as { type: number }).type);
  }
  return t?.kind === 'int' && t.size === 8 && /\blong\b/.test(t.name) && !/long long/.test(t.name);
}

/**
 * A 64-bit kernel's model as a 32-bit build of the same source would see it: `long` and
 * `unsigned long` (size_t, ...) shrink to 4 bytes; pointers already have the arch's size.
 */
function ilp32Model(btf: Btf, protoId: number, m: FuncModel): FuncModel {
  const proto = btf.type(protoId);
  if (proto?.kind !== 'func_proto') return m;
  const argSize = m.argSize.map((s, i) => {
    const p = proto.params[i];
    return p !== undefined && isLong(btf, p.type) ? 4 : s;
  });
  const retSize = isLong(btf, proto.returnType) ? 4 : m.retSize;
  return { ...m, argSize, retSize };
}

export interface BtfTargetOptions {
  /** Only functions whose names match this glob. */
  readonly glob?: string;
  /**
   * For a 32-bit arch reading a 64-bit kernel's BTF: treat `long` as 4 bytes, as that kernel
   * built for the 32-bit arch would. Default: true for 32-bit arches.
   */
  readonly ilp32?: boolean;
}

/**
 * Attach targets from a BTF blob (such as /sys/kernel/btf/vmlinux) for an arch: the blob is read
 * with that arch's pointer size and each FUNC distilled to its btf_func_model
 * (btf_distill_func_proto). Functions are deduplicated by name as kallsyms lists them once.
 */
export function btfTargets(
  arch: ArchName,
  bytes: Uint8Array,
  options: BtfTargetOptions = {},
): AttachTarget[] {
  const ws = archInfo(arch).wordSize;
  const btf = parseBtf(bytes, { ptrSize: ws });
  const re = options.glob === undefined ? null : globToRegExp(options.glob);
  const ilp32 = options.ilp32 ?? ws === 4;
  const seen = new Set<string>();
  const out: AttachTarget[] = [];
  for (const f of btf.funcs()) {
    if (seen.has(f.name) || (re !== null && !re.test(f.name))) continue;
    seen.add(f.name);
    const r = funcModel(btf, f.id);
    out.push({
      name: f.name,
      model: !r.ok ? r.error : ilp32 ? ilp32Model(btf, f.protoId, r.model) : r.model,
    });
  }
  return out;
}

/** The multi-attach report of a BTF blob for one arch. */
export function btfGrouping(
  arch: ArchName,
  bytes: Uint8Array,
  options: BtfTargetOptions = {},
): Grouping {
  return groupTargets(arch, btfTargets(arch, bytes, options));
}

/** `tracelab trampoline plan FUNC --arch A`: one function's plan from a BTF blob, as text. */
export function btfPlanText(
  arch: ArchName,
  bytes: Uint8Array,
  name: string,
  options: Omit<BtfTargetOptions, 'glob'> = {},
): string | TracelabError {
  const t = btfTargets(arch, bytes, { ...options, glob: name }).find((x) => x.name === name);
  if (t === undefined) return new TracelabError('ENOENT', `no function '${name}' in the BTF`);
  if (t.model instanceof TracelabError) return t.model;
  const plan = marshalPlan(arch, t.model);
  return plan instanceof TracelabError ? plan : formatPlan(name, plan);
}
