import { TracelabError } from '@tracelab/contracts';

/** Kernel errno names that arch-isa reports. */
export type ArchErrno = 'ENOENT' | 'E2BIG' | 'EFAULT' | 'EINVAL' | 'ERANGE' | 'EOPNOTSUPP';

/**
 * An error value with a kernel errno. Validating functions return it rather than throw, so callers
 * treat bad input as data; contract violations (reading a register an ftrace_regs does not hold in
 * strict mode) throw it.
 */
export class ArchError extends TracelabError {
  override name = 'ArchError';
  declare readonly code: ArchErrno;

  constructor(code: ArchErrno, message: string) {
    super(code, `${code}: ${message}`);
  }
}

export function isArchError(value: unknown): value is ArchError {
  return value instanceof ArchError;
}
