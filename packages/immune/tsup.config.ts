import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.base.js';

export default defineConfig({
  ...packageBuild,
  entry: ['src/index.ts', 'src/sqlite.ts', 'src/postgres.ts', 'src/testing.ts'],
  // import.meta.url in the CJS build (optional-peer.ts loads pg/better-sqlite3 through createRequire).
  shims: true,
  external: ['better-sqlite3', 'pg'],
});
