import type { FastifyInstance, FastifyPluginAsync, HTTPMethods } from 'fastify';
import fp from 'fastify-plugin';
import { createGuard } from './create-guard.js';
import type { Guard } from './guard.js';
import type { GuardOptions } from './guard-options.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The guard registered by `@guard/node/fastify`. */
    guard: Guard;
  }
}

/**
 * Options of the Fastify plugin: a guard you built, or the options to build one (then the plugin owns it
 * and closes it with Fastify).
 *
 * @example
 * await app.register(guardPlugin, { wss, routes: [{ prefix: '/orders', component: 'db' }] });
 */
export type GuardFastifyOptions = { readonly guard: Guard } | GuardOptions;

const READ: HTTPMethods[] = ['GET', 'HEAD'];
const ALL: HTTPMethods[] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

const plugin: FastifyPluginAsync<GuardFastifyOptions> = async (fastify, options) => {
  const owned = !('guard' in options && options.guard);
  const guard = owned ? await createGuard(options as GuardOptions) : (options as { guard: Guard }).guard;
  fastify.decorate('guard', guard);
  guard.attach(fastify.server);

  // Shedding and the parasite rule run first, before parsing and routing, like @fastify/under-pressure.
  fastify.addHook('onRequest', (request, reply, done) => {
    // Guard's own routes are never shed: probes and /metrics must answer while the app is under pressure.
    if ((request.routeOptions.config as { guardEndpoint?: boolean } | undefined)?.guardEndpoint) return done();
    const rejection = guard.admit(request.raw, reply.raw);
    if (!rejection) return done();
    void reply.code(rejection.problem.status).headers(rejection.headers).type('application/problem+json; charset=utf-8').send({ type: 'about:blank', ...rejection.problem });
  });
  // fastify.close() shuts an owned guard down; a guard shutdown (e.g. SIGTERM) closes Fastify after draining, so
  // the app's own onClose hooks (database plugins, ...) run too. Each side skips the call when the other started.
  let fastifyClosing = false;
  fastify.addHook('preClose', (done) => {
    fastifyClosing = true;
    done();
  });
  fastify.addHook('onClose', async () => {
    if (owned && !guard.shuttingDown) await guard.shutdown();
  });
  guard.onShutdown(() => (fastifyClosing ? undefined : fastify.close()));

  // Guard's routes live in Fastify's router, in an encapsulated child whose one content-type parser leaves the
  // body unread: Guard's handlers read it themselves, with their own limits and problem+json errors.
  await fastify.register(async (child: FastifyInstance) => {
    child.removeAllContentTypeParsers();
    child.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));
    const serve = (request: { raw: import('node:http').IncomingMessage }, reply: { hijack(): void; raw: import('node:http').ServerResponse }) => {
      reply.hijack();
      guard.handler(request.raw, reply.raw);
    };
    const paths = guard.endpoints;
    const config = { guardEndpoint: true };
    for (const key of ['metrics', 'livez', 'readyz'] as const) {
      const path = paths[key];
      if (path) child.route({ method: READ, url: path, handler: serve, config });
    }
    if (paths.mode) child.route({ method: [...READ, 'POST'], url: paths.mode, handler: serve, config });
    for (const key of ['selfCheck', 'immune'] as const) {
      const path = paths[key];
      if (!path) continue;
      child.route({ method: ALL, url: path, handler: serve, config });
      child.route({ method: ALL, url: `${path}/*`, handler: serve, config });
    }
  });
};

/**
 * The Guard as a Fastify 5 plugin (wrapped with `fastify-plugin`, so `fastify.guard` and the `onRequest`
 * shedding hook apply to the whole app): Guard's endpoints are routes in Fastify's router, graceful shutdown
 * drains `fastify.server`, and a guard the plugin built closes with `fastify.close()`.
 *
 * @example
 * import Fastify from 'fastify';
 * import { guardPlugin } from '@guard/node/fastify';
 * const app = Fastify();
 * await app.register(guardPlugin, { handleSignals: true });
 * await app.listen({ port: 3000 });
 */
export const guardPlugin = fp(plugin, { fastify: '5.x', name: '@guard/node' });
