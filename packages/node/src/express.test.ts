import express from 'express';
import { describe, expect, it } from 'vitest';
import { createGuard } from './index.js';
import { guardRouter } from './express.js';
import { listen, testGuardOptions } from '../test/support.js';

describe('@guard/node/express', () => {
  it('serves Guard endpoints after express.json() (POST bodies come from req.body) and passes other routes on', async () => {
    await using guard = await createGuard(testGuardOptions({ env: { GUARD_ADMIN_TOKEN: 't' } }));
    const app = express();
    app.use(express.json(), guardRouter(guard));
    app.get('/hello', (_req, res) => {
      res.json({ hello: 'world' });
    });
    await using http = await listen(app);
    const json = { 'content-type': 'application/json' };
    const event = await fetch(`${http.base}/api/immune/event`, { method: 'POST', headers: json, body: JSON.stringify({ severity: 'WARNING', type: 'ERROR_SPIKE', message: 'after express.json()' }) });
    expect(event.status).toBe(201);
    const mode = await fetch(`${http.base}/guard/mode`, { method: 'POST', headers: { ...json, authorization: 'Bearer t' }, body: JSON.stringify({ mode: 'dry_run' }) });
    expect(mode.status).toBe(200);
    expect(guard.chain.mode).toBe('dry_run');
    expect((await fetch(`${http.base}/readyz`)).status).toBe(200);
    expect(await (await fetch(`${http.base}/hello`)).json()).toEqual({ hello: 'world' });
  });

  it('sheds the app\'s routes under pressure but never its probes or metrics', async () => {
    await using guard = await createGuard(testGuardOptions({ pressure: { autoStart: false, sustainMs: 0 } }));
    const app = express();
    app.use(guardRouter(guard));
    app.get('/work', (_req, res) => {
      res.send('done');
    });
    await using http = await listen(app);
    guard.pressure!.evaluate({ cpuPercent: 99 });
    guard.pressure!.evaluate({ cpuPercent: 99 });
    const shed = await fetch(`${http.base}/work`);
    expect(shed.status).toBe(503);
    expect(shed.headers.get('retry-after')).toBe('5');
    expect((await fetch(`${http.base}/livez`)).status).toBe(200);
    expect((await fetch(`${http.base}/metrics`)).status).toBe(200);
  });

  it('mounts under a prefix', async () => {
    await using guard = await createGuard(testGuardOptions());
    const app = express();
    app.use('/ops', guardRouter(guard));
    await using http = await listen(app);
    expect((await fetch(`${http.base}/ops/livez`)).status).toBe(200);
    expect((await fetch(`${http.base}/ops/metrics`)).status).toBe(200);
  });
});
