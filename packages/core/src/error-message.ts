/**
 * A readable one-line message for anything thrown: an `Error`'s message (its name when the message is empty), a
 * string as is, an object's `message` string, else `String(value)`. Never throws.
 *
 * @example
 * catch (error) { logger.warn({ err: error }, `flush failed: ${errorMessage(error)}`); }
 */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  if (typeof error === 'string') return error;
  if (typeof error === 'object' && error !== null) {
    const message = (error as { message?: unknown }).message;
    if (typeof message === 'string') return message;
  }
  try {
    return String(error);
  } catch {
    // e.g. Object.create(null): no toString to call
    return Object.prototype.toString.call(error);
  }
}
