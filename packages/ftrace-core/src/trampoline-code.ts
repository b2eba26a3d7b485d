import { wordMovesSource, type FtraceRegs, type WordPair } from '@tracelab/arch-isa';
import { ENTRY_CONTINUE, type Cpu, type TextHandler } from '@tracelab/kernel';
import { FTRACE_OPS_FL_RCU, FTRACE_OPS_FL_RECURSION, type FtraceOps } from './ops.js';
import { TRACE_FTRACE_START, type RecursionGuard } from './recursion.js';

/** One nesting level of a caller on one CPU: what the kernel keeps in the caller's stack frame. */
export interface Frame {
  /** The CPU registers at entry when there is no ftrace_regs to keep them in. */
  readonly save: Uint32Array;
  /** ftrace_caller's sparse ftrace_regs, or null without DYNAMIC_FTRACE_WITH_ARGS. */
  readonly args: FtraceRegs | null;
  /** ftrace_regs_caller's full set, or null without DYNAMIC_FTRACE_WITH_REGS. */
  readonly full: FtraceRegs | null;
  /** cpu.calls at the save: a callback that ran kernel code may have clobbered registers. */
  calls: number;
}

/**
 * Where an ftrace_regs layout keeps the direct-call target (x86 orig_ax, arm64 direct_tramp,
 * riscv t1), as 32-bit word indices; -1 when it has none. The caller zeroes it after saving and
 * jumps to it after the callbacks when one of them set it.
 */
export interface DirectSlot {
  readonly lo: number;
  readonly hi: number;
}

/** What a per-ops trampoline shares with the ftrace that made it. */
export interface TrampolineEnv {
  /** Caller nesting per CPU and the frames per level (see Frame). */
  readonly nest: Int32Array;
  readonly frames: readonly Frame[][];
  /** Adds a frame to a CPU's stack when callbacks nest deeper than preallocated. */
  readonly grow: (cpu: number) => void;
  readonly stats: { trampolineHits: number };
  readonly addrLo: Uint32Array;
  readonly recursion: RecursionGuard;
  /** The epilogue's slow half: restore, then a direct call or a moved ip. */
  readonly finishChanged: (
    cpu: Cpu,
    fn: number,
    frame: Frame,
    fregs: FtraceRegs,
    direct: DirectSlot,
  ) => number;
}

/** The caller's arch facts the trampoline's code is made of. */
export interface TrampolineLayout {
  /** Save moves into ftrace_regs (RegsMoves.saveWords). */
  readonly saveWords: readonly WordPair[];
  readonly direct: DirectSlot;
  /** Whether the ops asked for full pt_regs (ftrace_regs_caller's save). */
  readonly full: boolean;
  /** pt_regs words of sp and the link register (-1 on x86: the return address is at sp). */
  readonly spW: number;
  readonly lrW: number;
}

/**
 * arch_ftrace_update_trampoline(): a dynamic ops' own trampoline, emitted as the kernel copies
 * ftrace_caller (or ftrace_regs_caller) and patches in the call to the ops' function: the save
 * code, the ops and its function are constants of the generated code, not loads and tests per
 * call, and each trampoline is a JavaScript function of its own, so V8's type feedback for one
 * ops' callback does not degrade another's.
 */
export function emitOpsTrampoline(
  env: TrampolineEnv,
  L: TrampolineLayout,
  op: FtraceOps,
): TextHandler {
  const assist = (op.flags & (FTRACE_OPS_FL_RECURSION | FTRACE_OPS_FL_RCU)) !== 0;
  const save = wordMovesSource(L.saveWords, 'f', 'u');
  const parent =
    L.lrW >= 0
      ? `u[${L.lrW}]`
      : `task === null ? 0 : task.stackI32[(u[${L.spW}] - task.stackBaseLo) >> 2]`;
  const call = 'func(ip, parent, op, fregs, cpu, fn);\n';
  // ftrace_ops_assist_func: the recursion guard around the callback.
  const dispatch = assist
    ? `const pid = task === null ? 0 : task.pid;\n` +
      `const bit = recursion.lock(pid, cpu.preemptCount, ${TRACE_FTRACE_START}, ip, parent);\n` +
      `if (bit >= 0) { ${call}recursion.unlock(pid, bit); }\n`
    : call;
  const body = `'use strict';
const { nest, frames, grow, stats, addrLo, recursion, finishChanged } = env;
const func = op.func;
return function ftrace_trampoline(cpu, fn) {
const id = cpu.id;
const level = nest[id];
const stack = frames[id];
if (level >= stack.length) grow(id);
nest[id] = level + 1;
const frame = stack[level];
const fregs = frame.${L.full ? 'full' : 'args'};
const f = fregs.i32;
const u = cpu.regs.i32;
frame.calls = cpu.calls;
${save}${L.direct.lo >= 0 ? `f[${L.direct.lo}] = 0;\n` : ''}${L.direct.hi >= 0 ? `f[${L.direct.hi}] = 0;\n` : ''}fregs.dirty = false;
stats.trampolineHits++;
const ip = addrLo[fn] | 0;
const task = cpu.current;
const parent = ${parent};
${dispatch}nest[id] = nest[id] - 1;
if (!fregs.dirty && cpu.calls === frame.calls) return ${ENTRY_CONTINUE};
return finishChanged(cpu, fn, frame, fregs, direct);
};
//# sourceURL=ftrace_trampoline_${op.name.replace(/[^\w]/g, '_')}.js`;
  const factory = new Function('env', 'op', 'direct', body) as (
    env: TrampolineEnv,
    op: FtraceOps,
    direct: DirectSlot,
  ) => TextHandler;
  return factory(env, op, L.direct);
}
