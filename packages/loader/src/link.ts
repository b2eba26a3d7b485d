import { type Btf, type BtfType, typeName } from '@tracelab/btf';
import {
  BPF_CALL,
  BPF_JMP,
  BPF_PSEUDO_BTF_ID,
  BPF_PSEUDO_CALL,
  BPF_PSEUDO_FUNC,
  BPF_PSEUDO_KFUNC_CALL,
  BPF_PSEUDO_MAP_IDX,
  BPF_PSEUDO_MAP_IDX_VALUE,
  type Insn,
  isLddw,
  validate,
} from '@tracelab/vm';
import { CORE_RELO_KIND_NAMES, type LineInfo } from './btf-ext.js';
import {
  type CoreResult,
  POISON_HELPER_ID,
  calcCoreRelo,
  patchCoreInsn,
  skipMods,
  typesAreCompat,
} from './core.js';
import { LoaderError, wrapErrors } from './errors.js';
import { cloneInsns } from './insns.js';
import type { ExternDef, FuncDef, ParsedObject, ProgSection, ProgramDef } from './object.js';

/** Values the environment supplies for externs. */
export interface ExternValues {
  /** CONFIG_* values and LINUX_KERNEL_VERSION for __kconfig externs. */
  kconfig?: Record<string, number | bigint | boolean | string>;
  /** Address of a __ksym variable, or undefined when the kernel has none. */
  ksym?: (name: string) => bigint | undefined;
}

export interface LinkOptions extends ExternValues {
  /** BTF CO-RE relocations are resolved against (vmlinux or the simulated kernel's). */
  targetBtf?: Btf;
}

/** One applied CO-RE relocation, for logs and `obj info`. */
export interface CoreRecord extends CoreResult {
  section: string;
  insnIdx: number;
  typeId: number;
  accessStr: string;
  kindName: string;
}

export interface LinkedFuncInfo {
  insnOff: number;
  typeId: number;
  name: string;
}

/** A program with its subprograms appended and every relocation applied. */
export interface LinkedProgram {
  def: ProgramDef;
  insns: Insn[];
  /** Where each function (the entry first) starts in insns. */
  funcs: { name: string; insnOff: number }[];
  funcInfo: LinkedFuncInfo[];
  lineInfo: LineInfo[];
  /** Map indexes (into the object's map list) the program references. */
  usedMaps: number[];
}

export interface LinkResult {
  programs: LinkedProgram[];
  coreRelos: CoreRecord[];
  /** Bytes of the .kconfig map as the externs' values fill it (undefined without kconfig externs). */
  kconfigData: Uint8Array | undefined;
}

function kconfigValue(e: ExternDef, values: ExternValues): bigint | undefined {
  const v = values.kconfig?.[e.name];
  if (v === undefined) return undefined;
  if (typeof v === 'boolean') return v ? 1n : 0n;
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') return BigInt(Math.trunc(v));
  // Tristate and bool CONFIG values as .config spells them.
  if (v === 'y') return 1n;
  if (v === 'm') return 2n;
  if (v === 'n') return 0n;
  if (/^-?(0x[0-9a-f]+|\d+)$/i.test(v)) return BigInt(v);
  throw new LoaderError('EINVAL', `kconfig value '${v}' of ${e.name} is not a number or y/m/n`, {
    section: '.kconfig',
    offset: e.offset,
  });
}

/** Fills the .kconfig map; a missing strong extern is ENOENT, a missing weak one is 0. */
export function fillKconfig(obj: ParsedObject, values: ExternValues): Uint8Array | undefined {
  const map = obj.maps.find((m) => m.source === 'kconfig');
  if (map === undefined) return undefined;
  const data = new Uint8Array(map.valueSize);
  const dv = new DataView(data.buffer);
  const le = obj.elf.littleEndian;
  for (const e of obj.externs) {
    if (e.kind !== 'kconfig') continue;
    const v = kconfigValue(e, values);
    if (v === undefined) {
      if (e.weak) continue;
      throw new LoaderError('ENOENT', `unresolved kconfig extern ${e.name}`, {
        section: '.kconfig',
        offset: e.offset,
      });
    }
    switch (e.size) {
      case 1:
        dv.setUint8(e.offset, Number(BigInt.asUintN(8, v)));
        break;
      case 2:
        dv.setUint16(e.offset, Number(BigInt.asUintN(16, v)), le);
        break;
      case 4:
        dv.setUint32(e.offset, Number(BigInt.asUintN(32, v)), le);
        break;
      case 8:
        dv.setBigUint64(e.offset, BigInt.asUintN(64, v), le);
        break;
      default:
        throw new LoaderError('EINVAL', `kconfig extern ${e.name} has unsupported size ${e.size}`, {
          section: '.kconfig',
          offset: e.offset,
        });
    }
  }
  return data;
}

function applyCore(obj: ParsedObject, code: Map<number, Insn[]>, opts: LinkOptions): CoreRecord[] {
  const out: CoreRecord[] = [];
  const ext = obj.btfExt;
  if (ext === undefined || ext.coreRelos.size === 0) return out;
  const local = obj.btf as Btf;
  for (const [secName, relos] of ext.coreRelos) {
    const ps = [...obj.code.values()].find((s) => s.name === secName);
    if (ps === undefined)
      throw new LoaderError('EINVAL', `CO-RE relocations for missing code section '${secName}'`, {
        section: '.BTF.ext',
      });
    const insns = code.get(ps.index) as Insn[];
    for (const relo of relos) {
      const where = { section: secName, offset: relo.insnOff * 8 };
      if (relo.insnOff >= insns.length)
        throw new LoaderError('EINVAL', `CO-RE relocation past the end of the section`, where);
      const target = opts.targetBtf;
      const needsTarget = relo.kind !== 6;
      if (needsTarget && target === undefined)
        throw new LoaderError('ESRCH', 'CO-RE relocation needs a target BTF (none given)', where);
      const res = wrapErrors(where, `CO-RE relocation <${CORE_RELO_KIND_NAMES[relo.kind]}>`, () => {
        const r = calcCoreRelo(local, target ?? local, relo);
        patchCoreInsn(insns, relo.insnOff, r);
        return r;
      });
      out.push({
        ...res,
        section: secName,
        insnIdx: relo.insnOff,
        typeId: relo.typeId,
        accessStr: relo.accessStr,
        kindName: CORE_RELO_KIND_NAMES[relo.kind] as string,
      });
    }
  }
  return out;
}

function setLddw(insns: Insn[], idx: number, src: number, lo: number, hi: number): void {
  const i = insns[idx] as Insn;
  const n = insns[idx + 1] as Insn;
  i.src = src;
  i.imm = lo | 0;
  i.imm2 = hi | 0;
  n.imm = hi | 0;
}

/**
 * Applies CO-RE, map, data, extern and call relocations and appends each program's subprograms
 * (bpf_object__relocate): a called function is copied once per program, after the entry
 * function, and call immediates are rewritten to the new distances. Map references become
 * lddw src BPF_PSEUDO_MAP_IDX / BPF_PSEUDO_MAP_IDX_VALUE with the map's index in the object.
 */
export function linkObject(obj: ParsedObject, opts: LinkOptions = {}): LinkResult {
  const code = new Map<number, Insn[]>();
  for (const [k, ps] of obj.code) code.set(k, cloneInsns(ps.insns));
  const coreRelos = applyCore(obj, code, opts);
  const kconfigData = fillKconfig(obj, opts);
  const kconfigMap = obj.maps.findIndex((m) => m.source === 'kconfig');
  const programs = obj.programs.map((p) =>
    wrapErrors({ section: p.section, offset: p.insnOff * 8 }, `program '${p.name}'`, () =>
      linkProgram(obj, code, p, opts, kconfigMap),
    ),
  );
  return { programs, coreRelos, kconfigData };
}

/**
 * A kfunc call becomes call src BPF_PSEUDO_KFUNC_CALL with the target's FUNC id; taking a
 * kfunc's address (the `if (kfunc)` test of a weak one) loads that id, 0 when it is missing.
 * A missing weak kfunc's call is poisoned as libbpf does; a missing strong one is ENOENT.
 */
function linkKfunc(
  out: Insn[],
  idx: number,
  e: ExternDef,
  target: Btf | undefined,
  where: { section: string; offset: number },
): void {
  const id = target?.find(e.name, 'func');
  if (id === undefined && !e.weak)
    throw new LoaderError(
      'ENOENT',
      `unresolved kfunc '${e.name}' (no FUNC in the target BTF)`,
      where,
    );
  const insn = out[idx] as Insn;
  if (isLddw(insn)) {
    setLddw(out, idx, 0, id ?? 0, 0);
    return;
  }
  insn.src = id === undefined ? 0 : BPF_PSEUDO_KFUNC_CALL;
  insn.imm = id ?? POISON_HELPER_ID;
  insn.off = 0;
}

/**
 * A typed __ksym variable (bpf_object__resolve_ksym_var_btf_id): the kernel's VAR of that name,
 * whose type must be compatible with the extern's, becomes an lddw of BPF_PSEUDO_BTF_ID with
 * the VAR's id in the target BTF (the kernel resolves the address). A __weak one the kernel
 * lacks loads address 0.
 */
function linkTypedKsym(
  out: Insn[],
  idx: number,
  e: ExternDef,
  local: Btf,
  target: Btf | undefined,
  where: { section: string; offset: number },
): void {
  const id = target?.find(e.name, 'var');
  if (target === undefined || id === undefined) {
    if (!e.weak)
      throw new LoaderError(
        'ENOENT',
        `extern (var ksym) '${e.name}': not found in kernel BTF`,
        where,
      );
    setLddw(out, idx, 0, 0, 0);
    return;
  }
  const v = target.type(id) as Extract<BtfType, { kind: 'var' }>;
  const localId = skipMods(local, e.typeId);
  const targetId = skipMods(target, v.type);
  if (!typesAreCompat(local, localId, target, targetId)) {
    const describe = (btf: Btf, tid: number): string => {
      const t = btf.type(tid);
      return `[${tid}] ${t === undefined ? 'UNKN' : t.kind.toUpperCase()} ${t === undefined ? '' : typeName(t)}`;
    };
    throw new LoaderError(
      'EINVAL',
      `extern (var ksym) '${e.name}': incompatible types, expected ${describe(local, localId)}, but kernel has ${describe(target, targetId)}`,
      where,
    );
  }
  setLddw(out, idx, BPF_PSEUDO_BTF_ID, id, 0);
}

function funcAt(ps: ProgSection, insn: number): FuncDef | undefined {
  return ps.funcs.find((f) => insn >= f.insnOff && insn < f.insnOff + f.insnCnt);
}

function linkProgram(
  obj: ParsedObject,
  code: Map<number, Insn[]>,
  prog: ProgramDef,
  opts: LinkOptions,
  kconfigMap: number,
): LinkedProgram {
  const out: Insn[] = [];
  const placed = new Map<string, number>();
  const order: { ps: ProgSection; f: FuncDef; start: number }[] = [];
  const funcInfo: LinkedFuncInfo[] = [];
  const lineInfo: LineInfo[] = [];
  const usedMaps = new Set<number>();

  const place = (ps: ProgSection, f: FuncDef): number => {
    const key = `${ps.index}:${f.insnOff}`;
    const have = placed.get(key);
    if (have !== undefined) return have;
    const start = out.length;
    placed.set(key, start);
    const src = code.get(ps.index) as Insn[];
    for (let k = 0; k < f.insnCnt; k++) out.push({ ...(src[f.insnOff + k] as Insn) });
    order.push({ ps, f, start });
    const ext = obj.btfExt;
    if (ext !== undefined) {
      for (const fi of ext.funcInfo.get(ps.name) ?? []) {
        if (fi.insnOff >= f.insnOff && fi.insnOff < f.insnOff + f.insnCnt) {
          funcInfo.push({
            insnOff: start + fi.insnOff - f.insnOff,
            typeId: fi.typeId,
            name: obj.btf?.name(fi.typeId) ?? '',
          });
        }
      }
      for (const li of ext.lineInfo.get(ps.name) ?? []) {
        if (li.insnOff >= f.insnOff && li.insnOff < f.insnOff + f.insnCnt)
          lineInfo.push({ ...li, insnOff: start + li.insnOff - f.insnOff });
      }
    }
    return start;
  };

  const progSec = obj.code.get(prog.sectionIndex) as ProgSection;
  place(progSec, prog);
  for (let q = 0; q < order.length; q++) {
    const { ps, f, start } = order[q] as { ps: ProgSection; f: FuncDef; start: number };
    const end = f.insnOff + f.insnCnt;
    const relocated = new Set<number>();
    for (const r of ps.relocs) {
      if (r.insnIdx < f.insnOff || r.insnIdx >= end) continue;
      const idx = start + r.insnIdx - f.insnOff;
      relocated.add(r.insnIdx);
      const where = { section: ps.name, offset: r.insnIdx * 8 };
      switch (r.kind) {
        case 'call':
        case 'subprog_addr': {
          const tps = obj.code.get(r.targetSection) as ProgSection;
          const tf = funcAt(tps, r.targetInsn) as FuncDef;
          const t = place(tps, tf);
          const rel = t - (idx + 1);
          if (r.kind === 'call') (out[idx] as Insn).imm = rel;
          else setLddw(out, idx, BPF_PSEUDO_FUNC, rel, 0);
          break;
        }
        case 'map':
          setLddw(out, idx, BPF_PSEUDO_MAP_IDX, r.mapIndex, 0);
          usedMaps.add(r.mapIndex);
          break;
        case 'map_value':
          setLddw(out, idx, BPF_PSEUDO_MAP_IDX_VALUE, r.mapIndex, r.offset);
          usedMaps.add(r.mapIndex);
          break;
        case 'extern': {
          const e = obj.externs[r.externIndex] as ExternDef;
          if (e.kind === 'kconfig') {
            setLddw(out, idx, BPF_PSEUDO_MAP_IDX_VALUE, kconfigMap, e.offset);
            usedMaps.add(kconfigMap);
            break;
          }
          if (e.isFunc) {
            linkKfunc(out, idx, e, opts.targetBtf, where);
            break;
          }
          if (obj.btf !== undefined && skipMods(obj.btf, e.typeId) !== 0) {
            linkTypedKsym(out, idx, e, obj.btf, opts.targetBtf, where);
            break;
          }
          const addr = opts.ksym?.(e.name);
          if (addr === undefined && !e.weak)
            throw new LoaderError('ENOENT', `unresolved ksym '${e.name}'`, where);
          const v = BigInt.asUintN(64, addr ?? 0n);
          setLddw(out, idx, 0, Number(v & 0xffffffffn), Number(v >> 32n));
          break;
        }
      }
    }
    // Calls to static functions of the same section may carry no relocation.
    for (let k = f.insnOff; k < end; k++) {
      const i = (code.get(ps.index) as Insn[])[k] as Insn;
      if (relocated.has(k) || i.code !== (BPF_JMP | BPF_CALL) || i.src !== BPF_PSEUDO_CALL)
        continue;
      const t = k + 1 + i.imm;
      const tf = funcAt(ps, t);
      if (tf === undefined || tf.insnOff !== t)
        throw new LoaderError(
          'EINVAL',
          `call at insn ${k} targets insn ${t}, not a function start`,
          {
            section: ps.name,
            offset: k * 8,
          },
        );
      if (t >= f.insnOff && t < end) continue;
      const idx = start + k - f.insnOff;
      (out[idx] as Insn).imm = place(ps, tf) - (idx + 1);
    }
  }
  const err = validate(cloneInsns(out));
  if (err !== null) {
    throw new LoaderError('EINVAL', `program '${prog.name}': ${err.message}`, {
      section: prog.section,
      offset: prog.insnOff * 8,
    });
  }
  return {
    def: prog,
    insns: out,
    funcs: order.map((o) => ({ name: o.f.name, insnOff: o.start })),
    funcInfo,
    lineInfo,
    usedMaps: [...usedMaps].sort((a, b) => a - b),
  };
}
