import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.base.js';

export default defineConfig({
  ...packageBuild,
  entry: ['src/index.ts', 'src/fastify.ts', 'src/express.ts'],
  // Peers stay the app's own copies; the optional ones are loaded only by the subpath or option that needs them.
  external: ['fastify', 'fastify-plugin', 'express', 'better-sqlite3', 'pg', 'ws', 'kysely', 'prom-client'],
});
