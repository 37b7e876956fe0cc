import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const dist = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist');

/** Every bare specifier the built file imports statically, following its local chunks. */
function staticImports(file: string, seen = new Set<string>()): Set<string> {
  const bare = new Set<string>();
  if (seen.has(file)) return bare;
  seen.add(file);
  const code = readFileSync(join(dist, file), 'utf8');
  for (const match of code.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]/gm)) {
    const spec = match[1] ?? match[2];
    if (!spec) continue;
    if (spec.startsWith('./')) for (const s of staticImports(spec.slice(2), seen)) bare.add(s);
    else bare.add(spec);
  }
  return bare;
}

describe('entry points', () => {
  it('the main entry never loads fastify, express or a database driver; the subpaths load only their framework', () => {
    const main = staticImports('index.js');
    for (const optional of ['fastify', 'fastify-plugin', 'express', 'better-sqlite3', 'pg', '@guard/immune/sqlite', '@guard/immune/postgres']) {
      expect(main.has(optional), optional).toBe(false);
    }
    expect(main.has('@guard/detectors')).toBe(true);
    expect(staticImports('fastify.js').has('fastify-plugin')).toBe(true);
    expect(staticImports('express.js').has('express')).toBe(true);
    expect(staticImports('express.js').has('fastify-plugin')).toBe(false);
  });
});
