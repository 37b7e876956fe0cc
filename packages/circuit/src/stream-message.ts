/**
 * A JSON message of the streaming protocol: an object with a string `type`.
 *
 * @example
 * const update: StreamMessage = { type: 'progress_update', taskId: 'job-1', percent: 40 };
 */
export interface StreamMessage {
  readonly type: string;
  readonly taskId?: string;
  readonly [key: string]: unknown;
}

/**
 * Message types that keep a stream open. Any other type (`result`, `complete`, `error`, ...) is terminal: it ends
 * the request, and the server closes the connection (1000) after it.
 *
 * @example
 * if (NON_TERMINAL_TYPES.has(message.type)) keepListening();
 */
export const NON_TERMINAL_TYPES: ReadonlySet<string> = new Set(['ping', 'pong', 'health_check', 'progress_update', 'ack']);

/**
 * True for a message that ends a request (any `type` but ping, pong, health_check, progress_update and ack).
 *
 * @example
 * isTerminalMessage({ type: 'progress_update', percent: 40 }); // false
 * isTerminalMessage({ type: 'result', data: 42 }); // true
 */
export function isTerminalMessage(message: unknown): boolean {
  return isStreamMessage(message) && !NON_TERMINAL_TYPES.has(message.type);
}

/**
 * True for an object with a string `type`.
 *
 * @example
 * isStreamMessage({ type: 'result' }); // true
 * isStreamMessage('result'); // false
 */
export function isStreamMessage(value: unknown): value is StreamMessage {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && typeof (value as { type?: unknown }).type === 'string';
}

/** @internal Parses one frame; undefined when it is not a JSON stream message. */
export function parseStreamMessage(data: unknown): StreamMessage | undefined {
  let text: string;
  if (typeof data === 'string') text = data;
  else if (Buffer.isBuffer(data)) text = data.toString('utf8');
  else if (Array.isArray(data)) text = Buffer.concat(data as Buffer[]).toString('utf8');
  else if (data instanceof ArrayBuffer) text = Buffer.from(data).toString('utf8');
  else return undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    return isStreamMessage(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}
