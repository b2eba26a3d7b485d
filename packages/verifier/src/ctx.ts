import { type ArchName, archInfo } from '@tracelab/arch-isa';
import type { Btf, BtfFuncProto } from '@tracelab/btf';
import { RegState, scalarOfSize, scalarUnknown } from './regs.js';

/** enum bpf_prog_type, the ones tracelab verifies. */
export type ProgType =
  | 'socket_filter'
  | 'kprobe'
  | 'tracepoint'
  | 'raw_tracepoint'
  | 'perf_event'
  | 'tracing'
  | 'syscall';

export const PROG_TYPES: readonly ProgType[] = [
  'socket_filter',
  'kprobe',
  'tracepoint',
  'raw_tracepoint',
  'perf_event',
  'tracing',
  'syscall',
];

/** expected_attach_type of tracing programs; raw_tp is BPF_TRACE_RAW_TP (libbpf's tp_btf). */
export type AttachType = 'fentry' | 'fexit' | 'fmod_ret' | 'raw_tp';

/** What decides the context of one program: type, arch, attach target. */
export interface CtxEnv {
  progType: ProgType;
  arch: ArchName;
  attachType: AttachType | undefined;
  btf: Btf | undefined;
  /** The attach target's prototype (tracing), resolved from BTF. */
  proto: BtfFuncProto | undefined;
  attachName: string;
}

/** Result of a context access: the loaded value's state, or the kernel's message. */
export type CtxResult = { reg: RegState } | { error: string };

const MAX_BPF_FUNC_ARGS = 12;
const PERF_MAX_TRACE_SIZE = 2048;
const SYSCALL_MAX_CTX = 65535;
const SK_BUFF_SIZE = 192;

/** struct __sk_buff field ranges a socket filter may not touch (sk_filter_is_valid_access). */
const SKB_DENIED: readonly (readonly [number, number])[] = [
  [72, 76], // tc_classid
  [76, 80], // data
  [80, 84], // data_end
  [88, 140], // family .. local_port
  [140, 144], // data_meta
  [144, 152], // flow_keys
  [152, 160], // tstamp
  [160, 164], // wire_len
  [184, 192], // hwtstamp
];
const SKB_CB = [48, 68] as const;

function invalid(off: number, size: number): CtxResult {
  return { error: `invalid bpf_context access off=${off} size=${size}` };
}

/** bpf_ctx_narrow_access_ok: a narrower load inside one field, at its start or anywhere aligned. */
function narrowOk(off: number, size: number, fieldSize: number): boolean {
  return size <= fieldSize && off % size === 0;
}

function skbAccess(off: number, size: number, write: boolean): CtxResult {
  if (off < 0 || off + size > SK_BUFF_SIZE || off % size !== 0) return invalid(off, size);
  for (const [lo, hi] of SKB_DENIED) if (off < hi && off + size > lo) return invalid(off, size);
  const inCb = off >= SKB_CB[0] && off + size <= SKB_CB[1];
  if (write && !inCb) return invalid(off, size);
  if (off === 168) return invalid(off, size); // sk: socket pointers are not modelled
  const fieldSize = 4;
  if (write) {
    if (size !== 4) return invalid(off, size);
  } else if (!narrowOk(off, size, fieldSize)) {
    return invalid(off, size);
  }
  return { reg: scalarOfSize(size) };
}

/** Read-only, aligned, inside [0, limit): kprobe pt_regs, tracepoint, raw_tracepoint. */
function readOnlyArray(off: number, size: number, write: boolean, limit: number): CtxResult {
  if (off < 0 || off + size > limit || write || off % size !== 0) return invalid(off, size);
  return { reg: scalarOfSize(size) };
}

function resolve(btf: Btf, id: number): number {
  return btf.resolve(id);
}

/** PTR_TO_BTF_ID to struct id (named name) at offset 0, PTR_TRUSTED when trusted. */
export function btfPtrReg(id: number, name: string, trusted: boolean): RegState {
  const r = new RegState();
  r.type = 'btf_id';
  r.btfId = id;
  r.btfName = name;
  r.trusted = trusted;
  r.untrusted = !trusted;
  r.varOff = { value: 0n, mask: 0n };
  r.smin = r.smax = 0n;
  r.umin = r.umax = 0n;
  r.s32min = r.s32max = 0n;
  r.u32min = r.u32max = 0n;
  return r;
}

/** A BTF type as a register: pointers to structs become PTR_TO_BTF_ID, the rest scalars. */
export function btfValueReg(btf: Btf, typeId: number, size: number, trusted: boolean): RegState {
  const t = btf.type(resolve(btf, typeId));
  if (t?.kind === 'ptr' && size === 8) {
    const target = resolve(btf, t.type);
    const tt = btf.type(target);
    if (tt !== undefined && (tt.kind === 'struct' || tt.kind === 'union')) {
      return btfPtrReg(target, tt.name, trusted);
    }
  }
  return size >= 8 ? scalarUnknown() : scalarOfSize(size);
}

function tracingAccess(env: CtxEnv, off: number, size: number, write: boolean): CtxResult {
  if (write) return invalid(off, size);
  const proto = env.proto;
  if (proto === undefined || env.btf === undefined) {
    return readOnlyArray(off, size, write, 8 * MAX_BPF_FUNC_ARGS);
  }
  if (off % 8 !== 0) {
    return { error: `func '${env.attachName}' offset ${off} is not multiple of 8` };
  }
  const arg = off / 8;
  const nr = proto.params.length;
  // fexit and fmod_ret read the return value after the arguments; a tracepoint has none.
  if (arg === nr && env.attachType !== 'fentry' && env.attachType !== 'raw_tp') {
    if (proto.returnType === 0) return { reg: scalarUnknown() };
    return { reg: btfValueReg(env.btf, proto.returnType, size, false) };
  }
  if (arg < 0 || arg >= nr) {
    return { error: `func '${env.attachName}' doesn't have ${arg + 1}-th argument` };
  }
  const p = proto.params[arg] as { type: number };
  return { reg: btfValueReg(env.btf, p.type, size, true) };
}

/** check_ctx_access: what a load (or store) of size bytes at off in the context gives. */
export function ctxAccess(env: CtxEnv, off: number, size: number, write: boolean): CtxResult {
  switch (env.progType) {
    case 'socket_filter':
      return skbAccess(off, size, write);
    case 'kprobe':
      return readOnlyArray(off, size, write, archInfo(env.arch).ptRegs.size);
    case 'perf_event': {
      // struct bpf_perf_event_data: pt_regs, then u64 sample_period and u64 addr.
      const regs = archInfo(env.arch).ptRegs.size;
      if (off >= regs && off < regs + 16) {
        if (write || off % size !== 0 || off + size > regs + 16) return invalid(off, size);
        return { reg: scalarOfSize(size) };
      }
      return readOnlyArray(off, size, write, regs);
    }
    case 'tracepoint':
      return readOnlyArray(off, size, write, PERF_MAX_TRACE_SIZE);
    case 'raw_tracepoint':
      return readOnlyArray(off, size, write, 8 * MAX_BPF_FUNC_ARGS);
    case 'tracing':
      return tracingAccess(env, off, size, write);
    case 'syscall':
      if (off < 0 || off + size > SYSCALL_MAX_CTX) return invalid(off, size);
      return { reg: scalarOfSize(size) };
  }
}

/**
 * A load through PTR_TO_BTF_ID (btf_struct_access): finds the member under [off, off+size) and
 * types the result. The kernel rewrites such loads to faulting-safe probe reads (PROBE_MEM).
 */
export function btfStructAccess(
  btf: Btf,
  structId: number,
  structName: string,
  off: number,
  size: number,
): CtxResult {
  let id = structId;
  let at = off;
  for (;;) {
    const t = btf.type(id);
    if (t === undefined) return { reg: scalarOfSize(size) };
    if (t.kind === 'array') {
      const elem = resolve(btf, t.type);
      const es = btf.sizeOf(elem);
      if (es === 0) return { reg: scalarOfSize(size) };
      id = elem;
      at = at % es;
      continue;
    }
    if (t.kind !== 'struct' && t.kind !== 'union') {
      return { reg: scalarOfSize(size) };
    }
    if (at + size > t.size) {
      return { error: `access beyond struct ${structName} at off ${off} size ${size}` };
    }
    let found: { type: number; start: number; size: number } | null = null;
    for (const m of t.members) {
      if (m.bitfieldSize !== 0) continue;
      const start = m.bitsOffset / 8;
      const ms = btf.sizeOf(m.type);
      if (at >= start && at + size <= start + ms) {
        found = { type: resolve(btf, m.type), start, size: ms };
        break;
      }
    }
    if (found === null) return { reg: scalarOfSize(size) };
    const ft = btf.type(found.type);
    if (ft !== undefined && (ft.kind === 'struct' || ft.kind === 'union' || ft.kind === 'array')) {
      id = found.type;
      at -= found.start;
      continue;
    }
    if (ft?.kind === 'ptr' && at === found.start && size === 8) {
      return { reg: btfValueReg(btf, found.type, 8, false) };
    }
    return { reg: scalarOfSize(size) };
  }
}
