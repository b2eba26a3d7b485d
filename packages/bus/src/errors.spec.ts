import { describe, expect, it } from 'vitest';
import { decodeJson, decodeText, encodeJson, encodeText } from './codec.js';
import { BusError, errorCodeOf, isBusError } from './errors.js';

describe('BusError', () => {
  it('carries an errno-style code, a message, a cause and whether it came from a remote handler', () => {
    const cause = new Error('socket');
    const err = new BusError('ETIMEDOUT', 'request timed out', { cause });
    expect(err).toBeInstanceOf(Error);
    expect([err.name, err.code, err.message, err.remote, err.cause]).toEqual([
      'BusError',
      'ETIMEDOUT',
      'request timed out',
      false,
      cause,
    ]);
    expect(isBusError(err)).toBe(true);
    expect(isBusError(err, 'ETIMEDOUT')).toBe(true);
    expect(isBusError(err, 'EINVAL')).toBe(false);
    expect(isBusError(new Error('x'))).toBe(false);
  });

  it('forwards a handler error code only when it is errno-style', () => {
    expect(errorCodeOf(new BusError('E2BIG', 'big'))).toBe('E2BIG');
    expect(errorCodeOf(Object.assign(new Error('x'), { code: 'ENOENT' }))).toBe('ENOENT');
    expect(errorCodeOf(Object.assign(new Error('x'), { code: 'ERR_SOMETHING' }))).toBe('EIO');
    expect(errorCodeOf(Object.assign(new Error('x'), { code: 42 }))).toBe('EIO');
    expect(errorCodeOf('thrown string')).toBe('EIO');
  });
});

describe('codec', () => {
  it('round-trips text and JSON through bytes', () => {
    expect(decodeText(encodeText('ftrace ✓'))).toBe('ftrace ✓');
    const value = { ip: 0xffffffff81000000, args: [1, 'two', null], nested: { ok: true } };
    expect(decodeJson(encodeJson(value))).toEqual(value);
  });

  it('refuses values without a JSON form', () => {
    expect(() => encodeJson(undefined)).toThrow(TypeError);
  });
});
