import { createServer } from 'node:http';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ActionContext } from './action-registry.js';
import { AclViolationMonitor } from './acl-violation-monitor.js';
import { createActionRegistry, createProbeRegistry } from './builtin-actions.js';
import type { FollowUpTask } from './builtin-actions.js';
import { HeartbeatWatchdog } from './heartbeat-watchdog.js';
import { MessageBus } from './message-bus.js';
import { ProcessRegistry } from './process-registry.js';
import { RateLimiter } from './rate-limiter.js';
import { ResourcePressureMonitor } from './resource-pressure-monitor.js';
import { TaskGate } from './task-gate.js';

afterEach(() => {
  vi.useRealTimers();
});

function ctx(overrides: Partial<ActionContext> = {}): ActionContext {
  return {
    runId: 'run_1',
    playbook: 'test',
    step: 's1',
    event: { actor: 'bot' },
    signal: new AbortController().signal,
    logger: { debug() {}, info() {}, warn() {}, error() {} },
    probe: async () => undefined,
    ...overrides,
  };
}

async function withServer(handler: (req: IncomingMessage, body: string) => number, fn: (url: string) => Promise<void>): Promise<void> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => res.writeHead(handler(req, body)).end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    await fn(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
}

describe('built-in actions', () => {
  it('registers only the actions whose objects are given', () => {
    expect(createActionRegistry().names()).toEqual(['assess', 'create_followup', 'identify_hogs', 'notify', 'wait']);
    const all = createActionRegistry({
      messageBus: new MessageBus({ registry: new Registry() }),
      components: new HeartbeatWatchdog({ registry: new Registry() }),
      limiter: new RateLimiter(),
      tasks: new TaskGate(),
      processes: new ProcessRegistry(),
    });
    for (const name of ['blacklist_actor', 'rate_limit_topic', 'restart_component', 'throttle', 'pause_tasks', 'enable_rate_limit', 'notify', 'kill_process']) {
      expect(all.has(name)).toBe(true);
    }
    expect(() => all.get('rm_rf')).toThrow(expect.objectContaining({ code: 'UNKNOWN_ACTION' }));
  });

  it('blacklists actors, rate-limits topics and restarts the bus for real', async () => {
    await using bus = new MessageBus({ registry: new Registry(), acl: { bot: ['orders.*'] } });
    const actions = createActionRegistry({ messageBus: bus });
    expect(await actions.get('blacklist_actor')({ actor: 'bot', duration: '5min' }, ctx())).toMatchObject({ actor: 'bot' });
    expect(bus.publish('bot', 'orders.x')).toBe('blacklisted');
    await actions.get('unblacklist_actor')({ actor: 'bot' }, ctx());
    await actions.get('rate_limit_topic')({ topic: 'orders.x', scope: 'all', rate_per_sec: 1, duration: '1min' }, ctx());
    expect([bus.publish('bot', 'orders.x'), bus.publish('bot', 'orders.x')]).toEqual(['no_subscribers', 'rate_limited']);
    await actions.get('clear_rate_limit')({ topic: 'orders.x' }, ctx());
    expect(bus.publish('bot', 'orders.x')).toBe('no_subscribers');
    expect(await actions.get('restart_message_bus')({}, ctx())).toMatchObject({ restarts: 1, canaryDelivered: true });
    expect(() => actions.get('blacklist_actor')({ actor: '' }, ctx())).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
    expect(() => actions.get('blacklist_actor')({ actor: 'x', duration: 'forever' }, ctx())).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
  });

  it('rate-limits only the offending actor on a topic; the topic-wide limit needs scope: all', async () => {
    await using bus = new MessageBus({ registry: new Registry(), acl: { bot: ['orders.*'], api: ['orders.*'] } });
    const actions = createActionRegistry({ messageBus: bus });
    expect(() => actions.get('rate_limit_topic')({ topic: 'orders.x', rate_per_sec: 1 }, ctx())).toThrow(expect.objectContaining({ code: 'INVALID_INPUT', details: { field: 'actor', action: 'rate_limit_topic' } }));
    expect(await actions.get('rate_limit_topic')({ topic: 'orders.*', actor: 'bot', rate_per_sec: 1, duration: '1min' }, ctx())).toMatchObject({ scope: 'actor', actor: 'bot', topic: 'orders.*' });
    const bot = Array.from({ length: 12 }, () => bus.publish('bot', 'orders.x'));
    const api = Array.from({ length: 12 }, () => bus.publish('api', 'orders.x'));
    expect(bot.filter((o) => o === 'rate_limited')).toHaveLength(11);
    expect(api.filter((o) => o === 'rate_limited')).toHaveLength(0);
    await actions.get('rate_limit_actor')({ actor: 'bot', rate_per_sec: 0, duration: '1min' }, ctx());
    expect(bus.publish('bot', 'other.topic')).toBe('rate_limited');
    expect(await actions.get('clear_rate_limit')({ topic: 'orders.*', actor: 'bot' }, ctx())).toEqual({ removed: true });
  });

  it('restart_message_bus re-attaches subscribers and reports what it did', async () => {
    await using bus = new MessageBus({ registry: new Registry(), acl: { api: ['orders.*'] } });
    const got: number[] = [];
    bus.subscribe('orders.created', (n: number) => got.push(n));
    bus.blacklist('rogue');
    bus.publish('api', 'orders.created', 1);
    const actions = createActionRegistry({ messageBus: bus });
    expect(await actions.get('restart_message_bus')({}, ctx())).toEqual({
      restarts: 1,
      routesDropped: 1,
      subscribersReattached: 1,
      topics: 1,
      blacklistKept: 1,
      rateLimitsKept: 0,
      expiredDropped: 0,
      listenerErrorsCleared: 0,
      canaryDelivered: true,
    });
    bus.publish('api', 'orders.created', 2);
    expect(got).toEqual([1, 2]);
    expect(bus.publish('rogue', 'orders.created')).toBe('blacklisted');
  });

  it('restarts registered components through the watchdog', async () => {
    await using watchdog = new HeartbeatWatchdog({ registry: new Registry() });
    let restarted = 0;
    watchdog.register('cache', { restart: () => void restarted++ });
    const actions = createActionRegistry({ components: watchdog });
    expect(await actions.get('restart_component')({ component: 'cache' }, ctx())).toEqual({ component: 'cache', restarted: true });
    expect(restarted).toBe(1);
    await expect(actions.get('restart_component')({ component: 'ghost' }, ctx()) as Promise<unknown>).rejects.toMatchObject({ code: 'UNKNOWN_COMPONENT' });
  });

  it('throttles work classes and the API through the rate limiter', async () => {
    let t = 0;
    const limiter = new RateLimiter({ now: () => t });
    const actions = createActionRegistry({ limiter });
    await actions.get('throttle')({ target: 'non_critical', rate_per_sec: 2, duration: '1min' }, ctx());
    await actions.get('enable_rate_limit')({ rate_per_sec: 1, duration: '1min' }, ctx());
    expect([limiter.tryAcquire('non_critical'), limiter.tryAcquire('non_critical'), limiter.tryAcquire('non_critical')]).toEqual([true, true, false]);
    expect([limiter.tryAcquire('api'), limiter.tryAcquire('api'), limiter.tryAcquire('critical')]).toEqual([true, false, true]);
    t += 1_000;
    expect(limiter.tryAcquire('api')).toBe(true);
    expect(limiter.limits().map((l) => l.key).sort()).toEqual(['api', 'non_critical']);
    await actions.get('disable_rate_limit')({}, ctx());
    expect(limiter.isLimited('api')).toBe(false);
    t += 60_000;
    expect(limiter.tryAcquire('non_critical')).toBe(true);
    expect(limiter.limits()).toEqual([]);
    expect(() => actions.get('throttle')({ target: 'x' }, ctx())).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
  });

  it('throttle by percent halves the rate background work actually ran at', async () => {
    let t = 10_000;
    const limiter = new RateLimiter({ now: () => t });
    // A job asks "may I run now" 20 times a second for 5 s.
    for (let i = 0; i < 100; i++) {
      expect(limiter.tryAcquire('non_critical')).toBe(true);
      t += 50;
    }
    expect(limiter.observedRate('non_critical')).toBeCloseTo(20, 0);
    const out = (await createActionRegistry({ limiter }).get('throttle')({ target: 'non_critical', percent: 50, duration: '5min' }, ctx())) as { ratePerSec: number; observedRatePerSec: number };
    expect(out.ratePerSec).toBeCloseTo(out.observedRatePerSec / 2, 1);
    let ran = 0;
    for (let i = 0; i < 100; i++) {
      if (limiter.tryAcquire('non_critical')) ran++;
      t += 50;
    }
    // 5 s at 20 asks/s: at most burst + 5 s x 10/s.
    expect(ran).toBeGreaterThanOrEqual(45);
    expect(ran).toBeLessThanOrEqual(61);
    expect(() => createActionRegistry({ limiter }).get('throttle')({ target: 'x', percent: 150 }, ctx())).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
  });

  it('acquire waits for a token and rejects ABORTED on its signal', async () => {
    vi.useFakeTimers();
    const limiter = new RateLimiter();
    limiter.setLimit('jobs', 2);
    await limiter.acquire('jobs');
    await limiter.acquire('jobs');
    let third = false;
    const pending = limiter.acquire('jobs').then(() => (third = true));
    await vi.advanceTimersByTimeAsync(100);
    expect(third).toBe(false);
    await vi.advanceTimersByTimeAsync(450);
    await pending;
    expect(third).toBe(true);
    limiter.setLimit('blocked', 0);
    const controller = new AbortController();
    const blocked = limiter.acquire('blocked', { signal: controller.signal });
    await vi.advanceTimersByTimeAsync(5_000);
    controller.abort();
    await expect(blocked).rejects.toMatchObject({ code: 'ABORTED' });
  });

  it('a limiter rate below 1/s lets one call through every 1/rate s; 0 refuses every call', () => {
    let t = 0;
    const limiter = new RateLimiter({ now: () => t });
    limiter.setLimit('slow', 0.25);
    expect([limiter.tryAcquire('slow'), limiter.tryAcquire('slow')]).toEqual([true, false]);
    t += 3_999;
    expect(limiter.tryAcquire('slow')).toBe(false);
    t += 1;
    expect(limiter.tryAcquire('slow')).toBe(true);
    limiter.setLimit('never', 0);
    t += 3_600_000;
    expect(limiter.tryAcquire('never')).toBe(false);
  });

  it('answers 429 through the limiter HTTP handler while a limit is exhausted', async () => {
    const limiter = new RateLimiter();
    limiter.setLimit('api', 1, { durationMs: 60_000 });
    const handler = limiter.httpHandler('api');
    const server = createServer((req, res) => handler(req, res, () => res.end('ok')));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      expect((await fetch(url)).status).toBe(200);
      const limited = await fetch(url);
      expect(limited.status).toBe(429);
      expect(await limited.json()).toMatchObject({ status: 429, code: 'RATE_LIMITED' });
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
    expect(() => limiter.setLimit('', 1)).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
  });

  it('pauses and resumes task groups that wait at safe points', async () => {
    vi.useFakeTimers();
    await using tasks = new TaskGate();
    const actions = createActionRegistry({ tasks });
    let progressed = 0;
    const worker = (async () => {
      for (let i = 0; i < 3; i++) {
        await tasks.waitIfPaused('heavy');
        progressed++;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    await vi.advanceTimersByTimeAsync(50);
    expect(await actions.get('pause_tasks')({ group: 'heavy', duration: '10s' }, ctx())).toMatchObject({ group: 'heavy' });
    await vi.advanceTimersByTimeAsync(5_000);
    expect(progressed).toBe(1);
    expect(tasks.paused()).toEqual([expect.objectContaining({ group: 'heavy', waiting: 1 })]);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(progressed).toBe(2);
    await actions.get('pause_tasks')({ group: 'heavy' }, ctx());
    await vi.advanceTimersByTimeAsync(200);
    expect(progressed).toBe(2);
    expect(await actions.get('resume_tasks')({ group: 'heavy' }, ctx())).toEqual({ resumed: true });
    await vi.advanceTimersByTimeAsync(200);
    await worker;
    expect(progressed).toBe(3);
    const controller = new AbortController();
    tasks.pause('other');
    const waiting = tasks.waitIfPaused('other', { signal: controller.signal });
    controller.abort();
    await expect(waiting).rejects.toMatchObject({ code: 'ABORTED' });
  });

  it('kills only processes the guard started', async () => {
    await using processes = new ProcessRegistry();
    const actions = createActionRegistry({ processes });
    const child = processes.spawn('spinner', process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
    const exited = new Promise<NodeJS.Signals | null>((r) => child.child!.once('exit', (_code, signal) => r(signal)));
    expect(() => actions.get('kill_process')({ pid: process.pid }, ctx())).toThrow(expect.objectContaining({ code: 'NOT_OWNED' }));
    expect(() => actions.get('kill_process')({ pid: 1 }, ctx())).toThrow(expect.objectContaining({ code: 'NOT_OWNED' }));
    expect(() => actions.get('kill_process')({ name: 'spinner', signal: 'SIGSTOP' }, ctx())).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
    const hogs = (await actions.get('identify_hogs')({}, ctx())) as { self: { pid: number }; hogs: unknown[] };
    expect(hogs.self.pid).toBe(process.pid);
    expect(await actions.get('kill_process')({ name: 'spinner' }, ctx())).toMatchObject({ name: 'spinner', pid: child.pid, signal: 'SIGTERM' });
    expect(await exited).toBe('SIGTERM');
    expect(processes.list()).toEqual([]);
  });

  it('survives a command that cannot be spawned', async () => {
    await using processes = new ProcessRegistry();
    const entry = (() => {
      try {
        return processes.spawn('ghost', '/definitely/not/a/command');
      } catch (error) {
        return error;
      }
    })();
    expect(entry).toMatchObject({ code: 'INVALID_INPUT' });
    // The spawn failure's 'error' event comes on a later turn of the loop: it must not crash the process.
    await new Promise((r) => setImmediate(r));
    expect(processes.list()).toEqual([]);
  });

  it('notifies by log and by webhook to the configured URL only', async () => {
    const bodies: unknown[] = [];
    await withServer(
      (req, body) => {
        bodies.push(JSON.parse(body));
        return req.url === '/fail' ? 500 : 204;
      },
      async (base) => {
        const warnings: unknown[] = [];
        const logger = { debug() {}, info() {}, warn: (o: object) => void warnings.push(o), error() {} };
        const actions = createActionRegistry({ notifyWebhookUrl: `${base}/hook`, logger });
        expect(await actions.get('notify')({ message: 'hello' }, ctx())).toEqual({ delivered: { log: true }, severity: 'warning' });
        expect(await actions.get('notify')({ message: 'hook', channel: 'webhook', url: 'http://evil.example/' }, ctx())).toEqual({ delivered: { webhook: { status: 204 } }, severity: 'warning' });
        expect(bodies).toEqual([expect.objectContaining({ message: 'hook', playbook: 'test', runId: 'run_1', event: { actor: 'bot' } })]);
        expect(warnings).toHaveLength(2);
        const failing = createActionRegistry({ notifyWebhookUrl: `${base}/fail` });
        await expect(failing.get('notify')({ message: 'x', channel: 'webhook' }, ctx()) as Promise<unknown>).rejects.toMatchObject({ message: 'notify: webhook answered 500' });
        await expect(createActionRegistry().get('notify')({ message: 'x', channel: 'webhook' }, ctx()) as Promise<unknown>).rejects.toMatchObject({ code: 'INVALID_OPTION' });
        await expect(createActionRegistry().get('notify')({ message: 'x', channel: 'pager' }, ctx()) as Promise<unknown>).rejects.toMatchObject({ code: 'INVALID_INPUT' });
        // The webhook URL may be known only later (a server that starts listening after the registry exists).
        const late: { url?: string } = {};
        const lazy = createActionRegistry({ notifyWebhookUrl: () => late.url });
        await expect(lazy.get('notify')({ message: 'x', channel: 'webhook' }, ctx()) as Promise<unknown>).rejects.toMatchObject({ code: 'INVALID_OPTION' });
        late.url = `${base}/late`;
        expect(await lazy.get('notify')({ message: 'late', channel: 'webhook' }, ctx())).toMatchObject({ delivered: { webhook: { status: 204 } } });
        expect(bodies).toHaveLength(3);
      },
    );
  });

  it('notifies the immune log through an injected publish function, on several channels at once', async () => {
    const published: unknown[] = [];
    const actions = createActionRegistry({ publish: (n) => (published.push(n), 'evt_1'), now: () => 5 });
    expect(await actions.get('notify')({ message: 'CPU high', severity: 'critical', channels: ['log', 'immune'] }, ctx())).toEqual({
      delivered: { log: true, immune: { id: 'evt_1' } },
      severity: 'critical',
    });
    expect(published).toEqual([{ playbook: 'test', runId: 'run_1', step: 's1', severity: 'critical', message: 'CPU high', event: { actor: 'bot' }, at: 5 }]);
    await expect(createActionRegistry().get('notify')({ message: 'x', channel: 'immune' }, ctx()) as Promise<unknown>).rejects.toMatchObject({ code: 'INVALID_OPTION' });
    await expect(actions.get('notify')({ message: 'x', severity: 'loud' }, ctx()) as Promise<unknown>).rejects.toMatchObject({ code: 'INVALID_INPUT' });
  });

  it('creates follow-ups, assesses probes and waits abortably', async () => {
    const tasks: FollowUpTask[] = [];
    const actions = createActionRegistry({ onFollowUp: (t) => void tasks.push(t), now: () => 1_000 });
    await actions.get('create_followup')({ title: 'Review bot', queue: 'scheduler', delay: '5min', details: { actor: 'bot' } }, ctx());
    expect(tasks).toEqual([{ title: 'Review bot', queue: 'scheduler', playbook: 'test', runId: 'run_1', dueAt: 301_000, details: { actor: 'bot' } }]);
    const assessed = await actions.get('assess')({ probes: ['a.b'] }, ctx({ probe: async (name) => `value of ${name}` }));
    expect(assessed).toEqual({ a_b: 'value of a.b' });
    await expect(actions.get('assess')({ probes: 'a.b' }, ctx()) as Promise<unknown>).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    const controller = new AbortController();
    const waiting = actions.get('wait')({ duration: '1h' }, ctx({ signal: controller.signal })) as Promise<unknown>;
    controller.abort(new Error('stop'));
    await expect(waiting).rejects.toThrow('stop');
    expect(await actions.get('wait')({ duration: '5ms' }, ctx())).toEqual({ waitedMs: 5 });
  });
});

describe('built-in probes', () => {
  it('reads the bus, the ACL monitor, the pressure monitor, components and the health endpoint', async () => {
    await using bus = new MessageBus({ registry: new Registry() });
    await using aclMonitor = new AclViolationMonitor({ messageBus: bus });
    await using pressure = new ResourcePressureMonitor({ registry: new Registry(), sampler: () => ({}), autoStart: false, sustainMs: 0 });
    await using watchdog = new HeartbeatWatchdog({ registry: new Registry() });
    watchdog.register('db', { restart: () => undefined });
    bus.publish('x', 'y');
    pressure.evaluate({ cpuPercent: 91 });
    await withServer(
      (req) => (req.url === '/health' ? 200 : 503),
      async (base) => {
        const probes = createProbeRegistry({ messageBus: bus, aclMonitor, pressure, watchdog, healthUrl: `${base}/health` });
        const c = { signal: new AbortController().signal };
        expect(await probes.get('bus.healthy')({}, c)).toBe(true);
        expect(await probes.get('bus.canary')({}, c)).toBe(true);
        expect(await probes.get('acl.violations_since')({ window: '10s' }, c)).toBe(1);
        expect(await probes.get('bus.blacklisted')({ actor: 'x' }, c)).toBe(false);
        expect(await probes.get('acl.violations_per_second')({}, c)).toBe(1);
        expect(await probes.get('acl.violations_of')({ actor: 'x' }, c)).toBe(1);
        expect(await probes.get('pressure.cpu_percent')({}, c)).toBe(91);
        expect(await probes.get('pressure.disk_percent')({}, c)).toBeNull();
        expect(await probes.get('pressure.under_pressure')({}, c)).toBe(true);
        expect(await probes.get('pressure.alarm')({ resource: 'cpu' }, c)).toBe(true);
        expect(await probes.get('pressure.alarm')({ resource: 'memory' }, c)).toBe(false);
        expect(() => probes.get('pressure.alarm')({ resource: 'gpu' }, c)).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
        expect(await probes.get('component.state')({ component: 'db' }, c)).toBe('healthy');
        expect(await probes.get('http.status')({}, c)).toBe(200);
        expect(await probes.get('http.status')({ path: '/other' }, c)).toBe(503);
        await expect(probes.get('http.status')({ path: 'http://evil/' }, c) as Promise<unknown>).rejects.toMatchObject({ code: 'INVALID_INPUT' });
      },
    );
    const dead = createProbeRegistry({ healthUrl: 'http://127.0.0.1:9/' });
    expect(await dead.get('http.status')({}, { signal: new AbortController().signal })).toBe(0);
  });

  it('reads the health URL lazily, so a server that starts listening later is probed at its real address', async () => {
    let url: string | undefined;
    const probes = createProbeRegistry({ healthUrl: () => url });
    const c = { signal: new AbortController().signal };
    expect(await probes.get('http.status')({}, c)).toBe(0);
    await withServer(
      () => 200,
      async (base) => {
        url = `${base}/health`;
        expect(await probes.get('http.status')({}, c)).toBe(200);
      },
    );
  });

  it('bus probes fail when the bus cannot deliver or violations continue', async () => {
    let t = 1_000;
    const bus = new MessageBus({ registry: new Registry(), now: () => t });
    const probes = createProbeRegistry({ messageBus: bus });
    const c = { signal: new AbortController().signal };
    bus.publish('rogue', 'control.x');
    expect(await probes.get('acl.violations_since')({ window: '2s' }, c)).toBe(1);
    t += 2_001;
    expect(await probes.get('acl.violations_since')({ window: '2s' }, c)).toBe(0);
    bus.setRateLimit('**', 0);
    expect(await probes.get('bus.canary')({}, c)).toBe(false);
    expect(await probes.get('bus.healthy')({}, c)).toBe(false);
    bus.clearRateLimit('**');
    expect(await probes.get('bus.canary')({}, c)).toBe(true);
    await bus.close();
    expect(await probes.get('bus.canary')({}, c)).toBe(false);
  });
});
