import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.base.js';

export default defineConfig({
  ...packageBuild,
  entry: ['src/index.ts', 'src/sqlite.ts', 'src/postgres.ts', 'src/testing.ts'],
  external: ['vitest', 'better-sqlite3', 'pg'],
});
