export {
  BPF_COMPLEXITY_LIMIT_INSNS,
  MAX_BPF_STACK,
  MAX_CALL_FRAMES,
  VERIFIER_ERRNO,
  sourceLineStr,
  verify,
} from './verifier.js';
export type {
  SourceLine,
  VerifierErrno,
  VerifyOptions,
  VerifyResult,
  VerifyStats,
} from './verifier.js';
export { PROG_TYPES } from './ctx.js';
export type { AttachType, ProgType } from './ctx.js';
export { ALLOWED_HELPERS, HELPERS, hasTrampoline, helperAllowed } from './helpers.js';
export { KFUNCS, kfuncFlags } from './kfuncs.js';
export type { KfuncDef, KfuncFlags } from './kfuncs.js';
export type { ArgType, FuncProto, RetType } from './helpers.js';
export { RegState, regStr, regTypeStr } from './regs.js';
export type { MapDef, MapType, RegType } from './regs.js';
export { insnStr } from './log.js';
export * from './tnum.js';
