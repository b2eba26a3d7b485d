import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface NatsServer {
  /** Client URL, e.g. nats://127.0.0.1:43117. */
  readonly url: string;
  readonly port: number;
  /** The temporary directory holding the config, the ports file and the JetStream store. */
  readonly dir: string;
  /** Kills the server and removes its temporary directory. */
  stop(): Promise<void>;
}

export interface StartNatsServerOptions {
  /** How long to wait for the server to announce its port (default 10 s). */
  startTimeoutMs?: number;
}

// Debian installs nats-server into /usr/sbin, which is not on a non-root user's PATH.
const EXTRA_DIRS = ['/usr/sbin', '/usr/local/sbin'];

/** The nats-server executable in `dirs` (default: PATH, then the sbin directories). */
export async function findNatsServer(
  dirs: readonly string[] = [
    ...(process.env['PATH'] ?? '').split(delimiter).filter(Boolean),
    ...EXTRA_DIRS,
  ],
): Promise<string> {
  for (const dir of dirs) {
    const candidate = join(dir, 'nats-server');
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory; keep looking
    }
  }
  throw new Error(
    'nats-server not found on PATH: install the Debian package `nats-server` ' +
      '(apt-get install nats-server) to run NATS integration tests',
  );
}

/** Quotes a path for the NATS config format (a JSON string is a valid NATS string). */
function confString(value: string): string {
  return JSON.stringify(value);
}

/**
 * Starts a private nats-server with JetStream on a free loopback port (port -1), everything in a
 * fresh temporary directory, and learns the port from the server's ports file. Never touches 4222.
 */
export async function startNatsServer(options: StartNatsServerOptions = {}): Promise<NatsServer> {
  const bin = await findNatsServer();
  const dir = await mkdtemp(join(tmpdir(), 'tracelab-nats-'));
  const conf = join(dir, 'nats.conf');
  await writeFile(
    conf,
    [
      'host: 127.0.0.1',
      'port: -1',
      `ports_file_dir: ${confString(dir)}`,
      `jetstream { store_dir: ${confString(join(dir, 'jetstream'))} }`,
      '',
    ].join('\n'),
  );
  const child = spawn(bin, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    // Keep only the tail: enough to explain a failed start.
    stderr = (stderr + chunk).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    await kill(child, exited);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const url = await waitForPortsFile(dir, child, options.startTimeoutMs ?? 10_000, () => stderr);
    return { url, port: Number(new URL(url).port), dir, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function waitForPortsFile(
  dir: string,
  child: ChildProcess,
  timeoutMs: number,
  stderr: () => string,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`nats-server exited during start-up:\n${stderr()}`);
    }
    const name = (await readdir(dir)).find((f) => f.endsWith('.ports'));
    if (name) {
      // The server writes the file once its listeners are up; a partial read just retries.
      const text = await readFile(join(dir, name), 'utf8');
      try {
        const ports = JSON.parse(text) as { nats?: string[] };
        const url = ports.nats?.[0];
        if (url) return url;
      } catch {
        // partially written; read again on the next turn
      }
    }
    if (Date.now() > deadline) {
      throw new Error(`nats-server did not report its port within ${timeoutMs} ms:\n${stderr()}`);
    }
    await sleep(20);
  }
}

async function kill(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const stopped = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]);
  if (!stopped) {
    child.kill('SIGKILL');
    await exited;
  }
}
