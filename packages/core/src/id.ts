import { randomUUID } from 'node:crypto';

/**
 * A unique id with a readable prefix, for detections, runs and events.
 *
 * @example
 * createId('det'); // 'det_3b241101-e2bb-4255-8caf-4136c566a962'
 */
export function createId(prefix: string): string {
  return `${prefix}_${randomUUID()}`;
}
