import { GuardBus, waitUntil } from '@guard/core';
import type { PlaybookRunNotice, PlaybookStepNotice } from '@guard/core';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ProbeRegistry } from './action-registry.js';
import { createActionRegistry } from './builtin-actions.js';
import { createLocalFleetLock } from './fleet-lock.js';
import { parsePlaybook } from './load-playbooks.js';
import { formatPlan, PlaybookEngine } from './playbook-engine.js';

/** An engine with recording actions on its own bus and registry; `await using` closes it. */
function setup(options: { dryRun?: boolean } = {}) {
  const bus = new GuardBus();
  const runs: PlaybookRunNotice[] = [];
  const steps: PlaybookStepNotice[] = [];
  bus.on('playbookRun', (n) => runs.push(n));
  bus.on('playbookStep', (n) => steps.push(n));
  const calls: [string, Record<string, unknown>][] = [];
  const state = { value: 0 };
  const actions = createActionRegistry();
  const record = (name: string) => (p: Readonly<Record<string, unknown>>) => {
    calls.push([name, { ...p }]);
    return { done: name };
  };
  actions.register('set_value', (p) => {
    calls.push(['set_value', { ...p }]);
    state.value = Number(p.value);
    return { value: state.value };
  });
  actions.register('record', record('record'));
  actions.register('undo', record('undo'));
  actions.register('explode', () => {
    throw new Error('kaboom');
  });
  const hanging = { count: 0 };
  actions.register('hang', (_p, ctx) => {
    hanging.count++;
    return new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)));
  });
  actions.register('slow', () => new Promise((r) => setTimeout(() => r('slow done'), 150)));
  const probes = new ProbeRegistry().register('state.value', () => state.value).register('broken', () => {
    throw new Error('probe down');
  });
  const registry = new Registry();
  const engine = new PlaybookEngine({ actions, probes, bus, registry, ...options });
  return {
    engine,
    bus,
    runs,
    steps,
    calls,
    state,
    registry,
    hanging,
    /** Registers a playbook from YAML. */
    book(yaml: string) {
      engine.register(parsePlaybook(yaml));
    },
    [Symbol.asyncDispose]: () => engine.close(),
  };
}

const BOOK = `name: fix_value
trigger:
  event: value.bad
  conditions:
    - { field: event.level, op: ">=", value: 5 }
cooldown: 1min
steps:
  - id: first
    action: record
    params: { who: "{{ event.who }}", level: "{{ event.level }}", text: "level {{ event.level }}" }
  - id: only_when_high
    action: record
    when: { field: event.level, op: ">", value: 100 }
  - id: fix
    action: set_value
    params: { value: "{{ event.target }}" }
  - id: uses_output
    action: record
    when: { field: steps.fix.output.value, op: "==", value: 0 }
verify:
  checks:
    - { id: value_zero, probe: state.value, op: "==", value: 0 }
  retries: 3
  interval: 10ms
  deadline: 2s
rollback:
  - id: undo
    action: undo
    params: { who: "{{ event.who }}" }
`;

describe('PlaybookEngine', () => {
  it('runs matching playbooks step by step with templated params, conditions and verification', async () => {
    await using s = setup();
    s.book(BOOK);
    const [run] = await s.engine.trigger('value.bad', { level: 7, who: 'ops', target: 0 }, { reason: 'test' });
    expect(run).toMatchObject({ playbook: 'fix_value', status: 'succeeded', dryRun: false, reason: 'test', rollback: [] });
    expect(run!.steps.map((x) => [x.id, x.outcome])).toEqual([
      ['first', 'succeeded'],
      ['only_when_high', 'skipped'],
      ['fix', 'succeeded'],
      ['uses_output', 'succeeded'],
    ]);
    expect(s.calls[0]).toEqual(['record', { who: 'ops', level: 7, text: 'level 7' }]);
    expect(run!.verification).toMatchObject({ passed: true, attempts: 1 });
    expect(s.runs.map((r) => r.status)).toEqual(['started', 'succeeded']);
    expect(s.steps.map((x) => [x.step, x.outcome])).toEqual([
      ['first', 'succeeded'],
      ['only_when_high', 'skipped'],
      ['fix', 'succeeded'],
      ['uses_output', 'succeeded'],
      ['verify', 'succeeded'],
    ]);
    expect(s.runs[1]!.runId).toBe(run!.runId);
    expect(await s.engine.trigger('value.bad', { level: 1 })).toEqual([]);
    expect(await s.engine.trigger('other.event', { level: 9 })).toEqual([]);
    const text = await s.registry.metrics();
    expect(text).toContain('guard_playbooks_runs_total{playbook="fix_value",status="succeeded"} 1');
    expect(text).toContain('guard_playbooks_step_duration_seconds_count{playbook="fix_value",action="set_value",outcome="succeeded"} 1');
  });

  it('retries verification and rolls back when it keeps failing', async () => {
    await using s = setup();
    s.book(BOOK);
    const [run] = await s.engine.trigger('value.bad', { level: 7, who: 'ops', target: 3 });
    expect(run!.status).toBe('rolled_back');
    expect(run!.verification).toMatchObject({ passed: false, attempts: 4, checks: [{ id: 'value_zero', value: 3, passed: false, expected: 0 }] });
    expect(run!.rollback.map((r) => [r.id, r.outcome, r.params])).toEqual([['undo', 'succeeded', { who: 'ops' }]]);
    expect(run!.error).toContain('verification failed');
    expect(s.runs.at(-1)).toMatchObject({ status: 'rolled_back', error: expect.stringContaining('verification failed') });
  });

  it('passes verification once the probe recovers within the deadline', async () => {
    await using s = setup();
    s.book(BOOK);
    setTimeout(() => (s.state.value = 0), 15);
    const [run] = await s.engine.trigger('value.bad', { level: 7, target: 9 });
    expect(run!.status).toBe('succeeded');
    expect(run!.verification!.attempts).toBeGreaterThan(1);
  });

  it('stops at a failing step, unless continue_on_error, and times out hung steps', async () => {
    await using s = setup();
    s.book(`name: failing
trigger: { event: go }
steps:
  - { id: soft, action: explode, continue_on_error: true }
  - { id: hung, action: hang, timeout: 30ms }
  - { id: never, action: record }
rollback:
  - { id: undo, action: undo }
`);
    const run = await s.engine.run('failing');
    expect(run.steps.map((x) => [x.id, x.outcome, x.error])).toEqual([
      ['soft', 'failed', 'kaboom'],
      ['hung', 'timeout', 'step hung exceeded 30 ms'],
    ]);
    expect(run.status).toBe('rolled_back');
    expect(s.calls.map((c) => c[0])).toEqual(['undo']);
    expect(s.steps.map((x) => x.outcome)).toEqual(['failed', 'timeout', 'succeeded']);
  });

  it('fails without rollback steps and when the run exceeds its own timeout', async () => {
    await using s = setup();
    s.book(`name: slowpoke\ntrigger: { event: go }\ntimeout: 50ms\nsteps:\n  - { action: slow }\n  - { action: record }\n`);
    const run = await s.engine.run('slowpoke');
    expect(run.status).toBe('failed');
    expect(run.steps[0]).toMatchObject({ outcome: 'timeout' });
    expect(run.error).toContain('exceeded 50 ms');
  });

  it('dry-run plans without acting, and says which conditions depend on earlier steps', async () => {
    await using s = setup({ dryRun: true });
    s.book(BOOK);
    const [run] = await s.engine.trigger('value.bad', { level: 7, who: 'ops', target: 3 });
    expect(s.calls).toEqual([]);
    expect(s.state.value).toBe(0);
    expect(run).toMatchObject({ status: 'succeeded', dryRun: true });
    expect(run!.steps.map((x) => [x.id, x.outcome, x.conditional ?? false])).toEqual([
      ['first', 'planned', false],
      ['only_when_high', 'skipped', false],
      ['fix', 'planned', false],
      ['uses_output', 'planned', true],
    ]);
    expect(run!.verification).toBeUndefined();
    expect(s.steps.every((x) => x.outcome === 'planned' || x.outcome === 'skipped')).toBe(true);
    const plan = formatPlan(run!);
    expect(plan).toContain('fix_value (dry run)');
    expect(plan).toContain('3. fix: set_value {"value":3}');
    expect(plan).toContain('[if condition holds]');
    // Dry runs take no cooldown and no run slot.
    const [again] = await s.engine.trigger('value.bad', { level: 7, target: 3 });
    expect(again!.status).toBe('succeeded');
    expect((await s.engine.plan('fix_value', { level: 7 })).dryRun).toBe(true);
  });

  it('allows one run at a time per playbook and honours the cooldown', async () => {
    await using s = setup();
    s.book(`name: slow_book\ntrigger: { event: go }\ncooldown: 10min\nsteps:\n  - { action: slow }\n`);
    const first = s.engine.trigger('go');
    expect(s.engine.isRunning('slow_book')).toBe(true);
    const [second] = await s.engine.trigger('go', {}, { reason: 'again' });
    expect(second).toMatchObject({ status: 'skipped', skipReason: 'running' });
    expect((await first)[0]!.status).toBe('succeeded');
    const [third] = await s.engine.trigger('go');
    expect(third).toMatchObject({ status: 'skipped', skipReason: 'cooldown' });
    const forced = await s.engine.run('slow_book', {}, { force: true });
    expect(forced.status).toBe('succeeded');
    expect(s.runs.filter((r) => r.status === 'skipped').map((r) => r.reason)).toEqual(['again (skipped: running)', 'skipped: cooldown']);
    expect(s.engine.runs().map((r) => r.status)).toEqual(['skipped', 'succeeded', 'skipped', 'succeeded']);
  });

  it('records probe errors as failed checks', async () => {
    await using s = setup();
    s.book(`name: probing\ntrigger: { event: go }\nsteps:\n  - { action: record }\nverify:\n  checks:\n    - { probe: broken, op: exists }\n  retries: 0\n`);
    const run = await s.engine.run('probing');
    expect(run.status).toBe('failed');
    expect(run.verification!.checks[0]).toMatchObject({ passed: false, error: 'probe down' });
  });

  it('refuses unknown actions, probes, duplicate and unknown playbooks', async () => {
    await using s = setup();
    const unknown = parsePlaybook(`name: bad\ntrigger: { event: go }\nsteps:\n  - { action: launch_missiles }\n`, { file: 'bad.yaml' });
    expect(() => s.engine.register(unknown)).toThrow(expect.objectContaining({ code: 'UNKNOWN_ACTION', message: expect.stringContaining('launch_missiles') }));
    const badProbe = parsePlaybook(`name: bad2\ntrigger: { event: go }\nsteps:\n  - { action: record }\nverify:\n  checks:\n    - { probe: nope, op: exists }\n`);
    expect(() => s.engine.register(badProbe)).toThrow(expect.objectContaining({ code: 'UNKNOWN_ACTION', message: expect.stringContaining('unknown probe') }));
    s.book(BOOK);
    expect(() => s.book(BOOK)).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
    await expect(s.engine.run('missing')).rejects.toMatchObject({ code: 'UNKNOWN_PLAYBOOK' });
    expect(s.engine.unregister('fix_value')).toBe(true);
    expect(s.engine.playbooks()).toEqual([]);
    expect(() => new PlaybookEngine({ actions: {} as never })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    expect(() => createActionRegistry().register('notify', () => 1)).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
    expect(() => createActionRegistry().register('Bad Name', () => 1)).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
  });

  it('runs a fleet step on one engine only when two share a lock', async () => {
    const lock = createLocalFleetLock({ dedupeWindowMs: 60_000 });
    await using a = setup();
    await using b = setup();
    const book = `name: fleet_book\ntrigger: { event: go }\nsteps:\n  - { id: local, action: record }\n  - { id: global, action: slow, fleet: true }\n`;
    const ea = new PlaybookEngine({ actions: a.engine.actions, registry: a.registry, fleetLock: lock, playbooks: [parsePlaybook(book)] });
    const eb = new PlaybookEngine({ actions: b.engine.actions, registry: b.registry, fleetLock: lock, playbooks: [parsePlaybook(book)] });
    await using _ea = ea;
    await using _eb = eb;
    const [[ra], [rb]] = await Promise.all([ea.trigger('go'), eb.trigger('go')]);
    const fleet = [ra!.steps[1]!, rb!.steps[1]!];
    expect(fleet.map((x) => x.fleet).sort()).toEqual(['held', 'ran']);
    expect(fleet.filter((x) => x.outcome === 'succeeded')).toHaveLength(1);
    expect([ra!.status, rb!.status]).toEqual(['succeeded', 'succeeded']);
    const later = await ea.run('fleet_book', {}, { force: true });
    expect(later.steps[1]).toMatchObject({ outcome: 'skipped', fleet: 'done' });
  });

  it('aborts runs on close and rejects new work', async () => {
    const s = setup();
    s.book(`name: hanging\ntrigger: { event: go }\nsteps:\n  - { action: hang, timeout: 1h }\n`);
    const pending = s.engine.run('hanging');
    await waitUntil(() => s.hanging.count > 0, { what: 'the step to start' });
    await s.engine.close();
    await s.engine.close();
    const run = await pending;
    expect(run.status).toBe('failed');
    expect(run.steps[0]).toMatchObject({ outcome: 'failed', error: 'PlaybookEngine is closed' });
    await expect(s.engine.trigger('go')).rejects.toMatchObject({ code: 'CLOSED' });
    await expect(s.engine.run('hanging')).rejects.toMatchObject({ code: 'CLOSED' });
    expect(() => s.book(BOOK)).toThrow(expect.objectContaining({ code: 'CLOSED' }));
  });

  it('reads its options from the environment', () => {
    expect(PlaybookEngine.optionsFromEnv({})).toEqual({ dryRun: false, historySize: 100 });
    expect(PlaybookEngine.optionsFromEnv({ GUARD_PLAYBOOKS_DRY_RUN: 'yes', GUARD_PLAYBOOKS_HISTORY: '10' })).toEqual({ dryRun: true, historySize: 10 });
    expect(() => PlaybookEngine.optionsFromEnv({ GUARD_PLAYBOOKS_DRY_RUN: 'maybe' })).toThrow(expect.objectContaining({ code: 'INVALID_ENV', message: expect.stringContaining('GUARD_PLAYBOOKS_DRY_RUN') }));
    expect(() => PlaybookEngine.optionsFromEnv({ GUARD_PLAYBOOKS_HISTORY: '0' })).toThrow(expect.objectContaining({ code: 'INVALID_ENV' }));
  });

  it('fails a fleet step whose lock cannot be taken, without claiming it ran', async () => {
    await using s = setup();
    const engine = new PlaybookEngine({
      actions: s.engine.actions,
      registry: s.registry,
      fleetLock: { tryRun: () => Promise.reject(new Error('database down')) },
      playbooks: [parsePlaybook(`name: fleet_down\ntrigger: { event: go }\nsteps:\n  - { id: global, action: record, fleet: true }\n`)],
    });
    await using _f = engine;
    const run = await engine.run('fleet_down');
    expect(run.status).toBe('failed');
    expect(run.steps[0]).toMatchObject({ outcome: 'failed', error: 'fleet lock: database down' });
    expect(run.steps[0]!.fleet).toBeUndefined();
    expect(s.calls).toEqual([]);
  });

  it('stops a run when the caller aborts it', async () => {
    await using s = setup();
    s.book(`name: abortable\ntrigger: { event: go }\nsteps:\n  - { action: hang, timeout: 1h }\n  - { action: record }\n`);
    const controller = new AbortController();
    const pending = s.engine.run('abortable', {}, { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('operator cancelled')), 20);
    const run = await pending;
    expect(run.status).toBe('failed');
    expect(run.steps.map((x) => [x.outcome, x.error])).toEqual([['failed', 'operator cancelled']]);
    expect(s.calls).toEqual([]);
    await expect(s.engine.trigger('go', {}, { signal: controller.signal })).rejects.toThrow('operator cancelled');
  });
});

describe('PlaybookEngine: for_each, retry, concurrency_key, steady state, run notices', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('runs a for_each step once per item of the trigger list, with {{ item }} in params', async () => {
    await using s = setup();
    s.book(`name: each
input: [offenders]
trigger: { event: go }
steps:
  - id: every
    action: record
    for_each: "{{ event.offenders }}"
    params: { actor: "{{ item }}", n: "{{ item_index }}" }
`);
    const [run] = await s.engine.trigger('go', { offenders: ['a', 'b', 'c'] });
    expect(run!.status).toBe('succeeded');
    expect(s.calls).toEqual([
      ['record', { actor: 'a', n: 0 }],
      ['record', { actor: 'b', n: 1 }],
      ['record', { actor: 'c', n: 2 }],
    ]);
    expect(run!.steps[0]).toMatchObject({ items: ['a', 'b', 'c'], output: { succeeded: 3, failed: 0 } });
    const [missing] = await s.engine.run('each', { offenders: 'a' }, { force: true }).then((r) => [r]);
    expect(missing).toMatchObject({ status: 'failed', steps: [{ outcome: 'failed', error: 'for_each {{ event.offenders }} is not a list (got string)' }] });
  });

  it('a for_each step fails when any item fails, after trying the others', async () => {
    await using s = setup();
    s.engine.actions.register('picky', (p) => {
      if (p.actor === 'bad') throw new Error('refused');
      return { ok: p.actor };
    });
    s.book(`name: each
trigger: { event: go }
steps:
  - { id: every, action: picky, for_each: "{{ event.list }}", params: { actor: "{{ item }}" } }
`);
    const [run] = await s.engine.trigger('go', { list: ['a', 'bad', 'c'] });
    expect(run!.status).toBe('failed');
    expect(run!.steps[0]).toMatchObject({ outcome: 'failed', error: '"bad": refused', output: { succeeded: 2, failed: 1 } });
  });

  it('retries a failing step count times, delay apart, and reports the attempts', async () => {
    vi.useFakeTimers();
    await using s = setup();
    let calls = 0;
    s.engine.actions.register('flaky', () => {
      calls++;
      if (calls < 3) throw new Error(`try ${calls}`);
      return { calls };
    });
    s.book(`name: retrying
trigger: { event: go }
steps:
  - { id: flaky, action: flaky, retry: { count: 2, delay: 1s } }
`);
    const pending = s.engine.trigger('go');
    await vi.advanceTimersByTimeAsync(999);
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toBe(2);
    await vi.advanceTimersByTimeAsync(1_000);
    const [run] = await pending;
    expect(run).toMatchObject({ status: 'succeeded', steps: [{ outcome: 'succeeded', attempts: 3, output: { calls: 3 } }] });
    expect(s.runs.at(-1)!.steps).toEqual([expect.objectContaining({ id: 'flaky', status: 'succeeded', attempts: 3, result: { calls: 3 } })]);

    calls = -10;
    await vi.advanceTimersByTimeAsync(120_000);
    const again = s.engine.trigger('go');
    await vi.advanceTimersByTimeAsync(3_000);
    const [failed] = await again;
    expect(failed).toMatchObject({ status: 'failed', steps: [{ outcome: 'failed', attempts: 3, error: 'try -7' }] });
  });

  it('keys runs and cooldowns by concurrency_key: a second actor gets its own run while the first is running', async () => {
    vi.useFakeTimers();
    await using s = setup();
    s.book(`name: per_actor
input: [actor]
trigger: { event: go }
concurrency_key: "{{ event.actor }}"
cooldown: 30s
steps:
  - { action: slow }
  - { action: record, params: { actor: "{{ event.actor }}" } }
`);
    const first = s.engine.trigger('go', { actor: 'a' });
    const [again] = await s.engine.trigger('go', { actor: 'a' });
    expect(again).toMatchObject({ status: 'skipped', skipReason: 'running', key: 'a' });
    const second = s.engine.trigger('go', { actor: 'b' });
    expect(s.engine.isRunning('per_actor', 'a')).toBe(true);
    expect(s.engine.isRunning('per_actor', 'b')).toBe(true);
    await vi.advanceTimersByTimeAsync(200);
    expect((await first)[0]).toMatchObject({ status: 'succeeded', key: 'a' });
    expect((await second)[0]).toMatchObject({ status: 'succeeded', key: 'b' });
    expect(s.calls).toEqual([
      ['record', { actor: 'a' }],
      ['record', { actor: 'b' }],
    ]);
    expect((await s.engine.trigger('go', { actor: 'a' }))[0]).toMatchObject({ status: 'skipped', skipReason: 'cooldown' });
    const third = s.engine.trigger('go', { actor: 'c' });
    expect(s.engine.isRunning('per_actor', 'c')).toBe(true);
    await vi.advanceTimersByTimeAsync(30_000);
    expect((await third)[0]!.status).toBe('succeeded');
    const late = s.engine.trigger('go', { actor: 'a' });
    await vi.advanceTimersByTimeAsync(200);
    expect((await late)[0]!.status).toBe('succeeded');
    expect(s.runs.find((r) => r.status === 'started')).toMatchObject({ key: 'a' });
  });

  it('measures the steady state before and after; a failed after-check fails the run and rolls back', async () => {
    await using s = setup();
    s.book(`name: hypothesis
trigger: { event: go }
before:
  checks: [{ id: broken_now, probe: state.value, op: "!=", value: 0 }]
steps:
  - { action: set_value, params: { value: "{{ event.to }}" } }
after:
  checks: [{ id: fixed, probe: state.value, op: "==", value: 0 }]
rollback:
  - { action: undo }
cooldown: 0ms
`);
    s.state.value = 7;
    const [good] = await s.engine.trigger('go', { to: 0 });
    expect(good).toMatchObject({ status: 'succeeded', before: { passed: true, checks: [{ id: 'broken_now', value: 7 }] }, after: { passed: true } });
    s.state.value = 7;
    const [bad] = await s.engine.trigger('go', { to: 3 });
    expect(bad).toMatchObject({ status: 'rolled_back', after: { passed: false, checks: [{ id: 'fixed', value: 3, passed: false }] } });
    expect(bad!.error).toBe('steady state after the run does not hold: fixed: state.value=3, expected == 0');
    // Already steady before: reported, and (on_failure: continue) the run still acts.
    s.state.value = 0;
    const [calm] = await s.engine.trigger('go', { to: 0 });
    expect(calm).toMatchObject({ status: 'succeeded', before: { passed: false } });
    expect(s.steps.filter((n) => n.step === 'before').map((n) => n.outcome)).toEqual(['succeeded', 'succeeded', 'failed']);
    expect(s.runs.filter((r) => r.status === 'rolled_back')[0]).toMatchObject({ after: { passed: false, checks: [{ id: 'fixed', probe: 'state.value', value: 3, passed: false }] } });
  });

  it('on_failure: skip ends the run as skipped (steady_state) without a cooldown', async () => {
    await using s = setup();
    s.book(`name: only_when_broken
trigger: { event: go }
cooldown: 1h
before:
  checks: [{ probe: state.value, op: "!=", value: 0 }]
  on_failure: skip
steps:
  - { action: record }
`);
    const [skipped] = await s.engine.trigger('go');
    expect(skipped).toMatchObject({ status: 'skipped', skipReason: 'steady_state', steps: [] });
    s.state.value = 1;
    expect((await s.engine.trigger('go'))[0]!.status).toBe('succeeded');
    expect(s.calls).toHaveLength(1);
  });

  it('the finished run notice carries every step result and the checks', async () => {
    await using s = setup();
    s.book(BOOK);
    await s.engine.trigger('value.bad', { level: 9, who: 'w', target: 0 });
    const done = s.runs.find((r) => r.status === 'succeeded')!;
    expect(done.steps).toEqual([
      { id: 'first', action: 'record', status: 'succeeded', durationMs: expect.any(Number), result: { done: 'record' } },
      { id: 'only_when_high', action: 'record', status: 'skipped', durationMs: 0 },
      { id: 'fix', action: 'set_value', status: 'succeeded', durationMs: expect.any(Number), result: { value: 0 } },
      { id: 'uses_output', action: 'record', status: 'succeeded', durationMs: expect.any(Number), result: { done: 'record' } },
    ]);
    expect(done.verification).toEqual({ passed: true, attempts: 1, checks: [{ id: 'value_zero', probe: 'state.value', value: 0, passed: true }] });
    const big = setup();
    await using _b = big.engine;
    big.engine.actions.register('huge', () => ({ blob: 'x'.repeat(10_000) }));
    big.engine.register(parsePlaybook(`name: big
trigger: { event: go }
steps:
  - { action: huge }
`));
    await big.engine.trigger('go');
    expect(big.runs.at(-1)!.steps![0]!.result).toMatchObject({ truncated: true });
  });

  it('runs playbooks built in code without the loader defaults (no retry field)', async () => {
    await using s = setup();
    s.engine.register({ name: 'coded', trigger: { event: 'go' }, cooldownMs: 0, timeoutMs: 5_000, steps: [{ id: 'one', action: 'record', params: {}, timeoutMs: 1_000, continueOnError: false, fleet: false }], rollback: [] });
    expect((await s.engine.trigger('go'))[0]).toMatchObject({ status: 'succeeded', steps: [{ outcome: 'succeeded', attempts: 1 }] });
  });

  it('register checks the templates of playbooks built in code too', async () => {
    await using s = setup();
    const step = { id: 'one', action: 'record', params: { actor: '{{ event.actr }}' }, timeoutMs: 1_000, continueOnError: false, fleet: false };
    expect(() => s.engine.register({ name: 'typo', input: ['actor'], trigger: { event: 'go' }, cooldownMs: 0, timeoutMs: 5_000, steps: [step], rollback: [] })).toThrow(
      expect.objectContaining({ code: 'INVALID_PLAYBOOK', details: expect.objectContaining({ playbook: 'typo', field: 'event.actr', path: 'steps.0.params.actor' }) }),
    );
  });
});
