import { request as httpRequest } from 'node:http';
import type { Agent as HttpAgent, IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';

/** What one request got back. */
export interface Exchange {
  readonly status: number;
  /** The body as text when `keepBody` was set, else `''` (load requests drain it without keeping it). */
  readonly body: string;
}

/** Options of one {@link exchange}. */
export interface ExchangeInit {
  readonly method: string;
  readonly headers: Record<string, string>;
  readonly body?: string;
  readonly agent: HttpAgent;
  readonly signal: AbortSignal;
  readonly keepBody: boolean;
}

/**
 * One HTTP(S) request on node's own client: resolves when the response has ended, rejects on a socket error or abort.
 *
 * @example
 * const { status } = await exchange(new URL('http://127.0.0.1:3000/'), { method: 'GET', headers: {}, agent, signal, keepBody: false });
 */
export function exchange(url: URL, init: ExchangeInit): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(url, { method: init.method, headers: init.headers, agent: init.agent, signal: init.signal }, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => {
        if (init.keepBody) chunks.push(chunk);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: init.keepBody ? Buffer.concat(chunks).toString('utf8') : '' }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

/** The key a failed request is counted under in `errors`: `TIMEOUT`, the socket error's code, `ABORTED` or `ERROR`. */
export function errorCode(error: unknown, timedOut: boolean): string {
  if (timedOut) return 'TIMEOUT';
  const err = error as { code?: unknown; name?: unknown };
  if (typeof err?.code === 'string') return err.code;
  if (err?.name === 'AbortError') return 'ABORTED';
  return 'ERROR';
}
