#!/usr/bin/env node
// A committed shim, so `pnpm install` on a clean clone can link the bin before `dist` is built.
import { existsSync } from 'node:fs';

const cli = new URL('../dist/cli/loadtest.js', import.meta.url);
if (!existsSync(cli)) {
  console.error('guard-loadtest: @guard/memory is not built yet; run `pnpm --filter @guard/memory build`');
  process.exit(1);
}
await import(cli.href);
