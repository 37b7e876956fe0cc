#!/usr/bin/env node
// Runs the Chaos Safeguards stress scenarios and prints their timelines.
// A scenario passes only when detection, the guard's healing action and recovery each happened.
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';

const USAGE = `Usage: guard-chaos-scenarios [S01] [S02] [S03] [--json]

Runs the Chaos Safeguards stress scenarios in this process (no demo needed) and prints each one's timeline:
injected, detected, remediated, recovered. Default: all three.

  S01  heartbeat pause: the watchdog restarts the silent component
  S02  ACL spam: the playbook blacklists the attackers, the legitimate publisher keeps publishing
  S03  CPU spike: the playbook kills the runaway and scales the workers down (about 20 s)

Options:
  --json       print the timelines as JSON on stdout (progress goes to stderr)
  -h, --help   show this help

Environment: GUARD_S02_ATTACKERS (2), GUARD_S03_RUNAWAYS (2), GUARD_S03_WORKERS (3), GUARD_S03_SUSTAIN_MS (10000),
GUARD_S03_CPU_SOURCE (service | demand | process | system | max; default service).

Exit code: 0 every scenario passed, 1 one missed a target, 2 bad usage.`;

const usageError = (message) => {
  console.error(`guard-chaos-scenarios: ${message}; see guard-chaos-scenarios --help`);
  process.exit(2);
};

let parsed;
try {
  parsed = parseArgs({ allowPositionals: true, strict: true, options: { json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } } });
} catch (error) {
  usageError(error.message.split('. ')[0].replace(/^Unknown option/, 'unknown option'));
}
const { values, positionals } = parsed;
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const unknown = positionals.filter((a) => !/^S0[1-3]$/i.test(a));
if (unknown.length > 0) usageError(`unknown scenario ${unknown.join(', ')} (S01, S02 or S03)`);
const wanted = positionals.map((a) => a.toUpperCase());
const selected = wanted.length > 0 ? [...new Set(wanted)] : ['S01', 'S02', 'S03'];

const num = (name, fallback) => {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) usageError(`${name}=${raw} is invalid: expected a positive number`);
  return n;
};
const cpuSource = () => {
  const raw = process.env.GUARD_S03_CPU_SOURCE || 'service';
  if (!['service', 'demand', 'process', 'system', 'max'].includes(raw)) usageError(`GUARD_S03_CPU_SOURCE=${raw} is invalid: expected service, demand, process, system or max`);
  return raw;
};
const options = {
  S02: { attackers: num('GUARD_S02_ATTACKERS', 2) },
  S03: { runaways: num('GUARD_S03_RUNAWAYS', 2), workers: num('GUARD_S03_WORKERS', 3), sustainMs: num('GUARD_S03_SUSTAIN_MS', 10_000), cpuSource: cpuSource() },
};

const dist = new URL('../dist/scenarios.js', import.meta.url);
if (!existsSync(dist)) {
  console.error('guard-chaos-scenarios: @guard/playbooks is not built yet; run `pnpm --filter @guard/playbooks build`');
  process.exit(1);
}
const { formatTimelines, runS01, runS02, runS03 } = await import(dist.href);
const runners = { S01: () => runS01(), S02: () => runS02(options.S02), S03: () => runS03(options.S03) };

// Progress for people: a line when each scenario starts and ends, and one every 5 s while it runs.
const progress = values.json ? (line) => process.stderr.write(`${line}\n`) : (line) => process.stdout.write(`${line}\n`);
const started = performance.now();
const stamp = () => `[${((performance.now() - started) / 1000).toFixed(1).padStart(5)}s]`;
const timelines = [];
for (const id of selected) {
  const t0 = performance.now();
  progress(`${stamp()} ${id} started`);
  const ticker = setInterval(() => progress(`${stamp()} ${id} running for ${((performance.now() - t0) / 1000).toFixed(0)} s`), 5_000);
  try {
    const timeline = await runners[id]();
    timelines.push(timeline);
    progress(`${stamp()} ${id} ${timeline.passed ? 'passed' : 'missed a target'} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  } finally {
    clearInterval(ticker);
  }
}
if (values.json) console.log(JSON.stringify(timelines, null, 2));
else {
  console.log(`\n${formatTimelines(timelines)}\n`);
  for (const t of timelines) console.log(`${t.scenario} details: ${JSON.stringify(t.details)}`);
}
process.exitCode = timelines.every((t) => t.passed) ? 0 : 1;
