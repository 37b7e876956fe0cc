import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GuardBus } from '@guard/core';
import type { Logger } from '@guard/core';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { PlaybookTrigger } from './playbook-types.js';
import type { PressureChange } from './resource-pressure-monitor.js';
import { ResourcePressureMonitor } from './resource-pressure-monitor.js';
import { createSystemSampler } from './system-sampler.js';
import { cgroupV1Memory, cgroupV2Memory, fakeTree, procSelfCgroup, procStat } from './test-support.js';
import type { TreeFiles } from './test-support.js';

afterEach(() => {
  vi.useRealTimers();
});

function monitor(options: ConstructorParameters<typeof ResourcePressureMonitor>[0] = {}) {
  const changes: PressureChange[] = [];
  const m = new ResourcePressureMonitor({ registry: new Registry(), sampler: () => ({}), autoStart: false, ...options });
  m.onChange((c) => changes.push(c));
  return { m, changes };
}

describe('ResourcePressureMonitor', () => {
  it('alarms only after the level holds over the threshold for 10 s', async () => {
    const { m, changes } = monitor();
    await using _m = m;
    for (let s = 0; s < 10; s++) m.evaluate({ cpuPercent: 95 }, s * 1_000);
    expect(m.isUnderPressure()).toBe(false);
    expect(m.levels().find((l) => l.resource === 'cpu')).toMatchObject({ percent: 95, alarm: false, overSince: 0 });
    m.evaluate({ cpuPercent: 90 }, 10_000);
    expect(m.isUnderPressure()).toBe(true);
    expect(changes).toEqual([{ resource: 'cpu', state: 'alarm', percent: 90, level: 90, thresholdPercent: 80, sustainedMs: 10_000, at: 10_000 }]);
  });

  it('restarts the streak when the level dips below the threshold', async () => {
    const { m, changes } = monitor();
    await using _m = m;
    for (let s = 0; s <= 8; s++) m.evaluate({ memoryPercent: 90 }, s * 1_000);
    m.evaluate({ memoryPercent: 84 }, 9_000);
    for (let s = 10; s <= 19; s++) m.evaluate({ memoryPercent: 90 }, s * 1_000);
    expect(changes).toHaveLength(0);
    m.evaluate({ memoryPercent: 90 }, 20_000);
    expect(changes.map((c) => [c.resource, c.state])).toEqual([['memory', 'alarm']]);
  });

  it('clears with hysteresis: only below 60 % held for clearSustainMs', async () => {
    const { m, changes } = monitor({ sustainMs: 0, clearSustainMs: 2_000 });
    await using _m = m;
    m.evaluate({ diskPercent: 95 }, 0);
    expect(m.isUnderPressure()).toBe(true);
    m.evaluate({ diskPercent: 70 }, 1_000);
    m.evaluate({ diskPercent: 61 }, 2_000);
    m.evaluate({ diskPercent: 50 }, 3_000);
    m.evaluate({ diskPercent: 65 }, 4_000);
    m.evaluate({ diskPercent: 50 }, 5_000);
    m.evaluate({ diskPercent: 50 }, 6_000);
    expect(m.isUnderPressure()).toBe(true);
    m.evaluate({ diskPercent: 40 }, 7_000);
    expect(m.isUnderPressure()).toBe(false);
    expect(changes.map((c) => [c.state, c.at])).toEqual([
      ['alarm', 0],
      ['cleared', 7_000],
    ]);
  });

  it('samples at 1 Hz from the injected sampler and triggers the playbook with the levels', async () => {
    vi.useFakeTimers();
    const series = [20, ...Array<number>(15).fill(92), ...Array<number>(10).fill(10)];
    let i = 0;
    const triggered: [string, Readonly<Record<string, unknown>>][] = [];
    const engine: PlaybookTrigger = {
      async trigger(event, data) {
        triggered.push([event, data]);
        return [];
      },
    };
    const bus = new GuardBus();
    const notices: PressureChange[] = [];
    bus.on('resourcePressure', (c) => notices.push(c));
    const { m, changes } = monitor({ sampler: () => ({ cpuPercent: series[Math.min(i++, series.length - 1)]!, memoryPercent: 30 }), autoStart: true, engine, bus });
    await using _m = m;
    await vi.advanceTimersByTimeAsync(11_000);
    expect(m.isUnderPressure()).toBe(false);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(m.isUnderPressure()).toBe(true);
    expect(triggered).toEqual([['resource_pressure.cpu', expect.objectContaining({ resource: 'cpu', state: 'alarm', levels: expect.objectContaining({ cpu: 92, memory: 30 }) })]]);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(m.isUnderPressure()).toBe(false);
    expect(changes.map((c) => c.state)).toEqual(['alarm', 'cleared']);
    expect(notices).toHaveLength(2);
  });

  it('sheds load over HTTP with 503 problem+json while under pressure', async () => {
    const { m } = monitor({ sustainMs: 0 });
    await using _m = m;
    const shed = m.loadShedding({ retryAfterSec: 7 });
    const server = createServer((req, res) => shed(req, res, () => res.end('ok')));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      expect(await (await fetch(url)).text()).toBe('ok');
      m.evaluate({ eventLoopPercent: 99 });
      const res = await fetch(url);
      expect(res.status).toBe(503);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      expect(res.headers.get('retry-after')).toBe('7');
      expect(await res.json()).toMatchObject({ status: 503, resources: ['event_loop'] });
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('exports level and alarm gauges', async () => {
    const registry = new Registry();
    const m = new ResourcePressureMonitor({ registry, sampler: () => ({}), autoStart: false, sustainMs: 0 });
    await using _m = m;
    m.evaluate({ cpuPercent: 85, details: { eventLoopDelayMs: 12 } });
    const text = await registry.metrics();
    expect(text).toContain('guard_playbooks_pressure_level_ratio{resource="cpu"} 0.85');
    expect(text).toContain('guard_playbooks_pressure_alarm{resource="cpu"} 1');
    expect(text).toContain('guard_playbooks_event_loop_delay_seconds 0.012');
  });

  it('logs changes without fields a pino logger owns (the level is logged as percent)', async () => {
    const logged: Record<string, unknown>[] = [];
    const logger = { warn: (obj: Record<string, unknown>) => logged.push(obj), info() {}, error() {}, debug() {} } as unknown as Logger;
    const { m } = monitor({ sustainMs: 0, clearSustainMs: 0, logger });
    await using _m = m;
    m.evaluate({ cpuPercent: 97 }, 0);
    m.evaluate({ cpuPercent: 10 }, 1_000);
    expect(logged).toHaveLength(2);
    for (const line of logged) for (const key of ['level', 'time', 'msg', 'pid', 'hostname']) expect(line).not.toHaveProperty(key);
    expect(logged.map((l) => [l.state, l.percent])).toEqual([
      ['alarm', 97],
      ['cleared', 10],
    ]);
  });

  it('fromEnv reads the environment, and options given in code win', async () => {
    const env = { GUARD_PRESSURE_THRESHOLDS: 'cpu=70,memory=75' };
    await using m = ResourcePressureMonitor.fromEnv(env, { registry: new Registry(), sampler: () => ({}), autoStart: false, thresholds: { cpu: 95 } });
    // `thresholds` in code replaces the environment's whole map: memory falls back to its default.
    expect(m.levels().map((l) => [l.resource, l.thresholdPercent])).toEqual([['cpu', 95], ['memory', 85], ['disk', 90], ['event_loop', 90]]);
    await using fromEnvOnly = ResourcePressureMonitor.fromEnv(env, { registry: new Registry(), sampler: () => ({}), autoStart: false });
    expect(fromEnvOnly.levels().find((l) => l.resource === 'memory')?.thresholdPercent).toBe(75);
  });

  it('validates options and env', async () => {
    const bad = [{ intervalMs: 0 }, { sustainMs: -1 }, { clearPercent: 101 }, { thresholds: { cpu: 50 } }, { sampler: 42 as never }];
    for (const options of bad) expect(() => new ResourcePressureMonitor({ registry: new Registry(), autoStart: false, ...options })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    expect(
      ResourcePressureMonitor.optionsFromEnv({ GUARD_PRESSURE_THRESHOLDS: 'cpu=70,clear=50', GUARD_PRESSURE_SUSTAIN: '5s', GUARD_PRESSURE_DISK_PATHS: '/,/tmp', GUARD_PRESSURE_CPU_SOURCE: 'max' }),
    ).toMatchObject({ thresholds: { cpu: 70 }, clearPercent: 50, sustainMs: 5_000, intervalMs: 1_000, system: { cpuSource: 'max', diskPaths: ['/', '/tmp'] } });
    expect(ResourcePressureMonitor.optionsFromEnv({}).system).toEqual({ cpuSource: 'host' });
    expect(ResourcePressureMonitor.optionsFromEnv({ GUARD_PRESSURE_DISK_PATHS: 'none', GUARD_PRESSURE_CPU_SOURCE: 'process' }).system).toEqual({ cpuSource: 'process', diskPaths: [] });
    expect(() => ResourcePressureMonitor.optionsFromEnv({ GUARD_PRESSURE_THRESHOLDS: 'cpu=170' })).toThrow(expect.objectContaining({ code: 'INVALID_ENV' }));
    expect(() => ResourcePressureMonitor.optionsFromEnv({ GUARD_PRESSURE_CPU_SOURCE: 'gpu' })).toThrow(expect.objectContaining({ code: 'INVALID_ENV' }));
  });

  it('rejects sampling after close', async () => {
    const { m } = monitor();
    await m.close();
    await m.close();
    await expect(m.sampleNow()).rejects.toMatchObject({ code: 'CLOSED' });
    expect(() => m.start()).toThrow(expect.objectContaining({ code: 'CLOSED' }));
  });
});

describe('createSystemSampler', () => {
  it('turns disk off with an empty path list', async () => {
    const sampler = createSystemSampler({ diskPaths: [] });
    try {
      const reading = await sampler.sample();
      expect(reading.diskPercent).toBeUndefined();
      expect(reading.details?.disks).toEqual([]);
    } finally {
      sampler.close();
    }
  });

  it("reads the memory of this process's own cgroup, with the smallest limit on the way up (v2 and v1)", async () => {
    const v2 = await sampleTree([
      procSelfCgroup('0::/app.slice/svc'),
      procStat({ user: 1, idle: 1 }),
      cgroupV2Memory('', { current: 999_999_999 }),
      cgroupV2Memory('app.slice', { max: 4_000_000 }),
      cgroupV2Memory('app.slice/svc', { max: 'max', current: 1_000_000 }),
    ]);
    expect(v2.memoryPercent).toBe(25);
    expect(v2.details).toMatchObject({ memorySource: 'cgroup_v2', memoryLimitBytes: 4_000_000, memoryUsedBytes: 1_000_000 });
    const v1 = await sampleTree([
      procSelfCgroup('4:memory:/docker/abc', '1:cpu,cpuacct:/docker/abc'),
      procStat({ user: 1, idle: 1 }),
      cgroupV1Memory('memory', { limitBytes: 9223372036854771712n }), // the kernel's "no limit"
      cgroupV1Memory('memory/docker/abc', { limitBytes: 2_000_000, usageBytes: 500_000 }),
    ]);
    expect(v1.memoryPercent).toBe(25);
    expect(v1.details).toMatchObject({ memorySource: 'cgroup_v1', memoryLimitBytes: 2_000_000 });
  });

  it('reads the memory limit from a cgroup v2 tree when there is one', async () => {
    const reading = await sampleTree([cgroupV2Memory('', { max: 1_000_000, current: 250_000 })], { procRoot: false });
    expect(reading.memoryPercent).toBe(25);
    expect(reading.details).toMatchObject({ memorySource: 'cgroup_v2', memoryLimitBytes: 1_000_000, memoryUsedBytes: 250_000 });
  });
});

/** One sample of a system sampler on a {@link fakeTree} of `/proc` and cgroup files. `procRoot: false` keeps the real /proc. */
async function sampleTree(files: TreeFiles[], options: { procRoot?: false } = {}) {
  await using t = await fakeTree(...files);
  const sampler = createSystemSampler({ ...(options.procRoot === false ? {} : { procRoot: t.procRoot }), cgroupRoot: t.cgroupRoot, diskPaths: [] });
  try {
    return await sampler.sample();
  } finally {
    sampler.close();
  }
}
