export {
  LoaderError,
  isLoaderError,
  type LoaderErrno,
  type LoaderErrorPosition,
} from './errors.js';
export {
  EM_BPF,
  R_BPF_64_32,
  R_BPF_64_64,
  R_BPF_64_ABS32,
  R_BPF_64_ABS64,
  R_BPF_64_NODYLD32,
  RELOC_NAMES,
  parseElf,
  type ElfFile,
  type ElfRelSection,
  type ElfRelocation,
  type ElfSection,
  type ElfSymbol,
} from './elf.js';
export {
  BPF_CORE,
  CORE_RELO_KIND_NAMES,
  parseBtfExt,
  type BtfExt,
  type CoreRelo,
  type FuncInfo,
  type LineInfo,
} from './btf-ext.js';
export {
  BPF_PROG_TYPE,
  SECTION_DEFS,
  matchSection,
  sectionInfo,
  type AttachTypeName,
  type ProgTypeName,
  type SectionDef,
  type SectionInfo,
} from './sections.js';
export {
  BPF_F_MMAPABLE,
  BPF_F_RDONLY_PROG,
  BPF_MAP_TYPE,
  mapTypeName,
  parseObject,
  type DataVar,
  type ExternDef,
  type FuncDef,
  type MapDef,
  type MapSource,
  type ParsedObject,
  type ProgReloc,
  type ProgramDef,
} from './object.js';
export {
  POISON_HELPER_ID,
  calcCoreRelo,
  essentialName,
  patchCoreInsn,
  type CoreResult,
} from './core.js';
export {
  fillKconfig,
  linkObject,
  type CoreRecord,
  type ExternValues,
  type LinkOptions,
  type LinkResult,
  type LinkedFuncInfo,
  type LinkedProgram,
} from './link.js';
export {
  BpfObject,
  BpfObjectMap,
  LoadedObject,
  fakeKernelEnv,
  type BpfProgramInfo,
  type LoadOptions,
  type RunResult,
} from './bpf-object.js';
export { dumpObject, formatObjectInfo, objectInfo, type ObjectInfo } from './info.js';
export { verifyObject, type ProgramVerdict, type VerifyObjectOptions } from './verify.js';
