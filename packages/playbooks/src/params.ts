import { GuardError } from '@guard/core';
import { durationOrUndefined } from './playbook-schema.js';

function bad(action: string, name: string, expected: string, value: unknown): GuardError {
  return new GuardError('INVALID_INPUT', `${action}: param "${name}" must be ${expected}, got ${JSON.stringify(value)}`, {
    details: { field: name, action },
  });
}

/** Reads a required non-empty string param. */
export function stringParam(action: string, params: Readonly<Record<string, unknown>>, name: string, fallback?: string): string {
  const value = params[name] ?? fallback;
  if (typeof value !== 'string' || value.length === 0) throw bad(action, name, 'a non-empty string', value);
  return value;
}

/** Reads a number param (>= 0). */
export function numberParam(action: string, params: Readonly<Record<string, unknown>>, name: string, fallback?: number): number {
  const value = params[name] ?? fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw bad(action, name, 'a number >= 0', value);
  return value;
}

/** Reads a duration param (`5min`, `30s`, or ms). */
export function durationParam(action: string, params: Readonly<Record<string, unknown>>, name: string, fallbackMs?: number): number {
  const raw = params[name];
  if (raw === undefined && fallbackMs !== undefined) return fallbackMs;
  const ms = durationOrUndefined(raw);
  if (ms === undefined || ms <= 0) throw bad(action, name, 'a duration like 30s or 5min', raw);
  return ms;
}
