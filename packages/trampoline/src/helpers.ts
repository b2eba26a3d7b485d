import { PROT_READ, PROT_WRITE, type Region, type Vm } from '@tracelab/vm';

/** Helper ids (include/uapi/linux/bpf.h). */
export const BPF_FUNC_get_func_ip = 173;
export const BPF_FUNC_get_func_arg = 183;
export const BPF_FUNC_get_func_ret = 184;
export const BPF_FUNC_get_func_arg_cnt = 185;

const EINVAL = -22;
const EFAULT = -14;
const EOPNOTSUPP = -95;
/** No trampoline program is running on the CPU. */
const KIND_NONE = -1;

/**
 * What the tracing helpers know about the program running on each CPU: the traced function's
 * ip (as int32 halves: the traced call builds no bigint) and the program kind
 * (bpf_get_func_ret exists only for fexit and fmod_ret).
 */
export class TracingState {
  declare readonly kind: Int8Array;
  declare readonly ipLo: Int32Array;
  declare readonly ipHi: Int32Array;

  constructor(ncpus: number) {
    this.kind = new Int8Array(ncpus).fill(KIND_NONE);
    this.ipLo = new Int32Array(ncpus);
    this.ipHi = new Int32Array(ncpus);
  }

  begin(cpu: number, ipLo: number, ipHi: number, kind: number): void {
    this.ipLo[cpu] = ipLo;
    this.ipHi[cpu] = ipHi;
    this.kind[cpu] = kind;
  }

  end(cpu: number): void {
    this.kind[cpu] = KIND_NONE;
  }
}

const le32 = (b: Uint8Array, o: number): number =>
  (b[o] as number) |
  ((b[o + 1] as number) << 8) |
  ((b[o + 2] as number) << 16) |
  ((b[o + 3] as number) << 24);

/** Reads the u64 at addr as (lo, hi) into out; false on a fault. */
function load64(vm: Vm, lo: number, hi: number, out: Int32Array): boolean {
  const off = vm.memory.translate(hi, lo, 8, PROT_READ);
  if (off < 0) return false;
  const b = (vm.memory.hit as Region).bytes;
  out[0] = le32(b, off);
  out[1] = le32(b, off + 4);
  return true;
}

function store64(vm: Vm, lo: number, hi: number, vlo: number, vhi: number): boolean {
  const off = vm.memory.translate(hi, lo, 8, PROT_WRITE);
  if (off < 0) return false;
  const b = (vm.memory.hit as Region).bytes;
  for (let i = 0; i < 4; i++) {
    b[off + i] = (vlo >>> (8 * i)) & 0xff;
    b[off + 4 + i] = (vhi >>> (8 * i)) & 0xff;
  }
  return true;
}

/** ctx + delta u64 slots, as (lo, hi) halves of r1. */
function slotAddr(vm: Vm, delta: number, out: Int32Array): void {
  const lo = ((vm.lo[1] as number) >>> 0) + delta * 8;
  out[0] = lo | 0;
  out[1] = ((vm.hi[1] as number) + Math.floor(lo / 0x100000000)) | 0;
}

/**
 * Installs bpf_get_func_ip, bpf_get_func_arg, bpf_get_func_ret and bpf_get_func_arg_cnt on a
 * CPU's vm. They read the ctx the trampoline built: ctx[-1] the argument slot count, ctx[-2] the
 * function ip, ctx[nr] the return value. Allocation-free.
 */
export function installTracingHelpers(vm: Vm, state: TracingState, cpu: number): void {
  const a = new Int32Array(2);
  const v = new Int32Array(2);
  const nrArgs = (x: Vm): number => {
    slotAddr(x, -1, a);
    return load64(x, a[0] as number, a[1] as number, v) ? (v[0] as number) : -1;
  };
  vm.setHelper(BPF_FUNC_get_func_ip, (x) =>
    x.setR0(state.ipLo[cpu] as number, state.ipHi[cpu] as number),
  );
  vm.setHelper(BPF_FUNC_get_func_arg_cnt, (x) => {
    const n = nrArgs(x);
    return n < 0 ? EFAULT : n;
  });
  vm.setHelper(BPF_FUNC_get_func_arg, (x) => {
    const n = nrArgs(x);
    if (n < 0) return EFAULT;
    // n as u64: a negative index is huge, so >= nr.
    const idx = (x.hi[2] as number) !== 0 ? Infinity : (x.lo[2] as number) >>> 0;
    if (idx >= n) return EINVAL;
    slotAddr(x, idx, a);
    if (!load64(x, a[0] as number, a[1] as number, v)) return EFAULT;
    return store64(x, x.lo[3] as number, x.hi[3] as number, v[0] as number, v[1] as number)
      ? 0
      : EFAULT;
  });
  vm.setHelper(BPF_FUNC_get_func_ret, (x) => {
    if (state.kind[cpu] !== 1 && state.kind[cpu] !== 2) return EOPNOTSUPP;
    const n = nrArgs(x);
    if (n < 0) return EFAULT;
    slotAddr(x, n, a);
    if (!load64(x, a[0] as number, a[1] as number, v)) return EFAULT;
    return store64(x, x.lo[2] as number, x.hi[2] as number, v[0] as number, v[1] as number)
      ? 0
      : EFAULT;
  });
}
