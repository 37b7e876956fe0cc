import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { CircuitBreaker } from '../../packages/circuit/src/circuit-breaker.js';
import { ConnectionPool } from '../../packages/circuit/src/connection-pool.js';
import { reportFigure } from './report.js';

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1]!;
}

describe('circuit fail-fast on real time', () => {
  it('an open pool breaker answers circuit_open without connecting; reports its latency', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const url = `ws://127.0.0.1:${(probe.address() as AddressInfo).port}`;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    await using pool = new ConnectionPool({ metrics: false, breaker: { failureThreshold: 5 } });
    for (let i = 0; i < 5; i++) expect(await pool.request(url, { type: 'q' })).toMatchObject({ status: 'error' });
    const durations: number[] = [];
    for (let i = 0; i < 101; i++) {
      const started = performance.now();
      const reply = await pool.request(url, { type: 'q' }, { taskId: `t${i}` });
      durations.push(performance.now() - started);
      expect(reply).toMatchObject({ status: 'circuit_open' });
    }
    reportFigure('circuit pool request while open, median', median(durations), 'ms');
    expect(pool.stats()).toMatchObject({ openConnections: 0, connectingConnections: 0 });
  });

  it('a stuck half-open probe is ended by probeTimeoutMs on the real clock; reports how late', async () => {
    await using breaker = new CircuitBreaker({ metrics: false, failureThreshold: 1, resetTimeoutMs: 0, probeTimeoutMs: 50 });
    await breaker.execute(() => Promise.reject(new Error('down'))).catch(() => {});
    const started = performance.now();
    const error = await breaker.execute(() => new Promise<never>(() => {})).catch((e: unknown) => e);
    reportFigure('circuit probe timeout (50 ms) fired after', performance.now() - started, 'ms');
    expect(error).toMatchObject({ code: 'TIMEOUT' });
    expect(breaker.state).toBe('open');
  });
});
