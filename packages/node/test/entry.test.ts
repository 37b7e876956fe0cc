import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const packages = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Every bare specifier a built entry imports statically, following its local chunks and the `@guard/*` packages
 * it loads (their main entries): what an app must have installed to import it.
 */
function staticImports(pkg: string, file: string, seen = new Set<string>(), bare = new Set<string>()): Set<string> {
  const key = `${pkg}/${file}`;
  if (seen.has(key)) return bare;
  seen.add(key);
  const code = readFileSync(join(packages, pkg, 'dist', file), 'utf8');
  for (const match of code.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]/gm)) {
    const spec = match[1] ?? match[2];
    if (!spec) continue;
    if (spec.startsWith('./')) staticImports(pkg, spec.slice(2), seen, bare);
    else if (/^@guard\/[a-z]+$/.test(spec)) staticImports(spec.slice('@guard/'.length), 'index.js', seen, bare);
    else bare.add(spec);
  }
  return bare;
}

describe('entry points', () => {
  it('importing @guard/node loads no framework and no database driver, in its own code or any Guard package it loads', () => {
    const main = staticImports('node', 'index.js');
    for (const optional of ['fastify', 'fastify-plugin', 'express', 'better-sqlite3', 'pg', '@guard/immune/sqlite', '@guard/immune/postgres']) {
      expect(main.has(optional), optional).toBe(false);
    }
    // The required peers, and nothing else from npm but Guard's own dependencies.
    const external = [...main].filter((s) => !builtinModules.includes(s.replace(/^node:/, '')));
    expect(external.sort()).toEqual(['kysely', 'prom-client', 'ws', 'yaml', 'zod']);
  });

  it('each subpath loads only its own framework', () => {
    expect(staticImports('node', 'fastify.js').has('fastify-plugin')).toBe(true);
    expect(staticImports('node', 'express.js').has('express')).toBe(true);
    expect(staticImports('node', 'express.js').has('fastify-plugin')).toBe(false);
    expect(staticImports('node', 'fastify.js').has('express')).toBe(false);
  });
});
