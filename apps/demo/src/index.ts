import { createJsonLogger, envReader } from '@guard/core';
import { demoEnv } from './demo-env.js';
import { startDemo } from './server.js';

const env = envReader(demoEnv());
const logger = createJsonLogger({ level: env.oneOf('LOG_LEVEL', ['debug', 'info', 'warn', 'error'], 'warn') });
const demo = await startDemo({ port: env.number('PORT', 8080, { min: 0, max: 65535, integer: true }), logger });
console.log(`Guard demo on ${demo.url}  (dashboard: ${demo.url}/  metrics: ${demo.url}/metrics)  mode=${demo.guard.chain.mode} db=${demo.database.kind}`);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    logger.warn({ signal }, 'shutting down: draining sanitizations and in-flight work');
    demo.close().then(
      () => process.exit(0),
      (error) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  });
}
