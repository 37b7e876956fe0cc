import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { waitUntil } from '@guard/core';
import { createHttpMetrics, type HttpMetrics } from './http-metrics.js';
import { demoRouteTemplate, isStreamingRoute } from './route-template.js';

let server: Server;
let registry: Registry;
let http: HttpMetrics;
let base: string;
const held: (() => void)[] = [];

beforeEach(async () => {
  registry = new Registry();
  http = createHttpMetrics({ registry, route: demoRouteTemplate, streaming: isStreamingRoute });
  server = createServer((req, res) =>
    http.middleware(req, res, () => {
      const path = (req.url ?? '').split('?')[0];
      if (path === '/api/analyses/slow') return void held.push(() => res.end('late'));
      if (path === '/api/analyses/fail') return void res.writeHead(500).end();
      if (path === '/livez') return void res.end('ok');
      res.writeHead(404).end();
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterEach(async () => {
  for (const release of held.splice(0)) release();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

async function value(name: string, labels: Record<string, string>): Promise<number | undefined> {
  // A histogram's `_count` series lives on the histogram itself.
  const base = name.replace(/_count$/, '');
  const metric = await registry.getSingleMetric(base)!.get();
  return metric.values.find((v) => ((v as { metricName?: string }).metricName ?? base) === name && Object.entries(labels).every(([k, want]) => v.labels[k] === want))?.value;
}

describe('HTTP server metrics', () => {
  it('counts and times requests by method, route template and status class', async () => {
    for (const path of ['/livez', '/livez', '/api/analyses/fail', '/wp-admin/setup.php?x=1', '/api/analyses/abc-123']) await (await fetch(`${base}${path}`)).arrayBuffer();
    expect(await value('http_server_requests_total', { method: 'GET', route: '/livez', status_class: '2xx' })).toBe(2);
    expect(await value('http_server_requests_total', { route: '/api/analyses/:id', status_class: '5xx' })).toBe(1);
    expect(await value('http_server_requests_total', { route: '/api/analyses/:id', status_class: '4xx' })).toBe(1);
    // A scanner's path is never a label value.
    expect(await value('http_server_requests_total', { route: 'unmatched', status_class: '4xx' })).toBe(1);
    expect(await registry.metrics()).not.toContain('wp-admin');
    expect(await value('http_server_request_duration_seconds_count', { route: '/livez', status_class: '2xx' })).toBe(2);
    const window = http.drain();
    expect(window).toMatchObject({ requests: 5, errors: 1, inFlight: 0 });
    expect(window.durationsMs).toHaveLength(5);
    expect(http.drain()).toMatchObject({ requests: 0, errors: 0, durationsMs: [] });
  });

  it('shows requests in flight and counts a request the client abandoned as aborted', async () => {
    const abort = new AbortController();
    const pending = fetch(`${base}/api/analyses/slow`, { signal: abort.signal }).catch(() => undefined);
    while (held.length === 0) await new Promise((resolve) => setImmediate(resolve));
    expect(await value('http_server_active_requests', { method: 'GET' })).toBe(1);
    abort.abort();
    await pending;
    // The server sees the socket close: wait until the gauge drops, then check the label.
    await waitUntil(async () => (await value('http_server_active_requests', { method: 'GET' })) === 0, { what: 'the in-flight gauge to drop' });
    expect(await value('http_server_requests_total', { route: '/api/analyses/:id', status_class: 'aborted' })).toBe(1);
    expect(http.drain()).toMatchObject({ requests: 1, errors: 1 });
  });

  it('labels an unknown method _OTHER', async () => {
    await new Promise<void>((resolve, reject) => {
      const req = request(`${base}/livez`, { method: 'PROPFIND' }, (res) => res.resume().on('end', resolve));
      req.on('error', reject).end();
    });
    expect(await value('http_server_requests_total', { method: '_OTHER', route: '/livez' })).toBe(1);
  });
});
