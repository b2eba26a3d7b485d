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
export class BtfError extends Error {
  readonly errno: Errno;
  readonly typeId: number | undefined;
  readonly offset: number | undefined;

  constructor(errno: Errno, message: string, where: BtfErrorPosition = {}) {
    const parts: string[] = [];
    if (where.typeId !== undefined) parts.push(`type id ${where.typeId}`);
    if (where.offset !== undefined) parts.push(`offset ${where.offset}`);
    super(parts.length ? `${errno}: ${message} (${parts.join(', ')})` : `${errno}: ${message}`);
    this.name = 'BtfError';
    this.errno = errno;
    this.typeId = where.typeId;
    this.offset = where.offset;
  }
}
