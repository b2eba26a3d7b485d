import type { ArchName } from './arch.js';
import { ArchError } from './errors.js';

/** The patchable entry every traceable function starts with. */
export interface EntrySiteInfo {
  /** Bytes of the patchable area at the function's start. */
  readonly size: number;
  /** Offset of the patched call instruction from the function start (rec->ip - func). */
  readonly callOffset: number;
  /** Offset execution continues at after the entry, traced or not. */
  readonly bodyOffset: number;
  /** Reach of the call either way from the site, in bytes. */
  readonly reach: number;
}

const SITES: Readonly<Record<ArchName, EntrySiteInfo>> = {
  x86_64: { size: 5, callOffset: 0, bodyOffset: 5, reach: 2 ** 31 },
  i386: { size: 5, callOffset: 0, bodyOffset: 5, reach: 2 ** 31 },
  // -fpatchable-function-entry=2: `mov x9, x30` keeps the caller's lr, the second slot is the bl.
  arm64: { size: 8, callOffset: 4, bodyOffset: 8, reach: 2 ** 27 },
  riscv64: { size: 8, callOffset: 0, bodyOffset: 8, reach: 2 ** 31 },
};

export function entrySiteInfo(arch: ArchName): EntrySiteInfo {
  return SITES[arch];
}

/** x86-64 ideal 5-byte NOP: nopl 0x0(%rax,%rax,1). */
export const X86_64_NOP5 = Uint8Array.of(0x0f, 0x1f, 0x44, 0x00, 0x00);
/** 32-bit x86 5-byte NOP: ds-prefixed leal 0x0(%esi,%eiz,1),%esi. */
export const I386_NOP5 = Uint8Array.of(0x3e, 0x8d, 0x74, 0x26, 0x00);
export const X86_CALL_OPCODE = 0xe8;
export const AARCH64_NOP = 0xd503201f;
/** mov x9, x30 (orr x9, xzr, x30). */
export const AARCH64_MOV_X9_X30 = 0xaa1e03e9;
export const AARCH64_BL = 0x94000000;
/** addi x0, x0, 0. */
export const RISCV_NOP = 0x00000013;
/** auipc t0, 0. */
export const RISCV_AUIPC_T0 = 0x00000297;
/** jalr t0, 0(t0). */
export const RISCV_JALR_T0 = 0x000282e7;

function le32(out: Uint8Array, off: number, v: number): void {
  out[off] = v & 0xff;
  out[off + 1] = (v >>> 8) & 0xff;
  out[off + 2] = (v >>> 16) & 0xff;
  out[off + 3] = (v >>> 24) & 0xff;
}

function rd32(b: Uint8Array, off: number): number {
  return (b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (b[off + 3] << 24)) >>> 0;
}

/** The entry bytes of an untraced function (after ftrace_init has converted the site). */
export function encodeEntryNop(arch: ArchName): Uint8Array {
  switch (arch) {
    case 'x86_64':
      return X86_64_NOP5.slice();
    case 'i386':
      return I386_NOP5.slice();
    case 'arm64': {
      const out = new Uint8Array(8);
      le32(out, 0, AARCH64_MOV_X9_X30);
      le32(out, 4, AARCH64_NOP);
      return out;
    }
    case 'riscv64': {
      const out = new Uint8Array(8);
      le32(out, 0, RISCV_NOP);
      le32(out, 4, RISCV_NOP);
      return out;
    }
  }
}

/**
 * The entry bytes that call `target` from the function at `func`: x86 `call rel32`, arm64
 * `mov x9, x30; bl`, riscv64 `auipc t0; jalr t0`. An unreachable or misaligned target is an
 * ERANGE/EINVAL error value.
 */
export function encodeEntryCall(
  arch: ArchName,
  func: bigint,
  target: bigint,
): Uint8Array | ArchError {
  const site = SITES[arch];
  const from = func + BigInt(site.callOffset);
  const disp = target - from;
  const where = `${arch} entry at 0x${func.toString(16)} -> 0x${target.toString(16)}`;
  switch (arch) {
    case 'x86_64':
    case 'i386': {
      const rel = disp - 5n;
      if (rel < -(2n ** 31n) || rel >= 2n ** 31n) {
        return new ArchError('ERANGE', `${where}: rel32 out of range`);
      }
      const out = new Uint8Array(5);
      out[0] = X86_CALL_OPCODE;
      le32(out, 1, Number(BigInt.asUintN(32, rel)));
      return out;
    }
    case 'arm64': {
      if (disp % 4n !== 0n) return new ArchError('EINVAL', `${where}: target not 4-byte aligned`);
      const imm = disp / 4n;
      if (imm < -(2n ** 25n) || imm >= 2n ** 25n) {
        return new ArchError('ERANGE', `${where}: bl reaches only +/-128 MiB`);
      }
      const out = new Uint8Array(8);
      le32(out, 0, AARCH64_MOV_X9_X30);
      le32(out, 4, (AARCH64_BL | Number(BigInt.asUintN(26, imm))) >>> 0);
      return out;
    }
    case 'riscv64': {
      if (disp % 2n !== 0n) return new ArchError('EINVAL', `${where}: target not 2-byte aligned`);
      // jalr adds a sign-extended 12-bit immediate, so round the auipc part to the nearest 4 KiB.
      const hi = (disp + 0x800n) >> 12n;
      const lo = disp - (hi << 12n);
      if (hi < -(2n ** 19n) || hi >= 2n ** 19n) {
        return new ArchError('ERANGE', `${where}: auipc+jalr reaches only +/-2 GiB`);
      }
      const out = new Uint8Array(8);
      le32(out, 0, (RISCV_AUIPC_T0 | (Number(BigInt.asUintN(20, hi)) << 12)) >>> 0);
      le32(out, 4, (RISCV_JALR_T0 | (Number(BigInt.asUintN(12, lo)) << 20)) >>> 0);
      return out;
    }
  }
}

export const ENTRY_NOP = 0;
export const ENTRY_CALL = 1;
export const ENTRY_INVALID = 2;
export type EntryKind = typeof ENTRY_NOP | typeof ENTRY_CALL | typeof ENTRY_INVALID;

/**
 * Decodes entry sites without allocating: the CPU runs it on every call. After decode(), `disp`
 * holds the call target minus the function's address when the kind is ENTRY_CALL.
 */
export class EntryDecoder {
  declare readonly arch: ArchName;
  kind: EntryKind = ENTRY_INVALID;
  disp = 0;
  declare private readonly code: number;

  constructor(arch: ArchName) {
    this.arch = arch;
    this.code = arch === 'x86_64' ? 0 : arch === 'i386' ? 1 : arch === 'arm64' ? 2 : 3;
  }

  /** Decodes the site of the function whose first byte is text[off]. */
  decode(text: Uint8Array, off: number): EntryKind {
    const b = text;
    switch (this.code) {
      case 0:
      case 1: {
        const op = b[off];
        if (op === X86_CALL_OPCODE) {
          this.disp = 5 + (rd32(b, off + 1) | 0);
          return (this.kind = ENTRY_CALL);
        }
        const nop = this.code === 0 ? X86_64_NOP5 : I386_NOP5;
        const isNop =
          op === nop[0] &&
          b[off + 1] === nop[1] &&
          b[off + 2] === nop[2] &&
          b[off + 3] === nop[3] &&
          b[off + 4] === nop[4];
        return (this.kind = isNop ? ENTRY_NOP : ENTRY_INVALID);
      }
      case 2: {
        if (rd32(b, off) !== AARCH64_MOV_X9_X30) return (this.kind = ENTRY_INVALID);
        const i1 = rd32(b, off + 4);
        if (i1 === AARCH64_NOP) return (this.kind = ENTRY_NOP);
        if ((i1 & 0xfc000000) >>> 0 !== AARCH64_BL) return (this.kind = ENTRY_INVALID);
        this.disp = 4 + ((i1 << 6) >> 6) * 4;
        return (this.kind = ENTRY_CALL);
      }
      default: {
        const i0 = rd32(b, off);
        const i1 = rd32(b, off + 4);
        if (i0 === RISCV_NOP && i1 === RISCV_NOP) return (this.kind = ENTRY_NOP);
        if ((i0 & 0xfff) !== RISCV_AUIPC_T0 || (i1 & 0xfffff) !== RISCV_JALR_T0) {
          return (this.kind = ENTRY_INVALID);
        }
        this.disp = ((i0 & 0xfffff000) | 0) + (i1 >> 20);
        return (this.kind = ENTRY_CALL);
      }
    }
  }
}

/** A decoded entry site, for the control plane and for people. */
export type DecodedEntry =
  | { readonly kind: 'nop'; readonly text: string }
  | { readonly kind: 'call'; readonly target: bigint; readonly text: string };

const hex = (v: bigint): string => `0x${BigInt.asUintN(64, v).toString(16)}`;

/** Decodes the entry site of the function at `func`, with a disassembly line. */
export function decodeEntry(
  arch: ArchName,
  bytes: Uint8Array,
  func: bigint,
): DecodedEntry | ArchError {
  const site = SITES[arch];
  if (bytes.length < site.size) {
    return new ArchError(
      'EINVAL',
      `${arch} entry site needs ${site.size} bytes, got ${bytes.length}`,
    );
  }
  const d = new EntryDecoder(arch);
  const kind = d.decode(bytes, 0);
  if (kind === ENTRY_INVALID) {
    const shown = Array.from(bytes.subarray(0, site.size), (x) => x.toString(16).padStart(2, '0'));
    return new ArchError(
      'EINVAL',
      `${arch} entry at ${hex(func)} is neither the nop nor a call: ${shown.join(' ')}`,
    );
  }
  const nopText: Record<ArchName, string> = {
    x86_64: 'nopl 0x0(%rax,%rax,1)',
    i386: 'leal %ds:0x0(%esi,%eiz,1),%esi',
    arm64: 'mov x9, x30; nop',
    riscv64: 'nop; nop',
  };
  if (kind === ENTRY_NOP) return { kind: 'nop', text: nopText[arch] };
  const target = BigInt.asUintN(arch === 'i386' ? 32 : 64, func + BigInt(d.disp));
  const callText: Record<ArchName, string> = {
    x86_64: `call ${hex(target)}`,
    i386: `call ${hex(target)}`,
    arm64: `mov x9, x30; bl ${hex(target)}`,
    riscv64: `auipc t0, ${hex(BigInt((rd32(bytes, 0) >>> 12) & 0xfffff))}; jalr t0, ${rd32(bytes, 4) >> 20}(t0)`,
  };
  return { kind: 'call', target, text: callText[arch] };
}
