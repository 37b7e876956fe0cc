import { describe, expect, it } from 'vitest';
import { MISSING_PROMETHEUS, RULES_FILE, RUNBOOK_URL, findBinary, startDemo, startPrometheus, waitFor, type PrometheusAlert } from './support.js';

// A real Prometheus (Debian's package) scrapes a real demo in `full` mode every second and evaluates guard.rules.yml,
// unchanged, every second. Chaos scenarios go in through the demo's lab endpoints; the alerts are read back from
// Prometheus's HTTP API. Each scenario must fire its alert and, once Guard healed the fault (or, for a fault it has no
// safe fix for, reported it), resolve it.

/** A scenario, the alert it must fire (matched on these labels) and what the test saw, in ms since the start. */
interface Expectation {
  readonly scenario: 'downstream-outage' | 'acl-spam' | 'db-orphan' | 'handle-leak';
  readonly alertname: string;
  readonly labels: Readonly<Record<string, string>>;
  /**
   * The alert counts a counter series the fault creates (a first detection, a first violation): its rule counts a new
   * series only where the target was scraped a minute before, so the fault goes in after a minute of scrapes.
   */
  readonly newCounterSeries: boolean;
  injectedAt?: number;
  /** When the lab saw the scenario's last milestone: recovered (healed, protected) or reported. */
  settledAt?: number;
  settledBy?: string;
  firingAt?: number;
  resolvedAt?: number;
}

const prometheus = findBinary('prometheus');
if (!prometheus) console.warn(MISSING_PROMETHEUS);

const matches = (alert: PrometheusAlert, e: Expectation) =>
  alert.labels.alertname === e.alertname && Object.entries(e.labels).every(([k, v]) => alert.labels[k] === v);

describe.skipIf(!prometheus)('a real Prometheus with guard.rules.yml scraping the demo', () => {
  it('fires the matching alert for each chaos scenario and resolves it after Guard healed or reported the fault', { timeout: 360_000 }, async () => {
    // A threshold of its own, so the derived one below cannot match the default by chance.
    const thresholdMb = 900;
    await using demo = await startDemo({ MEMORY_RSS_THRESHOLD_MB: String(thresholdMb) });
    await using prom = await startPrometheus(prometheus!, demo.host, RULES_FILE);
    const t0 = Date.now();
    const since = () => Date.now() - t0;
    const lab = (scenario: string, method = 'GET') =>
      fetch(`${demo.url}/chaos/${scenario}`, { method, headers: { authorization: `Bearer ${demo.token}` } }).then(async (res) => {
        expect(res.status, `${method} /chaos/${scenario}`).toBeLessThan(300);
        return (await res.json()) as { finished: boolean; recoveredAt?: number; recovery?: string; reportedAt?: number; report?: string };
      });
    const query = async (promql: string) =>
      (await prom.api<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(`query?query=${encodeURIComponent(promql)}`)).result;
    const alerts = async () => (await prom.api<{ alerts: PrometheusAlert[] }>('alerts')).alerts;

    // The rules loaded without errors, and the demo is scraped.
    const groups = await waitFor(
      'the rules to load',
      async () => {
        const data = await prom.api<{ groups: { name: string; rules: { name: string; health: string; lastError?: string }[] }[] }>('rules');
        return data.groups.length > 0 ? data.groups : undefined;
      },
      30_000,
    );
    const loaded = groups.flatMap((g) => g.rules);
    expect(loaded.length).toBeGreaterThanOrEqual(30);
    await waitFor('the first scrape of the demo', async () => ((await query('up{job="guard-demo"} == 1')).length > 0 ? true : undefined), 30_000);
    await waitFor('every rule evaluated', async () => (loaded.length > 0 && (await prom.api<{ groups: { rules: { health: string }[] }[] }>('rules')).groups.every((g) => g.rules.every((r) => r.health === 'ok')) ? true : undefined), 30_000);

    const expected: Expectation[] = [
      { scenario: 'downstream-outage', alertname: 'GuardCircuitOpen', labels: { circuit: 'downstream', severity: 'warning' }, newCounterSeries: false },
      { scenario: 'acl-spam', alertname: 'GuardAclViolationSpam', labels: { bus: 'app', kind: 'control', severity: 'warning' }, newCounterSeries: true },
      { scenario: 'db-orphan', alertname: 'GuardParasiteDetected', labels: { component: 'db', pattern: 'connection_orphan', severity: 'critical' }, newCounterSeries: true },
      { scenario: 'handle-leak', alertname: 'GuardHandleLeak', labels: { component: 'handles', pattern: 'handle_leak', severity: 'warning' }, newCounterSeries: true },
    ];
    // Quiet before any fault.
    const before = await alerts();
    for (const e of expected) expect(before.filter((a) => matches(a, e)), `${e.alertname} before ${e.scenario}`).toEqual([]);

    const seen = new Map<string, { firstAt: number; state: string; lastAt: number; fired: boolean }>();
    const inject = async (e: Expectation) => {
      await lab(e.scenario, 'POST');
      e.injectedAt = since();
    };
    await Promise.all(expected.filter((e) => !e.newCounterSeries).map(inject));

    await waitFor(
      'every alert to fire and resolve',
      async () => {
        if (expected.some((e) => e.injectedAt === undefined) && (await query('up{job="guard-demo"} offset 1m == 1')).length > 0) {
          await Promise.all(expected.filter((e) => e.injectedAt === undefined).map(inject));
        }
        const now = await alerts();
        for (const a of now) {
          const key = `${a.labels.alertname}{${Object.entries(a.labels).filter(([k]) => k !== 'alertname' && k !== 'instance' && k !== 'job').map(([k, v]) => `${k}=${v}`).join(',')}}`;
          const entry = seen.get(key) ?? { firstAt: since(), state: a.state, lastAt: since(), fired: false };
          seen.set(key, { ...entry, state: a.state, lastAt: since(), fired: entry.fired || a.state === 'firing' });
        }
        for (const e of expected) {
          if (e.injectedAt === undefined) continue;
          if (e.settledAt === undefined) {
            const status = await lab(e.scenario);
            const at = status.recoveredAt ?? status.reportedAt;
            if (status.finished && at !== undefined) Object.assign(e, { settledAt: at - t0, settledBy: status.recovery ?? status.report });
          }
          const mine = now.filter((a) => matches(a, e));
          if (e.firingAt === undefined && mine.some((a) => a.state === 'firing')) {
            e.firingAt = since();
            expect(mine[0]!.annotations.runbook_url).toBe(`${RUNBOOK_URL}#${e.alertname.toLowerCase()}`);
          } else if (e.firingAt !== undefined && e.resolvedAt === undefined && mine.length === 0) e.resolvedAt = since();
        }
        return expected.every((e) => e.resolvedAt !== undefined && e.settledAt !== undefined) ? true : undefined;
      },
      240_000,
      500,
    ).catch((error: Error) => {
      throw new Error(`${error.message}\n${JSON.stringify(expected, null, 2)}\nalerts seen: ${JSON.stringify([...seen], null, 1)}\nprometheus: ${prom.output()}`);
    });

    const s = (ms?: number) => (ms === undefined ? '-' : `${(ms / 1000).toFixed(1)} s`);
    console.log(
      [
        `Prometheus e2e (times since Prometheus was ready; total ${s(since())}):`,
        ...expected.map(
          (e) =>
            `  ${e.scenario.padEnd(18)} injected ${s(e.injectedAt)}, ${e.alertname} firing ${s(e.firingAt)} (+${s(e.firingAt! - e.injectedAt!)}), ` +
            `settled ${s(e.settledAt)} (${e.settledBy}), resolved ${s(e.resolvedAt)} (+${s(e.resolvedAt! - e.settledAt!)} after)`,
        ),
        `  every alert seen: ${[...seen].map(([k, v]) => `${k} ${v.fired ? 'firing' : v.state} ${s(v.firstAt)}..${s(v.lastAt)}`).join('; ')}`,
      ].join('\n'),
    );
    // The RSS threshold the memory rules derive from Guard's gauges is the one the demo runs with (RSS grew at some
    // point of the run: its start, the chaos traffic).
    const threshold = await waitFor('guard:memory_rss_threshold_bytes', async () => (await query('guard:memory_rss_threshold_bytes'))[0], 60_000);
    expect(Number(threshold.value[1]) / 1024 / 1024).toBeCloseTo(thresholdMb, 3);

    // Guard healed each fault, so the alerts for faults it did not stop stay quiet (at most pending).
    const fired = [...seen].filter(([, v]) => v.fired).map(([k]) => k);
    for (const quiet of ['GuardAclViolationsUnstopped', 'GuardCircuitOpenTooLong', 'GuardSanitizationFailing']) {
      expect(fired.filter((k) => k.startsWith(`${quiet}{`)), `${quiet} never fires`).toEqual([]);
    }
    for (const e of expected) {
      expect(e.firingAt!, `${e.alertname} fires after ${e.scenario} was injected`).toBeGreaterThanOrEqual(e.injectedAt!);
      // The alert outlives the fault: it resolves only once Guard healed or reported it (and the rule's window passed).
      expect(e.resolvedAt!, `${e.alertname} resolves after ${e.scenario} settled`).toBeGreaterThan(e.settledAt!);
    }
  });
});
