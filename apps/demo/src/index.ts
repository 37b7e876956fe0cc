import { createJsonLogger, envReader } from '@guard/core';
import { demoEnv } from './demo-env.js';
import { startDemo } from './server.js';

const env = envReader(demoEnv());
const logger = createJsonLogger({ level: env.oneOf('LOG_LEVEL', ['debug', 'info', 'warn', 'error'], 'warn') });
// SIGTERM and SIGINT (Ctrl-C) are the guard's: readiness fails, in-flight work drains, everything closes, exit 0.
const demo = await startDemo({ port: env.number('PORT', 8080, { min: 0, max: 65535, integer: true }), logger, handleSignals: true });
console.log(`Guard demo on ${demo.url}  (dashboard: ${demo.url}/  metrics: ${demo.url}/metrics)  mode=${demo.guard.chain.mode} db=${demo.database.kind}`);
