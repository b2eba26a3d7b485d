export { Collector } from './collector.js';
export type { CollectedEvent, CollectorOptions, CollectorStats } from './collector.js';
