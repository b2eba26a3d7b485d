import { TracelabError } from '@tracelab/contracts';
/** Kernel errno names the loader reports (libbpf returns the same codes, negated). */
const LOADER_ERRNOS = [
  'EINVAL',
  'ENOENT',
  'E2BIG',
  'ENOEXEC',
  'EOPNOTSUPP',
  'ESRCH',
  'EEXIST',
  'ENOSPC',
  'EFAULT',
  'ENOMEM',
  // The verifier's rejections, as BPF_PROG_LOAD returns them.
  'EACCES',
  'ENOTSUPP',
] as const;

export type LoaderErrno = (typeof LOADER_ERRNOS)[number];

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
export class LoaderError extends TracelabError {
  override name = 'LoaderError';
  declare readonly code: LoaderErrno;
  readonly section: string | undefined;
  readonly offset: number | undefined;
  /** The verifier's log, when the verifier rejected a program at load. */
  readonly log: string | undefined;
  /** The rejected instruction's source line (`text @ file.c:N`), from line_info. */
  readonly source: string | undefined;
  /** The program the verifier rejected, and the verifier's own message. */
  readonly program: string | undefined;
  readonly reason: string | undefined;

  constructor(
    code: LoaderErrno,
    message: string,
    where: LoaderErrorPosition = {},
    verifier: { log?: string; source?: string; program?: string; reason?: string } = {},
  ) {
    const parts: string[] = [];
    if (where.section !== undefined) parts.push(`section ${where.section}`);
    if (where.offset !== undefined) parts.push(`offset 0x${where.offset.toString(16)}`);
    super(
      code,
      parts.length ? `${code}: ${message} (${parts.join(', ')})` : `${code}: ${message}`,
      where.offset === undefined ? undefined : { offset: where.offset },
    );
    this.section = where.section;
    this.offset = where.offset;
    this.log = verifier.log;
    this.source = verifier.source;
    this.program = verifier.program;
    this.reason = verifier.reason;
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
    const code: LoaderErrno =
      e instanceof TracelabError && (LOADER_ERRNOS as readonly string[]).includes(e.code)
        ? (e.code as LoaderErrno)
        : 'EINVAL';
    const msg = e instanceof Error ? e.message : String(e);
    throw new LoaderError(code, `${what}: ${msg}`, where);
  }
}
