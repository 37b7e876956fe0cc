import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger, MetricsOptions, Subscription } from '@guard/core';
import { GuardError, scrapeGauge, sendProblem } from '@guard/core';
import type { ImmuneEventType, ImmuneSeverity } from './event.js';
import { IMMUNE_EVENT_TYPES, IMMUNE_SEVERITIES } from './event.js';
import type { ImmuneService, ImmuneStreamEnvelope, ImmuneStreamEventName } from './immune-service.js';
import { toStreamEnvelope } from './immune-service.js';
import { IMMUNE_METRICS_PREFIX } from './metrics.js';
import type { immuneCounter } from './metrics.js';
import { badParam, parseEnum } from './query-params.js';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const STREAM_NAMES: Record<string, ImmuneStreamEventName> = {
  published: 'immune.event_published',
  'immune.event_published': 'immune.event_published',
  critical: 'immune.critical_event',
  'immune.critical_event': 'immune.critical_event',
};

/** `?events=critical` / `published,critical` / full envelope names; default: every event as `immune.event_published`. */
function parseStreamNames(raw: string | null): ImmuneStreamEventName[] {
  if (raw === null || raw.trim() === '') return ['immune.event_published'];
  const names = new Set<ImmuneStreamEventName>();
  for (const part of raw.split(',')) {
    const name = STREAM_NAMES[part.trim().toLowerCase()];
    if (!name) throw badParam('events', 'events must be a comma-separated list of published, critical, immune.event_published or immune.critical_event');
    names.add(name);
  }
  return [...names];
}

/**
 * What {@link createSseStreams} needs from the handler: its limits, logger, refusal counter and metric options.
 *
 * @example
 * createSseStreams(service, { heartbeatMs: 15_000, maxSseClients: 100, maxSseBufferedBytes: 1 << 20, retryAfterSeconds: 5, logger, refused, metrics });
 */
export interface SseStreamsOptions {
  readonly heartbeatMs: number;
  readonly maxSseClients: number;
  readonly maxSseBufferedBytes: number;
  readonly retryAfterSeconds: number;
  readonly logger: Logger;
  /** The handler's `http_refused_total` (reasons `sse_full`, `sse_slow_client`). */
  readonly refused: ReturnType<typeof immuneCounter<'reason'>>;
  /** Where `guard_immune_sse_clients` is read at scrape time. */
  readonly metrics: MetricsOptions;
}

/**
 * The open server-sent-event streams of one handler.
 *
 * @example
 * const streams = createSseStreams(service, options);
 * routes['/stream'] = { GET: streams.serve };
 */
export interface SseStreams {
  /** Serves `GET /stream` (`?severity`, `?type`, `?events`; `Last-Event-ID` replay); throws `CLOSED` once closed. */
  serve(req: IncomingMessage, res: ServerResponse, url: URL): void;
  /** Open streams. */
  readonly size: number;
  /** Ends every open stream and refuses new ones. */
  close(): void;
}

/**
 * The SSE side of the immune handler: each stream subscribes to the service's stream events, writes them with their
 * id, sends heartbeats, replays what a reconnecting `EventSource` missed, and drops a client that stopped reading.
 *
 * @example
 * const streams = createSseStreams(service, { ...limits, logger, refused, metrics: options });
 */
export function createSseStreams(service: ImmuneService, options: SseStreamsOptions): SseStreams {
  const { heartbeatMs, maxSseClients, maxSseBufferedBytes, retryAfterSeconds, logger, refused } = options;
  const clients = new Set<() => void>();
  const closing = new AbortController();
  let closed = false;
  scrapeGauge(options.metrics, { name: 'sse_clients', help: 'Open server-sent-event streams', defaultPrefix: IMMUNE_METRICS_PREFIX, signal: closing.signal }, () => clients.size);

  function serve(req: IncomingMessage, res: ServerResponse, url: URL): void {
    const severity = parseEnum<ImmuneSeverity>('severity', url.searchParams.get('severity'), IMMUNE_SEVERITIES);
    const type = parseEnum<ImmuneEventType>('type', url.searchParams.get('type'), IMMUNE_EVENT_TYPES);
    const names = parseStreamNames(url.searchParams.get('events'));
    if (closed || service.closed) throw new GuardError('CLOSED', 'the immune handler is closed');
    if (clients.size >= maxSseClients) {
      refused?.inc({ reason: 'sse_full' });
      logger.warn({ status: 503, clients: clients.size, maxSseClients }, 'immune SSE stream refused: too many clients');
      sendProblem(res, { status: 503, title: 'Too many stream clients', detail: `at most ${maxSseClients} streams are served`, code: 'SSE_FULL' }, { 'retry-after': String(retryAfterSeconds) });
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 3000\n: connected\n\n');
    let done = false;
    const subscriptions: Subscription[] = [];
    // A client that stopped reading is disconnected, never buffered without bound. destroy(), not end(): ending
    // would wait (forever) for the backlog to drain.
    const writeOrDrop = (chunk: string) => {
      if (done) return;
      if (res.writableLength + chunk.length > maxSseBufferedBytes) {
        refused?.inc({ reason: 'sse_slow_client' });
        logger.warn({ backlogBytes: res.writableLength, maxSseBufferedBytes }, 'immune SSE client dropped: it stopped reading');
        cleanup();
        res.destroy();
        return;
      }
      res.write(chunk);
    };
    const send = (envelope: ImmuneStreamEnvelope) => writeOrDrop(`id: ${envelope.payload.event_id}\nevent: ${envelope.type}\ndata: ${JSON.stringify(envelope)}\n\n`);
    const keyOf = (envelope: ImmuneStreamEnvelope) => `${envelope.type}:${envelope.payload.event_id}`;
    // A reconnecting EventSource sends Last-Event-ID: replay what it missed from the store, holding live events
    // back until the replay is written (then skipping any the replay already sent).
    const lastId = String(req.headers['last-event-id'] ?? '').trim().toLowerCase();
    let held: ImmuneStreamEnvelope[] | undefined = UUID_V7.test(lastId) ? [] : undefined;
    const onEnvelope = (envelope: ImmuneStreamEnvelope) => {
      if (severity !== undefined && envelope.payload.severity !== severity) return;
      if (type !== undefined && envelope.payload.type !== type) return;
      if (held) held.push(envelope);
      else send(envelope);
    };
    if (held) {
      const since = parseInt(lastId.slice(0, 8) + lastId.slice(9, 13), 16);
      const onlyCritical = !names.includes('immune.event_published');
      const replaySeverity = onlyCritical ? 'CRITICAL' : severity;
      service
        .getRecentEvents({ since, limit: service.maxLimit, ...(replaySeverity ? { severity: replaySeverity } : {}), ...(type ? { type } : {}) })
        .then(
          (events) => {
            const sent = new Set<string>();
            for (const event of events.reverse()) {
              if (event.id <= lastId) continue;
              if (severity !== undefined && event.severity !== severity) continue;
              for (const name of names) {
                if (name === 'immune.critical_event' && event.severity !== 'CRITICAL') continue;
                const envelope = toStreamEnvelope(event, name, service.target);
                sent.add(keyOf(envelope));
                send(envelope);
              }
            }
            return sent;
          },
          () => new Set<string>(), // replay is best effort; the live stream goes on
        )
        .then((sent) => {
          const live = held ?? [];
          held = undefined;
          for (const envelope of live) if (!sent.has(keyOf(envelope))) send(envelope);
        })
        .catch((error: unknown) => {
          logger.warn({ err: error }, 'immune SSE replay failed; stream ended');
          end();
        });
    }
    const heartbeat = setInterval(() => writeOrDrop(`: heartbeat ${Date.now()}\n\n`), heartbeatMs);
    heartbeat.unref();
    const cleanup = () => {
      if (done) return;
      done = true;
      clearInterval(heartbeat);
      for (const unsubscribe of subscriptions) unsubscribe();
      clients.delete(end);
    };
    function end() {
      cleanup();
      // A client with an unsent backlog may never read it: do not wait for it.
      if (res.writableLength > 0) {
        res.destroy();
        return;
      }
      res.end();
      res.socket?.destroySoon?.();
    }
    for (const name of names) subscriptions.push(service.on(name, onEnvelope));
    clients.add(end);
    req.on('close', cleanup);
    res.on('close', cleanup);
    res.on('error', cleanup);
  }

  return {
    serve,
    get size() {
      return clients.size;
    },
    close() {
      closed = true;
      closing.abort();
      for (const end of [...clients]) end();
    },
  };
}
