import { GuardBus, waitUntil } from '@guard/core';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { EventEmitter } from 'node:events';
import { BatchWriter } from './batch-writer.js';
import { ContextTracker } from './context-tracker.js';
import type { Detector } from './detector.js';
import { EventBusTracker } from './event-bus-tracker.js';
import { HalfOpenDetector } from './half-open-detector.js';
import { HandleTracker } from './handle-tracker.js';
import { ManualDetector } from './manual-detector.js';
import { wsTestServer } from './ws-test-server.js';
import { trackDialect } from './track-dialect.js';
import { WebSocketTracker } from './websocket-tracker.js';

/*
 * One fault injector per detector, for the contract suite (detector-contract.test.ts): each puts a real fault into
 * a real resource (a ws peer that never acks, a transaction never finished, listeners piling up...) and takes it out
 * the way its owner would. Test support only: not exported from the package.
 */

/** A detector and the fault it must report. */
export interface DetectorFixture extends AsyncDisposable {
  readonly detector: Detector;
  /** Puts the fault in; resolves with the time a scan must report it at. */
  inject(): Promise<number>;
  /** Takes the fault out the way its owner would; resolves with the time a scan must no longer report it at. */
  clear(): Promise<number>;
}

/** A named fixture factory: the suite builds a fresh fixture per test. */
export type FixtureFactory = readonly [name: string, make: () => Promise<DetectorFixture>];

const ACK_TIMEOUT_MS = 1_000;
const LEAK_MS = 1_000;

async function webSocket(): Promise<DetectorFixture> {
  const fx = await wsTestServer();
  const detector = new WebSocketTracker(fx.wss, { pingIntervalMs: 0, ackTimeoutMs: ACK_TIMEOUT_MS });
  let peer: Awaited<ReturnType<typeof fx.connect>> | undefined;
  let messageId = '';
  return {
    detector,
    async inject() {
      peer = await fx.connect(); // a peer that reads and never acks
      messageId = detector.send(peer.server, { type: 'price' });
      return Date.now() + ACK_TIMEOUT_MS + 1;
    },
    async clear() {
      const id = detector.connectionId(peer!.server)!;
      peer!.client.send(JSON.stringify({ type: 'ack', id: messageId }));
      await waitUntil(() => detector.pendingCount(id) === 0);
      return Date.now() + ACK_TIMEOUT_MS + 1;
    },
    async [Symbol.asyncDispose]() {
      await detector.close();
      await fx[Symbol.asyncDispose]();
    },
  };
}

async function eventBus(): Promise<DetectorFixture> {
  const detector = new EventBusTracker({ leakThreshold: 3 });
  const emitter = new EventEmitter();
  detector.track(emitter, { name: 'contract' });
  const listeners = Array.from({ length: 4 }, () => () => {});
  return {
    detector,
    async inject() {
      for (const listener of listeners) emitter.on('order', listener);
      return Date.now();
    },
    async clear() {
      for (const listener of listeners) emitter.off('order', listener);
      return Date.now();
    },
    [Symbol.asyncDispose]: () => detector.close(),
  };
}

async function sqlitePool(): Promise<DetectorFixture> {
  const dialect = trackDialect(new SqliteDialect({ database: new Database(':memory:') }), { leakThresholdMs: LEAK_MS });
  const db = new Kysely<Record<string, never>>({ dialect });
  let transaction: Awaited<ReturnType<ReturnType<typeof db.startTransaction>['execute']>> | undefined;
  return {
    detector: dialect.tracker,
    async inject() {
      transaction = await db.startTransaction().execute(); // a checkout held open
      return Date.now() + LEAK_MS + 1;
    },
    async clear() {
      await transaction!.commit().execute();
      return Date.now() + LEAK_MS + 1;
    },
    async [Symbol.asyncDispose]() {
      await db.destroy();
    },
  };
}

async function halfOpen(): Promise<DetectorFixture> {
  const bus = new GuardBus();
  const detector = new HalfOpenDetector({ bus, probeTimeoutMs: LEAK_MS });
  return {
    detector,
    async inject() {
      const at = Date.now();
      bus.emit('breakerStateChange', { circuit: 'payments', from: 'open', to: 'half_open', at });
      return at + LEAK_MS + 1;
    },
    async clear() {
      const at = Date.now();
      bus.emit('breakerStateChange', { circuit: 'payments', from: 'half_open', to: 'closed', at });
      return at + LEAK_MS + 1;
    },
    [Symbol.asyncDispose]: () => detector.close(),
  };
}

/** Items buffered past 2 x maxAgeMs (the age flush is an hour away, so only the test's clock makes them old). */
async function batchBacklog(): Promise<DetectorFixture> {
  const db = new Kysely<Record<string, never>>({ dialect: new SqliteDialect({ database: new Database(':memory:') }) });
  const written: unknown[] = [];
  const maxAgeMs = 3_600_000;
  const detector = new BatchWriter({ db, maxAgeMs, write: async (items) => void written.push(...items) });
  return {
    detector,
    async inject() {
      detector.add({ n: 1 });
      return Date.now() + 2 * maxAgeMs + 1;
    },
    async clear() {
      await detector.flush();
      return Date.now() + 2 * maxAgeMs + 1;
    },
    async [Symbol.asyncDispose]() {
      await detector.close();
      await db.destroy();
    },
  };
}

/** A flush whose sink fails (dead-lettered into SQLite), cleared by the next clean flush. */
async function batchFailedFlush(): Promise<DetectorFixture> {
  const db = new Kysely<Record<string, never>>({ dialect: new SqliteDialect({ database: new Database(':memory:') }) });
  let failing = false;
  const detector = new BatchWriter({
    db,
    retries: 0,
    write: async () => {
      if (failing) throw new Error('sink down');
    },
  });
  await detector.ensureSchema();
  return {
    detector,
    async inject() {
      failing = true;
      detector.add({ n: 1 });
      await detector.flush();
      return Date.now();
    },
    async clear() {
      failing = false;
      detector.add({ n: 2 });
      await detector.flush();
      return Date.now();
    },
    async [Symbol.asyncDispose]() {
      await detector.close();
      await db.destroy();
    },
  };
}

async function context(): Promise<DetectorFixture> {
  const detector = new ContextTracker({ maxAgeMs: LEAK_MS });
  let span: ReturnType<ContextTracker['open']> | undefined;
  return {
    detector,
    async inject() {
      span = detector.open('job'); // opened, never closed
      return Date.now() + LEAK_MS + 1;
    },
    async clear() {
      span!.close();
      return Date.now() + LEAK_MS + 1;
    },
    [Symbol.asyncDispose]: () => detector.close(),
  };
}

/** Real timers of this process, read through `process.getActiveResourcesInfo()`. */
async function handles(): Promise<DetectorFixture> {
  const growthThreshold = 5;
  const detector = new HandleTracker({ growthThreshold });
  const timers: NodeJS.Timeout[] = [];
  const stop = (): void => {
    for (const timer of timers.splice(0)) clearInterval(timer);
  };
  return {
    detector,
    async inject() {
      for (let i = 0; i < growthThreshold; i++) timers.push(setInterval(() => {}, 3_600_000));
      return Date.now() + 1;
    },
    async clear() {
      stop();
      return Date.now() + 2;
    },
    [Symbol.asyncDispose]: async () => stop(),
  };
}

/** The `./testing` fake: its fault is whatever it is told to report. */
async function manual(): Promise<DetectorFixture> {
  const detector = new ManualDetector({ component: 'websocket', pattern: 'no_ack' });
  return {
    detector,
    async inject() {
      detector.report({ resourceId: 'ws_fake' });
      return Date.now();
    },
    async clear() {
      detector.clear('ws_fake');
      return Date.now();
    },
    [Symbol.asyncDispose]: () => detector.close(),
  };
}

/** Every detector of the package and the `./testing` fake, each with its fault. */
export const DETECTOR_FIXTURES: readonly FixtureFactory[] = [
  ['WebSocketTracker (real ws on port 0)', webSocket],
  ['EventBusTracker (real EventEmitter)', eventBus],
  ['DbPoolTracker (trackDialect, real SQLite)', sqlitePool],
  ['HalfOpenDetector (real GuardBus)', halfOpen],
  ['BatchWriter backlog (real SQLite)', batchBacklog],
  ['BatchWriter failed flush (real SQLite dead letters)', batchFailedFlush],
  ['ContextTracker (real AsyncLocalStorage)', context],
  ['HandleTracker (real process handles)', handles],
  ['ManualDetector (./testing fake)', manual],
];
