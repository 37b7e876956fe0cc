import { fileURLToPath } from 'node:url';

/** Options for {@link captureSource}. */
export interface SourceOptions {
  /** Frames at and above this function are left out (as `Error.captureStackTrace`). */
  readonly skip?: (...args: never[]) => unknown;
  /** Most frames kept after filtering. Default 5. */
  readonly limit?: number;
  /** Frames V8 captures before filtering (cost grows with it). Default 10. */
  readonly depth?: number;
  /** Extra patterns of files to leave out, e.g. a wrapper library's own folder. */
  readonly ignore?: readonly (string | RegExp)[];
  /**
   * Turn the stack into text now instead of on first read. Until V8 formats a captured stack, it keeps every
   * frame's receiver (`this`) and function alive, so a lazy capture made inside a constructor holds the new
   * object forever. Set it when the caller tracks an object by `WeakRef` (an owner). Costs one formatting
   * (about as much as the capture itself); parsing into frames stays lazy. Default false.
   */
  readonly eager?: boolean;
}

const FRAME = /^\s*at (?:.*? \()?(.+?):(\d+):(\d+)\)?$/;

function isInternal(file: string): boolean {
  return file.startsWith('node:') || file.startsWith('internal/') || file.includes('/node_modules/') || file.includes('\\node_modules\\') || !file.includes('/') && !file.includes('\\');
}

/**
 * Turns a V8 stack into `file:line:column` frames of user code: node_modules, `node:` internals and
 * native frames are removed, `file://` URLs become paths.
 *
 * @example
 * parseStackFrames(new Error().stack ?? ''); // ['/app/src/server.ts:42:7', ...]
 */
export function parseStackFrames(stack: string, options: Pick<SourceOptions, 'limit' | 'ignore'> = {}): string[] {
  const limit = options.limit ?? 5;
  const ignore = options.ignore ?? [];
  return parseFrames(stack, limit, ignore);
}

function parseFrames(stack: string, limit: number, ignore: readonly (string | RegExp)[]): string[] {
  const frames: string[] = [];
  for (const line of stack.split('\n')) {
    const match = FRAME.exec(line);
    if (!match) continue;
    let file = match[1]!;
    if (file.startsWith('async ')) file = file.slice(6);
    if (file.startsWith('file://')) file = fileURLToPath(file);
    if (isInternal(file)) continue;
    if (ignore.some((pattern) => (typeof pattern === 'string' ? file.includes(pattern) : pattern.test(file)))) continue;
    frames.push(`${file}:${match[2]}:${match[3]}`);
    if (frames.length >= limit) break;
  }
  return frames;
}

/**
 * A stack captured now and formatted only when read: capturing costs one `captureStackTrace`,
 * formatting happens on the rare path (a detection).
 */
export class CapturedSource {
  readonly #holder: { stack?: string };
  readonly #options: SourceOptions;
  #frames?: readonly string[];

  constructor(holder: { stack?: string }, options: SourceOptions) {
    this.#holder = holder;
    this.#options = options;
  }

  /** The filtered `file:line:column` frames, computed once. */
  frames(): readonly string[] {
    this.#frames ??= parseStackFrames(this.#holder.stack ?? '', this.#options);
    return this.#frames;
  }
}

/**
 * Captures where a resource is being created, to report it if the resource leaks. Pass `eager: true` when the
 * capture may run inside the constructor of an object that must stay collectable (see {@link SourceOptions.eager}).
 *
 * @example
 * const source = captureSource({ skip: trackedAcquire });
 * // later, on a detection:
 * detection.source = source.frames();
 */
export function captureSource(options: SourceOptions = {}): CapturedSource {
  const holder: { stack?: string } = {};
  const previous = Error.stackTraceLimit;
  Error.stackTraceLimit = options.depth ?? 10;
  Error.captureStackTrace(holder, (options.skip ?? captureSource) as (...args: unknown[]) => unknown);
  Error.stackTraceLimit = previous;
  // Reading `stack` formats it and lets V8 drop the structured frames with their receivers.
  if (options.eager) return new CapturedSource({ stack: holder.stack }, options);
  return new CapturedSource(holder, options);
}

/**
 * Which calls of one call site (or any key standing for one: an emitter, a connection) capture a stack, so tracing
 * can stay on: the first `first` calls of a key capture, then each later call with probability 1/`every` (random,
 * so calls that alternate between sites cannot alias with the sampling period). A leaking site repeats, so it shows
 * among the samples; a capture costs microseconds, a skipped one a `Math.random()`.
 *
 * @example
 * if (shouldSampleSource(site.calls++)) site.last = captureSource({ skip: send });
 */
export function shouldSampleSource(count: number, first = SOURCE_SAMPLE_FIRST, every = SOURCE_SAMPLE_EVERY): boolean {
  return count < first || Math.random() * every < 1;
}

/** Default of {@link shouldSampleSource}: calls of a key that always capture. */
export const SOURCE_SAMPLE_FIRST = 16;
/** Default of {@link shouldSampleSource}: after the first ones, one call in this many captures. */
export const SOURCE_SAMPLE_EVERY = 64;

/**
 * A capture function that costs nothing when disabled: it returns `undefined` without touching the stack.
 *
 * @example
 * const capture = createSourceCapture(options.traceSources);
 * const source = capture(); // undefined when tracing is off
 */
export function createSourceCapture(enabled: boolean, options: SourceOptions = {}): () => CapturedSource | undefined {
  if (!enabled) return () => undefined;
  return () => captureSource(options);
}
