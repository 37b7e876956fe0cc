import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { scrapeGauge } from './scrape-gauge.js';

describe('scrapeGauge', () => {
  it('reads the value when the registry is scraped, not before', async () => {
    const registry = new Registry();
    let depth = 3;
    let reads = 0;
    scrapeGauge({ registry }, { name: 'queue_depth', help: 'Jobs waiting' }, () => (reads++, depth));
    expect(reads).toBe(0);
    expect(await registry.metrics()).toContain('guard_queue_depth 3');
    depth = 5;
    expect(await registry.metrics()).toContain('guard_queue_depth 5');
    expect(reads).toBe(2);
  });

  it('reads labelled values; label sets gone from the reading disappear from the scrape', async () => {
    const registry = new Registry();
    let queues: [Record<string, string>, number][] = [[{ queue: 'mail' }, 2], [{ queue: 'sms' }, 0]];
    scrapeGauge({ registry, metricsPrefix: 'jobs' }, { name: 'depth', help: 'h', labelNames: ['queue'] }, () => queues);
    const first = await registry.metrics();
    expect(first).toContain('jobs_depth{queue="mail"} 2');
    expect(first).toContain('jobs_depth{queue="sms"} 0');
    queues = [[{ queue: 'sms' }, 1]];
    const second = await registry.metrics();
    expect(second).not.toContain('queue="mail"');
    expect(second).toContain('jobs_depth{queue="sms"} 1');
  });

  it('adds up the readers of one name on one registry; a reader ends with its signal', async () => {
    const registry = new Registry();
    const config = { name: 'pool_connections', help: 'h', labelNames: ['state'], defaultPrefix: 'guard_circuit' } as const;
    const closed = new AbortController();
    const a = scrapeGauge({ registry }, { ...config, signal: closed.signal }, () => [[{ state: 'idle' }, 2]]);
    const b = scrapeGauge({ registry }, config, () => [[{ state: 'idle' }, 3]]);
    expect(a).toBe(b);
    expect(await registry.metrics()).toContain('guard_circuit_pool_connections{state="idle"} 5');
    closed.abort();
    expect(await registry.metrics()).toContain('guard_circuit_pool_connections{state="idle"} 3');
  });

  it('skips a reader that throws and still reports the others', async () => {
    const registry = new Registry();
    scrapeGauge({ registry }, { name: 'x', help: 'h' }, () => {
      throw new Error('broken source');
    });
    scrapeGauge({ registry }, { name: 'x', help: 'h' }, () => 4);
    expect(await registry.metrics()).toContain('guard_x 4');
  });

  it('registers nothing with metrics: false; the deprecated prefix still names the metric', async () => {
    const registry = new Registry();
    expect(scrapeGauge({ registry, metrics: false }, { name: 'off', help: 'h' }, () => 1)).toBeUndefined();
    expect(registry.getMetricsAsArray()).toHaveLength(0);
    scrapeGauge({ registry, prefix: 'legacy' }, { name: 'on', help: 'h' }, () => 1);
    expect(await registry.metrics()).toContain('legacy_on 1');
  });
});
