/** Kernel errno numbers (include/uapi/asm-generic/errno-base.h) that arch-isa reports. */
export const ERRNO = {
  ENOENT: 2,
  E2BIG: 7,
  EFAULT: 14,
  EINVAL: 22,
  ERANGE: 34,
  EOPNOTSUPP: 95,
} as const;

export type ArchErrno = keyof typeof ERRNO;

/**
 * An error value with a kernel errno. Validating functions return it rather than throw, so callers
 * treat bad input as data; contract violations (reading a register an ftrace_regs does not hold in
 * strict mode) throw it.
 */
export class ArchError extends Error {
  readonly errno: ArchErrno;
  override readonly name = 'ArchError';

  constructor(errno: ArchErrno, message: string) {
    super(`${errno}: ${message}`);
    this.errno = errno;
  }

  /** The negative errno a kernel function would return (-EINVAL is -22). */
  get code(): number {
    return -ERRNO[this.errno];
  }
}

export function isArchError(value: unknown): value is ArchError {
  return value instanceof ArchError;
}
