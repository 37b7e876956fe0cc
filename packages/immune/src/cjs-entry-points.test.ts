import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// Loads the built package by name (self-reference through the exports map), as `npm i @guard/immune` would.
const packageDir = fileURLToPath(new URL('..', import.meta.url));
const node = (args: string[]) => execFileSync(process.execPath, args, { cwd: packageDir, encoding: 'utf8' }).trim();

describe('entry points share one implementation', () => {
  it('in CommonJS, the sqlite and postgres stores extend the main entry point’s KyselyEventStore (one class, not a copy per entry)', () => {
    const script = [
      "const { KyselyEventStore } = require('@guard/immune');",
      "const { SqliteEventStore } = require('@guard/immune/sqlite');",
      "const { PostgresEventStore } = require('@guard/immune/postgres');",
      'console.log(SqliteEventStore.prototype instanceof KyselyEventStore, PostgresEventStore.prototype instanceof KyselyEventStore);',
    ].join('\n');
    expect(node(['-e', script])).toBe('true true');
  });

  it('in ESM, the same holds', () => {
    const script = [
      "import { KyselyEventStore } from '@guard/immune';",
      "import { SqliteEventStore } from '@guard/immune/sqlite';",
      "import { PostgresEventStore } from '@guard/immune/postgres';",
      'console.log(SqliteEventStore.prototype instanceof KyselyEventStore, PostgresEventStore.prototype instanceof KyselyEventStore);',
    ].join('\n');
    expect(node(['--input-type=module', '-e', script])).toBe('true true');
  });

  it('a real SQLite store from the sqlite entry point is an instance of the main entry point’s class in CommonJS', () => {
    const script = [
      "const { KyselyEventStore } = require('@guard/immune');",
      "const { SqliteEventStore } = require('@guard/immune/sqlite');",
      "const store = new SqliteEventStore({ path: ':memory:' });",
      'console.log(store instanceof KyselyEventStore);',
      'store.close().then(() => process.exit(0));',
    ].join('\n');
    expect(node(['-e', script])).toBe('true');
  });
});
