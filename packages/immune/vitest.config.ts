import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    name: 'immune',
    include: ['src/**/*.test.ts'],
    testTimeout: 20_000,
  },
});
