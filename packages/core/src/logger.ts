/** Log levels, quietest last. */
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

const LEVEL_VALUES: Record<LogLevel, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };

/** Every log level. */
export const LOG_LEVELS = Object.keys(LEVEL_VALUES) as LogLevel[];

type LogFn = (obj: object, msg?: string) => void;

/**
 * A pino-compatible logger: pass a pino instance, or {@link createJsonLogger}.
 * Packages log nothing unless given one.
 */
export interface Logger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  trace?: LogFn;
  fatal?: LogFn;
  child?(bindings: object): Logger;
}

const noop: LogFn = () => {};

/** The default logger: drops everything. */
export const silentLogger: Logger = { trace: noop, debug: noop, info: noop, warn: noop, error: noop, fatal: noop, child: () => silentLogger };

/** Options for {@link createJsonLogger}. */
export interface JsonLoggerOptions {
  readonly level?: LogLevel;
  /** Where lines go; defaults to `process.stdout`. */
  readonly write?: (line: string) => void;
  /** Fields added to every line. */
  readonly bindings?: Readonly<Record<string, unknown>>;
}

function serializeError(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  const code = (error as { code?: unknown }).code;
  return { type: error.name, message: error.message, stack: error.stack, ...(code === undefined ? {} : { code }) };
}

/**
 * A small JSON-lines logger with pino's shape (`level`, `time`, `msg`, bindings, `err` serialized).
 *
 * @example
 * const logger = createJsonLogger({ level: 'info', bindings: { service: 'api' } });
 * logger.warn({ component: 'websocket' }, 'Parasite detected');
 */
export function createJsonLogger(options: JsonLoggerOptions = {}): Logger {
  const threshold = LEVEL_VALUES[options.level ?? 'info'];
  const write = options.write ?? ((line: string) => process.stdout.write(line));
  const bindings = options.bindings ?? {};
  const at =
    (level: Exclude<LogLevel, 'silent'>): LogFn =>
    (obj, msg) => {
      if (LEVEL_VALUES[level] < threshold) return;
      const record: Record<string, unknown> = { level: LEVEL_VALUES[level], time: Date.now(), ...bindings, ...obj };
      if ('err' in record) record.err = serializeError(record.err);
      if (msg !== undefined) record.msg = msg;
      write(`${JSON.stringify(record)}\n`);
    };
  return {
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    fatal: at('fatal'),
    child: (more) => createJsonLogger({ ...options, bindings: { ...bindings, ...more } }),
  };
}
