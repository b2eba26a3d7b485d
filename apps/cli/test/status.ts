import { vi } from 'vitest';
import { run } from './run.js';

/** What a command printed on stdout and stderr, the exit code it set, and what it threw. */
export interface Outcome {
  out: string;
  err: string;
  /** process.exitCode, or 1 when the command threw (main.ts prints the message and exits 1). */
  code: number;
  error?: { code?: string; message: string };
}

/** Runs the CLI in-process like run(), also capturing stderr, the exit code and a thrown error. */
export async function runStatus(args: string[]): Promise<Outcome> {
  let err = '';
  const write = vi
    .spyOn(process.stderr, 'write')
    .mockImplementation((chunk: string | Uint8Array) => {
      err += typeof chunk === 'string' ? chunk : new TextDecoder().decode(chunk);
      return true;
    });
  const error = vi.spyOn(console, 'error').mockImplementation((...parts: unknown[]) => {
    err += `${parts.join(' ')}\n`;
  });
  process.exitCode = undefined;
  try {
    const out = await run(args);
    return { out, err, code: Number(process.exitCode ?? 0) };
  } catch (e) {
    return { out: '', err, code: 1, error: e as { code?: string; message: string } };
  } finally {
    process.exitCode = undefined;
    write.mockRestore();
    error.mockRestore();
  }
}
