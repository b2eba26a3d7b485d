import { TracelabError, type ErrnoCode, type ErrorDetails } from '@tracelab/contracts';

/** An ftrace failure: a kernel errno (`-EBUSY` from a second IPMODIFY, ...) and a message. */
export class FtraceError extends TracelabError {
  constructor(code: ErrnoCode, message: string, details?: ErrorDetails) {
    super(code, message, details);
  }
}
