import { layoutStruct, type StructLayout } from './layout.js';

export type ArchName = 'x86_64' | 'arm64' | 'i386' | 'riscv64';

export const ARCHES: readonly ArchName[] = ['x86_64', 'arm64', 'i386', 'riscv64'];

/** An architectural register: its assembler name and width in bits. */
export interface RegisterInfo {
  readonly name: string;
  readonly bits: 16 | 32 | 64;
}

/** The DYNAMIC_FTRACE_* features the kernel selects for an arch (arch/<arch>/Kconfig). */
export interface FtraceCapabilities {
  /** HAVE_DYNAMIC_FTRACE_WITH_ARGS: ftrace_caller hands callbacks a sparse ftrace_regs. */
  readonly withArgs: boolean;
  /** HAVE_DYNAMIC_FTRACE_WITH_REGS: an ftrace_regs_caller that saves a full pt_regs exists. */
  readonly withRegs: boolean;
  /** HAVE_DYNAMIC_FTRACE_WITH_DIRECT_CALLS. */
  readonly directCalls: boolean;
  /** HAVE_DYNAMIC_FTRACE_WITH_CALL_OPS: a per-callsite ops pointer literal before the function. */
  readonly callOps: boolean;
}

/** Where the roles an accessor needs live in one struct layout (field names of that layout). */
export interface RegRoles {
  readonly ip: string;
  readonly sp: string;
  readonly fp: string;
  /** Link register holding the return address; null on x86 where it is on the stack. */
  readonly lr: string | null;
  readonly args: readonly string[];
  /** Return value registers: low word first, second word for 2-word returns. */
  readonly ret: readonly [string, string];
  /** Where a direct-call target is requested; null when the arch has no direct calls. */
  readonly direct: string | null;
}

export interface ArchInfo {
  readonly name: ArchName;
  /** sizeof(long). */
  readonly wordSize: 4 | 8;
  readonly registers: readonly RegisterInfo[];
  /** struct pt_regs, field order and offsets as arch/<arch>/include/asm/ptrace.h defines them. */
  readonly ptRegs: StructLayout;
  readonly ptRoles: RegRoles;
  /** struct __arch_ftrace_regs (x86 wraps a whole pt_regs; arm64 and riscv have their own). */
  readonly ftraceRegs: StructLayout;
  readonly ftraceRoles: RegRoles;
  /** Fields of ftraceRegs that ftrace_caller really saves; the rest are not held. */
  readonly ftraceCallerHeld: readonly string[];
  /** Fields that ftrace_regs_caller saves (all of pt_regs), or null without WITH_REGS. */
  readonly ftraceRegsCallerHeld: readonly string[] | null;
  /**
   * Fields of ftraceRegs that return_to_handler saves for the graph return callbacks (return
   * value registers and the frame pointer, not the arguments), plus the instruction pointer,
   * which fgraph sets to the real return address before calling them.
   */
  readonly ftraceReturnHeld: readonly string[];
  /** The return address is pushed on the stack by the call (x86) rather than kept in lr. */
  readonly returnAddressOnStack: boolean;
  /** Stack pointer alignment in bytes at a call instruction. */
  readonly stackAlign: number;
  /** Bytes between sp at function entry and the first stack-passed argument. */
  readonly stackArgOffset: number;
  readonly capabilities: FtraceCapabilities;
  /** Start of kernel text (the address of _stext with KASLR off). */
  readonly textBase: bigint;
}

const x86_64PtRegs = layoutStruct(
  'pt_regs',
  [
    'r15',
    'r14',
    'r13',
    'r12',
    'bp',
    'bx',
    'r11',
    'r10',
    'r9',
    'r8',
    'ax',
    'cx',
    'dx',
    'si',
    'di',
    'orig_ax',
    'ip',
    'cs',
    'flags',
    'sp',
    'ss',
  ].map((n) => [n, 8] as const),
  8,
);

const x86_64Roles: RegRoles = {
  ip: 'ip',
  sp: 'sp',
  fp: 'bp',
  lr: null,
  args: ['di', 'si', 'dx', 'cx', 'r8', 'r9'],
  ret: ['ax', 'dx'],
  direct: 'orig_ax',
};

// The 32-bit segment fields are `unsigned short` plus padding in the kernel, 4 bytes each.
const i386PtRegs = layoutStruct(
  'pt_regs',
  [
    'bx',
    'cx',
    'dx',
    'si',
    'di',
    'bp',
    'ax',
    'ds',
    'es',
    'fs',
    'gs',
    'orig_ax',
    'ip',
    'cs',
    'flags',
    'sp',
    'ss',
  ].map((n) => [n, 4] as const),
  4,
);

const i386Roles: RegRoles = {
  ip: 'ip',
  sp: 'sp',
  fp: 'bp',
  lr: null,
  args: ['ax', 'dx', 'cx'],
  ret: ['ax', 'dx'],
  direct: null,
};

const xRegs = Array.from({ length: 31 }, (_, i) => `x${i}`);

// regs[31] are named x0..x30; stackframe is struct frame_record_meta { fp, lr, type }.
const arm64PtRegs = layoutStruct(
  'pt_regs',
  [
    ...xRegs.map((n) => [n, 8] as const),
    ['sp', 8],
    ['pc', 8],
    ['pstate', 8],
    ['orig_x0', 8],
    ['syscallno', 4],
    ['pmr', 4],
    ['sdei_ttbr1', 8],
    ['stackframe.fp', 8],
    ['stackframe.lr', 8],
    ['stackframe.type', 8],
    ['lockdep_hardirqs', 8],
    ['exit_rcu', 8],
  ],
  8,
);

const arm64FtraceRegs = layoutStruct(
  '__arch_ftrace_regs',
  [
    ...xRegs.slice(0, 9).map((n) => [n, 8] as const),
    ['direct_tramp', 8],
    ['fp', 8],
    ['lr', 8],
    ['sp', 8],
    ['pc', 8],
  ],
  8,
);

const arm64ArgRegs = xRegs.slice(0, 8);

const riscvPtRegs = layoutStruct(
  'pt_regs',
  [
    'epc',
    'ra',
    'sp',
    'gp',
    'tp',
    't0',
    't1',
    't2',
    's0',
    's1',
    'a0',
    'a1',
    'a2',
    'a3',
    'a4',
    'a5',
    'a6',
    'a7',
    's2',
    's3',
    's4',
    's5',
    's6',
    's7',
    's8',
    's9',
    's10',
    's11',
    't3',
    't4',
    't5',
    't6',
    'status',
    'badaddr',
    'cause',
    'orig_a0',
  ].map((n) => [n, 8] as const),
  8,
);

const riscvArgRegs = ['a0', 'a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7'];

const riscvFtraceRegs = layoutStruct(
  '__arch_ftrace_regs',
  ['epc', 'ra', 'sp', 's0', 't1', ...riscvArgRegs].map((n) => [n, 8] as const),
  8,
);

const riscvRoles: RegRoles = {
  ip: 'epc',
  sp: 'sp',
  fp: 's0',
  lr: 'ra',
  args: riscvArgRegs,
  ret: ['a0', 'a1'],
  direct: 't1',
};

const regs = (names: readonly string[], bits: 16 | 32 | 64): RegisterInfo[] =>
  names.map((name) => ({ name, bits }));

const x86_64: ArchInfo = {
  name: 'x86_64',
  wordSize: 8,
  registers: [
    ...regs(
      ['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rbp', 'rsp', 'r8', 'r9', 'r10', 'r11', 'r12'],
      64,
    ),
    ...regs(['r13', 'r14', 'r15', 'rip', 'rflags'], 64),
    ...regs(['cs', 'ss'], 16),
  ],
  ptRegs: x86_64PtRegs,
  ptRoles: x86_64Roles,
  ftraceRegs: x86_64PtRegs,
  ftraceRoles: x86_64Roles,
  // save_mcount_regs keeps the argument registers, rax, rbp and rip; ftrace_caller adds rsp and
  // zeroes cs (which is how ftrace_get_regs() tells a partial pt_regs from a full one).
  ftraceCallerHeld: ['ax', 'cx', 'dx', 'si', 'di', 'r8', 'r9', 'bp', 'ip', 'sp', 'cs', 'orig_ax'],
  ftraceRegsCallerHeld: x86_64PtRegs.fields.map((f) => f.name),
  ftraceReturnHeld: ['ax', 'dx', 'bp', 'sp', 'ip'],
  returnAddressOnStack: true,
  stackAlign: 16,
  stackArgOffset: 8,
  capabilities: { withArgs: true, withRegs: true, directCalls: true, callOps: false },
  textBase: 0xffffffff81000000n,
};

const i386: ArchInfo = {
  name: 'i386',
  wordSize: 4,
  registers: [
    ...regs(['eax', 'ebx', 'ecx', 'edx', 'esi', 'edi', 'ebp', 'esp', 'eip', 'eflags'], 32),
    ...regs(['cs', 'ds', 'es', 'fs', 'gs', 'ss'], 16),
  ],
  ptRegs: i386PtRegs,
  ptRoles: i386Roles,
  ftraceRegs: i386PtRegs,
  ftraceRoles: i386Roles,
  // Without WITH_ARGS the 32-bit ftrace_caller passes a NULL regs pointer: nothing is held.
  ftraceCallerHeld: [],
  ftraceRegsCallerHeld: i386PtRegs.fields.map((f) => f.name),
  ftraceReturnHeld: ['ax', 'dx', 'bp', 'ip'],
  returnAddressOnStack: true,
  // The 32-bit kernel builds with -mpreferred-stack-boundary=2.
  stackAlign: 4,
  stackArgOffset: 4,
  capabilities: { withArgs: false, withRegs: true, directCalls: false, callOps: false },
  textBase: 0xc1000000n,
};

const arm64: ArchInfo = {
  name: 'arm64',
  wordSize: 8,
  registers: [...regs(xRegs, 64), ...regs(['sp', 'pc', 'pstate'], 64)],
  ptRegs: arm64PtRegs,
  ptRoles: {
    ip: 'pc',
    sp: 'sp',
    fp: 'x29',
    lr: 'x30',
    args: arm64ArgRegs,
    ret: ['x0', 'x1'],
    direct: null,
  },
  ftraceRegs: arm64FtraceRegs,
  ftraceRoles: {
    ip: 'pc',
    sp: 'sp',
    fp: 'fp',
    lr: 'lr',
    args: arm64ArgRegs,
    ret: ['x0', 'x1'],
    direct: 'direct_tramp',
  },
  ftraceCallerHeld: arm64FtraceRegs.fields.map((f) => f.name),
  ftraceRegsCallerHeld: null,
  // x0-x7 (a return value may be up to eight registers wide) and the caller's fp.
  ftraceReturnHeld: [...xRegs.slice(0, 8), 'fp', 'pc'],
  returnAddressOnStack: false,
  stackAlign: 16,
  stackArgOffset: 0,
  capabilities: { withArgs: true, withRegs: false, directCalls: true, callOps: true },
  textBase: 0xffff800080000000n,
};

const riscv64: ArchInfo = {
  name: 'riscv64',
  wordSize: 8,
  registers: [
    ...regs(['zero', 'ra', 'sp', 'gp', 'tp', 't0', 't1', 't2', 's0', 's1', ...riscvArgRegs], 64),
    ...regs(['s2', 's3', 's4', 's5', 's6', 's7', 's8', 's9', 's10', 's11'], 64),
    ...regs(['t3', 't4', 't5', 't6', 'pc'], 64),
  ],
  ptRegs: riscvPtRegs,
  ptRoles: riscvRoles,
  ftraceRegs: riscvFtraceRegs,
  ftraceRoles: riscvRoles,
  ftraceCallerHeld: riscvFtraceRegs.fields.map((f) => f.name),
  ftraceRegsCallerHeld: null,
  ftraceReturnHeld: ['ra', 's0', 'a0', 'a1', 'epc'],
  returnAddressOnStack: false,
  stackAlign: 16,
  stackArgOffset: 0,
  capabilities: { withArgs: true, withRegs: false, directCalls: true, callOps: false },
  textBase: 0xffffffff80000000n,
};

const BY_NAME: Readonly<Record<ArchName, ArchInfo>> = { x86_64, arm64, i386, riscv64 };

export function archInfo(name: ArchName): ArchInfo {
  return BY_NAME[name];
}

export function isArchName(name: string): name is ArchName {
  return Object.hasOwn(BY_NAME, name);
}
