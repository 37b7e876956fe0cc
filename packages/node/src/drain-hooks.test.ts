import { once } from 'node:events';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createGuard } from './index.js';
import { testGuardOptions } from '../test/support.js';

/** Opens a streaming GET and resolves once its headers arrived (the response stays open). */
async function openStream(url: string): Promise<{ ended: Promise<unknown> }> {
  const req = request(url);
  req.end();
  const [res] = (await once(req, 'response')) as [import('node:http').IncomingMessage];
  res.resume();
  return { ended: once(res, 'close') };
}

describe('shutdown: long-lived responses', () => {
  it("a drain-phase hook ends the app's own stream as draining starts, so the drain completes instead of waiting for its deadline", { timeout: 20_000 }, async () => {
    const guard = await createGuard(testGuardOptions({ immune: false, shutdown: { timeoutMs: 600_000 } }));
    const streams = new Set<import('node:http').ServerResponse>();
    const server = guard.attach(
      createServer((req, res) =>
        guard.handler(req, res, () => {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.write(': open\n\n');
          streams.add(res);
        }),
      ),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const order: string[] = [];
    guard.onShutdown(() => {
      order.push('drain');
      for (const res of streams) res.end();
    }, { phase: 'drain' });
    guard.onShutdown(() => order.push('close'));
    const stream = await openStream(`http://127.0.0.1:${(server.address() as AddressInfo).port}/events`);
    const report = await guard.shutdown();
    await stream.ended;
    expect(report.drained).toBe(true);
    expect(order).toEqual(['drain', 'close']);
  });

  it('an open immune SSE stream does not hold the drain: the guard ends its own streams as draining starts', { timeout: 20_000 }, async () => {
    const guard = await createGuard(testGuardOptions({ shutdown: { timeoutMs: 600_000 } }));
    const server = guard.attach(createServer((req, res) => guard.handler(req, res)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const stream = await openStream(`http://127.0.0.1:${(server.address() as AddressInfo).port}/api/immune/stream`);
    const report = await guard.shutdown();
    await stream.ended;
    expect(report.drained).toBe(true);
  });
});
