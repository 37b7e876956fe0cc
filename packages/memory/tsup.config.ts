import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.base.js';

export default defineConfig({
  ...packageBuild,
  entry: { index: 'src/index.ts', testing: 'src/testing.ts', 'load-test': 'src/load-test.ts', 'cli/loadtest': 'src/cli/loadtest.ts' },
});
