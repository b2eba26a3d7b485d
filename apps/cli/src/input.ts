import { readFileSync } from 'node:fs';
import { TracelabError } from '@tracelab/contracts';

/** Reads an input file, turning the OS error into an errno error that names the file. */
export function readInput(file: string): Uint8Array {
  try {
    return readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new TracelabError('ENOENT', `${file}: no such file`);
    if (code === 'EACCES') throw new TracelabError('EACCES', `${file}: permission denied`);
    if (code === 'EISDIR') throw new TracelabError('EINVAL', `${file}: is a directory`);
    throw new TracelabError('EIO', `${file}: ${(err as Error).message}`);
  }
}
