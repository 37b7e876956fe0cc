// Hello-world server for the throughput benchmark: `node server.mjs bare|middleware`. Prints its port.
import { createServer } from 'node:http';
import { GuardBus } from '@guard/core';
import { DetectorChain, createParasiteMiddleware } from '../dist/index.js';

const mode = process.argv[2] ?? 'bare';
const hello = (req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end('hello world');
};
let handler = hello;
if (mode === 'middleware') {
  // full mode, real routes, a critical detection active on a component this route does not use
  const chain = new DetectorChain({ mode: 'full', scanIntervalMs: 1_000, bus: new GuardBus(), metrics: false, scheduler: { schedule: () => false } });
  chain.add({ component: 'db', pattern: 'connection_orphan', scan: () => [{ pattern: 'connection_orphan', severity: 'critical', resourceId: 'conn_1', message: 'held', details: {} }] });
  chain.scan();
  const guard = createParasiteMiddleware(chain, {
    routes: [
      { prefix: '/orders', component: 'db' },
      { prefix: '/live', component: 'websocket' },
      { pattern: /^\/events\b/, component: 'eventbus' },
    ],
  });
  handler = (req, res) => guard(req, res, () => hello(req, res));
}
const server = createServer(handler);
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.send?.({ port: server.address().port }));
process.on('message', (m) => {
  if (m === 'stop') server.close(() => process.exit(0));
});
