import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    name: 'detectors',
    include: ['src/**/*.test.ts'],
    testTimeout: 20_000,
    // `global.gc()` for the tests that prove collected owners are found (C2) and live ones are not held.
    execArgv: ['--expose-gc'],
  },
});
