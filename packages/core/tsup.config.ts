import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.base.js';

export default defineConfig({
  ...packageBuild,
  entry: ['src/index.ts', 'src/testing.ts'],
  // import.meta.url in the CJS build (testing.ts loads the optional peer pg through createRequire).
  shims: true,
  external: ['pg'],
});
