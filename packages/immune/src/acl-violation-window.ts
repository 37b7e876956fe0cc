import type { ImmuneEventInput } from './event.js';
import { clip, fitMeta, num, str } from './event-meta.js';

/**
 * The shape of `@guard/playbooks`' `aclViolation` bus event as the bridge reads it. Declared here by structure,
 * because immune does not depend on playbooks; each field is checked at run time before use.
 */
export interface AclViolationNotice {
  readonly actor: string;
  readonly topic: string;
  readonly control?: boolean;
  readonly bus?: string;
  readonly at?: number;
}

/** Options for {@link createAclViolationWindow}. */
export interface AclViolationWindowOptions {
  /** How long a window stays open after its first violation. */
  readonly windowMs: number;
  /** Most actors counted on their own per window; the rest share one `(other actors)` row. */
  readonly maxActors: number;
  /** Clock (epoch ms). */
  readonly now: () => number;
  /** Receives one `POLICY_VIOLATION` per actor when the window closes. */
  readonly publish: (input: ImmuneEventInput) => void;
}

/** Counts ACL violations per actor; `flush()` closes the window early (before a shutdown, or in tests). */
export interface AclViolationWindow {
  add(violation: AclViolationNotice): void;
  flush(): void;
}

/** One actor's violations in the open window. */
interface AclCount {
  count: number;
  control: number;
  readonly topics: Map<string, number>;
  firstAt: number;
  lastAt: number;
  bus?: string;
}

const MAX_TOPICS_PER_ROW = 20;
const OTHER_ACTORS = '(other actors)';

/**
 * ACL violations aggregated into a window: the first violation opens it (an unref'd timer), and when it closes each
 * actor gets one `POLICY_VIOLATION` with its count, its busiest topics and whether control topics were hit, never
 * one row per violation. Memory is bounded: past `maxActors` actors the rest share one row, and each actor keeps at
 * most a hundred distinct topics.
 *
 * @example
 * const acl = createAclViolationWindow({ windowMs: 10_000, maxActors: 100, now: Date.now, publish });
 * bus.on('aclViolation', (v) => acl.add(v));
 */
export function createAclViolationWindow(options: AclViolationWindowOptions): AclViolationWindow {
  const { windowMs, maxActors, now, publish } = options;
  const counts = new Map<string, AclCount>();
  let timer: NodeJS.Timeout | undefined;
  let windowStart = 0;

  const flush = (): void => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (counts.size === 0) return;
    const windowEnd = now();
    for (const [actor, c] of counts) publish(row(actor, c, windowStart, windowEnd, windowMs));
    counts.clear();
  };

  const add = (v: AclViolationNotice): void => {
    const named = str(v?.actor, 'aclViolation.actor');
    const topic = str(v.topic, 'aclViolation.topic');
    const at = num(v.at) ?? now();
    if (!timer) {
      windowStart = now();
      timer = setTimeout(flush, windowMs);
      timer.unref();
    }
    const actor = counts.has(named) || counts.size < maxActors ? named : OTHER_ACTORS;
    let c = counts.get(actor);
    if (!c) {
      c = { count: 0, control: 0, topics: new Map(), firstAt: at, lastAt: at };
      counts.set(actor, c);
    }
    c.count++;
    if (v.control === true) c.control++;
    c.lastAt = at;
    if (typeof v.bus === 'string') c.bus = v.bus;
    if (c.topics.has(topic) || c.topics.size < MAX_TOPICS_PER_ROW * 5) c.topics.set(topic, (c.topics.get(topic) ?? 0) + 1);
  };

  return { add, flush };
}

/** The immune event of one actor's window. */
function row(actor: string, c: AclCount, windowStart: number, windowEnd: number, windowMs: number): ImmuneEventInput {
  const topics = [...c.topics].sort((a, b) => b[1] - a[1]);
  const shown = topics.slice(0, MAX_TOPICS_PER_ROW);
  const other = actor === OTHER_ACTORS;
  return {
    module: 'message_bus',
    severity: c.control > 0 ? 'CRITICAL' : 'WARNING',
    type: 'POLICY_VIOLATION',
    message:
      `${other ? 'other actors' : `actor ${actor}`}: ${c.count} ACL violation${c.count === 1 ? '' : 's'} in ${Math.round((windowEnd - windowStart) / 1000)} s` +
      `${c.control > 0 ? ` (${c.control} on control topics)` : ''} on ${shown.map(([t]) => t).join(', ')}${topics.length > shown.length ? ', …' : ''}`,
    meta: fitMeta(
      {
        source: 'acl_violations',
        actor: clip(actor, 512),
        count: c.count,
        control_count: c.control,
        topics: Object.fromEntries(shown.map(([t, n]) => [clip(t, 256), n])),
        distinct_topics: topics.length,
        first_at: c.firstAt,
        last_at: c.lastAt,
        window_start: windowStart,
        window_end: windowEnd,
        window_ms: windowMs,
        ...(c.bus ? { bus: clip(c.bus, 256) } : {}),
      },
      ['topics'],
    ),
  };
}
