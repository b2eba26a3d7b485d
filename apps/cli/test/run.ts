import { vi } from 'vitest';
import { buildProgram } from '../src/index.js';

/** Runs the CLI in-process and returns what it printed; errors reject as the CLI would report them. */
export async function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  let out = '';
  const log = vi.spyOn(console, 'log').mockImplementation((...parts: unknown[]) => {
    out += `${parts.join(' ')}\n`;
  });
  const write = vi
    .spyOn(process.stdout, 'write')
    .mockImplementation((chunk: string | Uint8Array) => {
      out += typeof chunk === 'string' ? chunk : new TextDecoder().decode(chunk);
      return true;
    });
  try {
    const program = buildProgram(env, (p) =>
      p
        .exitOverride()
        .configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (out += s) }),
    );
    await program.parseAsync(['node', 'tracelab', ...args]);
  } catch (err) {
    // commander ends --help and --version by throwing after printing, when exits are overridden
    if ((err as { exitCode?: number }).exitCode !== 0) throw err;
  } finally {
    log.mockRestore();
    write.mockRestore();
  }
  return out;
}
