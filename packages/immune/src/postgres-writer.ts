import { sql } from 'kysely';
import type { ImmuneEvent } from './event.js';
import type { EventWriter, EventWriterOptions } from './event-writer.js';
import { LOST_CONNECTION_ATTEMPTS, retryLostConnection } from './store-error.js';

/**
 * The Postgres writer: the whole batch is one statement, so one round trip and atomic without BEGIN/COMMIT. The rows
 * travel as 8 array parameters expanded by `unnest`, and a data-modifying CTE upserts the rollup in the same
 * statement. The statement is idempotent (ON CONFLICT DO NOTHING, rollup only when every row was new), so a batch
 * whose connection died, even after the server committed it, is safely sent again on another connection.
 *
 * @example
 * const writer = createPostgresWriter({ db, table, rollupTable: `${table}_rollup`, deltas });
 */
export function createPostgresWriter({ db, table, rollupTable, deltas: deltasOf }: EventWriterOptions): EventWriter {
  const events = sql.table(table);
  const rollup = sql.table(rollupTable);
  const rollupCount = sql.ref(`${rollupTable}.count`);
  const statement = (batch: readonly ImmuneEvent[]) => {
    const n = batch.length;
    const ids = new Array<string>(n);
    const agents = new Array<string | null>(n);
    const modules = new Array<string | null>(n);
    const severities = new Array<string>(n);
    const types = new Array<string>(n);
    const messages = new Array<string>(n);
    const metas = new Array<string>(n);
    const created = new Array<string>(n);
    for (let i = 0; i < n; i++) {
      const e = batch[i]!;
      ids[i] = e.id;
      agents[i] = e.agentId ?? null;
      modules[i] = e.module ?? null;
      severities[i] = e.severity;
      types[i] = e.type;
      messages[i] = e.message;
      metas[i] = JSON.stringify(e.meta);
      created[i] = String(e.createdAt);
    }
    const deltas = deltasOf(batch);
    return sql`
      WITH inserted AS (
        INSERT INTO ${events} (id, agent_id, module, severity, type, message, meta, created_at)
        SELECT * FROM unnest(${ids}::text[], ${agents}::text[], ${modules}::text[], ${severities}::text[], ${types}::text[],
                             ${messages}::text[], ${metas}::text[], ${created}::bigint[])
        ON CONFLICT DO NOTHING
        RETURNING 1
      )
      INSERT INTO ${rollup} (width, bucket, severity, type, count)
      SELECT * FROM unnest(${deltas.map((d) => String(d.width))}::bigint[], ${deltas.map((d) => String(d.bucket))}::bigint[],
                           ${deltas.map((d) => d.severity)}::text[], ${deltas.map((d) => d.type)}::text[],
                           ${deltas.map((d) => String(d.count))}::bigint[])
      WHERE (SELECT count(*) FROM inserted) = ${n}
      ORDER BY 1, 2, 3, 4
      ON CONFLICT (width, bucket, severity, type) DO UPDATE SET count = ${rollupCount} + excluded.count
    `;
  };
  return {
    async write(batch) {
      const query = statement(batch);
      await retryLostConnection(() => query.execute(db), LOST_CONNECTION_ATTEMPTS);
    },
  };
}
