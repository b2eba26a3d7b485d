import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BusError } from './errors.js';
import {
  patternsOverlap,
  subjectMatches,
  validateName,
  validateQueue,
  validateSubject,
} from './subject.js';

const token = fc.stringMatching(/^[a-z0-9_-]{1,4}$/);
const literal = fc.array(token, { minLength: 1, maxLength: 5 }).map((t) => t.join('.'));

function codeOf(fn: () => void): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(BusError);
    return (err as BusError).code;
  }
}

describe('validateSubject', () => {
  it('accepts literal subjects for publish and wildcard patterns for subscribe', () => {
    for (const s of ['a', 'trace.events.cpu0', 'x-1_2.$y', 'a.$JS']) {
      expect(codeOf(() => validateSubject(s, 'publish'))).toBeUndefined();
    }
    for (const s of ['>', '*', 'a.*.c', 'a.>', '*.*.>']) {
      expect(codeOf(() => validateSubject(s, 'subscribe'))).toBeUndefined();
    }
  });

  it.each([
    ['', 'subscribe'],
    ['a..b', 'subscribe'],
    ['a.', 'subscribe'],
    ['a\nb', 'subscribe'],
    ['a.>.b', 'subscribe'],
    ['a.b*', 'subscribe'],
    ['$JS.API.STREAM.LIST', 'subscribe'],
    ['$KV.bucket.>', 'subscribe'],
    ['$SRV.PING', 'publish'],
    ['$SYS.REQ.SERVER.PING', 'publish'],
    ['a.*', 'publish'],
  ] as const)('refuses %j for %s with EINVAL', (subject, use) => {
    expect(codeOf(() => validateSubject(subject, use))).toBe('EINVAL');
  });
});

describe('subjectMatches', () => {
  it('follows NATS wildcard rules', () => {
    expect(subjectMatches('a.*.c', 'a.b.c')).toBe(true);
    expect(subjectMatches('a.*.c', 'a.b.b.c')).toBe(false);
    expect(subjectMatches('a.>', 'a.b.c')).toBe(true);
    expect(subjectMatches('a.>', 'a')).toBe(false);
    expect(subjectMatches('>', 'a')).toBe(true);
    expect(subjectMatches('a.b', 'a.b.c')).toBe(false);
    expect(subjectMatches('a.b.c', 'a.b')).toBe(false);
  });

  it('matches a literal against itself, "*" per token and ">" after any prefix', () => {
    fc.assert(
      fc.property(literal, (s) => {
        const tokens = s.split('.');
        expect(subjectMatches(s, s)).toBe(true);
        expect(subjectMatches(tokens.map(() => '*').join('.'), s)).toBe(true);
        for (let i = 0; i < tokens.length; i++) {
          expect(subjectMatches([...tokens.slice(0, i), '>'].join('.'), s)).toBe(true);
        }
      }),
    );
  });
});

describe('patternsOverlap', () => {
  it('is true exactly when some subject matches both patterns', () => {
    expect(patternsOverlap('a.>', 'a.b')).toBe(true);
    expect(patternsOverlap('a.*', 'a.b.c')).toBe(false);
    expect(patternsOverlap('a.*.c', 'a.b.*')).toBe(true);
    expect(patternsOverlap('a.b', 'a.c')).toBe(false);
    expect(patternsOverlap('a', 'a.>')).toBe(false);
  });

  it('agrees with subjectMatches on a subject that matches one pattern', () => {
    fc.assert(
      fc.property(literal, fc.nat(), (s, seed) => {
        const tokens = s.split('.');
        const pattern = tokens.map((t, i) => ((seed >> i) & 1 ? '*' : t)).join('.');
        expect(patternsOverlap(pattern, s)).toBe(subjectMatches(pattern, s));
        expect(patternsOverlap(s, pattern)).toBe(true);
      }),
    );
  });
});

describe('names', () => {
  it('refuses stream/durable names JetStream refuses, and blank queue groups', () => {
    expect(codeOf(() => validateName('TRACE_EVENTS', 'stream name'))).toBeUndefined();
    for (const bad of ['', 'a.b', 'a*', 'a>', 'a b', 'a/b', 'a\\b']) {
      expect(codeOf(() => validateName(bad, 'stream name'))).toBe('EINVAL');
    }
    expect(codeOf(() => validateQueue('workers.v1'))).toBeUndefined();
    expect(codeOf(() => validateQueue(''))).toBe('EINVAL');
    expect(codeOf(() => validateQueue('a b'))).toBe('EINVAL');
  });
});
