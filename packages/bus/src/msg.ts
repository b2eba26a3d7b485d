import type { BusErrorSink, BusMsg } from './bus.js';
import { decodeJson, decodeText } from './codec.js';

export function busMsg(subject: string, data: Uint8Array): BusMsg {
  return {
    subject,
    data,
    string: () => decodeText(data),
    json: <T>() => decodeJson<T>(data),
  };
}

/** Calls a user handler without awaiting it; a throw or rejection goes to the sink. */
export function invoke<M>(
  handler: (msg: M) => void | Promise<void>,
  msg: M,
  sink: BusErrorSink,
  context: string,
): void {
  try {
    const result = handler(msg);
    if (result instanceof Promise) result.catch((err: unknown) => sink(err, context));
  } catch (err) {
    sink(err, context);
  }
}

export const defaultErrorSink: BusErrorSink = (err, context) => {
  console.error(`[tracelab/bus] ${context}:`, err);
};

/** Headers that carry a handler's error back to the requester (both adapters use the same names). */
export const ERROR_CODE_HEADER = 'Tracelab-Error-Code';
export const ERROR_MESSAGE_HEADER = 'Tracelab-Error';
