import { describe, expect, it } from 'vitest';
import { captureSource, createSourceCapture, parseStackFrames, shouldSampleSource } from './source-frames.js';

function leakyFactory() {
  return captureSource(); // the line under test
}

describe('source frames', () => {
  it('points at the calling line of this test file', () => {
    const frames = leakyFactory().frames();
    expect(frames[0]).toMatch(/source-frames\.test\.ts:\d+:\d+$/);
  });

  it('skips frames above a given function', () => {
    function wrapper() {
      return captureSource({ skip: wrapper });
    }
    const line = new Error().stack!.split('\n')[1]!.match(/:(\d+):\d+\)?$/)![1];
    const frames = wrapper().frames();
    expect(frames[0]).toContain(`source-frames.test.ts:${Number(line) + 1}:`);
  });

  it('removes node_modules, node: internals and native frames, and converts file URLs', () => {
    const stack = [
      'Error',
      '    at Object.<anonymous> (/app/node_modules/ws/lib/websocket.js:10:5)',
      '    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)',
      '    at new Promise (<anonymous>)',
      '    at handler (file:///app/src/server.js:42:7)',
      '    at /app/src/main.ts:3:1',
      '    at async run (/app/src/run.ts:9:2)',
    ].join('\n');
    expect(parseStackFrames(stack)).toEqual(['/app/src/server.js:42:7', '/app/src/main.ts:3:1', '/app/src/run.ts:9:2']);
    expect(parseStackFrames(stack, { limit: 1 })).toEqual(['/app/src/server.js:42:7']);
    expect(parseStackFrames(stack, { ignore: [/server/] })).toEqual(['/app/src/main.ts:3:1', '/app/src/run.ts:9:2']);
  });

  it('captures only `depth` frames, so deep call sites can fall outside it', () => {
    const nest = (n: number): ReturnType<typeof captureSource> => (n === 0 ? captureSource({ depth: 2 }) : nest(n - 1));
    expect(nest(5).frames().length).toBeLessThanOrEqual(2);
    expect(nest(5).frames()[0]).toMatch(/source-frames\.test\.ts/);
  });

  it('samples a key: its first 16 calls, then about one in 64 at random', () => {
    expect(Array.from({ length: 16 }, (_, i) => shouldSampleSource(i)).every(Boolean)).toBe(true);
    let sampled = 0;
    for (let i = 16; i < 16 + 64_000; i++) if (shouldSampleSource(i)) sampled++;
    // expected 1,000; the bounds are ~30 standard deviations away
    expect(sampled).toBeGreaterThan(500);
    expect(sampled).toBeLessThan(2_000);
    expect(shouldSampleSource(1, 2, 1)).toBe(true);
    expect(shouldSampleSource(5, 2, 1)).toBe(true); // every = 1 samples everything
  });

  it('costs nothing when disabled', () => {
    expect(createSourceCapture(false)()).toBeUndefined();
    expect(createSourceCapture(true)()?.frames().length).toBeGreaterThan(0);
  });
});

describe('source frames and garbage collection', () => {
  /** Forces a full collection and waits a task so FinalizationRegistry-style cleanup could run. */
  async function collect(): Promise<void> {
    const { setFlagsFromString } = await import('node:v8');
    const { runInNewContext } = await import('node:vm');
    setFlagsFromString('--expose-gc');
    for (let i = 0; i < 3; i++) {
      (runInNewContext('gc') as () => void)();
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  class Owner {
    readonly source: ReturnType<typeof captureSource>;
    constructor(kept: ReturnType<typeof captureSource>[], eager: boolean) {
      // the receiver of this constructor frame is the new Owner
      this.source = captureSource({ eager });
      kept.push(this.source);
    }
  }

  it('eager: a capture made in a constructor does not keep the constructed object alive', async () => {
    const kept: ReturnType<typeof captureSource>[] = [];
    const refs: WeakRef<Owner>[] = [];
    (() => {
      for (let i = 0; i < 5; i++) refs.push(new WeakRef(new Owner(kept, true)));
    })();
    await collect();
    expect(refs.filter((r) => r.deref() !== undefined)).toHaveLength(0);
    // the frames are still there to read, pointing at the constructor line
    expect(kept[0]!.frames()[0]).toMatch(/source-frames\.test\.ts:\d+:\d+$/);
  });

  it('lazy (the default) keeps the frames unformatted until read', () => {
    const kept: ReturnType<typeof captureSource>[] = [];
    const owner = new Owner(kept, false);
    expect(owner.source.frames()[0]).toMatch(/source-frames\.test\.ts:\d+:\d+$/);
  });
});
