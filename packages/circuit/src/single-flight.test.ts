import { describe, expect, it } from 'vitest';
import { SingleFlight } from './single-flight.js';
import { deferred } from './test-support.js';

describe('SingleFlight', () => {
  it('100 concurrent calls with one key run fn once and share its result', async () => {
    const flights = new SingleFlight<string, number>();
    let calls = 0;
    const gate = deferred();
    const fn = async () => {
      calls++;
      await gate.promise;
      return 42;
    };
    const pending = Promise.all(Array.from({ length: 100 }, () => flights.deduplicate('k', fn)));
    gate.resolve();
    const results = await pending;
    expect(calls).toBe(1);
    expect(new Set(results)).toEqual(new Set([42]));
    expect(flights.size).toBe(0);
  });

  it('shares an error, then runs again after it settled', async () => {
    const flights = new SingleFlight();
    let calls = 0;
    const failing = async () => {
      calls++;
      throw new Error(`fail ${calls}`);
    };
    const [a, b] = await Promise.allSettled([flights.deduplicate('k', failing), flights.deduplicate('k', failing)]);
    expect(a).toMatchObject({ status: 'rejected', reason: { message: 'fail 1' } });
    expect(b).toMatchObject({ status: 'rejected', reason: { message: 'fail 1' } });
    await expect(flights.deduplicate('k', failing)).rejects.toThrow('fail 2');
    expect(calls).toBe(2);
  });

  it('different keys run separately; a synchronous throw becomes a rejection', async () => {
    const flights = new SingleFlight();
    const [x, y] = await Promise.all([flights.deduplicate('x', () => 'x'), flights.deduplicate('y', () => 'y')]);
    expect([x, y]).toEqual(['x', 'y']);
    await expect(
      flights.deduplicate('z', () => {
        throw new Error('sync');
      }),
    ).rejects.toThrow('sync');
    expect(flights.has('z')).toBe(false);
  });

  it("a caller's abort stops only that caller waiting", async () => {
    const flights = new SingleFlight();
    let release!: () => void;
    const fn = () => new Promise<string>((resolve) => (release = () => resolve('done')));
    const controller = new AbortController();
    const leaving = flights.deduplicate('k', fn, { signal: controller.signal });
    const staying = flights.deduplicate('k', fn);
    controller.abort(new Error('left'));
    await expect(leaving).rejects.toThrow('left');
    expect(flights.has('k')).toBe(true);
    release();
    await expect(staying).resolves.toBe('done');
  });
});
