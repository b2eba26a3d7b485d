import { TracelabError } from '@tracelab/contracts';

/** Every layer's error is a TracelabError; anything else thrown below (a RangeError) is EINVAL. */
export function asTracelab(e: unknown): TracelabError {
  if (e instanceof TracelabError) return e;
  return new TracelabError('EINVAL', e instanceof Error ? e.message : String(e));
}

/** Throws-free wrapper for a lower-layer call that reports errors by throwing. */
export function attempt<T>(fn: () => T): T | TracelabError {
  try {
    return fn();
  } catch (e) {
    return asTracelab(e);
  }
}
