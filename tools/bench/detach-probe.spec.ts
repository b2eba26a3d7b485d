// The package scripts must start node so that nothing on the main thread detaches an ArrayBuffer
// (see detach-probe.ts): one detach adds a check to every typed-array access of the traced path.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const probe = resolve(import.meta.dirname, 'detach-probe.ts');
const scripts = (
  JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  }
).scripts;

/** The node flags a package script starts with (`node --a --b=c x.ts ...` gives --a, --b=c). */
function nodeFlags(name: string): string[] {
  const words = (scripts[name] ?? '').split(/\s+/);
  expect(words[0], `script '${name}' starts node`).toBe('node');
  const flags: string[] = [];
  for (let i = 1; i < words.length && (words[i] as string).startsWith('--'); i++) {
    const w = words[i] as string;
    flags.push(w);
    if (w === '--import' || w === '--require') flags.push(words[++i] as string);
  }
  return flags;
}

async function runProbe(flags: string[], extra: string[] = []): Promise<string> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [...flags, '--allow-natives-syntax', probe, ...extra],
    { cwd: root, encoding: 'utf8' },
  );
  return stdout.trim().split('\n').at(-1) ?? '';
}

describe('typed-array detach protector', () => {
  it.each(['bench', 'start', 'tracelab'])(
    "stays intact in a process started as 'pnpm %s' after a traced call",
    async (name) => {
      expect(await runProbe(nodeFlags(name))).toBe('intact');
    },
    60_000,
  );

  it('the probe sees a detach on the main thread', async () => {
    expect(await runProbe(nodeFlags('bench'), ['--detach'])).toBe('invalidated');
  }, 60_000);
});
