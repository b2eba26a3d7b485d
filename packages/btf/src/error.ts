import { TracelabError } from '@tracelab/contracts';

/** Kernel errno names used by BTF errors. */
export type Errno = 'EINVAL' | 'ENOENT' | 'E2BIG' | 'EOPNOTSUPP' | 'ENOTSUP' | 'ELOOP';

/** Where in a blob or type graph an error was found. */
export interface BtfErrorPosition {
  /** Type id the error concerns, when it concerns one. */
  typeId?: number;
  /** Byte offset inside the blob, when the error concerns bytes. */
  offset?: number;
}

/**
 * The error value every btf API raises or returns: an errno code as the kernel
 * would report it, plus the type id and/or byte offset that failed.
 */
export class BtfError extends TracelabError {
  override name = 'BtfError';
  declare readonly code: Errno;
  readonly typeId: number | undefined;
  readonly offset: number | undefined;

  constructor(code: Errno, message: string, where: BtfErrorPosition = {}) {
    const parts: string[] = [];
    if (where.typeId !== undefined) parts.push(`type id ${where.typeId}`);
    if (where.offset !== undefined) parts.push(`offset ${where.offset}`);
    super(
      code,
      parts.length ? `${code}: ${message} (${parts.join(', ')})` : `${code}: ${message}`,
      where.offset === undefined ? undefined : { offset: where.offset },
    );
    this.typeId = where.typeId;
    this.offset = where.offset;
  }
}
