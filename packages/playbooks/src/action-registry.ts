import { GuardError } from '@guard/core';
import type { Logger } from '@guard/core';
import type {} from './declarations.js';

/** What an action gets besides its params. */
export interface ActionContext {
  readonly runId: string;
  readonly playbook: string;
  readonly step: string;
  /** The trigger's data. */
  readonly event: Readonly<Record<string, unknown>>;
  /** Aborted on the step's timeout, the run's timeout or engine close. */
  readonly signal: AbortSignal;
  readonly logger: Logger;
  /** Reads a registered probe (what `assess` uses). */
  probe(name: string, params?: Readonly<Record<string, unknown>>): Promise<unknown>;
}

/**
 * Params as the playbook wrote them (YAML scalars, lists and maps), read by name. Typed `any` on purpose: a handler
 * validates what it reads (`params.ts`), and `unknown` would force a cast in every application's handler.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above: YAML params read by name
type Params = Readonly<Record<string, any>>;

/** An action: acts on real objects and returns a JSON-friendly output (kept as `steps.<id>.output`). */
export type ActionHandler = (params: Params, context: ActionContext) => unknown;

/** A probe: reads one value for verification checks and `assess`. */
export type ProbeHandler = (params: Params, context: { readonly signal: AbortSignal }) => unknown;

class NamedRegistry<H extends (...args: never[]) => unknown> {
  readonly #what: string;
  readonly #handlers = new Map<string, H>();

  constructor(what: string) {
    this.#what = what;
  }

  register(name: string, handler: H, options: { replace?: boolean } = {}): this {
    if (typeof name !== 'string' || !/^[a-z][a-z0-9_.]*$/.test(name)) {
      throw new GuardError('INVALID_OPTION', `${this.#what} name must be snake_case, got ${JSON.stringify(name)}`, { details: { field: 'name' } });
    }
    if (typeof handler !== 'function') throw new GuardError('INVALID_OPTION', `${this.#what} "${name}" needs a handler function`, { details: { field: 'handler' } });
    if (this.#handlers.has(name) && !options.replace) {
      throw new GuardError('INVALID_INPUT', `${this.#what} "${name}" is already registered (pass { replace: true } to override)`, { details: { field: 'name', name } });
    }
    this.#handlers.set(name, handler);
    return this;
  }

  has(name: string): boolean {
    return this.#handlers.has(name);
  }

  /** Throws `UNKNOWN_ACTION` for unknown names. */
  get(name: string): H {
    const handler = this.#handlers.get(name);
    if (!handler) throw new GuardError('UNKNOWN_ACTION', `unknown ${this.#what} "${name}"`, { details: { [this.#what]: name } });
    return handler;
  }

  names(): string[] {
    return [...this.#handlers.keys()].sort();
  }
}

/**
 * The actions playbooks may name. Applications extend it with their own.
 *
 * @example
 * const actions = createActionRegistry({ messageBus: bus, components: watchdog });
 * actions.register('flush_cache', async (params) => cache.clear(params.prefix));
 */
export class ActionRegistry extends NamedRegistry<ActionHandler> {
  constructor() {
    super('action');
  }
}

/**
 * The probes verification checks may read.
 *
 * @example
 * const probes = createProbeRegistry({ messageBus: bus });
 * probes.register('queue.depth', () => queue.length);
 */
export class ProbeRegistry extends NamedRegistry<ProbeHandler> {
  constructor() {
    super('probe');
  }
}
