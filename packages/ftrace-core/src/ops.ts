import type { FtraceRegs } from '@tracelab/arch-isa';
import type { Cpu } from '@tracelab/kernel';
import type { FtraceHash } from './filter.js';

/** enum FTRACE_OPS_FL_* (include/linux/ftrace.h). */
export const FTRACE_OPS_FL_ENABLED = 1 << 0;
export const FTRACE_OPS_FL_DYNAMIC = 1 << 1;
export const FTRACE_OPS_FL_SAVE_REGS = 1 << 2;
export const FTRACE_OPS_FL_SAVE_REGS_IF_SUPPORTED = 1 << 3;
export const FTRACE_OPS_FL_RECURSION = 1 << 4;
export const FTRACE_OPS_FL_STUB = 1 << 5;
export const FTRACE_OPS_FL_INITIALIZED = 1 << 6;
export const FTRACE_OPS_FL_DELETED = 1 << 7;
export const FTRACE_OPS_FL_ADDING = 1 << 8;
export const FTRACE_OPS_FL_REMOVING = 1 << 9;
export const FTRACE_OPS_FL_MODIFYING = 1 << 10;
export const FTRACE_OPS_FL_ALLOC_TRAMP = 1 << 11;
export const FTRACE_OPS_FL_IPMODIFY = 1 << 12;
export const FTRACE_OPS_FL_PID = 1 << 13;
export const FTRACE_OPS_FL_RCU = 1 << 14;
export const FTRACE_OPS_FL_TRACE_ARRAY = 1 << 15;
export const FTRACE_OPS_FL_PERMANENT = 1 << 16;
export const FTRACE_OPS_FL_DIRECT = 1 << 17;
export const FTRACE_OPS_FL_SUBOP = 1 << 18;
export const FTRACE_OPS_FL_GRAPH = 1 << 19;

/** enum ftrace_ops_cmd: what ftrace asks a DIRECT ops before it shares a function with IPMODIFY. */
export const FTRACE_OPS_CMD_ENABLE_SHARE_IPMODIFY_SELF = 0;
export const FTRACE_OPS_CMD_ENABLE_SHARE_IPMODIFY_PEER = 1;
export const FTRACE_OPS_CMD_DISABLE_SHARE_IPMODIFY_PEER = 2;
export type FtraceOpsCmd =
  | typeof FTRACE_OPS_CMD_ENABLE_SHARE_IPMODIFY_SELF
  | typeof FTRACE_OPS_CMD_ENABLE_SHARE_IPMODIFY_PEER
  | typeof FTRACE_OPS_CMD_DISABLE_SHARE_IPMODIFY_PEER;

/**
 * ftrace_func_t: (ip, parent_ip, op, fregs). Addresses are passed as their low 32 bits (kernel
 * text never crosses a 4 GiB boundary, so the high half is the image's constant), which keeps the
 * traced call free of bigint allocation. The low half comes as a signed int32 (`lo | 0`): V8
 * boxes a number of 2^31 or more in a heap object whenever it is passed or returned, which every
 * kernel text address is; `ip >>> 0` is the unsigned half, `Ftrace.address(ip)` the address. `fregs` is null where the arch has no
 * DYNAMIC_FTRACE_WITH_ARGS and the ops did not ask for regs. `fn` is the image index of the
 * traced function (what the kernel finds from ip through its records).
 */
export type FtraceFunc = (
  ip: number,
  parentIp: number,
  op: FtraceOps,
  fregs: FtraceRegs | null,
  cpu: Cpu,
  fn: number,
) => void;

/** ftrace_ops_func_t: answers the share commands; 0 or a negative errno. */
export type FtraceOpsFunc = (op: FtraceOps, cmd: FtraceOpsCmd) => number;

export interface FtraceOpsInit {
  readonly name?: string;
  readonly func: FtraceFunc;
  readonly flags?: number;
  readonly private?: unknown;
  readonly opsFunc?: FtraceOpsFunc;
  /**
   * Core kernel data (a static ops such as the function tracer's global_ops): not DYNAMIC, so
   * with no other ops it is called straight from ftrace_caller. Run-time ops are DYNAMIC.
   */
  readonly static?: boolean;
}

/** struct ftrace_ops. */
export class FtraceOps {
  declare readonly name: string;
  declare func: FtraceFunc;
  declare flags: number;
  private: unknown;
  declare opsFunc: FtraceOpsFunc | null;
  declare readonly isStatic: boolean;
  /** filter_hash and notrace_hash; allocated by ftrace_ops_init against an image. */
  filterHash: FtraceHash | null = null;
  notraceHash: FtraceHash | null = null;
  /** Address of this ops' own trampoline (low 32 bits), 0 when it has none. */
  trampoline = 0;
  /** The direct call target of a DIRECT ops (ops->direct_call), 0n when none. */
  directCall = 0n;
  /** directCall in 32-bit halves, so the traced call writes it without bigint arithmetic. */
  directLo = 0;
  directHi = 0;

  /** Sets ops->direct_call. */
  setDirectCall(addr: bigint): void {
    this.directCall = addr;
    this.directLo = Number(addr & 0xffffffffn);
    this.directHi = Number((addr >> 32n) & 0xffffffffn);
  }

  constructor(init: FtraceOpsInit) {
    this.name = init.name ?? 'ftrace_ops';
    this.func = init.func;
    this.flags = init.flags ?? 0;
    this.private = init.private;
    this.opsFunc = init.opsFunc ?? null;
    this.isStatic = init.static === true;
  }

  /** ftrace_ops_test(): empty filter or ip in it, and ip not in notrace. */
  traces(fn: number): boolean {
    const f = this.filterHash;
    const n = this.notraceHash;
    if (f !== null && f.count !== 0 && f.bits[fn] !== 1) return false;
    return n === null || n.count === 0 || n.bits[fn] !== 1;
  }
}
