import { afterEach, describe, expect, it } from 'vitest';
import {
  BusError,
  decodeJson,
  encodeJson,
  encodeText,
  type Bus,
  type BusErrorSink,
  type BusMsg,
  type StreamMsg,
} from '../src/index.js';

/** Each call returns a new connection to the same backing server (or broker). */
export type MakeBus = (options: { onError?: BusErrorSink }) => Promise<Bus>;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

async function rejection(promise: Promise<unknown>): Promise<BusError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BusError);
  return err as BusError;
}

let counter = 0;
/** Subjects and stream names unique per test, so tests on one server never see each other. */
function unique(prefix: string): string {
  counter += 1;
  return `${prefix}${counter}x${Math.random().toString(36).slice(2, 8)}`;
}

/** The behaviour every Bus adapter must show; run it against each adapter's factory. */
export function busContract(makeBus: MakeBus): void {
  const opened: Bus[] = [];
  const open = async (onError?: BusErrorSink): Promise<Bus> => {
    const bus = await makeBus({ onError });
    opened.push(bus);
    return bus;
  };

  afterEach(async () => {
    await Promise.all(opened.splice(0).map((bus) => bus.close()));
  });

  describe('request/reply', () => {
    it('answers a request with the handler reply, JSON helpers round-trip', async () => {
      const [server, client] = [await open(), await open()];
      const subject = unique('svc.echo.');
      await server.serve(subject, (msg) => encodeJson({ got: msg.json<{ n: number }>().n * 2 }));
      const reply = await client.request(subject, encodeJson({ n: 21 }), { timeoutMs: 2000 });
      expect(reply.json()).toEqual({ got: 42 });
      expect(decodeJson(reply.data)).toEqual({ got: 42 });
    });

    it('rejects with BusError ETIMEDOUT when the responder is too slow', async () => {
      const [server, client] = [await open(), await open()];
      const subject = unique('svc.slow.');
      await server.serve(subject, async () => {
        await sleep(400);
        return encodeText('late');
      });
      const err = await rejection(client.request(subject, encodeText('x'), { timeoutMs: 50 }));
      expect(err.code).toBe('ETIMEDOUT');
      expect(err.remote).toBe(false);
    });

    it('rejects at once with EHOSTUNREACH when nobody serves the subject', async () => {
      const client = await open();
      const started = Date.now();
      const err = await rejection(
        client.request(unique('svc.nobody.'), encodeText('x'), { timeoutMs: 5000 }),
      );
      expect(err.code).toBe('EHOSTUNREACH');
      expect(Date.now() - started).toBeLessThan(2000);
    });

    it('carries a handler error to the requester as a remote BusError with its code', async () => {
      const [server, client] = [await open(), await open()];
      const subject = unique('svc.fail.');
      await server.serve(subject, (msg) => {
        if (msg.string() === 'typed') throw new BusError('E2BIG', 'batch too large');
        throw new Error('plain failure');
      });
      const typed = await rejection(
        client.request(subject, encodeText('typed'), { timeoutMs: 2000 }),
      );
      expect([typed.code, typed.message, typed.remote]).toEqual(['E2BIG', 'batch too large', true]);
      const plain = await rejection(
        client.request(subject, encodeText('plain'), { timeoutMs: 2000 }),
      );
      expect([plain.code, plain.message, plain.remote]).toEqual(['EIO', 'plain failure', true]);
    });

    it('splits requests among responders of one queue group', async () => {
      const client = await open();
      const subject = unique('svc.pool.');
      const served = [0, 0];
      for (const i of [0, 1]) {
        const server = await open();
        await server.serve(
          subject,
          () => {
            served[i] += 1;
            return encodeJson(i);
          },
          { queue: 'pool' },
        );
      }
      const replies = await Promise.all(
        Array.from({ length: 40 }, () =>
          client.request(subject, encodeText(''), { timeoutMs: 2000 }),
        ),
      );
      expect(served[0] + served[1]).toBe(40);
      expect(served[0]).toBeGreaterThan(0);
      expect(served[1]).toBeGreaterThan(0);
      expect(new Set(replies.map((r) => r.json<number>()))).toEqual(new Set([0, 1]));
    });
  });

  describe('publish/subscribe', () => {
    it('delivers each subject in publish order', async () => {
      const [sub, pub] = [await open(), await open()];
      const base = unique('ord.');
      const got = new Map<string, number[]>();
      await sub.subscribe(`${base}.*`, (msg) => {
        got.set(msg.subject, [...(got.get(msg.subject) ?? []), msg.json<number>()]);
      });
      for (let i = 0; i < 200; i++)
        pub.publish(`${base}.${i % 2 === 0 ? 'a' : 'b'}`, encodeJson(i));
      await pub.flush();
      await waitFor(
        () => (got.get(`${base}.a`)?.length ?? 0) + (got.get(`${base}.b`)?.length ?? 0) === 200,
        '200 messages',
      );
      const evens = Array.from({ length: 100 }, (_, i) => 2 * i);
      expect(got.get(`${base}.a`)).toEqual(evens);
      expect(got.get(`${base}.b`)).toEqual(evens.map((n) => n + 1));
    });

    it('matches "*" to exactly one token and ">" to one or more trailing tokens', async () => {
      const [sub, pub] = [await open(), await open()];
      const base = unique('wild.');
      const star: string[] = [];
      const tail: string[] = [];
      await sub.subscribe(`${base}.*.x`, (msg) => void star.push(msg.subject));
      await sub.subscribe(`${base}.>`, (msg) => void tail.push(msg.subject));
      for (const s of ['a.x', 'a.b.x', 'a', 'b.x']) pub.publish(`${base}.${s}`, encodeText(s));
      pub.publish(base, encodeText('bare'));
      await pub.flush();
      await waitFor(() => tail.length === 4 && star.length === 2, 'wildcard deliveries');
      await sleep(50);
      expect(star).toEqual([`${base}.a.x`, `${base}.b.x`]);
      expect(tail).toEqual([`${base}.a.x`, `${base}.a.b.x`, `${base}.a`, `${base}.b.x`]);
    });

    it('gives each message to exactly one member of a queue group, and some to every member', async () => {
      const pub = await open();
      const subject = unique('work.');
      const members: number[][] = [[], [], []];
      for (const member of members) {
        const bus = await open();
        await bus.subscribe(subject, (msg) => void member.push(msg.json<number>()), {
          queue: 'workers',
        });
      }
      const everyone: number[] = [];
      await (await open()).subscribe(subject, (msg) => void everyone.push(msg.json<number>()));
      for (let i = 0; i < 90; i++) pub.publish(subject, encodeJson(i));
      await pub.flush();
      await waitFor(() => members.flat().length === 90 && everyone.length === 90, 'all work');
      await sleep(50);
      expect(members.flat().sort((a, b) => a - b)).toEqual(everyone);
      for (const member of members) expect(member.length).toBeGreaterThan(0);
    });

    it('reads a subscription as an async iterator that ends on unsubscribe', async () => {
      const [sub, pub] = [await open(), await open()];
      const subject = unique('iter.');
      const messages = await sub.subscribe(subject);
      for (let i = 0; i < 3; i++) pub.publish(subject, encodeJson(i));
      await pub.flush();
      const got: number[] = [];
      for await (const msg of messages) {
        got.push(msg.json<number>());
        if (got.length === 3) messages.unsubscribe();
      }
      expect(got).toEqual([0, 1, 2]);
    });

    it('unsubscribes when the reader leaves the for-await loop', async () => {
      const [sub, pub] = [await open(), await open()];
      const subject = unique('iterbreak.');
      const messages = await sub.subscribe(subject);
      pub.publish(subject, encodeText('one'));
      for await (const msg of messages) {
        expect(msg.string()).toBe('one');
        break;
      }
      await sub.flush();
      // No interest left on the subject, so a request finds no responders.
      const err = await rejection(pub.request(subject, encodeText(''), { timeoutMs: 2000 }));
      expect(err.code).toBe('EHOSTUNREACH');
    });

    it('reports a throwing subscriber to onError and keeps delivering', async () => {
      const errors: Array<[unknown, string]> = [];
      const sub = await open((err, context) => void errors.push([err, context]));
      const pub = await open();
      const subject = unique('throws.');
      const got: string[] = [];
      await sub.subscribe(subject, async (msg) => {
        got.push(msg.string());
        if (msg.string() === 'bad') throw new Error('handler failed');
      });
      for (const text of ['ok', 'bad', 'ok again']) pub.publish(subject, encodeText(text));
      await pub.flush();
      await waitFor(() => got.length === 3 && errors.length === 1, 'three deliveries, one error');
      expect(got).toEqual(['ok', 'bad', 'ok again']);
      expect((errors[0][0] as Error).message).toBe('handler failed');
      expect(errors[0][1]).toContain(subject);
    });

    it('stops delivering after unsubscribe', async () => {
      const [sub, pub] = [await open(), await open()];
      const subject = unique('unsub.');
      const got: string[] = [];
      const subscription = await sub.subscribe(subject, (msg) => void got.push(msg.string()));
      pub.publish(subject, encodeText('before'));
      await pub.flush();
      await waitFor(() => got.length === 1, 'first message');
      subscription.unsubscribe();
      await sub.flush();
      pub.publish(subject, encodeText('after'));
      await pub.flush();
      await sleep(50);
      expect(got).toEqual(['before']);
    });
  });

  describe('subjects', () => {
    it.each([
      '',
      'a..b',
      '.a',
      'a.',
      'a b',
      'a.*',
      'a.>',
      'a*',
      '$JS.API.x',
      '$SYS.x',
      '$KV.b.k',
      '$SRV.PING',
    ])('refuses to publish to %j with EINVAL', async (subject) => {
      const bus = await open();
      expect(() => bus.publish(subject, encodeText(''))).toThrow(BusError);
      try {
        bus.publish(subject, encodeText(''));
      } catch (err) {
        expect((err as BusError).code).toBe('EINVAL');
      }
    });

    it.each(['a.>.b', 'a.b>', '$JS.>', '$SYS.*', 'a\tb'])(
      'refuses to subscribe to %j with EINVAL',
      async (subject) => {
        const bus = await open();
        expect((await rejection(bus.subscribe(subject, () => undefined))).code).toBe('EINVAL');
      },
    );

    it('refuses a request to a wildcard subject with EINVAL', async () => {
      const bus = await open();
      expect((await rejection(bus.request('a.*', encodeText(''), { timeoutMs: 100 }))).code).toBe(
        'EINVAL',
      );
    });
  });

  describe('durable streams', () => {
    async function stream(bus: Bus): Promise<{ name: string; subject: string }> {
      const name = unique('S');
      const subject = `${name.toLowerCase()}.events`;
      await bus.ensureStream({ name, subjects: [`${name.toLowerCase()}.>`] });
      return { name, subject };
    }

    it('resumes a durable consumer across reconnects: every message acked exactly once', async () => {
      const publisher = await open();
      const { name, subject } = await stream(publisher);
      for (let i = 1; i <= 20; i++) publisher.publish(subject, encodeJson(i));
      await publisher.flush();

      const acked: number[] = [];
      const first = await open();
      let done = (): void => undefined;
      const sevenAcked = new Promise<void>((resolve) => (done = resolve));
      const consumer = await first.consume(
        name,
        'reader',
        (msg) => {
          // Takes seven, ignores the rest: those stay unacked and must come back later.
          if (acked.length >= 7) return;
          acked.push(msg.json<number>());
          msg.ack();
          if (acked.length === 7) done();
        },
        { ackWaitMs: 500 },
      );
      await sevenAcked;
      await consumer.stop();
      await first.close();

      for (let i = 21; i <= 30; i++) publisher.publish(subject, encodeJson(i));
      await publisher.flush();

      const second = await open();
      const resumed: StreamMsg[] = [];
      await second.consume(name, 'reader', (msg) => {
        resumed.push(msg);
        acked.push(msg.json<number>());
        msg.ack();
      });
      await waitFor(() => new Set(acked).size === 30, 'all 30 messages', 10_000);
      // Longer than the ack wait: a duplicate would have shown up by now.
      await sleep(800);
      expect([...acked].sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
      expect(acked.slice(0, 7)).toEqual([1, 2, 3, 4, 5, 6, 7]);
      expect(resumed.map((m) => m.json<number>())).toEqual(acked.slice(7));
      expect(resumed.map((m) => m.seq)).toEqual(resumed.map((m) => m.json<number>()));
    });

    it('redelivers a message that was not acked within the ack wait', async () => {
      const bus = await open();
      const { name, subject } = await stream(bus);
      const seen: Array<[number, number, boolean]> = [];
      await bus.consume(
        name,
        'retry',
        (msg) => {
          seen.push([msg.json<number>(), msg.deliveryCount, msg.redelivered]);
          if (msg.redelivered) msg.ack();
        },
        { ackWaitMs: 200 },
      );
      bus.publish(subject, encodeJson(1));
      bus.publish(subject, encodeJson(2));
      await waitFor(() => seen.length === 4, 'two deliveries of each message');
      await sleep(400);
      expect(seen).toEqual([
        [1, 1, false],
        [2, 1, false],
        [1, 2, true],
        [2, 2, true],
      ]);
    });

    it('answers a request on a stream subject with the publish ack, as JetStream does', async () => {
      const bus = await open();
      const { name, subject } = await stream(bus);
      const ack = await bus.request(subject, encodeJson('stored'), { timeoutMs: 2000 });
      expect(ack.json()).toMatchObject({ stream: name, seq: 1 });
    });

    it('applies new consume options to an existing durable', async () => {
      const bus = await open();
      const { name, subject } = await stream(bus);
      const first = await bus.consume(name, 'tuned', () => undefined, { ackWaitMs: 60_000 });
      await first.stop();
      const deliveries: number[] = [];
      await bus.consume(name, 'tuned', (msg) => void deliveries.push(msg.deliveryCount), {
        ackWaitMs: 150,
      });
      bus.publish(subject, encodeJson(1));
      await waitFor(
        () => deliveries.length >= 2,
        'a redelivery after the shortened ack wait',
        3000,
      );
      expect(deliveries.slice(0, 2)).toEqual([1, 2]);
    });

    it('pauses delivery at maxAckPending until messages are acked', async () => {
      const bus = await open();
      const { name, subject } = await stream(bus);
      for (let i = 1; i <= 5; i++) bus.publish(subject, encodeJson(i));
      await bus.flush();
      const held: StreamMsg[] = [];
      await bus.consume(name, 'slow', (msg) => void held.push(msg), {
        ackWaitMs: 10_000,
        maxAckPending: 2,
      });
      await waitFor(() => held.length === 2, 'first two');
      await sleep(200);
      expect(held.map((m) => m.json<number>())).toEqual([1, 2]);
      for (const msg of held.splice(0)) msg.ack();
      await waitFor(() => held.length === 2, 'next two');
      expect(held.map((m) => m.json<number>())).toEqual([3, 4]);
    });

    it('gives independent durables of one stream every message each', async () => {
      const bus = await open();
      const { name, subject } = await stream(bus);
      const a: number[] = [];
      const b: number[] = [];
      await bus.consume(name, 'a', (msg) => (a.push(msg.json<number>()), msg.ack()));
      await bus.consume(name, 'b', (msg) => (b.push(msg.json<number>()), msg.ack()));
      for (let i = 1; i <= 5; i++) bus.publish(subject, encodeJson(i));
      await waitFor(() => a.length === 5 && b.length === 5, 'both durables');
      expect(a).toEqual([1, 2, 3, 4, 5]);
      expect(b).toEqual(a);
    });

    it('keeps ensureStream idempotent, refuses overlapping subjects and unknown streams', async () => {
      const bus = await open();
      const { name } = await stream(bus);
      await bus.ensureStream({ name, subjects: [`${name.toLowerCase()}.>`] });
      const overlap = await rejection(
        bus.ensureStream({ name: unique('T'), subjects: [`${name.toLowerCase()}.x`] }),
      );
      expect(overlap.code).toBe('EEXIST');
      const missing = await rejection(bus.consume(unique('NOPE'), 'd', () => undefined));
      expect(missing.code).toBe('ENOENT');
      expect((await rejection(bus.ensureStream({ name: 'a.b', subjects: ['x'] }))).code).toBe(
        'EINVAL',
      );
    });

    it('updates the subjects of an existing stream', async () => {
      const bus = await open();
      const name = unique('U');
      const [one, two] = [`${name.toLowerCase()}.one`, `${name.toLowerCase()}.two`];
      await bus.ensureStream({ name, subjects: [one] });
      await bus.ensureStream({ name, subjects: [one, two] });
      const got: string[] = [];
      await bus.consume(name, 'd', (msg) => (got.push(msg.subject), msg.ack()));
      bus.publish(two, encodeText(''));
      await waitFor(() => got.length === 1, 'message on the added subject');
      expect(got).toEqual([two]);
    });
  });

  describe('shutdown', () => {
    it('close rejects pending requests and later calls with ESHUTDOWN', async () => {
      const [server, client] = [await open(), await open()];
      const subject = unique('svc.hang.');
      await server.serve(subject, async () => {
        await sleep(300);
        return encodeText('late');
      });
      const pending = client.request(subject, encodeText(''), { timeoutMs: 5000 });
      await sleep(20);
      await client.close();
      expect(client.isClosed).toBe(true);
      expect((await rejection(pending)).code).toBe('ESHUTDOWN');
      expect(() => client.publish(subject, encodeText(''))).toThrow(
        expect.objectContaining({ code: 'ESHUTDOWN' }),
      );
    });

    it('drain lets an in-flight handler reply before closing', async () => {
      const [server, client] = [await open(), await open()];
      const subject = unique('svc.drain.');
      let started = (): void => undefined;
      const handlerStarted = new Promise<void>((resolve) => (started = resolve));
      await server.serve(subject, async () => {
        started();
        await sleep(100);
        return encodeText('finished');
      });
      const reply: Promise<BusMsg> = client.request(subject, encodeText(''), { timeoutMs: 3000 });
      await handlerStarted;
      await server.drain();
      expect(server.isClosed).toBe(true);
      expect((await reply).string()).toBe('finished');
    });
  });
}
