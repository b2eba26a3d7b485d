import { PtRegs } from '@tracelab/arch-isa';
import { TracelabError, type ErrnoCode } from '@tracelab/contracts';
import {
  kprobeMultiLinkAttach,
  type KprobeMultiLink,
  type KprobeMultiRunCtx,
  BPF_F_KPROBE_MULTI_RETURN,
} from '@tracelab/fprobe';
import { kernelEnv } from '@tracelab/kernel';
import { BpfObject, LoaderError, mapTypeName, sectionInfo } from '@tracelab/loader';
import {
  BPF_FUNC_get_func_ip,
  BPF_TRAMP_FENTRY,
  BPF_TRAMP_FEXIT,
  BPF_TRAMP_MODIFY_RETURN,
  type BpfTracingLink,
  type BpfTrampProgType,
} from '@tracelab/trampoline';
import {
  verify,
  type MapDef,
  type MapType,
  type ProgType,
  type AttachType,
} from '@tracelab/verifier';
import {
  assemble,
  BPF_PSEUDO_MAP_FD,
  BPF_PSEUDO_MAP_VALUE,
  installHelpers,
  MapOfMaps,
  mapResolver,
  Program,
  PROT_READ,
  Vm,
  VmError,
  type BpfMap,
  type Insn,
  type MapAttr,
} from '@tracelab/vm';
import type { Engine } from './engine.js';
import { attempt } from './errors.js';

/** A rejected BPF_PROG_LOAD: the verifier's errno and message, and its log as the kernel fills it. */
export class BpfLoadError extends TracelabError {
  constructor(
    code: ErrnoCode,
    message: string,
    readonly log: string,
  ) {
    super(code, message);
  }
}

export interface ProgLoadAttr {
  readonly insns: readonly Insn[];
  readonly progType: ProgType;
  /** fentry/fexit/fmod_ret for tracing programs. */
  readonly attachType?: AttachType;
  /** attach_btf_id by name: the function a tracing program is verified against. */
  readonly attachTarget?: string;
  readonly name?: string;
  readonly logLevel?: 0 | 1 | 2;
}

export interface LoadedProg {
  readonly fd: number;
  readonly name: string;
  readonly progType: ProgType;
  readonly attachType: AttachType | undefined;
  /** The section's target (fentry/vfs_read -> vfs_read), '' when none. */
  readonly attachTarget: string;
  /** The object section it came from ('' for BPF_PROG_LOAD of bare instructions). */
  readonly section: string;
  readonly log: string;
}

/** BPF_LINK_CREATE: a trampoline link (fentry/fexit/fmod_ret) or a kprobe_multi link. */
export type LinkAttr =
  | {
      readonly attachType: 'fentry' | 'fexit' | 'fmod_ret';
      readonly targets?: string | readonly string[];
    }
  | {
      readonly attachType: 'kprobe_multi';
      readonly syms?: readonly string[];
      readonly pattern?: string;
      readonly cookies?: readonly bigint[];
      readonly retprobe?: boolean;
    };

interface ProgEntry {
  readonly kind: 'prog';
  readonly prog: Program;
  readonly info: LoadedProg;
}
interface MapEntry {
  readonly kind: 'map';
  readonly map: BpfMap;
}
interface LinkEntry {
  readonly kind: 'link';
  readonly detach: () => TracelabError | null;
}
type FdEntry = ProgEntry | MapEntry | LinkEntry;

const TRAMP_KIND: Readonly<Record<'fentry' | 'fexit' | 'fmod_ret', BpfTrampProgType>> = {
  fentry: BPF_TRAMP_FENTRY,
  fexit: BPF_TRAMP_FEXIT,
  fmod_ret: BPF_TRAMP_MODIFY_RETURN,
};

const PROG_TYPE: Readonly<Record<string, ProgType>> = {
  SOCKET_FILTER: 'socket_filter',
  KPROBE: 'kprobe',
  TRACEPOINT: 'tracepoint',
  PERF_EVENT: 'perf_event',
  RAW_TRACEPOINT: 'raw_tracepoint',
  TRACING: 'tracing',
  SYSCALL: 'syscall',
};

const ATTACH_TYPE: Readonly<Record<string, AttachType>> = {
  BPF_TRACE_FENTRY: 'fentry',
  BPF_TRACE_FEXIT: 'fexit',
  BPF_MODIFY_RETURN: 'fmod_ret',
};

/** Where kprobe_multi programs' per-CPU BPF stacks go: 16 MiB below the engine's map area, clear of
 * the kernel objects on every arch (i386's heap starts only 256 MiB below its maps). */
const KPROBE_STACK_OFFSET = 0x1000000n;
/** A CPU's kprobe pt_regs, from the start of its 64 KiB (above the 4 KiB BPF stack). */
const KPROBE_REGS_OFFSET = 0x8000n;

/**
 * The bpf() syscall of one engine: fds for maps, programs and links in one table, as the kernel
 * hands them out (lowest free number from 3), over the engine's map table and the layers'
 * attach points.
 */
export class Bpf {
  private readonly fds = new Map<number, FdEntry>();
  private kprobeVms: Vm[] | null = null;
  /**
   * Each CPU's pt_regs for kprobe programs, its bytes mapped into kernel memory (so a link builds
   * the context where the program reads it), and that address as halves for r1.
   */
  private readonly ptRegs: PtRegs[] = [];
  private readonly ptAddr: { lo: number; hi: number }[] = [];
  /** The kprobe_multi run in progress on each CPU (bpf_get_func_ip asks it). */
  private readonly kprobeRun: (KprobeMultiRunCtx | null)[] = [];

  constructor(private readonly engine: Engine) {}

  private alloc(entry: FdEntry): number {
    let fd = 3;
    while (this.fds.has(fd)) fd++;
    this.fds.set(fd, entry);
    return fd;
  }

  private entry<K extends FdEntry['kind']>(
    fd: number,
    kind: K,
  ): Extract<FdEntry, { kind: K }> | TracelabError {
    const e = this.fds.get(fd);
    if (e === undefined || e.kind !== kind)
      return new TracelabError('EBADF', `fd ${fd} is not a ${kind}`);
    return e as Extract<FdEntry, { kind: K }>;
  }

  /** close(fd): a link detaches; maps and programs stay while something holds them. */
  close(fd: number): TracelabError | null {
    const e = this.fds.get(fd);
    if (e === undefined) return new TracelabError('EBADF', `fd ${fd} is not open`);
    if (e.kind === 'link') {
      const err = e.detach();
      if (err !== null) return err;
    }
    this.fds.delete(fd);
    return null;
  }

  // ---- maps ----

  /** BPF_MAP_CREATE. */
  mapCreate(attr: MapAttr): number | TracelabError {
    const m = this.engine.maps.create(attr);
    return m instanceof VmError ? m : this.alloc({ kind: 'map', map: m });
  }

  map(fd: number): BpfMap | TracelabError {
    const e = this.entry(fd, 'map');
    return e instanceof TracelabError ? e : e.map;
  }

  /** BPF_MAP_LOOKUP_ELEM. */
  mapLookup(fd: number, key: Uint8Array): Uint8Array | TracelabError {
    const m = this.map(fd);
    if (m instanceof TracelabError) return m;
    const v = m.lookup(key);
    return v;
  }

  /** BPF_MAP_UPDATE_ELEM with BPF_ANY / BPF_NOEXIST / BPF_EXIST. */
  mapUpdate(fd: number, key: Uint8Array, value: Uint8Array, flags = 0): TracelabError | null {
    const m = this.map(fd);
    if (m instanceof TracelabError) return m;
    const err = m.update(key, value, flags);
    return err;
  }

  /** BPF_MAP_DELETE_ELEM. */
  mapDelete(fd: number, key: Uint8Array): TracelabError | null {
    const m = this.map(fd);
    if (m instanceof TracelabError) return m;
    const err = m.delete(key);
    return err;
  }

  /** BPF_MAP_GET_NEXT_KEY: null key gives the first; ENOENT after the last. */
  mapGetNextKey(fd: number, key: Uint8Array | null): Uint8Array | TracelabError {
    const m = this.map(fd);
    if (m instanceof TracelabError) return m;
    const k = m.getNextKey(key);
    return k;
  }

  /** Every (key, value) of a map, walked with get_next_key as bpftool map dump does. */
  mapEntries(fd: number): [Uint8Array, Uint8Array][] | TracelabError {
    const out: [Uint8Array, Uint8Array][] = [];
    let key: Uint8Array | null = null;
    for (;;) {
      const next = this.mapGetNextKey(fd, key);
      if (next instanceof TracelabError) return next.code === 'ENOENT' ? out : next;
      const value = this.mapLookup(fd, next);
      // A key deleted between the two calls is skipped, as a dump racing an update does.
      if (!(value instanceof TracelabError)) out.push([next, value]);
      key = next;
    }
  }

  // ---- programs ----

  /**
   * progLoad of eBPF assembly text (the vm's syntax): a text that does not assemble is a load
   * error too, with its line and column and an empty log.
   */
  progLoadText(text: string, attr: Omit<ProgLoadAttr, 'insns'>): LoadedProg | BpfLoadError {
    const insns = assemble(text);
    if (insns instanceof VmError) return new BpfLoadError(insns.code, insns.message, '');
    return this.progLoad({ ...attr, insns });
  }

  /** BPF_PROG_LOAD of raw instructions; lddw of a map takes the map's fd (src 1 or 2). */
  progLoad(attr: ProgLoadAttr): LoadedProg | BpfLoadError {
    const maps = new Map<number, MapDef>();
    for (const [fd, e] of this.fds) if (e.kind === 'map') maps.set(fd, verifierMap(e.map));
    const btf = this.engine.kernel.image.btf;
    const r = verify([...attr.insns], {
      progType: attr.progType,
      maps,
      arch: this.engine.arch,
      logLevel: attr.logLevel ?? 1,
      ...(attr.attachType !== undefined ? { attachType: attr.attachType } : {}),
      ...(attr.attachTarget !== undefined ? { attachTarget: attr.attachTarget } : {}),
      ...(btf !== null ? { btf } : {}),
    });
    if (!r.ok) {
      return new BpfLoadError(r.errnoName ?? 'EINVAL', r.error?.message ?? 'rejected', r.log);
    }
    const resolve = mapResolver(this.engine.maps);
    const prog = Program.load(attr.insns, {
      name: attr.name ?? 'prog',
      resolveLddw: (i, index) => {
        if (i.src !== BPF_PSEUDO_MAP_FD && i.src !== BPF_PSEUDO_MAP_VALUE) return resolve(i, index);
        const m = this.map(i.imm);
        if (m instanceof TracelabError)
          return new VmError('EBADF', `insn ${index}: fd ${i.imm} is not a map`);
        return resolve({ ...i, imm: m.id }, index);
      },
    });
    if (prog instanceof VmError) return new BpfLoadError(prog.code, prog.message, r.log);
    return this.addProg(
      prog,
      attr.name ?? 'prog',
      attr.progType,
      attr.attachType,
      attr.attachTarget ?? '',
      '',
      r.log,
    );
  }

  private addProg(
    prog: Program,
    name: string,
    progType: ProgType,
    attachType: AttachType | undefined,
    attachTarget: string,
    section: string,
    log: string,
  ): LoadedProg {
    const info = { fd: 0, name, progType, attachType, attachTarget, section, log };
    const fd = this.alloc({ kind: 'prog', prog, info });
    const full = { ...info, fd };
    this.fds.set(fd, { kind: 'prog', prog, info: full });
    return full;
  }

  /**
   * libbpf's bpf_object__load over this engine, through the loader's BpfObject.load(): CO-RE and
   * typed ksyms resolve against the kernel's BTF and kallsyms, every chosen program is verified
   * first (nothing is kept if one is rejected), the maps are created in the engine's map table
   * (global data, bpfeb data converted, map-in-map inner templates and object-initialised slots
   * included) and get fds, then the programs.
   */
  loadObject(
    bytes: Uint8Array,
    options: { logLevel?: 0 | 1 | 2; programs?: readonly string[] } = {},
  ): { programs: LoadedProg[]; maps: Map<string, number> } | BpfLoadError {
    const image = this.engine.kernel.image;
    const btf = image.btf;
    const loaded = attempt(() => {
      const obj = BpfObject.open(bytes);
      if (btf !== null) obj.setTargetBtf(btf);
      obj.setKsymResolver((name) => image.functions[image.indexOf(name)]?.addr);
      // bpf_program__set_autoload(): only the programs named are verified and loaded.
      for (const p of obj.programs()) {
        if (options.programs !== undefined && !options.programs.includes(p.name))
          obj.setAutoload(p.name, false);
      }
      return obj.load({
        maps: this.engine.maps,
        arch: this.engine.arch,
        logLevel: options.logLevel ?? 1,
        ...(btf !== null ? { kernelBtf: btf } : {}),
      });
    });
    if (loaded instanceof LoaderError && loaded.program !== undefined) {
      // A verifier rejection: the program and the verifier's message, with its log.
      return new BpfLoadError(loaded.code, `${loaded.program}: ${loaded.reason}`, loaded.log ?? '');
    }
    if (loaded instanceof TracelabError) return new BpfLoadError(loaded.code, loaded.message, '');
    const maps = new Map(
      [...loaded.maps].map(([name, map]) => [name, this.alloc({ kind: 'map', map })]),
    );
    const programs = loaded.linked.programs
      .filter((lp) => loaded.programs.has(lp.def.name))
      .map((lp) => {
        const sec = lp.def.info.def;
        return this.addProg(
          loaded.program(lp.def.name),
          lp.def.name,
          PROG_TYPE[sec.progType] ?? 'kprobe',
          sec.attachType === undefined ? undefined : ATTACH_TYPE[sec.attachType],
          lp.def.info.attachTarget,
          lp.def.section,
          loaded.log(lp.def.name),
        );
      });
    return { programs, maps };
  }

  // ---- links ----

  /**
   * bpf_program__attach(): attaches a program loaded from an object the way its section name
   * says (fentry/vfs_read, fexit/..., fmod_ret/..., kprobe.multi/vfs_*, kretprobe.multi/...,
   * kprobe/FUNC, kretprobe/FUNC). Tracepoint sections are EOPNOTSUPP: the simulated kernel
   * declares tracepoints (btf_trace_* in its BTF) but nothing fires them.
   */
  attachBySection(progFd: number): number | TracelabError {
    const p = this.entry(progFd, 'prog');
    if (p instanceof TracelabError) return p;
    const { section, attachTarget } = p.info;
    if (section === '') {
      return new TracelabError('EINVAL', `prog fd ${progFd} was not loaded from an object section`);
    }
    const info = attempt(() => sectionInfo(section));
    if (info instanceof TracelabError) return info;
    const kind = info.def.attachType;
    if (kind === 'BPF_TRACE_KPROBE_MULTI') {
      return this.linkCreate(progFd, {
        attachType: 'kprobe_multi',
        pattern: attachTarget,
        retprobe: info.def.retprobe,
      });
    }
    const { progType } = info.def;
    if (progType === 'KPROBE' && kind === undefined)
      return this.attachKprobe(progFd, section, info);
    if (progType === 'TRACEPOINT' || progType === 'RAW_TRACEPOINT' || kind === 'BPF_TRACE_RAW_TP') {
      return new TracelabError(
        'EOPNOTSUPP',
        `section '${section}': the simulated kernel declares tracepoints (btf_trace_* types) but has no tracepoint call sites that fire them, so there is nothing to attach to`,
      );
    }
    const tramp = kind === undefined ? undefined : ATTACH_TYPE[kind];
    if (tramp !== 'fentry' && tramp !== 'fexit' && tramp !== 'fmod_ret') {
      return new TracelabError(
        'EOPNOTSUPP',
        `section '${section}': no layer attaches ${progType} programs yet`,
      );
    }
    return this.linkCreate(progFd, { attachType: tramp });
  }

  /**
   * kprobe/FUNC and kretprobe/FUNC: a kprobe on a function's entry is ftrace-based in the
   * kernel, so it attaches here as a kprobe_multi link with that one symbol. A probe at an
   * offset inside the function (kprobe/FUNC+0x10) needs a breakpoint kprobe, which no layer
   * has.
   */
  private attachKprobe(
    progFd: number,
    section: string,
    info: ReturnType<typeof sectionInfo>,
  ): number | TracelabError {
    const m = /^([A-Za-z_.][\w.]*)(?:\+(0x[0-9a-fA-F]+|\d+))?$/.exec(info.attachTarget);
    if (m === null) {
      return new TracelabError(
        'EINVAL',
        `section '${section}': '${info.attachTarget}' is not FUNC or FUNC+OFFSET`,
      );
    }
    if (m[2] !== undefined && Number(m[2]) !== 0) {
      return new TracelabError(
        'EOPNOTSUPP',
        `section '${section}': a kprobe at an offset inside ${m[1]} needs a breakpoint kprobe; only function-entry (ftrace-based) kprobes attach`,
      );
    }
    return this.linkCreate(progFd, {
      attachType: 'kprobe_multi',
      syms: [m[1] as string],
      retprobe: info.def.retprobe,
    });
  }

  /** BPF_LINK_CREATE; close(fd) of the link detaches it. */
  linkCreate(progFd: number, attr: LinkAttr): number | TracelabError {
    const p = this.entry(progFd, 'prog');
    if (p instanceof TracelabError) return p;
    if (attr.attachType === 'kprobe_multi') return this.kprobeMulti(p, attr);
    if (p.info.progType !== 'tracing') {
      return new TracelabError('EINVAL', `prog fd ${progFd} is ${p.info.progType}, not tracing`);
    }
    const targets = attr.targets ?? p.info.attachTarget;
    const link = this.engine.trampolines.attach(p.prog, TRAMP_KIND[attr.attachType], targets);
    if (link instanceof TracelabError) return link;
    const tracing: BpfTracingLink = link;
    return this.alloc({ kind: 'link', detach: () => this.engine.trampolines.detach(tracing) });
  }

  private kprobeMulti(
    p: ProgEntry,
    attr: Extract<LinkAttr, { attachType: 'kprobe_multi' }>,
  ): number | TracelabError {
    if (p.info.progType !== 'kprobe') {
      return new TracelabError(
        'EINVAL',
        `kprobe_multi needs a kprobe program, not ${p.info.progType}`,
      );
    }
    const vms = this.kprobeCpus();
    if (vms instanceof TracelabError) return vms;
    const prog = p.prog;
    const jit = this.engine.jit;
    // The program gets a pointer to its pt_regs, which the link built in this CPU's ptRegs.
    const run = (_regs: PtRegs, ctx: KprobeMultiRunCtx): number => {
      const cpu = ctx.cpu.id;
      this.kprobeRun[cpu] = ctx;
      const vm = vms[cpu] as Vm;
      const at = this.ptAddr[cpu] as { lo: number; hi: number };
      if (jit) vm.runJitRaw(prog, at.lo, at.hi, 0, 0);
      else vm.runRaw(prog, at.lo, at.hi, 0, 0);
      return (vm.lo[0] as number) >>> 0;
    };
    const link = kprobeMultiLinkAttach(this.engine.fprobes, run, {
      regs: this.ptRegs,
      ...(attr.syms !== undefined ? { syms: attr.syms } : {}),
      ...(attr.pattern !== undefined ? { pattern: attr.pattern } : {}),
      ...(attr.cookies !== undefined ? { cookies: attr.cookies } : {}),
      flags: attr.retprobe === true ? BPF_F_KPROBE_MULTI_RETURN : 0,
    });
    if (link instanceof TracelabError) return link;
    const km: KprobeMultiLink = link;
    return this.alloc({ kind: 'link', detach: () => km.detach() });
  }

  /** One vm per CPU for kprobe programs, with the map and kernel helpers, and a pt_regs. */
  private kprobeCpus(): Vm[] | TracelabError {
    if (this.kprobeVms !== null) return this.kprobeVms;
    const kernel = this.engine.kernel;
    const base = this.engine.mapBase - KPROBE_STACK_OFFSET;
    const vms: Vm[] = [];
    for (const cpu of kernel.cpus) {
      const area = base + BigInt(cpu.id) * 0x10000n;
      const vm = Vm.create({ memory: kernel.mm, stackBase: area });
      if (vm instanceof VmError) return vm;
      installHelpers(
        vm,
        this.engine.maps,
        kernelEnv(kernel, cpu.id, this.engine.printk.sink(cpu.id)),
      );
      vm.setHelper(BPF_FUNC_get_func_ip, () => this.kprobeRun[cpu.id]?.entryIp ?? 0n);
      // The pt_regs sit in the same 64 KiB as the CPU's BPF stack, above it.
      const regs = new PtRegs(kernel.arch);
      const at = area + KPROBE_REGS_OFFSET;
      const region = kernel.mm.map({
        name: `kprobe_regs${cpu.id}`,
        base: at,
        data: regs.bytes,
        // A kprobe program's ctx is read-only (the verifier rejects stores to it); the partial
        // build relies on it: only the accessors, which mark the regs dirty, may change them.
        prot: PROT_READ,
      });
      if (region instanceof VmError) return region;
      this.ptRegs.push(regs);
      this.ptAddr.push({ lo: Number(at & 0xffffffffn) | 0, hi: Number(at >> 32n) | 0 });
      vms.push(vm);
    }
    this.kprobeVms = vms;
    return vms;
  }
}

/** A map as the verifier sees it; an outer map carries its inner template, unnamed as the kernel's. */
function verifierMap(m: BpfMap): MapDef {
  const def = (a: MapAttr): MapDef => ({
    type: mapTypeName(a.type) as MapType,
    keySize: a.keySize,
    valueSize: a.valueSize,
    maxEntries: a.maxEntries,
  });
  return {
    ...def(m.attr),
    name: m.name,
    ...(m instanceof MapOfMaps ? { inner: def(m.template) } : {}),
  };
}
