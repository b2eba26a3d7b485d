import { type ArgKind, HELPER_PROTOS, type RetKind } from '@tracelab/vm';
import type { AttachType, ProgType } from './ctx.js';

/** The verifier's names for enum bpf_arg_type (what check_func_arg switches on). */
export type ArgType =
  | 'anything'
  | 'const_map_ptr'
  | 'map_key'
  | 'map_value'
  | 'mem'
  | 'uninit_mem'
  | 'const_size'
  | 'const_size_or_zero'
  | 'const_alloc_size_or_zero'
  | 'ctx'
  | 'ringbuf_mem_release'
  | 'func'
  | 'stack_or_null'
  | 'long_ptr';

/** The verifier's names for enum bpf_return_type. */
export type RetType = 'integer' | 'void' | 'map_value_or_null' | 'ringbuf_mem_or_null' | 'btf_id';

/** struct bpf_func_proto as the verifier reads it. */
export interface FuncProto {
  id: number;
  name: string;
  args: readonly ArgType[];
  ret: RetType;
  /** The struct a 'btf_id' result points to (trusted). */
  retBtf?: string;
}

/** The one place the vm's helper-table kinds become the verifier's. */
const ARG_TYPE: Readonly<Record<ArgKind, ArgType>> = {
  ARG_ANYTHING: 'anything',
  ARG_CONST_MAP_PTR: 'const_map_ptr',
  ARG_PTR_TO_MAP_KEY: 'map_key',
  ARG_PTR_TO_MAP_VALUE: 'map_value',
  ARG_PTR_TO_CTX: 'ctx',
  ARG_PTR_TO_MEM: 'mem',
  ARG_PTR_TO_UNINIT_MEM: 'uninit_mem',
  ARG_CONST_SIZE: 'const_size',
  ARG_CONST_SIZE_OR_ZERO: 'const_size_or_zero',
  ARG_CONST_ALLOC_SIZE_OR_ZERO: 'const_alloc_size_or_zero',
  ARG_PTR_TO_ALLOC_MEM: 'ringbuf_mem_release',
  ARG_PTR_TO_FUNC: 'func',
  ARG_PTR_TO_STACK_OR_NULL: 'stack_or_null',
  ARG_PTR_TO_LONG: 'long_ptr',
};
const RET_TYPE: Readonly<Record<RetKind, RetType>> = {
  RET_INTEGER: 'integer',
  RET_VOID: 'void',
  RET_PTR_TO_MAP_VALUE_OR_NULL: 'map_value_or_null',
  RET_PTR_TO_ALLOC_MEM_OR_NULL: 'ringbuf_mem_or_null',
  RET_PTR_TO_BTF_ID_TRUSTED: 'btf_id',
};

/** Helper prototypes by id, read from the vm's helper table (HELPER_PROTOS). */
export const HELPERS: ReadonlyMap<number, FuncProto> = new Map(
  HELPER_PROTOS.map((h): [number, FuncProto] => [
    h.id,
    {
      id: h.id,
      name: h.name,
      args: h.args.map((a) => ARG_TYPE[a]),
      ret: RET_TYPE[h.ret],
      ...(h.retBtf !== undefined ? { retBtf: h.retBtf } : {}),
    },
  ]),
);

/** bpf_base_func_proto: helpers every program type may call (privileged loader). */
const BASE = [1, 2, 3, 5, 6, 7, 8, 12, 14, 15, 16, 35, 130, 131, 132, 133, 134, 181];
const TRACING_COMMON = [4, 25, 27, 45, 67, 112, 113, 114, 115, 158, 174];

/** Which helpers each program type may call (the prog type's get_func_proto). */
export const ALLOWED_HELPERS: Readonly<Record<ProgType, ReadonlySet<number>>> = {
  socket_filter: new Set([...BASE, 25, 26, 46, 47]),
  kprobe: new Set([...BASE, ...TRACING_COMMON, 173]),
  tracepoint: new Set([...BASE, ...TRACING_COMMON]),
  raw_tracepoint: new Set([...BASE, ...TRACING_COMMON]),
  perf_event: new Set([...BASE, ...TRACING_COMMON]),
  tracing: new Set([...BASE, ...TRACING_COMMON, 173, 183, 184, 185]),
  syscall: new Set([...BASE, 4, 112, 113, 114, 115]),
};

/** Helpers tracing_prog_func_proto hands out only to programs with a trampoline. */
const TRAMPOLINE_ONLY: ReadonlySet<number> = new Set([183, 184, 185]);

/**
 * bpf_prog_has_trampoline for a tracing program: fentry, fexit and fmod_ret have one, tp_btf does
 * not. A tracing program without an attach type is verified as fentry.
 */
export function hasTrampoline(attachType: AttachType | undefined): boolean {
  return attachType !== 'raw_tp';
}

/**
 * The program's get_func_proto: whether a program of this type and attach type gets helper id.
 * get_func_ret (184) is handed to fentry too; the kernel then patches the call to return
 * -EOPNOTSUPP.
 */
export function helperAllowed(
  progType: ProgType,
  attachType: AttachType | undefined,
  id: number,
): boolean {
  if (!ALLOWED_HELPERS[progType].has(id)) return false;
  return progType !== 'tracing' || !TRAMPOLINE_ONLY.has(id) || hasTrampoline(attachType);
}
