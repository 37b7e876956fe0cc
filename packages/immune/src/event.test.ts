import { describe, expect, it } from 'vitest';
import { isGuardError } from '@guard/core';
import { createEventId, EVENT_LIMITS, parseEventInput, parseWireEventInput, toWireEvent } from './event.js';
import type { ImmuneEvent } from './event.js';

function fieldOf(fn: () => unknown): { field: string; message: string; status?: number } {
  try {
    fn();
  } catch (error) {
    expect(isGuardError(error, 'INVALID_INPUT')).toBe(true);
    const e = error as { details: { field: string; status?: number }; message: string };
    return { field: e.details.field, message: e.message, ...(e.details.status === undefined ? {} : { status: e.details.status }) };
  }
  throw new Error('expected INVALID_INPUT');
}

const valid = { severity: 'WARNING', type: 'ERROR_SPIKE', message: 'spike' } as const;

function nested(levels: number): Record<string, unknown> {
  let value: Record<string, unknown> = { leaf: 1 };
  for (let i = 1; i < levels; i++) value = { child: value };
  return value;
}

describe('event validation', () => {
  it('accepts a minimal and a full event', () => {
    expect(parseEventInput(valid)).toEqual(valid);
    const full = { ...valid, agentId: 'a-1', module: 'api', meta: { n: 1, list: [1, 'two', null, true] } };
    expect(parseEventInput(full)).toEqual(full);
  });

  it.each(
    [
    [{ ...valid, severity: 'FATAL' }, 'severity'],
    [{ ...valid, severity: 'info' }, 'severity'],
    [{ ...valid, type: 'OOPS' }, 'type'],
    [{ severity: 'INFO', type: 'ERROR_SPIKE' }, 'message'],
    [{ ...valid, message: '' }, 'message'],
    [{ ...valid, message: '   ' }, 'message'],
    [{ ...valid, message: 42 }, 'message'],
    [{ ...valid, message: 'x'.repeat(EVENT_LIMITS.maxMessageLength + 1) }, 'message'],
    [{ ...valid, module: '' }, 'module'],
    [{ ...valid, agentId: 'a'.repeat(EVENT_LIMITS.maxNameLength + 1) }, 'agentId'],
    [{ ...valid, meta: [1, 2] }, 'meta'],
    [{ ...valid, meta: 'text' }, 'meta'],
    [{ ...valid, meta: nested(EVENT_LIMITS.maxMetaDepth + 1) }, 'meta'],
    [{ ...valid, meta: { big: 'x'.repeat(EVENT_LIMITS.maxMetaBytes) } }, 'meta'],
    [{ ...valid, meta: { when: new Date() } }, 'meta'],
    [{ ...valid, meta: { n: Number.POSITIVE_INFINITY } }, 'meta'],
    [{ ...valid, meta: { f: () => 1 } }, 'meta'],
    [{ ...valid, extra: true }, 'extra'],
    ].map(([input, field], i) => ({ input, field: field as string, label: `case ${i} (${String(field)})` })),
  )('rejects bad input, $label', ({ input, field }) => {
    expect(fieldOf(() => parseEventInput(input)).field).toBe(field);
  });

  it('accepts meta at exactly the depth limit', () => {
    expect(() => parseEventInput({ ...valid, meta: nested(EVENT_LIMITS.maxMetaDepth) })).not.toThrow();
  });

  it('measures meta in real JSON bytes near the limit', () => {
    expect(() => parseEventInput({ ...valid, meta: { s: 'x'.repeat(EVENT_LIMITS.maxMetaBytes - 20) } })).not.toThrow();
    expect(fieldOf(() => parseEventInput({ ...valid, meta: { s: 'x'.repeat(EVENT_LIMITS.maxMetaBytes) } })).field).toBe('meta');
    expect(fieldOf(() => parseEventInput({ ...valid, meta: { s: 'é'.repeat(EVENT_LIMITS.maxMetaBytes / 2) } })).field).toBe('meta');
  });

  it('survives a hostile, very deep meta without a stack overflow', () => {
    expect(fieldOf(() => parseEventInput({ ...valid, meta: nested(100_000) })).field).toBe('meta');
  });

  it('rejects non-objects', () => {
    for (const input of [null, 'x', 1, [valid]]) expect(fieldOf(() => parseEventInput(input)).field).toBe('body');
  });

  it('maps the snake_case wire form and answers with HTTP status 400', () => {
    expect(parseWireEventInput({ ...valid, agent_id: 'a-1' })).toEqual({ ...valid, agentId: 'a-1' });
    expect(fieldOf(() => parseWireEventInput({ ...valid, agentId: 'camel' }))).toMatchObject({ field: 'agentId', status: 400 });
    expect(fieldOf(() => parseWireEventInput({ ...valid, severity: 'LOUD' }))).toMatchObject({ field: 'severity', status: 400 });
    expect(fieldOf(() => parseWireEventInput([]))).toMatchObject({ field: 'body', status: 400 });
  });

  it('maps a stored event to the wire with an ISO created_at', () => {
    const event: ImmuneEvent = { id: 'x', agentId: 'a', module: 'm', severity: 'INFO', type: 'ERROR_SPIKE', message: 'hi', meta: { k: 1 }, createdAt: 0 };
    expect(toWireEvent(event)).toEqual({
      id: 'x',
      agent_id: 'a',
      module: 'm',
      severity: 'INFO',
      type: 'ERROR_SPIKE',
      message: 'hi',
      meta: { k: 1 },
      created_at: '1970-01-01T00:00:00.000Z',
    });
    expect(toWireEvent({ ...event, agentId: undefined, module: undefined } as ImmuneEvent)).not.toHaveProperty('agent_id');
  });
});

describe('createEventId', () => {
  it('makes unique UUIDv7 strings ordered by time', () => {
    const ids = Array.from({ length: 1_000 }, (_, i) => createEventId(1_700_000_000_000 + Math.floor(i / 10)));
    expect(new Set(ids).size).toBe(1_000);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(createEventId(1_700_000_000_001) > createEventId(1_700_000_000_000)).toBe(true);
    expect(parseInt(createEventId(1_700_000_000_000).replace('-', '').slice(0, 12), 16)).toBe(1_700_000_000_000);
  });
});
