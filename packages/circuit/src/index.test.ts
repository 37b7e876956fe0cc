import { describe, expect, it } from 'vitest';
import { packageName } from './index.js';

describe('@guard/circuit', () => {
  it('exposes its name', () => {
    expect(packageName).toBe('@guard/circuit');
  });
});
