import { isGuardError } from '@guard/core';
import { describe, expect, it } from 'vitest';
import { DownstreamStatusError, isCallerFault } from './caller-fault.js';
import { truncateText, wellFormedText } from './text-input.js';

describe('wellFormedText', () => {
  it('accepts well-formed text, emoji included', () => {
    expect(wellFormedText('héllo \u{1F600}', 'text', 100)).toBe('héllo \u{1F600}');
  });

  it.each([['\ud800'], ['a\udc00b'], ['\u{1F600}'.slice(0, 1)], ['\udc00\ud800']])('rejects the lone surrogate in %j with a 400 naming the field', (value) => {
    const error = (() => {
      try {
        wellFormedText(value, 'text', 100);
      } catch (e) {
        return e;
      }
    })();
    expect(isGuardError(error, 'INVALID_INPUT')).toBe(true);
    expect((error as { details: Record<string, unknown> }).details).toMatchObject({ status: 400, field: 'text' });
  });

  it('rejects non-strings, empty and too long text', () => {
    for (const value of [undefined, null, 42, '', 'x'.repeat(11)]) expect(() => wellFormedText(value, 'text', 10)).toThrow(/1 to 10/);
  });
});

describe('truncateText', () => {
  it('never splits a surrogate pair', () => {
    const text = `${'a'.repeat(199)}\u{1F600}`;
    expect(truncateText(text, 200)).toBe('a'.repeat(199));
    expect(truncateText(text, 201)).toBe(text);
    expect(truncateText(`${'a'.repeat(198)}\u{1F600}z`, 200)).toBe(`${'a'.repeat(198)}\u{1F600}`);
    expect(() => encodeURIComponent(truncateText(text, 200))).not.toThrow();
  });
});

describe('isCallerFault', () => {
  it('blames the caller for bad input and a downstream 4xx, the downstream for the rest', () => {
    expect(isCallerFault(new URIError('URI malformed'))).toBe(true);
    expect(isCallerFault(new DownstreamStatusError(400))).toBe(true);
    expect(isCallerFault(new DownstreamStatusError(429))).toBe(false);
    expect(isCallerFault(new DownstreamStatusError(503))).toBe(false);
    expect(isCallerFault(new TypeError('fetch failed'))).toBe(false);
  });
});
