import { TracelabError } from '@tracelab/contracts';

/**
 * A layer's message without the errno name some layers start it with: main.ts and the dumps
 * print the errno once, in front.
 */
export function bareMessage(err: TracelabError): string {
  return err.message.startsWith(`${err.code}: `)
    ? err.message.slice(err.code.length + 2)
    : err.message;
}

/** A layer's error with what the command was doing in front. */
export function inContext(context: string, err: TracelabError): TracelabError {
  return new TracelabError(err.code, `${context}${bareMessage(err)}`);
}

/** A layer's error about a file, with the file's name in front. */
export function aboutFile(file: string, err: TracelabError, what = ''): TracelabError {
  return inContext(`${file}: ${what}`, err);
}
