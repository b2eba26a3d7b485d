import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  AgentInfoSchema,
  ERRNO,
  ErrorEnvelopeSchema,
  TraceEventBatchSchema,
  TracelabError,
  parseOrThrow,
  subjects,
} from './index.js';

interface BatchCase {
  name: string;
  input: unknown;
  errorPath?: (string | number)[];
}

const batchCases = JSON.parse(
  readFileSync(new URL('./testdata/batches.json', import.meta.url), 'utf8'),
) as BatchCase[];

describe('TraceEventBatchSchema', () => {
  it.each(batchCases)('$name', ({ input, errorPath }) => {
    const result = TraceEventBatchSchema.safeParse(input);
    if (errorPath === undefined) {
      expect(result.error?.issues).toBeUndefined();
      expect(result.data).toEqual(input);
    } else {
      expect(result.success).toBe(false);
      expect(result.error?.issues[0]?.path).toEqual(errorPath);
    }
  });
});

describe('errors', () => {
  it('carries the kernel errno and round-trips through its envelope', () => {
    const err = new TracelabError('E2BIG', 'too many links on trampoline', { offset: 12 });
    expect(err.errno).toBe(-7);
    const envelope = ErrorEnvelopeSchema.parse(JSON.parse(JSON.stringify(err.toEnvelope())));
    expect(envelope).toEqual({
      code: 'E2BIG',
      errno: 7,
      message: 'too many links on trampoline',
      details: { offset: 12 },
    });
    const back = TracelabError.fromEnvelope(envelope);
    expect(back).toBeInstanceOf(Error);
    expect([back.code, back.message, back.details]).toEqual([err.code, err.message, err.details]);
  });

  it('uses the Linux numbers for the codes layers return', () => {
    expect([ERRNO.ENOENT, ERRNO.EBUSY, ERRNO.EINVAL, ERRNO.ENOSPC, ERRNO.EOPNOTSUPP]).toEqual([
      2, 16, 22, 28, 95,
    ]);
  });

  it('rejects an envelope whose code is not an errno name', () => {
    expect(
      ErrorEnvelopeSchema.safeParse({ code: 'EWHATEVER', errno: 1, message: 'x' }).success,
    ).toBe(false);
  });

  it('parseOrThrow names the failing field in the message and details', () => {
    const bad = {
      agentId: 'a',
      stream: 'trace',
      firstSeq: 0,
      lost: 0,
      events: [{ type: 'text', ts: -5, cpu: 0, pid: 1, comm: 'x', text: '' }],
    };
    let caught: unknown;
    try {
      parseOrThrow(TraceEventBatchSchema, bad, 'trace batch');
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(TracelabError);
    const err = caught as TracelabError;
    expect(err.code).toBe('EINVAL');
    expect(err.message).toMatch(/^invalid trace batch: events\[0\]\.ts: /);
    expect(err.details?.path).toEqual(['events', 0, 'ts']);
  });
});

describe('subjects', () => {
  it('builds versioned per-agent subjects', () => {
    expect(subjects.agentInfo('m-1')).toBe('tracelab.v1.agent.m-1.info');
    expect(subjects.trace('m-1', 'ringbuf')).toBe('tracelab.trace.m-1.ringbuf');
  });

  it.each(['a.b', 'a*', '>', '', 'a b', 'x'.repeat(65)])('refuses %j as a subject token', (id) => {
    expect(() => subjects.agentHealth(id)).toThrow(/not a subject token/);
  });
});

describe('AgentInfoSchema', () => {
  it('accepts a full description and rejects an unknown arch by field', () => {
    const info = {
      id: 'a',
      version: '0.1.0',
      hostname: 'h',
      pid: 10,
      startedAt: '2026-11-22T12:00:00.000Z',
      transport: 'local',
      machine: { arch: 'arm64', cpus: 4 },
    };
    expect(AgentInfoSchema.parse(info)).toEqual(info);
    const bad = AgentInfoSchema.safeParse({ ...info, machine: { arch: 'sparc', cpus: 4 } });
    expect(bad.error?.issues[0]?.path).toEqual(['machine', 'arch']);
  });
});
