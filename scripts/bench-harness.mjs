// Shared benchmark harness: subject and baseline run interleaved in one process over several rounds; each round
// times a plain loop (no per-task harness overhead), and ratios are taken per round, then reported as the median
// with its spread (min-max over rounds). Used by every package's `bench/index.mjs`.
import { performance } from 'node:perf_hooks';

/** Median of numbers. */
export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Runs `cases` (name -> run(n): runs n iterations, sync or async) interleaved for `rounds` rounds after a warm-up.
 * Each case is calibrated once so a round of it takes about `roundMs`. Returns { names, ns: { name: number[] } }
 * with ns per iteration per round.
 */
export async function interleave(cases, { rounds = 9, roundMs = 60, warmupMs = 200 } = {}) {
  const names = Object.keys(cases);
  const iterations = {};
  for (const name of names) {
    const run = cases[name];
    let n = 1;
    const warmEnd = performance.now() + warmupMs;
    // grow n until one run takes roundMs/4, warming the JIT on the way
    for (;;) {
      const start = performance.now();
      await run(n);
      const took = performance.now() - start;
      if (took >= roundMs / 4 && performance.now() >= warmEnd) {
        iterations[name] = Math.max(1, Math.round((n * roundMs) / took));
        break;
      }
      if (took < roundMs / 4) n *= 2;
    }
  }
  const ns = Object.fromEntries(names.map((name) => [name, []]));
  for (let round = 0; round < rounds; round++) {
    // rotate the order each round so no case always runs right after another
    for (let k = 0; k < names.length; k++) {
      const name = names[(k + round) % names.length];
      const n = iterations[name];
      const start = performance.now();
      await cases[name](n);
      ns[name].push(((performance.now() - start) * 1e6) / n);
    }
  }
  return { names, ns };
}

/**
 * Per-round ratio of `subject` to `baseline` (optionally both minus `floor`, for overhead ratios),
 * as { median, min, max }.
 */
export function ratio(result, subject, baseline, floor) {
  const values = result.ns[subject].map((s, i) => {
    const b = result.ns[baseline][i];
    const f = floor === undefined ? 0 : result.ns[floor][i];
    return (s - f) / (b - f);
  });
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

/** Per-round overhead (subject minus floor) in ns, as { median, min, max }. */
export function overhead(result, subject, floor) {
  const values = result.ns[subject].map((s, i) => s - result.ns[floor][i]);
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

/** Formats { median, min, max } as `1.23 (1.10-1.40)`. */
export function spread(stat, digits = 2) {
  return `${stat.median.toFixed(digits)} (${stat.min.toFixed(digits)}-${stat.max.toFixed(digits)})`;
}

/** Prints the ns/op median per case and the given ratio rows against their targets; returns true when all pass. */
export function report(title, result, rows) {
  console.log(`\n${title}`);
  for (const name of result.names) {
    const ns = result.ns[name];
    const m = median(ns);
    const digits = m < 100 ? 1 : 0;
    console.log(`  ${name.padEnd(52)} ${m.toFixed(digits).padStart(10)} ns/op  (${Math.min(...ns).toFixed(digits)}-${Math.max(...ns).toFixed(digits)})`);
  }
  let ok = true;
  for (const row of rows) {
    const pass = row.target === undefined ? undefined : row.stat.median <= row.target;
    if (pass === false) ok = false;
    const verdict = pass === undefined ? '' : pass ? `  target <= ${row.target}: ok` : `  target <= ${row.target}: MISSED`;
    console.log(`  ${('ratio ' + row.label).padEnd(52)} ${spread(row.stat).padStart(20)}${verdict}`);
  }
  return ok;
}

/** One line describing the machine's load, printed by every bench so its figures can be judged. */
export async function loadLine() {
  const os = await import('node:os');
  const [one] = os.loadavg();
  return `node ${process.version}, ${os.cpus().length} cpus, load average ${one.toFixed(2)}`;
}
