import type { Options } from 'tsup';

/**
 * The build every published package shares: ESM + CJS + .d.ts for Node 20. Packages add their entries.
 *
 * `splitting: true` applies to the CJS build too (tsup splits only ESM by default): code that several entry points
 * import (e.g. `KyselyEventStore`, used by `@guard/immune`, `./sqlite` and `./postgres`) then lives in one shared
 * chunk, so every entry point of one format hands out the same class and `instanceof` holds across them.
 */
export const packageBuild = {
  format: ['esm', 'cjs'],
  dts: true,
  target: 'node20',
  clean: true,
  sourcemap: true,
  treeshake: true,
  splitting: true,
} satisfies Options;
