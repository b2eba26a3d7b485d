import { TWO32, bswap16, bswap32, divmod64, mulhu, scmp, toBig, ucmp } from './arith.js';
import { VmError } from './errors.js';
import { BPF_PSEUDO_CALL, BPF_PSEUDO_FUNC, type Insn, jumpTarget } from './insn.js';
import { BPF_PSEUDO_FUNC_BASE } from './program.js';
import { PROT_READ, PROT_WRITE } from './memory.js';
import type { Program } from './program.js';
import {
  BPF_FUNC_tail_call,
  MAX_BPF_STACK,
  MAX_CALL_FRAMES,
  MAX_TAIL_CALL_CNT,
  type Vm,
} from './vm.js';

/** Result of a compiled program: 0 done, 1 tail call to vm.current, < 0 an errno (vm.error set). */
export type CompiledFn = (
  vm: Vm,
  budget: number,
  executed: number,
  startPc: number,
  baseFrame: number,
) => number;

const TAIL = 1;

/**
 * Compiles a program to one JavaScript function (new Function): registers become local int32
 * pairs, each basic block a case of a dispatch switch, and every memory access goes through the
 * same AddressSpace.translate as the interpreter, so faults and permissions are identical.
 * The instruction budget is charged per basic block, which is exact because every block is
 * straight-line code ending at its only jump; a block that would cross the budget fails at the
 * same instruction as the interpreter. With trace, vm.traceHook runs before every
 * instruction with the registers in vm.lo/vm.hi (slow; for debugging only).
 */
export function compile(prog: Program, options: { trace?: boolean } = {}): CompiledFn {
  const trace = options.trace === true;
  const n = prog.length;
  const leaders = new Set<number>([0]);
  for (let k = 0; k < n; k++) {
    const c = prog.code[k] as number;
    if (c === 0x18) {
      // A function pointer's target is entered by bpf_loop, so it starts a block.
      if ((prog.src[k] as number) === BPF_PSEUDO_FUNC) {
        leaders.add(
          Number(toBig(prog.imm[k] as number, prog.imm2[k] as number) - BPF_PSEUDO_FUNC_BASE),
        );
      }
      k++;
      continue;
    }
    const cls = c & 7;
    if (cls !== 5 && cls !== 6) continue;
    // Every jump, call and exit ends a block; jump targets start one.
    leaders.add(k + 1);
    const t = jumpTarget(prog.insns[k] as Insn, k);
    if (t !== null) leaders.add(t);
  }
  // Stack accesses skip translate when r10 provably holds the frame pointer: nothing in the
  // program writes r10 and the address space does not fault on alignment.
  const fpFixed = prog.fpFixed;
  const out: string[] = [];
  const emit = (s: string): number => out.push(s);
  const R = (r: number): string => `l${r}`;
  const Hh = (r: number): string => `h${r}`;
  const regs = Array.from({ length: 11 }, (_, r) => `l${r} = 0, h${r} = 0`).join(', ');
  const sync = (to: boolean): string =>
    Array.from({ length: 11 }, (_, r) =>
      to ? `L[${r}] = l${r}; H[${r}] = h${r};` : `l${r} = L[${r}]; h${r} = H[${r}];`,
    ).join(' ');
  emit(`const SV = vm.stack.view, STACK_SIZE = vm.stack.size, STRICT = vm.memory.strictAlignment;`);
  emit(`const L = vm.lo, H = vm.hi, mem = vm.memory, tmp = new Int32Array(2);`);
  emit(
    `const fRet = new Int32Array(${MAX_CALL_FRAMES}), sLo = new Int32Array(${MAX_CALL_FRAMES * 4}), sHi = new Int32Array(${MAX_CALL_FRAMES * 4});`,
  );
  emit(`return function jitted(vm, budget, n, pc0, frame0) {`);
  emit(`let ${regs}, t = 0, o = 0, v = null, frame = frame0, pc = pc0, ret = null;`);
  emit(sync(false));
  emit(`for (;;) switch (pc) {`);
  let rest = 0;
  const blockSlots: number[][] = [];
  for (let k = 0; k < n; k++) {
    if (leaders.has(k)) {
      // Charge the whole block at its entry.
      const slots: number[] = [];
      for (let j = k; j < n; j++) {
        if (j > k && leaders.has(j)) break;
        slots.push(j);
        if ((prog.code[j] as number) === 0x18) j++;
      }
      const len = slots.length;
      rest = len;
      // Over budget inside this block: fail at the very instruction the interpreter would.
      blockSlots.push(slots);
      emit(
        `case ${k}: if (n + ${len} > budget) return overBudget(vm, ${blockSlots.length - 1}, n, budget); n += ${len};`,
      );
    }
    // Instructions of this block after k: a fault here has not executed them.
    rest--;
    // Tracing: registers are written back and the hook sees them before each instruction.
    if (trace) emit(`${sync(true)} vm.traceHook?.(${k});`);
    const c = prog.code[k] as number;
    const d = prog.dst[k] as number;
    const s = prog.src[k] as number;
    const imm = prog.imm[k] as number;
    const off = prog.off[k] as number;
    const isK = (c & 8) === 0;
    const bl = isK ? `${imm}` : R(s);
    const bh = isK ? `${imm >> 31}` : Hh(s);
    const D = R(d);
    const DH = Hh(d);
    const jmp = (cond: string): void =>
      void emit(`if (${cond}) { pc = ${k + 1 + off}; continue; }`);
    switch (c) {
      case 0x07:
      case 0x0f:
        emit(
          `t = (${D} >>> 0) + (${bl} >>> 0); ${D} = t | 0; ${DH} = (${DH} + ${bh} + (t >= ${TWO32} ? 1 : 0)) | 0;`,
        );
        break;
      case 0x17:
      case 0x1f:
        emit(
          `t = (${D} >>> 0) - (${bl} >>> 0); ${D} = t | 0; ${DH} = (${DH} - ${bh} - (t < 0 ? 1 : 0)) | 0;`,
        );
        break;
      case 0x27:
      case 0x2f:
        emit(
          `${DH} = (mulhu(${D}, ${bl}) + Math.imul(${D}, ${bh}) + Math.imul(${DH}, ${bl})) | 0; ${D} = Math.imul(${D}, ${bl});`,
        );
        break;
      case 0x37:
      case 0x3f:
      case 0x97:
      case 0x9f:
        emit(
          `divmod64(${D}, ${DH}, ${bl}, ${bh}, ${c >= 0x90}, ${off === 1}, tmp); ${D} = tmp[0]; ${DH} = tmp[1];`,
        );
        break;
      case 0x47:
      case 0x4f:
        emit(`${D} |= ${bl}; ${DH} |= ${bh};`);
        break;
      case 0x57:
      case 0x5f:
        emit(`${D} &= ${bl}; ${DH} &= ${bh};`);
        break;
      case 0xa7:
      case 0xaf:
        emit(`${D} ^= ${bl}; ${DH} ^= ${bh};`);
        break;
      case 0x67:
      case 0x6f:
        emit(
          `t = ${bl} & 63; if (t >= 32) { ${DH} = ${D} << (t - 32); ${D} = 0; } else if (t !== 0) { ${DH} = (${DH} << t) | (${D} >>> (32 - t)); ${D} <<= t; }`,
        );
        break;
      case 0x77:
      case 0x7f:
        emit(
          `t = ${bl} & 63; if (t >= 32) { ${D} = ${DH} >>> (t - 32); ${DH} = 0; } else if (t !== 0) { ${D} = (${D} >>> t) | (${DH} << (32 - t)); ${DH} = ${DH} >>> t; }`,
        );
        break;
      case 0xc7:
      case 0xcf:
        emit(
          `t = ${bl} & 63; if (t >= 32) { ${D} = ${DH} >> (t - 32); ${DH} >>= 31; } else if (t !== 0) { ${D} = (${D} >>> t) | (${DH} << (32 - t)); ${DH} >>= t; }`,
        );
        break;
      case 0x87:
        emit(`${DH} = (~${DH} + (${D} === 0 ? 1 : 0)) | 0; ${D} = -${D} | 0;`);
        break;
      case 0xb7:
        emit(`${D} = ${imm}; ${DH} = ${imm >> 31};`);
        break;
      case 0xbf:
        if (off === 0) emit(`${D} = ${R(s)}; ${DH} = ${Hh(s)};`);
        else if (off === 32) emit(`${D} = ${R(s)}; ${DH} = ${D} >> 31;`);
        else emit(`${D} = (${R(s)} << ${32 - off}) >> ${32 - off}; ${DH} = ${D} >> 31;`);
        break;
      case 0xd7:
      case 0xdc:
        if (imm === 16) emit(`${D} = bswap16(${D}); ${DH} = 0;`);
        else if (imm === 32) emit(`${D} = bswap32(${D}); ${DH} = 0;`);
        else emit(`t = ${D}; ${D} = bswap32(${DH}); ${DH} = bswap32(t);`);
        break;
      case 0xd4:
        if (imm === 16) emit(`${D} &= 0xffff; ${DH} = 0;`);
        else if (imm === 32) emit(`${DH} = 0;`);
        break;
      case 0x04:
      case 0x0c:
        emit(`${D} = (${D} + ${bl}) | 0; ${DH} = 0;`);
        break;
      case 0x14:
      case 0x1c:
        emit(`${D} = (${D} - ${bl}) | 0; ${DH} = 0;`);
        break;
      case 0x24:
      case 0x2c:
        emit(`${D} = Math.imul(${D}, ${bl}); ${DH} = 0;`);
        break;
      case 0x34:
      case 0x3c:
        if (off === 1) emit(`${D} = ${bl} === 0 ? 0 : Math.trunc(${D} / ${bl}) | 0; ${DH} = 0;`);
        else
          emit(`${D} = ${bl} === 0 ? 0 : Math.floor((${D} >>> 0) / (${bl} >>> 0)) | 0; ${DH} = 0;`);
        break;
      case 0x94:
      case 0x9c:
        if (off === 1) emit(`if (${bl} !== 0) ${D} = (${D} % ${bl}) | 0; ${DH} = 0;`);
        else emit(`if (${bl} !== 0) ${D} = ((${D} >>> 0) % (${bl} >>> 0)) | 0; ${DH} = 0;`);
        break;
      case 0x44:
      case 0x4c:
        emit(`${D} |= ${bl}; ${DH} = 0;`);
        break;
      case 0x54:
      case 0x5c:
        emit(`${D} &= ${bl}; ${DH} = 0;`);
        break;
      case 0xa4:
      case 0xac:
        emit(`${D} ^= ${bl}; ${DH} = 0;`);
        break;
      case 0x64:
      case 0x6c:
        emit(`${D} <<= ${bl} & 31; ${DH} = 0;`);
        break;
      case 0x74:
      case 0x7c:
        emit(`${D} = ${D} >>> (${bl} & 31) | 0; ${DH} = 0;`);
        break;
      case 0xc4:
      case 0xcc:
        emit(`${D} >>= ${bl} & 31; ${DH} = 0;`);
        break;
      case 0x84:
        emit(`${D} = -${D} | 0; ${DH} = 0;`);
        break;
      case 0xb4:
        emit(`${D} = ${imm}; ${DH} = 0;`);
        break;
      case 0xbc:
        if (off === 0) emit(`${D} = ${R(s)}; ${DH} = 0;`);
        else emit(`${D} = (${R(s)} << ${32 - off}) >> ${32 - off}; ${DH} = 0;`);
        break;
      case 0x18:
        emit(`${D} = ${imm}; ${DH} = ${prog.imm2[k] as number};`);
        k++;
        break;
      case 0x05:
        emit(`pc = ${k + 1 + off}; continue;`);
        break;
      case 0x06:
        emit(`pc = ${k + 1 + imm}; continue;`);
        break;
      case 0x15:
      case 0x1d:
        jmp(`${D} === ${bl} && ${DH} === ${bh}`);
        break;
      case 0x55:
      case 0x5d:
        jmp(`${D} !== ${bl} || ${DH} !== ${bh}`);
        break;
      case 0x45:
      case 0x4d:
        jmp(`(${D} & ${bl}) !== 0 || (${DH} & ${bh}) !== 0`);
        break;
      case 0x25:
      case 0x2d:
        jmp(`ucmp(${D}, ${DH}, ${bl}, ${bh}) > 0`);
        break;
      case 0x35:
      case 0x3d:
        jmp(`ucmp(${D}, ${DH}, ${bl}, ${bh}) >= 0`);
        break;
      case 0xa5:
      case 0xad:
        jmp(`ucmp(${D}, ${DH}, ${bl}, ${bh}) < 0`);
        break;
      case 0xb5:
      case 0xbd:
        jmp(`ucmp(${D}, ${DH}, ${bl}, ${bh}) <= 0`);
        break;
      case 0x65:
      case 0x6d:
        jmp(`scmp(${D}, ${DH}, ${bl}, ${bh}) > 0`);
        break;
      case 0x75:
      case 0x7d:
        jmp(`scmp(${D}, ${DH}, ${bl}, ${bh}) >= 0`);
        break;
      case 0xc5:
      case 0xcd:
        jmp(`scmp(${D}, ${DH}, ${bl}, ${bh}) < 0`);
        break;
      case 0xd5:
      case 0xdd:
        jmp(`scmp(${D}, ${DH}, ${bl}, ${bh}) <= 0`);
        break;
      case 0x16:
      case 0x1e:
        jmp(`${D} === ${bl}`);
        break;
      case 0x56:
      case 0x5e:
        jmp(`${D} !== ${bl}`);
        break;
      case 0x46:
      case 0x4e:
        jmp(`(${D} & ${bl}) !== 0`);
        break;
      case 0x26:
      case 0x2e:
        jmp(`(${D} >>> 0) > (${bl} >>> 0)`);
        break;
      case 0x36:
      case 0x3e:
        jmp(`(${D} >>> 0) >= (${bl} >>> 0)`);
        break;
      case 0xa6:
      case 0xae:
        jmp(`(${D} >>> 0) < (${bl} >>> 0)`);
        break;
      case 0xb6:
      case 0xbe:
        jmp(`(${D} >>> 0) <= (${bl} >>> 0)`);
        break;
      case 0x66:
      case 0x6e:
        jmp(`${D} > ${bl}`);
        break;
      case 0x76:
      case 0x7e:
        jmp(`${D} >= ${bl}`);
        break;
      case 0xc6:
      case 0xce:
        jmp(`${D} < ${bl}`);
        break;
      case 0xd6:
      case 0xde:
        jmp(`${D} <= ${bl}`);
        break;
      case 0x85:
      case 0x8d: {
        if (c === 0x85 && s === BPF_PSEUDO_CALL) {
          emit(
            `if (frame + 1 >= ${MAX_CALL_FRAMES}) return vm.failAt(${k}, new VmError('E2BIG', 'insn ${k}: the call stack of ' + (frame + 2) + ' frames is too deep'), n);`,
          );
          emit(
            `fRet[frame] = ${k + 1}; t = frame * 4; sLo[t] = l6; sHi[t] = h6; sLo[t + 1] = l7; sHi[t + 1] = h7; sLo[t + 2] = l8; sHi[t + 2] = h8; sLo[t + 3] = l9; sHi[t + 3] = h9; frame++;`,
          );
          emit(
            `t = (l10 >>> 0) - ${MAX_BPF_STACK}; l10 = t | 0; h10 = (h10 - (t < 0 ? 1 : 0)) | 0; pc = ${k + 1 + imm}; continue;`,
          );
          break;
        }
        if (c === 0x85 && s === 0 && imm === BPF_FUNC_tail_call) {
          emit(
            `ret = vm.tailCalls < ${MAX_TAIL_CALL_CNT} && vm.tailCall !== undefined ? vm.tailCall(toBig(l2, h2), l3 >>> 0) : undefined;`,
          );
          emit(
            `if (ret !== undefined) { vm.tailCalls++; vm.current = ret; L[1] = l1; H[1] = h1; vm.executed = n; return ${TAIL}; }`,
          );
          emit(`l0 = -2; h0 = -1;`);
          break;
        }
        const kf = c === 0x85 && s === 2;
        const id = c === 0x8d ? `L[${d}]` : `${imm}`;
        emit(sync(true));
        emit(`ret = ${kf ? `vm.kfuncs.get(${imm})` : `vm.helpers[${id}]`};`);
        const what = kf ? `'kfunc btf_id ${imm}'` : `'helper ' + ${id}`;
        emit(
          `if (ret === undefined) return vm.failAt(${k}, new VmError('EINVAL', 'insn ${k}: unknown ' + ${what}), n);`,
        );
        emit(`vm.executed = n; vm.frame = frame; ret = ret(vm); n = vm.executed;`);
        emit(
          `if (typeof ret === 'number') { l0 = ret | 0; h0 = Math.floor(ret / ${TWO32}) | 0; } else if (ret !== undefined) { ret = BigInt.asUintN(64, ret); l0 = Number(ret & 0xffffffffn) | 0; h0 = Number(ret >> 32n) | 0; } else { l0 = L[0]; h0 = H[0]; }`,
        );
        emit(
          `if (vm.error !== null) return vm.failAt(vm.errorPc >= 0 ? vm.errorPc : ${k}, vm.error, n);`,
        );
        emit(
          `if (vm.stopValue !== null) { L[0] = Number(vm.stopValue & 0xffffffffn) | 0; H[0] = Number(vm.stopValue >> 32n) | 0; vm.executed = n; return 0; }`,
        );
        break;
      }
      case 0x95:
        emit(`if (frame === frame0) { L[0] = l0; H[0] = h0; vm.executed = n; return 0; }`);
        emit(
          `frame--; pc = fRet[frame]; t = frame * 4; l6 = sLo[t]; h6 = sHi[t]; l7 = sLo[t + 1]; h7 = sHi[t + 1]; l8 = sLo[t + 2]; h8 = sHi[t + 2]; l9 = sLo[t + 3]; h9 = sHi[t + 3];`,
        );
        emit(
          `t = (l10 >>> 0) + ${MAX_BPF_STACK}; l10 = t | 0; h10 = (h10 + (t >= ${TWO32} ? 1 : 0)) | 0; continue;`,
        );
        break;
      default: {
        const cls = c & 7;
        if (cls < 1 || cls > 3) {
          emit(
            `return vm.failAt(${k}, new VmError('EOPNOTSUPP', 'insn ${k}: opcode 0x${c.toString(16)} is not executable here'), n);`,
          );
          break;
        }
        const base = cls === 1 ? s : d;
        const sz = c & 0x18;
        const bytes = sz === 0x10 ? 1 : sz === 0x08 ? 2 : sz === 0x00 ? 4 : 8;
        const atomic = (c & 0xe0) === 0xc0;
        const access = cls === 1 ? PROT_READ : atomic ? PROT_READ | PROT_WRITE : PROT_WRITE;
        const generic = [
          `t = (${R(base)} >>> 0) + ${off}; o = ${Hh(base)};`,
          off > 0 ? `if (t >= ${TWO32}) { t -= ${TWO32}; o = (o + 1) | 0; }` : '',
          off < 0 ? `if (t < 0) { t += ${TWO32}; o = (o - 1) | 0; }` : '',
          `o = mem.translate(o, t, ${bytes}, ${access}); if (o < 0) return vm.memFault(${k}, n - ${rest}); v = mem.hit.view;`,
        ].join(' ');
        if (base === 10 && fpFixed && off < 0 && off + bytes <= 0) {
          // r10 is frame * 512 below the stack top: address the stack region directly.
          emit(
            `o = STACK_SIZE + ${off} - frame * ${MAX_BPF_STACK}; if (o >= 0 && !STRICT) v = SV; else { ${generic} }`,
          );
        } else {
          emit(generic);
        }
        const S = R(s);
        switch (c) {
          case 0x71:
            emit(`${D} = v.getUint8(o); ${DH} = 0;`);
            break;
          case 0x69:
            emit(`${D} = v.getUint16(o, true); ${DH} = 0;`);
            break;
          case 0x61:
            emit(`${D} = v.getInt32(o, true); ${DH} = 0;`);
            break;
          case 0x79:
            emit(`${D} = v.getInt32(o, true); ${DH} = v.getInt32(o + 4, true);`);
            break;
          case 0x91:
            emit(`${D} = v.getInt8(o); ${DH} = ${D} >> 31;`);
            break;
          case 0x89:
            emit(`${D} = v.getInt16(o, true); ${DH} = ${D} >> 31;`);
            break;
          case 0x81:
            emit(`${D} = v.getInt32(o, true); ${DH} = ${D} >> 31;`);
            break;
          case 0x72:
            emit(`v.setUint8(o, ${imm & 0xff});`);
            break;
          case 0x6a:
            emit(`v.setUint16(o, ${imm & 0xffff}, true);`);
            break;
          case 0x62:
            emit(`v.setInt32(o, ${imm}, true);`);
            break;
          case 0x7a:
            emit(`v.setInt32(o, ${imm}, true); v.setInt32(o + 4, ${imm >> 31}, true);`);
            break;
          case 0x73:
            emit(`v.setUint8(o, ${S} & 0xff);`);
            break;
          case 0x6b:
            emit(`v.setUint16(o, ${S} & 0xffff, true);`);
            break;
          case 0x63:
            emit(`v.setInt32(o, ${S}, true);`);
            break;
          case 0x7b:
            emit(`v.setInt32(o, ${S}, true); v.setInt32(o + 4, ${Hh(s)}, true);`);
            break;
          case 0xc3:
          case 0xdb:
            emit(`L[0] = l0; H[0] = h0; L[${s}] = ${S}; H[${s}] = ${Hh(s)};`);
            emit(`vm.${c === 0xc3 ? 'atomic32' : 'atomic64'}(v, o, ${imm}, ${s});`);
            emit(`l0 = L[0]; h0 = H[0]; ${S} = L[${s}]; ${Hh(s)} = H[${s}];`);
            break;
          default:
            emit(
              `return vm.failAt(${k}, new VmError('EOPNOTSUPP', 'insn ${k}: opcode 0x${c.toString(16)} is not executable here'), n);`,
            );
        }
      }
    }
    // Falling off the end of the program (no exit) is an error, as in the interpreter.
    if (k + 1 >= n && !(c === 0x05 || c === 0x06 || c === 0x95)) {
      emit(
        `return vm.failAt(${n}, new VmError('EINVAL', 'insn ${n}: execution left the program (${n} insns)'), n);`,
      );
    }
  }
  emit(
    `default: return vm.failAt(pc, new VmError('EINVAL', 'insn ' + pc + ': execution left the program (${n} insns)'), n);`,
  );
  emit(`}`);
  emit(`};`);
  const factory = new Function(
    'vm',
    'VmError',
    'mulhu',
    'divmod64',
    'ucmp',
    'scmp',
    'bswap16',
    'bswap32',
    'toBig',
    'overBudget',
    out.join('\n'),
  ) as (...a: unknown[]) => CompiledFn;
  const overBudget = (vm: Vm, block: number, n: number, budget: number): number => {
    const pc = (blockSlots[block] as number[])[budget - n] as number;
    return vm.failAt(
      pc,
      new VmError('ELOOP', `insn ${pc}: instruction budget of ${budget} exhausted`),
      budget + 1,
    );
  };
  // Each vm gets its own instance: the frame arrays live in the factory's closure. The last
  // vm's instance is kept aside, since one CPU runs a program many times in a row.
  const jitCache = new WeakMap<Vm, CompiledFn>();
  let lastVm: Vm | null = null;
  let lastFn: CompiledFn | null = null;
  return (vm, budget, executed, startPc, baseFrame) => {
    if (vm !== lastVm) {
      let fn = jitCache.get(vm);
      if (fn === undefined) {
        fn = factory(vm, VmError, mulhu, divmod64, ucmp, scmp, bswap16, bswap32, toBig, overBudget);
        jitCache.set(vm, fn);
      }
      lastVm = vm;
      lastFn = fn;
    }
    return (lastFn as CompiledFn)(vm, budget, executed, startPc, baseFrame);
  };
}
