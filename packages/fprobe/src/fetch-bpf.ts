import { archInfo, placeCall, type ArchName, type CallPlacement } from '@tracelab/arch-isa';
import { TracelabError } from '@tracelab/contracts';
import type { KernelImage } from '@tracelab/kernel';
import {
  BPF_ADD,
  BPF_ALU64,
  BPF_B,
  BPF_CALL,
  BPF_DW,
  BPF_EXIT,
  BPF_H,
  BPF_IMM,
  BPF_JMP,
  BPF_JNE,
  BPF_K,
  BPF_LD,
  BPF_LDX,
  BPF_LSH,
  BPF_MEM,
  BPF_MOV,
  BPF_OR,
  BPF_PSEUDO_MAP_VALUE,
  BPF_RSH,
  BPF_ST,
  BPF_STX,
  BPF_W,
  BPF_X,
  insn,
  type Insn,
} from '@tracelab/vm';
import {
  entryArgKey,
  entryArgs,
  type FetchArg,
  type FetchType,
  type FprobeEvent,
  type ProbeArg,
} from './dynevent.js';

/** MAX_STRING_SIZE (PATH_MAX): the most bytes one string argument keeps. */
export const MAX_STRING_SIZE = 4096;
/** TASK_COMM_LEN. */
const TASK_COMM_LEN = 16;

const FUNC_probe_read_user = 112;
const FUNC_probe_read_kernel = 113;
const FUNC_probe_read_user_str = 114;
const FUNC_probe_read_kernel_str = 115;
const FUNC_get_current_comm = 16;

/** Registers of the generated code: ctx, record, the value being fetched, scratch. */
const R_CTX = 6;
const R_REC = 7;
const R_VAL = 8;
/** The stack word a fetched value is read into. */
const TMP = -8;

/**
 * Where one argument sits in the record the program writes, and how to print it. Basic values
 * take `type.size` bytes per element; strings take an s32 length (the probe_read_*_str result:
 * bytes with the NUL, or a negative errno) in an 8-byte header, then MAX_STRING_SIZE bytes.
 */
export interface ArgSlot {
  readonly arg: ProbeArg;
  readonly offset: number;
  readonly string: boolean;
  /** Elements: the array length, or 1. */
  readonly count: number;
  /** Bytes per element. */
  readonly stride: number;
}

/** One event's fetch args as a kprobe-type program over pt_regs writing a record. */
export interface FetchProgram {
  readonly insns: Insn[];
  readonly slots: readonly ArgSlot[];
  /** Bytes of the record (the start of the per-event map value). */
  readonly recordSize: number;
  /**
   * A %return event's entry-side program: it stores the entry arguments (entryArgs) as 8-byte
   * words at `edataOffset` of the map value, for the exit handler to save in fprobe entry data;
   * null when the event saves none.
   */
  readonly entry: Insn[] | null;
  readonly edataOffset: number;
  /** Entry arguments saved, one 8-byte word each. */
  readonly edataWords: number;
}

export interface FetchCompileOptions {
  readonly arch: ArchName;
  /** Resolves @SYM (kallsyms): the image's symbols. */
  readonly image: KernelImage;
  /** Id of the array map whose value 0 is the record (lddw BPF_PSEUDO_MAP_VALUE). */
  readonly mapFd: number;
}

type PlacedWord = CallPlacement['args'][number]['words'][number];

const isString = (t: FetchType) => t.name === 'string' || t.name === 'ustring';
/** Bytes per element in the record: symstr keeps the address and prints it as %pS text. */
const elemSize = (t: FetchType) => (t.name === 'symstr' ? 8 : t.size);
const isMemory = (f: FetchArg) => f.kind === 'deref' || f.kind === 'mem' || f.kind === 'sym';
const sizeCode = (n: number) => (n === 1 ? BPF_B : n === 2 ? BPF_H : n === 4 ? BPF_W : BPF_DW);

/**
 * Lays out the map value: the record (each argument 8-byte aligned, in definition order), then
 * one 8-byte word per saved entry argument of a %return event.
 */
export function layoutRecord(ev: FprobeEvent): {
  slots: ArgSlot[];
  recordSize: number;
  valueSize: number;
} {
  let off = 0;
  const slots = ev.args.map((arg) => {
    const count = arg.type.array ?? 1;
    const string = isString(arg.type) || arg.fetch.kind === 'comm' || arg.fetch.kind === 'immstr';
    const stride = string ? 8 + MAX_STRING_SIZE : elemSize(arg.type);
    const slot: ArgSlot = { arg, offset: off, string, count, stride };
    off += Math.ceil((stride * count) / 8) * 8;
    return slot;
  });
  const recordSize = Math.max(off, 8);
  return { slots, recordSize, valueSize: recordSize + entryArgs(ev).length * 8 };
}

/**
 * Compiles an event's fetch args (trace_probe.c's fetch_insn programs) to eBPF for a kprobe
 * program: r1 is the pt_regs built from the ftrace_regs, the record is the value of an array map
 * reached by a direct map-value load, and memory is read with bpf_probe_read_kernel/_user(_str),
 * which zero their destination on a fault.
 */
export function compileFetchArgs(
  ev: FprobeEvent,
  opts: FetchCompileOptions,
): FetchProgram | TracelabError {
  const info = archInfo(opts.arch);
  const ws = info.wordSize;
  const wordSize = sizeCode(ws);
  const regOff = (name: string): number => {
    const i = info.ptRegs.index.get(name) as number;
    return (info.ptRegs.fields[i] as { offset: number }).offset;
  };
  const argRegs = info.ptRoles.args.map(regOff);
  const spOff = regOff(info.ptRoles.sp);
  const retOffs = info.ptRoles.ret.map(regOff);
  const fn = opts.image.indexOf(ev.symbol);
  const model = fn < 0 ? null : opts.image.model(fn);
  // Where each BTF argument lives: the same placement the kernel's call uses.
  let placement: CallPlacement | null = null;
  if (model !== null) {
    const p = placeCall(opts.arch, model);
    if (!(p instanceof Error)) placement = p;
  }
  const { slots, recordSize, valueSize } = layoutRecord(ev);
  const saved = entryArgs(ev);
  let out: Insn[] = [];
  const e = (...i: Insn[]) => void out.push(...i);
  const mov = (dst: number, src: number) => e(insn(BPF_ALU64 | BPF_MOV | BPF_X, dst, src));
  const movImm = (dst: number, imm: number) => e(insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm));
  const addImm = (dst: number, imm: number) => {
    if (imm !== 0) e(insn(BPF_ALU64 | BPF_ADD | BPF_K, dst, 0, 0, imm));
  };
  const lddw = (dst: number, v: bigint) => {
    const u = BigInt.asUintN(64, v);
    const lo = Number(u & 0xffffffffn) | 0;
    const hi = Number(u >> 32n) | 0;
    e(insn(BPF_LD | BPF_DW | BPF_IMM, dst, 0, 0, lo, hi), insn(0, 0, 0, 0, hi));
  };
  const call = (id: number) => e(insn(BPF_JMP | BPF_CALL, 0, 0, 0, id));
  /** dst = the pt_regs word at off (4 bytes on i386: pt_regs fields are longs). */
  const reg = (dst: number, off: number) => e(insn(BPF_LDX | BPF_MEM | wordSize, dst, R_CTX, off));
  /** r1 = record + off, the destination of a helper. */
  const recPtr = (off: number) => {
    mov(1, R_REC);
    addImm(1, off);
  };
  /** R_VAL = the long at R_VAL + off through the kernel (or user) probe read; 0 on a fault. */
  const load = (off: number, user: boolean) => {
    addImm(R_VAL, off);
    mov(1, 10);
    addImm(1, TMP);
    movImm(2, ws);
    mov(3, R_VAL);
    call(user ? FUNC_probe_read_user : FUNC_probe_read_kernel);
    e(insn(BPF_LDX | BPF_MEM | wordSize, R_VAL, 10, TMP));
  };
  /** R_VAL = the long at sp + off: regs_get_kernel_stack_nth. */
  const stackWord = (off: number) => {
    reg(R_VAL, spOff);
    load(off, false);
  };
  /** R_VAL = regs_get_kernel_argument(n): registers, then (x86) the words above the return address. */
  const argWord = (n: number) => {
    const r = argRegs[n];
    if (r !== undefined) reg(R_VAL, r);
    else if (info.returnAddressOnStack) stackWord(info.stackArgOffset + (n - argRegs.length) * ws);
    else movImm(R_VAL, 0); // arm64 and riscv have no stack arguments here.
  };
  /** R_VAL = one word of an argument as placeCall placed it. */
  const placedWord = (w: PlacedWord) => {
    if (w.kind === 'reg') reg(R_VAL, regOff(w.reg));
    else stackWord(w.offset);
  };
  /** R_VAL = R_VAL << 32 | r9: a 64-bit value from its high (R_VAL) and low (r9) words (i386). */
  const joinHigh = () => {
    e(insn(BPF_ALU64 | BPF_LSH | BPF_K, R_VAL, 0, 0, 32));
    e(insn(BPF_ALU64 | BPF_OR | BPF_X, R_VAL, 9));
  };
  /** Saved entry arguments by key while compiling the exit side; null on the entry side. */
  let edata: Map<string, number> | null = null;
  const edataOffset = recordSize;
  const symbol = (name: string): bigint | TracelabError => {
    const i = opts.image.indexOf(name);
    const f = opts.image.functions[i];
    return f === undefined
      ? new TracelabError('ENOENT', `fprobe fetch arg: symbol '${name}' not found`)
      : f.addr;
  };
  /** Emits code leaving the argument's value (not a memory store's address) in R_VAL. */
  const value = (f: FetchArg): TracelabError | null => {
    switch (f.kind) {
      case 'arg':
      case 'btfarg': {
        const k = edata?.get(entryArgKey(f));
        if (k !== undefined) {
          // FETCH_OP_EDATA: the value the entry handler saved.
          e(insn(BPF_LDX | BPF_MEM | BPF_DW, R_VAL, R_REC, edataOffset + k * 8));
          return null;
        }
        const place = f.kind === 'btfarg' ? placement?.args[f.index] : undefined;
        if (place === undefined) {
          // No model to place it by: the n-th argument word, as regs_get_kernel_argument.
          argWord(f.kind === 'arg' ? f.n - 1 : f.index);
          return null;
        }
        const [lo, hi] = place.words as [PlacedWord, PlacedWord | undefined];
        placedWord(lo);
        if (hi !== undefined && ws === 4) {
          // A 64-bit value on i386: a register pair or two stack words, never split.
          mov(9, R_VAL);
          placedWord(hi);
          joinHigh();
        }
        return null;
      }
      case 'retval':
        reg(R_VAL, retOffs[0] as number);
        if (ws === 4 && (model?.retSize ?? 0) > 4) {
          // regs_return_value is eax; a 64-bit return is edx:eax.
          mov(9, R_VAL);
          reg(R_VAL, retOffs[1] as number);
          joinHigh();
        }
        return null;
      case 'stack':
        if (f.n === null) reg(R_VAL, spOff);
        else stackWord(f.n * ws);
        return null;
      case 'imm':
        lddw(R_VAL, f.value);
        return null;
      case 'mem':
        lddw(R_VAL, f.addr);
        load(0, false);
        return null;
      case 'sym': {
        const a = symbol(f.name);
        if (a instanceof TracelabError) return a;
        lddw(R_VAL, a + BigInt(f.offset));
        load(0, false);
        return null;
      }
      case 'deref': {
        const err = value(f.inner);
        if (err !== null) return err;
        load(f.offset, f.user);
        return null;
      }
      default:
        return new TracelabError('EINVAL', `fprobe fetch arg: ${f.kind} has no value`);
    }
  };
  /** R_VAL = the address a memory fetch's store reads (its last dereference, not taken). */
  const address = (f: FetchArg): TracelabError | null => {
    switch (f.kind) {
      case 'mem':
        lddw(R_VAL, f.addr);
        return null;
      case 'sym': {
        const a = symbol(f.name);
        if (a instanceof TracelabError) return a;
        lddw(R_VAL, a + BigInt(f.offset));
        return null;
      }
      default: {
        const d = f as Extract<FetchArg, { kind: 'deref' }>;
        const err = value(d.inner);
        if (err !== null) return err;
        addImm(R_VAL, d.offset);
        return null;
      }
    }
  };
  /** FETCH_OP_MOD_BF on the element at record + off. */
  const bitfield = (off: number, t: FetchType) => {
    const bf = t.bitfield;
    if (bf === null) return;
    const sz = sizeCode(t.size);
    e(insn(BPF_LDX | BPF_MEM | sz, 0, R_REC, off));
    e(insn(BPF_ALU64 | BPF_LSH | BPF_K, 0, 0, 0, 64 - (bf.width + bf.offset)));
    e(insn(BPF_ALU64 | BPF_RSH | BPF_K, 0, 0, 0, 64 - bf.width));
    e(insn(BPF_STX | BPF_MEM | sz, R_REC, 0, off));
  };
  /** A string at R_VAL into the slot element at off: length header, then the bytes. */
  const readString = (off: number, user: boolean) => {
    recPtr(off + 8);
    movImm(2, MAX_STRING_SIZE);
    mov(3, R_VAL);
    call(user ? FUNC_probe_read_user_str : FUNC_probe_read_kernel_str);
    e(insn(BPF_STX | BPF_MEM | BPF_W, R_REC, 0, off));
  };

  const prologue = () => {
    e(insn(BPF_ALU64 | BPF_MOV | BPF_X, R_CTX, 1));
    e(
      insn(BPF_LD | BPF_DW | BPF_IMM, R_REC, BPF_PSEUDO_MAP_VALUE, 0, opts.mapFd, 0),
      insn(0, 0, 0, 0, 0),
    );
  };
  const epilogue = () => {
    movImm(0, 0);
    e(insn(BPF_JMP | BPF_EXIT));
  };

  // store_trace_entry_data: each saved argument as one 8-byte word after the record.
  let entry: Insn[] | null = null;
  if (saved.length > 0) {
    prologue();
    for (const [k, f] of saved.entries()) {
      const err = value(f);
      if (err !== null) return err;
      e(insn(BPF_STX | BPF_MEM | BPF_DW, R_REC, R_VAL, edataOffset + k * 8));
    }
    epilogue();
    entry = out;
    out = [];
    edata = new Map(saved.map((f, k) => [entryArgKey(f), k]));
  }

  prologue();
  for (const s of slots) {
    const { arg, offset } = s;
    const f = arg.fetch;
    const t = arg.type;
    const user = (f.kind === 'deref' && f.user) || t.name === 'ustring';
    if (f.kind === 'comm') {
      recPtr(offset + 8);
      movImm(2, TASK_COMM_LEN);
      call(FUNC_get_current_comm);
      // A comm is NUL-terminated within TASK_COMM_LEN: its length header is that size.
      e(insn(BPF_JMP | BPF_JNE | BPF_K, 0, 0, 1, 0));
      movImm(0, TASK_COMM_LEN);
      e(insn(BPF_STX | BPF_MEM | BPF_W, R_REC, 0, offset));
      continue;
    }
    if (f.kind === 'immstr') {
      const bytes = new TextEncoder().encode(f.value);
      const padded = new Uint8Array(Math.ceil((bytes.length + 1) / 4) * 4);
      padded.set(bytes);
      const words = new DataView(padded.buffer);
      for (let k = 0; k < padded.length; k += 4) {
        e(insn(BPF_ST | BPF_MEM | BPF_W, R_REC, 0, offset + 8 + k, words.getInt32(k, true)));
      }
      e(insn(BPF_ST | BPF_MEM | BPF_W, R_REC, 0, offset, bytes.length + 1));
      continue;
    }
    if (s.string) {
      // A string of a non-memory fetch is the string its value points to.
      const err = isMemory(f) ? address(f) : value(f);
      if (err !== null) return err;
      if (s.count === 1) {
        readString(offset, user);
        continue;
      }
      // string[N]: N pointers from the address, each to a string.
      e(insn(BPF_ALU64 | BPF_MOV | BPF_X, 9, R_VAL));
      for (let k = 0; k < s.count; k++) {
        mov(R_VAL, 9);
        load(k * ws, user && t.name !== 'ustring');
        readString(offset + k * s.stride, t.name === 'ustring');
      }
      continue;
    }
    if (isMemory(f)) {
      const err = address(f);
      if (err !== null) return err;
      recPtr(offset);
      movImm(2, s.stride * s.count);
      mov(3, R_VAL);
      call(f.kind === 'deref' && f.user ? FUNC_probe_read_user : FUNC_probe_read_kernel);
      for (let k = 0; k < s.count; k++) bitfield(offset + k * s.stride, t);
      continue;
    }
    if (s.count !== 1) {
      return new TracelabError(
        'EINVAL',
        `fprobe fetch arg ${arg.name}: an array needs a memory fetch (+OFFS(...), @ADDR, @SYM)`,
      );
    }
    const err = value(f);
    if (err !== null) return err;
    e(insn(BPF_STX | BPF_MEM | sizeCode(s.stride), R_REC, R_VAL, offset));
    bitfield(offset, t);
  }
  epilogue();
  return {
    insns: out,
    slots,
    recordSize,
    entry,
    edataOffset,
    edataWords: (valueSize - recordSize) / 8,
  };
}
