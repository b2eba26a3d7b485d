import { access } from 'node:fs/promises';
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { findNatsServer, startNatsServer } from './nats-server.js';

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('startNatsServer', () => {
  it('starts a private server on a free loopback port and removes everything on stop', async () => {
    const [a, b] = await Promise.all([startNatsServer(), startNatsServer()]);
    try {
      expect(a.url).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/);
      expect(a.port).not.toBe(b.port);
      expect(a.port).not.toBe(4222);
      expect(await canConnect(a.port)).toBe(true);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
    expect(await canConnect(a.port)).toBe(false);
    await expect(access(a.dir)).rejects.toThrow();
  });

  it('tells to install the Debian package when nats-server is missing', async () => {
    await expect(findNatsServer([])).rejects.toThrow(/install the Debian package `nats-server`/);
  });
});
