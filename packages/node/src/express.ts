import { Router } from 'express';
import type { Guard } from './guard.js';

/**
 * The Guard as an Express 5 `Router`: Guard's endpoints, then load shedding and the parasite rule for every other
 * request; what passes goes on to your routes. Works before or after `express.json()`.
 *
 * @example
 * import express from 'express';
 * import { createGuard } from '@guard/node';
 * import { guardRouter } from '@guard/node/express';
 * const guard = await createGuard({ handleSignals: true });
 * const app = express();
 * app.use(express.json(), guardRouter(guard));
 * guard.attach(app.listen(3000));
 */
export function guardRouter(guard: Guard): Router {
  const router = Router();
  // Endpoints first: probes and /metrics must answer while the app sheds load.
  router.use((req, res, next) => guard.handler(req, res, next));
  router.use((req, res, next) => guard.middleware(req, res, next));
  return router;
}
