import { describe, expect, it } from 'vitest';
import { createJsonLogger } from '@guard/core';
import { CloseStack } from './close-stack.js';

describe('CloseStack', () => {
  it('closes in reverse order of creation, once, and keeps going past a failing part', async () => {
    const lines: string[] = [];
    const stack = new CloseStack(createJsonLogger({ level: 'error', write: (line) => lines.push(line) }));
    const closed: string[] = [];
    stack.defer('store', 'store', (name) => closed.push(name));
    stack.defer('bad', 'bad', () => Promise.reject(new Error('boom')));
    stack.defer('chain', 'chain', async (name) => {
      await Promise.resolve();
      closed.push(name);
    });
    expect(stack.order()).toEqual(['chain', 'bad', 'store']);
    await Promise.all([stack.close(), stack.close()]);
    await stack[Symbol.asyncDispose]();
    expect(closed).toEqual(['chain', 'store']);
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ part: 'bad', msg: 'guard: closing a part failed' });
  });
});
