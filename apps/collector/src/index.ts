export { Collector } from './collector.js';
export type { CollectedEvent, CollectorOptions, CollectorStats } from './collector.js';
export { DEFAULT_MAX_FILE_BYTES, FileStore, readStream } from './store.js';
export type { FileStoreOptions, StoredStream } from './store.js';
export {
  EXPORT_FORMATS,
  exportFolded,
  exportFtrace,
  exportPerfetto,
  exportStore,
} from './export.js';
export type {
  ExportFormat,
  FoldedExportOptions,
  FtraceExportOptions,
  StoreExportOptions,
} from './export.js';
