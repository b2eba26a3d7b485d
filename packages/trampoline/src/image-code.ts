import { ENTRY_CONTINUE, ENTRY_SKIP, type Cpu } from '@tracelab/kernel';
import type { Program, Vm } from '@tracelab/vm';
import type { TracingState } from './helpers.js';
import { SRC_STACK, SRC_ZERO, type MarshalPlan } from './plan.js';

/**
 * The trampoline image's code, emitted per image as arch_prepare_bpf_trampoline emits machine
 * code: the argument moves of the plan, the frame layout of the arch and the programs of the
 * link set are constants of the generated function, not table walks and branches per call. Each
 * image's code is its own JavaScript function, so V8's type feedback for one image (its programs,
 * its arch) does not degrade another's.
 */

/** enum bpf_tramp_prog_type values the helpers read from TracingState.kind. */
const KIND_FENTRY = 0;
const KIND_FEXIT = 1;
const KIND_MODIFY_RETURN = 2;

/** ctx area on the stack: ctx[-2] ip, ctx[-1] nr_regs, 12 argument slots, the return slot, pad. */
export const CTX_BYTES = 8 * 16;
/** Byte offset of ctx[0] in the ctx area. */
export const CTX_ARGS = 16;

/** Where the arch keeps what the image saves and moves: pt_regs u32 word indices and sizes. */
export interface ImageLayout {
  readonly ws: number;
  readonly spW: number;
  readonly fpW: number;
  readonly ipW: number;
  /** -1 where the return address is on the stack (x86). */
  readonly lrW: number;
  /** Bytes at the top of a trampoline frame: saved fp (x86) or the {fp, lr} record. */
  readonly top: number;
  readonly stackArgOffset: number;
  /** riscv64 links fp to the top of the frame record, arm64 to its bottom. */
  readonly riscv: boolean;
}

/** What the image's code reads per traced function (image index), and its counters. */
export interface ImageEnv {
  readonly addrLo: Int32Array;
  readonly addrHi: Uint32Array;
  /** ctx slots, whether the return has a high word (32-bit arches), stack argument bytes. */
  readonly slots: Uint8Array;
  readonly retWide: Uint8Array;
  readonly stackBytes: Uint16Array;
  readonly vms: readonly Vm[];
  readonly state: TracingState;
  readonly stats: { misses: number; errors: number };
  readonly jit: boolean;
}

/** The programs an image runs, per kind newest first, with each one's per-CPU run counter. */
export interface ImageProgs {
  readonly fentry: readonly Program[];
  readonly fexit: readonly Program[];
  readonly fmodRet: readonly Program[];
  readonly fentryActive: readonly Int32Array[];
  readonly fexitActive: readonly Int32Array[];
  readonly fmodRetActive: readonly Int32Array[];
}

/** The image the code is emitted for: its plan, functions and programs, and its run-time state. */
export interface ImageSource extends ImageProgs {
  /** The group leader's plan (see emitImageCode) and the functions the image serves. */
  readonly plan: MarshalPlan;
  readonly fns: readonly number[];
  /** The return into the image, as int32 halves. */
  readonly retLo: number;
  readonly retHi: number;
  /** Calls that entered and have not returned yet; whether the image is still installed. */
  inflight: number;
  installed: boolean;
}

export type ImageHandler = (cpu: Cpu, fn: number) => number;

export interface ImageCode {
  /** The image's entry: ctx, fentry, fmod_ret, then the original called from the image or not. */
  readonly enter: ImageHandler;
  /** The return into the image: fexit, then back to the caller. */
  readonly leave: ImageHandler;
}

/** One value if every function the image serves has it, else null (read per call). */
function common(fns: readonly number[], table: ArrayLike<number>): number | null {
  const v = table[fns[0] as number] as number;
  return fns.every((fn) => table[fn] === v) ? v : null;
}

/**
 * Emits the image's entry and return code. `plan` is the group leader's: every function the
 * image serves has a plan that begins it, so its first `slots[fn]` ctx slots move as the
 * leader's do.
 */
export function emitImageCode(
  L: ImageLayout,
  img: ImageSource,
  env: ImageEnv,
  free: () => void,
  name: string,
): ImageCode {
  const { plan, fns } = img;
  const progs: ImageProgs = img;
  const wide = L.ws === 8;
  const x86 = L.lrW < 0;
  const minSlots = Math.min(...fns.map((fn) => env.slots[fn] as number));
  const nConst = common(fns, env.slots);
  const sbConst = common(fns, env.stackBytes);
  const wideConst = wide ? 1 : common(fns, env.retWide);
  const callOrig = progs.fexit.length > 0 || progs.fmodRet.length > 0;
  const run = env.jit ? 'runJitRaw' : 'runRaw';

  const src = plan.src;
  const half = (h: number): string => {
    const s = src[h] as number;
    if (s >= 0) return `u[${s}]`;
    if (s === SRC_ZERO) return '0';
    return `words[(oldSp >> 2) + ${SRC_STACK - s}]`;
  };
  /** Slot j's two halves, guarded when some function of the image has fewer slots. */
  const perSlot = (emit: (h: number) => string): string => {
    let out = '';
    for (let j = 0; j < plan.ctxSlots; j++) {
      const body = emit(2 * j) + emit(2 * j + 1);
      out += j < minSlots ? body : `if (n > ${j}) {${body}}\n`;
    }
    return out;
  };
  const saveArgs = perSlot((h) => `words[a + ${h}] = ${half(h)};\n`);
  const restoreArgs = perSlot((h) => {
    const s = src[h] as number;
    return s >= 0 ? `u[${s}] = words[a + ${h}];\n` : '';
  });

  // Program runs: the per-CPU recursion guard (prog->active), then the vm.
  const runProg = (p: string, act: string, ok: string | null): string =>
    `if ((${act}[c] = ${act}[c] + 1) !== 1) { ${act}[c] = ${act}[c] - 1; stats.misses++;` +
    (ok === null ? '' : ` ${ok} = false;`) +
    ` } else { const rc = vm.${run}(${p}, ctxLo, ctxHi, 0, 0); if (rc !== 0) stats.errors++;` +
    ` ${act}[c] = ${act}[c] - 1;` +
    (ok === null ? '' : ` ${ok} = rc === 0;`) +
    ' }\n';
  const all = (list: readonly Program[], pre: string): string =>
    list.map((_, i) => runProg(`${pre}${i}`, `${pre}A${i}`, null)).join('');
  const bind = (list: readonly Program[], pre: string, key: keyof ImageProgs): string =>
    list
      .map((_, i) => `const ${pre}${i} = img.${key}[${i}], ${pre}A${i} = img.${key}Active[${i}];\n`)
      .join('');

  const saveTop = x86
    ? `words[(oldSp - ${L.ws}) >> 2] = u[${L.fpW}];\n` +
      (wide ? `words[((oldSp - ${L.ws}) >> 2) + 1] = u[${L.fpW + 1}];\n` : '')
    : `{ const rec = (oldSp - 16) >> 2; words[rec] = u[${L.fpW}]; words[rec + 1] = u[${L.fpW + 1}];` +
      ` words[rec + 2] = u[${L.lrW}]; words[rec + 3] = u[${L.lrW + 1}]; }\n`;
  const restoreTop = (toCaller: boolean): string =>
    x86
      ? `u[${L.fpW}] = words[(oldSp - ${L.ws}) >> 2];\n` +
        (wide ? `u[${L.fpW + 1}] = words[((oldSp - ${L.ws}) >> 2) + 1];\n` : '') +
        (toCaller
          ? `u[${L.ipW}] = words[oldSp >> 2];\n` +
            (wide ? `u[${L.ipW + 1}] = words[(oldSp >> 2) + 1];\n` : '')
          : '')
      : `{ const rec = (oldSp - 16) >> 2; u[${L.fpW}] = words[rec]; u[${L.fpW + 1}] = words[rec + 1];` +
        ` u[${L.lrW}] = words[rec + 2]; u[${L.lrW + 1}] = words[rec + 3];` +
        (toCaller ? ` u[${L.ipW}] = words[rec + 2]; u[${L.ipW + 1}] = words[rec + 3];` : '') +
        ' }\n';
  const rs = plan.retSrc;
  const setReturn = (lo: string, hi: string): string =>
    `u[${rs[0] as number}] = ${lo};\n` +
    (wideConst === 1
      ? `u[${rs[1] as number}] = ${hi};\n`
      : wideConst === 0
        ? ''
        : `if (retWide[fn] === 1) u[${rs[1] as number}] = ${hi};\n`);
  const toCaller = (sp: string): string =>
    restoreTop(true) + `u[${L.spW}] = base + ${sp}${x86 ? ` + ${L.ws}` : ''};\n`;
  const n = nConst === null ? 'slots[fn]' : `${nConst}`;
  const sb = sbConst === null ? 'stackBytes[fn]' : `${sbConst}`;
  const fexitRuns = all(progs.fexit, 'x');

  const fmod =
    progs.fmodRet.length === 0
      ? ''
      : `state.kind[c] = ${KIND_MODIFY_RETURN};\nlet ok = false;\n` +
        progs.fmodRet
          .map(
            (_, i) =>
              runProg(`m${i}`, `mA${i}`, 'ok') +
              `if (ok) { words[r] = vm.lo[0]; words[r + 1] = vm.hi[0];\n` +
              `if (words[r] !== 0 || words[r + 1] !== 0) {\n` +
              // override_function_with_return: fexit runs, the original does not.
              (progs.fexit.length > 0 ? `state.kind[c] = ${KIND_FEXIT};\n${fexitRuns}` : '') +
              `state.end(c);\n${setReturn('words[r]', 'words[r + 1]')}${toCaller('oldSp')}` +
              `return ${ENTRY_SKIP}; } }\n`,
          )
          .join('');

  const callOriginal = !callOrig
    ? `return ${ENTRY_CONTINUE};\n`
    : // The original is called from the image: stack args copied below the frame, the frame
      // record linked for unwinders, and the original returns into the image.
      `const argsAt = ctxOff - ${sb};\n` +
      (sbConst === 0
        ? ''
        : `for (let k = 0, to = argsAt >> 2, from = (oldSp + ${L.stackArgOffset}) >> 2; k < ${sb} >> 2; k++) words[to + k] = words[from + k];\n`) +
      (x86
        ? `u[${L.fpW}] = base + oldSp - ${L.ws};\nconst newSp = argsAt - ${L.ws};\n` +
          `words[newSp >> 2] = ${img.retLo};\n` +
          (wide ? `words[(newSp >> 2) + 1] = ${img.retHi};\n` : '')
        : `u[${L.fpW}] = base + oldSp - ${L.riscv ? 0 : 16};\nu[${L.fpW + 1}] = task.stackBaseHi;\n` +
          `u[${L.lrW}] = ${img.retLo};\nu[${L.lrW + 1}] = ${img.retHi};\nconst newSp = argsAt;\n`) +
      `u[${L.spW}] = base + newSp;\nimg.inflight++;\nreturn ${ENTRY_CONTINUE};\n`;

  const body = `'use strict';
const { addrLo, addrHi, slots, retWide, stackBytes, vms, state, stats } = env;
${bind(progs.fentry, 'f', 'fentry')}${bind(progs.fmodRet, 'm', 'fmodRet')}${bind(progs.fexit, 'x', 'fexit')}
function bpf_trampoline_enter(cpu, fn) {
const task = cpu.current;
if (task === null) return ${ENTRY_CONTINUE};
const u = cpu.regs.i32;
const words = task.stackI32;
const base = task.stackBaseLo;
const oldSp = (u[${L.spW}] - base) | 0;
const ctxOff = oldSp - ${L.top + CTX_BYTES};
const n = ${n};
const cw = ctxOff >> 2;
const ipLo = addrLo[fn], ipHi = addrHi[fn] | 0;
words[cw] = ipLo; words[cw + 1] = ipHi; words[cw + 2] = n; words[cw + 3] = 0;
const a = cw + ${CTX_ARGS >> 2};
${saveArgs}const r = a + 2 * n;
words[r] = 0; words[r + 1] = 0;
${saveTop}// sp below the ctx: kernel code a helper reaches pushes its frames there.
u[${L.spW}] = base + ctxOff;
const calls = cpu.calls;
const ctxLo = (base + ctxOff + ${CTX_ARGS}) | 0, ctxHi = task.stackBaseHi | 0;
const c = cpu.id;
const vm = vms[c];
state.begin(c, ipLo, ipHi, ${KIND_FENTRY});
${all(progs.fentry, 'f')}${fmod}state.end(c);
if (cpu.calls !== calls) {
// A helper ran kernel code: back to the function-entry state (args, fp/lr, ip, sp).
${restoreArgs}${restoreTop(false)}u[${L.ipW}] = ipLo;
${wide ? `u[${L.ipW + 1}] = ipHi;\n` : ''}}
u[${L.spW}] = base + oldSp;
${callOriginal}}
function bpf_trampoline_leave(cpu, fn) {
const task = cpu.current;
const u = cpu.regs.i32;
const words = task.stackI32;
const base = task.stackBaseLo;
const ctxOff = ((u[${L.spW}] - base) | 0) + ${sb};
const oldSp = ctxOff + ${CTX_BYTES + L.top};
const r = ((ctxOff + ${CTX_ARGS}) >> 2) + 2 * ${n};
words[r] = u[${rs[0] as number}];
words[r + 1] = ${wideConst === 1 ? `u[${rs[1] as number}]` : wideConst === 0 ? '0' : `retWide[fn] === 1 ? u[${rs[1] as number}] : 0`};
const c = cpu.id;
const vm = vms[c];
const ctxLo = (base + ctxOff + ${CTX_ARGS}) | 0, ctxHi = task.stackBaseHi | 0;
state.begin(c, addrLo[fn], addrHi[fn] | 0, ${KIND_FEXIT});
${fexitRuns}state.end(c);
// The caller gets the original's return value even if a helper ran kernel code meanwhile.
${setReturn('words[r]', 'words[r + 1]')}${toCaller('oldSp')}if (--img.inflight === 0 && !img.installed) free();
return ${ENTRY_CONTINUE};
}
return { enter: bpf_trampoline_enter, leave: bpf_trampoline_leave };
//# sourceURL=${name}`;
  const factory = new Function('env', 'img', 'free', body) as (
    env: ImageEnv,
    img: ImageSource,
    free: () => void,
  ) => ImageCode;
  return factory(env, img, free);
}
