import { AsyncLocalStorage } from 'node:async_hooks';
import { assertNumberOption, captureSource } from '@guard/core';
import type { CapturedSource, ContextTarget } from '@guard/core';
import type { Finding } from './detector.js';
import { Tracker } from './tracker.js';

/**
 * Options for {@link ContextTracker}.
 *
 * @example
 * new ContextTracker({ maxAgeMs: 60_000, maxDepth: 50 });
 */
export interface ContextTrackerOptions {
  /** A span open longer than this is orphaned (critical). Default 60000. */
  readonly maxAgeMs?: number;
  /** A span nested deeper than this means the context stack is growing (critical). Default 50. */
  readonly maxDepth?: number;
  /** Capture where each span was opened (lazy). Default true. */
  readonly traceSources?: boolean;
}

/**
 * How a span ended.
 *
 * @example
 * span.close('error');
 */
export type SpanStatus = 'ok' | 'error' | (string & {});

/**
 * One open or closed unit of async context.
 *
 * @example
 * const span = contexts.open('job');
 * await span.run(() => work());
 * span.close('ok');
 */
export interface Span {
  readonly id: string;
  readonly name: string;
  readonly parent: Span | undefined;
  readonly depth: number;
  readonly openedAt: number;
  /** Set once closed. */
  readonly status: SpanStatus | undefined;
  /** Runs `fn` with this span as the current context. */
  run<T>(fn: () => T): T;
  /** Closes the span (idempotent; the first status wins). */
  close(status?: SpanStatus): void;
}

class SpanImpl implements Span {
  status: SpanStatus | undefined;
  readonly id: string;
  readonly name: string;
  readonly parent: Span | undefined;
  readonly depth: number;
  readonly openedAt: number;
  readonly source: CapturedSource | undefined;
  readonly #tracker: ContextTracker;
  readonly #storage: AsyncLocalStorage<Span>;

  constructor(tracker: ContextTracker, storage: AsyncLocalStorage<Span>, id: string, name: string, parent: Span | undefined, source: CapturedSource | undefined) {
    this.#tracker = tracker;
    this.#storage = storage;
    this.id = id;
    this.name = name;
    this.parent = parent;
    this.depth = parent ? parent.depth + 1 : 1;
    this.openedAt = Date.now();
    this.source = source;
  }

  run<T>(fn: () => T): T {
    return this.#storage.run(this, fn);
  }

  close(status: SpanStatus = 'ok'): void {
    if (this.status !== undefined) return;
    this.status = status;
    this.#tracker.onClose(this);
  }
}

/**
 * C6: an `AsyncLocalStorage` context tracker. Spans opened and never closed (older than `maxAgeMs`) and
 * context stacks deeper than `maxDepth` are `context_stack_leak` (critical; resource id = span name).
 * `closeOrphans` closes them with an error status.
 *
 * @example
 * const contexts = chain.add(new ContextTracker({ maxAgeMs: 60_000 }));
 * await contexts.run('request', async () => handle(req)); // closed when the promise settles
 */
export class ContextTracker extends Tracker<'context', 'context_stack_leak'> implements ContextTarget {
  readonly maxAgeMs: number;
  readonly maxDepth: number;
  readonly #storage = new AsyncLocalStorage<Span>();
  readonly #open = new Map<string, SpanImpl>();
  readonly #deep = new Set<SpanImpl>();
  #next = 0;

  constructor(options: ContextTrackerOptions = {}) {
    super('context', 'context_stack_leak', options);
    this.maxAgeMs = options.maxAgeMs ?? 60_000;
    this.maxDepth = options.maxDepth ?? 50;
    assertNumberOption('maxAgeMs', this.maxAgeMs, { min: 1 });
    assertNumberOption('maxDepth', this.maxDepth, { min: 1, integer: true });
  }

  /** The span of the current async context, if any. */
  current(): Span | undefined {
    return this.#storage.getStore();
  }

  /**
   * Opens a span as a child of the current one; you close it. Use `span.run(fn)` to make it current.
   *
   * @example
   * const span = contexts.open('job');
   * span.run(() => work()).finally(() => span.close());
   */
  open(name: string): Span {
    this.assertOpen();
    const source = this.traceSources ? captureSource({ skip: ContextTracker.prototype.open, depth: 10 }) : undefined;
    const span = new SpanImpl(this, this.#storage, `ctx_${++this.#next}`, name, this.#storage.getStore(), source);
    this.#open.set(span.id, span);
    if (span.depth > this.maxDepth) {
      this.#deep.add(span);
      if (this.#deep.size === 1) this.trigger();
    }
    return span;
  }

  /** Runs `fn` in a new span closed when it returns or its promise settles (status `error` on a throw). */
  run<T>(name: string, fn: (span: Span) => T): T {
    const span = this.open(name);
    let result: T;
    try {
      result = span.run(() => fn(span));
    } catch (error) {
      span.close('error');
      throw error;
    }
    if (result instanceof Promise) {
      return result.then(
        (value) => {
          span.close('ok');
          return value;
        },
        (error: unknown) => {
          span.close('error');
          throw error;
        },
      ) as T;
    }
    span.close('ok');
    return result;
  }

  /** How many spans are open. */
  get openCount(): number {
    return this.#open.size;
  }

  scan(now: number): Finding[] {
    const orphans = new Map<string, SpanImpl[]>();
    for (const span of this.#open.values()) {
      if (now - span.openedAt <= this.maxAgeMs) break; // insertion order = age order
      let list = orphans.get(span.name);
      if (!list) orphans.set(span.name, (list = []));
      list.push(span);
    }
    const findings: Finding[] = [];
    for (const [name, spans] of orphans) {
      const oldest = spans[0]!;
      findings.push({
        pattern: 'context_stack_leak',
        severity: 'critical',
        resourceId: name,
        message: `${spans.length} '${name}' context(s) open longer than ${this.maxAgeMs} ms`,
        details: { reason: 'orphan', open: spans.length, oldestAgeMs: now - oldest.openedAt, maxAgeMs: this.maxAgeMs },
        source: oldest.source?.frames(),
      });
    }
    if (this.#deep.size > 0) {
      let deepest: SpanImpl | undefined;
      for (const span of this.#deep) if (!deepest || span.depth > deepest.depth) deepest = span;
      findings.push({
        pattern: 'context_stack_leak',
        severity: 'critical',
        resourceId: `depth:${deepest!.name}`,
        message: `context stack depth ${deepest!.depth} exceeds ${this.maxDepth}`,
        details: { reason: 'depth', depth: deepest!.depth, maxDepth: this.maxDepth, deepSpans: this.#deep.size },
        source: deepest!.source?.frames(),
      });
    }
    return findings;
  }

  /** True when `resourceId` names open spans (or `depth:<name>` while spans are too deep): sanitizers route by it. */
  owns(resourceId: string): boolean {
    if (resourceId.startsWith('depth:')) return this.#deep.size > 0;
    for (const span of this.#open.values()) if (span.name === resourceId) return true;
    return false;
  }

  /**
   * Closes the orphans behind a detection with `status`: spans of that name older than `maxAgeMs`, or for
   * a `depth:<name>` detection every span deeper than `maxDepth`. Returns how many.
   */
  closeOrphans(resourceId: string, status: string): number {
    const now = Date.now();
    const victims: SpanImpl[] = [];
    if (resourceId.startsWith('depth:')) victims.push(...this.#deep);
    else for (const span of this.#open.values()) if (span.name === resourceId && now - span.openedAt > this.maxAgeMs) victims.push(span);
    for (const span of victims) span.close(status);
    if (victims.length > 0) this.trigger();
    return victims.length;
  }

  /** `close()` stops accepting new spans; open spans stay as they are. */
  protected stopTracking(): void {}

  /** @internal */
  onClose(span: SpanImpl): void {
    this.#open.delete(span.id);
    this.#deep.delete(span);
  }
}
