import type { ConsumeOptions } from './bus.js';
import { BusError } from './errors.js';

function positive(value: number, what: string): void {
  if (!Number.isFinite(value) || value <= 0) {
    throw new BusError('EINVAL', `${what} must be a positive finite number, got ${value}`);
  }
}

export function validateTimeout(timeoutMs: number): void {
  positive(timeoutMs, 'timeoutMs');
}

export function validateConsumeOptions(options: ConsumeOptions): void {
  if (options.ackWaitMs !== undefined) positive(options.ackWaitMs, 'ackWaitMs');
  if (options.maxAckPending !== undefined) {
    positive(options.maxAckPending, 'maxAckPending');
    if (!Number.isInteger(options.maxAckPending)) {
      throw new BusError(
        'EINVAL',
        `maxAckPending must be an integer, got ${options.maxAckPending}`,
      );
    }
  }
}
