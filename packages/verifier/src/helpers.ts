import type { AttachType, ProgType } from './ctx.js';

/** enum bpf_arg_type (the kinds tracelab's helpers use). */
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

/** enum bpf_return_type. */
export type RetType =
  'integer' | 'void' | 'map_value_or_null' | 'ringbuf_mem_or_null' | 'btf_id_task' | 'long';

/** struct bpf_func_proto. */
export interface FuncProto {
  id: number;
  name: string;
  args: readonly ArgType[];
  ret: RetType;
  /** Returns an acquired reference (ringbuf_reserve). */
  acquire?: boolean;
}

const P = (id: number, name: string, args: ArgType[], ret: RetType, acquire = false): FuncProto =>
  acquire ? { id, name, args, ret, acquire } : { id, name, args, ret };

/** Helper prototypes by id (include/uapi/linux/bpf.h numbering, kernel/bpf/helpers.c kinds). */
export const HELPERS: ReadonlyMap<number, FuncProto> = new Map(
  [
    P(1, 'map_lookup_elem', ['const_map_ptr', 'map_key'], 'map_value_or_null'),
    P(2, 'map_update_elem', ['const_map_ptr', 'map_key', 'map_value', 'anything'], 'integer'),
    P(3, 'map_delete_elem', ['const_map_ptr', 'map_key'], 'integer'),
    P(4, 'probe_read', ['uninit_mem', 'const_size_or_zero', 'anything'], 'integer'),
    P(5, 'ktime_get_ns', [], 'integer'),
    P(6, 'trace_printk', ['mem', 'const_size'], 'integer'),
    P(7, 'get_prandom_u32', [], 'integer'),
    P(8, 'get_smp_processor_id', [], 'integer'),
    P(12, 'tail_call', ['ctx', 'const_map_ptr', 'anything'], 'void'),
    P(14, 'get_current_pid_tgid', [], 'integer'),
    P(15, 'get_current_uid_gid', [], 'integer'),
    P(16, 'get_current_comm', ['uninit_mem', 'const_size'], 'integer'),
    P(
      25,
      'perf_event_output',
      ['ctx', 'const_map_ptr', 'anything', 'mem', 'const_size_or_zero'],
      'integer',
    ),
    P(26, 'skb_load_bytes', ['ctx', 'anything', 'uninit_mem', 'const_size'], 'integer'),
    P(35, 'get_current_task', [], 'integer'),
    P(45, 'probe_read_str', ['uninit_mem', 'const_size_or_zero', 'anything'], 'integer'),
    P(46, 'get_socket_cookie', ['ctx'], 'integer'),
    P(47, 'get_socket_uid', ['ctx'], 'integer'),
    P(112, 'probe_read_user', ['uninit_mem', 'const_size_or_zero', 'anything'], 'integer'),
    P(113, 'probe_read_kernel', ['uninit_mem', 'const_size_or_zero', 'anything'], 'integer'),
    P(114, 'probe_read_user_str', ['uninit_mem', 'const_size_or_zero', 'anything'], 'integer'),
    P(115, 'probe_read_kernel_str', ['uninit_mem', 'const_size_or_zero', 'anything'], 'integer'),
    P(130, 'ringbuf_output', ['const_map_ptr', 'mem', 'const_size_or_zero', 'anything'], 'integer'),
    P(
      131,
      'ringbuf_reserve',
      ['const_map_ptr', 'const_alloc_size_or_zero', 'anything'],
      'ringbuf_mem_or_null',
      true,
    ),
    P(132, 'ringbuf_submit', ['ringbuf_mem_release', 'anything'], 'void'),
    P(133, 'ringbuf_discard', ['ringbuf_mem_release', 'anything'], 'void'),
    P(134, 'ringbuf_query', ['const_map_ptr', 'anything'], 'integer'),
    P(158, 'get_current_task_btf', [], 'btf_id_task'),
    P(173, 'get_func_ip', ['ctx'], 'integer'),
    P(174, 'get_attach_cookie', ['ctx'], 'integer'),
    P(181, 'loop', ['anything', 'func', 'stack_or_null', 'anything'], 'integer'),
    P(183, 'get_func_arg', ['ctx', 'anything', 'long_ptr'], 'integer'),
    P(184, 'get_func_ret', ['ctx', 'long_ptr'], 'integer'),
    P(185, 'get_func_arg_cnt', ['ctx'], 'integer'),
  ].map((p) => [p.id, p]),
);

/** bpf_base_func_proto: helpers every program type may call (privileged loader). */
const BASE = [1, 2, 3, 5, 6, 7, 8, 12, 14, 15, 16, 35, 130, 131, 132, 133, 134, 181];
const TRACING_COMMON = [4, 25, 45, 112, 113, 114, 115, 158, 174];

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
