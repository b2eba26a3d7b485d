import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { TracelabError } from '@tracelab/contracts';
import { Engine } from '../src/engine.js';

/** A clang-built object from the loader's fixtures. */
export const fixture = (name: string): Uint8Array =>
  readFileSync(fileURLToPath(new URL(`../../loader/testdata/${name}`, import.meta.url)));

/** The engine most specs use: x86_64, two CPUs, seed 3. */
export function engine(): Engine {
  const e = Engine.create({ arch: 'x86_64', cpus: 2, seed: 3 });
  if (e instanceof TracelabError) throw e;
  return e;
}

export function ok<T>(v: T): Exclude<T, Error> {
  if (v instanceof Error) throw v;
  return v as Exclude<T, Error>;
}
