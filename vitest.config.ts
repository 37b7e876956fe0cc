import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: ['packages/*', 'apps/*', 'deploy/prometheus', 'tests/docs', 'tests/e2e'],
  },
});
