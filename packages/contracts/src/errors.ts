import { z } from 'zod';

/**
 * errno values as Linux defines them (include/uapi/asm-generic/errno-base.h, errno.h). Every layer
 * reports failures with these codes so a kernel developer reads them as the kernel would return
 * them (`-ENOENT` from register_fprobe, `-E2BIG` from a trampoline with too many links, ...).
 */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  E2BIG: 7,
  ENOEXEC: 8,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ENOSPC: 28,
  ERANGE: 34,
  ENOSYS: 38,
  ELOOP: 40,
  EPROTO: 71,
  ENOTSUPP: 524,
  EOPNOTSUPP: 95,
  // the kernel's ENOTSUP is another name for EOPNOTSUPP
  ENOTSUP: 95,
  ENOTCONN: 107,
  ESHUTDOWN: 108,
  ETIMEDOUT: 110,
  ECONNREFUSED: 111,
  EHOSTUNREACH: 113,
  ECANCELED: 125,
} as const;

export type ErrnoCode = keyof typeof ERRNO;

const codes = Object.keys(ERRNO) as [ErrnoCode, ...ErrnoCode[]];
export const ErrnoCodeSchema = z.enum(codes);

/** Where in the input an error was found: a field path, a byte offset, a line and column. */
export const ErrorDetailsSchema = z
  .object({
    path: z.array(z.union([z.string(), z.number().int()])).optional(),
    offset: z.number().int().nonnegative().optional(),
    line: z.number().int().positive().optional(),
    column: z.number().int().positive().optional(),
    issues: z
      .array(
        z.object({
          path: z.array(z.union([z.string(), z.number().int()])),
          message: z.string(),
        }),
      )
      .optional(),
  })
  .strict();
export type ErrorDetails = z.infer<typeof ErrorDetailsSchema>;

/** The error that crosses a process boundary (bus reply, HTTP body, CLI --json output). */
export const ErrorEnvelopeSchema = z
  .object({
    code: ErrnoCodeSchema,
    errno: z.number().int().positive(),
    message: z.string().min(1),
    details: ErrorDetailsSchema.optional(),
  })
  .strict();
export type ErrorEnvelope = z.infer<typeof ErrorEnvelopeSchema>;

/**
 * An error value with a kernel errno code and a message for people, the one error type of every
 * layer (layers subclass it to add where the error is: a type id, a section, an offset). As in
 * Node.js, `code` is the errno name and `errno` the negative number a kernel function returns.
 */
export class TracelabError extends Error {
  // each layer's subclass names itself (ArchError, BtfError, ...)
  override name = 'TracelabError';
  readonly code: ErrnoCode;
  readonly details: ErrorDetails | undefined;

  constructor(code: ErrnoCode, message: string, details?: ErrorDetails) {
    super(message);
    this.code = code;
    this.details = details;
  }

  /** The negative value a kernel function would return for this error. */
  get errno(): number {
    return -ERRNO[this.code];
  }

  toEnvelope(): ErrorEnvelope {
    const envelope: ErrorEnvelope = {
      code: this.code,
      errno: ERRNO[this.code],
      message: this.message,
    };
    if (this.details !== undefined) envelope.details = this.details;
    return envelope;
  }

  static fromEnvelope(envelope: ErrorEnvelope): TracelabError {
    return new TracelabError(envelope.code, envelope.message, envelope.details);
  }
}

/** Turns zod issues into error details that name each failing field. */
export function issuesToDetails(issues: readonly z.core.$ZodIssue[]): ErrorDetails {
  return {
    path: issues[0] ? issues[0].path.map(pathKey) : [],
    issues: issues.map((issue) => ({ path: issue.path.map(pathKey), message: issue.message })),
  };
}

function pathKey(key: PropertyKey): string | number {
  return typeof key === 'number' ? key : String(key);
}

/** Formats a zod path as `a.b[2].c` for messages. */
export function formatPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const key of path)
    out += typeof key === 'number' ? `[${key}]` : out === '' ? key : `.${key}`;
  return out === '' ? '(root)' : out;
}

/**
 * Parses untrusted input with a schema; failure is an EINVAL TracelabError whose message names
 * the first failing field and whose details list every issue.
 */
export function parseOrThrow<T>(schema: z.ZodType<T>, input: unknown, what: string): T {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const details = issuesToDetails(result.error.issues);
  const first = result.error.issues[0];
  const where = first ? formatPath(first.path.map(pathKey)) : '(root)';
  throw new TracelabError(
    'EINVAL',
    `invalid ${what}: ${where}: ${first?.message ?? 'bad input'}`,
    details,
  );
}
