#!/usr/bin/env node
// Runs the Chaos Safeguards stress scenarios and prints their timelines.
// Usage: guard-chaos-scenarios [S01] [S02] [S03] [--json]
// Env: GUARD_S03_RUNAWAYS (2), GUARD_S03_WORKERS (3), GUARD_S03_SUSTAIN_MS (10000),
//      GUARD_S03_CPU_SOURCE (service | demand | process | system | max; default service),
//      GUARD_S02_ATTACKERS (2).
// A scenario passes only when detection, the guard's healing action and recovery each happened.
// Exits 1 when any scenario misses a target.
import { formatTimelines, runS01, runS02, runS03 } from '../dist/scenarios.js';

const args = process.argv.slice(2);
const json = args.includes('--json');
const wanted = args.filter((a) => /^S0[1-3]$/i.test(a)).map((a) => a.toUpperCase());
const selected = wanted.length > 0 ? wanted : ['S01', 'S02', 'S03'];
const unknown = args.filter((a) => a !== '--json' && !/^S0[1-3]$/i.test(a));
if (unknown.length > 0) {
  console.error(`unknown argument(s): ${unknown.join(' ')}\nusage: guard-chaos-scenarios [S01] [S02] [S03] [--json]`);
  process.exit(2);
}
const num = (name, fallback) => {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) {
    console.error(`${name}=${raw} is invalid: expected a positive number`);
    process.exit(2);
  }
  return n;
};

const cpuSource = () => {
  const raw = process.env.GUARD_S03_CPU_SOURCE || 'service';
  if (!['service', 'demand', 'process', 'system', 'max'].includes(raw)) {
    console.error(`GUARD_S03_CPU_SOURCE=${raw} is invalid: expected service, demand, process, system or max`);
    process.exit(2);
  }
  return raw;
};

const runners = {
  S01: () => runS01(),
  S02: () => runS02({ attackers: num('GUARD_S02_ATTACKERS', 2) }),
  S03: () =>
    runS03({
      runaways: num('GUARD_S03_RUNAWAYS', 2),
      workers: num('GUARD_S03_WORKERS', 3),
      sustainMs: num('GUARD_S03_SUSTAIN_MS', 10_000),
      cpuSource: cpuSource(),
    }),
};

const timelines = [];
for (const id of selected) {
  if (!json) process.stdout.write(`running ${id}...\n`);
  timelines.push(await runners[id]());
}
if (json) console.log(JSON.stringify(timelines, null, 2));
else {
  console.log(`\n${formatTimelines(timelines)}\n`);
  for (const t of timelines) console.log(`${t.scenario} details: ${JSON.stringify(t.details)}`);
}
process.exitCode = timelines.every((t) => t.passed) ? 0 : 1;
