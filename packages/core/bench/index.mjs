// Benchmark of @guard/core's hot paths against their bare baselines, interleaved rounds of plain loops
// (scripts/bench-harness.mjs), median ratio with its min-max spread.
// Run: pnpm --filter @guard/core build && pnpm --filter @guard/core bench
import { EventEmitter } from 'eventemitter3';
import { Registry } from 'prom-client';
import { interleave, loadLine, ratio, report } from '../../../scripts/bench-harness.mjs';
import { Emitter, GuardBus, captureSource, counter, createSourceCapture, shouldSampleSource } from '../dist/index.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 9);
const detection = { id: 'd', component: 'websocket', pattern: 'no_ack', severity: 'critical', resourceId: 'r', message: 'm', details: {}, detectedAt: 0 };
let sink = 0;
const listener = () => {
  sink++;
};
console.log(`@guard/core benchmark, ${await loadLine()}, ${ROUNDS} interleaved rounds`);

{
  const plain = new EventEmitter();
  const emitter = new Emitter();
  const bus = new GuardBus();
  for (let i = 0; i < 3; i++) {
    plain.on('detection', listener);
    emitter.on('detection', listener);
    bus.on('detection', listener);
  }
  const result = await interleave(
    {
      'eventemitter3 emit to 3 listeners': (n) => {
        for (let i = 0; i < n; i++) plain.emit('detection', detection);
      },
      'Emitter emit to 3 listeners (isolated)': (n) => {
        for (let i = 0; i < n; i++) emitter.emit('detection', detection);
      },
      'GuardBus emit to 3 listeners (isolated)': (n) => {
        for (let i = 0; i < n; i++) bus.emit('detection', detection);
      },
    },
    { rounds: ROUNDS },
  );
  report('emit, per call', result, [
    { label: 'Emitter / eventemitter3', stat: ratio(result, 'Emitter emit to 3 listeners (isolated)', 'eventemitter3 emit to 3 listeners') },
    { label: 'GuardBus / eventemitter3', stat: ratio(result, 'GuardBus emit to 3 listeners (isolated)', 'eventemitter3 emit to 3 listeners') },
  ]);
}

{
  const off = createSourceCapture(false);
  let calls = 0;
  const result = await interleave(
    {
      'no capture (tracing off)': (n) => {
        for (let i = 0; i < n; i++) sink += off() === undefined ? 1 : 0;
      },
      'new Error() (a plain stack)': (n) => {
        for (let i = 0; i < n; i++) sink += new Error('x').message.length;
      },
      'captureSource() (10 frames)': (n) => {
        for (let i = 0; i < n; i++) sink += captureSource() ? 1 : 0;
      },
      'sampled: shouldSampleSource + captureSource': (n) => {
        for (let i = 0; i < n; i++) sink += shouldSampleSource(calls++) ? (captureSource() ? 1 : 0) : 0;
      },
    },
    { rounds: ROUNDS },
  );
  report('source capture, per call (sampled: after the first 16 of a key, ~1 in 64)', result, [
    { label: 'captureSource / new Error()', stat: ratio(result, 'captureSource() (10 frames)', 'new Error() (a plain stack)') },
    { label: 'sampled / captureSource', stat: ratio(result, 'sampled: shouldSampleSource + captureSource', 'captureSource() (10 frames)') },
  ]);
}

{
  const registry = new Registry();
  const cached = counter(registry, { name: 'bench_calls_total', help: 'h', labelNames: ['outcome'] }).labels('ok');
  const result = await interleave(
    {
      'cached labelled child inc()': (n) => {
        for (let i = 0; i < n; i++) cached.inc();
      },
      'counter() lookup + labels() + inc()': (n) => {
        for (let i = 0; i < n; i++) counter(registry, { name: 'bench_calls_total', help: 'h', labelNames: ['outcome'] }).labels('ok').inc();
      },
    },
    { rounds: ROUNDS },
  );
  report('counter increment, per call', result, [{ label: 'lookup / cached', stat: ratio(result, 'counter() lookup + labels() + inc()', 'cached labelled child inc()') }]);
}
if (sink < 0) console.log(sink);
