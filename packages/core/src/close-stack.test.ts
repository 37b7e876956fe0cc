import { describe, expect, it } from 'vitest';
import { CloseStack } from './close-stack.js';
import { isGuardError } from './guard-error.js';

describe('CloseStack', () => {
  it('runs deferred functions last first, awaiting each one', async () => {
    const stack = new CloseStack();
    const order: string[] = [];
    stack.defer(() => order.push('first'));
    stack.defer(async () => {
      await new Promise((resolve) => setImmediate(resolve));
      order.push('second');
    });
    stack.defer(() => order.push('third'));
    await stack.close();
    expect(order).toEqual(['third', 'second', 'first']);
  });

  it('closes resources through asyncDispose, dispose or close, and returns them', async () => {
    const order: string[] = [];
    const closeable = { close: async () => void order.push('close'), [Symbol.asyncDispose]: async () => void order.push('asyncDispose') };
    const disposable = { [Symbol.dispose]: () => void order.push('dispose') };
    {
      await using stack = new CloseStack();
      expect(stack.use(closeable)).toBe(closeable);
      stack.use(disposable);
    }
    expect(order).toEqual(['dispose', 'asyncDispose']);
  });

  it('runs every entry even when some throw: one error as is, several as an AggregateError', async () => {
    const one = new CloseStack();
    const ran: number[] = [];
    one.defer(() => ran.push(1));
    one.defer(() => {
      throw new Error('only');
    });
    await expect(one.close()).rejects.toThrow('only');
    expect(ran).toEqual([1]);

    const two = new CloseStack();
    two.defer(() => Promise.reject(new Error('a')));
    two.defer(() => ran.push(2));
    two.defer(() => {
      throw new Error('b');
    });
    const error = (await two.close().catch((e: unknown) => e)) as AggregateError;
    expect(error).toBeInstanceOf(AggregateError);
    expect(error.errors.map((e: Error) => e.message)).toEqual(['b', 'a']);
    expect(ran).toEqual([1, 2]);
  });

  it('closes once: later calls return the same promise; defer after close throws CLOSED', async () => {
    const stack = new CloseStack();
    let runs = 0;
    stack.defer(() => void runs++);
    const first = stack.close();
    expect(stack.close()).toBe(first);
    await first;
    await stack[Symbol.asyncDispose]();
    expect(runs).toBe(1);
    expect(() => stack.defer(() => {})).toThrow(expect.toSatisfy((e) => isGuardError(e, 'CLOSED')) as Error);
  });
});
