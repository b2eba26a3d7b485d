/** A kernel task: pid, tgid, comm, its kernel stack and per-task storage for tracers. */
export class Task {
  declare readonly pid: number;
  declare readonly tgid: number;
  declare readonly comm: string;
  /** The CPU the task runs on (the simulated scheduler does not migrate tasks). */
  declare readonly cpu: number;
  /** Address of this task's struct task_struct. */
  declare readonly taskStruct: bigint;
  /** taskStruct in int32 halves, for helpers that return it without allocating. */
  declare readonly taskStructLo: number;
  declare readonly taskStructHi: number;
  /** Lowest address of the kernel stack (THREAD_SIZE bytes up from here). */
  declare readonly stackBase: bigint;
  declare readonly stackSize: number;
  /** The stack's bytes as 32-bit words, for the allocation-free call path. */
  declare readonly stackWords: Uint32Array;
  /** The same words as int32s (the call path's view, see PtRegs.i32). */
  declare readonly stackI32: Int32Array;
  /**
   * stackBase in int32 halves: `(sp - stackBaseLo) | 0` is a stack offset whether sp is read as a
   * uint32 or an int32.
   */
  // Declared, not defined: a defined field starts as undefined, and V8 then keeps the number
  // tagged, so the call path converted every store of it into a register through a double.
  declare readonly stackBaseLo: number;
  declare readonly stackBaseHi: number;
  /**
   * Slots tracers reserve with Kernel.allocTaskSlot(): fgraph's shadow stack, a fprobe's data.
   * Indexed by number so the hot path does no hashing.
   */
  readonly slots: unknown[] = [];
  /** Calls made by this task (for summaries). */
  calls = 0;

  constructor(init: {
    pid: number;
    tgid: number;
    comm: string;
    cpu: number;
    taskStruct: bigint;
    stackBase: bigint;
    stack: Uint8Array;
  }) {
    this.pid = init.pid;
    this.tgid = init.tgid;
    this.comm = init.comm;
    this.cpu = init.cpu;
    this.taskStruct = init.taskStruct;
    this.taskStructLo = Number(BigInt.asIntN(32, init.taskStruct)) | 0;
    this.taskStructHi = Number(BigInt.asIntN(32, init.taskStruct >> 32n)) | 0;
    this.stackBase = init.stackBase;
    this.stackSize = init.stack.length;
    this.stackWords = new Uint32Array(
      init.stack.buffer,
      init.stack.byteOffset,
      init.stack.length / 4,
    );
    this.stackI32 = new Int32Array(
      this.stackWords.buffer,
      init.stack.byteOffset,
      init.stack.length / 4,
    );
    this.stackBaseHi = Number(BigInt.asIntN(32, init.stackBase >> 32n)) | 0;
    this.stackBaseLo = Number(BigInt.asIntN(32, init.stackBase)) | 0;
  }
}

/** preempt_count bits (include/linux/preempt.h). */
export const PREEMPT_OFFSET = 1 << 0;
export const SOFTIRQ_OFFSET = 1 << 8;
export const HARDIRQ_OFFSET = 1 << 16;
export const NMI_OFFSET = 1 << 20;
export const SOFTIRQ_MASK = 0xff << 8;
export const HARDIRQ_MASK = 0xf << 16;
export const NMI_MASK = 0xf << 20;

/** The context a CPU runs in, as the recursion guard distinguishes them. */
export type ContextName = 'task' | 'softirq' | 'hardirq' | 'nmi';

export function contextOf(preemptCount: number): ContextName {
  if ((preemptCount & NMI_MASK) !== 0) return 'nmi';
  if ((preemptCount & HARDIRQ_MASK) !== 0) return 'hardirq';
  if ((preemptCount & SOFTIRQ_MASK) !== 0) return 'softirq';
  return 'task';
}
