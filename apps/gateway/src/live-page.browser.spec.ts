import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auth, startTestStack, type TestStack } from '../test/stack.js';

/** Debian's chromium (`apt-get install chromium`; .ci/run installs it). */
const CHROMIUM = '/usr/bin/chromium';
const found = existsSync(CHROMIUM);
const title = found
  ? 'the live page in headless Chromium'
  : `the live page in headless Chromium: SKIPPED, no chromium binary at ${CHROMIUM} (apt-get install chromium)`;

describe.skipIf(!found)(title, () => {
  let stack: TestStack;
  let browser: Browser;
  let url: string;
  beforeAll(async () => {
    stack = await startTestStack();
    url = await stack.app.listen({ host: '127.0.0.1', port: 0 });
    // root in a container has no user namespace for Chromium's sandbox
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await stack?.close();
  });

  it('renders the events of a workload run from the SSE stream', async () => {
    const page = await browser.newPage();
    await page.goto(url);
    await page.locator('#status', { hasText: 'live: m1 trace' }).waitFor({ timeout: 20_000 });

    const put = (file: string, data: string) =>
      stack.app.inject({
        method: 'PUT',
        url: `/v1/agents/m1/tracefs/${file}`,
        payload: data,
        headers: { ...auth, 'content-type': 'text/plain' },
      });
    expect((await put('set_ftrace_filter', 'vfs_read')).statusCode).toBe(200);
    expect((await put('current_tracer', 'function')).statusCode).toBe(200);
    const run = await stack.app.inject({
      method: 'POST',
      url: '/v1/agents/m1/run',
      payload: { workload: 'syscalls' },
      headers: auth,
    });
    expect(run.statusCode).toBe(200);

    // what the kernel's trace file holds is what the page must show, line for line
    const trace = (await stack.app.inject({ method: 'GET', url: '/v1/agents/m1/tracefs/trace' }))
      .body;
    const expected = trace.split('\n').filter((l) => l.includes(' vfs_read <-'));
    expect(expected.length).toBeGreaterThan(0);
    const rendered = page.locator('#lines div', { hasText: ' vfs_read <-' });
    await expect.poll(() => rendered.count(), { timeout: 20_000 }).toBe(expected.length);
    const texts = await rendered.allTextContents();
    expect(texts.map((t) => t.trim().split(/\s+/).slice(-2).join(' '))).toEqual(
      expected.map((l) => l.trim().split(/\s+/).slice(-2).join(' ')),
    );
    await page.close();
  }, 60_000);
});
