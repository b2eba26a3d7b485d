import { TracelabError } from '@tracelab/contracts';

/** Kernel errno names the simulated kernel reports. */
export type KernelErrno =
  | 'ENOENT'
  | 'E2BIG'
  | 'EFAULT'
  | 'EBUSY'
  | 'EEXIST'
  | 'EINVAL'
  | 'ENOSPC'
  | 'ERANGE'
  | 'ELOOP'
  | 'EOPNOTSUPP';

/** An error value with a kernel errno, returned (not thrown) for bad input. */
export class KernelError extends TracelabError {
  override name = 'KernelError';
  declare readonly code: KernelErrno;

  constructor(code: KernelErrno, message: string) {
    super(code, `${code}: ${message}`);
  }
}

export function isKernelError(value: unknown): value is KernelError {
  return value instanceof KernelError;
}
