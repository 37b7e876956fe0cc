import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { closeOnce, sendJson } from '@guard/core';

/** The downstream "scoring" service the demo calls through a breaker and a bulkhead. */
export interface Downstream extends AsyncDisposable {
  readonly port: number;
  close(): Promise<void>;
}

/** Starts a tiny JSON service on 127.0.0.1:0 that scores a text (a stand-in for a real dependency). */
export async function startDownstream(): Promise<Downstream> {
  const server = createServer((req, res) => {
    // Any local process can reach this port: a target WHATWG URL cannot parse (e.g. `//`) is a 400, not a throw.
    const url = URL.canParse(req.url ?? '/', 'http://x') ? new URL(req.url ?? '/', 'http://x') : undefined;
    if (!url) return sendJson(res, 400, { error: 'invalid request target' });
    const text = url.searchParams.get('text') ?? '';
    let score = 0;
    for (let i = 0; i < text.length; i++) score = (score * 31 + text.charCodeAt(i)) % 1000;
    sendJson(res, 200, { score, length: text.length });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const close = closeOnce(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { port: (server.address() as AddressInfo).port, close, [Symbol.asyncDispose]: close };
}
