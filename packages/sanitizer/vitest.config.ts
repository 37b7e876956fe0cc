import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    name: 'sanitizer',
    include: ['src/**/*.test.ts'],
    testTimeout: 20_000,
    // `global.gc()` for the end-to-end C2 tests that prove collected owners are healed and live ones kept.
    execArgv: ['--expose-gc'],
  },
});
