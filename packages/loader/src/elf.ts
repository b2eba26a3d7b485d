import { LoaderError } from './errors.js';

// ELF constants (include/uapi/linux/elf.h, the System V gABI).
export const EM_BPF = 247;
export const ET_REL = 1;
export const SHT_NULL = 0;
export const SHT_PROGBITS = 1;
export const SHT_SYMTAB = 2;
export const SHT_STRTAB = 3;
export const SHT_RELA = 4;
export const SHT_NOBITS = 8;
export const SHT_REL = 9;
export const SHF_WRITE = 0x1;
export const SHF_ALLOC = 0x2;
export const SHF_EXECINSTR = 0x4;
export const SHN_UNDEF = 0;
export const SHN_LORESERVE = 0xff00;
export const SHN_ABS = 0xfff1;
export const SHN_COMMON = 0xfff2;
export const SHN_XINDEX = 0xffff;
export const STB_LOCAL = 0;
export const STB_GLOBAL = 1;
export const STB_WEAK = 2;
export const STT_NOTYPE = 0;
export const STT_OBJECT = 1;
export const STT_FUNC = 2;
export const STT_SECTION = 3;
export const STT_FILE = 4;

/** BPF relocation types (llvm's ELFRelocs/BPF.def). */
export const R_BPF_NONE = 0;
export const R_BPF_64_64 = 1;
export const R_BPF_64_ABS64 = 2;
export const R_BPF_64_ABS32 = 3;
export const R_BPF_64_NODYLD32 = 4;
export const R_BPF_64_32 = 10;

export const RELOC_NAMES: Record<number, string> = {
  [R_BPF_NONE]: 'R_BPF_NONE',
  [R_BPF_64_64]: 'R_BPF_64_64',
  [R_BPF_64_ABS64]: 'R_BPF_64_ABS64',
  [R_BPF_64_ABS32]: 'R_BPF_64_ABS32',
  [R_BPF_64_NODYLD32]: 'R_BPF_64_NODYLD32',
  [R_BPF_64_32]: 'R_BPF_64_32',
};

const EHDR_SIZE = 64;
const SHDR_SIZE = 64;
const SYM_SIZE = 24;
const REL_SIZE = 16;
const RELA_SIZE = 24;

export interface ElfSection {
  index: number;
  name: string;
  type: number;
  flags: number;
  /** File offset of the contents (meaningless for SHT_NOBITS). */
  offset: number;
  size: number;
  link: number;
  info: number;
  addralign: number;
  entsize: number;
  /** Contents (zero-filled for SHT_NOBITS), a view into the file bytes where possible. */
  data: Uint8Array;
}

export interface ElfSymbol {
  index: number;
  name: string;
  bind: number;
  type: number;
  visibility: number;
  /** Section index (SHN_* for special ones). */
  shndx: number;
  value: number;
  size: number;
}

export interface ElfRelocation {
  /** Offset inside the target section. */
  offset: number;
  type: number;
  symbol: number;
  addend: number;
}

export interface ElfRelSection {
  /** The relocation section itself. */
  section: ElfSection;
  /** Index of the section the relocations apply to. */
  target: number;
  relocs: ElfRelocation[];
}

/** A parsed ELF64 relocatable object. */
export interface ElfFile {
  littleEndian: boolean;
  machine: number;
  type: number;
  flags: number;
  sections: ElfSection[];
  symbols: ElfSymbol[];
  /** Relocation sections keyed by the index of the section they patch. */
  relocations: Map<number, ElfRelSection>;
  sectionByName(name: string): ElfSection | undefined;
}

/** Reads an unsigned 64-bit field as a number, rejecting values JavaScript cannot hold exactly. */
function u64(dv: DataView, pos: number, le: boolean, what: string, where: { section?: string }) {
  const v = dv.getBigUint64(pos, le);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new LoaderError('E2BIG', `${what} 0x${v.toString(16)} is too large`, {
      ...where,
      offset: pos,
    });
  }
  return Number(v);
}

function cstr(bytes: Uint8Array, start: number, end: number): string | undefined {
  let k = start;
  while (k < end && bytes[k] !== 0) k++;
  if (k >= end) return undefined;
  let s = '';
  for (let i = start; i < k; i++) s += String.fromCharCode(bytes[i] as number);
  return s;
}

/**
 * Parses an ELF64 relocatable object for the BPF machine, either byte order. Every offset and
 * size is checked against the file; a violation is a LoaderError naming the section and offset.
 */
export function parseElf(bytes: Uint8Array): ElfFile {
  if (bytes.length < EHDR_SIZE) {
    throw new LoaderError(
      'ENOEXEC',
      `file of ${bytes.length} bytes is shorter than an ELF64 header`,
      {
        section: 'ELF header',
        offset: 0,
      },
    );
  }
  const hdr = { section: 'ELF header' };
  if (bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46) {
    throw new LoaderError('ENOEXEC', 'not an ELF file (bad magic)', { ...hdr, offset: 0 });
  }
  if (bytes[4] !== 2)
    throw new LoaderError('ENOEXEC', `ELF class ${bytes[4]} is not ELFCLASS64`, {
      ...hdr,
      offset: 4,
    });
  if (bytes[5] !== 1 && bytes[5] !== 2)
    throw new LoaderError('ENOEXEC', `unknown ELF data encoding ${bytes[5]}`, {
      ...hdr,
      offset: 5,
    });
  const le = bytes[5] === 1;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = dv.getUint16(16, le);
  const machine = dv.getUint16(18, le);
  if (type !== ET_REL)
    throw new LoaderError('ENOEXEC', `ELF type ${type} is not ET_REL (relocatable)`, {
      ...hdr,
      offset: 16,
    });
  if (machine !== EM_BPF)
    throw new LoaderError('ENOEXEC', `ELF machine ${machine} is not EM_BPF (${EM_BPF})`, {
      ...hdr,
      offset: 18,
    });
  const shoff = u64(dv, 40, le, 'e_shoff', hdr);
  const flags = dv.getUint32(48, le);
  const shentsize = dv.getUint16(58, le);
  let shnum = dv.getUint16(60, le);
  let shstrndx = dv.getUint16(62, le);
  if (shoff === 0) throw new LoaderError('ENOEXEC', 'no section headers', { ...hdr, offset: 40 });
  if (shentsize !== SHDR_SIZE)
    throw new LoaderError('EINVAL', `e_shentsize ${shentsize} is not ${SHDR_SIZE}`, {
      ...hdr,
      offset: 58,
    });
  if (shoff + SHDR_SIZE > bytes.length)
    throw new LoaderError('EINVAL', `section headers at 0x${shoff.toString(16)} beyond the file`, {
      ...hdr,
      offset: 40,
    });
  // Extended numbering: with >= SHN_LORESERVE sections the real counts live in section 0.
  if (shnum === 0) shnum = u64(dv, shoff + 32, le, 'section count', hdr);
  if (shstrndx === SHN_XINDEX) shstrndx = dv.getUint32(shoff + 44, le);
  if (shnum > (bytes.length - shoff) / SHDR_SIZE)
    throw new LoaderError(
      'EINVAL',
      `${shnum} section headers at 0x${shoff.toString(16)} do not fit in the file`,
      { ...hdr, offset: 60 },
    );
  if (shstrndx >= shnum)
    throw new LoaderError('EINVAL', `e_shstrndx ${shstrndx} out of range (${shnum} sections)`, {
      ...hdr,
      offset: 62,
    });

  const sections: ElfSection[] = [];
  for (let i = 0; i < shnum; i++) {
    const p = shoff + i * SHDR_SIZE;
    const where = { section: `section header #${i}` };
    const stype = dv.getUint32(p + 4, le);
    const offset = u64(dv, p + 24, le, 'sh_offset', where);
    const size = u64(dv, p + 32, le, 'sh_size', where);
    if (stype !== SHT_NOBITS && stype !== SHT_NULL && offset + size > bytes.length) {
      throw new LoaderError(
        'EINVAL',
        `contents [0x${offset.toString(16)}, 0x${(offset + size).toString(16)}) beyond the file of 0x${bytes.length.toString(16)} bytes`,
        { section: `#${i}`, offset: p + 24 },
      );
    }
    if (stype === SHT_NOBITS && size > 0x4000_0000) {
      throw new LoaderError('E2BIG', `NOBITS section of ${size} bytes`, {
        section: `#${i}`,
        offset: p + 32,
      });
    }
    sections.push({
      index: i,
      name: '',
      type: stype,
      flags: Number(dv.getBigUint64(p + 8, le) & 0xffffffffn),
      offset,
      size,
      link: dv.getUint32(p + 40, le),
      info: dv.getUint32(p + 44, le),
      addralign: u64(dv, p + 48, le, 'sh_addralign', where),
      entsize: u64(dv, p + 56, le, 'sh_entsize', where),
      data:
        stype === SHT_NOBITS
          ? new Uint8Array(size)
          : stype === SHT_NULL
            ? new Uint8Array(0)
            : bytes.subarray(offset, offset + size),
    });
  }
  const shstr = sections[shstrndx] as ElfSection;
  if (shstr.type !== SHT_STRTAB)
    throw new LoaderError('EINVAL', `e_shstrndx ${shstrndx} is not a string table`, {
      ...hdr,
      offset: 62,
    });
  for (let i = 0; i < shnum; i++) {
    const nameOff = dv.getUint32(shoff + i * SHDR_SIZE, le);
    const name = cstr(shstr.data, nameOff, shstr.data.length);
    if (name === undefined) {
      throw new LoaderError('EINVAL', `section name offset ${nameOff} outside .shstrtab`, {
        section: `#${i}`,
        offset: shoff + i * SHDR_SIZE,
      });
    }
    (sections[i] as ElfSection).name = name;
  }

  const symbols = parseSymbols(sections, dv, le);
  const relocations = new Map<number, ElfRelSection>();
  for (const s of sections) {
    if (s.type !== SHT_REL && s.type !== SHT_RELA) continue;
    const rel = parseRelSection(s, sections, symbols.length, dv, le);
    if (relocations.has(rel.target)) {
      throw new LoaderError('EINVAL', `second relocation section for section #${rel.target}`, {
        section: s.name,
      });
    }
    relocations.set(rel.target, rel);
  }
  const byName = new Map<string, ElfSection>();
  for (const s of sections) if (!byName.has(s.name)) byName.set(s.name, s);
  return {
    littleEndian: le,
    machine,
    type,
    flags,
    sections,
    symbols,
    relocations,
    sectionByName: (name) => byName.get(name),
  };
}

function parseSymbols(sections: ElfSection[], dv: DataView, le: boolean): ElfSymbol[] {
  const symtabs = sections.filter((s) => s.type === SHT_SYMTAB);
  if (symtabs.length === 0) return [];
  if (symtabs.length > 1) {
    throw new LoaderError('EINVAL', 'more than one symbol table', {
      section: (symtabs[1] as ElfSection).name,
    });
  }
  const st = symtabs[0] as ElfSection;
  const where = { section: st.name };
  if (st.entsize !== SYM_SIZE)
    throw new LoaderError('EINVAL', `symbol entry size ${st.entsize} is not ${SYM_SIZE}`, where);
  if (st.size % SYM_SIZE !== 0)
    throw new LoaderError('EINVAL', `size ${st.size} is not a multiple of ${SYM_SIZE}`, where);
  const strtab = sections[st.link];
  if (strtab === undefined || strtab.type !== SHT_STRTAB)
    throw new LoaderError('EINVAL', `sh_link ${st.link} is not a string table`, where);
  const out: ElfSymbol[] = [];
  for (let i = 0; i < st.size / SYM_SIZE; i++) {
    const p = st.offset + i * SYM_SIZE;
    const nameOff = dv.getUint32(p, le);
    const name = cstr(strtab.data, nameOff, strtab.data.length);
    if (name === undefined) {
      throw new LoaderError(
        'EINVAL',
        `symbol #${i} name offset ${nameOff} outside ${strtab.name}`,
        {
          section: st.name,
          offset: i * SYM_SIZE,
        },
      );
    }
    const info = dv.getUint8(p + 4);
    const shndx = dv.getUint16(p + 6, le);
    if (shndx !== SHN_UNDEF && shndx < SHN_LORESERVE && shndx >= sections.length) {
      throw new LoaderError('EINVAL', `symbol '${name}' refers to missing section #${shndx}`, {
        section: st.name,
        offset: i * SYM_SIZE + 6,
      });
    }
    out.push({
      index: i,
      name,
      bind: info >> 4,
      type: info & 0xf,
      visibility: dv.getUint8(p + 5) & 0x3,
      shndx,
      value: u64(dv, p + 8, le, 'st_value', where),
      size: u64(dv, p + 16, le, 'st_size', where),
    });
  }
  return out;
}

function parseRelSection(
  s: ElfSection,
  sections: ElfSection[],
  nsyms: number,
  dv: DataView,
  le: boolean,
): ElfRelSection {
  const rela = s.type === SHT_RELA;
  const ent = rela ? RELA_SIZE : REL_SIZE;
  if (s.size % ent !== 0)
    throw new LoaderError('EINVAL', `size ${s.size} is not a multiple of ${ent}`, {
      section: s.name,
    });
  const target = sections[s.info];
  if (target === undefined || s.info === 0)
    throw new LoaderError('EINVAL', `sh_info ${s.info} names no section`, { section: s.name });
  const relocs: ElfRelocation[] = [];
  for (let k = 0; k < s.size / ent; k++) {
    const p = s.offset + k * ent;
    const offset = u64(dv, p, le, 'r_offset', { section: s.name });
    const info = dv.getBigUint64(p + 8, le);
    const symbol = Number(info >> 32n);
    const type = Number(info & 0xffffffffn);
    if (symbol >= nsyms) {
      throw new LoaderError('EINVAL', `relocation #${k} names symbol #${symbol} of ${nsyms}`, {
        section: s.name,
        offset: k * ent + 8,
      });
    }
    if (offset >= target.size && target.type !== SHT_NOBITS) {
      throw new LoaderError(
        'EINVAL',
        `relocation #${k} at 0x${offset.toString(16)} outside ${target.name} of 0x${target.size.toString(16)} bytes`,
        { section: s.name, offset: k * ent },
      );
    }
    const addend = rela ? Number(dv.getBigInt64(p + 16, le)) : 0;
    relocs.push({ offset, type, symbol, addend });
  }
  return { section: s, target: s.info, relocs };
}
