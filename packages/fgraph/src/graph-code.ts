import { wordMovesSource, type FtraceRegs, type WordPair } from '@tracelab/arch-isa';
import type { FtraceFunc } from '@tracelab/ftrace-core';
import { ENTRY_CONTINUE, type Task, type TextHandler } from '@tracelab/kernel';
import type { FgraphOps, FgraphStats, FtraceGraphEnt, FtraceGraphRet } from './fgraph.js';
import {
  FGRAPH_FRAME_OFFSET,
  FGRAPH_IDX0_WANTS,
  FGRAPH_TYPE_RESERVED,
  FGRAPH_TYPE_SHIFT,
  makeBitmapMarker,
  markerBitmap,
  RET_STACK_CALLTIME,
  RET_STACK_FUNC,
  RET_STACK_RET,
  RET_STACK_RETP,
  SHADOW_STACK_MAX_OFFSET,
  type ShadowStack,
} from './shadow-stack.js';

/**
 * fgraph's state that changes per call or per registration, shared by the Fgraph methods
 * (reserveData, retrieveData, update) and the generated entry and return code.
 */
export interface GraphHot {
  /** The only user, when there is exactly one: no filter test on entry. */
  single: FgraphOps | null;
  /** The stack an entry or return callback runs on (current->ret_stack). */
  cur: ShadowStack | null;
  /** The user whose entry callback runs now, and whether it already reserved data. */
  inEntry: FgraphOps | null;
  reserved: boolean;
}

/** What the generated code reads: fgraph's tables (stable objects) and its hot state. */
export interface GraphEnv {
  readonly hot: GraphHot;
  readonly stats: FgraphStats;
  /** fgraph_array: null where the kernel has fgraph_stub. */
  readonly users: readonly (FgraphOps | null)[];
  /** Per function: bit i set when user i's hashes trace it. */
  readonly fnUsers: Uint16Array;
  readonly ents: readonly FtraceGraphEnt[];
  readonly rets: readonly FtraceGraphRet[];
  /** Per CPU: the ftrace_regs return_to_handler fills. */
  readonly retRegs: readonly FtraceRegs[];
  readonly addrHi: Uint32Array;
  readonly ensureStack: (task: Task) => ShadowStack;
}

/** The arch facts the code is made of: pt_regs and ftrace_regs int32 word indices. */
export interface GraphLayout {
  readonly wide: boolean;
  /** The task's slot holding its shadow stack. */
  readonly slot: number;
  readonly spW: number;
  readonly ipW: number;
  /** Link register in pt_regs; -1 on x86, where the return address is the word at sp. */
  readonly lrW: number;
  /** Link register in ftrace_regs (-1: none, so nothing can be hooked there). */
  readonly fregsLrW: number;
  /** ip in the return side's ftrace_regs. */
  readonly fregsIpW: number;
  /** The return value's two pt_regs words (the second is the high word on 32-bit arches). */
  readonly retW: readonly [number, number];
  /** return_to_handler's save moves (RegsMoves.saveWords of its ftrace_regs). */
  readonly retSaveWords: readonly WordPair[];
  readonly rthLo: number;
  readonly rthHi: number;
}

export interface GraphCode {
  /** function_graph_enter_regs(), as the shared ftrace_ops' func. */
  readonly enter: FtraceFunc;
  /** return_to_handler. */
  readonly ret: TextHandler;
}

const RESERVED_MARKER = (FGRAPH_TYPE_RESERVED << FGRAPH_TYPE_SHIFT) | FGRAPH_FRAME_OFFSET;

/**
 * Emits fgraph's entry and return code for one arch, as the kernel builds its graph entry and
 * return_to_handler per arch: where the return address lives (the word at sp or the link
 * register), the word size and the register indices are constants of the code, so each
 * function's bytecode stays small enough for V8 to inline it into its caller, and each Fgraph
 * gets its own type feedback.
 */
export function emitGraphCode(env: GraphEnv, L: GraphLayout, name: string): GraphCode {
  const hookLr = L.lrW >= 0;
  const fo2 = 2 * FGRAPH_FRAME_OFFSET;
  const lw = L.fregsLrW;
  // Where the return address is: the link register (kept in fregs, which the caller writes back
  // to the CPU) or the word at sp.
  const retLo = hookLr ? `fregs.i32[${lw}]` : 'words[slotW]';
  const retHi = hookLr ? `fregs.i32[${lw + 1}]` : L.wide ? 'words[slotW + 1]' : '0';
  const hook = hookLr
    ? `fregs.i32[${lw}] = ${L.rthLo};\nfregs.i32[${lw + 1}] = ${L.rthHi};\nfregs.dirty = true;\n`
    : `words[slotW] = ${L.rthLo};\n${L.wide ? `words[slotW + 1] = ${L.rthHi};\n` : ''}`;
  const retSave = wordMovesSource(L.retSaveWords, 'f', 'u');
  const [r0, r1] = L.retW;
  const head = 'const task = cpu.current;\nif (task === null) return;\nstats.entries++;\n';
  // The entry is three functions so that each stays under V8's 460-byte inlining limit and the
  // ftrace trampoline that calls the entry can take all of it in.
  const push = `function pushFrame(task, st, ip, fregs, cpu, fn, slotW) {
const frame = st.curr;
if (frame + ${FGRAPH_FRAME_OFFSET} >= ${SHADOW_STACK_MAX_OFFSET}) { st.overrun++; return -1; }
${hookLr ? '' : 'const words = task.stackI32;\nconst u = cpu.regs.i32;\n'}const depth = ++st.depth;
const s = st.i32;
const w = frame * 2;
s[w + ${2 * RET_STACK_RET}] = ${retLo};
s[w + ${2 * RET_STACK_RET + 1}] = ${retHi};
s[w + ${2 * RET_STACK_FUNC}] = ip;
s[w + ${2 * RET_STACK_FUNC + 1}] = addrHi[fn];
st.f64[frame + ${RET_STACK_CALLTIME}] = cpu.clock;
s[w + ${2 * RET_STACK_RETP}] = ${hookLr ? '0' : `u[${L.spW}]`};
s[w + ${2 * RET_STACK_RETP + 1}] = ${hookLr || !L.wide ? '0' : `u[${L.spW + 1}]`};
s[w + ${fo2}] = ${RESERVED_MARKER};
s[w + ${fo2 + 1}] = 0;
st.curr = frame + ${FGRAPH_FRAME_OFFSET + 1};
st.entering = true;
const ent = ents[cpu.id];
ent.fn = fn;
ent.func = ip;
ent.depth = depth;
return frame;
}
// The users that want the return are marked, and prepare_ftrace_return() makes the function
// return into return_to_handler.
function hookFrame(task, st, frame, bitmap, fregs, slotW) {
${hookLr ? '' : 'const words = task.stackI32;\n'}st.i32[frame * 2 + ${fo2}] = makeBitmapMarker(bitmap | 1) | ((bitmap & 1) !== 0 ? ${FGRAPH_IDX0_WANTS} : 0);
${hook}stats.hooked++;
}
`;
  const enterBody =
    hookLr && lw < 0
      ? // No link register in ftrace_regs: the return address cannot be hooked.
        `${head}return;\n`
      : `${head}${hookLr ? 'if (fregs === null) return;\n' : ''}let st = task.slots[${L.slot}];
if (st === undefined) st = ensureStack(task);
const slotW = ${hookLr ? '0' : `(cpu.regs.i32[${L.spW}] - task.stackBaseLo) >> 2`};
const frame = pushFrame(task, st, ip, fregs, cpu, fn, slotW);
if (frame < 0) return;
const prevCur = hot.cur;
hot.cur = st;
const single = hot.single;
const bitmap = single !== null
  ? (callEntry(single, st, ents[cpu.id], fregs, cpu) ? 1 << single.idx : 0)
  : listEntry(st, ents[cpu.id], fregs, cpu, fn);
hot.cur = prevCur;
st.entering = false;
if (bitmap === 0) {
  // Nobody wants the return: pop, and leave the return address alone.
  st.curr = frame;
  st.depth--;
  return;
}
hookFrame(task, st, frame, bitmap, fregs, slotW);
`;
  const body = `'use strict';
const { hot, stats, users, fnUsers, ents, rets, retRegs, addrHi, ensureStack } = env;
// One user's entry callback; its reserved data is dropped unless it returns non-zero.
function callEntry(g, st, ent, fregs, cpu) {
const save = st.curr;
hot.inEntry = g;
hot.reserved = false;
const r = g.entryfunc(ent, g, fregs, cpu);
hot.inEntry = null;
if (r !== 0 && r !== false) return true;
st.curr = save;
return false;
}
// Several users: each one whose hashes trace fn, lowest index first as the kernel walks
// fgraph_array.
function listEntry(st, ent, fregs, cpu, fn) {
let bitmap = 0;
for (let mask = fnUsers[fn]; mask !== 0; mask &= mask - 1) {
const i = 31 - Math.clz32(mask & -mask);
const g = users[i];
if (g === null || g === undefined) continue;
if (callEntry(g, st, ent, fregs, cpu)) bitmap |= 1 << i;
}
return bitmap;
}
${push}function function_graph_enter(ip, _parent, _op, fregs, cpu, fn) {
${enterBody}}
function return_to_handler(cpu, fn) {
const task = cpu.current;
const st = task === null ? undefined : task.slots[${L.slot}];
// Without a frame ip stays at return_to_handler and the kernel reports the bad return.
if (st === undefined) return ${ENTRY_CONTINUE};
const frame = st.frameBelow(st.curr);
if (frame < 0) return ${ENTRY_CONTINUE};
stats.returns++;
const u = cpu.regs.i32;
const s = st.i32;
const w = frame * 2;
const marker = s[w + ${fo2}];
const retLo = s[w + ${2 * RET_STACK_RET}];
const retHi = s[w + ${2 * RET_STACK_RET + 1}];
const rt = rets[cpu.id];
rt.fn = fn;
rt.func = s[w + ${2 * RET_STACK_FUNC}];
rt.depth = st.depth;
rt.calltime = st.f64[frame + ${RET_STACK_CALLTIME}];
rt.rettime = cpu.clock;
rt.overrun = st.overrun;
rt.retvalLo = u[${r0}] >>> 0;
rt.retvalHi = u[${L.wide ? r0 + 1 : r1}] >>> 0;
// What return_to_handler saved, and ip at the real return address as the callbacks see it.
const fregs = retRegs[cpu.id];
const f = fregs.i32;
${retSave}f[${L.fregsIpW}] = retLo;
${L.wide ? `f[${L.fregsIpW + 1}] = retHi;\n` : ''}const prevCur = hot.cur;
hot.cur = st;
const bitmap = markerBitmap(marker);
for (let mask = (marker & ${FGRAPH_IDX0_WANTS}) === 0 ? bitmap & ~1 : bitmap; mask !== 0; mask &= mask - 1) {
const i = 31 - Math.clz32(mask & -mask);
const g = users[i];
if (g === null || g === undefined || g.retfunc === null) continue;
g.retfunc(rt, g, fregs, cpu);
}
hot.cur = prevCur;
st.curr = frame;
st.depth--;
u[${L.ipW}] = retLo;
${L.wide ? `u[${L.ipW + 1}] = retHi;\n` : ''}${hookLr ? `u[${L.lrW}] = retLo;\nu[${L.lrW + 1}] = retHi;\n` : ''}return ${ENTRY_CONTINUE};
}
return { enter: function_graph_enter, ret: return_to_handler };
//# sourceURL=${name}`;
  const factory = new Function('env', 'makeBitmapMarker', 'markerBitmap', body) as (
    env: GraphEnv,
    mb: typeof makeBitmapMarker,
    mbm: typeof markerBitmap,
  ) => GraphCode;
  return factory(env, makeBitmapMarker, markerBitmap);
}
