import type { ProgType } from './ctx.js';

/** The KF_* flags of a kfunc's BTF_ID_FLAGS entry (include/linux/btf.h). */
export interface KfuncFlags {
  /** KF_ACQUIRE: returns a referenced pointer the program must release. */
  acquire: boolean;
  /** KF_RELEASE: releases the reference passed to it (implies trusted arguments). */
  release: boolean;
  /** KF_RET_NULL: the returned pointer may be NULL. */
  retNull: boolean;
  /** KF_TRUSTED_ARGS: pointer arguments must be trusted or referenced. */
  trustedArgs: boolean;
  /** KF_RCU: pointer arguments may also be RCU-protected. */
  rcu: boolean;
}

/** A registered kfunc: its flags and the program types whose kfunc set holds it. */
export interface KfuncDef {
  flags: KfuncFlags;
  progTypes: ReadonlySet<ProgType>;
}

const flags = (f: Partial<KfuncFlags>): KfuncFlags => ({
  acquire: false,
  release: false,
  retNull: false,
  trustedArgs: false,
  rcu: false,
  ...f,
});

/** register_btf_kfunc_id_set(..., &generic_kfunc_set) for these program types. */
const GENERIC: ReadonlySet<ProgType> = new Set(['tracing', 'syscall']);

/**
 * The kfunc id sets (kernel/bpf/helpers.c generic_btf_ids) by name: what
 * btf_kfunc_id_set_contains answers for a FUNC of the kernel BTF. Any other FUNC is a kernel
 * function, not a kfunc, and calling it is not allowed.
 */
export const KFUNCS: ReadonlyMap<string, KfuncDef> = new Map([
  [
    'bpf_task_acquire',
    { flags: flags({ acquire: true, rcu: true, retNull: true }), progTypes: GENERIC },
  ],
  ['bpf_task_release', { flags: flags({ release: true }), progTypes: GENERIC }],
  ['bpf_task_from_pid', { flags: flags({ acquire: true, retNull: true }), progTypes: GENERIC }],
  [
    'bpf_cgroup_acquire',
    { flags: flags({ acquire: true, rcu: true, retNull: true }), progTypes: GENERIC },
  ],
  ['bpf_cgroup_release', { flags: flags({ release: true }), progTypes: GENERIC }],
  ['bpf_cgroup_from_id', { flags: flags({ acquire: true, retNull: true }), progTypes: GENERIC }],
  ['bpf_task_under_cgroup', { flags: flags({ rcu: true }), progTypes: GENERIC }],
]);

/** btf_kfunc_id_set_contains: the flags of kfunc name for a program of progType, if any. */
export function kfuncFlags(name: string, progType: ProgType): KfuncFlags | undefined {
  const def = KFUNCS.get(name);
  return def !== undefined && def.progTypes.has(progType) ? def.flags : undefined;
}
