import { TracelabError } from '@tracelab/contracts';
import {
  archInfo,
  decodeEntry,
  ENTRY_CALL,
  ENTRY_INVALID,
  EntryDecoder,
  entrySiteInfo,
  placeCall,
  PtRegs,
  type ArchInfo,
  type ArchName,
  type CallPlacement,
  type DecodedEntry,
} from '@tracelab/arch-isa';
import {
  AddressSpace,
  isVmError,
  MemFault,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  type Region,
} from '@tracelab/vm';
import { KernelError } from './errors.js';
import type { KernelImage } from './image.js';
import {
  contextOf,
  HARDIRQ_MASK,
  HARDIRQ_OFFSET,
  NMI_MASK,
  NMI_OFFSET,
  SOFTIRQ_MASK,
  SOFTIRQ_OFFSET,
  Task,
  type ContextName,
} from './task.js';

/** What an entry handler tells the CPU: run the function body, or return to the caller now. */
export const ENTRY_CONTINUE = 0;
export const ENTRY_SKIP = 1;

/**
 * Code at a text address, run when a call reaches it: an ftrace caller or trampoline (from a
 * function's patched entry), or a return hook such as return_to_handler (from a `ret`).
 *
 * Entry handlers see the function-entry state: ip is the traced function's address and the return
 * address is where the arch keeps it (x86: the word at sp; arm64: x30; riscv: ra). They return
 * ENTRY_CONTINUE to run the body at ip (a handler may move ip to another function to replace it),
 * or ENTRY_SKIP after making the function return (ip = return address, as
 * override_function_with_return does). Return handlers find ip = their own address and must set
 * ip to the real return address.
 */
export type TextHandler = (cpu: Cpu, fn: number) => number;

/** One call of a workload, compiled: the function, argument values, cost and children. */
export interface CallNode {
  readonly fn: number;
  /** Argument values split in 32-bit halves (the hot path never builds a bigint). */
  readonly argLo: Uint32Array;
  readonly argHi: Uint32Array;
  /** Per argument: a generator run before each call, or null for the fixed value. */
  readonly gen: readonly (ArgGenerator | null)[] | null;
  /** Nanoseconds the body itself takes, excluding children. */
  readonly cost: number;
  readonly retLo: number;
  readonly retHi: number;
  readonly repeat: number;
  readonly children: readonly CallNode[];
}

/** Produces an argument value (32-bit) for call number n of a node. */
export type ArgGenerator = (n: number, rand: () => number) => number;

/** A failed call, as a value: a memory fault or a broken kernel invariant. */
export class KernelFault extends TracelabError {
  override name = 'KernelFault';
  declare readonly code: 'EFAULT' | 'EINVAL' | 'ELOOP';

  constructor(
    code: 'EFAULT' | 'EINVAL' | 'ELOOP',
    message: string,
    readonly cpu: number,
    readonly pid: number,
    readonly memFault: MemFault | null,
  ) {
    super(code, message);
  }

  override toString(): string {
    return `${this.code}: cpu ${this.cpu} pid ${this.pid}: ${this.message}`;
  }
}

/** One entry of the text_poke log. */
export interface TextPokeRecord {
  readonly seq: number;
  readonly addr: bigint;
  readonly old: Uint8Array;
  readonly new: Uint8Array;
  readonly reason: string;
}

/** Hooks for observers (tests, summaries); null when unused so the hot path skips them. */
export interface CallObserver {
  onCall?(cpu: Cpu, fn: number): void;
  onReturn?(cpu: Cpu, fn: number): void;
  onSwitch?(cpu: Cpu, prev: Task | null, next: Task): void;
}

/** One CPU: its registers, simulated clock, preempt count and current task. */
export class Cpu {
  declare readonly id: number;
  declare readonly regs: PtRegs;
  /** Simulated nanoseconds since boot on this CPU. */
  clock = 0;
  preemptCount = 0;
  current: Task | null = null;
  /** Depth of nested calls now running. */
  depth = 0;
  fault: KernelFault | null = null;
  /**
   * True between a call instruction and the callee's prologue (while entry handlers run): the
   * return address is still where the call put it, not yet in a frame record.
   */
  atEntry = false;
  /** The workload call whose entry is running (what callOrig runs). */
  node: CallNode | null = null;
  /** Next deadline of each periodic interrupt source (index into Kernel.irqs). */
  readonly irqNext: number[] = [];
  calls = 0;
  /**
   * bpf_prog_active: kprobe-type BPF programs running on this CPU. One counter for every such
   * program, not one per link: a program whose helper reaches another probed function does not
   * run a second kprobe program inside it.
   */
  bpfProgActive = 0;

  /** Start of this CPU's per-CPU area. */
  declare readonly percpuBase: bigint;

  constructor(id: number, arch: ArchName, percpuBase: bigint) {
    this.id = id;
    this.regs = new PtRegs(arch);
    this.percpuBase = percpuBase;
  }

  get context(): ContextName {
    return contextOf(this.preemptCount);
  }
}

/** A periodic interrupt: calls run in an interrupt context inside whatever the CPU is running. */
export interface IrqSource {
  readonly name: string;
  readonly context: 'hardirq' | 'softirq' | 'nmi';
  readonly periodNs: number;
  readonly calls: readonly CallNode[];
}

export interface KernelOptions {
  readonly image: KernelImage;
  readonly cpus?: number;
}

/** text_poke records the log keeps; older ones are only counted (Kernel.textPokeCount). */
export const TEXT_POKE_LOG_SIZE = 4096;

/** log2 of the text granule of the handler table. */
const HANDLER_GRANULE_SHIFT = 4;

/** Return hooks one return may pass through (return_to_handler, trampolines) before it is a loop. */
const MAX_RETURN_HOOKS = 8;

const THREAD_SIZE: Readonly<Record<ArchName, number>> = {
  x86_64: 16384,
  i386: 8192,
  arm64: 16384,
  riscv64: 16384,
};
/** Where kernel stacks and kernel objects live (vmalloc area and linear map of each arch). */
const STACK_AREA: Readonly<Record<ArchName, bigint>> = {
  x86_64: 0xffffc90000000000n,
  i386: 0xf0000000n,
  arm64: 0xffff800100000000n,
  riscv64: 0xffffffc600000000n,
};
const OBJECT_AREA: Readonly<Record<ArchName, bigint>> = {
  x86_64: 0xffff888000000000n,
  i386: 0xd0000000n,
  arm64: 0xffff000000000000n,
  riscv64: 0xffffffd800000000n,
};
const OBJECT_AREA_SIZE = 0x100000;
/** Open files 0..NR_OPEN_FILES-1 of every task: one struct file per fd, made at boot. */
export const NR_OPEN_FILES = 16;
const FILE_STRIDE = 0x1000;
const FILE_TABLE_SIZE = FILE_STRIDE * (NR_OPEN_FILES + 1);
/** FMODE_READ | FMODE_WRITE. */
const FMODE_RDWR = 3;

/** Address of the struct file behind file descriptor fd (the same for every task). */
export function fileAddress(arch: ArchName, fd: number): bigint {
  return OBJECT_AREA[arch] + BigInt(FILE_STRIDE * (fd + 1));
}
/** Each CPU's per-CPU area (for per-CPU variables and BPF per-CPU maps), above the objects. */
const PERCPU_OFFSET = 0x4000000n;
const PERCPU_STRIDE = 0x10000;
const PERCPU_SIZE = 0x8000;
/** The user-space address a task's outermost kernel call returns to. */
const USER_RETURN_LO = 0x401000;
/** Smallest stack headroom (bytes) a call needs before it is a stack overflow. */
const STACK_GUARD = 256;

// Per-call plan word encoding: dest >= 0 is a pt_regs field, dest < 0 is stack offset -(dest+1).
const PART_WORD = 0;
const PART_HIGH = 1;
const PART_ZERO = 2;

/** How a function's arguments are placed: from the ABI, flattened for the hot path. */
interface CallPlan {
  readonly placement: CallPlacement;
  readonly dest: Int32Array;
  /**
   * dest.length as a plain field: V8 loads a typed array's length as a machine word and checks
   * it back into an int32 at every loop test (a sixth of call()'s time in an fprobe run).
   */
  readonly words: number;
  readonly src: Uint8Array;
  readonly part: Uint8Array;
  readonly stackBytes: number;
  readonly ret0: number;
  readonly ret1: number;
  readonly retWide: boolean;
}

/**
 * The simulated kernel: address space, text, CPUs and tasks, and the call path every traced
 * call goes through.
 */
export class Kernel {
  declare readonly arch: ArchName;
  declare readonly info: ArchInfo;
  declare readonly image: KernelImage;
  declare readonly mm: AddressSpace;
  declare readonly textRegion: Region;
  declare readonly cpus: readonly Cpu[];
  readonly tasks: Task[] = [];
  readonly irqs: IrqSource[] = [];
  observer: CallObserver | null = null;
  /** Lines BPF programs printed with trace_printk (the default sink of kernelEnv). */
  readonly printkLines: string[] = [];
  private readonly handlers = new Map<number, TextHandler>();
  private readonly handlerNames = new Map<number, string>();
  /**
   * The handlers again, found by text offset without a Map lookup (every call's entry and return
   * asks): per 16-byte granule of text, 0 for none, k > 0 for slot k - 1, -1 when
   * several share the granule (then the Map answers).
   */
  declare private readonly handlerAt: Int32Array;
  /** Slots as two arrays (the text offset, -1 when free; the handler), read without a load of an object. */
  private readonly slotOff: number[] = [];
  private readonly slotFn: (TextHandler | null)[] = [];
  /** A ring of the newest pokes: enabling every vmlinux function must not keep 56k records. */
  private readonly pokes: TextPokeRecord[] = [];
  private pokeCount = 0;
  private readonly plans: (CallPlan | undefined)[];
  declare private readonly decoder: EntryDecoder;
  // The number fields the call path reads are declared, not defined (here and in the other
  // layers' hot classes): with ES2022 class fields a defined field starts as undefined, so V8
  // keeps it tagged, checks every read and turns each store into an int32 register through a
  // double. Assigned once in the constructor, they stay small integers.
  /** textBase in int32 halves, compared with the int32 views of registers and stack. */
  declare private readonly textHi: number;
  declare private readonly textLo: number;
  declare private readonly textSize: number;
  declare private readonly ws: number;
  declare private readonly spField: number;
  declare private readonly fpField: number;
  declare private readonly ipField: number;
  declare private readonly lrField: number;
  /** The same registers as indices into PtRegs.u32 (the hot path's view). */
  declare private readonly spW: number;
  declare private readonly fpW: number;
  declare private readonly ipW: number;
  declare private readonly lrW: number;
  /** riscv's frame pointer points 16 bytes above its frame record. */
  declare private readonly fpBias: number;
  declare private readonly ptRegRet: [number, number];
  declare private trampolineNext: number;
  private readonly trampolineSymbols: { offset: number; size: number; name: string }[] = [];
  /** kmalloc starts above the boot-time file table. */
  private objectNext = FILE_TABLE_SIZE;
  declare private readonly objects: Region;
  /** This kernel's text bytes, a copy of the image's: read them here, change them with textPoke. */
  declare readonly text: Uint8Array;
  private slotCount = 0;
  private nextPid = 1;

  constructor(opts: KernelOptions) {
    const image = opts.image;
    this.arch = image.arch;
    this.info = archInfo(image.arch);
    this.image = image;
    this.ws = this.info.wordSize;
    this.mm = new AddressSpace({ strictAlignment: false });
    // Each kernel patches its own copy: kernels built on one image must not see each other's pokes.
    this.text = image.text.slice();
    this.textRegion = this.mapOrThrow(
      'kernel_text',
      image.textBase,
      PROT_READ | PROT_EXEC,
      this.text,
    );
    this.objects = this.mapOrThrow(
      'kmalloc',
      OBJECT_AREA[this.arch],
      PROT_READ | PROT_WRITE,
      new Uint8Array(OBJECT_AREA_SIZE),
    );
    this.bootFiles();
    // `| 0`: Number() of a bigint can come back as a heap number, and V8 would then hold the
    // field as a double and convert it at every use.
    this.textHi = Number(BigInt.asIntN(32, image.textBase >> 32n)) | 0;
    this.textLo = Number(BigInt.asIntN(32, image.textBase)) | 0;
    this.textSize = this.text.length;
    this.handlerAt = new Int32Array((this.textSize >>> HANDLER_GRANULE_SHIFT) + 1);
    this.trampolineNext = image.trampolineOffset;
    this.plans = new Array<CallPlan | undefined>(image.count);
    this.decoder = new EntryDecoder(this.arch);
    const pt = this.info.ptRegs.index;
    const roles = this.info.ptRoles;
    this.spField = pt.get(roles.sp) as number;
    this.fpField = pt.get(roles.fp) as number;
    this.ipField = pt.get(roles.ip) as number;
    this.lrField = roles.lr === null ? -1 : (pt.get(roles.lr) as number);
    const word = (field: number): number => (this.info.ptRegs.fields[field]?.offset as number) / 4;
    this.spW = word(this.spField);
    this.fpW = word(this.fpField);
    this.ipW = word(this.ipField);
    this.lrW = this.lrField < 0 ? -1 : word(this.lrField);
    this.fpBias = this.arch === 'riscv64' ? 16 : 0;
    this.ptRegRet = [word(pt.get(roles.ret[0]) as number), word(pt.get(roles.ret[1]) as number)];
    const n = opts.cpus ?? 1;
    if (!Number.isInteger(n) || n < 1 || n > 64) {
      throw new KernelError('EINVAL', `cpus must be 1..64, got ${n}`);
    }
    this.cpus = Array.from({ length: n }, (_, i) => {
      const cpu = new Cpu(
        i,
        this.arch,
        OBJECT_AREA[this.arch] + PERCPU_OFFSET + BigInt(i * PERCPU_STRIDE),
      );
      this.mapOrThrow(
        `percpu:${i}`,
        cpu.percpuBase,
        PROT_READ | PROT_WRITE,
        new Uint8Array(PERCPU_SIZE),
      );
      return cpu;
    });
  }

  /** Lays out a struct file per fd at its BTF offsets, readable and writable, position 0. */
  private bootFiles(): void {
    const btf = this.image.btf;
    if (btf === null || btf.find('file', 'struct') === undefined) return;
    const mode = btf.offsetOf('file.f_mode').bitsOffset / 8;
    for (let fd = 0; fd < NR_OPEN_FILES; fd++) {
      this.mm.store(fileAddress(this.arch, fd) + BigInt(mode), 4, BigInt(FMODE_RDWR));
    }
  }

  private mapOrThrow(name: string, base: bigint, prot: number, data: Uint8Array): Region {
    const r = this.mm.map({ name, base, prot, data });
    if (isVmError(r)) throw new KernelError('EINVAL', r.message);
    return r;
  }

  // ---- text, handlers, text_poke ----

  private textOffsetOf(addr: bigint): number {
    const off = addr - this.image.textBase;
    return off < 0n || off >= BigInt(this.textSize) ? -1 : Number(off);
  }

  /** Registers code at a text address (ftrace_caller, a trampoline, return_to_handler). */
  registerHandler(addr: bigint, name: string, handler: TextHandler): KernelError | null {
    const off = this.textOffsetOf(addr);
    if (off < 0)
      return new KernelError(
        'EFAULT',
        `register ${name}: 0x${addr.toString(16)} is not kernel text`,
      );
    if (this.handlers.has(off)) {
      return new KernelError(
        'EBUSY',
        `register ${name}: 0x${addr.toString(16)} already runs ${this.handlerNames.get(off) ?? '?'}`,
      );
    }
    this.handlers.set(off, handler);
    this.handlerNames.set(off, name);
    this.indexHandler(off, handler);
    return null;
  }

  unregisterHandler(addr: bigint): KernelError | null {
    const off = this.textOffsetOf(addr);
    if (off < 0 || !this.handlers.delete(off)) {
      return new KernelError('ENOENT', `unregister: no handler at 0x${addr.toString(16)}`);
    }
    this.handlerNames.delete(off);
    // Index the granule again from the Map: it held this handler alone, or several.
    const g = off >>> HANDLER_GRANULE_SHIFT;
    this.dropSlot(g);
    this.handlerAt[g] = 0;
    for (const [o, fn] of this.handlers)
      if (o >>> HANDLER_GRANULE_SHIFT === g) this.indexHandler(o, fn);
    return null;
  }

  private indexHandler(off: number, fn: TextHandler): void {
    const g = off >>> HANDLER_GRANULE_SHIFT;
    if (this.handlerAt[g] !== 0) {
      this.dropSlot(g);
      this.handlerAt[g] = -1;
      return;
    }
    let k = this.slotOff.indexOf(-1);
    if (k < 0) k = this.slotOff.push(-1) - 1;
    this.slotOff[k] = off;
    this.slotFn[k] = fn;
    this.handlerAt[g] = k + 1;
  }

  private dropSlot(granule: number): void {
    const k = this.handlerAt[granule] as number;
    if (k <= 0) return;
    this.slotOff[k - 1] = -1;
    this.slotFn[k - 1] = null;
  }

  /** The handler at a text offset (any number; outside the text there is none). */
  private handlerAtOffset(off: number): TextHandler | undefined {
    if (off < 0 || off >= this.textSize) return undefined;
    const k = this.handlerAt[off >>> HANDLER_GRANULE_SHIFT] as number;
    if (k === 0) return undefined;
    if (k < 0) return this.handlers.get(off);
    return this.slotOff[k - 1] === off ? (this.slotFn[k - 1] as TextHandler) : undefined;
  }

  /** Address of a symbol of the image, for registering handlers at ftrace_caller and friends. */
  symbolAddress(name: string): bigint | KernelError {
    const i = this.image.indexOf(name);
    if (i < 0) return new KernelError('ENOENT', `no symbol '${name}' in the kernel image`);
    return this.image.functions[i]?.addr as bigint;
  }

  /**
   * Reserves executable text for code made at run time (a trampoline), within call reach of
   * every function. Its name shows in stack traces.
   */
  allocText(name: string, size: number): bigint | KernelError {
    if (!Number.isInteger(size) || size <= 0)
      return new KernelError('EINVAL', `allocText ${name}: size ${size}`);
    const off = Math.ceil(this.trampolineNext / 16) * 16;
    if (off + size > this.textSize)
      return new KernelError('ENOSPC', `allocText ${name}: trampoline area is full`);
    this.trampolineNext = off + size;
    this.trampolineSymbols.push({ offset: off, size, name });
    return this.image.textBase + BigInt(off);
  }

  /**
   * text_poke: the only way to change kernel text. Every change is logged with the old and new
   * bytes and the reason; the log keeps the newest TEXT_POKE_LOG_SIZE records.
   */
  textPoke(addr: bigint, bytes: Uint8Array, reason: string): KernelError | null {
    const off = this.textOffsetOf(addr);
    if (off < 0 || off + bytes.length > this.textSize) {
      return new KernelError(
        'EFAULT',
        `text_poke ${reason}: 0x${addr.toString(16)}+${bytes.length} is not kernel text`,
      );
    }
    const text = this.text;
    const old = text.slice(off, off + bytes.length);
    text.set(bytes, off);
    const seq = ++this.pokeCount;
    this.pokes[(seq - 1) % TEXT_POKE_LOG_SIZE] = { seq, addr, old, new: bytes.slice(), reason };
    return null;
  }

  /** The text_poke log, oldest first: the newest TEXT_POKE_LOG_SIZE of textPokeCount pokes. */
  textPokeLog(): readonly TextPokeRecord[] {
    const n = this.pokes.length;
    if (this.pokeCount <= n) return this.pokes.slice();
    const start = this.pokeCount % n;
    return [...this.pokes.slice(start), ...this.pokes.slice(0, start)];
  }

  /** How many times text_poke changed the text since boot. */
  get textPokeCount(): number {
    return this.pokeCount;
  }

  /** The current bytes of function i's patchable entry. */
  entryBytes(fn: number): Uint8Array {
    const off = this.image.textOffset(fn);
    return this.text.slice(off, off + entrySiteInfo(this.arch).size);
  }

  /** Function i's entry site decoded, with a disassembly line. */
  decodeEntry(fn: number): DecodedEntry | KernelError {
    const r = decodeEntry(this.arch, this.entryBytes(fn), this.image.functions[fn]?.addr ?? 0n);
    return r instanceof Error ? new KernelError('EINVAL', r.message) : r;
  }

  // ---- objects, tasks ----

  /** Allocates zeroed kernel memory (a bump allocator over the kmalloc region). */
  kmalloc(size: number): bigint | KernelError {
    const off = Math.ceil(this.objectNext / 16) * 16;
    if (off + size > this.objects.size)
      return new KernelError('ENOSPC', `kmalloc(${size}): object area is full`);
    this.objectNext = off + size;
    return this.objects.base + BigInt(off);
  }

  /** Reserves a per-task slot for a tracer's data; returns its index into Task.slots. */
  allocTaskSlot(): number {
    return this.slotCount++;
  }

  /** Creates a task with its task_struct (laid out at its BTF offsets) and kernel stack. */
  createTask(
    comm: string,
    opts: { pid?: number; tgid?: number; cpu?: number } = {},
  ): Task | KernelError {
    const pid = opts.pid ?? this.nextPid;
    if (this.tasks.some((t) => t.pid === pid))
      return new KernelError('EEXIST', `pid ${pid} exists`);
    if (!Number.isInteger(pid) || pid < 1 || pid > 16383)
      return new KernelError('EINVAL', `pid ${pid} is not in 1..16383`);
    this.nextPid = Math.max(this.nextPid, pid + 1);
    const cpu = opts.cpu ?? (pid - 1) % this.cpus.length;
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= this.cpus.length) {
      return new KernelError(
        'EINVAL',
        `task ${comm}: cpu ${cpu} is not in 0..${this.cpus.length - 1}`,
      );
    }
    const size = THREAD_SIZE[this.arch];
    // Two THREAD_SIZEs per pid: the stack and an unmapped guard below it, as vmap stacks have.
    const stackBase = STACK_AREA[this.arch] + BigInt(pid * size * 2 + size);
    const stack = new Uint8Array(size);
    const mapped = this.mm.map({
      name: `stack:${pid}`,
      base: stackBase,
      prot: PROT_READ | PROT_WRITE,
      data: stack,
    });
    if (isVmError(mapped)) return new KernelError('EEXIST', mapped.message);
    const btf = this.image.btf;
    let taskStruct = 0n;
    if (btf !== null && btf.find('task_struct', 'struct') !== undefined) {
      const ts = this.kmalloc(btf.sizeOf(btf.get('task_struct', 'struct')));
      if (ts instanceof KernelError) return ts;
      taskStruct = ts;
      const put = (path: string, bytes: Uint8Array): void => {
        const loc = btf.offsetOf(`task_struct.${path}`);
        this.mm.write(ts + BigInt(loc.bitsOffset / 8), bytes);
      };
      const le32 = (v: number): Uint8Array => new Uint8Array(Uint32Array.of(v).buffer);
      put('pid', le32(pid));
      put('tgid', le32(opts.tgid ?? pid));
      const c = new TextEncoder().encode(comm.slice(0, 15));
      const commBytes = new Uint8Array(16);
      commBytes.set(c);
      put('comm', commBytes);
    }
    const task = new Task({ pid, tgid: opts.tgid ?? pid, comm, cpu, taskStruct, stackBase, stack });
    this.tasks.push(task);
    return task;
  }

  // ---- the call path ----

  private plan(fn: number): CallPlan {
    const cached = this.plans[fn];
    if (cached !== undefined) return cached;
    const model = this.image.model(fn) ?? {
      retSize: this.ws,
      retFlags: 0,
      nrArgs: 5,
      argSize: [8, 8, 8, 8, 8],
      argFlags: [0, 0, 0, 0, 0],
    };
    const placement = placeCall(this.arch, model);
    if (placement instanceof Error)
      throw new KernelError('EINVAL', `${this.image.functions[fn]?.name}: ${placement.message}`);
    const dest: number[] = [];
    const src: number[] = [];
    const part: number[] = [];
    const pt = this.info.ptRegs.index;
    placement.args.forEach((a, i) => {
      a.words.forEach((w, k) => {
        dest.push(
          w.kind === 'reg'
            ? (this.info.ptRegs.fields[pt.get(w.reg) as number]?.offset as number) / 4
            : -(w.offset - this.info.stackArgOffset) - 1,
        );
        src.push(i);
        // A 64-bit word takes the whole value; on i386 the second word is its high half;
        // words past the 64-bit workload value are zero.
        part.push(k === 0 ? PART_WORD : k === 1 && this.ws === 4 ? PART_HIGH : PART_ZERO);
      });
    });
    const p: CallPlan = {
      placement,
      dest: Int32Array.from(dest),
      words: dest.length,
      src: Uint8Array.from(src),
      part: Uint8Array.from(part),
      stackBytes: placement.stackBytes,
      ret0: this.ptRegRet[0],
      ret1: this.ptRegRet[1],
      retWide: this.ws === 4 && placement.retSize > 4,
    };
    this.plans[fn] = p;
    return p;
  }

  /** The argument placement for function i (where each argument lives at entry). */
  callPlacement(fn: number): CallPlacement {
    return this.plan(fn).placement;
  }

  // A task's stack never crosses a 4 GiB boundary, so the low word of sp gives its offset.
  private setSp(cpu: Cpu, task: Task, off: number): void {
    const u = cpu.regs.i32;
    u[this.spW] = task.stackBaseLo + off;
    if (this.ws === 8) u[this.spW + 1] = task.stackBaseHi;
  }

  /** Stores a word at stack offset `off` of the task. */
  private stackPut(task: Task, off: number, lo: number, hi: number): void {
    const w = task.stackI32;
    w[off >> 2] = lo;
    if (this.ws === 8) w[(off >> 2) + 1] = hi;
  }

  /** Starts `task` on `cpu` with an empty kernel stack (as a syscall or interrupt entry does). */
  switchTo(cpu: Cpu, task: Task): void {
    const prev = cpu.current;
    if (prev === task) return;
    cpu.current = task;
    this.setSp(cpu, task, task.stackSize - 64);
    cpu.regs.setHalves(this.fpField, 0, 0);
    if (this.observer?.onSwitch !== undefined) this.observer.onSwitch(cpu, prev, task);
  }

  /**
   * Runs one call of a workload node on a CPU, from the task's current stack. Returns null, or the
   * fault that stopped it (which is also left in cpu.fault).
   */
  run(cpu: Cpu, node: CallNode): KernelFault | null {
    const task = cpu.current;
    if (task === null) return this.raise(cpu, 'EINVAL', 'no current task', null);
    // The outermost call returns to user space, or into the code an interrupt arrived in.
    const outer = cpu.depth === 0;
    if (outer) cpu.fault = null;
    const u = cpu.regs.i32;
    const retLo = outer ? USER_RETURN_LO : (u[this.ipW] as number);
    const retHi = outer || this.ws === 4 ? 0 : (u[this.ipW + 1] as number);
    // What a fault must put back so the CPU can run the next call.
    const spLo = u[this.spW] as number;
    const fpLo = u[this.fpW] as number;
    const fpHi = this.ws === 8 ? (u[this.fpW + 1] as number) : 0;
    const depth = cpu.depth;
    const preempt = cpu.preemptCount;
    for (let r = 0; r < node.repeat; r++) {
      if (!this.call(cpu, task, node, r, retLo, retHi)) {
        u[this.spW] = spLo;
        u[this.fpW] = fpLo;
        if (this.ws === 8) u[this.fpW + 1] = fpHi;
        cpu.depth = depth;
        cpu.preemptCount = preempt;
        cpu.atEntry = false;
        return cpu.fault;
      }
    }
    return null;
  }

  /** A fault value; it also aborts the calls in flight on this CPU. */
  private raise(
    cpu: Cpu,
    errno: 'EFAULT' | 'EINVAL' | 'ELOOP',
    msg: string,
    mf: MemFault | null,
  ): KernelFault {
    const f = new KernelFault(errno, msg, cpu.id, cpu.current?.pid ?? 0, mf);
    cpu.fault = f;
    return f;
  }

  private fail(
    cpu: Cpu,
    errno: 'EFAULT' | 'EINVAL' | 'ELOOP',
    msg: string,
    mf: MemFault | null,
  ): false {
    this.raise(cpu, errno, msg, mf);
    return false;
  }

  private fnName(fn: number): string {
    return this.image.functions[fn]?.name ?? `#${fn}`;
  }

  /**
   * One call: place arguments, store the return address, run the patched entry, the body and
   * the return. Allocation-free unless it faults. Returns false on a fault. The return address
   * comes as int32 halves: a uint32 above 2^31 passed to a call is boxed as a heap number.
   */
  private call(
    cpu: Cpu,
    task: Task,
    node: CallNode,
    iter: number,
    retLo: number,
    retHi: number,
  ): boolean {
    const u = cpu.regs.i32;
    const fn = node.fn;
    const image = this.image;
    const plan = this.plans[fn] ?? this.plan(fn);
    const wide = this.ws === 8;
    const ipW = this.ipW;
    const lrW = this.lrW;
    // Stack and sp writes are spelled out here and in body(): every inlined call of a helper
    // counts against V8's inlining budget for the traced call, which the handlers need.
    const spW = this.spW;
    const words = task.stackI32;
    const base = task.stackBaseLo;
    const baseHi = task.stackBaseHi;
    // Caller side: stack arguments, then the call instruction stores the return address.
    let sp = ((u[spW] as number) - base - plan.stackBytes) | 0;
    if (sp < STACK_GUARD) {
      return this.fail(
        cpu,
        'EFAULT',
        `kernel stack overflow in ${this.fnName(fn)} at depth ${cpu.depth}`,
        null,
      );
    }
    const gen = node.gen;
    const dest = plan.dest;
    for (let k = 0; k < plan.words; k++) {
      const a = plan.src[k] as number;
      const g = gen === null ? null : (gen[a] ?? null);
      const lo = g === null ? (node.argLo[a] as number) : g(iter, this.rand) >>> 0;
      const hi = g === null ? (node.argHi[a] as number) : 0;
      const p = plan.part[k];
      const wlo = p === PART_WORD ? lo : p === PART_HIGH ? hi : 0;
      const whi = p === PART_WORD ? hi : 0;
      const d = dest[k] as number;
      if (d >= 0) {
        u[d] = wlo;
        if (wide) u[d + 1] = whi;
      } else {
        const at = (sp - d - 1) >> 2;
        words[at] = wlo;
        if (wide) words[at + 1] = whi;
      }
    }
    if (lrW < 0) {
      sp -= this.ws;
      words[sp >> 2] = retLo;
      if (wide) words[(sp >> 2) + 1] = retHi;
    } else {
      u[lrW] = retLo;
      u[lrW + 1] = retHi;
    }
    u[spW] = base + sp;
    if (wide) u[spW + 1] = baseHi;
    const fnLo = image.addrLoI32[fn] as number;
    const fnHi = (image.addrHi[fn] as number) | 0;
    u[ipW] = fnLo;
    if (wide) u[ipW + 1] = fnHi;
    cpu.depth++;
    cpu.calls++;
    task.calls++;
    cpu.atEntry = true;
    cpu.node = node;
    if (this.observer !== null && this.observer.onCall !== undefined) this.observer.onCall(cpu, fn);

    // The patchable entry: decoded from the text bytes on every call.
    let bodyFn = fn;
    let skip = false;
    if (image.traceable[fn] === 1) {
      const kind = this.decoder.decode(this.text, (fnLo - this.textLo) | 0);
      if (kind === ENTRY_CALL) {
        const target = (fnLo - this.textLo + this.decoder.disp) | 0;
        const h = this.handlerAtOffset(target);
        if (h === undefined) {
          const at = (this.image.textBase + BigInt(target)).toString(16);
          return this.fail(
            cpu,
            'EFAULT',
            `${this.fnName(fn)} entry calls 0x${at}, which holds no code`,
            null,
          );
        }
        skip = h(cpu, fn) === ENTRY_SKIP;
        if (cpu.fault !== null) return false;
        if (!skip && (u[ipW] !== fnLo || (wide && u[ipW + 1] !== fnHi))) {
          // The handler moved ip (livepatch-style replacement): run that function's body.
          bodyFn = image.indexAtOffset(((u[ipW] as number) - this.textLo) | 0);
          if (bodyFn < 0 || (wide && u[ipW + 1] !== this.textHi)) {
            return this.fail(
              cpu,
              'EFAULT',
              `${this.fnName(fn)}: handler redirected to non-function text`,
              null,
            );
          }
        }
      } else if (kind === ENTRY_INVALID) {
        return this.fail(
          cpu,
          'EINVAL',
          `${this.fnName(fn)}: entry bytes are not a valid patchable entry`,
          null,
        );
      }
    }
    cpu.atEntry = false;

    let tLo: number;
    let tHi: number;
    if (skip) {
      tLo = u[ipW] as number;
      tHi = wide ? (u[ipW + 1] as number) : 0;
      sp = ((u[spW] as number) - base) | 0;
    } else {
      if (!this.body(cpu, task, node, bodyFn, plan)) return false;
      tLo = this.outLo;
      tHi = this.outHi;
      sp = ((u[spW] as number) - base) | 0;
    }
    // A return into hooked text (return_to_handler) runs the hook, which gives the next address.
    // Hooks chain: an fexit trampoline returns to the parent's return address, which fgraph may
    // have replaced with return_to_handler, so keep running them until real text is reached.
    for (let hops = 0; tHi === this.textHi; hops++) {
      const h = this.handlerAtOffset((tLo - this.textLo) | 0);
      if (h === undefined) break;
      if (hops === MAX_RETURN_HOOKS) {
        return this.fail(
          cpu,
          'ELOOP',
          `${this.fnName(fn)}: more than ${MAX_RETURN_HOOKS} return hooks in a row`,
          null,
        );
      }
      u[spW] = base + sp;
      if (wide) u[spW + 1] = baseHi;
      u[ipW] = tLo;
      if (wide) u[ipW + 1] = tHi;
      h(cpu, fn);
      if (cpu.fault !== null) return false;
      tLo = u[ipW] as number;
      tHi = wide ? (u[ipW + 1] as number) : 0;
      sp = ((u[spW] as number) - base) | 0;
    }
    if (tLo !== retLo || tHi !== retHi) {
      const msg = `${this.fnName(fn)} returned to 0x${hex(tHi, tLo)}, not its caller 0x${hex(retHi, retLo)}`;
      return this.fail(cpu, 'EFAULT', msg, null);
    }
    u[spW] = base + sp + plan.stackBytes;
    if (wide) u[spW + 1] = baseHi;
    u[ipW] = tLo;
    if (wide) u[ipW + 1] = tHi;
    cpu.depth--;
    if (this.observer !== null && this.observer.onReturn !== undefined)
      this.observer.onReturn(cpu, fn);
    return true;
  }

  /** Where the last body() returned to (set instead of returning a pair, to not allocate). */
  private outLo = 0;
  private outHi = 0;

  /**
   * A function body from its prologue to its `ret`: the frame record, its cost, interrupts that
   * are due, its calls, the return value and the epilogue. Leaves sp past the popped return
   * address and the address `ret` jumps to in outLo/outHi.
   */
  private body(cpu: Cpu, task: Task, node: CallNode, bodyFn: number, plan: CallPlan): boolean {
    const u = cpu.regs.i32;
    const image = this.image;
    const wide = this.ws === 8;
    const ipW = this.ipW;
    const fpW = this.fpW;
    const lrW = this.lrW;
    const words = task.stackI32;
    const fnHi = (image.addrHi[bodyFn] as number) | 0;
    let sp: number;
    // Prologue: the frame record that unwinders follow.
    sp = ((u[this.spW] as number) - task.stackBaseLo) | 0;
    if (lrW < 0) {
      sp -= this.ws;
      this.stackPut(task, sp, u[fpW] as number, wide ? (u[fpW + 1] as number) : 0);
      u[fpW] = task.stackBaseLo + sp;
      if (wide) u[fpW + 1] = task.stackBaseHi;
    } else {
      sp -= 16;
      this.stackPut(task, sp + 8, u[lrW] as number, u[lrW + 1] as number);
      this.stackPut(task, sp, u[fpW] as number, u[fpW + 1] as number);
      // arm64's x29 points at the record; riscv's s0 just above it (the caller's sp).
      u[fpW] = task.stackBaseLo + sp + this.fpBias;
      u[fpW + 1] = task.stackBaseHi;
    }
    this.setSp(cpu, task, sp);
    // Body: its own cost, interrupts that are due, then the calls it makes.
    const half = node.cost / 2;
    cpu.clock += half;
    if (this.irqs.length > 0 && !this.irqsDue(cpu, task, bodyFn)) return false;
    const kids = node.children;
    if (kids.length > 0) {
      const bodyLo =
        ((image.addrLoI32[bodyFn] as number) + (image.bodyOffsets[bodyFn] as number)) | 0;
      const span = (image.sizes[bodyFn] as number) - (image.bodyOffsets[bodyFn] as number) - 16;
      for (let c = 0; c < kids.length; c++) {
        const child = kids[c] as CallNode;
        const cLo = (bodyLo + 8 + ((c * 4) % span)) | 0;
        for (let r = 0; r < child.repeat; r++) {
          u[ipW] = cLo;
          if (wide) u[ipW + 1] = fnHi;
          if (!this.call(cpu, task, child, r, cLo, wide ? fnHi : 0)) return false;
        }
      }
    }
    cpu.clock += node.cost - half;
    if (plan.retWide) {
      u[plan.ret0] = node.retLo;
      u[plan.ret1] = node.retHi;
    } else {
      u[plan.ret0] = node.retLo;
      if (wide) u[plan.ret0 + 1] = node.retHi;
    }
    // Epilogue and ret.
    sp = ((u[this.spW] as number) - task.stackBaseLo) | 0;
    if (lrW < 0) {
      u[fpW] = words[sp >> 2] as number;
      if (wide) u[fpW + 1] = words[(sp >> 2) + 1] as number;
      sp += this.ws;
      this.outLo = words[sp >> 2] as number;
      this.outHi = wide ? (words[(sp >> 2) + 1] as number) : 0;
      sp += this.ws;
    } else {
      u[fpW] = words[sp >> 2] as number;
      u[fpW + 1] = words[(sp >> 2) + 1] as number;
      this.outLo = words[(sp + 8) >> 2] as number;
      this.outHi = words[((sp + 8) >> 2) + 1] as number;
      u[lrW] = this.outLo;
      u[lrW + 1] = this.outHi;
      sp += 16;
    }
    this.setSp(cpu, task, sp);
    return true;
  }

  /**
   * For an entry handler that calls the traced function itself (a BPF trampoline's orig_call):
   * runs the function's body as if called from `retAddr` (an address in the handler's text) and
   * comes back with the return value in the return registers. The handler then makes the function
   * return (override_function_with_return) and answers ENTRY_SKIP.
   */
  callOrig(cpu: Cpu, retAddr: bigint): KernelFault | null {
    const task = cpu.current;
    const node = cpu.node;
    if (task === null || node === null || !cpu.atEntry) {
      return this.raise(cpu, 'EINVAL', 'callOrig outside an entry handler', null);
    }
    const u = cpu.regs.i32;
    const wide = this.ws === 8;
    const lo = Number(BigInt.asIntN(32, retAddr));
    const hi = wide ? Number(BigInt.asIntN(32, retAddr >> 32n)) : 0;
    const ipLo = u[this.ipW] as number;
    const ipHi = wide ? (u[this.ipW + 1] as number) : 0;
    const lrLo = this.lrW < 0 ? 0 : (u[this.lrW] as number);
    const lrHi = this.lrW < 0 ? 0 : (u[this.lrW + 1] as number);
    if (this.lrW < 0) {
      const sp = ((u[this.spW] as number) - task.stackBaseLo - this.ws) | 0;
      this.stackPut(task, sp, lo, hi);
      this.setSp(cpu, task, sp);
    } else {
      u[this.lrW] = lo;
      u[this.lrW + 1] = hi;
    }
    cpu.atEntry = false;
    if (!this.body(cpu, task, node, node.fn, this.plans[node.fn] ?? this.plan(node.fn))) {
      return cpu.fault;
    }
    if (this.outLo !== lo || this.outHi !== hi) {
      const msg = `${this.fnName(node.fn)} returned to 0x${hex(this.outHi, this.outLo)}, not 0x${retAddr.toString(16)}`;
      return this.raise(cpu, 'EFAULT', msg, null);
    }
    if (this.lrW >= 0) {
      // The trampoline kept the parent's return address in its own frame.
      u[this.lrW] = lrLo;
      u[this.lrW + 1] = lrHi;
    }
    u[this.ipW] = ipLo;
    if (wide) u[this.ipW + 1] = ipHi;
    cpu.node = node;
    cpu.atEntry = true;
    return null;
  }

  /** Reads a word of kernel memory (a fault is a value). */
  readWord(addr: bigint): bigint | MemFault {
    return this.mm.load(addr, this.ws as 4 | 8);
  }

  /** Runs periodic interrupts whose deadline passed, nested in the current call. */
  private irqsDue(cpu: Cpu, task: Task, fn: number): boolean {
    const mask = cpu.preemptCount;
    for (let i = 0; i < this.irqs.length; i++) {
      const src = this.irqs[i] as IrqSource;
      const offset =
        src.context === 'nmi'
          ? NMI_OFFSET
          : src.context === 'hardirq'
            ? HARDIRQ_OFFSET
            : SOFTIRQ_OFFSET;
      // An NMI nests in anything but an NMI; a hardirq not in a hardirq or NMI; a softirq runs
      // only from task context (on irq exit, or ksoftirqd).
      const blocked =
        src.context === 'nmi'
          ? NMI_MASK
          : src.context === 'hardirq'
            ? HARDIRQ_MASK | NMI_MASK
            : SOFTIRQ_MASK | HARDIRQ_MASK | NMI_MASK;
      if ((mask & blocked) !== 0) continue;
      if ((cpu.irqNext[i] ?? src.periodNs) > cpu.clock) continue;
      cpu.irqNext[i] = (cpu.irqNext[i] ?? src.periodNs) + src.periodNs;
      cpu.preemptCount += offset;
      // The interrupted code's ip is the current body; the interrupt returns there.
      const ipLo = (this.image.addrLo[fn] as number) + (this.image.bodyOffsets[fn] as number);
      const ipHi = this.image.addrHi[fn] as number;
      for (const node of src.calls) {
        for (let r = 0; r < node.repeat; r++) {
          cpu.regs.setHalves(this.ipField, ipLo, ipHi);
          if (!this.call(cpu, task, node, r, ipLo | 0, ipHi | 0)) return false;
        }
      }
      cpu.preemptCount -= offset;
    }
    return true;
  }

  /** Seeded PRNG for generators and the scheduler (mulberry32); reseeded by seed(). */
  rand = mulberry32(1);

  seed(seed: number): void {
    this.rand = mulberry32(seed);
  }

  // ---- unwinder ----

  /**
   * Maps a saved return address that points at a return hook back to the real one
   * (ftrace_graph_ret_addr); `state.index` is the hook's own cursor, zero for each new walk.
   */
  graphRetAddr: ((task: Task, addr: bigint, state: { index: number }) => bigint) | null = null;

  /**
   * The kernel stack of the CPU's current call: the current ip, then each return address found
   * by walking the frame records, innermost first. Return hooks are resolved through
   * graphRetAddr, so the trace is the same traced and untraced.
   */
  stackTrace(cpu: Cpu, max = 64): bigint[] {
    const task = cpu.current;
    const out: bigint[] = [];
    if (task === null) return out;
    out.push(cpu.regs.readIndex(this.ipField));
    const state = { index: 0 };
    const resolve = (ret: bigint): bigint =>
      this.graphRetAddr === null ? ret : this.graphRetAddr(task, ret, state);
    if (cpu.atEntry) {
      // Before the prologue the return address is still at sp (x86) or in the link register.
      const ret = resolve(
        this.lrField < 0
          ? this.loadWord(cpu.regs.readIndex(this.spField))
          : cpu.regs.readIndex(this.lrField),
      );
      if (this.textOffsetOf(ret) < 0) return out;
      out.push(ret);
    }
    let fp = cpu.regs.readIndex(this.fpField);
    const ws = BigInt(this.ws);
    const end = task.stackBase + BigInt(task.stackSize);
    while (fp !== 0n && out.length < max) {
      // riscv's s0 points above its {fp, ra} pair; x86 and arm64 point at {fp, ret}.
      const prevAt = this.arch === 'riscv64' ? fp - 16n : fp;
      const retAt = this.arch === 'riscv64' ? fp - 8n : fp + ws;
      if (prevAt < task.stackBase || retAt + ws > end) break;
      const ret = resolve(this.loadWord(retAt));
      if (this.textOffsetOf(ret) < 0) break;
      out.push(ret);
      fp = this.loadWord(prevAt);
    }
    return out;
  }

  private loadWord(addr: bigint): bigint {
    const v = this.mm.load(addr, this.ws as 4 | 8);
    return v instanceof MemFault ? 0n : v;
  }

  /** An address as `sym+0xoff/0xsize [mod]`, including trampolines made by allocText. */
  symbolize(addr: bigint): string {
    const off = this.textOffsetOf(addr);
    if (off >= this.image.trampolineOffset) {
      const t = this.trampolineSymbols.find((s) => off >= s.offset && off < s.offset + s.size);
      if (t !== undefined)
        return `${t.name}+0x${(off - t.offset).toString(16)}/0x${t.size.toString(16)}`;
    }
    return this.image.symbolize(addr);
  }

  /**
   * Calls the function at an address (as a kernel function pointer call does). An address that
   * is not executable kernel text is a fault value.
   */
  callAddress(cpu: Cpu, addr: bigint, node: Omit<CallNode, 'fn'>): KernelFault | null {
    const a = BigInt.asUintN(64, addr);
    const off = this.mm.translate(Number(a >> 32n), Number(a & 0xffffffffn), 1, PROT_EXEC);
    if (off < 0) {
      const mf = this.mm.fault as MemFault;
      return this.raise(cpu, 'EFAULT', `call to ${mf.message}`, mf);
    }
    const fn = this.mm.hit === this.textRegion ? this.image.indexAtOffset(off) : -1;
    if (fn < 0 || this.image.textOffset(fn) !== off) {
      return this.raise(
        cpu,
        'EFAULT',
        `call to 0x${a.toString(16)}, which is not a function entry`,
        null,
      );
    }
    return this.run(cpu, { ...node, fn });
  }
}

function hex(hi: number, lo: number): string {
  return ((BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0)).toString(16);
}

/** mulberry32: a small seeded PRNG; returns a uint32. */
export function mulberry32(seed: number): () => number {
  // The state is kept as an int32 (the same bits): a uint32 past 2^31 stored in the closure's
  // context is a new heap number on every call.
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}
