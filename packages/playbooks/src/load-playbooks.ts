import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GuardError } from '@guard/core';
import { isAlias, isCollection, LineCounter, parseDocument, visit } from 'yaml';
import type { Node } from 'yaml';
import { playbookDocumentSchema, toPlaybook } from './playbook-schema.js';
import type { Playbook } from './playbook-types.js';
import type {} from './declarations.js';

/** Options for {@link parsePlaybook}. */
export interface ParsePlaybookOptions {
  /** File name used in error messages. Default `'<playbook>'`. */
  readonly file?: string;
  /** Largest accepted document. Default 256 KiB. */
  readonly maxBytes?: number;
  /** Most alias (`*ref`) uses in one document. Default 20. */
  readonly maxAliases?: number;
  /** When given, actions outside this list are refused with `UNKNOWN_ACTION`. */
  readonly knownActions?: Iterable<string>;
  /** When given, verification probes outside this list are refused with `UNKNOWN_ACTION`. */
  readonly knownProbes?: Iterable<string>;
}

interface Problem {
  readonly path: readonly (string | number)[];
  readonly message: string;
  /** The template or condition path at fault (`event.actr`). */
  readonly field?: string;
  readonly line?: number;
  readonly column?: number;
}

function fail(code: 'INVALID_PLAYBOOK' | 'UNKNOWN_ACTION', file: string, problems: readonly Problem[], playbook?: string): never {
  const lines = problems.slice(0, 5).map((p) => {
    const where = p.line === undefined ? file : `${file}:${p.line}:${p.column ?? 1}`;
    return `${where} ${p.path.length ? p.path.join('.') : '(root)'}: ${p.message}`;
  });
  const more = problems.length > 5 ? ` (+${problems.length - 5} more)` : '';
  const first = problems[0];
  throw new GuardError(code, `invalid playbook ${lines.join('; ')}${more}`, {
    details: {
      file,
      ...(playbook === undefined ? {} : { playbook }),
      ...(first ? { path: first.path.join('.'), line: first.line, column: first.column } : {}),
      ...(first?.field === undefined ? {} : { field: first.field }),
      problems: problems.map((p) => ({ path: p.path.join('.'), message: p.message, line: p.line, column: p.column, ...(p.field === undefined ? {} : { field: p.field }) })),
    },
  });
}

/**
 * Parses and validates one YAML playbook. Refuses oversize documents, alias bombs, duplicate keys,
 * unknown tags, unknown fields and (when `knownActions` is given) unknown actions, with the file,
 * path and line in the error.
 *
 * @example
 * const playbook = parsePlaybook(await readFile('fix.yaml', 'utf8'), { file: 'fix.yaml' });
 */
export function parsePlaybook(text: string, options: ParsePlaybookOptions = {}): Playbook {
  const file = options.file ?? '<playbook>';
  const maxBytes = options.maxBytes ?? 256 * 1024;
  if (typeof text !== 'string') fail('INVALID_PLAYBOOK', file, [{ path: [], message: 'expected YAML text' }]);
  if (Buffer.byteLength(text) > maxBytes) {
    fail('INVALID_PLAYBOOK', file, [{ path: [], message: `document is larger than ${maxBytes} bytes` }]);
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false, strict: true, version: '1.2' });
  const position = (offset: number | undefined): { line?: number; column?: number } => {
    if (offset === undefined) return {};
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  const syntax = [...doc.errors, ...doc.warnings];
  if (syntax.length > 0) {
    fail(
      'INVALID_PLAYBOOK',
      file,
      syntax.map((e) => ({ path: [], message: e.message.split('\n')[0]!, ...position(e.pos[0]) })),
    );
  }
  let aliases = 0;
  const maxAliases = options.maxAliases ?? 20;
  visit(doc, {
    Alias() {
      aliases++;
    },
  });
  if (aliases > maxAliases) fail('INVALID_PLAYBOOK', file, [{ path: [], message: `too many aliases (${aliases} > ${maxAliases})` }]);
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: maxAliases });
  } catch (error) {
    fail('INVALID_PLAYBOOK', file, [{ path: [], message: (error as Error).message }]);
  }
  const nodeAt = (path: readonly (string | number)[]): { line?: number; column?: number } => {
    for (let n = path.length; n >= 0; n--) {
      const node = doc.getIn(path.slice(0, n), true) as Node | undefined;
      if (node && !isAlias(node) && (node as { range?: [number, number, number] }).range) {
        return position((node as { range: [number, number, number] }).range[0]);
      }
      if (n === 0 && isCollection(doc.contents)) return position(doc.contents.range[0]);
    }
    return {};
  };
  const parsed = playbookDocumentSchema.safeParse(data);
  if (!parsed.success) {
    fail(
      'INVALID_PLAYBOOK',
      file,
      parsed.error.issues.map((issue) => {
        const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
        return { path, message: issue.message, ...nodeAt(path) };
      }),
    );
  }
  const { playbook, problems } = toPlaybook(parsed.data, options.file);
  if (problems.length > 0) fail('INVALID_PLAYBOOK', file, problems.map((p) => ({ ...p, ...nodeAt(p.path) })), playbook.name);
  const unknown: Problem[] = [];
  if (options.knownActions) {
    const known = new Set(options.knownActions);
    for (const [key, list] of [['steps', playbook.steps], ['rollback', playbook.rollback]] as const) {
      list.forEach((s, i) => {
        if (!known.has(s.action)) unknown.push({ path: [key, i, 'action'], message: `unknown action "${s.action}"`, ...nodeAt([key, i, 'action']) });
      });
    }
  }
  if (options.knownProbes && playbook.verify) {
    const known = new Set(options.knownProbes);
    playbook.verify.checks.forEach((c, i) => {
      if (!known.has(c.probe)) {
        unknown.push({ path: ['verify', 'checks', i, 'probe'], message: `unknown probe "${c.probe}"`, ...nodeAt(['verify', 'checks', i, 'probe']) });
      }
    });
  }
  if (unknown.length > 0) fail('UNKNOWN_ACTION', file, unknown);
  return playbook;
}

/**
 * Reads and validates one playbook file.
 *
 * @example
 * const playbook = await loadPlaybookFile('./playbooks/resource_pressure_cpu.yaml');
 */
export async function loadPlaybookFile(path: string, options: Omit<ParsePlaybookOptions, 'file'> = {}): Promise<Playbook> {
  const maxBytes = options.maxBytes ?? 256 * 1024;
  const info = await stat(path);
  if (info.size > maxBytes) fail('INVALID_PLAYBOOK', path, [{ path: [], message: `document is larger than ${maxBytes} bytes` }]);
  return parsePlaybook(await readFile(path, 'utf8'), { ...options, file: path });
}

/**
 * Loads every `*.yaml` / `*.yml` file of a folder (sorted by name). Fails on the first invalid file.
 *
 * @example
 * const playbooks = await loadPlaybooks(builtinPlaybooksDir());
 * for (const p of playbooks) engine.register(p);
 */
export async function loadPlaybooks(dir: string, options: Omit<ParsePlaybookOptions, 'file'> = {}): Promise<Playbook[]> {
  const names = (await readdir(dir)).filter((n) => /\.ya?ml$/i.test(n)).sort();
  const out: Playbook[] = [];
  for (const name of names) out.push(await loadPlaybookFile(join(dir, name), options));
  const seen = new Set<string>();
  for (const p of out) {
    if (seen.has(p.name)) throw new GuardError('INVALID_INPUT', `two playbooks in ${dir} are named "${p.name}"`, { details: { field: 'name', dir, name: p.name } });
    seen.add(p.name);
  }
  return out;
}

/**
 * The folder of the playbooks shipped with the package (`message_bus_acl_violation_fix.yaml`,
 * `resource_pressure_cpu.yaml`).
 *
 * @example
 * const playbooks = await loadPlaybooks(builtinPlaybooksDir());
 */
export function builtinPlaybooksDir(): string {
  return fileURLToPath(new URL('../playbooks/', import.meta.url));
}
