import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Progress } from './progress.js';

/** A stream that records what is written to it, a terminal or not. */
function stream(
  isTTY: boolean,
): Writable & { isTTY: boolean; columns: number; text: () => string } {
  const chunks: string[] = [];
  const s = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return Object.assign(s, { isTTY, columns: 80, text: () => chunks.join('') });
}

describe('Progress', () => {
  it.each([
    { name: 'a terminal, enabled', isTTY: true, enabled: true, drawn: true },
    { name: 'a pipe', isTTY: false, enabled: true, drawn: false },
    { name: 'a terminal, short work', isTTY: true, enabled: false, drawn: false },
  ])(
    'on $name: drawn $drawn, the steps run and return either way',
    async ({ isTTY, enabled, drawn }) => {
      const out = stream(isTTY);
      const p = new Progress(2, enabled, out);
      expect(await p.step('reading vmlinux', () => 41)).toBe(41);
      expect(await p.step('attaching', () => Promise.resolve('ok'))).toBe('ok');
      p.stop();
      expect(out.text().includes('reading vmlinux')).toBe(drawn);
      // each step is drawn before it runs, with the steps done so far
      if (drawn) expect(out.text()).toMatch(/0\/2 reading vmlinux[^]*1\/2 attaching/);
    },
  );

  it('stops the bar when a step throws, and passes the error on', async () => {
    const out = stream(true);
    const p = new Progress(1, true, out);
    await expect(
      p.step('building the kernel', () => {
        throw new Error('no symbol');
      }),
    ).rejects.toThrow('no symbol');
    // the bar's line is cleared (ESC [2K) so the error message gets a clean line
    expect(out.text()).toContain('building the kernel');
    expect(out.text().endsWith('\u001b[2K')).toBe(true);
  });
});
