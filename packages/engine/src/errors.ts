import { ERRNO, TracelabError, type ErrnoCode } from '@tracelab/contracts';

/**
 * Lower layers return their own error classes (KernelError, VmError, LoaderError...) whose
 * `errno` is the errno name; the engine hands out TracelabError only, with the same name.
 */
export function asTracelab(e: unknown): TracelabError {
  if (e instanceof TracelabError) return e;
  if (e instanceof Error) {
    const name = (e as { errno?: unknown }).errno;
    const code: ErrnoCode =
      typeof name === 'string' && name in ERRNO ? (name as ErrnoCode) : 'EINVAL';
    return new TracelabError(code, e.message);
  }
  return new TracelabError('EINVAL', String(e));
}

/** Throws-free wrapper for a lower-layer call that reports errors by throwing. */
export function attempt<T>(fn: () => T): T | TracelabError {
  try {
    return fn();
  } catch (e) {
    return asTracelab(e);
  }
}
