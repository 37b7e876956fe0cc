import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isGuardError } from '@guard/core';
import { describe, expect, it } from 'vitest';
import { createActionRegistry, createProbeRegistry } from './builtin-actions.js';
import { evaluateCondition, resolveParams } from './conditions.js';
import { builtinPlaybooksDir, loadPlaybookFile, loadPlaybooks, parsePlaybook } from './load-playbooks.js';
import { durationOrUndefined } from './playbook-schema.js';

const MINIMAL = `name: demo
trigger:
  event: demo.event
steps:
  - action: notify
    params: { message: hi }
`;

function errorOf(fn: () => unknown): { code: string; message: string; details: Record<string, unknown> } {
  try {
    fn();
  } catch (error) {
    if (isGuardError(error)) return error as never;
    throw error;
  }
  throw new Error('expected an error');
}

describe('parsePlaybook', () => {
  it('parses the shipped seed playbooks with their defaults and durations', async () => {
    const [acl, cpu] = await loadPlaybooks(builtinPlaybooksDir());
    expect(acl!.name).toBe('message_bus_acl_violation_fix');
    expect(acl!.steps.map((s) => s.action)).toEqual(['assess', 'blacklist_actor', 'blacklist_actor', 'rate_limit_topic', 'restart_message_bus', 'notify', 'create_followup']);
    expect(acl!.trigger.conditions).toEqual({ all: [{ field: 'event.reason', op: 'in', value: ['spam_attack', 'actor_blacklist', 'control_topic_flood', 'spam', 'blacklist', 'control_flood'] }] });
    expect(acl!.steps[2]).toMatchObject({ id: 'blacklist_offenders', forEach: '{{ event.offenders }}', params: { actor: '{{ item }}', duration: '10min' } });
    expect(acl!.steps[3]!.params).toEqual({ topic: '{{ event.topic }}', actor: '{{ event.actor }}', rate_per_sec: 1, duration: '30min' });
    expect(acl!.steps[4]!.when).toEqual({ any: [{ field: 'event.totalViolations', op: '>', value: 200 }, { field: 'event.violations', op: '>', value: 200 }] });
    expect(acl!.concurrencyKey).toBe('{{ event.actor }}');
    expect(acl!.verify).toMatchObject({ retries: 80, intervalMs: 250, deadlineMs: 20_000 });
    expect(acl!.verify!.checks.map((c) => c.probe)).toEqual(['acl.violations_since', 'bus.canary']);
    expect(acl!.cooldownMs).toBe(30_000);
    expect(acl!.source).toContain('message_bus_acl_violation_fix.yaml');
    expect(cpu!.name).toBe('resource_pressure_cpu');
    expect(cpu!.steps.map((s) => s.id)).toEqual(['identify_hogs', 'kill_runaway', 'scale_down', 'throttle_non_critical', 'pause_heavy_tasks', 'api_throttling', 'notify', 'route_to_scheduler']);
    expect(cpu!.steps[1]!.params).toEqual({ threshold_percent: 50 });
    expect(cpu!.steps[2]!.params).toEqual({ count: 2, min: 1 });
    expect(cpu!.verify!.checks.map((c) => [c.probe, c.op, c.value])).toEqual([
      ['pressure.cpu_percent', '<', 60],
      ['pressure.alarm', '==', false],
      ['http.status', '==', 200],
    ]);
    expect(cpu!.rollback.map((s) => s.action)).toEqual(['resume_tasks', 'disable_rate_limit', 'notify']);
  });

  it('fills defaults and generated step ids', () => {
    const p = parsePlaybook(MINIMAL);
    expect(p).toMatchObject({ cooldownMs: 60_000, timeoutMs: 300_000, rollback: [] });
    expect(p.steps[0]).toEqual({ id: 'notify_1', action: 'notify', params: { message: 'hi' }, timeoutMs: 30_000, continueOnError: false, fleet: false, retry: { count: 0, delayMs: 0 } });
  });

  it('reports YAML syntax errors with file and line', () => {
    const e = errorOf(() => parsePlaybook('name: x\nsteps: [\n  - a\n', { file: 'broken.yaml' }));
    expect(e.code).toBe('INVALID_PLAYBOOK');
    expect(e.message).toMatch(/broken\.yaml:\d+:\d+/);
    expect(e.details.file).toBe('broken.yaml');
  });

  it('reports schema errors with the path and the line of the offending node', () => {
    const text = `name: demo
trigger:
  event: demo.event
steps:
  - action: notify
    timeout: soon
`;
    const e = errorOf(() => parsePlaybook(text, { file: 'bad.yaml' }));
    expect(e.code).toBe('INVALID_PLAYBOOK');
    expect(e.details).toMatchObject({ file: 'bad.yaml', path: 'steps.0.timeout', line: 6 });
    expect(e.message).toContain('bad.yaml:6:');
    expect(e.message).toContain('duration');
  });

  it('refuses unknown fields, bad names, bad operators and duplicate step ids', () => {
    expect(errorOf(() => parsePlaybook(`${MINIMAL}extra: 1\n`)).message).toMatch(/extra|Unrecognized/i);
    expect(errorOf(() => parsePlaybook(MINIMAL.replace('name: demo', 'name: Demo Book'))).details.path).toBe('name');
    const badOp = MINIMAL.replace('    params', "    when: { field: event.x, op: '=~', value: 1 }\n    params");
    expect(errorOf(() => parsePlaybook(badOp)).details.path).toMatch(/^steps\.0\.when/);
    const dup = `${MINIMAL}  - id: notify_1\n    action: notify\n`;
    expect(errorOf(() => parsePlaybook(dup)).message).toContain('duplicate step id');
    const code = MINIMAL.replace('    params', '    when: "event.x > 1 && process.exit()"\n    params');
    expect(errorOf(() => parsePlaybook(code)).code).toBe('INVALID_PLAYBOOK');
  });

  it('refuses duplicate keys, custom tags, alias bombs and huge documents', () => {
    expect(errorOf(() => parsePlaybook(`${MINIMAL}name: again\n`)).code).toBe('INVALID_PLAYBOOK');
    expect(errorOf(() => parsePlaybook(MINIMAL.replace('{ message: hi }', '!!js/function "return 1"'))).code).toBe('INVALID_PLAYBOOK');
    const bomb = [
      'a: &a ["x","x","x","x","x","x","x","x","x"]',
      'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]',
      'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]',
      'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
      'e: [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
    ].join('\n');
    const e = errorOf(() => parsePlaybook(bomb, { file: 'bomb.yaml' }));
    expect(e.code).toBe('INVALID_PLAYBOOK');
    expect(e.message).toContain('alias');
    const huge = `${MINIMAL}description: "${'x'.repeat(300_000)}"\n`;
    expect(errorOf(() => parsePlaybook(huge)).message).toContain('larger than');
    expect(errorOf(() => parsePlaybook('- just\n- a list\n')).code).toBe('INVALID_PLAYBOOK');
  });

  it('refuses unknown actions and probes with UNKNOWN_ACTION when the registries are given', () => {
    const actions = createActionRegistry();
    const text = MINIMAL.replace('action: notify', 'action: format_disk');
    const e = errorOf(() => parsePlaybook(text, { file: 'x.yaml', knownActions: actions.names() }));
    expect(e.code).toBe('UNKNOWN_ACTION');
    expect(e.details).toMatchObject({ path: 'steps.0.action', line: 5 });
    const withCheck = `${MINIMAL}verify:\n  checks:\n    - { probe: nothing.here, op: '==', value: 1 }\n`;
    expect(errorOf(() => parsePlaybook(withCheck, { knownActions: actions.names(), knownProbes: createProbeRegistry().names() })).message).toContain('unknown probe');
  });

  it('loads a folder, refusing invalid files and duplicate names', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'guard-playbooks-'));
    try {
      await writeFile(join(dir, 'a.yaml'), MINIMAL);
      await writeFile(join(dir, 'notes.txt'), 'ignored');
      expect((await loadPlaybooks(dir)).map((p) => p.name)).toEqual(['demo']);
      await writeFile(join(dir, 'b.yml'), MINIMAL);
      await expect(loadPlaybooks(dir)).rejects.toMatchObject({ code: 'INVALID_INPUT' });
      await writeFile(join(dir, 'b.yml'), 'name: [');
      await expect(loadPlaybooks(dir)).rejects.toMatchObject({ code: 'INVALID_PLAYBOOK', details: { file: join(dir, 'b.yml') } });
      await writeFile(join(dir, 'big.yaml'), 'x'.repeat(2_000));
      await expect(loadPlaybookFile(join(dir, 'big.yaml'), { maxBytes: 1_000 })).rejects.toMatchObject({ code: 'INVALID_PLAYBOOK' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('conditions and params', () => {
  it('evaluates declarative conditions without evaluating code', () => {
    const ctx = { event: { violations: 250, reason: 'spam', tags: ['a'], name: 'x' } };
    expect(evaluateCondition({ field: 'event.violations', op: '>', value: 200 }, ctx)).toBe(true);
    expect(evaluateCondition({ field: 'event.violations', op: '<=', value: 200 }, ctx)).toBe(false);
    expect(evaluateCondition({ field: 'event.reason', op: 'in', value: ['spam', 'blacklist'] }, ctx)).toBe(true);
    expect(evaluateCondition({ field: 'event.reason', op: 'not_in', value: ['spam'] }, ctx)).toBe(false);
    expect(evaluateCondition({ field: 'event.tags', op: 'contains', value: 'a' }, ctx)).toBe(true);
    expect(evaluateCondition({ field: 'event.missing', op: 'exists' }, ctx)).toBe(false);
    expect(evaluateCondition({ field: 'event.missing', op: 'not_exists' }, ctx)).toBe(true);
    expect(evaluateCondition({ field: 'event.name', op: '>', value: 3 }, ctx)).toBe(false);
    expect(evaluateCondition({ all: [{ field: 'event.violations', op: '==', value: '250' }, { not: { field: 'event.reason', op: '==', value: 'x' } }] }, ctx)).toBe(true);
    expect(evaluateCondition({ any: [{ field: 'event.violations', op: '<', value: 1 }, { field: 'event.__proto__', op: 'exists' }] }, ctx)).toBe(false);
    expect(evaluateCondition({ field: 'event.constructor', op: 'exists' }, ctx)).toBe(false);
  });

  it('fills {{ path }} templates, keeping the type of whole placeholders', () => {
    const ctx = { event: { actor: 'bot', count: 3, obj: { a: 1 } } };
    expect(resolveParams({ actor: '{{ event.actor }}', n: '{{event.count}}', text: 'n={{ event.count }} {{ event.nope }}!', list: ['{{ event.obj }}'] }, ctx)).toEqual({
      actor: 'bot',
      n: 3,
      text: 'n=3 !',
      list: [{ a: 1 }],
    });
  });

  it('parses durations', () => {
    expect([durationOrUndefined('250ms'), durationOrUndefined('5s'), durationOrUndefined('10min'), durationOrUndefined('1h'), durationOrUndefined(42)]).toEqual([250, 5_000, 600_000, 3_600_000, 42]);
    expect([durationOrUndefined('5 parsecs'), durationOrUndefined(-1), durationOrUndefined(null)]).toEqual([undefined, undefined, undefined]);
  });
});

describe('playbook format: input, for_each, retry, concurrency_key, steady state', () => {
  const FULL = `
name: acl_fix
input: [actor, offenders, totalViolations]
trigger: { event: message_bus.acl_violation }
concurrency_key: "{{ event.actor }}"
before:
  checks: [{ probe: acl.violations_since, params: { window: 1s }, op: ">", value: 0 }]
steps:
  - id: blacklist
    action: blacklist_actor
    for_each: "{{ event.offenders }}"
    params: { actor: "{{ item }}" }
    retry: { count: 2, delay: 100ms }
  - id: restart
    action: restart_message_bus
    when: { field: event.totalViolations, op: ">", value: 200 }
    retry: { count: 1, delayMs: 50 }
  - id: tell
    action: notify
    params: { message: "restarted: {{ steps.restart.outcome }}" }
after:
  checks: [{ probe: bus.canary, op: "==", value: true }]
  on_failure: continue
`;

  it('parses the new keys', () => {
    const p = parsePlaybook(FULL);
    expect(p.input).toEqual(['actor', 'offenders', 'totalViolations']);
    expect(p.concurrencyKey).toBe('{{ event.actor }}');
    expect(p.steps[0]).toMatchObject({ forEach: '{{ event.offenders }}', retry: { count: 2, delayMs: 100 } });
    expect(p.steps[1]!.retry).toEqual({ count: 1, delayMs: 50 });
    expect(p.before).toEqual({ checks: [{ id: 'before_1', probe: 'acl.violations_since', params: { window: '1s' }, op: '>', value: 0 }], onFailure: 'continue' });
    expect(p.after!.checks[0]).toMatchObject({ id: 'after_1', probe: 'bus.canary' });
  });

  it('a template typo fails at load with INVALID_PLAYBOOK naming the playbook, the field and the line', () => {
    const e = errorOf(() => parsePlaybook(FULL.replace('actor: "{{ item }}"', 'actor: "{{ event.actr }}"'), { file: 'acl.yaml' }));
    expect(e).toMatchObject({ code: 'INVALID_PLAYBOOK', details: { file: 'acl.yaml', playbook: 'acl_fix', field: 'event.actr', path: 'steps.0.params.actor', line: 12 } });
    expect(e.message).toContain('playbook "acl_fix": "event.actr" reads event.actr, which is not a declared input (input: actor, offenders, totalViolations)');
  });

  it('checks conditions, for_each, concurrency keys and check params against the declared input too', () => {
    for (const [from, to, field] of [
      ['field: event.totalViolations', 'field: event.total', 'event.total'],
      ['for_each: "{{ event.offenders }}"', 'for_each: "{{ event.offender }}"', 'event.offender'],
      ['concurrency_key: "{{ event.actor }}"', 'concurrency_key: "{{ event.who }}"', 'event.who'],
      ['params: { window: 1s }', 'params: { window: "{{ event.win }}" }', 'event.win'],
    ] as const) {
      expect(errorOf(() => parsePlaybook(FULL.replace(from, to)))).toMatchObject({ code: 'INVALID_PLAYBOOK', details: { field } });
    }
  });

  it('refuses unknown roots, item outside for_each and steps that have not run yet', () => {
    expect(errorOf(() => parsePlaybook(FULL.replace('{{ steps.restart.outcome }}', '{{ evnt.actor }}')))).toMatchObject({ details: { field: 'evnt.actor' } });
    expect(errorOf(() => parsePlaybook(FULL.replace('{{ steps.restart.outcome }}', '{{ item }}')))).toMatchObject({ details: { field: 'item' } });
    expect(errorOf(() => parsePlaybook(FULL.replace('{{ steps.restart.outcome }}', '{{ steps.later.outcome }}')))).toMatchObject({ details: { field: 'steps.later.outcome' } });
    expect(errorOf(() => parsePlaybook(FULL.replace('for_each: "{{ event.offenders }}"', 'for_each: "event.offenders"')))).toMatchObject({ code: 'INVALID_PLAYBOOK', details: { path: 'steps.0.for_each' } });
    expect(errorOf(() => parsePlaybook(FULL.replace('count: 2, delay: 100ms', 'count: -1')))).toMatchObject({ code: 'INVALID_PLAYBOOK', details: { path: 'steps.0.retry.count' } });
  });

  it('without input, event fields are not checked (older playbooks keep loading)', () => {
    expect(parsePlaybook(FULL.replace('input: [actor, offenders, totalViolations]\n', '').replace('{{ item }}', '{{ event.anything }}')).input).toBeUndefined();
  });
});

