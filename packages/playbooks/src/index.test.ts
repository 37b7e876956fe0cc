import { describe, expect, it } from 'vitest';
import { packageName } from './index.js';

describe('@guard/playbooks', () => {
  it('exposes its name', () => {
    expect(packageName).toBe('@guard/playbooks');
  });
});
