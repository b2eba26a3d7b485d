import {
  BTF_FUNC_EXTERN,
  BTF_KIND,
  type Btf,
  type BtfError,
  parseBtf,
  validateBtf,
} from '@tracelab/btf';
import { BPF_CALL, BPF_JMP, BPF_PSEUDO_CALL, type Insn, isLddw } from '@tracelab/vm';
import { type BtfExt, parseBtfExt } from './btf-ext.js';
import {
  type ElfFile,
  type ElfSection,
  type ElfSymbol,
  R_BPF_64_32,
  R_BPF_64_64,
  R_BPF_64_ABS64,
  RELOC_NAMES,
  SHF_ALLOC,
  SHF_EXECINSTR,
  SHF_WRITE,
  SHN_ABS,
  SHN_COMMON,
  SHN_UNDEF,
  SHT_NOBITS,
  SHT_PROGBITS,
  STB_GLOBAL,
  STB_LOCAL,
  STB_WEAK,
  STT_FUNC,
  STT_SECTION,
  parseElf,
} from './elf.js';
import { LoaderError, wrapErrors } from './errors.js';
import { decodeInsns } from './insns.js';
import { BPF_PROG_TYPE, type SectionInfo, sectionInfo } from './sections.js';

/** enum bpf_map_type values the loader names. */
export const BPF_MAP_TYPE: Record<string, number> = {
  UNSPEC: 0,
  HASH: 1,
  ARRAY: 2,
  PROG_ARRAY: 3,
  PERF_EVENT_ARRAY: 4,
  PERCPU_HASH: 5,
  PERCPU_ARRAY: 6,
  STACK_TRACE: 7,
  CGROUP_ARRAY: 8,
  LRU_HASH: 9,
  LRU_PERCPU_HASH: 10,
  LPM_TRIE: 11,
  ARRAY_OF_MAPS: 12,
  HASH_OF_MAPS: 13,
  QUEUE: 22,
  STACK: 23,
  TASK_STORAGE: 29,
  RINGBUF: 27,
};

export function mapTypeName(type: number): string {
  for (const [k, v] of Object.entries(BPF_MAP_TYPE)) if (v === type) return k.toLowerCase();
  return `type_${type}`;
}

/** Map flags libbpf sets on global data maps. */
export const BPF_F_RDONLY_PROG = 1 << 7;
export const BPF_F_MMAPABLE = 1 << 10;

/** A variable inside a global-data map, located by its ELF symbol. */
export interface DataVar {
  name: string;
  offset: number;
  size: number;
  typeId: number;
}

export type MapSource = 'btf' | 'legacy' | 'data' | 'kconfig';

/** A map as the object declares it (bpf_map_def plus its BTF and initial contents). */
export interface MapDef {
  name: string;
  source: MapSource;
  /** ELF section the definition or the data came from. */
  section: string;
  /** Offset of the definition inside its section (0 for data maps). */
  sectionOffset: number;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  mapFlags: number;
  pinning: number;
  keyTypeId: number;
  valueTypeId: number;
  /** Initial value of a data map (whole section); undefined for other maps. */
  data: Uint8Array | undefined;
  vars: DataVar[];
  /**
   * Slots a BTF map's `values` initialiser fills: prog array slots name programs, map-in-map
   * slots name maps of the object.
   */
  initSlots: { slot: number; symbol: string }[];
  /** Map-in-map: the inner map template `__array(values, struct inner)` declares. */
  inner: MapDef | undefined;
}

/** An extern the object needs from its environment. */
export interface ExternDef {
  name: string;
  kind: 'kconfig' | 'ksym';
  weak: boolean;
  typeId: number;
  size: number;
  /** Offset inside the .kconfig map (kconfig externs only). */
  offset: number;
  isFunc: boolean;
}

/** One relocation of a program section, classified as libbpf's bpf_program__record_reloc does. */
export interface ProgReloc {
  /** Instruction index inside the section. */
  insnIdx: number;
  type: number;
  symbol: string;
  kind: 'map' | 'map_value' | 'call' | 'subprog_addr' | 'extern';
  /** Map index (map and map_value). */
  mapIndex: number;
  /** Byte offset into the map value (map_value). */
  offset: number;
  /** Target instruction inside .text or the same section (call, subprog_addr). */
  targetSection: number;
  targetInsn: number;
  /** Extern index (extern). */
  externIndex: number;
}

/** A BPF function: an entry program or a subprogram in .text. */
export interface FuncDef {
  name: string;
  sectionIndex: number;
  section: string;
  /** First instruction index inside the section, and the count. */
  insnOff: number;
  insnCnt: number;
  global: boolean;
}

/** A program as the object declares it. */
export interface ProgramDef extends FuncDef {
  info: SectionInfo;
  progType: number;
}

export interface ProgSection {
  index: number;
  name: string;
  insns: Insn[];
  relocs: ProgReloc[];
  funcs: FuncDef[];
}

/** A parsed BPF ELF object, before any relocation is applied. */
export interface ParsedObject {
  elf: ElfFile;
  license: string;
  kernVersion: number;
  btf: Btf | undefined;
  btfExt: BtfExt | undefined;
  programs: ProgramDef[];
  maps: MapDef[];
  externs: ExternDef[];
  /** Sections holding code, keyed by section index (.text included). */
  code: Map<number, ProgSection>;
}

const DATA_PREFIXES = ['.data', '.rodata', '.bss'];
const isDataSection = (name: string): boolean =>
  DATA_PREFIXES.some((p) => name === p || name.startsWith(`${p}.`));

function cString(data: Uint8Array): string {
  const end = data.indexOf(0);
  return String.fromCharCode(...data.subarray(0, end < 0 ? data.length : end));
}

/** Parses an object: ELF, BTF, .BTF.ext, programs, maps, externs and relocations. */
export function parseObject(bytes: Uint8Array): ParsedObject {
  const elf = parseElf(bytes);
  const le = elf.littleEndian;
  let license = '';
  let kernVersion = 0;
  let btf: Btf | undefined;
  let btfExt: BtfExt | undefined;
  const lic = elf.sectionByName('license');
  if (lic !== undefined) license = cString(lic.data);
  const ver = elf.sectionByName('version');
  if (ver !== undefined) {
    if (ver.size !== 4)
      throw new LoaderError('EINVAL', `version section has ${ver.size} bytes, expected 4`, {
        section: 'version',
      });
    kernVersion = new DataView(ver.data.buffer, ver.data.byteOffset, 4).getUint32(0, le);
  }
  const btfSec = elf.sectionByName('.BTF');
  if (btfSec !== undefined) {
    btf = wrapErrors({ section: '.BTF' }, 'invalid BTF', () => parseBtf(btfSec.data).index());
    checkObjectBtf(btf);
  }
  const extSec = elf.sectionByName('.BTF.ext');
  if (extSec !== undefined && btf !== undefined) {
    const b = btf;
    btfExt = wrapErrors({ section: '.BTF.ext' }, 'invalid .BTF.ext', () =>
      parseBtfExt(extSec.data, b),
    );
  }

  const symsBySection = new Map<number, ElfSymbol[]>();
  for (const s of elf.symbols) {
    const list = symsBySection.get(s.shndx);
    if (list) list.push(s);
    else symsBySection.set(s.shndx, [s]);
  }

  const maps: MapDef[] = [];
  const externs = wrapErrors({ section: '.BTF' }, 'externs', () => collectExterns(elf, btf));
  wrapErrors({ section: '.maps' }, 'map definitions', () =>
    collectBtfMaps(elf, btf, symsBySection, maps),
  );
  collectLegacyMaps(elf, symsBySection, maps);
  wrapErrors({ section: '.BTF' }, 'global data', () =>
    collectDataMaps(elf, btf, symsBySection, maps),
  );
  if (externs.some((e) => e.kind === 'kconfig')) maps.push(kconfigMap(externs));

  const code = new Map<number, ProgSection>();
  const programs: ProgramDef[] = [];
  for (const sec of elf.sections) {
    if (sec.type !== SHT_PROGBITS || (sec.flags & SHF_EXECINSTR) === 0 || sec.size === 0) continue;
    const insns = decodeInsns(sec.data, le, sec.name);
    const funcs = (symsBySection.get(sec.index) ?? [])
      .filter((s) => s.type === STT_FUNC)
      .sort((a, b) => a.value - b.value)
      .map((s): FuncDef => {
        if (s.value % 8 !== 0 || s.size % 8 !== 0 || s.value + s.size > sec.size || s.size === 0) {
          throw new LoaderError(
            'EINVAL',
            `function '${s.name}' [0x${s.value.toString(16)}, +0x${s.size.toString(16)}) is misaligned or outside the section`,
            { section: sec.name, offset: s.value },
          );
        }
        return {
          name: s.name,
          sectionIndex: sec.index,
          section: sec.name,
          insnOff: s.value / 8,
          insnCnt: s.size / 8,
          global: s.bind === STB_GLOBAL || s.bind === STB_WEAK,
        };
      });
    if (funcs.length === 0) {
      throw new LoaderError('EINVAL', 'code section without function symbols', {
        section: sec.name,
      });
    }
    code.set(sec.index, { index: sec.index, name: sec.name, insns, relocs: [], funcs });
    if (sec.name === '.text') continue;
    const info = sectionInfo(sec.name);
    for (const f of funcs) {
      if (!f.global) continue;
      programs.push({ ...f, info, progType: BPF_PROG_TYPE[info.def.progType] });
    }
  }
  for (const ps of code.values()) {
    ps.relocs = collectRelocs(elf, ps, code, maps, externs);
  }
  return { elf, license, kernVersion, btf, btfExt, programs, maps, externs, code };
}

/**
 * Errors on what clang emits, the kernel refuses, and libbpf fixes up before load: DATASEC sizes
 * and .ksyms entries, extern FUNCs of kfuncs, static VARs named `func.var`.
 */
function libbpfSanitizes(btf: Btf, e: BtfError): boolean {
  const id = e.typeId;
  if (id === undefined || id <= 0 || id >= btf.typeCount) return false;
  const kind = btf.kind(id);
  if (kind === BTF_KIND.DATASEC) return true;
  if (kind === BTF_KIND.VAR) return /Invalid name/.test(e.message);
  if (kind !== BTF_KIND.FUNC) return false;
  const t = btf.type(id);
  return t?.kind === 'func' && t.linkage === BTF_FUNC_EXTERN;
}

/** Kernel-style validation of the object's BTF, so later lookups cannot fail. */
function checkObjectBtf(btf: Btf): void {
  const errs = wrapErrors({ section: '.BTF' }, 'invalid BTF', () =>
    validateBtf(btf, { maxErrors: 10_000 }).filter((e) => !libbpfSanitizes(btf, e)),
  );
  const e = errs[0];
  if (e !== undefined) {
    throw new LoaderError(e.code === 'E2BIG' ? 'E2BIG' : 'EINVAL', `invalid BTF: ${e.message}`, {
      section: '.BTF',
      ...(e.offset === undefined ? {} : { offset: e.offset }),
    });
  }
}

function dataSecVars(
  btf: Btf | undefined,
  name: string,
): { name: string; typeId: number; size: number }[] {
  if (btf === undefined) return [];
  const id = btf.find(name, 'datasec');
  if (id === undefined) return [];
  const ds = btf.typeOf(id, 'datasec');
  return ds.vars.map((v) => {
    const t = btf.type(v.type);
    return {
      name: t?.kind === 'var' ? t.name : '',
      typeId: t?.kind === 'var' ? t.type : 0,
      size: v.size,
    };
  });
}

function collectExterns(elf: ElfFile, btf: Btf | undefined): ExternDef[] {
  const undef = elf.symbols.filter(
    (s) => s.shndx === SHN_UNDEF && s.index !== 0 && s.name !== '' && s.bind !== STB_LOCAL,
  );
  if (undef.length === 0) return [];
  const kconfig = new Map(dataSecVars(btf, '.kconfig').map((v) => [v.name, v]));
  const ksyms = new Map(dataSecVars(btf, '.ksyms').map((v) => [v.name, v]));
  const out: ExternDef[] = [];
  let off = 0;
  // libbpf sorts kconfig externs by size (biggest first) so the map stays compact; so do we.
  const kc = undef
    .filter((s) => kconfig.has(s.name))
    .sort(
      (a, b) =>
        (kconfig.get(b.name)?.size ?? 0) - (kconfig.get(a.name)?.size ?? 0) ||
        a.name.localeCompare(b.name),
    );
  for (const s of kc) {
    const v = kconfig.get(s.name) as { typeId: number; size: number };
    const size =
      v.size === 0 && btf !== undefined
        ? wrapErrors({ section: '.BTF' }, 'extern size', () => btf.sizeOf(v.typeId))
        : v.size;
    const align = Math.min(8, size > 0 ? 1 << Math.floor(Math.log2(size)) : 1);
    off = Math.ceil(off / align) * align;
    out.push({
      name: s.name,
      kind: 'kconfig',
      weak: s.bind === STB_WEAK,
      typeId: v.typeId,
      size,
      offset: off,
      isFunc: false,
    });
    off += size;
  }
  for (const s of undef) {
    if (kconfig.has(s.name)) continue;
    const v = ksyms.get(s.name);
    let isFunc = false;
    if (v === undefined && btf !== undefined) {
      const fid = btf.find(s.name, 'func');
      isFunc = fid !== undefined;
    }
    if (v === undefined && !isFunc) {
      throw new LoaderError('ENOENT', `extern '${s.name}' is neither __kconfig nor __ksym`, {
        section: '.symtab',
        offset: s.index * 24,
      });
    }
    out.push({
      name: s.name,
      kind: 'ksym',
      weak: s.bind === STB_WEAK,
      typeId: v?.typeId ?? 0,
      size: v?.size ?? 0,
      offset: 0,
      isFunc,
    });
  }
  return out;
}

function kconfigMap(externs: ExternDef[]): MapDef {
  const vars = externs
    .filter((e) => e.kind === 'kconfig')
    .map((e) => ({ name: e.name, offset: e.offset, size: e.size, typeId: e.typeId }));
  const size = Math.max(8, ...vars.map((v) => Math.ceil((v.offset + v.size) / 8) * 8));
  return {
    name: '.kconfig',
    source: 'kconfig',
    section: '.kconfig',
    sectionOffset: 0,
    type: BPF_MAP_TYPE.ARRAY as number,
    keySize: 4,
    valueSize: size,
    maxEntries: 1,
    mapFlags: BPF_F_RDONLY_PROG | BPF_F_MMAPABLE,
    pinning: 0,
    keyTypeId: 0,
    valueTypeId: 0,
    data: new Uint8Array(size),
    vars,
    initSlots: [],
    inner: undefined,
  };
}

function emptyMap(name: string, source: MapSource, section: string, offset: number): MapDef {
  return {
    name,
    source,
    section,
    sectionOffset: offset,
    type: 0,
    keySize: 0,
    valueSize: 0,
    maxEntries: 0,
    mapFlags: 0,
    pinning: 0,
    keyTypeId: 0,
    valueTypeId: 0,
    data: undefined,
    vars: [],
    initSlots: [],
    inner: undefined,
  };
}

const isMapInMap = (type: number): boolean =>
  type === BPF_MAP_TYPE.ARRAY_OF_MAPS || type === BPF_MAP_TYPE.HASH_OF_MAPS;

/** BTF-defined maps: each VAR of DATASEC .maps is a struct of __uint/__type/__array members. */
function collectBtfMaps(
  elf: ElfFile,
  btf: Btf | undefined,
  symsBySection: Map<number, ElfSymbol[]>,
  maps: MapDef[],
): void {
  const sec = elf.sectionByName('.maps');
  if (sec === undefined) return;
  if (btf === undefined)
    throw new LoaderError('EINVAL', 'BTF-defined maps need a .BTF section', { section: '.maps' });
  const syms = symsBySection.get(sec.index) ?? [];
  const dsId = btf.find('.maps', 'datasec');
  if (dsId === undefined)
    throw new LoaderError('EINVAL', 'no DATASEC .maps in BTF', { section: '.maps' });
  const ds = btf.typeOf(dsId, 'datasec');
  const valuesAt = new Map<MapDef, number>();
  for (const vi of ds.vars) {
    const v = btf.type(vi.type);
    if (v?.kind !== 'var')
      throw new LoaderError('EINVAL', `DATASEC .maps entry [${vi.type}] is not a VAR`, {
        section: '.maps',
      });
    const sym = syms.find((s) => s.name === v.name);
    if (sym === undefined)
      throw new LoaderError('EINVAL', `map '${v.name}' has no ELF symbol`, { section: '.maps' });
    const m = emptyMap(v.name, 'btf', '.maps', sym.value);
    const valuesOffset = parseBtfMapDef(btf, m, v.type, sym.value, false);
    maps.push(m);
    if (valuesOffset >= 0) valuesAt.set(m, valuesOffset);
  }
  collectInitSlots(elf, sec.index, valuesAt);
}

/**
 * Fills m from a map definition struct of __uint/__type/__array members (libbpf's
 * parse_btf_map_def); returns the byte offset of its `values` member in .maps, or -1. A
 * map-in-map's `values` is an array of pointers to the inner map's definition, parsed the same
 * way into m.inner.
 */
function parseBtfMapDef(
  btf: Btf,
  m: MapDef,
  typeId: number,
  offset: number,
  inner: boolean,
): number {
  const what = inner ? `inner map of '${m.name}'` : `map '${m.name}'`;
  const def = btf.type(btf.resolve(typeId));
  if (def?.kind !== 'struct')
    throw new LoaderError('EINVAL', `${what} definition is not a struct`, {
      section: '.maps',
      offset,
    });
  let values: { type: number; offset: number } | undefined;
  for (const mem of def.members) {
    const where = { section: '.maps', offset: offset + mem.bitsOffset / 8 };
    const uintVal = (): number => {
      // __uint(name, val) is `int (*name)[val]`: a pointer to an array whose length is val.
      const p = btf.type(btf.resolve(mem.type));
      const arr = p?.kind === 'ptr' ? btf.type(btf.resolve(p.type)) : undefined;
      if (arr?.kind !== 'array')
        throw new LoaderError('EINVAL', `${what}: '${mem.name}' is not __uint()`, where);
      return arr.nelems;
    };
    const typeVal = (): number => {
      const p = btf.type(btf.resolve(mem.type));
      if (p?.kind !== 'ptr')
        throw new LoaderError('EINVAL', `${what}: '${mem.name}' is not __type()`, where);
      return p.type;
    };
    const sized = (id: number, kind: string): number =>
      wrapErrors(where, `${what} ${kind}`, () => btf.sizeOf(id));
    switch (mem.name) {
      case 'type':
        m.type = uintVal();
        break;
      case 'max_entries':
        m.maxEntries = uintVal();
        break;
      case 'map_flags':
        m.mapFlags = uintVal();
        break;
      case 'pinning':
        m.pinning = uintVal();
        break;
      case 'numa_node':
      case 'map_extra':
        uintVal();
        break;
      case 'key_size':
        m.keySize = checkSize(m.keySize, uintVal(), m.name, 'key', where);
        break;
      case 'value_size':
        m.valueSize = checkSize(m.valueSize, uintVal(), m.name, 'value', where);
        break;
      case 'key':
        m.keyTypeId = typeVal();
        m.keySize = checkSize(m.keySize, sized(m.keyTypeId, 'key'), m.name, 'key', where);
        break;
      case 'value':
        m.valueTypeId = typeVal();
        m.valueSize = checkSize(m.valueSize, sized(m.valueTypeId, 'value'), m.name, 'value', where);
        break;
      case 'values':
        // __array(values, ...): map-in-map or prog array; the value is a 4-byte id.
        if (inner) throw new LoaderError('EINVAL', `${what}: an inner map cannot hold maps`, where);
        m.valueSize = 4;
        values = { type: mem.type, offset: where.offset };
        break;
      default:
        throw new LoaderError('EOPNOTSUPP', `${what}: unknown field '${mem.name}'`, where);
    }
  }
  if (m.type === 0)
    throw new LoaderError('EINVAL', `${what} has no type`, { section: '.maps', offset });
  if (values === undefined) return -1;
  if (isMapInMap(m.type)) {
    // `struct inner *values[]`: the template is what the pointers point to.
    const arr = btf.type(btf.resolve(values.type));
    const ptr = arr?.kind === 'array' ? btf.type(btf.resolve(arr.type)) : undefined;
    if (ptr?.kind !== 'ptr')
      throw new LoaderError('EINVAL', `${what}: 'values' is not an array of map pointers`, {
        section: '.maps',
        offset: values.offset,
      });
    m.inner = emptyMap(`${m.name}.inner`, 'btf', '.maps', values.offset);
    parseBtfMapDef(btf, m.inner, ptr.type, values.offset, true);
  }
  return values.offset;
}

/**
 * `.values = { [i] = &prog }` initialisers: R_BPF_64_ABS64 relocations of .rel.maps that land in
 * a map's `values` array give slot i its program (libbpf's init_slots).
 */
function collectInitSlots(elf: ElfFile, mapsIndex: number, valuesAt: Map<MapDef, number>): void {
  const rel = elf.relocations.get(mapsIndex);
  if (rel === undefined) return;
  rel.relocs.forEach((r, k) => {
    const where = { section: rel.section.name, offset: k * 16 };
    if (r.type !== R_BPF_64_ABS64)
      throw new LoaderError(
        'EINVAL',
        `relocation #${k} of .maps has type ${RELOC_NAMES[r.type] ?? r.type}`,
        where,
      );
    let found: [MapDef, number] | undefined;
    for (const [m, off] of valuesAt) {
      if (r.offset >= off && (r.offset - off) / 8 < m.maxEntries) found = [m, off];
    }
    if (found === undefined || (r.offset - found[1]) % 8 !== 0)
      throw new LoaderError(
        'EINVAL',
        `relocation #${k} at 0x${r.offset.toString(16)} is in no map's values`,
        where,
      );
    const sym = elf.symbols[r.symbol] as ElfSymbol;
    found[0].initSlots.push({ slot: (r.offset - found[1]) / 8, symbol: sym.name });
  });
}

function checkSize(
  prev: number,
  next: number,
  map: string,
  what: string,
  where: { section: string; offset: number },
): number {
  if (prev !== 0 && prev !== next)
    throw new LoaderError(
      'EINVAL',
      `map '${map}': conflicting ${what} size ${prev} != ${next}`,
      where,
    );
  return next;
}

/** Legacy maps: struct bpf_map_def records in a section named "maps", one per symbol. */
function collectLegacyMaps(
  elf: ElfFile,
  symsBySection: Map<number, ElfSymbol[]>,
  maps: MapDef[],
): void {
  const sec = elf.sectionByName('maps');
  if (sec === undefined) return;
  const syms = (symsBySection.get(sec.index) ?? []).filter(
    (s) => s.type !== STT_SECTION && s.name !== '',
  );
  if (syms.length === 0) return;
  const defSize = sec.size / syms.length;
  if (!Number.isInteger(defSize) || defSize < 16 || defSize % 4 !== 0)
    throw new LoaderError(
      'EINVAL',
      `${syms.length} map definitions do not divide ${sec.size} bytes evenly`,
      { section: 'maps' },
    );
  const dv = new DataView(sec.data.buffer, sec.data.byteOffset, sec.data.byteLength);
  const le = elf.littleEndian;
  for (const s of syms) {
    if (s.value % defSize !== 0 || s.value + defSize > sec.size)
      throw new LoaderError('EINVAL', `map '${s.name}' definition is misplaced`, {
        section: 'maps',
        offset: s.value,
      });
    const m = emptyMap(s.name, 'legacy', 'maps', s.value);
    m.type = dv.getUint32(s.value, le);
    m.keySize = dv.getUint32(s.value + 4, le);
    m.valueSize = dv.getUint32(s.value + 8, le);
    m.maxEntries = dv.getUint32(s.value + 12, le);
    if (defSize >= 20) m.mapFlags = dv.getUint32(s.value + 16, le);
    maps.push(m);
  }
}

/** Global data: .data, .rodata, .bss (and .name variants) as one-entry array maps. */
function collectDataMaps(
  elf: ElfFile,
  btf: Btf | undefined,
  symsBySection: Map<number, ElfSymbol[]>,
  maps: MapDef[],
): void {
  for (const sec of elf.sections) {
    if (!isDataSection(sec.name) || (sec.flags & SHF_ALLOC) === 0) continue;
    if (sec.type !== SHT_PROGBITS && sec.type !== SHT_NOBITS) continue;
    if (sec.size === 0) continue;
    const m = emptyMap(sec.name, 'data', sec.name, 0);
    m.type = BPF_MAP_TYPE.ARRAY as number;
    m.keySize = 4;
    m.valueSize = sec.size;
    m.maxEntries = 1;
    m.mapFlags = BPF_F_MMAPABLE | ((sec.flags & SHF_WRITE) === 0 ? BPF_F_RDONLY_PROG : 0);
    m.data = sec.type === SHT_NOBITS ? new Uint8Array(sec.size) : sec.data.slice();
    const btfVars = new Map(dataSecVars(btf, sec.name).map((v) => [v.name, v]));
    for (const s of symsBySection.get(sec.index) ?? []) {
      if (s.type === STT_SECTION || s.name === '' || s.shndx === SHN_ABS || s.shndx === SHN_COMMON)
        continue;
      const bv = btfVars.get(s.name);
      m.vars.push({
        name: s.name,
        offset: s.value,
        size: bv?.size ?? s.size,
        typeId: bv?.typeId ?? 0,
      });
    }
    m.vars.sort((a, b) => a.offset - b.offset);
    if (btf !== undefined) {
      const id = btf.find(sec.name, 'datasec');
      if (id !== undefined) m.valueTypeId = id;
    }
    maps.push(m);
  }
}

function funcAt(ps: ProgSection, insn: number): FuncDef | undefined {
  return ps.funcs.find((f) => insn >= f.insnOff && insn < f.insnOff + f.insnCnt);
}

function collectRelocs(
  elf: ElfFile,
  ps: ProgSection,
  code: Map<number, ProgSection>,
  maps: MapDef[],
  externs: ExternDef[],
): ProgReloc[] {
  const rel = elf.relocations.get(ps.index);
  if (rel === undefined) return [];
  const relName = rel.section.name;
  const out: ProgReloc[] = [];
  rel.relocs.forEach((r, k) => {
    const where = { section: relName, offset: k * (rel.section.entsize || 16) };
    if (r.offset % 8 !== 0)
      throw new LoaderError(
        'EINVAL',
        `relocation #${k} offset 0x${r.offset.toString(16)} is not an instruction boundary`,
        where,
      );
    const insnIdx = r.offset / 8;
    const insn = ps.insns[insnIdx] as Insn;
    const sym = elf.symbols[r.symbol] as ElfSymbol;
    const base: ProgReloc = {
      insnIdx,
      type: r.type,
      symbol: sym.name,
      kind: 'map',
      mapIndex: -1,
      offset: 0,
      targetSection: -1,
      targetInsn: -1,
      externIndex: -1,
    };
    const isCall = insn.code === (BPF_JMP | BPF_CALL);
    if (isCall && sym.shndx === SHN_UNDEF) {
      // A call to an extern __ksym function: a kfunc, resolved by name in the target BTF.
      const e = externs.findIndex((x) => x.name === sym.name && x.isFunc);
      if (e < 0 || r.type !== R_BPF_64_32)
        throw new LoaderError(
          'ENOENT',
          `call relocation #${k} to unknown function '${sym.name}'`,
          where,
        );
      out.push({ ...base, kind: 'extern', externIndex: e });
      return;
    }
    if (isCall) {
      if (insn.src !== BPF_PSEUDO_CALL)
        throw new LoaderError(
          'EINVAL',
          `relocation #${k} against non-local call at insn ${insnIdx}`,
          where,
        );
      if (r.type !== R_BPF_64_32)
        throw new LoaderError(
          'EINVAL',
          `call relocation #${k} has type ${RELOC_NAMES[r.type] ?? r.type}`,
          where,
        );
      const target = code.get(sym.shndx);
      if (target === undefined)
        throw new LoaderError(
          'EINVAL',
          `call relocation #${k} to '${sym.name}' outside code`,
          where,
        );
      const t = sym.value / 8 + insn.imm + 1;
      if (!Number.isInteger(t) || funcAt(target, t)?.insnOff !== t)
        throw new LoaderError(
          'EINVAL',
          `call relocation #${k} targets insn ${t} of ${target.name}, not a function start`,
          where,
        );
      out.push({ ...base, kind: 'call', targetSection: target.index, targetInsn: t });
      return;
    }
    if (!isLddw(insn))
      throw new LoaderError(
        'EINVAL',
        `relocation #${k} at insn ${insnIdx} is not on lddw or call (code 0x${insn.code.toString(16)})`,
        where,
      );
    if (r.type !== R_BPF_64_64)
      throw new LoaderError(
        'EINVAL',
        `lddw relocation #${k} has unsupported type ${RELOC_NAMES[r.type] ?? r.type}`,
        where,
      );
    if (sym.shndx === SHN_UNDEF) {
      const e = externs.findIndex((x) => x.name === sym.name);
      if (e < 0)
        throw new LoaderError('ENOENT', `relocation #${k} to unknown extern '${sym.name}'`, where);
      out.push({ ...base, kind: 'extern', externIndex: e });
      return;
    }
    const target = elf.sections[sym.shndx] as ElfSection | undefined;
    if (target === undefined)
      throw new LoaderError(
        'EINVAL',
        `relocation #${k} symbol '${sym.name}' has no section`,
        where,
      );
    const codeTarget = code.get(sym.shndx);
    if (codeTarget !== undefined) {
      const t = sym.value / 8 + insn.imm / 8;
      if (!Number.isInteger(t) || funcAt(codeTarget, t)?.insnOff !== t)
        throw new LoaderError(
          'EINVAL',
          `function address relocation #${k} is not a function start`,
          where,
        );
      out.push({ ...base, kind: 'subprog_addr', targetSection: codeTarget.index, targetInsn: t });
      return;
    }
    if (target.name === '.maps' || target.name === 'maps') {
      const mi = maps.findIndex((m) => m.section === target.name && m.sectionOffset === sym.value);
      if (mi < 0)
        throw new LoaderError(
          'EINVAL',
          `relocation #${k} to '${sym.name}' matches no map definition`,
          where,
        );
      out.push({ ...base, kind: 'map', mapIndex: mi });
      return;
    }
    const mi = maps.findIndex((m) => m.source === 'data' && m.section === target.name);
    if (mi < 0)
      throw new LoaderError(
        'EINVAL',
        `relocation #${k} to '${sym.name}' in unsupported section ${target.name}`,
        where,
      );
    const off = sym.value + insn.imm;
    const m = maps[mi] as MapDef;
    if (off < 0 || off >= m.valueSize)
      throw new LoaderError(
        'EINVAL',
        `relocation #${k} offset ${off} outside ${m.name} of ${m.valueSize} bytes`,
        where,
      );
    out.push({ ...base, kind: 'map_value', mapIndex: mi, offset: off });
  });
  return out;
}
