import { describe, expect, it } from 'vitest';
import { packageName } from './index.js';

describe('@guard/immune', () => {
  it('exposes its name', () => {
    expect(packageName).toBe('@guard/immune');
  });
});
