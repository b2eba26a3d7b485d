export { Engine, type EngineOptions, type RunningWorkload, type WorkloadResult } from './engine.js';
export { Tracefs, type WriteOptions } from './tracefs.js';
export {
  DEFAULT_BUFFER_SIZE_KB,
  GRAPH_OPTIONS,
  TRACERS,
  TRACING_LOG_ERRS_MAX,
  TraceArray,
  type TracerName,
} from './trace-array.js';
export { Bpf, BpfLoadError, type LinkAttr, type LoadedProg, type ProgLoadAttr } from './bpf.js';
export {
  DEFAULT_BATCH_EVENTS,
  MAX_BATCH_EVENTS,
  StreamReader,
  Streams,
  type StreamBatch,
  type StreamOptions,
} from './streams.js';
export { PRINTK_LOG_LINES, PrintkLog, type PrintkVisitor } from './printk-log.js';
