import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { closeOnce, sendJson, sendProblem, type Logger, silentLogger } from '@guard/core';

/** Options for {@link startDemo}. */
export interface DemoOptions {
  /** Port to listen on; 0 picks a free one. */
  readonly port?: number;
  readonly host?: string;
  readonly logger?: Logger;
}

/** A running demo service. */
export interface Demo extends AsyncDisposable {
  readonly server: Server;
  readonly url: string;
  readonly registry: Registry;
  close(): Promise<void>;
}

/** Starts the demo service with its metrics and probes. */
export async function startDemo(options: DemoOptions = {}): Promise<Demo> {
  const logger = options.logger ?? silentLogger;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  let shuttingDown = false;

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/metrics') {
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': registry.contentType });
          res.end(text);
        },
        (error) => {
          logger.error({ err: error }, 'metrics failed');
          sendProblem(res, { status: 500, title: 'Metrics unavailable' });
        },
      );
      return;
    }
    if (req.method === 'GET' && path === '/livez') return sendJson(res, 200, { status: 'ok' });
    if (req.method === 'GET' && path === '/readyz') {
      return shuttingDown ? sendJson(res, 503, { status: 'shutting_down' }) : sendJson(res, 200, { status: 'ready' });
    }
    sendProblem(res, { status: 404, title: 'Not found', detail: `no route for ${req.method} ${path}` });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8080, options.host ?? '0.0.0.0', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  logger.info({ url }, 'demo listening');

  const close = closeOnce(async () => {
    shuttingDown = true;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    });
    registry.clear();
  });
  return { server, url, registry, close, [Symbol.asyncDispose]: close };
}
