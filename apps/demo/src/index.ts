import { createJsonLogger, envReader } from '@guard/core';
import { startDemo } from './server.js';

const env = envReader(process.env);
const logger = createJsonLogger({ level: env.oneOf('LOG_LEVEL', ['debug', 'info', 'warn', 'error'], 'info') });
const demo = await startDemo({ port: env.number('PORT', 8080, { min: 0, max: 65535, integer: true }), logger });
console.log(`Guard demo on ${demo.url}  (metrics: ${demo.url}/metrics)`);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    logger.info({ signal }, 'shutting down');
    demo.close().then(
      () => process.exit(0),
      (error) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  });
}
