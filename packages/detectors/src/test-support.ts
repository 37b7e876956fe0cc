import { captureSource, createJsonLogger } from '@guard/core';
import type { Detection, Logger, SanitizationScheduler } from '@guard/core';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import type { ClientOptions } from 'ws';

/** `file:line` of the caller (same source line as the call that follows it on that line). */
export function lineHere(): string {
  const frame = captureSource({ skip: lineHere, limit: 1 }).frames()[0] ?? '';
  return frame.replace(/:\d+$/, '');
}

/** `file:line` part of a `file:line:column` frame. */
export function fileLine(frame: string | undefined): string {
  return (frame ?? '').replace(/:\d+$/, '');
}

/** A scheduler that records what it was given. */
export function recordingScheduler(): SanitizationScheduler & { readonly scheduled: Detection[] } {
  const scheduled: Detection[] = [];
  return {
    scheduled,
    schedule(detection) {
      if (scheduled.some((d) => d.resourceId === detection.resourceId && d.component === detection.component)) return false;
      scheduled.push(detection);
      return true;
    },
  };
}

/** A JSON logger whose lines are kept. */
export function memoryLogger(): Logger & { readonly lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = createJsonLogger({ level: 'debug', write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) });
  return Object.assign(logger, { lines });
}

/** Forces a full garbage collection (no --expose-gc flag needed). */
export function forceGc(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/** A real `ws` server on 127.0.0.1, port 0. */
export interface WsFixture extends AsyncDisposable {
  readonly wss: WebSocketServer;
  readonly url: string;
  /** Connects a client and resolves with it and the server side socket. */
  connect(options?: ClientOptions): Promise<{ client: WebSocket; server: WebSocket }>;
}

export async function wsFixture(): Promise<WsFixture> {
  const http: Server = createServer();
  const wss = new WebSocketServer({ server: http });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const url = `ws://127.0.0.1:${(http.address() as AddressInfo).port}`;
  const clients: WebSocket[] = [];
  return {
    wss,
    url,
    async connect(options) {
      const serverSide = new Promise<WebSocket>((resolve) => wss.once('connection', resolve));
      const client = new WebSocket(url, options);
      clients.push(client);
      await new Promise<void>((resolve, reject) => {
        client.once('open', () => resolve());
        client.once('error', reject);
      });
      return { client, server: await serverSide };
    },
    async [Symbol.asyncDispose]() {
      for (const client of clients) client.terminate();
      for (const socket of wss.clients) socket.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

/** A unique SQL identifier for this test run. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
}

/** Resolves once `predicate` holds (polls every 5 ms), or rejects after `timeoutMs`. */
export async function until(predicate: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}
