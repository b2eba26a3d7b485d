/** Kernel errno numbers (include/uapi/asm-generic/errno-base.h and errno.h) used by the vm. */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  E2BIG: 7,
  ENOEXEC: 8,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  EINVAL: 22,
  ENOSPC: 28,
  ERANGE: 34,
  ELOOP: 40,
  EOPNOTSUPP: 95,
} as const;

export type Errno = keyof typeof ERRNO;

/**
 * An error value with a kernel errno. Control-plane functions return it instead of throwing so
 * callers handle it as data; it extends Error so a caller may still choose to throw it.
 */
export class VmError extends Error {
  readonly errno: Errno;
  override readonly name = 'VmError';

  constructor(errno: Errno, message: string) {
    super(`${errno}: ${message}`);
    this.errno = errno;
  }

  /** The negative errno a kernel function would return (-EINVAL is -22). */
  get code(): number {
    return -ERRNO[this.errno];
  }
}

export function isVmError(value: unknown): value is VmError {
  return value instanceof VmError;
}
