import { VmError } from './errors.js';
import {
  BPF_ALU,
  BPF_ALU64,
  BPF_ATOMIC,
  BPF_B,
  BPF_CMPXCHG,
  BPF_DW,
  BPF_END,
  BPF_FETCH,
  BPF_H,
  BPF_JMP,
  BPF_JMP32,
  BPF_K,
  BPF_LD,
  BPF_LDX,
  BPF_MEM,
  BPF_MEMSX,
  BPF_MOV,
  BPF_NEG,
  BPF_ST,
  BPF_STX,
  BPF_W,
  BPF_X,
  BPF_XCHG,
  type Insn,
  insn,
  validate,
} from './insn.js';
import { ALU_OPS, ATOMIC_NAMES, JMP_OPS, LDDW_PSEUDO } from './disasm.js';

/** An assembly error with its 1-based line and column. */
export class AsmError extends VmError {
  constructor(
    readonly line: number,
    readonly column: number,
    what: string,
  ) {
    super('EINVAL', `line ${line} col ${column}: ${what}`);
  }
}

/** Thrown only inside this module and turned into a returned AsmError at the line level. */
class LineError {
  constructor(
    readonly needle: string,
    readonly what: string,
  ) {}
}

const CONF_ALU: Record<string, number> = {
  add: 0x00,
  sub: 0x10,
  mul: 0x20,
  div: 0x30,
  or: 0x40,
  and: 0x50,
  lsh: 0x60,
  rsh: 0x70,
  mod: 0x90,
  xor: 0xa0,
  mov: 0xb0,
  arsh: 0xc0,
  sdiv: 0x30,
  smod: 0x90,
};
const CONF_JMP: Record<string, number> = {
  jeq: 0x10,
  jgt: 0x20,
  jge: 0x30,
  jset: 0x40,
  jne: 0x50,
  jsgt: 0x60,
  jsge: 0x70,
  jlt: 0xa0,
  jle: 0xb0,
  jslt: 0xc0,
  jsle: 0xd0,
};
const SIZES: Record<string, number> = { b: BPF_B, h: BPF_H, w: BPF_W, dw: BPF_DW };
const TYPE_SIZES: Record<string, number> = { '8': BPF_B, '16': BPF_H, '32': BPF_W, '64': BPF_DW };

function fail(needle: string, what: string): never {
  throw new LineError(needle, what);
}

function reg(tok: string, prefix = '%r'): number {
  const t = tok.trim();
  if (!t.startsWith(prefix)) fail(t, `expected a register, got "${t}"`);
  const n = Number(t.slice(prefix.length));
  if (!/^\d+$/.test(t.slice(prefix.length)) || n > 10) fail(t, `invalid register "${t}"`);
  return n;
}

function bigNum(tok: string): bigint {
  const t = tok.trim();
  if (!/^[+-]?(0x[0-9a-fA-F]+|\d+)$/.test(t)) fail(t, `expected a number, got "${t}"`);
  const neg = t.startsWith('-');
  const body = t.replace(/^[+-]/, '');
  const v = BigInt(body);
  return neg ? -v : v;
}

/** A 32-bit immediate: signed, or unsigned up to 0xffffffff (wrapped). */
function imm32(tok: string): number {
  const v = bigNum(tok);
  if (v < -(1n << 31n) || v > 0xffffffffn)
    fail(tok.trim(), `immediate ${tok.trim()} does not fit in 32 bits`);
  return Number(BigInt.asIntN(32, v));
}

function off16(tok: string): number {
  const v = bigNum(tok);
  if (v < -32768n || v > 32767n) fail(tok.trim(), `offset ${tok.trim()} does not fit in 16 bits`);
  return Number(v);
}

/** `[%r1+4]`, `[%r10-8]`, `[%r1]`. */
function memOperand(tok: string): [number, number] {
  const m = /^\[\s*(%r\d+)\s*(?:([+-])\s*(0x[0-9a-fA-F]+|\d+))?\s*\]$/.exec(tok.trim());
  if (m === null) fail(tok.trim(), `expected a memory operand like [%r1+4], got "${tok.trim()}"`);
  const off = m[2] === undefined ? 0 : off16(`${m[2]}${m[3] as string}`);
  return [reg(m[1] as string), off];
}

interface Pending {
  /** Slot index of the instruction whose offset/imm is the label's distance. */
  slot: number;
  label: string;
  useImm: boolean;
  line: number;
  column: number;
}

class Assembler {
  readonly out: Insn[] = [];
  readonly labels = new Map<string, number>();
  readonly pending: Pending[] = [];
  /** Source line and column of each slot, to position errors found after parsing. */
  readonly slotLine: number[] = [];
  readonly slotColumn: number[] = [];
  private lineNo = 0;
  private lineText = '';

  target(tok: string, useImm: boolean): number {
    const t = tok.trim();
    if (/^[+-]?\d+$/.test(t)) return useImm ? imm32(t) : off16(t);
    if (!/^[A-Za-z_.$][\w.$]*$/.test(t)) fail(t, `expected a label or +/-offset, got "${t}"`);
    this.pending.push({
      slot: this.out.length,
      label: t,
      useImm,
      line: this.lineNo,
      column: this.lineText.indexOf(t) + 1,
    });
    return 0;
  }

  conformance(text: string): void {
    const sp = text.search(/\s/);
    const mnemonic = (sp < 0 ? text : text.slice(0, sp)).toLowerCase();
    const rest = sp < 0 ? '' : text.slice(sp + 1).trim();
    const ops = rest === '' ? [] : rest.split(',').map((s) => s.trim());
    const need = (n: number): void => {
      if (ops.length !== n) fail(mnemonic, `${mnemonic} takes ${n} operand(s), got ${ops.length}`);
    };
    if (mnemonic === 'exit') {
      need(0);
      if (!this.labels.has('exit')) this.labels.set('exit', this.out.length);
      this.out.push(insn(BPF_JMP | 0x90));
      return;
    }
    if (mnemonic === 'call') {
      const words = rest.split(/\s+/);
      const modeWord = words.length === 1 ? 'helper' : words[0];
      const t = words.length === 1 ? (words[0] as string) : (words[1] as string);
      if (rest === '' || words.length > 2)
        fail(mnemonic, 'call takes [helper|local|runtime] TARGET');
      if (modeWord === 'helper') {
        if (t.startsWith('%')) this.out.push(insn(BPF_JMP | 0x80 | BPF_X, reg(t)));
        else this.out.push(insn(BPF_JMP | 0x80, 0, 0, 0, imm32(t)));
      } else if (modeWord === 'local') {
        this.out.push(insn(BPF_JMP | 0x80, 0, 1, 0, this.target(t, true)));
      } else if (modeWord === 'runtime') {
        this.out.push(insn(BPF_JMP | 0x80, 0, 2, 0, imm32(t)));
      } else {
        fail(modeWord as string, `unknown call mode "${modeWord as string}"`);
      }
      return;
    }
    if (mnemonic === 'ja' || mnemonic === 'ja32') {
      need(1);
      const is32 = mnemonic === 'ja32';
      const t = this.target(ops[0] as string, is32);
      this.out.push(is32 ? insn(BPF_JMP32, 0, 0, 0, t) : insn(BPF_JMP, 0, 0, t));
      return;
    }
    const jm = /^(j[a-z]+?)(32)?$/.exec(mnemonic);
    if (jm !== null && CONF_JMP[jm[1] as string] !== undefined) {
      need(3);
      const k = jm[2] === undefined ? BPF_JMP : BPF_JMP32;
      const o = CONF_JMP[jm[1] as string] as number;
      const d = reg(ops[0] as string);
      const isReg = (ops[1] as string).startsWith('%');
      const s = isReg ? reg(ops[1] as string) : 0;
      const imm = isReg ? 0 : imm32(ops[1] as string);
      const off = this.target(ops[2] as string, false);
      this.out.push(insn(k | o | (isReg ? BPF_X : BPF_K), d, s, off, imm));
      return;
    }
    if (mnemonic === 'lddw') {
      need(2);
      const v = BigInt.asUintN(64, bigNum(ops[1] as string));
      if (bigNum(ops[1] as string) >= 1n << 64n)
        fail(ops[1] as string, 'immediate does not fit in 64 bits');
      const lo = Number(v & 0xffffffffn) | 0;
      const hi = Number(v >> 32n) | 0;
      this.out.push(
        insn(BPF_LD | BPF_DW, reg(ops[0] as string), 0, 0, lo, hi),
        insn(0, 0, 0, 0, hi),
      );
      return;
    }
    const ldx = /^ldx(s?)(b|h|w|dw)$/.exec(mnemonic);
    if (ldx !== null) {
      need(2);
      if (ldx[1] === 's' && ldx[2] === 'dw')
        fail(mnemonic, 'there is no sign-extending 64-bit load');
      const [s, off] = memOperand(ops[1] as string);
      const m = ldx[1] === 's' ? BPF_MEMSX : BPF_MEM;
      this.out.push(
        insn(BPF_LDX | m | (SIZES[ldx[2] as string] as number), reg(ops[0] as string), s, off),
      );
      return;
    }
    const st = /^st(x?)(b|h|w|dw)$/.exec(mnemonic);
    if (st !== null) {
      need(2);
      const [d, off] = memOperand(ops[0] as string);
      const sz = SIZES[st[2] as string] as number;
      if (st[1] === 'x') this.out.push(insn(BPF_STX | BPF_MEM | sz, d, reg(ops[1] as string), off));
      else this.out.push(insn(BPF_ST | BPF_MEM | sz, d, 0, off, imm32(ops[1] as string)));
      return;
    }
    if (mnemonic === 'lock') {
      const am = /^(fetch\s+)?([a-z]+?)(32)?\s+(\[[^\]]*\])\s*,\s*(%r\d+)$/.exec(rest);
      if (am === null) fail(rest, `expected lock [fetch] OP [%rN+off], %rM, got "${rest}"`);
      const name = am[2] as string;
      const sz = am[3] === undefined ? BPF_DW : BPF_W;
      let aop: number;
      if (name === 'xchg') aop = BPF_XCHG;
      else if (name === 'cmpxchg') aop = BPF_CMPXCHG;
      else {
        const found = Object.entries(ATOMIC_NAMES).find(([, v]) => v === name);
        if (found === undefined) fail(name, `unknown atomic operation "${name}"`);
        aop = Number(found[0]) | (am[1] === undefined ? 0 : BPF_FETCH);
      }
      const [d, off] = memOperand(am[4] as string);
      this.out.push(insn(BPF_STX | BPF_ATOMIC | sz, d, reg(am[5] as string), off, aop));
      return;
    }
    const end = /^(le|be|swap|bswap)(16|32|64)$/.exec(mnemonic);
    if (end !== null) {
      need(1);
      const kind = end[1] as string;
      const code =
        kind === 'le'
          ? BPF_ALU | BPF_END
          : kind === 'be'
            ? BPF_ALU | BPF_END | BPF_X
            : BPF_ALU64 | BPF_END;
      this.out.push(insn(code, reg(ops[0] as string), 0, 0, Number(end[2])));
      return;
    }
    const movsx = /^movsx(8|16|32)(32|64)$/.exec(mnemonic);
    if (movsx !== null) {
      need(2);
      const k = movsx[2] === '64' ? BPF_ALU64 : BPF_ALU;
      this.out.push(
        insn(k | BPF_MOV | BPF_X, reg(ops[0] as string), reg(ops[1] as string), Number(movsx[1])),
      );
      return;
    }
    const alu = /^([a-z]+?)(32)?$/.exec(mnemonic);
    const base = alu?.[1] as string;
    if (alu !== null && (CONF_ALU[base] !== undefined || base === 'neg')) {
      const k = alu[2] === undefined ? BPF_ALU64 : BPF_ALU;
      if (base === 'neg') {
        need(1);
        this.out.push(insn(k | BPF_NEG, reg(ops[0] as string)));
        return;
      }
      need(2);
      const o = CONF_ALU[base] as number;
      const isReg = (ops[1] as string).startsWith('%');
      const signed = base === 'sdiv' || base === 'smod' ? 1 : 0;
      this.out.push(
        insn(
          k | o | (isReg ? BPF_X : BPF_K),
          reg(ops[0] as string),
          isReg ? reg(ops[1] as string) : 0,
          signed,
          isReg ? 0 : imm32(ops[1] as string),
        ),
      );
      return;
    }
    fail(mnemonic, `unknown mnemonic "${mnemonic}"`);
  }

  llvm(text: string): void {
    const t = text.replace(/\s+/g, ' ').trim();
    const N = '([+-]?(?:0x[0-9a-fA-F]+|\\d+))';
    const R = '([rw]\\d+)';
    const pfx = (tok: string): string => tok[0] as string;
    const rn = (tok: string): number => reg(tok, pfx(tok));
    const width = (tok: string, want: string): void => {
      if (pfx(tok) !== want)
        fail(tok, `expected a ${want === 'r' ? '64' : '32'}-bit register, got "${tok}"`);
    };
    let m: RegExpExecArray | null;
    if (t === 'exit') {
      this.out.push(insn(BPF_JMP | 0x90));
      return;
    }
    if ((m = /^call (?:(kfunc) )?(pc)?([+-]?\d+|[A-Za-z_.$][\w.$]*)$/.exec(t)) !== null) {
      const local = m[2] !== undefined || !/^[+-]?\d+$/.test(m[3] as string);
      if (local) this.out.push(insn(BPF_JMP | 0x80, 0, 1, 0, this.target(m[3] as string, true)));
      else
        this.out.push(
          insn(BPF_JMP | 0x80, 0, m[1] === undefined ? 0 : 2, 0, imm32(m[3] as string)),
        );
      return;
    }
    if ((m = /^callx (r\d+)$/.exec(t)) !== null) {
      this.out.push(insn(BPF_JMP | 0x80 | BPF_X, rn(m[1] as string)));
      return;
    }
    if ((m = /^(goto|gotol) (\S+)$/.exec(t)) !== null) {
      const long = m[1] === 'gotol';
      const v = this.target(m[2] as string, long);
      this.out.push(long ? insn(BPF_JMP32, 0, 0, 0, v) : insn(BPF_JMP, 0, 0, v));
      return;
    }
    if (
      (m = new RegExp(`^if ${R} (==|!=|>=|<=|>|<|s>=|s<=|s>|s<|&) (?:${R}|${N}) goto (\\S+)$`).exec(
        t,
      )) !== null
    ) {
      const d = m[1] as string;
      const o = Object.entries(JMP_OPS).find(([, v]) => v === m?.[2]);
      const k = pfx(d) === 'r' ? BPF_JMP : BPF_JMP32;
      if (m[3] !== undefined) width(m[3], pfx(d));
      const off = this.target(m[5] as string, false);
      const isReg = m[3] !== undefined;
      this.out.push(
        insn(
          k | Number((o as [string, string])[0]) | (isReg ? BPF_X : BPF_K),
          rn(d),
          isReg ? rn(m[3] as string) : 0,
          off,
          isReg ? 0 : imm32(m[4] as string),
        ),
      );
      return;
    }
    if ((m = new RegExp(`^r(\\d+) = ${N} ll$`).exec(t)) !== null) {
      const raw = bigNum(m[2] as string);
      if (raw >= 1n << 64n || raw < -(1n << 63n))
        fail(m[2] as string, 'immediate does not fit in 64 bits');
      const v = BigInt.asUintN(64, raw);
      const lo = Number(v & 0xffffffffn) | 0;
      const hi = Number(v >> 32n) | 0;
      this.out.push(
        insn(BPF_LD | BPF_DW, reg(`r${m[1]}`, 'r'), 0, 0, lo, hi),
        insn(0, 0, 0, 0, hi),
      );
      return;
    }
    if ((m = new RegExp(`^r(\\d+) = ([a-z_]+)\\[${N}, ${N}\\] ll$`).exec(t)) !== null) {
      const src = LDDW_PSEUDO.indexOf(m[2] as string);
      if (src < 1) fail(m[2] as string, `unknown lddw source "${m[2]}"`);
      const hi = imm32(m[4] as string);
      this.out.push(
        insn(BPF_LD | BPF_DW, reg(`r${m[1]}`, 'r'), src, 0, imm32(m[3] as string), hi),
        insn(0, 0, 0, 0, hi),
      );
      return;
    }
    if (
      (m = new RegExp(`^${R} = \\*\\(([us])(8|16|32|64) \\*\\)\\((r\\d+) ([+-]) ${N}\\)$`).exec(
        t,
      )) !== null
    ) {
      width(m[1] as string, 'r');
      const sx = m[2] === 's';
      if (sx && m[3] === '64') fail('s64', 'there is no sign-extending 64-bit load');
      const off = off16(`${m[5]}${(m[6] as string).replace(/^[+-]/, '')}`);
      const code = BPF_LDX | (sx ? BPF_MEMSX : BPF_MEM) | (TYPE_SIZES[m[3] as string] as number);
      this.out.push(insn(code, rn(m[1] as string), rn(m[4] as string), off));
      return;
    }
    if (
      (m = new RegExp(`^\\*\\(u(8|16|32|64) \\*\\)\\((r\\d+) ([+-]) ${N}\\) = (?:${R}|${N})$`).exec(
        t,
      )) !== null
    ) {
      const sz = TYPE_SIZES[m[1] as string] as number;
      const off = off16(`${m[3]}${(m[4] as string).replace(/^[+-]/, '')}`);
      if (m[5] !== undefined)
        this.out.push(insn(BPF_STX | BPF_MEM | sz, rn(m[2] as string), rn(m[5]), off));
      else
        this.out.push(
          insn(BPF_ST | BPF_MEM | sz, rn(m[2] as string), 0, off, imm32(m[6] as string)),
        );
      return;
    }
    if (
      (m = new RegExp(
        `^lock \\*\\(u(32|64) \\*\\)\\((r\\d+) ([+-]) ${N}\\) (\\+=|\\|=|&=|\\^=) ${R}$`,
      ).exec(t)) !== null
    ) {
      const sz = m[1] === '64' ? BPF_DW : BPF_W;
      width(m[6] as string, sz === BPF_DW ? 'r' : 'w');
      const aop = Number(
        (Object.entries(ALU_OPS).find(([, v]) => v === m?.[5]) as [string, string])[0],
      );
      const off = off16(`${m[3]}${(m[4] as string).replace(/^[+-]/, '')}`);
      this.out.push(
        insn(BPF_STX | BPF_ATOMIC | sz, rn(m[2] as string), rn(m[6] as string), off, aop),
      );
      return;
    }
    const ref = `\\((r\\d+) ([+-]) ${N}\\)`;
    if (
      (m = new RegExp(
        `^${R} = atomic_fetch_(add|or|and|xor)\\(\\(u(32|64) \\*\\)${ref}, ${R}\\)$`,
      ).exec(t)) !== null
    ) {
      const sz = m[3] === '64' ? BPF_DW : BPF_W;
      if (m[1] !== m[7])
        fail(m[7] as string, 'atomic_fetch result and operand must be the same register');
      width(m[1] as string, sz === BPF_DW ? 'r' : 'w');
      const aop =
        Number(
          (Object.entries(ATOMIC_NAMES).find(([, v]) => v === m?.[2]) as [string, string])[0],
        ) | BPF_FETCH;
      const off = off16(`${m[5]}${(m[6] as string).replace(/^[+-]/, '')}`);
      this.out.push(
        insn(BPF_STX | BPF_ATOMIC | sz, rn(m[4] as string), rn(m[1] as string), off, aop),
      );
      return;
    }
    const x = new RegExp(
      `^${R} = (xchg|cmpxchg)(32)?_(32|64)\\((r\\d+) ([+-]) ${N}, (?:${R}, )?${R}\\)$`,
    ).exec(t);
    if (x !== null) {
      const sz = x[4] === '64' ? BPF_DW : BPF_W;
      const cmp = x[2] === 'cmpxchg';
      const s = x[9] as string;
      width(s, sz === BPF_DW ? 'r' : 'w');
      if (cmp && (rn(x[1] as string) !== 0 || x[8] === undefined || rn(x[8]) !== 0)) {
        fail(x[1] as string, 'cmpxchg compares with and returns into r0');
      }
      if (!cmp && x[1] !== s) fail(s, 'xchg result and operand must be the same register');
      const off = off16(`${x[6]}${(x[7] as string).replace(/^[+-]/, '')}`);
      this.out.push(
        insn(
          BPF_STX | BPF_ATOMIC | sz,
          rn(x[5] as string),
          rn(s),
          off,
          cmp ? BPF_CMPXCHG : BPF_XCHG,
        ),
      );
      return;
    }
    if ((m = /^r(\d+) = (le|be|bswap)(16|32|64) r(\d+)$/.exec(t)) !== null) {
      if (m[1] !== m[4])
        fail(`r${m[4]}`, 'byte swap works in place: both registers must be the same');
      const code =
        m[2] === 'le'
          ? BPF_ALU | BPF_END
          : m[2] === 'be'
            ? BPF_ALU | BPF_END | BPF_X
            : BPF_ALU64 | BPF_END;
      this.out.push(insn(code, reg(`r${m[1]}`, 'r'), 0, 0, Number(m[3])));
      return;
    }
    if ((m = new RegExp(`^${R} = -${R}$`).exec(t)) !== null) {
      if (m[1] !== m[2])
        fail(m[2] as string, 'negation works in place: both registers must be the same');
      this.out.push(
        insn((pfx(m[1] as string) === 'r' ? BPF_ALU64 : BPF_ALU) | BPF_NEG, rn(m[1] as string)),
      );
      return;
    }
    if ((m = new RegExp(`^${R} = \\(s(8|16|32)\\)${R}$`).exec(t)) !== null) {
      const k = pfx(m[1] as string) === 'r' ? BPF_ALU64 : BPF_ALU;
      width(m[3] as string, pfx(m[1] as string));
      this.out.push(
        insn(k | BPF_MOV | BPF_X, rn(m[1] as string), rn(m[3] as string), Number(m[2])),
      );
      return;
    }
    if (
      (m = new RegExp(
        `^${R} (=|\\+=|-=|\\*=|/=|\\|=|&=|<<=|>>=|%=|\\^=|s>>=|s/=|s%=) (?:${R}|${N})$`,
      ).exec(t)) !== null
    ) {
      const d = m[1] as string;
      const k = pfx(d) === 'r' ? BPF_ALU64 : BPF_ALU;
      const sym = m[2] as string;
      const signed = sym === 's/=' || sym === 's%=';
      const o =
        sym === '='
          ? BPF_MOV
          : Number(
              (
                Object.entries(ALU_OPS).find(([, v]) => v === (signed ? sym.slice(1) : sym)) as [
                  string,
                  string,
                ]
              )[0],
            );
      const isReg = m[3] !== undefined;
      if (isReg) width(m[3] as string, pfx(d));
      this.out.push(
        insn(
          k | o | (isReg ? BPF_X : BPF_K),
          rn(d),
          isReg ? rn(m[3] as string) : 0,
          signed ? 1 : 0,
          isReg ? 0 : imm32(m[4] as string),
        ),
      );
      return;
    }
    fail(t.split(' ')[0] as string, `cannot parse "${t}"`);
  }

  line(raw: string, lineNo: number): AsmError | null {
    this.lineNo = lineNo;
    this.lineText = raw;
    let text = raw.replace(/(#|\/\/|;).*$/, '').trim();
    const lm = /^([A-Za-z_.$][\w.$]*):\s*/.exec(text);
    if (lm !== null) {
      const name = lm[1] as string;
      if (this.labels.has(name) && name !== 'exit') {
        return new AsmError(lineNo, raw.indexOf(name) + 1, `label "${name}" defined twice`);
      }
      this.labels.set(name, this.out.length);
      text = text.slice(lm[0].length).trim();
    }
    if (text === '') return null;
    const isLlvm = /=|^if |^goto|^callx |^lock \*|^call (pc|kfunc)/.test(text);
    const first = this.out.length;
    try {
      if (isLlvm) this.llvm(text);
      else this.conformance(text);
      for (let k = first; k < this.out.length; k++) {
        this.slotLine.push(lineNo);
        this.slotColumn.push(raw.indexOf(text) + 1);
      }
    } catch (e) {
      if (!(e instanceof LineError)) throw e;
      const col = raw.indexOf(e.needle);
      return new AsmError(lineNo, col < 0 ? raw.search(/\S/) + 1 : col + 1, e.what);
    }
    return null;
  }
}

/**
 * Assembles either syntax, line by line (they may even be mixed): the conformance-suite style
 * (`mov %r0, 1`, `ldxw %r0, [%r1+4]`, `jlt %r1, 10, loop`) and LLVM's (`r0 = 1`,
 * `r0 = *(u32 *)(r1 + 4)`, `if r1 < 10 goto +3`). Comments start with #, // or ;.
 */
export function assemble(text: string): Insn[] | AsmError {
  const a = new Assembler();
  const lines = text.split(/\r?\n/);
  for (let k = 0; k < lines.length; k++) {
    const err = a.line(lines[k] as string, k + 1);
    if (err !== null) return err;
  }
  for (const p of a.pending) {
    const at = a.labels.get(p.label);
    if (at === undefined) return new AsmError(p.line, p.column, `undefined label "${p.label}"`);
    const i = a.out[p.slot] as Insn;
    const rel = at - p.slot - 1;
    if (p.useImm) i.imm = rel;
    else if (rel < -32768 || rel > 32767)
      return new AsmError(p.line, p.column, `jump to "${p.label}" is out of 16-bit range`);
    else i.off = rel;
  }
  if (a.out.length === 0) return new AsmError(1, 1, 'no instructions');
  const err = validate(a.out);
  if (err !== null) {
    const at = Number(/insn (\d+)/.exec(err.message)?.[1] ?? 0);
    return new AsmError(
      a.slotLine[at] ?? 1,
      a.slotColumn[at] ?? 1,
      err.message.replace(/^EINVAL: /, ''),
    );
  }
  return a.out;
}
