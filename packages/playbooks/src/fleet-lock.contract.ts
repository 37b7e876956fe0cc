import { expect, it } from 'vitest';
import type { FleetLock } from './fleet-lock.js';

/** Starts a step on `lock` for `key` that runs until `release()`; resolves once the step is inside the lock. */
async function holding(lock: FleetLock, key: string) {
  let release!: () => void;
  let started!: () => void;
  const inside = new Promise<void>((r) => (started = r));
  const running = lock.tryRun(key, () => {
    started();
    return new Promise<string>((r) => (release = () => r('first')));
  });
  await inside;
  return { running, release: () => release() };
}

/**
 * The behaviour every FleetLock shares. `create(dedupeWindowMs)` returns a fresh lock; locks created
 * by one call of `pair()` must share state (one in-process lock, or two instances on one database).
 */
export function describeFleetLockContract(factory: {
  pair(dedupeWindowMs: number): Promise<[FleetLock, FleetLock]>;
  uniqueKey(): string;
}): void {
  it('contract: runs the function and returns its value when the lock is free', async () => {
    const [a] = await factory.pair(0);
    expect(await a.tryRun(factory.uniqueKey(), async () => 'value')).toEqual({ acquired: true, value: 'value' });
  });

  it.each([
    { dedupeWindowMs: 0, afterwards: { acquired: true, value: 'third' }, what: 'frees it afterwards' },
    { dedupeWindowMs: 60_000, afterwards: { acquired: false, reason: 'done' }, what: 'with a dedupe window records it done only once it succeeded' },
  ])('contract: refuses a key while another holder runs it (held, not done), and $what', async ({ dedupeWindowMs, afterwards }) => {
    const [a, b] = await factory.pair(dedupeWindowMs);
    const key = factory.uniqueKey();
    const { running, release } = await holding(a, key);
    expect(await b.tryRun(key, async () => 'second')).toEqual({ acquired: false, reason: 'held' });
    release();
    expect(await running).toEqual({ acquired: true, value: 'first' });
    expect(await b.tryRun(key, async () => 'third')).toEqual(afterwards);
  });

  it('contract: keys are independent', async () => {
    const [a, b] = await factory.pair(0);
    const k1 = factory.uniqueKey();
    const k2 = factory.uniqueKey();
    // Both steps must be inside the lock at the same time: each waits for the other to start.
    let startA!: () => void;
    let startB!: () => void;
    const aStarted = new Promise<void>((r) => (startA = r));
    const bStarted = new Promise<void>((r) => (startB = r));
    const [r1, r2] = await Promise.all([
      a.tryRun(k1, async () => {
        startA();
        await bStarted;
        return 1;
      }),
      b.tryRun(k2, async () => {
        startB();
        await aStarted;
        return 2;
      }),
    ]);
    expect([r1, r2]).toEqual([
      { acquired: true, value: 1 },
      { acquired: true, value: 2 },
    ]);
  });

  it('contract: with a dedupe window, a key that ran is done for the other holder too', async () => {
    const [a, b] = await factory.pair(60_000);
    const key = factory.uniqueKey();
    expect(await a.tryRun(key, async () => 1)).toEqual({ acquired: true, value: 1 });
    expect(await b.tryRun(key, async () => 2)).toEqual({ acquired: false, reason: 'done' });
  });

  it('contract: a throwing function releases the lock and rethrows', async () => {
    const [a, b] = await factory.pair(0);
    const key = factory.uniqueKey();
    await expect(a.tryRun(key, async () => Promise.reject(new Error('step failed')))).rejects.toThrow('step failed');
    expect(await b.tryRun(key, async () => 'ok')).toEqual({ acquired: true, value: 'ok' });
  });

  it('contract: a step that threw is not done: the other holder retries it within the dedupe window', async () => {
    const [a, b] = await factory.pair(60_000);
    const key = factory.uniqueKey();
    await expect(a.tryRun(key, async () => Promise.reject(new Error('step failed')))).rejects.toThrow('step failed');
    expect(await b.tryRun(key, async () => 'retried')).toEqual({ acquired: true, value: 'retried' });
    expect(await a.tryRun(key, async () => 'again')).toEqual({ acquired: false, reason: 'done' });
  });

  it('contract: a step result reporting failure (outcome other than succeeded) is not done; a custom test is honoured', async () => {
    const [a, b] = await factory.pair(60_000);
    const key = factory.uniqueKey();
    expect(await a.tryRun(key, async () => ({ outcome: 'failed' }))).toEqual({ acquired: true, value: { outcome: 'failed' } });
    expect(await b.tryRun(key, async () => ({ outcome: 'timeout' }))).toEqual({ acquired: true, value: { outcome: 'timeout' } });
    expect(await a.tryRun(key, async () => ({ ok: false }), { succeeded: (v) => v.ok })).toEqual({ acquired: true, value: { ok: false } });
    expect(await b.tryRun(key, async () => ({ outcome: 'succeeded' }))).toEqual({ acquired: true, value: { outcome: 'succeeded' } });
    expect(await a.tryRun(key, async () => ({ outcome: 'succeeded' }))).toEqual({ acquired: false, reason: 'done' });
  });
}
