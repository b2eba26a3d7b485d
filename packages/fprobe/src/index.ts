export { FprobeIpTable } from './ip-table.js';
export {
  FPROBE_FL_DISABLED,
  FPROBE_FL_KPROBE_SHARED,
  FPROBE_DATA_SIZE_MAX_LONGS,
  FPROBE_HEADER_SIZE_IN_LONG,
  Fprobe,
  FprobeData,
  Fprobes,
  type FprobeEntryHandler,
  type FprobeExitHandler,
  type FprobeInit,
  type FprobeStats,
} from './fprobe.js';
export {
  BPF_F_KPROBE_MULTI_RETURN,
  MAX_KPROBE_MULTI_CNT,
  KprobeMultiLink,
  kprobeMultiLinkAttach,
  type KprobeMultiOpts,
  type KprobeMultiProg,
  type KprobeMultiRunCtx,
  type KprobeMultiStats,
} from './kprobe-multi.js';
