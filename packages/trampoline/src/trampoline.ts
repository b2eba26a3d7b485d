import { archInfo, encodeEntryCall, encodeEntryNop, type ArchName } from '@tracelab/arch-isa';
import { funcModel } from '@tracelab/btf';
import { TracelabError, type ErrnoCode } from '@tracelab/contracts';
import { FtraceOps, type Ftrace } from '@tracelab/ftrace-core';
import type { Kernel } from '@tracelab/kernel';
import { verify, type AttachType } from '@tracelab/verifier';
import { Vm, type Program } from '@tracelab/vm';
import { groupPlans } from './groups.js';
import { installTracingHelpers, TracingState } from './helpers.js';
import {
  emitImageCode,
  type ImageCode,
  type ImageHandler,
  type ImageLayout,
} from './image-code.js';
import { marshalPlan, type MarshalPlan } from './plan.js';

/** enum bpf_tramp_prog_type. */
export const BPF_TRAMP_FENTRY = 0;
export const BPF_TRAMP_FEXIT = 1;
export const BPF_TRAMP_MODIFY_RETURN = 2;
export type BpfTrampProgType =
  typeof BPF_TRAMP_FENTRY | typeof BPF_TRAMP_FEXIT | typeof BPF_TRAMP_MODIFY_RETURN;
/** BPF_MAX_TRAMP_LINKS on x86-64. */
export const BPF_MAX_TRAMP_LINKS = 38;

const IMAGE_SIZE = 0x40;
/** The image's second entry: where the original function returns to (the code after `call`). */
const IMAGE_RET = 0x20;

/** bpf_tracing_link: one program attached as one kind to one or more functions. */
export class BpfTracingLink {
  /** Functions (image indices) the link is attached to now. */
  readonly fns = new Set<number>();
  constructor(
    readonly id: number,
    readonly kind: BpfTrampProgType,
    readonly prog: Program,
  ) {}
}

/** bpf_trampoline: the links of one target function, newest first, per kind. */
interface BpfTrampoline {
  readonly fn: number;
  readonly links: [BpfTracingLink[], BpfTracingLink[], BpfTracingLink[]];
  image: TrampImage | null;
}

/**
 * bpf_tramp_image: code at an address serving functions whose plans fit one leader plan and
 * which carry the same links. It keeps the programs it was built with, so a call in flight
 * when the links change returns through the old image and runs the old fexit programs.
 */
class TrampImage {
  declare readonly fentry: Program[];
  declare readonly fexit: Program[];
  declare readonly fmodRet: Program[];
  /** Each program's per-CPU run counter (prog->active), beside it so the call needs no lookup. */
  declare readonly fentryActive: Int32Array[];
  declare readonly fexitActive: Int32Array[];
  declare readonly fmodRetActive: Int32Array[];
  /** Per traced call, fexit or fmod_ret needs a frame (the original is called from the image). */
  declare readonly callOrig: boolean;
  /** Calls that entered and have not returned yet. */
  inflight = 0;
  installed = false;
  ops: FtraceOps | null = null;
  /** The return into the image, as int32 halves (what the original's return address becomes). */
  declare readonly retLo: number;
  declare readonly retHi: number;
  /** The image's code: its entry, and its return half the original returns into. */
  declare readonly enter: ImageHandler;
  declare readonly leave: ImageHandler;

  constructor(
    readonly addr: bigint,
    /** The link ids per kind: functions with equal signatures can share the image. */
    readonly sig: string,
    readonly plan: MarshalPlan,
    readonly fns: readonly number[],
    links: BpfTrampoline['links'],
    activeOf: (prog: Program) => Int32Array,
    emit: (img: TrampImage) => ImageCode,
  ) {
    const progs = (k: number): Program[] => links[k]?.map((l) => l.prog) ?? [];
    this.fentry = progs(BPF_TRAMP_FENTRY);
    this.fexit = progs(BPF_TRAMP_FEXIT);
    this.fmodRet = progs(BPF_TRAMP_MODIFY_RETURN);
    this.fentryActive = this.fentry.map(activeOf);
    this.fexitActive = this.fexit.map(activeOf);
    this.fmodRetActive = this.fmodRet.map(activeOf);
    this.callOrig = this.fexit.length > 0 || this.fmodRet.length > 0;
    const ret = addr + BigInt(IMAGE_RET);
    this.retLo = Number(BigInt.asIntN(32, ret)) | 0;
    this.retHi = Number(BigInt.asIntN(32, ret >> 32n)) | 0;
    const code = emit(this);
    this.enter = code.enter;
    this.leave = code.leave;
  }
}

/** A function set as a key (images are compared by the functions they serve). */
function fnsKey(fns: readonly number[]): string {
  return [...fns].sort((a, b) => a - b).join(',');
}

/** The link ids of a trampoline, per kind: equal signatures may share an image. */
function linkSig(tr: BpfTrampoline): string {
  let sig = '';
  for (let k = 0; k < 3; k++) {
    const list = tr.links[k] as BpfTracingLink[];
    for (let i = 0; i < list.length; i++) sig += `${(list[i] as BpfTracingLink).id},`;
    sig += '|';
  }
  return sig;
}

/** Functions to attach to: a name or glob, a list of them, or image indices. */
export type Targets = string | readonly string[] | readonly number[];

export interface TrampolineOptions {
  /** Direct calls through ftrace (null: text_poke the call sites, as for non-ftrace functions). */
  readonly ftrace?: Ftrace | null;
  /** Run programs with the vm's JIT instead of the interpreter. */
  readonly jit?: boolean;
  /** Where the per-CPU BPF stacks are mapped (one 4 KiB region per CPU, 64 KiB apart). */
  readonly bpfStackBase?: bigint;
  /**
   * Verify each program as a tracing program against every target's BTF prototype before it is
   * linked (typed ctx arguments; the return slot only for fexit/fmod_ret).
   */
  readonly verify?: boolean;
  /** Called once per CPU vm, to install map and kernel helpers. */
  readonly setupVm?: (vm: Vm, cpu: number) => void;
}

/** Counters for tests and benchmarks. */
export interface TrampolineStats {
  /** Program runs skipped by the per-CPU recursion guard (bpf_prog_inc_misses_counter). */
  misses: number;
  /** Program runs that ended in an error (fault, budget). */
  errors: number;
  images: number;
}

/** Room for 64 CPUs' BPF stacks. */
const STACK_WINDOW = 64 * 0x10000;

const BPF_STACK_BASE: Readonly<Record<ArchName, bigint>> = {
  x86_64: 0xffffc90040000000n,
  i386: 0xe8000000n,
  arm64: 0xffff800140000000n,
  riscv64: 0xffffffc640000000n,
};

/**
 * BPF trampolines over one simulated kernel: links fentry/fexit/fmod_ret programs to functions,
 * builds one image per (plan, link set), and installs it through ftrace direct calls (sharing
 * the function with other ftrace ops) or text_poke.
 */
export class Trampolines {
  declare readonly kernel: Kernel;
  declare readonly arch: ArchName;
  declare readonly ftrace: Ftrace | null;
  /** One vm per CPU: the trampoline runs programs on the CPU the traced call runs on. */
  declare readonly vms: readonly Vm[];
  readonly stats: TrampolineStats = { misses: 0, errors: 0, images: 0 };
  declare readonly state: TracingState;
  declare private readonly jit: boolean;
  declare private readonly verifyProgs: boolean;
  /** Verdicts by program, kind and prototype id (functions share deduplicated prototypes). */
  private readonly verdicts = new WeakMap<Program, Map<string, TracelabError | null>>();
  private readonly trampolines = new Map<number, BpfTrampoline>();
  /** Installed images by link signature. */
  private readonly bySig = new Map<string, Set<TrampImage>>();
  private readonly plans: (MarshalPlan | TracelabError | undefined)[];
  private readonly freeAddrs: bigint[] = [];
  private nextLinkId = 1;
  declare private readonly layout: ImageLayout;
  /** Per function (image index): ctx slots, whether the return has a high word, stack copy. */
  declare private readonly fnSlots: Uint8Array;
  declare private readonly fnRetWide: Uint8Array;
  declare private readonly fnStack: Uint16Array;
  /** Per program, per CPU: runs in progress (prog->active). */
  private readonly active = new WeakMap<Program, Int32Array>();

  constructor(kernel: Kernel, options: TrampolineOptions = {}) {
    this.kernel = kernel;
    this.arch = kernel.arch;
    this.ftrace = options.ftrace ?? null;
    this.jit = options.jit === true;
    this.verifyProgs = options.verify === true;
    const info = archInfo(this.arch);
    const w = (name: string): number =>
      (info.ptRegs.fields[info.ptRegs.index.get(name) as number]?.offset as number) / 4;
    const lrW = info.ptRoles.lr === null ? -1 : w(info.ptRoles.lr);
    this.layout = {
      ws: info.wordSize,
      spW: w(info.ptRoles.sp),
      fpW: w(info.ptRoles.fp),
      ipW: w(info.ptRoles.ip),
      lrW,
      top: lrW < 0 ? info.wordSize : 16,
      stackArgOffset: info.stackArgOffset,
      riscv: this.arch === 'riscv64',
    };
    const n = kernel.image.count;
    this.plans = new Array<MarshalPlan | TracelabError | undefined>(n);
    this.fnSlots = new Uint8Array(n);
    this.fnRetWide = new Uint8Array(n);
    this.fnStack = new Uint16Array(n);
    this.state = new TracingState(kernel.cpus.length);
    const base = options.bpfStackBase ?? BPF_STACK_BASE[this.arch];
    this.vms = kernel.cpus.map((cpu) => {
      // A second Trampolines on the same kernel finds the next free stack window.
      let vm = Vm.create({ memory: kernel.mm, stackBase: base + BigInt(cpu.id * 0x10000) });
      for (let w = 1; !(vm instanceof Vm) && w < 16; w++) {
        const at = base + BigInt(w * STACK_WINDOW + cpu.id * 0x10000);
        vm = Vm.create({ memory: kernel.mm, stackBase: at });
      }
      if (!(vm instanceof Vm))
        throw new TracelabError('ENOMEM', `bpf stack of cpu ${cpu.id}: ${vm.message}`);
      installTracingHelpers(vm, this.state, cpu.id);
      options.setupVm?.(vm, cpu.id);
      return vm;
    });
  }

  // ---- plans ----

  /** The marshalling plan of function `fn` (image index), or why it cannot be traced. */
  plan(fn: number): MarshalPlan | TracelabError {
    const cached = this.plans[fn];
    if (cached !== undefined) return cached;
    const image = this.kernel.image;
    const f = image.functions[fn];
    let r: MarshalPlan | TracelabError;
    if (f === undefined) r = new TracelabError('ENOENT', `no function #${fn}`);
    else if (!f.traceable) {
      r = new TracelabError('EINVAL', `${f.name} has no patchable entry (notrace)`);
    } else {
      const model = image.model(fn);
      if (model === null) {
        const why = image.btf === null ? null : funcModel(image.btf, f.btfId, f.name);
        const msg = why !== null && !why.ok ? why.error.message : `${f.name}: no function model`;
        r = new TracelabError(
          (why !== null && !why.ok ? why.error.errno : 'EINVAL') as ErrnoCode,
          msg,
        );
      } else r = marshalPlan(this.arch, model);
      if (!(r instanceof TracelabError)) {
        this.fnSlots[fn] = r.ctxSlots;
        this.fnRetWide[fn] = this.layout.ws === 4 && r.retSize > 4 ? 1 : 0;
        this.fnStack[fn] = r.stackBytes;
      }
    }
    this.plans[fn] = r;
    return r;
  }

  /**
   * Function indices for names, globs (kallsyms order) or image indices (the kernel attaches by
   * BTF id; an index is what the image has for it).
   */
  resolve(targets: Targets): number[] | TracelabError {
    const list: readonly (string | number)[] = typeof targets === 'string' ? [targets] : targets;
    const out: number[] = [];
    const seen = new Set<number>();
    const count = this.kernel.image.count;
    for (const t of list) {
      if (typeof t === 'number') {
        if (!Number.isInteger(t) || t < 0 || t >= count) {
          return new TracelabError('ENOENT', `no function #${t}`);
        }
        if (!seen.has(t)) {
          seen.add(t);
          out.push(t);
        }
        continue;
      }
      const ids = /[*?[]/.test(t) ? this.kernel.image.glob(t) : [this.kernel.image.indexOf(t)];
      if (ids.length === 0 || ids[0] === -1) {
        return new TracelabError('ENOENT', `no function matches '${t}'`);
      }
      for (const id of ids) {
        if (!seen.has(id)) {
          seen.add(id);
          out.push(id);
        }
      }
    }
    return out;
  }

  // ---- links ----

  /**
   * bpf_trampoline_link_prog for every target: attaches `prog` as `kind` to one function, a list
   * or a glob. All or nothing: any target that cannot take the link fails the whole attach.
   */
  attach(prog: Program, kind: BpfTrampProgType, targets: Targets): BpfTracingLink | TracelabError {
    const fns = this.resolve(targets);
    if (fns instanceof TracelabError) return fns;
    for (const fn of fns) {
      const p = this.plan(fn);
      if (p instanceof TracelabError) return p;
      if (this.verifyProgs) {
        const v = this.verdict(prog, kind, fn);
        if (v !== null) return v;
      }
      const tr = this.trampolines.get(fn);
      if (tr === undefined) continue;
      const name = this.kernel.image.functions[fn]?.name as string;
      const cnt = tr.links[0].length + tr.links[1].length + tr.links[2].length;
      if (cnt >= BPF_MAX_TRAMP_LINKS) {
        return new TracelabError('E2BIG', `${name}: trampoline has ${cnt} links already`);
      }
      if (tr.links[kind].some((l) => l.prog === prog)) {
        return new TracelabError('EBUSY', `${name}: program ${prog.name} is already linked`);
      }
    }
    const link = new BpfTracingLink(this.nextLinkId++, kind, prog);
    for (const fn of fns) {
      let tr = this.trampolines.get(fn);
      if (tr === undefined) {
        tr = { fn, links: [[], [], []], image: null };
        this.trampolines.set(fn, tr);
      }
      // Newest first, as hlist_add_head leaves it.
      tr.links[kind].unshift(link);
      link.fns.add(fn);
    }
    const err = this.update(fns);
    if (err !== null) {
      this.unlinkFrom(link, fns);
      this.update(fns);
      return err;
    }
    return link;
  }

  /** The verifier's answer for prog as `kind` on function fn, cached per prototype. */
  private verdict(prog: Program, kind: BpfTrampProgType, fn: number): TracelabError | null {
    const image = this.kernel.image;
    const f = image.functions[fn] as { name: string; btfId: number };
    const btf = image.btf;
    if (btf === null) return new TracelabError('EINVAL', `${f.name}: no BTF to verify against`);
    const t = btf.type(f.btfId);
    const key = `${kind}:${t?.kind === 'func' ? t.type : f.btfId}`;
    let byKey = this.verdicts.get(prog);
    if (byKey === undefined) this.verdicts.set(prog, (byKey = new Map()));
    const cached = byKey.get(key);
    if (cached !== undefined) return cached;
    const attachType: AttachType =
      kind === BPF_TRAMP_FENTRY ? 'fentry' : kind === BPF_TRAMP_FEXIT ? 'fexit' : 'fmod_ret';
    const r = verify(prog.insns, {
      progType: 'tracing',
      attachType,
      btf,
      attachTarget: f.name,
      arch: this.arch,
    });
    const v = r.ok
      ? null
      : new TracelabError(
          (r.errnoName ?? 'EINVAL') as ErrnoCode,
          `${attachType}/${f.name}: ${r.error?.message ?? 'rejected'} (insn ${r.error?.insn ?? -1})`,
        );
    byKey.set(key, v);
    return v;
  }

  /** Detaches a link from some of its functions (names or globs) or from all of them. */
  detach(link: BpfTracingLink, targets?: Targets): TracelabError | null {
    let fns: number[];
    if (targets === undefined) fns = [...link.fns];
    else {
      const r = this.resolve(targets);
      if (r instanceof TracelabError) return r;
      fns = r.filter((fn) => link.fns.has(fn));
    }
    if (fns.length === 0)
      return new TracelabError('ENOENT', `link ${link.id} is not attached there`);
    this.unlinkFrom(link, fns);
    return this.update(fns);
  }

  private unlinkFrom(link: BpfTracingLink, fns: readonly number[]): void {
    for (const fn of fns) {
      const tr = this.trampolines.get(fn);
      if (tr === undefined) continue;
      const list = tr.links[link.kind];
      const i = list.indexOf(link);
      if (i >= 0) list.splice(i, 1);
      link.fns.delete(fn);
    }
  }

  /** The links on a function, per kind, newest first. */
  links(name: string): { fentry: number[]; fexit: number[]; fmodRet: number[] } {
    const tr = this.trampolines.get(this.kernel.image.indexOf(name));
    const ids = (k: number): number[] => tr?.links[k]?.map((l) => l.id) ?? [];
    return { fentry: ids(0), fexit: ids(1), fmodRet: ids(2) };
  }

  /** Images installed now (trampolines the attached functions run through). */
  get imageCount(): number {
    const set = new Set<TrampImage>();
    for (const tr of this.trampolines.values()) if (tr.image !== null) set.add(tr.image);
    return set.size;
  }

  /** The image address function `name` calls now, or null. */
  imageOf(name: string): bigint | null {
    return this.trampolines.get(this.kernel.image.indexOf(name))?.image?.addr ?? null;
  }

  // ---- images ----

  /**
   * bpf_trampoline_update for a set of functions: every image serving one of them is replaced;
   * the functions of those images are regrouped by (link set, plan) into new images.
   */
  private update(changed: readonly number[]): TracelabError | null {
    const old = new Set<TrampImage>();
    const fns = new Set<number>(changed);
    for (const fn of changed) {
      const img = this.trampolines.get(fn)?.image;
      if (img !== null && img !== undefined) old.add(img);
    }
    for (const img of old) for (const fn of img.fns) fns.add(fn);
    const bySig = new Map<string, { plan: MarshalPlan; item: number }[]>();
    for (const fn of fns) {
      const tr = this.trampolines.get(fn) as BpfTrampoline;
      tr.image = null;
      if (tr.links[0].length + tr.links[1].length + tr.links[2].length === 0) {
        this.trampolines.delete(fn);
        continue;
      }
      const sig = linkSig(tr);
      let list = bySig.get(sig);
      if (list === undefined) bySig.set(sig, (list = []));
      list.push({ plan: this.plan(fn) as MarshalPlan, item: fn });
    }
    // Functions left with the same links as an image that stays merge into it: rebuild it too.
    for (const [sig, items] of bySig) {
      for (const img of this.bySig.get(sig) ?? []) {
        if (old.has(img)) continue;
        old.add(img);
        for (const fn of img.fns) {
          (this.trampolines.get(fn) as BpfTrampoline).image = null;
          items.push({ plan: this.plan(fn) as MarshalPlan, item: fn });
        }
      }
    }
    const fresh: TrampImage[] = [];
    for (const [sig, items] of bySig) {
      const links = (this.trampolines.get(items[0]?.item as number) as BpfTrampoline).links;
      for (const bucket of groupPlans(items)) {
        const addr = this.allocImage();
        if (addr instanceof TracelabError) return addr;
        fresh.push(
          new TrampImage(
            addr,
            sig,
            bucket.plan,
            bucket.members,
            links,
            (p) => this.activeOf(p),
            (img) => this.emit(img),
          ),
        );
      }
    }
    // An image for exactly the functions of an old one takes its place in one step, as
    // modify_fentry does: the sites switch from the old image to the new without a gap.
    const oldByFns = new Map<string, TrampImage>();
    for (const img of old) oldByFns.set(fnsKey(img.fns), img);
    const rest: TrampImage[] = [];
    let failed: TracelabError | null = null;
    for (const img of fresh) {
      const key = fnsKey(img.fns);
      const prev = oldByFns.get(key);
      if (prev === undefined) {
        rest.push(img);
        continue;
      }
      oldByFns.delete(key);
      if (failed !== null) continue;
      // On failure prev stays in `old` and is uninstalled below.
      failed = this.replace(prev, img);
      if (failed === null) old.delete(prev);
    }
    for (const img of old) this.uninstall(img);
    for (const img of rest) failed ??= this.install(img);
    // Images that made it serve their functions; the rest give their text back.
    for (const img of fresh) {
      if (!img.installed) {
        this.freeAddrs.push(img.addr);
        continue;
      }
      for (const fn of img.fns) (this.trampolines.get(fn) as BpfTrampoline).image = img;
    }
    return failed;
  }

  /** Moves the sites of `prev` to `img` (modify_ftrace_direct, or one text_poke per site). */
  private replace(prev: TrampImage, img: TrampImage): TracelabError | null {
    const err = this.registerHandlers(img);
    if (err !== null) return err;
    if (prev.ops !== null) {
      const ft = this.ftrace as Ftrace;
      const e = ft.modifyFtraceDirect(prev.ops, img.addr, img.enter);
      if (e !== null) {
        this.dropHandlers(img);
        return e;
      }
      img.ops = prev.ops;
      prev.ops = null;
    } else {
      for (const fn of img.fns) {
        const addr = this.kernel.image.functions[fn]?.addr as bigint;
        const call = encodeEntryCall(this.arch, addr, img.addr) as Uint8Array;
        this.kernel.textPoke(addr, call, 'bpf: modify');
      }
    }
    this.retire(prev);
    this.installed(img);
    return null;
  }

  private allocImage(): bigint | TracelabError {
    const reused = this.freeAddrs.pop();
    if (reused !== undefined) return reused;
    const a = this.kernel.allocText('bpf_trampoline', IMAGE_SIZE);
    return a;
  }

  private registerHandlers(img: TrampImage): TracelabError | null {
    const k = this.kernel;
    let err = k.registerHandler(img.addr, 'bpf_trampoline', img.enter);
    if (err === null) {
      err = k.registerHandler(img.addr + BigInt(IMAGE_RET), 'bpf_trampoline', img.leave);
    }
    return err;
  }

  private installed(img: TrampImage): void {
    img.installed = true;
    let set = this.bySig.get(img.sig);
    if (set === undefined) this.bySig.set(img.sig, (set = new Set()));
    set.add(img);
    this.stats.images++;
  }

  private install(img: TrampImage): TracelabError | null {
    const k = this.kernel;
    const err = this.registerHandlers(img);
    if (err !== null) return err;
    const ft = this.ftrace;
    if (ft !== null && ft.info.capabilities.directCalls) {
      // One ops per image: the kernel's tr->fops, with the share commands accepted because the
      // trampoline never moves ip (it is not IPMODIFY).
      const ops = new FtraceOps({
        name: 'bpf_trampoline',
        func: () => undefined,
        opsFunc: () => 0,
      });
      const e1 = ft.setFilterFunctions(ops, img.fns);
      const e2 = e1 ?? ft.registerFtraceDirect(ops, img.addr, img.enter);
      if (e2 !== null) {
        this.dropHandlers(img);
        return e2;
      }
      img.ops = ops;
    } else {
      // bpf_arch_text_poke: only a site that is still the idle NOP may become a call.
      const nop = encodeEntryNop(this.arch);
      for (const fn of img.fns) {
        const cur = k.entryBytes(fn);
        if (cur.some((b, i) => b !== nop[i])) {
          this.pokeBack(img, fn);
          this.dropHandlers(img);
          const name = k.image.functions[fn]?.name as string;
          return new TracelabError('EBUSY', `${name}: call site is not the NOP (ftrace owns it)`);
        }
        const addr = k.image.functions[fn]?.addr as bigint;
        k.textPoke(addr, encodeEntryCall(this.arch, addr, img.addr) as Uint8Array, 'bpf: attach');
      }
    }
    this.installed(img);
    return null;
  }

  /** Restores the NOP at the sites of img up to (not including) `upto`. */
  private pokeBack(img: TrampImage, upto: number): void {
    const nop = encodeEntryNop(this.arch);
    for (const fn of img.fns) {
      if (fn === upto) break;
      const addr = this.kernel.image.functions[fn]?.addr as bigint;
      this.kernel.textPoke(addr, nop, 'bpf: detach');
    }
  }

  private uninstall(img: TrampImage): void {
    if (!img.installed) return;
    if (img.ops !== null) {
      this.ftrace?.unregisterFtraceDirect(img.ops, img.addr);
      img.ops = null;
    } else this.pokeBack(img, -1);
    this.retire(img);
  }

  /** The image no longer runs from any site: drop its entry, keep its return while in flight. */
  private retire(img: TrampImage): void {
    img.installed = false;
    const set = this.bySig.get(img.sig) as Set<TrampImage>;
    set.delete(img);
    if (set.size === 0) this.bySig.delete(img.sig);
    this.stats.images--;
    this.kernel.unregisterHandler(img.addr);
    // The return half stays until the last call in flight has left (the kernel's image ref).
    if (img.inflight === 0) this.freeImage(img);
  }

  private dropHandlers(img: TrampImage): void {
    this.kernel.unregisterHandler(img.addr);
    this.kernel.unregisterHandler(img.addr + BigInt(IMAGE_RET));
  }

  private freeImage(img: TrampImage): void {
    this.kernel.unregisterHandler(img.addr + BigInt(IMAGE_RET));
    this.freeAddrs.push(img.addr);
  }

  /** The code of an image: its plan, this arch's frame and its programs as constants. */
  private emit(img: TrampImage): ImageCode {
    const env = {
      addrLo: this.kernel.image.addrLoI32,
      addrHi: this.kernel.image.addrHi,
      slots: this.fnSlots,
      retWide: this.fnRetWide,
      stackBytes: this.fnStack,
      vms: this.vms,
      state: this.state,
      stats: this.stats,
      jit: this.jit,
    };
    const name = `bpf_trampoline_${img.addr.toString(16)}.js`;
    return emitImageCode(this.layout, img, env, () => this.freeImage(img), name);
  }

  /** A program's per-CPU run counters, shared by every image that runs it. */
  private activeOf(prog: Program): Int32Array {
    let a = this.active.get(prog);
    if (a === undefined) this.active.set(prog, (a = new Int32Array(this.kernel.cpus.length)));
    return a;
  }
}
