import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { createSubscription, Emitter } from './emitter.js';

interface Events {
  tick: [n: number];
  done: [];
}

function recordingEmitter() {
  const errors: { error: unknown; event: keyof Events }[] = [];
  const emitter = new Emitter<Events>({ onError: (error, event) => errors.push({ error, event }) });
  return { emitter, errors };
}

describe('Emitter', () => {
  it('calls listeners in order with the arguments and reports whether any listened', () => {
    const { emitter } = recordingEmitter();
    const seen: string[] = [];
    expect(emitter.emit('tick', 1)).toBe(false);
    emitter.on('tick', (n) => seen.push(`a${n}`));
    emitter.on('tick', (n) => seen.push(`b${n}`));
    expect(emitter.emit('tick', 2)).toBe(true);
    expect(seen).toEqual(['a2', 'b2']);
  });

  it('removes a once listener before it runs, so an emit from inside it does not call it again', () => {
    const { emitter } = recordingEmitter();
    let calls = 0;
    emitter.once('tick', (n) => {
      calls++;
      if (n === 1) emitter.emit('tick', 2);
    });
    emitter.emit('tick', 1);
    emitter.emit('tick', 3);
    expect(calls).toBe(1);
    expect(emitter.listenerCount('tick')).toBe(0);
  });

  it('reports a throw and a rejection to onError and still runs the remaining listeners', async () => {
    const { emitter, errors } = recordingEmitter();
    const seen: number[] = [];
    emitter.on('tick', () => {
      throw new Error('sync boom');
    });
    emitter.on('tick', async () => {
      await Promise.resolve();
      throw new Error('async boom');
    });
    emitter.on('tick', (n) => seen.push(n));
    expect(() => emitter.emit('tick', 7)).not.toThrow();
    expect(seen).toEqual([7]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(errors.map((e) => [(e.error as Error).message, e.event])).toEqual([
      ['sync boom', 'tick'],
      ['async boom', 'tick'],
    ]);
  });

  it('keeps dispatching when onError itself throws', () => {
    const emitter = new Emitter<Events>({
      onError: () => {
        throw new Error('reporter broke');
      },
    });
    let reached = false;
    emitter.on('done', () => {
      throw new Error('boom');
    });
    emitter.on('done', () => void (reached = true));
    expect(() => emitter.emit('done')).not.toThrow();
    expect(reached).toBe(true);
  });

  it('ending a subscription removes only its own registration of a shared function, once', () => {
    const { emitter } = recordingEmitter();
    let calls = 0;
    const count = (): void => void calls++;
    const first = emitter.on('tick', count);
    emitter.on('tick', count);
    first();
    first();
    emitter.emit('tick', 1);
    expect(calls).toBe(1);
    expect(emitter.listenerCount('tick')).toBe(1);
    {
      using _sub = emitter.once('done', count);
      expect(emitter.listenerCount('done')).toBe(1);
    }
    expect(emitter.listenerCount('done')).toBe(0);
  });

  it('off removes one registration of the function (the newest); removeAllListeners one event or all', () => {
    const { emitter } = recordingEmitter();
    const seen: string[] = [];
    const listener = (): void => void seen.push('x');
    emitter.on('done', listener);
    emitter.on('done', () => void seen.push('other'));
    emitter.on('done', listener);
    emitter.off('done', listener);
    emitter.emit('done');
    expect(seen).toEqual(['x', 'other']);
    emitter.removeListener('done', listener);
    expect(emitter.listenerCount('done')).toBe(1);
    emitter.on('tick', () => {});
    expect(emitter.eventNames()).toEqual(['done', 'tick']);
    emitter.removeAllListeners('done');
    expect(emitter.eventNames()).toEqual(['tick']);
    emitter.removeAllListeners();
    expect(emitter.eventNames()).toEqual([]);
  });

  it('applies a change made during an emit from the next emit (copy-on-write)', () => {
    const { emitter } = recordingEmitter();
    const seen: string[] = [];
    const second = (): void => void seen.push('second');
    emitter.on('done', () => {
      seen.push('first');
      emitter.off('done', second);
      emitter.on('done', () => void seen.push('late'));
    });
    emitter.on('done', second);
    emitter.emit('done');
    expect(seen).toEqual(['first', 'second']);
    seen.length = 0;
    emitter.emit('done');
    expect(seen).toEqual(['first', 'late']);
  });

  it("works with node's events.once and leaves no listener behind", async () => {
    const { emitter } = recordingEmitter();
    const next = once(emitter as never, 'tick');
    expect(emitter.listenerCount('tick')).toBe(1);
    emitter.emit('tick', 5);
    expect(await next).toEqual([5]);
    expect(emitter.eventNames()).toEqual([]);
  });

  it('calls a listener with the context it was added with', () => {
    const { emitter } = recordingEmitter();
    const owner = { got: 0 };
    emitter.on('tick', function (this: typeof owner, n) {
      this.got = n;
    }, owner);
    emitter.emit('tick', 9);
    expect(owner.got).toBe(9);
  });

  it('without onError, a failing listener becomes a process warning', async () => {
    const emitter = new Emitter<Events>();
    emitter.on('done', () => {
      throw new Error('nobody listens');
    });
    const warning = once(process, 'warning');
    emitter.emit('done');
    const [w] = (await warning) as [Error];
    expect(w.name).toBe('GuardListenerError');
    expect(w.message).toContain('"done" failed: nobody listens');
  });
});

describe('createSubscription', () => {
  it('runs its end function once, by call or by using', () => {
    let ended = 0;
    const sub = createSubscription(() => void ended++);
    sub();
    sub[Symbol.dispose]();
    expect(ended).toBe(1);
  });
});
