import { randomUUID } from 'node:crypto';
import { describe } from 'vitest';
import { createLocalFleetLock } from './fleet-lock.js';
import { describeFleetLockContract } from './fleet-lock.contract.js';

describe('createLocalFleetLock', () => {
  describeFleetLockContract({
    async pair(dedupeWindowMs) {
      const lock = createLocalFleetLock({ dedupeWindowMs });
      return [lock, lock];
    },
    uniqueKey: () => randomUUID(),
  });
});
