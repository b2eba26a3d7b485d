import { readFileSync } from 'node:fs';

/** tracelab's version: the cli package's, read at run time so src and dist agree. */
export const VERSION = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;
