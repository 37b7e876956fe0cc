import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * Every quick start runs as pasted. For each README below, the code blocks of its quick-start section are written
 * into a fresh app directory whose node_modules holds only what the README's `npm i` lines install (plus the
 * non-optional peers npm and pnpm install by themselves), so an unnamed peer (`ws`, `@types/better-sqlite3`) fails
 * here as it would for a newcomer. ```js blocks run as `.mjs` on this Node (20: no `await using`); ```ts blocks are
 * type-checked with the repo's TypeScript, then transpiled and run.
 */
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const harness = join(root, 'tests', 'docs', 'docs-harness.mjs');
const run = promisify(execFile);

const READMES = ['README.md', ...['core', 'circuit', 'detectors', 'sanitizer', 'memory', 'immune', 'playbooks'].map((name) => `packages/${name}/README.md`)];
const QUICK_START = /^## (Quick start|Import just one package)\s*$/;

interface Block {
  readonly lang: 'js' | 'ts';
  readonly code: string;
  readonly line: number;
}

function quickStart(markdown: string): { blocks: Block[]; installs: string[] } {
  const lines = markdown.split('\n');
  const blocks: Block[] = [];
  const installs: string[] = [];
  // The package's install block sits above its first section; the root README's sits in the quick-start section.
  let inSection = false;
  let beforeSections = true;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (/^#{2,3} /.test(line)) {
      inSection = QUICK_START.test(line);
      beforeSections = false;
    }
    const fence = /^```(\w*)\s*$/.exec(line);
    if (!fence) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    const lang = fence[1];
    if ((lang === 'sh' || lang === 'bash') && (inSection || beforeSections)) {
      for (const command of body) {
        const m = /^\s*npm (?:i|install)\s+(.*?)\s*(?:#.*)?$/.exec(command);
        if (m) installs.push(...m[1]!.split(/\s+/).filter((word) => word !== '' && !word.startsWith('-')));
      }
    } else if (inSection && (lang === 'js' || lang === 'ts')) {
      blocks.push({ lang, code: body.join('\n'), line: start + 1 });
    }
  }
  return { blocks, installs };
}

/** Where the workspace has a package (any package's node_modules will do; they are links into one store). */
function locate(name: string): string {
  if (name.startsWith('@guard/')) return join(root, 'packages', name.slice('@guard/'.length));
  const candidates = [join(root, 'node_modules', name), ...['packages/immune', 'packages/detectors', 'packages/circuit', 'apps/demo', 'packages/node'].map((dir) => join(root, dir, 'node_modules', name))];
  const found = candidates.find((candidate) => existsSync(candidate));
  if (!found) throw new Error(`the README installs ${name}, which this workspace does not have`);
  return realpathSync(found);
}

const apps: string[] = [];
afterAll(() => {
  for (const app of apps) rmSync(app, { recursive: true, force: true });
});

/** A fresh app directory with exactly what `npm i <installs>` would give it at the top level. */
function makeApp(installs: readonly string[]): string {
  const app = mkdtempSync(join(tmpdir(), 'guard-docs-'));
  apps.push(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'quick-start', private: true, type: 'module' }));
  const names = new Set(installs.map((spec) => spec.replace(/(?<=.)@.*$/, '')));
  names.add('@types/node'); // a TypeScript user has it; JS never reads it
  for (const name of [...names]) {
    if (!name.startsWith('@guard/')) continue;
    const manifest = JSON.parse(readFileSync(join(locate(name), 'package.json'), 'utf8')) as {
      peerDependencies?: Record<string, string>;
      peerDependenciesMeta?: Record<string, { optional?: boolean }>;
    };
    for (const peer of Object.keys(manifest.peerDependencies ?? {})) {
      if (!manifest.peerDependenciesMeta?.[peer]?.optional) names.add(peer);
    }
  }
  for (const name of names) {
    const link = join(app, 'node_modules', name);
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(locate(name), link, 'dir');
  }
  return app;
}

const COMPILER_OPTIONS: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  lib: ['lib.es2023.d.ts', 'lib.esnext.disposable.d.ts', 'lib.dom.d.ts'],
  types: ['node'],
  strict: true,
  skipLibCheck: true,
  noEmit: true,
};

function typeErrors(file: string): string[] {
  const program = ts.createProgram([file], COMPILER_OPTIONS);
  return ts
    .getPreEmitDiagnostics(program)
    .map((d) => `${d.file && d.start !== undefined ? `line ${d.file.getLineAndCharacterOfPosition(d.start).line + 1}: ` : ''}${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`);
}

async function runNode(app: string, file: string) {
  // pnpm's bin shims put the workspace store on NODE_PATH; a newcomer's shell has no such path.
  const { NODE_PATH: _store, ...env } = process.env;
  for (const key of Object.keys(env)) if (/^(PARASITE_|GUARD_|MEMORY_|DATABASE_URL)/.test(key)) delete env[key];
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', harness, file], { cwd: app, env, timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number | null; signal?: string; stdout: string; stderr: string };
    return { code: e.code ?? e.signal, stdout: e.stdout, stderr: e.stderr };
  }
}

describe.each(READMES)('%s quick start', (readme) => {
  const { blocks, installs } = quickStart(readFileSync(join(root, readme), 'utf8'));

  it('has a quick start with an npm i line', () => {
    expect(blocks.length).toBeGreaterThan(0);
    expect(installs.length).toBeGreaterThan(0);
  });

  it.each(blocks.map((block) => [block.line, block] as const))('the block at line %i runs as pasted', async (_line, block) => {
    const app = makeApp(installs);
    let file = join(app, 'quick-start.mjs');
    if (block.lang === 'ts') {
      const source = join(app, 'quick-start.ts');
      writeFileSync(source, block.code);
      expect(typeErrors(source)).toEqual([]);
      const js = ts.transpileModule(block.code, { compilerOptions: { ...COMPILER_OPTIONS, noEmit: false, module: ts.ModuleKind.ESNext }, fileName: source });
      writeFileSync(file, js.outputText);
    } else {
      writeFileSync(file, block.code);
      file = join(app, 'quick-start.mjs');
    }
    const out = await runNode(app, file);
    expect(out, `stderr: ${out.stderr}`).toMatchObject({ code: 0 });
  });
});
