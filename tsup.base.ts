import type { Options } from 'tsup';

/** The build every published package shares: ESM + CJS + .d.ts for Node 20. Packages add their entries. */
export const packageBuild = {
  format: ['esm', 'cjs'],
  dts: true,
  target: 'node20',
  clean: true,
  sourcemap: true,
  treeshake: true,
} satisfies Options;
