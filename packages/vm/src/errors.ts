import { TracelabError } from '@tracelab/contracts';

/** Kernel errno names the vm reports. */
export type Errno =
  | 'EPERM'
  | 'ENOENT'
  | 'E2BIG'
  | 'ENOEXEC'
  | 'EBADF'
  | 'EAGAIN'
  | 'ENOMEM'
  | 'EFAULT'
  | 'EBUSY'
  | 'EEXIST'
  | 'EINVAL'
  | 'ENOSPC'
  | 'ERANGE'
  | 'ELOOP'
  | 'EOPNOTSUPP';

/**
 * An error value with a kernel errno. Control-plane functions return it instead of throwing so
 * callers handle it as data; it is an Error so a caller may still choose to throw it.
 */
export class VmError extends TracelabError {
  override name = 'VmError';
  declare readonly code: Errno;

  constructor(code: Errno, message: string) {
    super(code, `${code}: ${message}`);
  }
}

export function isVmError(value: unknown): value is VmError {
  return value instanceof VmError;
}
