import { scrapeGauge } from '@guard/core';
import type { MetricsOptions } from '@guard/core';
import { DEFAULT_METRICS_PREFIX, pulledCounter } from './metrics.js';

/** What the bus's metrics read, at scrape time only. */
export interface MessageBusCounts {
  readonly delivered: number;
  readonly noSubscribers: number;
  readonly denied: number;
  readonly blacklisted: number;
  readonly rateLimited: number;
  readonly violations: { readonly topic: number; readonly control: number };
  readonly blacklistedActors: number;
}

/** Outcome label -> the count it reports. */
const OUTCOMES = {
  delivered: (c: MessageBusCounts) => c.delivered,
  no_subscribers: (c: MessageBusCounts) => c.noSubscribers,
  denied: (c: MessageBusCounts) => c.denied,
  blacklisted: (c: MessageBusCounts) => c.blacklisted,
  rate_limited: (c: MessageBusCounts) => c.rateLimited,
} as const;

/**
 * The metrics of one bus: `bus_messages_total{bus,outcome}` and `bus_violations_total{bus,kind}` (the publish path
 * counts in plain numbers; the counters are brought up to date when the registry is scraped) and
 * `bus_blacklisted_actors{bus}`, read at scrape time.
 *
 * @example
 * const detach = messageBusMetrics(options, 'default', () => counts, closeSignal);
 * @returns a function that brings the counters up to date one last time and detaches them (on close).
 */
export function messageBusMetrics(options: MetricsOptions, bus: string, read: () => MessageBusCounts, signal: AbortSignal): () => void {
  const messages = pulledCounter(options, 'bus_messages_total', 'Publishes on the message bus by outcome', ['bus', 'outcome']);
  const flushedMessages: Record<keyof typeof OUTCOMES, number> = { delivered: 0, no_subscribers: 0, denied: 0, blacklisted: 0, rate_limited: 0 };
  const detachMessages = messages.attach(() => {
    const counts = read();
    for (const outcome of Object.keys(OUTCOMES) as (keyof typeof OUTCOMES)[]) {
      const current = OUTCOMES[outcome](counts);
      if (current > flushedMessages[outcome]) messages.metric.inc({ bus, outcome }, current - flushedMessages[outcome]);
      flushedMessages[outcome] = current;
    }
  });
  const violations = pulledCounter(options, 'bus_violations_total', 'ACL violations on the message bus', ['bus', 'kind']);
  const flushedViolations = { topic: 0, control: 0 };
  const detachViolations = violations.attach(() => {
    const counts = read().violations;
    for (const kind of ['topic', 'control'] as const) {
      if (counts[kind] > flushedViolations[kind]) violations.metric.inc({ bus, kind }, counts[kind] - flushedViolations[kind]);
      flushedViolations[kind] = counts[kind];
    }
  });
  scrapeGauge(
    options,
    { name: 'bus_blacklisted_actors', help: 'Actors currently blacklisted on the bus', labelNames: ['bus'], defaultPrefix: DEFAULT_METRICS_PREFIX, signal },
    () => [[{ bus }, read().blacklistedActors]],
  );
  return () => {
    detachMessages();
    detachViolations();
  };
}
