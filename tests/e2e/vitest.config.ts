import { defineProject } from 'vitest/config';

// Timing and real-CPU figures: each test reports what it measured (see report.ts) and asserts only what a user relies
// on, with bounds generous enough for a loaded 2-core machine. Files run one at a time so figures do not fight.
export default defineProject({
  test: {
    name: 'e2e',
    include: ['*.test.ts'],
    testTimeout: 120_000,
    fileParallelism: false,
  },
});
