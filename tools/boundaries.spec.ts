// The layer table is enforced by lint: an import from a higher row must fail, one from a lower
// row must pass. This runs the repo's own eslint config on in-memory sources placed in packages.
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { ESLint } from 'eslint';
import { beforeAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const RULE = '@nx/enforce-module-boundaries';

async function boundaryErrors(file: string, source: string): Promise<string[]> {
  const eslint = new ESLint({ cwd: root });
  const [result] = await eslint.lintText(source, { filePath: resolve(root, file) });
  // an ignored or unparsable file would pass vacuously
  expect(result?.messages.filter((m) => m.fatal === true || m.severity === 1)).toEqual([]);
  return (result?.messages ?? []).filter((m) => m.ruleId === RULE).map((m) => m.message);
}

describe('layer boundaries', () => {
  beforeAll(() => {
    // the rule reads nx's cached project graph; make sure one exists on a fresh clone
    execFileSync('pnpm', ['exec', 'nx', 'show', 'projects'], { cwd: root, stdio: 'ignore' });
  }, 120_000);

  it.each([
    ['packages/btf/src/upward.ts', '@tracelab/fprobe', 'row 0 importing row 5'],
    ['packages/vm/src/upward.ts', '@tracelab/kernel', 'row 1 importing row 2'],
    ['packages/ftrace-core/src/upward.ts', '@tracelab/engine', 'row 3 importing row 6'],
    ['packages/engine/src/upward.ts', '@tracelab/agent', 'a library importing an app'],
  ])(
    '%s importing %s fails lint (%s)',
    async (file, target) => {
      const errors = await boundaryErrors(file, `export * from '${target}';\n`);
      expect(errors.length).toBeGreaterThan(0);
    },
    60_000,
  );

  it.each([
    ['packages/fprobe/src/downward.ts', '@tracelab/btf'],
    ['packages/bus/src/same-row.ts', '@tracelab/vm'],
    ['apps/cli/src/app.ts', '@tracelab/gateway'],
  ])(
    '%s importing %s passes',
    async (file, target) => {
      expect(await boundaryErrors(file, `export * from '${target}';\n`)).toEqual([]);
    },
    60_000,
  );
});
