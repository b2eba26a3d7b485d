import { PtRegs, type FtraceRegs } from '@tracelab/arch-isa';
import { TracelabError } from '@tracelab/contracts';
import { globMatch } from '@tracelab/ftrace-core';
import type { Cpu } from '@tracelab/kernel';
import { Fprobe, type FprobeData, type Fprobes } from './fprobe.js';

/** BPF_F_KPROBE_MULTI_RETURN: attach to function exits. */
export const BPF_F_KPROBE_MULTI_RETURN = 1;
/** MAX_KPROBE_MULTI_CNT. */
export const MAX_KPROBE_MULTI_CNT = 1 << 20;

/**
 * What bpf_get_func_ip, bpf_get_attach_cookie and the session helpers answer during a run. One
 * per CPU, refilled on every hit without allocating: the entry address is kept as its low half
 * and built as a bigint only when a program asks for it.
 */
export class KprobeMultiRunCtx {
  /** Low 32 bits of the probed function's entry address. */
  entryIpLo = 0;
  /** bpf_get_attach_cookie(). */
  cookie = 0n;
  /** bpf_session_is_return(). */
  isReturn = false;
  /** bpf_session_cookie(): the 8 bytes a session keeps from entry to return. */
  session: FprobeData | null = null;

  constructor(
    /** The traced call's CPU. */
    readonly cpu: Cpu,
    private readonly textHi: bigint,
  ) {}

  /** Entry address of the probed function (bpf_get_func_ip). */
  get entryIp(): bigint {
    return this.textHi | BigInt(this.entryIpLo >>> 0);
  }
}

/**
 * A kprobe-type program: gets the pt_regs built by ftrace_partial_regs (`regs.real` marks the
 * registers that hold values) and returns r0. `vmKprobeProgram` adapts a vm program.
 */
export type KprobeMultiProg = (regs: PtRegs, run: KprobeMultiRunCtx) => number;

/** bpf_attr.link_create.kprobe_multi, plus libbpf's pattern (resolved here to symbols). */
export interface KprobeMultiOpts {
  readonly syms?: readonly string[];
  readonly addrs?: readonly bigint[];
  readonly pattern?: string;
  readonly cookies?: readonly bigint[];
  /** Defaults to the length of syms or addrs. */
  readonly cnt?: number;
  readonly flags?: number;
  /** BPF_TRACE_KPROBE_SESSION: the program runs at entry and, unless it returned non-zero, at return. */
  readonly session?: boolean;
  /** link_create.flags: must be 0. */
  readonly linkFlags?: number;
  /**
   * One pt_regs per CPU to build the program's context in (default: the link's own), so a
   * caller that maps their bytes into kernel memory lets the program read them in place.
   */
  readonly regs?: readonly PtRegs[];
}

/** Counters per link. */
export interface KprobeMultiStats {
  runs: number;
  /** bpf_prog_inc_misses_counter: runs skipped by the per-CPU active guard. */
  misses: number;
}

/** struct bpf_kprobe_multi_link: one fprobe over every target. */
export class KprobeMultiLink {
  declare readonly fp: Fprobe;
  /** Target addresses sorted, with their cookies moved alongside. */
  declare readonly addrs: BigUint64Array;
  declare readonly cookies: BigUint64Array | null;
  /** Low 32 bits of addrs, for the allocation-free binary search. */
  declare private readonly addrLo: Uint32Array;
  declare readonly flags: number;
  declare readonly session: boolean;
  readonly stats: KprobeMultiStats = { runs: 0, misses: 0 };
  declare private readonly fprobes: Fprobes;
  declare private readonly prog: KprobeMultiProg;
  declare private readonly regs: PtRegs[];
  declare private readonly runCtx: KprobeMultiRunCtx[];
  declare private readonly textHi: bigint;

  /** @internal use kprobeMultiLinkAttach. */
  constructor(
    fprobes: Fprobes,
    prog: KprobeMultiProg,
    addrs: BigUint64Array,
    cookies: BigUint64Array | null,
    flags: number,
    session: boolean,
    regs?: readonly PtRegs[],
  ) {
    this.fprobes = fprobes;
    this.prog = prog;
    this.addrs = addrs;
    this.addrLo = Uint32Array.from(addrs, (a) => Number(a & 0xffffffffn));
    this.cookies = cookies;
    this.flags = flags;
    this.session = session;
    const k = fprobes.kernel;
    this.textHi = (k.image.textBase >> 32n) << 32n;
    this.regs = k.cpus.map((cpu) => regs?.[cpu.id] ?? new PtRegs(k.arch));
    this.runCtx = k.cpus.map((cpu) => new KprobeMultiRunCtx(cpu, this.textHi));
    const ret = (flags & BPF_F_KPROBE_MULTI_RETURN) !== 0;
    this.fp = new Fprobe({
      name: 'kprobe_multi',
      entryDataSize: session ? 8 : 0,
      entryHandler:
        !ret || session
          ? (_fp, ip, _r, fregs, data, cpu) => {
              const err = this.progRun(ip, fregs, false, data, cpu);
              return session ? err : 0;
            }
          : undefined,
      exitHandler:
        ret || session
          ? (_fp, ip, _r, fregs, data, cpu) => {
              this.progRun(ip, fregs, true, data, cpu);
            }
          : undefined,
    });
  }

  /** bpf_kprobe_multi_cookie(): binary search of the sorted addresses. */
  cookieOf(ipLo: number): bigint {
    const c = this.cookies;
    if (c === null) return 0n;
    const a = this.addrLo;
    let lo = 0;
    let hi = a.length - 1;
    const key = ipLo >>> 0;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const v = a[mid] as number;
      if (v === key) return c[mid] as bigint;
      if (v < key) lo = mid + 1;
      else hi = mid - 1;
    }
    return 0n;
  }

  /** kprobe_multi_link_prog_run(). */
  private progRun(
    ip: number,
    fregs: FtraceRegs | null,
    isReturn: boolean,
    data: FprobeData | null,
    cpu: Cpu,
  ): number {
    const id = cpu.id;
    if (cpu.bpfProgActive !== 0) {
      this.stats.misses++;
      return 1;
    }
    if (fregs === null) return 0;
    cpu.bpfProgActive++;
    this.stats.runs++;
    // ftrace_partial_regs(); the pt_regs' arch was checked at attach.
    const regs = this.regs[id] as PtRegs;
    fregs.partialInto(regs);
    const run = this.runCtx[id] as KprobeMultiRunCtx;
    run.entryIpLo = ip;
    run.cookie = this.cookieOf(ip);
    run.isReturn = isReturn;
    run.session = data;
    let r: number;
    try {
      r = this.prog(regs, run);
    } finally {
      cpu.bpfProgActive--;
    }
    return r;
  }

  /** Detaches (bpf_link release). */
  detach(): TracelabError | null {
    return this.fprobes.unregisterFprobe(this.fp);
  }
}

/**
 * bpf_kprobe_multi_link_attach() with libbpf's pattern resolution: checks the kernel's argument
 * rules, sorts addresses with their cookies and registers one fprobe over all of them.
 */
export function kprobeMultiLinkAttach(
  fprobes: Fprobes,
  prog: KprobeMultiProg,
  opts: KprobeMultiOpts,
): KprobeMultiLink | TracelabError {
  const inval = (why: string) => new TracelabError('EINVAL', `kprobe_multi: ${why}`);
  if (fprobes.kernel.info.wordSize !== 8) {
    return new TracelabError('EOPNOTSUPP', 'kprobe_multi: needs 64-bit addresses');
  }
  if ((opts.linkFlags ?? 0) !== 0) return inval('link flags must be 0');
  const flags = opts.flags ?? 0;
  if ((flags & ~BPF_F_KPROBE_MULTI_RETURN) !== 0)
    return inval(`unknown flags 0x${flags.toString(16)}`);
  let syms = opts.syms;
  if (opts.pattern !== undefined) {
    // libbpf: a pattern excludes syms, addrs and cookies.
    if (syms !== undefined || opts.addrs !== undefined || opts.cookies !== undefined) {
      return inval('pattern with syms, addrs or cookies');
    }
    syms = fprobes.ftrace.table.functions
      .filter((f) => globMatch(opts.pattern as string, f.name))
      .map((f) => f.name);
    if (syms.length === 0) {
      return new TracelabError('ENOENT', `kprobe_multi: no function matches '${opts.pattern}'`);
    }
  }
  const addrsIn = opts.addrs;
  if ((addrsIn === undefined) === (syms === undefined))
    return inval('exactly one of addrs and syms');
  const cnt = opts.cnt ?? (syms ?? addrsIn ?? []).length;
  if (cnt === 0) return inval('cnt is 0');
  if (cnt > MAX_KPROBE_MULTI_CNT) {
    return new TracelabError('E2BIG', `kprobe_multi: cnt ${cnt} > ${MAX_KPROBE_MULTI_CNT}`);
  }
  const given = (syms ?? addrsIn ?? []).length;
  if (given < cnt || (opts.cookies !== undefined && opts.cookies.length < cnt)) {
    return new TracelabError('EFAULT', `kprobe_multi: arrays shorter than cnt ${cnt}`);
  }
  const image = fprobes.kernel.image;
  const addrs = new BigUint64Array(cnt);
  for (let i = 0; i < cnt; i++) {
    if (syms !== undefined) {
      const name = syms[i] as string;
      const fn = image.indexOf(name);
      if (fn < 0) return new TracelabError('ENOENT', `kprobe_multi: symbol '${name}' not found`);
      addrs[i] = image.functions[fn]?.addr as bigint;
    } else addrs[i] = (addrsIn as readonly bigint[])[i] as bigint;
  }
  const order = Array.from({ length: cnt }, (_, i) => i).sort((a, b) =>
    (addrs[a] as bigint) < (addrs[b] as bigint)
      ? -1
      : (addrs[a] as bigint) > (addrs[b] as bigint)
        ? 1
        : 0,
  );
  const sorted = BigUint64Array.from(order, (i) => addrs[i] as bigint);
  const cookies =
    opts.cookies === undefined
      ? null
      : BigUint64Array.from(order, (i) => (opts.cookies as readonly bigint[])[i] as bigint);
  const badRegs = opts.regs?.find((r) => r.arch.name !== fprobes.kernel.arch);
  if (badRegs !== undefined) {
    return inval(`regs are ${badRegs.arch.name} pt_regs, the kernel is ${fprobes.kernel.arch}`);
  }
  if (opts.regs !== undefined && opts.regs.length < fprobes.kernel.cpus.length) {
    return inval(`${opts.regs.length} pt_regs for ${fprobes.kernel.cpus.length} CPUs`);
  }
  const link = new KprobeMultiLink(
    fprobes,
    prog,
    sorted,
    cookies,
    flags,
    opts.session === true,
    opts.regs,
  );
  const err = fprobes.registerFprobeIps(link.fp, [...sorted]);
  return err ?? link;
}
