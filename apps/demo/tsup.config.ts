import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts', 'src/chaos.ts'],
  format: ['esm'],
  target: 'node20',
  clean: true,
  sourcemap: true,
});
