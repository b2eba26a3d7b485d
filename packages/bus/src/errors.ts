/** Codes the adapters raise themselves; a remote handler may forward any other errno-style code. */
export const BUS_ERROR_CODES = [
  'EINVAL',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ECONNREFUSED',
  'ENOENT',
  'EEXIST',
  'ESHUTDOWN',
  'EIO',
] as const;

export type KnownBusErrorCode = (typeof BUS_ERROR_CODES)[number];
// `string & {}` keeps editor completion for the known codes while admitting forwarded ones.
export type BusErrorCode = KnownBusErrorCode | (string & {});

export interface BusErrorOptions {
  cause?: unknown;
  /** True when the error was raised by the responder's handler, not by the bus. */
  remote?: boolean;
}

/**
 * The one error type of the bus. `code` is errno-style:
 * EINVAL bad subject/name/option, ETIMEDOUT request timeout, EHOSTUNREACH no responders,
 * ECONNREFUSED cannot connect to the server,
 * ENOENT unknown stream, EEXIST stream subjects overlap another stream, ESHUTDOWN bus closed,
 * EIO anything else the transport reports.
 */
export class BusError extends Error {
  override readonly name = 'BusError';
  readonly code: BusErrorCode;
  readonly remote: boolean;

  constructor(code: BusErrorCode, message: string, options: BusErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.remote = options.remote ?? false;
  }
}

export function isBusError(err: unknown, code?: BusErrorCode): err is BusError {
  return err instanceof BusError && (code === undefined || err.code === code);
}

const ERRNO = /^E[A-Z0-9]+$/;

/** The code a handler's error travels with: its own errno-style `code` if it has one, else EIO. */
export function errorCodeOf(err: unknown): BusErrorCode {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    if (typeof code === 'string' && ERRNO.test(code)) return code;
  }
  return 'EIO';
}

export function errorMessageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
