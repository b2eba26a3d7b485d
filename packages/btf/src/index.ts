export { BtfError, type Errno, type BtfErrorPosition } from './error.js';
export * from './types.js';
export { checkBtf, validateBtf } from './validate.js';
export {
  Btf,
  parseBtf,
  readHeader,
  type BtfHeader,
  type BtfFuncEntry,
  type ParseOptions,
} from './btf.js';
export { type MemberAccess, type MemberLocation, type TypeSource } from './graph.js';
export {
  BtfBuilder,
  writeBtf,
  type IntOptions,
  type MemberSpec,
  type WriteOptions,
} from './write.js';
export {
  BTF_FMODEL_SIGNED_ARG,
  BTF_FMODEL_STRUCT_ARG,
  MAX_BPF_FUNC_ARGS,
  MAX_BPF_FUNC_REG_ARGS,
  funcModel,
  funcModelKey,
  summarizeFuncModels,
  type FuncModel,
  type FuncModelResult,
  type FuncModelSummary,
} from './func-model.js';
export { dumpBtf, dumpJson, dumpRaw, rawTypeLine, type DumpFormat } from './dump.js';
export { dumpC } from './dump-c.js';
export {
  BPF_CORE_RELO_KIND,
  btfExtStrings,
  coreAccessBitOffset,
  parseBtfExt,
  writeBtfExt,
  type BpfCoreRelo,
  type BpfFuncInfo,
  type BpfLineInfo,
  type BtfExt,
  type BtfExtSection,
} from './ext.js';
export { cDecl, formatFuncs, globToRegExp, listFuncs, type FuncListing } from './funcs.js';
