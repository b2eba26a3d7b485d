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
  KprobeMultiRunCtx,
  type KprobeMultiStats,
} from './kprobe-multi.js';
export {
  MAX_TRACE_ARGS,
  MAX_ARG_NAME_LEN,
  MAX_ARGSTR_LEN,
  MAX_EVENT_NAME_LEN,
  MAX_ARRAY_LEN,
  FPROBE_EVENT_SYSTEM,
  PARAM_MAX_STACK,
  PROBE_ERRORS,
  ProbeParseError,
  formatFprobeEvent,
  imageTarget,
  parseFprobeEvent,
  type FetchArg,
  type FetchType,
  type FprobeEvent,
  type ProbeArg,
  type ProbeErrorName,
  type ProbeTarget,
} from './dynevent.js';
export {
  MAX_STRING_SIZE,
  compileFetchArgs,
  layoutRecord,
  type ArgSlot,
  type FetchCompileOptions,
  type FetchProgram,
} from './fetch-bpf.js';
export {
  COMMON_FIELDS,
  entryPid,
  FprobeTraceEvent,
  type EventField,
  type FprobeTraceEventStats,
} from './trace-event.js';
export { TraceEventRing, entryType, type EventRingVisitor } from './event-ring.js';
export {
  EventFilter,
  EventFilterError,
  FILTER_ERRORS,
  GROUP_FILTER_MESSAGE,
  MAX_FILTER_STR_VAL,
  TASK_COMM_LEN,
  filterString,
  type EventFilterOptions,
  type FilterErrorName,
  type FilterSymbols,
} from './event-filter.js';
