import { describe, expect, expectTypeOf, it } from 'vitest';
import { COMPONENT_NAMES } from './types.js';
import type { BuiltinComponentName, ComponentName } from './types.js';

describe('COMPONENT_NAMES', () => {
  it('lists the seven Parasite Guard components C1-C7 in order', () => {
    expect(COMPONENT_NAMES).toEqual(['websocket', 'eventbus', 'db', 'circuit', 'batch', 'context', 'handles']);
    expectTypeOf(COMPONENT_NAMES).toExtend<readonly ComponentName[]>();
    expectTypeOf<BuiltinComponentName>().toEqualTypeOf<'websocket' | 'eventbus' | 'db' | 'circuit' | 'batch' | 'context' | 'handles'>();
  });
});
