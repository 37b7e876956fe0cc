import type { LoadTestProgress } from '../load-test.js';

/** The part of a stream the printer needs (process.stderr, or a test's collector). */
export interface ProgressStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

const LINE_EVERY_MS = 10_000;
const PHASE_NAMES: Record<LoadTestProgress['phase'], string> = { warmup: 'warm-up', run: 'run', done: 'finished' };

const seconds = (ms: number) => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)}s`;
const megabytes = (bytes: number | null) => (bytes === null ? '' : `  rss ${(bytes / (1024 * 1024)).toFixed(1)} MB`);

function describe(p: LoadTestProgress): string {
  const clock = p.phase === 'done' ? '' : ` ${seconds(p.elapsedMs)}/${seconds(p.phaseDurationMs)}`;
  return `${PHASE_NAMES[p.phase]}${clock}  sent ${p.sent}  ok ${p.succeeded}  failed ${p.failed}${megabytes(p.rssBytes)}`;
}

/**
 * Turns load-test progress into what an operator watching a long run wants: on a TTY one bar redrawn in place; in a
 * log (CI, a pipe) a line when each phase starts and ends and one every 10 s in between, so a 10-minute run is never
 * silent and a log stays short.
 */
export function createProgressPrinter(stream: ProgressStream): (progress: LoadTestProgress) => void {
  const started = performance.now();
  let lastLineAt = -Infinity;
  let barShown = false;
  return (p) => {
    const total = `[${seconds(performance.now() - started).padStart(6)}]`;
    if (stream.isTTY) {
      if (p.phase === 'done') {
        if (barShown) stream.write('\n');
        barShown = false;
        return;
      }
      const width = Math.max(10, Math.min(30, (stream.columns ?? 80) - 80));
      const ratio = p.phaseDurationMs > 0 ? Math.min(1, p.elapsedMs / p.phaseDurationMs) : 1;
      const filled = Math.round(ratio * width);
      stream.write(`\r${total} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${describe(p)}\u001b[K`);
      barShown = true;
      if (p.kind === 'end') {
        stream.write('\n');
        barShown = false;
      }
      return;
    }
    if (p.kind === 'tick' && p.elapsedMs - lastLineAt < LINE_EVERY_MS) return;
    lastLineAt = p.kind === 'end' ? -Infinity : p.elapsedMs;
    const verb = p.phase === 'done' ? '' : p.kind === 'start' ? ' started' : p.kind === 'end' ? ' ended' : '';
    stream.write(`${total}${verb} ${describe(p)}\n`);
  };
}
