import { connect } from 'node:net';
import { expect, it } from 'vitest';
import { startDownstream } from './downstream.js';

/** Sends one raw request line (fetch normalises `//`) and returns the status line. */
async function rawStatus(port: number, target: string): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  socket.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  let out = '';
  for await (const chunk of socket) out += String(chunk);
  return out.split('\r\n')[0]!;
}

it('answers a request target URL cannot parse with 400 and keeps scoring', async () => {
  await using downstream = await startDownstream();
  expect(await rawStatus(downstream.port, '//')).toBe('HTTP/1.1 400 Bad Request');
  const res = await fetch(`http://127.0.0.1:${downstream.port}/score?text=ab`);
  expect(await res.json()).toEqual({ score: (97 * 31 + 98) % 1000, length: 2 });
});
