import { TracelabError } from '@tracelab/contracts';

/**
 * A layer's error with what the command was doing in front. Some layers already start their
 * message with the errno name; main.ts prints the errno once, so it is taken off here.
 */
export function inContext(context: string, err: TracelabError): TracelabError {
  const message = err.message.startsWith(`${err.code}: `)
    ? err.message.slice(err.code.length + 2)
    : err.message;
  return new TracelabError(err.code, `${context}${message}`);
}

/** A layer's error about a file, with the file's name in front. */
export function aboutFile(file: string, err: TracelabError, what = ''): TracelabError {
  return inContext(`${file}: ${what}`, err);
}
