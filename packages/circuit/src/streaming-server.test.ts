import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { waitUntil } from '@guard/core';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { attachStreamingServer } from './streaming-server.js';
import type { StreamingHandler, StreamingServerOptions } from './streaming-server.js';
import { isTerminalMessage } from './stream-message.js';

const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function serve(handler: StreamingHandler, options?: StreamingServerOptions) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  const streaming = attachStreamingServer(wss, handler, options);
  cleanups.push(async () => {
    await streaming.close();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  });
  return { wss, streaming, url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}` };
}

/** A client that records every message and the close code. */
async function connect(url: string) {
  const ws = new WebSocket(url);
  const messages: Array<Record<string, unknown>> = [];
  let waiting: (() => void) | undefined;
  ws.on('message', (data) => {
    messages.push(JSON.parse(String(data)) as Record<string, unknown>);
    waiting?.();
  });
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  await once(ws, 'open');
  cleanups.push(async () => {
    if (ws.readyState !== ws.CLOSED) {
      ws.terminate();
      await closed;
    }
  });
  const until = async (predicate: (m: Record<string, unknown>) => boolean) => {
    while (!messages.some(predicate)) await new Promise<void>((resolve) => (waiting = resolve));
    return messages.find(predicate)!;
  };
  return { ws, messages, closed, until, send: (m: unknown) => ws.send(JSON.stringify(m)) };
}

describe('attachStreamingServer', () => {
  it('keeps the connection open across ping, health_check and progress, and closes with 1000 after the terminal message', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { url } = await serve(async (request, { progress }) => {
      progress({ percent: 10 });
      await gate;
      progress({ percent: 90 });
      return { type: 'result', data: `done ${String(request.job)}` };
    });
    const client = await connect(url);
    client.send({ type: 'analyze', job: 7, taskId: 't1' });
    await client.until((m) => m.type === 'progress_update');
    client.send({ type: 'ping' });
    await client.until((m) => m.type === 'pong');
    client.send({ type: 'health_check' });
    const health = await client.until((m) => m.type === 'health_check');
    expect(health).toMatchObject({ status: 'ok', running: 1 });
    expect(client.ws.readyState).toBe(WebSocket.OPEN);
    release();
    expect(await client.closed).toBe(1000);
    expect(client.messages.map((m) => m.type)).toEqual(['progress_update', 'pong', 'health_check', 'progress_update', 'result']);
    expect(client.messages[0]).toMatchObject({ type: 'progress_update', percent: 10, taskId: 't1' });
    expect(client.messages.at(-1)).toEqual({ type: 'result', data: 'done 7', taskId: 't1' });
    expect(client.messages.filter(isTerminalMessage)).toHaveLength(1);
  });

  it('a thrown error becomes a terminal error message; a plain return value becomes a result', async () => {
    const { url } = await serve((request) => {
      if (request.type === 'fail') throw new Error('exploded');
      return 42;
    });
    const a = await connect(url);
    a.send({ type: 'fail' });
    expect(await a.closed).toBe(1000);
    expect(a.messages).toEqual([{ type: 'error', status: 'error', error: 'exploded' }]);
    const b = await connect(url);
    b.send({ type: 'compute' });
    await b.closed;
    expect(b.messages).toEqual([{ type: 'result', data: 42 }]);
  });

  it('a cancel message aborts the handler signal and ends with status cancelled', async () => {
    let aborted = false;
    const { url } = await serve(
      (_request, { signal, progress }) =>
        new Promise((_resolve, reject) => {
          progress();
          signal.addEventListener('abort', () => {
            aborted = true;
            reject(signal.reason);
          });
        }),
    );
    const client = await connect(url);
    client.send({ type: 'long', taskId: 'job-1' });
    await client.until((m) => m.type === 'progress_update');
    client.send({ type: 'cancel', taskId: 'job-1' });
    const end = await client.until((m) => m.type === 'error');
    expect(end).toMatchObject({ status: 'cancelled', taskId: 'job-1' });
    expect(aborted).toBe(true);
  });

  it('answers invalid JSON with an error and closes 1007; a client disconnect aborts the handler', async () => {
    let signal: AbortSignal | undefined;
    const { url, streaming } = await serve((_request, context) => {
      signal = context.signal;
      return new Promise(() => {});
    });
    const bad = await connect(url);
    bad.ws.send('not json');
    expect(await bad.closed).toBe(1007);
    expect(bad.messages[0]).toMatchObject({ type: 'error', status: 'error' });
    const leaving = await connect(url);
    leaving.send({ type: 'work' });
    await waitUntil(() => streaming.running > 0, { what: 'the handler to start' });
    leaving.ws.terminate();
    await leaving.closed;
    await waitUntil(() => signal?.aborted === true, { what: 'the handler signal to abort' });
    expect(signal?.aborted).toBe(true);
  });

  it('sends heartbeat pings while a request runs', async () => {
    let release!: () => void;
    const { url } = await serve(() => new Promise<void>((resolve) => (release = resolve)).then(() => ({ type: 'done' })), { heartbeatMs: 10 });
    const client = await connect(url);
    client.send({ type: 'slow' });
    await client.until((m) => m.type === 'ping');
    release();
    expect(await client.closed).toBe(1000);
    expect(client.messages.at(-1)).toEqual({ type: 'done' });
  });

  it('close() aborts running handlers and closes connections', async () => {
    const { url, streaming } = await serve((_request, { signal }) => new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason))));
    const client = await connect(url);
    client.send({ type: 'work' });
    await waitUntil(() => streaming.running > 0, { what: 'the handler to start' });
    await streaming.close();
    await streaming.close();
    expect([1000, 1001]).toContain(await client.closed);
    expect(streaming.running).toBe(0);
  });

  it('rejects bad options with INVALID_OPTION', async () => {
    const wss = new WebSocketServer({ noServer: true });
    expect(() => attachStreamingServer(wss, 'nope' as never)).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    expect(() => attachStreamingServer(wss, () => 1, { heartbeatMs: -1 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    wss.close();
  });
});
