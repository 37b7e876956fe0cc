import { describe, expect, it } from 'vitest';
import { createGuard } from '../src/index.js';
import { listen, testGuardOptions } from './support.js';

describe('shutdown deadline', () => {
  it('a request that never ends does not hold the shutdown: at the deadline its connection is cut and the rest closes', async () => {
    const guard = await createGuard(testGuardOptions({ shutdown: { timeoutMs: 300 } }));
    let arrived!: () => void;
    const started = new Promise<void>((resolve) => (arrived = resolve));
    await using http = await listen((req, res) => guard.handler(req, res, () => arrived()));
    guard.attach(http.server);
    const hanging = fetch(`${http.base}/forever`).then(
      () => 'answered',
      () => 'cut',
    );
    await started;
    const hooks: string[] = [];
    guard.onShutdown(() => hooks.push('app cleanup'));
    const report = await guard.shutdown();
    expect(report).toMatchObject({ drained: false, requestsLeft: 1 });
    expect(await hanging).toBe('cut');
    expect(hooks).toEqual(['app cleanup']);
    expect(http.server.listening).toBe(false);
    expect(await guard.shutdown()).toBe(report);
  });
});
