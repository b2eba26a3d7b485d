/** Kernel errno numbers (include/uapi/asm-generic/errno-base.h) the simulated kernel reports. */
export const ERRNO = {
  ENOENT: 2,
  E2BIG: 7,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  EINVAL: 22,
  ENOSPC: 28,
  ERANGE: 34,
  ELOOP: 40,
  EOPNOTSUPP: 95,
} as const;

export type KernelErrno = keyof typeof ERRNO;

/** An error value with a kernel errno, returned (not thrown) for bad input. */
export class KernelError extends Error {
  readonly errno: KernelErrno;
  override readonly name = 'KernelError';

  constructor(errno: KernelErrno, message: string) {
    super(`${errno}: ${message}`);
    this.errno = errno;
  }

  /** The negative errno a kernel function would return (-EINVAL is -22). */
  get code(): number {
    return -ERRNO[this.errno];
  }
}

export function isKernelError(value: unknown): value is KernelError {
  return value instanceof KernelError;
}
