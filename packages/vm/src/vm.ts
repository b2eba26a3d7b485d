import { TWO32, bswap16, bswap32, divmod64, mulhu, scmp, toBig, ucmp } from './arith.js';
import { VmError } from './errors.js';
import { AddressSpace, MemFault, PROT_READ, PROT_WRITE, type Region } from './memory.js';
import { type CompiledFn, compile } from './jit.js';
import { BPF_PSEUDO_FUNC_BASE, MAX_BPF_STACK, OPS_FP_BASE, type Program } from './program.js';

/**
 * A helper or kfunc body. Reads its arguments from the vm (r1-r5) and returns r0: a number (a
 * safe integer; negative values sign-extend, so `return -14` is -EFAULT), a bigint, or nothing
 * after setting r0 itself with setR0 (the allocation-free way to return a 64-bit address).
 */
export type HelperFn = (vm: Vm) => number | bigint | void;

export { MAX_BPF_STACK };
/** Frames per program (MAX_CALL_FRAMES). */
export const MAX_CALL_FRAMES = 8;
/** MAX_TAIL_CALL_CNT. */
export const MAX_TAIL_CALL_CNT = 33;
export const BPF_FUNC_tail_call = 12;
/** Where the vm maps its stacks unless told otherwise (a vmalloc-like kernel address). */
export const DEFAULT_STACK_BASE = 0xffffc90000000000n;
/** BPF_MAX_LOOPS: bpf_loop's limit on nr_loops. */
export const BPF_MAX_LOOPS = 1 << 23;
export const BPF_FUNC_loop = 181;

// Module-local constants: V8 folds these into the interpreter's code (imported and exported
// bindings are loaded and checked at every use).
const FRAME = MAX_BPF_STACK;
const FP_BASE = OPS_FP_BASE;
const MEM_SRC_BASE = 0x80;

/**
 * Per opcode, 0 or how a load or store accesses memory: bits 0-3 the size in bytes, bits 4-5
 * PROT_READ, PROT_WRITE or both (an atomic read-modify-write), MEM_SRC_BASE when the address
 * is src + off (LDX) rather than dst + off.
 */
const MEM_OPS = ((): Uint8Array => {
  const t = new Uint8Array(256);
  const ldx = PROT_READ << 4;
  const st = PROT_WRITE << 4;
  const rmw = (PROT_READ | PROT_WRITE) << 4;
  for (const [c, m] of [
    [0x61, 4 | ldx | MEM_SRC_BASE],
    [0x69, 2 | ldx | MEM_SRC_BASE],
    [0x71, 1 | ldx | MEM_SRC_BASE],
    [0x79, 8 | ldx | MEM_SRC_BASE],
    [0x81, 4 | ldx | MEM_SRC_BASE],
    [0x89, 2 | ldx | MEM_SRC_BASE],
    [0x91, 1 | ldx | MEM_SRC_BASE],
    [0x62, 4 | st],
    [0x6a, 2 | st],
    [0x72, 1 | st],
    [0x7a, 8 | st],
    [0x63, 4 | st],
    [0x6b, 2 | st],
    [0x73, 1 | st],
    [0x7b, 8 | st],
    [0xc3, 4 | rmw],
    [0xdb, 8 | rmw],
  ] as const)
    t[c] = m;
  return t;
})();

export interface VmOptions {
  /** The address space programs run in; the vm maps its stack region into it. */
  memory?: AddressSpace;
  stackBase?: bigint;
  /** Executed-instruction budget per run (stops runaway programs with -ELOOP). */
  budget?: number;
  /** Resolves bpf_tail_call's (prog_array address, index) to a program, or undefined. */
  tailCall?: (map: bigint, index: number) => Program | undefined;
}

/**
 * The eBPF interpreter. One Vm runs one program at a time (a CPU's worth of state); run()
 * returns 0 or a negative errno and leaves r0 in lo[0]/hi[0]. Nothing on the path of a
 * successful run allocates.
 */
export class Vm {
  /** Registers r0-r10 as (lo, hi) int32 halves: views of regs (lo at r, hi at r + 16). */
  declare readonly lo: Int32Array;
  declare readonly hi: Int32Array;
  /** One array for both halves: the interpreter checks and indexes one object, not two. */
  private readonly regs = new Int32Array(32);
  // The fields a run reads are declared, not defined: a defined class field starts as
  // undefined, and V8 then checks every load (the map of an object, the tag of a number).
  declare readonly memory: AddressSpace;
  declare readonly stack: Region;
  declare budget: number;
  tailCall: ((map: bigint, index: number) => Program | undefined) | undefined;
  /** Helpers by id, kfuncs by BTF id. */
  readonly helpers: (HelperFn | undefined)[] = [];
  readonly kfuncs = new Map<number, HelperFn>();

  /** Instructions executed by the last run. */
  executed = 0;
  /** Why the last run failed (null after success), and the instruction it failed at. */
  error: VmError | null = null;
  fault: MemFault | null = null;
  errorPc = -1;
  /** The program running now (helpers may look at it). */
  current: Program | null = null;

  /** Set by stop(); read by the interpreter and the JIT after each helper. */
  stopValue: bigint | null = null;
  private readonly tmp = new Int32Array(2);
  private readonly frameRet = new Int32Array(MAX_CALL_FRAMES);
  private readonly frameProg: (Program | null)[] = new Array<Program | null>(MAX_CALL_FRAMES).fill(
    null,
  );
  /** Callee-saved r6-r9 of each frame's caller. */
  private readonly savedLo = new Int32Array(MAX_CALL_FRAMES * 4);
  private readonly savedHi = new Int32Array(MAX_CALL_FRAMES * 4);
  /** The frame pointer of frame 0 (top of the stack region) as int32 halves. */
  declare readonly stackTopLo: number;
  declare readonly stackTopHi: number;
  /** The last program's entryReads (a run starts the same program again and again). */
  private readsOf: Program | null = null;
  private reads = 0;
  /** Tail calls taken in the current run (the JIT's driver keeps it across programs). */
  tailCalls = 0;
  /** The frame that made the current helper call, and whether the run is compiled. */
  frame = 0;
  jitMode = false;

  private constructor(memory: AddressSpace, stack: Region, options: VmOptions) {
    this.lo = this.regs.subarray(0, 11);
    this.hi = this.regs.subarray(16, 27);
    this.memory = memory;
    this.stack = stack;
    this.budget = options.budget ?? 1_000_000;
    this.tailCall = options.tailCall;
    const top = stack.base + BigInt(stack.size);
    this.stackTopLo = Number(top & 0xffffffffn) | 0;
    this.stackTopHi = Number(top >> 32n) | 0;
  }

  static create(options: VmOptions = {}): Vm | VmError {
    const memory = options.memory ?? new AddressSpace();
    const stack = memory.map({
      name: 'bpf_stack',
      base: options.stackBase ?? DEFAULT_STACK_BASE,
      size: MAX_BPF_STACK * MAX_CALL_FRAMES,
      prot: PROT_READ | PROT_WRITE,
    });
    if (stack instanceof VmError) return stack;
    return new Vm(memory, stack, options);
  }

  /** Registers a helper by id. */
  setHelper(id: number, fn: HelperFn): void {
    this.helpers[id] = fn;
  }

  /** Argument n (1-5) as unsigned 64-bit. */
  arg(n: number): bigint {
    return toBig(this.lo[n] as number, this.hi[n] as number);
  }

  /** Argument n as a number: exact for values below 2^53 (lengths, sizes, small ids). */
  argNum(n: number): number {
    return ((this.hi[n] as number) >>> 0) * TWO32 + ((this.lo[n] as number) >>> 0);
  }

  /** Sets r0 from int32 halves; a helper that does this returns nothing. */
  setR0(lo: number, hi: number): void {
    this.lo[0] = lo | 0;
    this.hi[0] = hi | 0;
  }

  get r0(): bigint {
    return toBig(this.lo[0] as number, this.hi[0] as number);
  }

  /** Ends the running program after the current helper returns, with r0 = value. */
  stop(value: bigint): void {
    this.stopValue = BigInt.asUintN(64, value);
  }

  /** Runs prog with r1 = ctx and r2 = arg2 (bigint convenience edge). */
  run(prog: Program, ctx = 0n, arg2 = 0n): number {
    return this.runRaw(prog, ...halves(ctx, arg2));
  }

  /** Records why a run stopped; returns the negative errno. */
  failAt(pc: number, err: VmError, executed: number): number {
    this.error = err;
    this.errorPc = pc;
    this.executed = executed;
    return err.errno;
  }

  /** Records the address space's last fault as the run's error. */
  memFault(pc: number, executed: number): number {
    const f = this.memory.fault as MemFault;
    this.fault = f;
    return this.failAt(pc, new VmError('EFAULT', `insn ${pc}: ${f.message}`), executed);
  }

  /** Called before each instruction by runTraced (with registers in lo/hi). */
  traceHook: ((pc: number) => void) | undefined = undefined;
  private readonly traced = new WeakMap<Program, CompiledFn>();

  /** Runs prog compiled with a call to hook(pc) before every instruction. */
  runTraced(prog: Program, hook: (pc: number) => void, ctx = 0n, arg2 = 0n): number {
    this.traceHook = hook;
    try {
      return this.runCompiled(prog, ...halves(ctx, arg2), true);
    } finally {
      this.traceHook = undefined;
    }
  }

  /**
   * Runs prog compiled to JavaScript (compiled once per program, then cached on it). Same
   * results, errors and budget as run().
   */
  runJit(prog: Program, ctx = 0n, arg2 = 0n): number {
    return this.runCompiled(prog, ...halves(ctx, arg2), false);
  }

  /** runJit with r1 and r2 as int32 halves: the hot path's entry, which builds no bigint. */
  runJitRaw(prog: Program, r1lo: number, r1hi: number, r2lo: number, r2hi: number): number {
    return this.runCompiled(prog, r1lo, r1hi, r2lo, r2hi, false);
  }

  private compiled(p: Program, traced: boolean): CompiledFn {
    if (!traced) return (p.jitted ??= compile(p)) as CompiledFn;
    let fn = this.traced.get(p);
    if (fn === undefined) {
      fn = compile(p, { trace: true });
      this.traced.set(p, fn);
    }
    return fn;
  }

  private runCompiled(
    prog: Program,
    r1lo: number,
    r1hi: number,
    r2lo: number,
    r2hi: number,
    traced: boolean,
  ): number {
    // The trace hook sees every register before each instruction, so it gets a fresh file.
    if (traced) {
      this.lo.fill(0);
      this.hi.fill(0);
    } else this.clearRegs(prog);
    this.lo[1] = r1lo;
    this.hi[1] = r1hi;
    this.lo[2] = r2lo;
    this.hi[2] = r2hi;
    this.error = null;
    this.fault = null;
    this.errorPc = -1;
    this.stopValue = null;
    this.tailCalls = 0;
    this.jitMode = true;
    this.lo[10] = this.stackTopLo;
    this.hi[10] = this.stackTopHi;
    this.current = prog;
    let executed = 0;
    for (;;) {
      const fn = this.compiled(this.current as Program, traced);
      const rc = fn(this, this.budget, executed, 0, 0);
      if (rc !== 1) return rc;
      // A tail call: the target starts with the caller's r1 and a fresh frame.
      executed = this.executed;
      const lo1 = this.lo[1] as number;
      const hi1 = this.hi[1] as number;
      this.lo.fill(0);
      this.hi.fill(0);
      this.lo[1] = lo1;
      this.hi[1] = hi1;
      this.lo[10] = this.stackTopLo;
      this.hi[10] = this.stackTopHi;
    }
  }

  /** Runs prog with r1 and r2 given as int32 halves; returns 0 or a negative errno. */
  runRaw(prog: Program, r1lo: number, r1hi: number, r2lo: number, r2hi: number): number {
    const R = this.regs;
    this.clearRegs(prog);
    // `| 0`: where runRaw is not inlined its parameters are of unknown type, and V8 stores an
    // unknown number into a typed array through a double.
    R[1] = r1lo | 0;
    R[17] = r1hi | 0;
    R[2] = r2lo | 0;
    R[18] = r2hi | 0;
    R[10] = this.stackTopLo;
    R[26] = this.stackTopHi;
    this.error = null;
    this.fault = null;
    this.errorPc = -1;
    this.stopValue = null;
    this.tailCalls = 0;
    this.jitMode = false;
    return this.exec(prog, 0, 0, 0);
  }

  /**
   * Gives prog the register file of a fresh vm without refilling all of it: r0 (visible however
   * the run ends) and the registers entryReads says prog may read before writing. The caller
   * sets r1, r2 and r10; any other register is overwritten before anything can read it.
   */
  private clearRegs(prog: Program): void {
    const R = this.regs;
    if (this.readsOf !== prog) {
      this.reads = entryReads(prog);
      this.readsOf = prog;
    }
    const m = this.reads;
    R[0] = 0;
    R[16] = 0;
    if (m === 0) return;
    for (let r = 3; r < 10; r++) {
      if (((m >> r) & 1) !== 0) {
        R[r] = 0;
        R[r | 16] = 0;
      }
    }
  }

  /**
   * The interpreter loop: runs prog from startPc in frame baseFrame until that frame exits
   * (so bpf_loop can run a callback in a frame of its own), counting from n0 executed insns.
   */
  exec(prog: Program, startPc: number, baseFrame: number, n0: number): number {
    // Register r's low half is R[r], its high half R[r | 16] (lo and hi view the same memory).
    const R = this.regs;
    const mem = this.memory;
    const tmp = this.tmp;
    this.current = prog;
    const stackView = this.stack.view;
    // With alignment faults, frame accesses (OPS_FP_BASE) go through translate, which checks.
    const strict = mem.strictAlignment === true;
    // Where this frame's r10 points, as an offset in the stack region.
    let fpOff = this.stack.size - baseFrame * FRAME;
    let ops = prog.ops;
    // Indices as int32s: a parameter alone would make them tagged values in V8.
    let frame = baseFrame | 0;
    const budget = this.budget;
    // Instructions the budget still allows; executed is budget - left. Counting down from a
    // difference keeps the counter an int32 in V8 (n0 alone would make it a tagged value).
    let left = budget - n0;
    let pc = startPc | 0;
    // The memory operand of a load or store: an offset in view.
    let v = stackView;
    let o = 0;
    // A local: a module-level object is reloaded and rechecked at each use in the loop (8% of
    // an interpreter run measured; module-level numbers and helper functions fold as they are).
    const memOps = MEM_OPS;
    for (;;) {
      // `| 0` keeps pc and left int32s without V8's overflow checks (neither can overflow).
      left = (left - 1) | 0;
      if (left < 0) {
        return this.failAt(
          pc,
          new VmError('ELOOP', `insn ${pc}: instruction budget of ${budget} exhausted`),
          budget - left,
        );
      }
      const w = ops[pc << 1] as number;
      const imm = ops[(pc << 1) | 1] as number;
      const c = w & 0xff;
      const d = (w >> 8) & 0xf;
      const s = (w >> 12) & 0xf;
      const off = w >> 16;
      pc = (pc + 1) | 0;
      const m = memOps[c] as number;
      if (m !== 0) {
        // LDX reads [src+off], ST/STX write [dst+off]: resolve the address before dispatch, so
        // the switch below goes straight to the access.
        const base = (m & MEM_SRC_BASE) !== 0 ? s : d;
        if (base === FP_BASE && !strict) {
          o = fpOff + off;
          v = stackView;
        } else {
          const b = base === FP_BASE ? 10 : base;
          // base + off in int32 halves: the low half wrapped when it moved against off's sign.
          const blo = R[b] as number;
          const alo = (blo + off) | 0;
          let ahi = R[b | 16] as number;
          if (off >= 0) {
            if (alo >>> 0 < blo >>> 0) ahi = (ahi + 1) | 0;
          } else if (alo >>> 0 > blo >>> 0) ahi = (ahi - 1) | 0;
          o = mem.translate(ahi, alo, m & 0xf, (m >> 4) & 3);
          if (o < 0) return this.memFault(pc - 1, budget - left);
          v = (mem.hit as Region).view;
        }
      }
      switch (c) {
        // ---- ALU64, immediate then register operand ----
        // Carries and borrows compare the halves as uint32s: adding them as uint32s could reach
        // 2^32, which V8 holds as a double.
        case 0x07: {
          const a = R[d] as number;
          const x = (a + imm) | 0;
          R[d] = x;
          R[d | 16] = ((R[d | 16] as number) + (imm >> 31) + (x >>> 0 < a >>> 0 ? 1 : 0)) | 0;
          break;
        }
        case 0x0f: {
          const a = R[d] as number;
          const x = (a + (R[s] as number)) | 0;
          R[d] = x;
          R[d | 16] =
            ((R[d | 16] as number) + (R[s | 16] as number) + (x >>> 0 < a >>> 0 ? 1 : 0)) | 0;
          break;
        }
        case 0x17: {
          const a = R[d] as number;
          R[d] = (a - imm) | 0;
          R[d | 16] = ((R[d | 16] as number) - (imm >> 31) - (a >>> 0 < imm >>> 0 ? 1 : 0)) | 0;
          break;
        }
        case 0x1f: {
          const a = R[d] as number;
          const b = R[s] as number;
          R[d] = (a - b) | 0;
          R[d | 16] =
            ((R[d | 16] as number) - (R[s | 16] as number) - (a >>> 0 < b >>> 0 ? 1 : 0)) | 0;
          break;
        }
        case 0x27:
        case 0x2f: {
          const blo = c === 0x27 ? imm : (R[s] as number);
          const bhi = c === 0x27 ? imm >> 31 : (R[s | 16] as number);
          const alo = R[d] as number;
          R[d | 16] =
            (mulhu(alo, blo) + Math.imul(alo, bhi) + Math.imul(R[d | 16] as number, blo)) | 0;
          R[d] = Math.imul(alo, blo);
          break;
        }
        case 0x37:
        case 0x3f:
        case 0x97:
        case 0x9f: {
          const isK = (c & 0x08) === 0;
          divmod64(
            R[d] as number,
            R[d | 16] as number,
            isK ? imm : (R[s] as number),
            isK ? imm >> 31 : (R[s | 16] as number),
            c >= 0x90,
            off === 1,
            tmp,
          );
          R[d] = tmp[0] as number;
          R[d | 16] = tmp[1] as number;
          break;
        }
        case 0x47:
          R[d] = (R[d] as number) | imm;
          R[d | 16] = (R[d | 16] as number) | (imm >> 31);
          break;
        case 0x4f:
          R[d] = (R[d] as number) | (R[s] as number);
          R[d | 16] = (R[d | 16] as number) | (R[s | 16] as number);
          break;
        case 0x57:
          R[d] = (R[d] as number) & imm;
          R[d | 16] = (R[d | 16] as number) & (imm >> 31);
          break;
        case 0x5f:
          R[d] = (R[d] as number) & (R[s] as number);
          R[d | 16] = (R[d | 16] as number) & (R[s | 16] as number);
          break;
        case 0xa7:
          R[d] = (R[d] as number) ^ imm;
          R[d | 16] = (R[d | 16] as number) ^ (imm >> 31);
          break;
        case 0xaf:
          R[d] = (R[d] as number) ^ (R[s] as number);
          R[d | 16] = (R[d | 16] as number) ^ (R[s | 16] as number);
          break;
        case 0x67:
        case 0x6f: {
          const sh = (c === 0x67 ? imm : (R[s] as number)) & 63;
          const lo = R[d] as number;
          if (sh >= 32) {
            R[d | 16] = lo << (sh - 32);
            R[d] = 0;
          } else if (sh !== 0) {
            R[d | 16] = ((R[d | 16] as number) << sh) | (lo >>> (32 - sh));
            R[d] = lo << sh;
          }
          break;
        }
        case 0x77:
        case 0x7f: {
          const sh = (c === 0x77 ? imm : (R[s] as number)) & 63;
          const hi = R[d | 16] as number;
          if (sh >= 32) {
            R[d] = hi >>> (sh - 32);
            R[d | 16] = 0;
          } else if (sh !== 0) {
            R[d] = ((R[d] as number) >>> sh) | (hi << (32 - sh));
            R[d | 16] = hi >>> sh;
          }
          break;
        }
        case 0xc7:
        case 0xcf: {
          const sh = (c === 0xc7 ? imm : (R[s] as number)) & 63;
          const hi = R[d | 16] as number;
          if (sh >= 32) {
            R[d] = hi >> (sh - 32);
            R[d | 16] = hi >> 31;
          } else if (sh !== 0) {
            R[d] = ((R[d] as number) >>> sh) | (hi << (32 - sh));
            R[d | 16] = hi >> sh;
          }
          break;
        }
        case 0x87: {
          const lo = R[d] as number;
          R[d] = -lo | 0;
          R[d | 16] = (~(R[d | 16] as number) + (lo === 0 ? 1 : 0)) | 0;
          break;
        }
        case 0xb7:
          R[d] = imm;
          R[d | 16] = imm >> 31;
          break;
        case 0xbf:
          if (off === 0) {
            R[d] = R[s] as number;
            R[d | 16] = R[s | 16] as number;
          } else {
            const v = R[s] as number;
            const x = off === 8 ? (v << 24) >> 24 : off === 16 ? (v << 16) >> 16 : v;
            R[d] = x;
            R[d | 16] = x >> 31;
          }
          break;
        case 0xd7: {
          // bswap16/32/64 (BPF_ALU64 | BPF_END): unconditional swap
          const lo = R[d] as number;
          if (imm === 16) {
            R[d] = bswap16(lo);
            R[d | 16] = 0;
          } else if (imm === 32) {
            R[d] = bswap32(lo);
            R[d | 16] = 0;
          } else {
            R[d] = bswap32(R[d | 16] as number);
            R[d | 16] = bswap32(lo);
          }
          break;
        }

        // ---- ALU (32-bit; results zero-extend) ----
        case 0x04:
          R[d] = ((R[d] as number) + imm) | 0;
          R[d | 16] = 0;
          break;
        case 0x0c:
          R[d] = ((R[d] as number) + (R[s] as number)) | 0;
          R[d | 16] = 0;
          break;
        case 0x14:
          R[d] = ((R[d] as number) - imm) | 0;
          R[d | 16] = 0;
          break;
        case 0x1c:
          R[d] = ((R[d] as number) - (R[s] as number)) | 0;
          R[d | 16] = 0;
          break;
        case 0x24:
          R[d] = Math.imul(R[d] as number, imm);
          R[d | 16] = 0;
          break;
        case 0x2c:
          R[d] = Math.imul(R[d] as number, R[s] as number);
          R[d | 16] = 0;
          break;
        case 0x34:
        case 0x3c: {
          const b = c === 0x34 ? imm : (R[s] as number);
          const a = R[d] as number;
          if (b === 0) R[d] = 0;
          else if (off === 1) R[d] = Math.trunc(a / b) | 0;
          else R[d] = Math.floor((a >>> 0) / (b >>> 0)) | 0;
          R[d | 16] = 0;
          break;
        }
        case 0x94:
        case 0x9c: {
          const b = c === 0x94 ? imm : (R[s] as number);
          const a = R[d] as number;
          if (b !== 0) R[d] = off === 1 ? (a % b) | 0 : ((a >>> 0) % (b >>> 0)) | 0;
          R[d | 16] = 0;
          break;
        }
        case 0x44:
          R[d] = (R[d] as number) | imm;
          R[d | 16] = 0;
          break;
        case 0x4c:
          R[d] = (R[d] as number) | (R[s] as number);
          R[d | 16] = 0;
          break;
        case 0x54:
          R[d] = (R[d] as number) & imm;
          R[d | 16] = 0;
          break;
        case 0x5c:
          R[d] = (R[d] as number) & (R[s] as number);
          R[d | 16] = 0;
          break;
        case 0xa4:
          R[d] = (R[d] as number) ^ imm;
          R[d | 16] = 0;
          break;
        case 0xac:
          R[d] = (R[d] as number) ^ (R[s] as number);
          R[d | 16] = 0;
          break;
        case 0x64:
          R[d] = (R[d] as number) << (imm & 31);
          R[d | 16] = 0;
          break;
        case 0x6c:
          R[d] = (R[d] as number) << ((R[s] as number) & 31);
          R[d | 16] = 0;
          break;
        case 0x74:
          R[d] = (R[d] as number) >>> (imm & 31);
          R[d | 16] = 0;
          break;
        case 0x7c:
          R[d] = (R[d] as number) >>> ((R[s] as number) & 31);
          R[d | 16] = 0;
          break;
        case 0xc4:
          R[d] = (R[d] as number) >> (imm & 31);
          R[d | 16] = 0;
          break;
        case 0xcc:
          R[d] = (R[d] as number) >> ((R[s] as number) & 31);
          R[d | 16] = 0;
          break;
        case 0x84:
          R[d] = -(R[d] as number) | 0;
          R[d | 16] = 0;
          break;
        case 0xb4:
          R[d] = imm;
          R[d | 16] = 0;
          break;
        case 0xbc: {
          const v = R[s] as number;
          R[d] = off === 8 ? (v << 24) >> 24 : off === 16 ? (v << 16) >> 16 : v;
          R[d | 16] = 0;
          break;
        }
        case 0xd4:
          // le16/32/64: hosts and BPF are little-endian here, so only truncate
          if (imm === 16) R[d] = (R[d] as number) & 0xffff;
          if (imm !== 64) R[d | 16] = 0;
          break;
        case 0xdc: {
          const lo = R[d] as number;
          if (imm === 16) {
            R[d] = bswap16(lo);
            R[d | 16] = 0;
          } else if (imm === 32) {
            R[d] = bswap32(lo);
            R[d | 16] = 0;
          } else {
            R[d] = bswap32(R[d | 16] as number);
            R[d | 16] = bswap32(lo);
          }
          break;
        }

        // ---- lddw: the second slot's imm is the high half ----
        case 0x18:
          R[d] = imm;
          R[d | 16] = ops[(pc << 1) | 1] as number;
          pc = (pc + 1) | 0;
          break;

        // ---- JMP ----
        case 0x05:
          pc = (pc + off) | 0;
          break;
        case 0x06:
          pc = (pc + imm) | 0;
          break;
        case 0x15:
          if (R[d] === imm && R[d | 16] === imm >> 31) pc = (pc + off) | 0;
          break;
        case 0x1d:
          if (R[d] === R[s] && R[d | 16] === R[s | 16]) pc = (pc + off) | 0;
          break;
        case 0x55:
          if (R[d] !== imm || R[d | 16] !== imm >> 31) pc = (pc + off) | 0;
          break;
        case 0x5d:
          if (R[d] !== R[s] || R[d | 16] !== R[s | 16]) pc = (pc + off) | 0;
          break;
        case 0x45:
          if (((R[d] as number) & imm) !== 0 || ((R[d | 16] as number) & (imm >> 31)) !== 0)
            pc = (pc + off) | 0;
          break;
        case 0x4d:
          if (
            ((R[d] as number) & (R[s] as number)) !== 0 ||
            ((R[d | 16] as number) & (R[s | 16] as number)) !== 0
          )
            pc = (pc + off) | 0;
          break;
        case 0x25:
          if (ucmp(R[d] as number, R[d | 16] as number, imm, imm >> 31) > 0) pc = (pc + off) | 0;
          break;
        case 0x2d:
          if (ucmp(R[d] as number, R[d | 16] as number, R[s] as number, R[s | 16] as number) > 0)
            pc = (pc + off) | 0;
          break;
        case 0x35:
          if (ucmp(R[d] as number, R[d | 16] as number, imm, imm >> 31) >= 0) pc = (pc + off) | 0;
          break;
        case 0x3d:
          if (ucmp(R[d] as number, R[d | 16] as number, R[s] as number, R[s | 16] as number) >= 0)
            pc = (pc + off) | 0;
          break;
        case 0xa5:
          if (ucmp(R[d] as number, R[d | 16] as number, imm, imm >> 31) < 0) pc = (pc + off) | 0;
          break;
        case 0xad:
          if (ucmp(R[d] as number, R[d | 16] as number, R[s] as number, R[s | 16] as number) < 0)
            pc = (pc + off) | 0;
          break;
        case 0xb5:
          if (ucmp(R[d] as number, R[d | 16] as number, imm, imm >> 31) <= 0) pc = (pc + off) | 0;
          break;
        case 0xbd:
          if (ucmp(R[d] as number, R[d | 16] as number, R[s] as number, R[s | 16] as number) <= 0)
            pc = (pc + off) | 0;
          break;
        case 0x65:
          if (scmp(R[d] as number, R[d | 16] as number, imm, imm >> 31) > 0) pc = (pc + off) | 0;
          break;
        case 0x6d:
          if (scmp(R[d] as number, R[d | 16] as number, R[s] as number, R[s | 16] as number) > 0)
            pc = (pc + off) | 0;
          break;
        case 0x75:
          if (scmp(R[d] as number, R[d | 16] as number, imm, imm >> 31) >= 0) pc = (pc + off) | 0;
          break;
        case 0x7d:
          if (scmp(R[d] as number, R[d | 16] as number, R[s] as number, R[s | 16] as number) >= 0)
            pc = (pc + off) | 0;
          break;
        case 0xc5:
          if (scmp(R[d] as number, R[d | 16] as number, imm, imm >> 31) < 0) pc = (pc + off) | 0;
          break;
        case 0xcd:
          if (scmp(R[d] as number, R[d | 16] as number, R[s] as number, R[s | 16] as number) < 0)
            pc = (pc + off) | 0;
          break;
        case 0xd5:
          if (scmp(R[d] as number, R[d | 16] as number, imm, imm >> 31) <= 0) pc = (pc + off) | 0;
          break;
        case 0xdd:
          if (scmp(R[d] as number, R[d | 16] as number, R[s] as number, R[s | 16] as number) <= 0)
            pc = (pc + off) | 0;
          break;

        // ---- JMP32: compare the low halves ----
        case 0x16:
          if (R[d] === imm) pc = (pc + off) | 0;
          break;
        case 0x1e:
          if (R[d] === R[s]) pc = (pc + off) | 0;
          break;
        case 0x56:
          if (R[d] !== imm) pc = (pc + off) | 0;
          break;
        case 0x5e:
          if (R[d] !== R[s]) pc = (pc + off) | 0;
          break;
        case 0x46:
          if (((R[d] as number) & imm) !== 0) pc = (pc + off) | 0;
          break;
        case 0x4e:
          if (((R[d] as number) & (R[s] as number)) !== 0) pc = (pc + off) | 0;
          break;
        case 0x26:
          if ((R[d] as number) >>> 0 > imm >>> 0) pc = (pc + off) | 0;
          break;
        case 0x2e:
          if ((R[d] as number) >>> 0 > (R[s] as number) >>> 0) pc = (pc + off) | 0;
          break;
        case 0x36:
          if ((R[d] as number) >>> 0 >= imm >>> 0) pc = (pc + off) | 0;
          break;
        case 0x3e:
          if ((R[d] as number) >>> 0 >= (R[s] as number) >>> 0) pc = (pc + off) | 0;
          break;
        case 0xa6:
          if ((R[d] as number) >>> 0 < imm >>> 0) pc = (pc + off) | 0;
          break;
        case 0xae:
          if ((R[d] as number) >>> 0 < (R[s] as number) >>> 0) pc = (pc + off) | 0;
          break;
        case 0xb6:
          if ((R[d] as number) >>> 0 <= imm >>> 0) pc = (pc + off) | 0;
          break;
        case 0xbe:
          if ((R[d] as number) >>> 0 <= (R[s] as number) >>> 0) pc = (pc + off) | 0;
          break;
        case 0x66:
          if ((R[d] as number) > imm) pc = (pc + off) | 0;
          break;
        case 0x6e:
          if ((R[d] as number) > (R[s] as number)) pc = (pc + off) | 0;
          break;
        case 0x76:
          if ((R[d] as number) >= imm) pc = (pc + off) | 0;
          break;
        case 0x7e:
          if ((R[d] as number) >= (R[s] as number)) pc = (pc + off) | 0;
          break;
        case 0xc6:
          if ((R[d] as number) < imm) pc = (pc + off) | 0;
          break;
        case 0xce:
          if ((R[d] as number) < (R[s] as number)) pc = (pc + off) | 0;
          break;
        case 0xd6:
          if ((R[d] as number) <= imm) pc = (pc + off) | 0;
          break;
        case 0xde:
          if ((R[d] as number) <= (R[s] as number)) pc = (pc + off) | 0;
          break;

        // ---- calls and exit ----
        case 0x85:
        case 0x8d: {
          if (c === 0x85 && s === 1) {
            if (frame + 1 >= MAX_CALL_FRAMES) {
              return this.failAt(
                pc - 1,
                new VmError(
                  'E2BIG',
                  `insn ${pc - 1}: the call stack of ${frame + 2} frames is too deep`,
                ),
                budget - left,
              );
            }
            this.frameRet[frame] = pc;
            this.frameProg[frame] = this.current;
            const b = frame * 4;
            for (let r = 0; r < 4; r++) {
              this.savedLo[b + r] = R[6 + r] as number;
              this.savedHi[b + r] = R[22 + r] as number;
            }
            frame++;
            fpOff -= FRAME;
            const fp = R[10] as number;
            R[10] = (fp - FRAME) | 0;
            R[26] = ((R[26] as number) - (fp >>> 0 < FRAME ? 1 : 0)) | 0;
            pc = (pc + imm) | 0;
            break;
          }
          const id = c === 0x8d ? (R[d] as number) : imm;
          if (c === 0x85 && s === 0 && id === BPF_FUNC_tail_call) {
            // bpf_tail_call(ctx, prog_array, index): on success never returns, on failure falls through.
            const target =
              this.tailCalls < MAX_TAIL_CALL_CNT && this.tailCall !== undefined
                ? this.tailCall(toBig(R[2] as number, R[18] as number), (R[3] as number) >>> 0)
                : undefined;
            if (target === undefined) {
              R[0] = -2;
              R[16] = -1;
              break;
            }
            this.tailCalls++;
            this.current = target;
            ops = target.ops;
            pc = 0;
            break;
          }
          const fn = c === 0x85 && s === 2 ? this.kfuncs.get(id) : this.helpers[id];
          if (fn === undefined) {
            const what = c === 0x85 && s === 2 ? `kfunc btf_id ${id}` : `helper ${id}`;
            return this.failAt(
              pc - 1,
              new VmError('EINVAL', `insn ${pc - 1}: unknown ${what}`),
              budget - left,
            );
          }
          this.executed = budget - left;
          this.frame = frame;
          const ret = fn(this);
          // A helper that ran BPF code (bpf_loop) executed instructions of its own.
          left = budget - this.executed;
          if (typeof ret === 'number') {
            R[0] = ret | 0;
            R[16] = Math.floor(ret / TWO32) | 0;
          } else if (ret !== undefined) {
            const u = BigInt.asUintN(64, ret);
            R[0] = Number(u & 0xffffffffn) | 0;
            R[16] = Number(u >> 32n) | 0;
          }
          if (this.error !== null) {
            return this.failAt(
              this.errorPc >= 0 ? this.errorPc : pc - 1,
              this.error,
              budget - left,
            );
          }
          if (this.stopValue !== null) {
            R[0] = Number(this.stopValue & 0xffffffffn) | 0;
            R[16] = Number(this.stopValue >> 32n) | 0;
            this.executed = budget - left;
            return 0;
          }
          break;
        }
        case 0x95: {
          if (frame === baseFrame) {
            this.executed = budget - left;
            return 0;
          }
          frame--;
          fpOff += FRAME;
          pc = this.frameRet[frame] as number;
          const p = this.frameProg[frame] as Program;
          if (p !== this.current) {
            this.current = p;
            ops = p.ops;
          }
          const b = frame * 4;
          for (let r = 0; r < 4; r++) {
            R[6 + r] = this.savedLo[b + r] as number;
            R[22 + r] = this.savedHi[b + r] as number;
          }
          const fp = R[10] as number;
          const x = (fp + FRAME) | 0;
          R[10] = x;
          R[26] = ((R[26] as number) + (x >>> 0 < fp >>> 0 ? 1 : 0)) | 0;
          break;
        }

        // ---- loads and stores, at v[o] ----
        case 0x79:
          R[d] = v.getInt32(o, true);
          R[d | 16] = v.getInt32(o + 4, true);
          break;
        case 0x7b:
          v.setInt32(o, R[s] as number, true);
          v.setInt32(o + 4, R[s | 16] as number, true);
          break;
        case 0x61:
          R[d] = v.getInt32(o, true);
          R[d | 16] = 0;
          break;
        case 0x63:
          v.setInt32(o, R[s] as number, true);
          break;
        case 0x71:
          R[d] = v.getUint8(o);
          R[d | 16] = 0;
          break;
        case 0x73:
          v.setUint8(o, (R[s] as number) & 0xff);
          break;
        case 0x69:
          R[d] = v.getUint16(o, true);
          R[d | 16] = 0;
          break;
        case 0x6b:
          v.setUint16(o, (R[s] as number) & 0xffff, true);
          break;
        case 0x7a:
          v.setInt32(o, imm, true);
          v.setInt32(o + 4, imm >> 31, true);
          break;
        case 0x62:
          v.setInt32(o, imm, true);
          break;
        case 0x72:
          v.setUint8(o, imm & 0xff);
          break;
        case 0x6a:
          v.setUint16(o, imm & 0xffff, true);
          break;
        case 0x91: {
          const x = v.getInt8(o);
          R[d] = x;
          R[d | 16] = x >> 31;
          break;
        }
        case 0x89: {
          const x = v.getInt16(o, true);
          R[d] = x;
          R[d | 16] = x >> 31;
          break;
        }
        case 0x81: {
          const x = v.getInt32(o, true);
          R[d] = x;
          R[d | 16] = x >> 31;
          break;
        }
        case 0xc3:
          this.atomic32(v, o, imm, s);
          break;
        case 0xdb:
          this.atomic64(v, o, imm, s);
          break;

        default: {
          const len = (this.current as Program).length;
          if (pc - 1 === len) {
            // The sentinel slot: the last instruction fell through.
            return this.failAt(
              len,
              new VmError('EINVAL', `insn ${len}: execution left the program (${len} insns)`),
              budget - left - 1,
            );
          }
          return this.failAt(
            pc - 1,
            new VmError(
              'EOPNOTSUPP',
              `insn ${pc - 1}: opcode 0x${c.toString(16)} is not executable here`,
            ),
            budget - left,
          );
        }
      }
    }
  }

  /** BPF_ATOMIC on a u32 at v[o] with src register s (shared with the JIT). */
  atomic32(v: DataView, o: number, aop: number, s: number): void {
    const L = this.lo;
    const H = this.hi;
    const old = v.getInt32(o, true);
    const x = L[s] as number;
    let val = old;
    switch (aop & ~1) {
      case 0x00:
        val = (old + x) | 0;
        break;
      case 0x40:
        val = old | x;
        break;
      case 0x50:
        val = old & x;
        break;
      case 0xa0:
        val = old ^ x;
        break;
      case 0xe0:
        val = x;
        break;
      default:
        // cmpxchg: r0 gets the old value whether or not the store happens
        if (old === L[0]) v.setInt32(o, x, true);
        L[0] = old;
        H[0] = 0;
        return;
    }
    v.setInt32(o, val, true);
    if ((aop & 1) !== 0) {
      L[s] = old;
      H[s] = 0;
    }
  }

  /** BPF_ATOMIC on a u64 at v[o] with src register s (shared with the JIT). */
  atomic64(v: DataView, o: number, aop: number, s: number): void {
    const L = this.lo;
    const H = this.hi;
    const olo = v.getInt32(o, true);
    const ohi = v.getInt32(o + 4, true);
    const xlo = L[s] as number;
    const xhi = H[s] as number;
    let nlo = olo;
    let nhi = ohi;
    switch (aop & ~1) {
      case 0x00: {
        const t = (olo >>> 0) + (xlo >>> 0);
        nlo = t | 0;
        nhi = (ohi + xhi + (t >= TWO32 ? 1 : 0)) | 0;
        break;
      }
      case 0x40:
        nlo = olo | xlo;
        nhi = ohi | xhi;
        break;
      case 0x50:
        nlo = olo & xlo;
        nhi = ohi & xhi;
        break;
      case 0xa0:
        nlo = olo ^ xlo;
        nhi = ohi ^ xhi;
        break;
      case 0xe0:
        nlo = xlo;
        nhi = xhi;
        break;
      default:
        if (olo === L[0] && ohi === H[0]) {
          v.setInt32(o, xlo, true);
          v.setInt32(o + 4, xhi, true);
        }
        L[0] = olo;
        H[0] = ohi;
        return;
    }
    v.setInt32(o, nlo, true);
    v.setInt32(o + 4, nhi, true);
    if ((aop & 1) !== 0) {
      L[s] = olo;
      H[s] = ohi;
    }
  }

  /**
   * bpf_loop(nr_loops, callback_fn, callback_ctx, flags): calls the subprogram callback_fn
   * (an lddw BPF_PSEUDO_FUNC value) with (index, ctx) in a frame of its own until it returns
   * non-zero or nr_loops calls are done; returns the number of calls.
   */
  bpfLoop(): number {
    const L = this.lo;
    const H = this.hi;
    const nr = this.argNum(1);
    const fnAddr = this.arg(2);
    const ctxLo = L[3] as number;
    const ctxHi = H[3] as number;
    if (this.argNum(4) !== 0) return -22;
    if (nr > BPF_MAX_LOOPS) return -7;
    const prog = this.current as Program;
    const target = Number(fnAddr - BPF_PSEUDO_FUNC_BASE);
    if (fnAddr < BPF_PSEUDO_FUNC_BASE || target >= prog.length) {
      this.abort(
        new VmError(
          'EINVAL',
          `bpf_loop: 0x${fnAddr.toString(16)} is not a function of this program`,
        ),
      );
      return 0;
    }
    const depth = this.frame;
    if (depth + 1 >= MAX_CALL_FRAMES) {
      this.abort(
        new VmError('E2BIG', `bpf_loop: the call stack of ${depth + 2} frames is too deep`),
      );
      return 0;
    }
    // The callback may clobber r6-r9 of its own frame; the caller's must survive, as for a call.
    const s6 = L[6] as number,
      t6 = H[6] as number,
      s7 = L[7] as number,
      t7 = H[7] as number;
    const s8 = L[8] as number,
      t8 = H[8] as number,
      s9 = L[9] as number,
      t9 = H[9] as number;
    const fpLo = L[10] as number;
    const fpHi = H[10] as number;
    let done = 0;
    while (done < nr) {
      L[1] = done;
      H[1] = 0;
      L[2] = ctxLo;
      H[2] = ctxHi;
      const x = (fpLo >>> 0) - MAX_BPF_STACK;
      L[10] = x | 0;
      H[10] = (fpHi - (x < 0 ? 1 : 0)) | 0;
      const rc = this.jitMode
        ? ((prog.jitted ??= compile(prog)) as CompiledFn)(
            this,
            this.budget,
            this.executed,
            target,
            depth + 1,
          )
        : this.exec(prog, target, depth + 1, this.executed);
      this.current = prog;
      done++;
      if (rc !== 0 || this.stopValue !== null) break;
      if (L[0] !== 0 || H[0] !== 0) break;
    }
    L[6] = s6;
    H[6] = t6;
    L[7] = s7;
    H[7] = t7;
    L[8] = s8;
    H[8] = t8;
    L[9] = s9;
    H[9] = t9;
    L[10] = fpLo;
    H[10] = fpHi;
    return done;
  }

  /** Lets a helper fail the run (e.g. a fault it cannot turn into an errno). */
  abort(err: VmError): void {
    this.error = err;
  }
}

/** entryReads by program, computed once. */
const entryReadsCache = new WeakMap<Program, number>();

/** r0, r1, r2 and r10: set by every entry before the first instruction. */
const ENTRY_SET = 0b100_0000_0111;
const ALL_REGS = 0x7ff;

/**
 * A bitmask of the registers (among r3-r9) that some path from insn 0 may read before writing
 * them: only these must start at 0 for a run to behave as on a fresh vm. A forward dataflow of
 * definitely-written registers, over-approximating reads and paths (unknown opcodes read their
 * operands and fall through). A call counts as reading every register: a helper, callee or
 * tail-call target may look at any of them, and after the call nothing unwritten remains.
 */
function entryReads(prog: Program): number {
  const cached = entryReadsCache.get(prog);
  if (cached !== undefined) return cached;
  const n = prog.length;
  const code = prog.code;
  // Registers definitely written (or already counted) on every path to each slot; -1 unreached.
  const inW = new Int16Array(n).fill(-1);
  const work: number[] = [0];
  if (n > 0) inW[0] = ENTRY_SET;
  let reads = 0;
  const flow = (to: number, w: number): void => {
    if (to < 0 || to >= n) return;
    const cur = inW[to] as number;
    const next = cur < 0 ? w : cur & w;
    if (next !== cur) {
      inW[to] = next;
      work.push(to);
    }
  };
  while (work.length > 0) {
    const pc = work.pop() as number;
    let w = inW[pc] as number;
    const c = code[pc] as number;
    const d = 1 << (prog.dst[pc] as number);
    const s = 1 << (prog.src[pc] as number);
    const x = (c & 8) !== 0;
    const cls = c & 7;
    let r = 0;
    let written = 0;
    if (cls === 0) {
      if (c === 0x18) flow(pc + 2, w | d);
      continue;
    }
    if (cls === 5 || cls === 6) {
      if (c === 0x85 || c === 0x8d) {
        reads |= ALL_REGS & ~w;
        continue;
      }
      if (c === 0x95) continue;
      if (c === 0x05) {
        flow(pc + 1 + (prog.off[pc] as number), w);
        continue;
      }
      if (c === 0x06) {
        flow(pc + 1 + (prog.imm[pc] as number), w);
        continue;
      }
      r = d | (x ? s : 0);
      reads |= r & ~w;
      w |= r;
      flow(pc + 1, w);
      flow(pc + 1 + (prog.off[pc] as number), w);
      continue;
    }
    if (cls === 1) {
      r = s;
      written = d;
    } else if (cls === 2) r = d;
    else if (cls === 3) r = d | s;
    else {
      // ALU: mov reads only its source; neg and byte swaps (whose X bit is not a register) dst.
      const o = c & 0xf0;
      r = o === 0xb0 ? (x ? s : 0) : o === 0x80 || o === 0xd0 ? d : d | (x ? s : 0);
      written = d;
    }
    reads |= r & ~w;
    flow(pc + 1, w | r | written);
  }
  const m = reads & ALL_REGS & ~ENTRY_SET;
  entryReadsCache.set(prog, m);
  return m;
}

/** r1 and r2 as the int32 halves the register file holds. */
function halves(r1: bigint, r2: bigint): [number, number, number, number] {
  const a = BigInt.asUintN(64, r1);
  const b = BigInt.asUintN(64, r2);
  return [
    Number(a & 0xffffffffn) | 0,
    Number(a >> 32n) | 0,
    Number(b & 0xffffffffn) | 0,
    Number(b >> 32n) | 0,
  ];
}
