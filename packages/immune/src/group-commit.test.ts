import { describe, expect, it } from 'vitest';
import { isGuardError } from '@guard/core';
import { GroupCommitter } from './group-commit.js';

/** A promise the test resolves when it chooses: commits wait on it instead of on the clock. */
function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

describe('GroupCommitter', () => {
  it('commits concurrent submissions in one batch and resolves only after the commit', async () => {
    const batches: number[][] = [];
    let committed = false;
    const committer = new GroupCommitter<number>({
      commit: async (batch) => {
        await Promise.resolve();
        batches.push([...batch]);
        committed = true;
      },
    });
    const results = Array.from({ length: 100 }, (_, i) =>
      committer.submit(i).then(() => {
        expect(committed).toBe(true);
      }),
    );
    await Promise.all(results);
    expect(batches).toEqual([Array.from({ length: 100 }, (_, i) => i)]);
  });

  it('splits at maxBatchSize and gathers new submissions while a commit runs', async () => {
    const sizes: number[] = [];
    const firstCommit = gate();
    const committer = new GroupCommitter<number>({
      maxBatchSize: 10,
      commit: async (batch) => {
        sizes.push(batch.length);
        await firstCommit.promise;
      },
    });
    const first = Array.from({ length: 25 }, (_, i) => committer.submit(i));
    expect(sizes).toEqual([10]); // a full batch commits at once; the rest waits for it
    const second = Array.from({ length: 7 }, (_, i) => committer.submit(100 + i));
    firstCommit.open();
    await Promise.all([...first, ...second]);
    expect(sizes).toEqual([10, 10, 10, 2]);
  });

  it('rejects every item of a failed batch with STORE_ERROR keeping the cause, then carries on', async () => {
    const cause = new Error('disk full');
    let fail = true;
    const committer = new GroupCommitter<number>({
      commit: () => {
        if (fail) throw cause;
      },
    });
    const results = await Promise.allSettled([committer.submit(1), committer.submit(2)]);
    for (const r of results) {
      expect(r.status).toBe('rejected');
      const reason = (r as PromiseRejectedResult).reason as Error;
      expect(isGuardError(reason, 'STORE_ERROR')).toBe(true);
      expect(reason.cause).toBe(cause);
    }
    fail = false;
    await expect(committer.submit(3)).resolves.toBeUndefined();
  });

  it('rejects with QUEUE_FULL past maxPending', async () => {
    const committer = new GroupCommitter<number>({ maxPending: 3, commit: () => {} });
    const results = await Promise.allSettled([1, 2, 3, 4].map((i) => committer.submit(i)));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'rejected']);
    expect(isGuardError((results[3] as PromiseRejectedResult).reason, 'QUEUE_FULL')).toBe(true);
  });

  it('drains on close and rejects later submissions with CLOSED', async () => {
    const seen: number[] = [];
    const committer = new GroupCommitter<number>({
      commit: async (batch) => {
        await Promise.resolve();
        seen.push(...batch);
      },
    });
    const pending = [committer.submit(1), committer.submit(2)];
    await committer.close();
    expect(seen).toEqual([1, 2]);
    await Promise.all(pending);
    await expect(committer.submit(3)).rejects.toSatisfy((e) => isGuardError(e, 'CLOSED'));
    await committer.close();
  });

  it('reports each commit to onCommit and survives a throwing onCommit', async () => {
    const seen: number[] = [];
    const committer = new GroupCommitter<number>({
      commit: () => {},
      onCommit: (size, seconds) => {
        seen.push(size);
        expect(seconds).toBeGreaterThanOrEqual(0);
        throw new Error('metrics broke');
      },
    });
    await Promise.all([committer.submit(1), committer.submit(2), committer.submit(3)]);
    expect(seen).toEqual([3]);
  });

  it('runs up to maxConcurrentCommits commits at once when full batches wait', async () => {
    let inFlight = 0;
    let peak = 0;
    const sizes: number[] = [];
    const threeAtOnce = gate();
    const committer = new GroupCommitter<number>({
      maxBatchSize: 10,
      maxConcurrentCommits: 3,
      commit: async (batch) => {
        peak = Math.max(peak, ++inFlight);
        sizes.push(batch.length);
        if (inFlight === 3) threeAtOnce.open();
        await threeAtOnce.promise;
        inFlight--;
      },
    });
    await Promise.all(Array.from({ length: 100 }, (_, i) => committer.submit(i)));
    expect(peak).toBe(3);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(100);
    await committer.close();
    const single = new GroupCommitter<number>({
      maxBatchSize: 10,
      commit: async () => {
        inFlight++;
        expect(inFlight).toBe(1);
        await Promise.resolve();
        inFlight--;
      },
    });
    await Promise.all(Array.from({ length: 50 }, (_, i) => single.submit(i)));
  });

  it('validates options', () => {
    expect(() => new GroupCommitter({ commit: () => {}, maxBatchSize: 0 })).toThrow(/maxBatchSize/);
    expect(() => new GroupCommitter({ commit: () => {}, maxPending: -1 })).toThrow(/maxPending/);
    expect(() => new GroupCommitter({ commit: () => {}, maxConcurrentCommits: 0 })).toThrow(/maxConcurrentCommits/);
  });
});
