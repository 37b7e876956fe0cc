import { GuardError } from '@guard/core';

const SEGMENT = /^[A-Za-z0-9_\-:]+$/;

/**
 * Compiles a dotted topic pattern into a matcher. `*` matches exactly one segment,
 * `**` matches one or more segments; other segments match literally.
 *
 * @example
 * topicMatcher('orders.*')('orders.created'); // true
 * topicMatcher('control.**')('control.bus.restart'); // true
 */
export function topicMatcher(pattern: string): (topic: string) => boolean {
  if (typeof pattern !== 'string' || pattern.length === 0 || pattern.length > 256) {
    throw new GuardError('INVALID_OPTION', `topic pattern must be a non-empty string of at most 256 characters`, {
      details: { field: 'topic', value: pattern },
    });
  }
  const parts = pattern.split('.');
  if (!parts.includes('*') && !parts.includes('**')) {
    for (const part of parts) checkSegment(pattern, part);
    return (topic) => topic === pattern;
  }
  const source = parts
    .map((part) => {
      if (part === '*') return '[^.]+';
      if (part === '**') return '[^.]+(?:\\.[^.]+)*';
      checkSegment(pattern, part);
      return part.replace(/[-:]/g, '\\$&');
    })
    .join('\\.');
  const regex = new RegExp(`^${source}$`);
  return (topic) => regex.test(topic);
}

function checkSegment(pattern: string, part: string): void {
  if (!SEGMENT.test(part)) {
    throw new GuardError('INVALID_OPTION', `topic pattern "${pattern}" has an invalid segment "${part}"`, {
      details: { field: 'topic', value: pattern },
    });
  }
}
