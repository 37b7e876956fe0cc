import { createRequire } from 'node:module';
import { errorMessage, GuardError } from '@guard/core';
import type {} from './errors.js';

/**
 * Loads an optional peer dependency (a native driver the app installs only if it wants that store) and, when it is
 * not installed, throws `MISSING_PEER` naming the package to install instead of Node's bare "Cannot find module".
 * `require` through `createRequire` works from both builds and lets the failure be caught, which a static import
 * (resolved before any code of the module runs) does not.
 *
 * @example
 * const pg = requireOptionalPeer<typeof import('pg')>('pg', '@guard/immune/postgres');
 */
export function requireOptionalPeer<T>(peer: string, entry: string, typesHint?: string): T {
  const load = createRequire(import.meta.url);
  try {
    return load(peer) as T;
  } catch (error) {
    const code = (error as { code?: string } | null)?.code;
    if (code === 'MODULE_NOT_FOUND' && errorMessage(error).includes(`'${peer}'`)) {
      const types = typesHint === undefined ? '' : ` (TypeScript: also npm i -D ${typesHint})`;
      throw new GuardError('MISSING_PEER', `${entry} needs the optional peer dependency "${peer}", which is not installed: npm i ${peer}${types}`, {
        cause: error,
        details: { peer },
      });
    }
    throw error;
  }
}
