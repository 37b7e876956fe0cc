import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    name: 'playbooks',
    include: ['src/**/*.test.ts'],
    testTimeout: 20_000,
  },
});
