import { BPF_F_CURRENT_CPU, PerfEventArray, RingBuf, StackTraceMap } from './buffers.js';
import { VmError } from './errors.js';
import {
  BPF_MAP_TYPE_ARRAY,
  BPF_MAP_TYPE_PERCPU_ARRAY,
  BpfMap,
  MapOfMaps,
  ProgArray,
} from './maps.js';
import { copyBytes, PROT_READ, PROT_WRITE, type Region } from './memory.js';
import type { MapTable } from './table.js';
import { type Insn } from './insn.js';
import type { Vm } from './vm.js';

/**
 * Argument kinds (enum bpf_arg_type, without the MEM_RDONLY/MEM_UNINIT flag bits except where a
 * kind stands for one), the verifier's view of a helper's parameters.
 */
export type ArgKind =
  | 'ARG_ANYTHING'
  | 'ARG_CONST_MAP_PTR'
  | 'ARG_PTR_TO_MAP_KEY'
  | 'ARG_PTR_TO_MAP_VALUE'
  | 'ARG_PTR_TO_CTX'
  | 'ARG_PTR_TO_MEM'
  | 'ARG_PTR_TO_UNINIT_MEM'
  | 'ARG_CONST_SIZE'
  | 'ARG_CONST_SIZE_OR_ZERO'
  | 'ARG_CONST_ALLOC_SIZE_OR_ZERO'
  | 'ARG_PTR_TO_ALLOC_MEM'
  | 'ARG_PTR_TO_FUNC'
  | 'ARG_PTR_TO_STACK_OR_NULL'
  | 'ARG_PTR_TO_LONG';

/** Return kinds (enum bpf_return_type). */
export type RetKind =
  | 'RET_INTEGER'
  | 'RET_VOID'
  | 'RET_PTR_TO_MAP_VALUE_OR_NULL'
  | 'RET_PTR_TO_ALLOC_MEM_OR_NULL'
  | 'RET_PTR_TO_BTF_ID_TRUSTED';

/** struct bpf_func_proto as data: the one helper table the vm and the verifier share. */
export interface HelperProto {
  id: number;
  name: string;
  args: readonly ArgKind[];
  ret: RetKind;
  /** The struct a RET_PTR_TO_BTF_ID_TRUSTED result points to (the proto's ret_btf_id). */
  retBtf?: string;
  /** installHelpers gives the vm a body for it (tail_call is the interpreter's own). */
  implemented: boolean;
}

const P = (
  id: number,
  name: string,
  args: ArgKind[],
  ret: RetKind = 'RET_INTEGER',
): HelperProto => ({ id, name, args, ret, implemented: true });
/** A helper the verifier knows and the vm has no body for (a program may bring one). */
const V = (
  id: number,
  name: string,
  args: ArgKind[],
  ret: RetKind = 'RET_INTEGER',
): HelperProto => ({
  ...P(id, name, args, ret),
  implemented: false,
});
const PROBE_READ: ArgKind[] = ['ARG_PTR_TO_UNINIT_MEM', 'ARG_CONST_SIZE_OR_ZERO', 'ARG_ANYTHING'];

/**
 * Helper prototypes by id (enum bpf_func_id in include/uapi/linux/bpf.h, kinds as in the
 * kernel's bpf_func_proto of each): the data table the verifier checks calls against, and the
 * helpers the vm implements (implemented) with their arguments.
 */
export const HELPER_PROTOS: readonly HelperProto[] = [
  P(
    1,
    'map_lookup_elem',
    ['ARG_CONST_MAP_PTR', 'ARG_PTR_TO_MAP_KEY'],
    'RET_PTR_TO_MAP_VALUE_OR_NULL',
  ),
  P(2, 'map_update_elem', [
    'ARG_CONST_MAP_PTR',
    'ARG_PTR_TO_MAP_KEY',
    'ARG_PTR_TO_MAP_VALUE',
    'ARG_ANYTHING',
  ]),
  P(3, 'map_delete_elem', ['ARG_CONST_MAP_PTR', 'ARG_PTR_TO_MAP_KEY']),
  P(4, 'probe_read', PROBE_READ),
  P(5, 'ktime_get_ns', []),
  // The format's up to three values (r3-r5) are not in the prototype: the kernel does not check
  // them (ARG_DONTCARE), the vm's body reads them all.
  P(6, 'trace_printk', ['ARG_PTR_TO_MEM', 'ARG_CONST_SIZE']),
  P(7, 'get_prandom_u32', []),
  P(8, 'get_smp_processor_id', []),
  P(12, 'tail_call', ['ARG_PTR_TO_CTX', 'ARG_CONST_MAP_PTR', 'ARG_ANYTHING'], 'RET_VOID'),
  P(14, 'get_current_pid_tgid', []),
  V(15, 'get_current_uid_gid', []),
  P(16, 'get_current_comm', ['ARG_PTR_TO_UNINIT_MEM', 'ARG_CONST_SIZE']),
  P(25, 'perf_event_output', [
    'ARG_PTR_TO_CTX',
    'ARG_CONST_MAP_PTR',
    'ARG_ANYTHING',
    'ARG_PTR_TO_MEM',
    'ARG_CONST_SIZE_OR_ZERO',
  ]),
  V(26, 'skb_load_bytes', [
    'ARG_PTR_TO_CTX',
    'ARG_ANYTHING',
    'ARG_PTR_TO_UNINIT_MEM',
    'ARG_CONST_SIZE',
  ]),
  P(27, 'get_stackid', ['ARG_PTR_TO_CTX', 'ARG_CONST_MAP_PTR', 'ARG_ANYTHING']),
  P(35, 'get_current_task', []),
  P(45, 'probe_read_str', PROBE_READ),
  V(46, 'get_socket_cookie', ['ARG_PTR_TO_CTX']),
  V(47, 'get_socket_uid', ['ARG_PTR_TO_CTX']),
  P(67, 'get_stack', [
    'ARG_PTR_TO_CTX',
    'ARG_PTR_TO_UNINIT_MEM',
    'ARG_CONST_SIZE_OR_ZERO',
    'ARG_ANYTHING',
  ]),
  P(112, 'probe_read_user', PROBE_READ),
  P(113, 'probe_read_kernel', PROBE_READ),
  P(114, 'probe_read_user_str', PROBE_READ),
  P(115, 'probe_read_kernel_str', PROBE_READ),
  P(130, 'ringbuf_output', [
    'ARG_CONST_MAP_PTR',
    'ARG_PTR_TO_MEM',
    'ARG_CONST_SIZE_OR_ZERO',
    'ARG_ANYTHING',
  ]),
  P(
    131,
    'ringbuf_reserve',
    ['ARG_CONST_MAP_PTR', 'ARG_CONST_ALLOC_SIZE_OR_ZERO', 'ARG_ANYTHING'],
    'RET_PTR_TO_ALLOC_MEM_OR_NULL',
  ),
  P(132, 'ringbuf_submit', ['ARG_PTR_TO_ALLOC_MEM', 'ARG_ANYTHING'], 'RET_VOID'),
  P(133, 'ringbuf_discard', ['ARG_PTR_TO_ALLOC_MEM', 'ARG_ANYTHING'], 'RET_VOID'),
  V(134, 'ringbuf_query', ['ARG_CONST_MAP_PTR', 'ARG_ANYTHING']),
  {
    ...V(158, 'get_current_task_btf', [], 'RET_PTR_TO_BTF_ID_TRUSTED'),
    retBtf: 'task_struct',
  },
  V(173, 'get_func_ip', ['ARG_PTR_TO_CTX']),
  V(174, 'get_attach_cookie', ['ARG_PTR_TO_CTX']),
  P(181, 'loop', ['ARG_ANYTHING', 'ARG_PTR_TO_FUNC', 'ARG_PTR_TO_STACK_OR_NULL', 'ARG_ANYTHING']),
  V(183, 'get_func_arg', ['ARG_PTR_TO_CTX', 'ARG_ANYTHING', 'ARG_PTR_TO_LONG']),
  V(184, 'get_func_ret', ['ARG_PTR_TO_CTX', 'ARG_PTR_TO_LONG']),
  V(185, 'get_func_arg_cnt', ['ARG_PTR_TO_CTX']),
];

/**
 * What helpers need from the kernel they run in. The kernel package implements it; tests use a
 * small fake.
 */
export interface KernelEnv {
  // The 64-bit answers come as int32 halves in out[0] (low) and out[1] (high): a traced call
  // runs these helpers, and a bigint (or a number past 2^31 returned from a call) allocates.
  /** CLOCK_MONOTONIC in ns. */
  ktimeGetNs(out: Int32Array): void;
  smpProcessorId(): number;
  /** The current task's pid (low half) and tgid (high half), as bpf_get_current_pid_tgid. */
  currentPidTgid(out: Int32Array): void;
  /**
   * The current task's comm (up to 16 bytes, no NUL needed). The helper only reads it, so an
   * env may hand out the same array each time.
   */
  currentComm(): Uint8Array;
  /** Address of the current task_struct. */
  currentTask(out: Int32Array): void;
  /** Instruction pointers of the current kernel (or user) stack, innermost first. */
  stack(user: boolean): readonly bigint[];
  tracePrintk(line: string): void;
  prandomU32(): number;
}

const EFAULT = -14;
const EINVAL = -22;
const TASK_COMM_LEN = 16;

/** Formats trace_printk's format with up to three u64 arguments (%d %i %u %x %lld %llu %llx %p %s %c %%). */
function formatPrintk(vm: Vm, fmt: string, args: bigint[]): string | VmError {
  let n = 0;
  let bad: VmError | null = null;
  const out = fmt.replace(/%(l{0,2})([diuxpsc%])/g, (_m, _l: string, conv: string) => {
    if (conv === '%') return '%';
    if (n >= args.length) {
      bad = new VmError(
        'EINVAL',
        `trace_printk: more conversions than the 3 arguments in "${fmt}"`,
      );
      return '';
    }
    const v = args[n++] as bigint;
    const wide = _l.length > 0;
    switch (conv) {
      case 'd':
      case 'i':
        return String(wide ? BigInt.asIntN(64, v) : BigInt.asIntN(32, v));
      case 'u':
        return String(wide ? v : BigInt.asUintN(32, v));
      case 'x':
        return (wide ? v : BigInt.asUintN(32, v)).toString(16);
      case 'p':
        return `0x${v.toString(16)}`;
      case 'c':
        return String.fromCharCode(Number(v & 0xffn));
      default: {
        const s = vm.memory.readCString(v, 256);
        return s instanceof Uint8Array ? new TextDecoder().decode(s) : '(efault)';
      }
    }
  });
  return bad ?? out;
}

/**
 * Looks a key up without copying it: the key bytes stay where the program put them (usually
 * its stack) and the map compares them in place.
 */
function keySlot(vm: Vm, map: BpfMap, keyArg: number, cpu: number): number {
  const bytes = operand(vm, keyArg, map.attr.keySize);
  return bytes === null ? -2 : map.lookupSlot(bytes, operandAt[0] as number, cpu);
}

/**
 * r0 = the address of offset off in region r, in int32 halves without a bigint (as uint32s the
 * low half is a double, which V8 boxed on every call): the low half's carry is an unsigned wrap.
 */
function setR0Address(v: Vm, r: Region, off: number): void {
  const base = r.baseLo32;
  const lo = (base + off) | 0;
  v.setR0(lo, r.baseHi32 + (lo >>> 0 < base >>> 0 ? 1 : 0));
}

/** Where operand() found its bytes: a second result without an allocation. */
const operandAt = new Int32Array(1);

/**
 * The bytes holding a size-byte read at register r's address, whole in one region, with its
 * offset in operandAt[0]; null when the read faults or spans regions. Map keys and values are
 * read in place this way.
 */
function operand(vm: Vm, r: number, size: number): Uint8Array | null {
  const hi = vm.hi[r] as number;
  const lo = vm.lo[r] as number;
  // Keys are nearly always on the program's stack: read them there without a translation.
  const at = vm.memory.strictAlignment ? -1 : vm.stack.offsetOf(hi, lo, size);
  if (at >= 0) {
    operandAt[0] = at;
    return vm.stack.bytes;
  }
  const off = vm.memory.translate(hi, lo, size, PROT_READ);
  if (off < 0) return null;
  operandAt[0] = off;
  return (vm.memory.hit as Region).bytes;
}

function mapArg(vm: Vm, maps: MapTable, n: number): BpfMap | undefined {
  return maps.byHandleHalves(vm.hi[n] as number, vm.lo[n] as number);
}

/**
 * Where an n-byte access at register r's address lies: its offset in `v.memory.hit`'s region, or
 * -1 when it faults or runs past the region's end. The copy helpers take their allocation-free
 * path when both ends are whole in one region each, and AddressSpace's general (allocating)
 * copy otherwise, which also spans adjacent regions and reports the fault.
 */
function regionOffset(v: Vm, r: number, n: number, access: number): number {
  const mem = v.memory;
  const off = mem.translate(v.hi[r] as number, v.lo[r] as number, 1, access);
  if (off < 0) return -1;
  return off + n <= (mem.hit as Region).size ? off : -1;
}

/**
 * A size argument as an int32, or -1 when it is 2^31 or more (the general path then reports
 * it). Sizes are int32s on the fast paths: argNum's uint32 arithmetic gives a double, which V8
 * boxed on every call that passed it on.
 */
function smallSize(v: Vm, r: number): number {
  const lo = v.lo[r] as number;
  return v.hi[r] === 0 && lo >= 0 ? lo : -1;
}

/**
 * Installs the helper table's implementations on vm, over maps and the kernel env, and routes
 * bpf_tail_call through prog_array maps of the table.
 */
export function installHelpers(vm: Vm, maps: MapTable, env: KernelEnv): void {
  const probeRead = (v: Vm): number => {
    const n = smallSize(v, 2);
    const d = n < 0 ? -1 : regionOffset(v, 1, n, PROT_WRITE);
    if (d >= 0) {
      const dst = (v.memory.hit as Region).bytes;
      const at = v.memory.translate(v.hi[3] as number, v.lo[3] as number, 1, PROT_READ);
      if (at < 0 && n > 0) {
        // The first byte faults (a NULL pointer, say): the kernel zeroes the destination.
        dst.fill(0, d, d + n);
        return EFAULT;
      }
      const r = v.memory.hit as Region;
      if (at >= 0 && at + n <= r.size) {
        copyBytes(dst, d, r.bytes, at, n);
        return 0;
      }
    }
    const size = v.argNum(2);
    const src = v.memory.read(v.arg(3), size);
    if (!(src instanceof Uint8Array)) {
      v.memory.write(v.arg(1), new Uint8Array(size));
      return EFAULT;
    }
    return v.memory.write(v.arg(1), src) === undefined ? 0 : EFAULT;
  };
  const probeReadStr = (v: Vm): number => {
    const size = smallSize(v, 2);
    if (size === 0) return 0;
    const d = size < 0 ? -1 : regionOffset(v, 1, size, PROT_WRITE);
    if (d >= 0) {
      const dst = (v.memory.hit as Region).bytes;
      const at = v.memory.translate(v.hi[3] as number, v.lo[3] as number, 1, PROT_READ);
      if (at >= 0) {
        const r = v.memory.hit as Region;
        const src = r.bytes;
        // Up to size - 1 bytes before a NUL, within the source region; a string that runs on
        // past the region's end takes the general path.
        const max = Math.min(size - 1, r.size - at);
        let n = 0;
        while (n < max && src[at + n] !== 0) n++;
        if (n < max || n === size - 1) {
          copyBytes(dst, d, src, at, n);
          dst[d + n] = 0;
          return n + 1;
        }
      } else {
        // The first byte faults: an empty string and -EFAULT.
        dst[d] = 0;
        return EFAULT;
      }
    }
    const s = v.memory.readCString(v.arg(3), v.argNum(2) - 1);
    if (!(s instanceof Uint8Array)) {
      v.memory.write(v.arg(1), new Uint8Array(1));
      return EFAULT;
    }
    const out = new Uint8Array(s.length + 1);
    out.set(s);
    return v.memory.write(v.arg(1), out) === undefined ? out.length : EFAULT;
  };
  vm.setHelper(1, (v) => {
    const map = mapArg(v, maps, 1);
    if (map === undefined) return 0;
    // Maps without a value region are tested by class only here: instanceof on every lookup
    // cost ~5% of a kprobe_multi counting run.
    if (map.values === null) {
      if (!(map instanceof MapOfMaps)) return 0;
      // The value of an outer map is the inner map itself: r0 = its struct bpf_map pointer.
      const off = v.memory.translate(
        v.hi[2] as number,
        v.lo[2] as number,
        map.attr.keySize,
        PROT_READ,
      );
      const inner = off < 0 ? undefined : map.innerAt((v.memory.hit as Region).bytes, off);
      if (inner === undefined) return 0;
      v.setR0(inner.addressLo, inner.addressHi);
      return undefined;
    }
    const slot = keySlot(v, map, 2, env.smpProcessorId());
    if (slot < 0) return 0;
    setR0Address(v, map.values, slot);
    return undefined;
  });
  vm.setHelper(2, (v) => {
    const map = mapArg(v, maps, 1);
    if (map === undefined) return EINVAL;
    const keyIn = operand(v, 2, map.attr.keySize);
    const keyOff = operandAt[0] as number;
    const valueIn = keyIn === null ? null : operand(v, 3, map.attr.valueSize);
    const flags = smallSize(v, 4);
    if (valueIn !== null) {
      return map.updateAt(
        keyIn as Uint8Array,
        keyOff,
        valueIn,
        operandAt[0] as number,
        flags,
        env.smpProcessorId(),
      );
    }
    // A key or value that faults or spans regions: copied out, or the fault reported.
    const key = v.memory.read(v.arg(2), map.attr.keySize);
    const value = v.memory.read(v.arg(3), map.attr.valueSize);
    if (!(key instanceof Uint8Array) || !(value instanceof Uint8Array)) return EFAULT;
    const err = map.update(key, value, v.argNum(4), env.smpProcessorId());
    return err === null ? 0 : err.errno;
  });
  vm.setHelper(3, (v) => {
    const map = mapArg(v, maps, 1);
    if (map === undefined) return EINVAL;
    const keyIn = operand(v, 2, map.attr.keySize);
    if (keyIn !== null) return map.deleteAt(keyIn, operandAt[0] as number);
    const key = v.memory.read(v.arg(2), map.attr.keySize);
    if (!(key instanceof Uint8Array)) return EFAULT;
    const err = map.delete(key);
    return err === null ? 0 : err.errno;
  });
  for (const id of [4, 112, 113]) vm.setHelper(id, probeRead);
  for (const id of [45, 114, 115]) vm.setHelper(id, probeReadStr);
  // The env's 64-bit answers, passed on as r0's halves.
  const u64 = new Int32Array(2);
  vm.setHelper(5, (v) => {
    env.ktimeGetNs(u64);
    v.setR0(u64[0] as number, u64[1] as number);
  });
  vm.setHelper(6, (v) => {
    const fmt = v.memory.read(v.arg(1), v.argNum(2));
    if (!(fmt instanceof Uint8Array)) return EFAULT;
    const nul = fmt.indexOf(0);
    const text = formatPrintk(v, new TextDecoder().decode(nul < 0 ? fmt : fmt.subarray(0, nul)), [
      v.arg(3),
      v.arg(4),
      v.arg(5),
    ]);
    if (text instanceof VmError) return EINVAL;
    env.tracePrintk(text);
    return text.length;
  });
  // 32 random bits, zero-extended (an int32 low half: a uint32 past 2^31 would be boxed).
  vm.setHelper(7, (v) => {
    v.setR0(env.prandomU32() | 0, 0);
  });
  vm.setHelper(8, () => env.smpProcessorId());
  vm.setHelper(14, (v) => {
    env.currentPidTgid(u64);
    v.setR0(u64[0] as number, u64[1] as number);
  });
  vm.setHelper(16, (v) => {
    const n = smallSize(v, 2);
    const d = n < 0 ? -1 : regionOffset(v, 1, n, PROT_WRITE);
    if (d >= 0) {
      const all = env.currentComm();
      const dst = (v.memory.hit as Region).bytes;
      const len = Math.min(all.length, TASK_COMM_LEN - 1, n - 1);
      for (let i = 0; i < n; i++) dst[d + i] = i < len ? (all[i] as number) : 0;
      return 0;
    }
    const size = v.argNum(2);
    const comm = env.currentComm().subarray(0, TASK_COMM_LEN - 1);
    const out = new Uint8Array(size);
    out.set(comm.subarray(0, Math.max(0, size - 1)));
    return v.memory.write(v.arg(1), out) === undefined ? 0 : EFAULT;
  });
  vm.setHelper(35, (v) => {
    env.currentTask(u64);
    v.setR0(u64[0] as number, u64[1] as number);
  });
  vm.setHelper(25, (v) => {
    const map = mapArg(v, maps, 2);
    if (!(map instanceof PerfEventArray)) return EINVAL;
    // The CPU index (or BPF_F_CURRENT_CPU, -1 as an int32) is the flags' low half; an index of
    // 2^31 or more is out of range either way and stays an int32.
    const low = v.lo[3] as number;
    const index =
      low === (BPF_F_CURRENT_CPU | 0) ? env.smpProcessorId() : low < 0 ? 0x7fffffff : low;
    const size = smallSize(v, 5);
    const off =
      size < 0 ? -1 : v.memory.translate(v.hi[4] as number, v.lo[4] as number, size, PROT_READ);
    if (off < 0) return EFAULT;
    return map.output(index, (v.memory.hit as Region).bytes, off, size);
  });
  vm.setHelper(27, (v) => {
    const map = mapArg(v, maps, 2);
    if (!(map instanceof StackTraceMap)) return EINVAL;
    const flags = v.argNum(3);
    return map.stackId(env.stack((flags & (1 << 8)) !== 0), flags);
  });
  vm.setHelper(67, (v) => {
    const size = v.argNum(3);
    const flags = v.argNum(4);
    if (size % 8 !== 0) return EINVAL;
    const ips = env.stack((flags & (1 << 8)) !== 0).slice(flags & 0xff, (flags & 0xff) + size / 8);
    const out = new Uint8Array(size);
    const view = new DataView(out.buffer);
    ips.forEach((ip, k) => view.setBigUint64(k * 8, ip, true));
    return v.memory.write(v.arg(2), out) === undefined ? ips.length * 8 : EFAULT;
  });
  vm.setHelper(130, (v) => {
    const map = mapArg(v, maps, 1);
    if (!(map instanceof RingBuf)) return EINVAL;
    const size = smallSize(v, 3);
    const src = size < 0 ? null : operand(v, 2, size);
    if (src !== null) return map.output(src, operandAt[0] as number, size);
    // Data that faults or spans regions: copied out, or the fault reported.
    const data = v.memory.read(v.arg(2), v.argNum(3));
    if (!(data instanceof Uint8Array)) return EFAULT;
    return map.output(data, 0, data.length);
  });
  vm.setHelper(131, (v) => {
    const map = mapArg(v, maps, 1);
    if (!(map instanceof RingBuf)) return 0;
    // A size of 2^31 or more (-1 here) cannot fit: reserve counts it lost.
    const at = map.reserve(smallSize(v, 2));
    if (at < 0) return 0;
    setR0Address(v, map.data, at);
    return undefined;
  });
  const commit = (discard: boolean) => (v: Vm) => {
    const at = v.memory.translate(v.hi[1] as number, v.lo[1] as number, 1, PROT_READ);
    const ring = at < 0 ? undefined : ringOf.get(v.memory.hit as Region);
    const err =
      ring === undefined
        ? new VmError(
            'EINVAL',
            `ringbuf_${discard ? 'discard' : 'submit'}: 0x${v.arg(1).toString(16)} is not a ringbuf sample`,
          )
        : ring.commit(at, discard);
    if (err !== null) v.abort(err);
    return 0;
  };
  const ringOf = new Map<Region, RingBuf>();
  maps.onCreate = (m) => {
    if (m instanceof RingBuf) ringOf.set(m.data, m);
  };
  for (const m of maps.all()) maps.onCreate(m);
  vm.setHelper(181, (v) => v.bpfLoop());
  vm.setHelper(132, commit(false));
  vm.setHelper(133, commit(true));
  vm.tailCall = (handle, index) => {
    const map = maps.byHandle(handle);
    return map instanceof ProgArray && index < map.attr.maxEntries ? map.progs[index] : undefined;
  };
}

/** An lddw resolver for Program.load: map fds (ids in the table) and map values. */
export function mapResolver(maps: MapTable): (i: Insn, index: number) => bigint | VmError {
  return (i, index) => {
    const map = maps.get(i.imm);
    switch (i.src) {
      case 1:
      case 5:
        return map?.address ?? new VmError('EBADF', `insn ${index}: fd ${i.imm} is not a map`);
      case 2:
      case 6: {
        if (map === undefined)
          return new VmError('EINVAL', `insn ${index}: fd ${i.imm} is not a map`);
        const direct =
          map.attr.type === BPF_MAP_TYPE_ARRAY || map.attr.type === BPF_MAP_TYPE_PERCPU_ARRAY;
        if (!direct || map.values === null || map.attr.type === BPF_MAP_TYPE_PERCPU_ARRAY) {
          return new VmError('EINVAL', `insn ${index}: map ${map.name} has no direct value access`);
        }
        if (i.imm2 < 0 || i.imm2 >= map.attr.valueSize) {
          return new VmError(
            'EINVAL',
            `insn ${index}: invalid access to map value pointer, value_size=${map.attr.valueSize} off=${i.imm2}`,
          );
        }
        return map.values.base + BigInt(i.imm2);
      }
      default:
        return new VmError(
          'EINVAL',
          `insn ${index}: lddw src ${i.src} is not supported by this loader`,
        );
    }
  };
}
