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
    await actions.get('rate_limit_topic')({ topic: 'orders.x', rate_per_sec: 1, duration: '1min' }, ctx());
    expect([bus.publish('bot', 'orders.x'), bus.publish('bot', 'orders.x')]).toEqual(['no_subscribers', 'rate_limited']);
    await actions.get('clear_rate_limit')({ topic: 'orders.x' }, ctx());
    expect(bus.publish('bot', 'orders.x')).toBe('no_subscribers');
    expect(await actions.get('restart_message_bus')({}, ctx())).toEqual({ restarts: 1 });
    expect(() => actions.get('blacklist_actor')({ actor: '' }, ctx())).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
    expect(() => actions.get('blacklist_actor')({ actor: 'x', duration: 'forever' }, ctx())).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
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
    const exited = new Promise<NodeJS.Signals | null>((r) => child.child.once('exit', (_code, signal) => r(signal)));
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
    await new Promise((r) => setTimeout(r, 50));
    expect(processes.list()).toEqual([]);
  });

  it('reports CPU of guarded children', async () => {
    await using processes = new ProcessRegistry();
    processes.spawn('burner', process.execPath, ['-e', 'const end = Date.now() + 5000; while (Date.now() < end) {}']);
    await processes.usage();
    await new Promise((r) => setTimeout(r, 300));
    const [usage] = await processes.usage();
    expect(usage).toMatchObject({ name: 'burner' });
    if (process.platform === 'linux') expect(usage!.cpuPercent).toBeGreaterThan(5);
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
        expect(await actions.get('notify')({ message: 'hello' }, ctx())).toEqual({ channel: 'log', delivered: true });
        expect(await actions.get('notify')({ message: 'hook', channel: 'webhook', url: 'http://evil.example/' }, ctx())).toEqual({ channel: 'webhook', delivered: true, status: 204 });
        expect(bodies).toEqual([expect.objectContaining({ message: 'hook', playbook: 'test', runId: 'run_1', event: { actor: 'bot' } })]);
        expect(warnings).toHaveLength(2);
        const failing = createActionRegistry({ notifyWebhookUrl: `${base}/fail` });
        await expect(failing.get('notify')({ message: 'x', channel: 'webhook' }, ctx()) as Promise<unknown>).rejects.toMatchObject({ message: 'notify: webhook answered 500' });
        await expect(createActionRegistry().get('notify')({ message: 'x', channel: 'webhook' }, ctx()) as Promise<unknown>).rejects.toMatchObject({ code: 'INVALID_OPTION' });
        await expect(createActionRegistry().get('notify')({ message: 'x', channel: 'pager' }, ctx()) as Promise<unknown>).rejects.toMatchObject({ code: 'INVALID_INPUT' });
      },
    );
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
        expect(await probes.get('acl.violations_per_second')({}, c)).toBe(1);
        expect(await probes.get('acl.violations_of')({ actor: 'x' }, c)).toBe(1);
        expect(await probes.get('pressure.cpu_percent')({}, c)).toBe(91);
        expect(await probes.get('pressure.disk_percent')({}, c)).toBeNull();
        expect(await probes.get('pressure.under_pressure')({}, c)).toBe(true);
        expect(await probes.get('component.state')({ component: 'db' }, c)).toBe('healthy');
        expect(await probes.get('http.status')({}, c)).toBe(200);
        expect(await probes.get('http.status')({ path: '/other' }, c)).toBe(503);
        await expect(probes.get('http.status')({ path: 'http://evil/' }, c) as Promise<unknown>).rejects.toMatchObject({ code: 'INVALID_INPUT' });
      },
    );
    const dead = createProbeRegistry({ healthUrl: 'http://127.0.0.1:9/' });
    expect(await dead.get('http.status')({}, { signal: new AbortController().signal })).toBe(0);
  });
});
