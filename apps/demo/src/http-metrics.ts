import type { IncomingMessage, ServerResponse } from 'node:http';
import { counter, gauge, histogram, type HttpHandler } from '@guard/core';
import type { Registry } from 'prom-client';

/** A route template for a path (`/chaos/:scenario`), or undefined for no known route. */
export type RouteTemplate = (path: string) => string | undefined;

/** Options for {@link createHttpMetrics}. */
export interface HttpMetricsOptions {
  readonly registry: Registry;
  /** Maps a path to its template; unknown paths are labelled `unmatched`, never with the raw URL. */
  readonly route: RouteTemplate;
  /** Long-lived responses (SSE streams): counted, but kept out of the duration histogram and the latency window. */
  readonly streaming?: (route: string) => boolean;
}

/** What happened since the previous {@link HttpMetrics.drain}: the dashboard's per-second figures. */
export interface HttpWindow {
  readonly requests: number;
  /** Answers with a 5xx status (or a connection closed before the answer). */
  readonly errors: number;
  /** Durations of the finished requests, in ms (at most 10,000 kept per window). */
  readonly durationsMs: readonly number[];
  readonly inFlight: number;
}

/** The demo's HTTP server metrics. */
export interface HttpMetrics {
  /** Connect-style middleware: put it first, so every answer (404s and problems included) is measured. */
  readonly middleware: HttpHandler;
  /** Returns the window since the last call and starts a new one. */
  drain(): HttpWindow;
}

/** OpenTelemetry's `http.server.request.duration` buckets, in seconds. */
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const MAX_WINDOW_SAMPLES = 10_000;

/** `2xx`...`5xx`; `aborted` when the client went away before an answer. */
function statusClass(res: ServerResponse, finished: boolean): string {
  if (!finished && !res.headersSent) return 'aborted';
  return `${Math.floor(res.statusCode / 100)}xx`;
}

/**
 * HTTP server metrics in Prometheus form, named after OpenTelemetry's HTTP semantic conventions
 * (`http.server.request.duration` -> `http_server_request_duration_seconds`, `http.server.active_requests`), with
 * low-cardinality labels only: method (7 known, else `_OTHER`), route template and status class.
 *
 * @example
 * const http = createHttpMetrics({ registry, route: (path) => (path === '/' ? '/' : undefined) });
 * createServer((req, res) => http.middleware(req, res, () => app(req, res)));
 */
export function createHttpMetrics(options: HttpMetricsOptions): HttpMetrics {
  const labelNames = ['method', 'route', 'status_class'] as const;
  const requests = counter(options.registry, {
    name: 'http_server_requests_total',
    help: 'HTTP requests answered (or aborted by the client), by method, route template and status class',
    labelNames,
  });
  const duration = histogram(options.registry, {
    name: 'http_server_request_duration_seconds',
    help: 'Time from the request to the end of its answer, by method, route template and status class (streams excluded)',
    labelNames,
    buckets: BUCKETS,
  });
  const active = gauge(options.registry, {
    name: 'http_server_active_requests',
    help: 'HTTP requests in flight, by method',
    labelNames: ['method'],
  });
  let window = { requests: 0, errors: 0, durationsMs: [] as number[] };
  let inFlight = 0;

  const middleware: HttpHandler = (req: IncomingMessage, res: ServerResponse, next) => {
    const started = performance.now();
    const method = METHODS.has(req.method ?? '') ? req.method! : '_OTHER';
    const route = options.route((req.url ?? '/').split('?')[0]!) ?? 'unmatched';
    const streaming = options.streaming?.(route) ?? false;
    inFlight++;
    active.inc({ method });
    let done = false;
    const end = (finished: boolean) => {
      if (done) return;
      done = true;
      inFlight--;
      active.dec({ method });
      const labels = { method, route, status_class: statusClass(res, finished) };
      requests.inc(labels);
      window.requests++;
      if (labels.status_class === '5xx' || labels.status_class === 'aborted') window.errors++;
      if (streaming) return;
      const ms = performance.now() - started;
      duration.observe(labels, ms / 1000);
      if (window.durationsMs.length < MAX_WINDOW_SAMPLES) window.durationsMs.push(ms);
    };
    res.once('finish', () => end(true));
    res.once('close', () => end(res.writableFinished));
    next?.();
  };

  return {
    middleware,
    drain() {
      const out = { ...window, inFlight };
      window = { requests: 0, errors: 0, durationsMs: [] };
      return out;
    },
  };
}
