import { archInfo, type ArchName } from '@tracelab/arch-isa';
import { funcModel, globToRegExp, parseBtf } from '@tracelab/btf';
import { TracelabError, type ErrnoCode } from '@tracelab/contracts';
import { groupTargets, type AttachTarget, type Grouping } from './groups.js';

/**
 * Attach targets from a BTF blob (such as /sys/kernel/btf/vmlinux) for an arch: the blob is read
 * with that arch's pointer size, each FUNC distilled to its btf_func_model (btf_distill_func_proto).
 * Functions are deduplicated by name as kallsyms would list them once.
 */
export function btfTargets(arch: ArchName, bytes: Uint8Array, glob?: string): AttachTarget[] {
  const btf = parseBtf(bytes, { ptrSize: archInfo(arch).wordSize });
  const re = glob === undefined ? null : globToRegExp(glob);
  const seen = new Set<string>();
  const out: AttachTarget[] = [];
  for (const f of btf.funcs()) {
    if (seen.has(f.name) || (re !== null && !re.test(f.name))) continue;
    seen.add(f.name);
    const r = funcModel(btf, f.id);
    out.push({
      name: f.name,
      model: r.ok ? r.model : new TracelabError(r.error.errno as ErrnoCode, r.error.message),
    });
  }
  return out;
}

/** The multi-attach report of a BTF blob for one arch. */
export function btfGrouping(arch: ArchName, bytes: Uint8Array, glob?: string): Grouping {
  return groupTargets(arch, btfTargets(arch, bytes, glob));
}
