import { GuardBus, isGuardError } from '@guard/core';
import type { AclViolation } from './message-bus.js';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { ACL_VIOLATION_TOPIC, CANARY_ACTOR, CANARY_TOPIC, MessageBus } from './message-bus.js';
import { topicMatcher } from './topic-pattern.js';

function clock(start = 1_000_000): { now: () => number; advance(ms: number): void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

describe('topicMatcher', () => {
  it('matches literal, single-segment and multi-segment wildcards', () => {
    expect(topicMatcher('orders.created')('orders.created')).toBe(true);
    expect(topicMatcher('orders.created')('orders.updated')).toBe(false);
    expect(topicMatcher('orders.*')('orders.created')).toBe(true);
    expect(topicMatcher('orders.*')('orders.a.b')).toBe(false);
    expect(topicMatcher('orders.**')('orders.a.b')).toBe(true);
    expect(topicMatcher('orders.**')('orders')).toBe(false);
    expect(topicMatcher('**')('anything.at.all')).toBe(true);
  });

  it('rejects bad patterns with INVALID_OPTION', () => {
    for (const bad of ['', 'a..b', 'a.b c', 'x'.repeat(300)]) {
      expect(() => topicMatcher(bad)).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    }
  });
});

describe('MessageBus', () => {
  it('names metrics with metricsPrefix, and registers none with metrics: false', async () => {
    const registry = new Registry();
    await using named = new MessageBus({ registry, metricsPrefix: 'shop_bus', acl: { a: ['t'] } });
    named.publish('a', 't');
    const text = await registry.metrics();
    expect(text).toContain('shop_bus_bus_messages_total{bus="default",outcome="no_subscribers"} 1');
    expect(text).toContain('shop_bus_bus_blacklisted_actors{bus="default"} 0');
    const silent = new Registry();
    await using quiet = new MessageBus({ registry: silent, metrics: false, acl: { a: ['t'] } });
    quiet.blacklist('x');
    expect(quiet.publish('x', 't')).toBe('blacklisted');
    expect(silent.getMetricsAsArray()).toEqual([]);
  });

  it('delivers allowed publishes and drops denied ones with a violation', async () => {
    const guardBus = new GuardBus();
    const notices: AclViolation[] = [];
    guardBus.on('aclViolation', (v) => notices.push(v));
    await using bus = new MessageBus({ registry: new Registry(), acl: { orders: ['orders.*'] }, bus: guardBus, name: 'main' });
    const got: unknown[] = [];
    bus.subscribe('orders.created', (payload, actor, topic) => got.push([payload, actor, topic]));
    bus.subscribe('billing.charge', (payload) => got.push(payload));
    const violations: AclViolation[] = [];
    bus.onViolation((v) => violations.push(v));

    expect(bus.publish('orders', 'orders.created', { id: 1 })).toBe('delivered');
    expect(bus.publish('orders', 'orders.deleted', { id: 2 })).toBe('no_subscribers');
    expect(bus.publish('orders', 'billing.charge', { amount: 5 })).toBe('denied');
    expect(bus.publish('stranger', 'orders.created', { id: 3 })).toBe('denied');
    expect(got).toEqual([[{ id: 1 }, 'orders', 'orders.created']]);
    expect(violations.map((v) => [v.actor, v.topic, v.control, v.bus])).toEqual([
      ['orders', 'billing.charge', false, 'main'],
      ['stranger', 'orders.created', false, 'main'],
    ]);
    expect(notices).toHaveLength(2);
    expect(bus.stats()).toMatchObject({ delivered: 1, noSubscribers: 1, denied: 2, violations: 2 });
  });

  it('publishes violations on the message_bus.acl_violation topic, which nobody may publish to', async () => {
    await using bus = new MessageBus({ registry: new Registry(), acl: { '*': ['**'] } });
    const seen: unknown[] = [];
    bus.subscribe(ACL_VIOLATION_TOPIC, (v) => seen.push(v));
    expect(bus.publish('anyone', 'message_bus.acl_violation', { fake: true })).toBe('denied');
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ actor: 'anyone', topic: 'message_bus.acl_violation' });
  });

  it('grants control topics only through rules naming the actor', async () => {
    await using bus = new MessageBus({ registry: new Registry(), acl: { '*': ['**'], admin: ['control.**'] } });
    bus.subscribe('control.restart', () => undefined);
    expect(bus.isControlTopic('control.restart')).toBe(true);
    expect(bus.publish('someone', 'control.restart')).toBe('denied');
    expect(bus.publish('admin', 'control.restart')).toBe('delivered');
    expect(bus.publish('someone', 'orders.x')).toBe('no_subscribers');
  });

  it('caches decisions but refreshes them when rules change', async () => {
    await using bus = new MessageBus({ registry: new Registry(), acl: [{ actor: 'a', topics: ['t.one'] }] });
    expect(bus.publish('a', 't.two')).toBe('denied');
    bus.allow('a', ['t.two']);
    expect(bus.publish('a', 't.two')).toBe('no_subscribers');
    bus.revoke('a');
    expect(bus.publish('a', 't.one')).toBe('denied');
    expect(bus.isAllowed('a', 't.one')).toBe(false);
  });

  it('refuses blacklisted actors until the entry expires, without counting violations', async () => {
    const c = clock();
    await using bus = new MessageBus({ registry: new Registry(), acl: { a: ['t'] }, now: c.now });
    bus.blacklist('a', { durationMs: 1_000 });
    expect(bus.isBlacklisted('a')).toBe(true);
    expect(bus.publish('a', 't')).toBe('blacklisted');
    expect(bus.health().blacklisted).toEqual([{ actor: 'a', expiresAt: c.now() + 1_000 }]);
    c.advance(1_000);
    expect(bus.publish('a', 't')).toBe('no_subscribers');
    expect(bus.stats()).toMatchObject({ blacklisted: 1, violations: 0 });
    bus.blacklist('a');
    expect(bus.unblacklist('a')).toBe(true);
    expect(bus.unblacklist('a')).toBe(false);
  });

  it('rate-limits topics with a token bucket that refills and expires', async () => {
    const c = clock();
    await using bus = new MessageBus({ registry: new Registry(), acl: { a: ['t.*'] }, now: c.now });
    bus.setRateLimit('t.*', 2, { durationMs: 10_000 });
    expect([bus.publish('a', 't.x'), bus.publish('a', 't.y'), bus.publish('a', 't.x')]).toEqual(['no_subscribers', 'no_subscribers', 'rate_limited']);
    c.advance(500);
    expect(bus.publish('a', 't.x')).toBe('no_subscribers');
    expect(bus.publish('a', 't.x')).toBe('rate_limited');
    expect(bus.health().rateLimits).toEqual([{ topic: 't.*', ratePerSec: 2, expiresAt: 1_010_000 }]);
    c.advance(10_000);
    for (let i = 0; i < 5; i++) expect(bus.publish('a', 't.x')).toBe('no_subscribers');
    bus.setRateLimit('t.x', 0);
    expect(bus.publish('a', 't.x')).toBe('rate_limited');
    expect(bus.clearRateLimit('t.x')).toBe(true);
    expect(bus.stats().rateLimited).toBe(3);
  });

  it('isolates throwing handlers and counts them', async () => {
    await using bus = new MessageBus({ registry: new Registry(), acl: { a: ['t'] } });
    const got: number[] = [];
    bus.subscribe('t', () => {
      throw new Error('boom');
    });
    bus.subscribe('t', (n: number) => got.push(n));
    expect(bus.publish('a', 't', 7)).toBe('delivered');
    expect(got).toEqual([7]);
    expect(bus.health().listenerErrors).toBe(1);
    bus.restart();
    expect(bus.health()).toMatchObject({ listenerErrors: 0, restarts: 1, healthy: true, subscribers: 2 });
  });

  it('unsubscribes through the returned function or using', async () => {
    await using bus = new MessageBus({ registry: new Registry(), acl: { a: ['t'] } });
    const off = bus.subscribe('t', () => undefined);
    {
      using _s = bus.subscribe('t', () => undefined);
      expect(bus.health().subscribers).toBe(2);
    }
    off();
    off();
    expect(bus.health().subscribers).toBe(0);
    expect(bus.publish('a', 't')).toBe('no_subscribers');
  });

  it('treats each subscribe as its own subscription, even of the same function', async () => {
    await using bus = new MessageBus({ registry: new Registry(), acl: { a: ['t'] } });
    const got: number[] = [];
    const handler = (n: number): void => void got.push(n);
    const first = bus.subscribe('t', handler);
    bus.subscribe('t', handler);
    bus.publish('a', 't', 1);
    first();
    first();
    bus.publish('a', 't', 2);
    expect(got).toEqual([1, 1, 2]);
    expect(bus.health().subscribers).toBe(1);
  });

  it('delivers to a topic whose first subscriber came after a publish found none', async () => {
    await using bus = new MessageBus({ registry: new Registry(), acl: { a: ['t'] } });
    expect(bus.publish('a', 't', 1)).toBe('no_subscribers');
    const got: unknown[] = [];
    const off = bus.subscribe('t', (n) => got.push(n));
    expect(bus.publish('a', 't', 2)).toBe('delivered');
    off();
    expect(bus.publish('a', 't', 3)).toBe('no_subscribers');
    bus.subscribe('t', (n) => got.push(-Number(n)));
    expect(bus.publish('a', 't', 4)).toBe('delivered');
    expect(got).toEqual([2, -4]);
  });

  it("counts and logs a handler's rejected promise like a throw, without failing the publish", async () => {
    let logged!: (entry: { topic: string }) => void;
    const errorLogged = new Promise<{ topic: string }>((resolve) => (logged = resolve));
    const logger = { debug() {}, info() {}, warn() {}, error: (entry: object) => logged(entry as { topic: string }) };
    await using bus = new MessageBus({ registry: new Registry(), acl: { a: ['t'] }, logger });
    bus.subscribe('t', () => Promise.reject(new Error('async boom')) as unknown as void);
    expect(bus.publish('a', 't')).toBe('delivered');
    expect(await errorLogged).toMatchObject({ topic: 't' });
    expect(bus.health().listenerErrors).toBe(1);
  });

  it('exports message and violation metrics', async () => {
    const registry = new Registry();
    await using bus = new MessageBus({ registry, acl: { a: ['t'] }, name: 'm' });
    bus.subscribe('t', () => undefined);
    for (let i = 0; i < 3; i++) bus.publish('a', 't');
    bus.publish('b', 't');
    const text = await registry.metrics();
    expect(text).toContain('guard_playbooks_bus_messages_total{bus="m",outcome="delivered"} 3');
    expect(text).toContain('guard_playbooks_bus_messages_total{bus="m",outcome="denied"} 1');
    expect(text).toContain('guard_playbooks_bus_violations_total{bus="m",kind="topic"} 1');
    bus.publish('a', 't');
    expect(await registry.metrics()).toContain('guard_playbooks_bus_messages_total{bus="m",outcome="delivered"} 4');
  });

  it('validates options and rejects use after close', async () => {
    expect(() => new MessageBus({ registry: new Registry(), acl: { '': ['t'] } })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    expect(() => new MessageBus({ registry: new Registry(), acl: { a: 'orders.*' as never } })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    expect(() => new MessageBus({ registry: new Registry(), maxCachedTopicsPerActor: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    const bus = new MessageBus({ registry: new Registry(), acl: { a: ['t'] } });
    expect(() => bus.subscribe('', () => undefined)).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
    expect(() => bus.blacklist('a', { durationMs: -1 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    await bus.close();
    await bus.close();
    let error: unknown;
    try {
      bus.publish('a', 't');
    } catch (e) {
      error = e;
    }
    expect(isGuardError(error, 'CLOSED')).toBe(true);
    expect(() => bus.subscribe('t', () => undefined)).toThrow(expect.objectContaining({ code: 'CLOSED' }));
    expect(bus.health().healthy).toBe(false);
  });

  it('bounds the decision cache per actor', async () => {
    await using bus = new MessageBus({ registry: new Registry(), acl: { a: ['t.*'] }, maxCachedTopicsPerActor: 10 });
    for (let i = 0; i < 100; i++) expect(bus.publish('a', `t.${i}`)).toBe('no_subscribers');
    expect(bus.publish('a', 'u.1')).toBe('denied');
  });

  it('refuses non-string actors and topics with INVALID_INPUT', async () => {
    await using bus = new MessageBus({ registry: new Registry(), acl: { a: ['t'] } });
    expect(() => bus.publish(undefined as never, 't')).toThrow(expect.objectContaining({ code: 'INVALID_INPUT', details: { field: 'actor' } }));
    expect(() => bus.publish('a', 42 as never)).toThrow(expect.objectContaining({ code: 'INVALID_INPUT', details: { field: 'topic' } }));
    expect(() => bus.publish('a', '')).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
  });

  it('limits one actor without touching other publishers of the same topic', async () => {
    const c = clock();
    await using bus = new MessageBus({ registry: new Registry(), acl: { rogue: ['orders.*'], api: ['orders.*'] }, now: c.now });
    const got: string[] = [];
    bus.subscribe('orders.created', (_p, actor) => got.push(actor));
    bus.limitActor('rogue', 1, { topic: 'orders.*', durationMs: 60_000 });
    const rogue = Array.from({ length: 5 }, () => bus.publish('rogue', 'orders.created'));
    const api = Array.from({ length: 50 }, () => bus.publish('api', 'orders.created'));
    expect(rogue).toEqual(['delivered', 'rate_limited', 'rate_limited', 'rate_limited', 'rate_limited']);
    expect(api.every((o) => o === 'delivered')).toBe(true);
    expect(bus.health().actorRateLimits).toEqual([{ actor: 'rogue', topic: 'orders.*', ratePerSec: 1, expiresAt: c.now() + 60_000 }]);
    c.advance(1_000);
    expect(bus.publish('rogue', 'orders.created')).toBe('delivered');
    expect(bus.clearActorLimit('rogue')).toBe(1);
    expect(bus.publish('rogue', 'orders.created')).toBe('delivered');
  });

  it('an actor limit acts before the ACL decision, so a throttled offender stops producing violations', async () => {
    const c = clock();
    await using bus = new MessageBus({ registry: new Registry(), acl: { api: ['orders.*'] }, now: c.now });
    bus.limitActor('rogue', 0, { durationMs: 1_000 });
    expect(bus.publish('rogue', 'control.shutdown')).toBe('rate_limited');
    expect(bus.stats().violations).toBe(0);
    c.advance(1_000);
    expect(bus.publish('rogue', 'control.shutdown')).toBe('denied');
    expect(bus.health().actorRateLimits).toEqual([]);
  });

  it('rates below 1/s let one publish through per 1/rate seconds instead of blocking everything', async () => {
    const c = clock();
    await using bus = new MessageBus({ registry: new Registry(), acl: { a: ['t'] }, now: c.now });
    bus.setRateLimit('t', 0.5);
    expect([bus.publish('a', 't'), bus.publish('a', 't')]).toEqual(['no_subscribers', 'rate_limited']);
    c.advance(1_000);
    expect(bus.publish('a', 't')).toBe('rate_limited');
    c.advance(1_000);
    expect(bus.publish('a', 't')).toBe('no_subscribers');
    bus.limitActor('b', 0.2);
    bus.allow('b', ['u']);
    expect([bus.publish('b', 'u'), bus.publish('b', 'u')]).toEqual(['no_subscribers', 'rate_limited']);
    c.advance(5_000);
    expect(bus.publish('b', 'u')).toBe('no_subscribers');
    // A rate of 0 blocks for good; a refused publish takes no token from a second matching limit.
    bus.allow('a', ['z.*']);
    bus.setRateLimit('z.*', 0);
    bus.setRateLimit('z.x', 0.5);
    c.advance(60_000);
    expect(bus.publish('a', 'z.x')).toBe('rate_limited');
    bus.clearRateLimit('z.*');
    expect(bus.publish('a', 'z.x')).toBe('no_subscribers');
  });

  it('restart drops routes and re-attaches subscribers and violation listeners to a fresh emitter, keeping ACL and blacklist', async () => {
    const c = clock();
    await using bus = new MessageBus({ registry: new Registry(), acl: { a: ['t.*'] }, now: c.now });
    const got: number[] = [];
    const violations: string[] = [];
    bus.subscribe('t.x', (n: number) => got.push(n));
    const off = bus.subscribe('t.y', (n: number) => got.push(-n));
    bus.onViolation((v) => violations.push(v.actor));
    bus.publish('a', 't.x', 1);
    bus.publish('a', 't.y', 2);
    bus.publish('b', 't.x', 3);
    bus.blacklist('evil', { durationMs: 60_000 });
    bus.blacklist('old', { durationMs: 10 });
    bus.limitActor('slow', 1, { durationMs: 10 });
    c.advance(20);
    const report = bus.restart();
    expect(report).toEqual({
      restarts: 1,
      routesDropped: 3,
      subscribersReattached: 3,
      topics: 3,
      blacklistKept: 1,
      rateLimitsKept: 0,
      expiredDropped: 2,
      listenerErrorsCleared: 0,
    });
    bus.publish('a', 't.x', 4);
    bus.publish('b', 't.x', 5);
    expect(bus.publish('evil', 't.x', 6)).toBe('blacklisted');
    off();
    expect(bus.publish('a', 't.y', 7)).toBe('no_subscribers');
    expect(got).toEqual([1, -2, 4]);
    expect(violations).toEqual(['b', 'b']);
    expect(bus.health().subscribers).toBe(2);
  });

  it('canary goes through the publish path and fails when the bus cannot deliver', async () => {
    const bus = new MessageBus({ registry: new Registry(), acl: { a: ['t'] } });
    expect(bus.canary()).toMatchObject({ delivered: true, outcome: 'delivered' });
    expect(bus.publish('a', CANARY_TOPIC)).toBe('denied');
    expect(bus.isAllowed(CANARY_ACTOR, 'orders.x')).toBe(false);
    bus.setRateLimit('**', 0);
    expect(bus.canary()).toMatchObject({ delivered: false, outcome: 'rate_limited' });
    bus.clearRateLimit('**');
    bus.blacklist(CANARY_ACTOR);
    expect(bus.canary()).toMatchObject({ delivered: false, outcome: 'blacklisted' });
    bus.unblacklist(CANARY_ACTOR);
    expect(bus.canary().delivered).toBe(true);
    // The canary's subscriber is the bus's own: not counted, but re-attached by a restart like any other.
    expect(bus.health().subscribers).toBe(0);
    expect(bus.restart().subscribersReattached).toBe(1);
    expect(bus.canary().delivered).toBe(true);
    await bus.close();
    expect(bus.canary()).toMatchObject({ delivered: false, outcome: 'closed' });
  });

  it('counts violations since a point in time', async () => {
    const c = clock();
    await using bus = new MessageBus({ registry: new Registry(), acl: {}, now: c.now });
    const start = c.now();
    expect(bus.violationsSince(start)).toBe(0);
    expect(bus.health().lastViolationAt).toBeUndefined();
    bus.publish('x', 't');
    c.advance(1_000);
    bus.publish('x', 't');
    bus.publish('y', 't');
    expect(bus.violationsSince(start)).toBe(3);
    expect(bus.violationsSince(start + 500)).toBe(2);
    expect(bus.violationsSince(c.now() + 1)).toBe(0);
    expect(bus.health().lastViolationAt).toBe(c.now());
  });
});
