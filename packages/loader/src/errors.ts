/** Kernel errno names the loader reports (libbpf returns the same codes, negated). */
export type LoaderErrno =
  | 'EINVAL'
  | 'ENOENT'
  | 'E2BIG'
  | 'ENOEXEC'
  | 'EOPNOTSUPP'
  | 'ESRCH'
  | 'EEXIST'
  | 'ENOSPC'
  | 'EFAULT'
  | 'ENOMEM';

const ERRNO_NUMBERS: Record<LoaderErrno, number> = {
  ENOENT: 2,
  ESRCH: 3,
  E2BIG: 7,
  ENOEXEC: 8,
  ENOMEM: 12,
  EFAULT: 14,
  EEXIST: 17,
  EINVAL: 22,
  ENOSPC: 28,
  EOPNOTSUPP: 95,
};

/** Where in an object an error was found. */
export interface LoaderErrorPosition {
  /** Section name (or `section #N` when its name is unreadable). */
  section?: string;
  /** Byte offset: inside the section when section is set, else inside the file. */
  offset?: number;
}

/**
 * The one error type the loader raises: an errno code plus the section and offset that failed.
 * Hostile input never escapes as anything else (parsers wrap lower-level errors in it).
 */
export class LoaderError extends Error {
  override readonly name = 'LoaderError';
  readonly errno: LoaderErrno;
  readonly section: string | undefined;
  readonly offset: number | undefined;

  constructor(errno: LoaderErrno, message: string, where: LoaderErrorPosition = {}) {
    const parts: string[] = [];
    if (where.section !== undefined) parts.push(`section ${where.section}`);
    if (where.offset !== undefined) parts.push(`offset 0x${where.offset.toString(16)}`);
    super(parts.length ? `${errno}: ${message} (${parts.join(', ')})` : `${errno}: ${message}`);
    this.errno = errno;
    this.section = where.section;
    this.offset = where.offset;
  }

  /** The negative errno libbpf would return (-EINVAL is -22). */
  get code(): number {
    return -ERRNO_NUMBERS[this.errno];
  }
}

export function isLoaderError(value: unknown): value is LoaderError {
  return value instanceof LoaderError;
}

/** Runs fn, turning any foreign error (btf, vm, RangeError) into a LoaderError at `where`. */
export function wrapErrors<T>(where: LoaderErrorPosition, what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof LoaderError) throw e;
    const errno = (e as { errno?: unknown }).errno;
    const code: LoaderErrno =
      typeof errno === 'string' && errno in ERRNO_NUMBERS ? (errno as LoaderErrno) : 'EINVAL';
    const msg = e instanceof Error ? e.message : String(e);
    throw new LoaderError(code, `${what}: ${msg}`, where);
  }
}
