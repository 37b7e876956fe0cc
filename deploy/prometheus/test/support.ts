import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The rules file under test, its promtool unit tests and its runbook. */
export const RULES_FILE = fileURLToPath(new URL('../guard.rules.yml', import.meta.url));
export const RULE_TESTS_DIR = fileURLToPath(new URL('../tests/', import.meta.url));
export const RUNBOOK = fileURLToPath(new URL('../README.md', import.meta.url));
/** Where the alerts' `runbook_url` annotations point: the runbook on the project's repository (package.json `repository`). */
export const RUNBOOK_URL = 'https://github.com/guard-runtime/guard/blob/main/deploy/prometheus/README.md';

/** The built demo (tests run after `pnpm build`). */
export const DEMO_ENTRY = fileURLToPath(new URL('../../../apps/demo/dist/index.js', import.meta.url));

/**
 * Where Debian's `prometheus` package puts a binary, or undefined when it is not installed. The tests skip (saying so)
 * only then; `.ci/run` installs the package when `promtool` is missing.
 */
export function findBinary(name: 'promtool' | 'prometheus'): string | undefined {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  const path = found.stdout.trim();
  return found.status === 0 && path ? path : undefined;
}

export const MISSING_PROMETHEUS =
  "Debian's `prometheus` package is not installed (no promtool/prometheus on PATH): these checks are skipped. " +
  'Install it with `apt-get install prometheus`; .ci/run does so.';

/** Runs a command to completion; exit code and stdout+stderr. */
export async function run(command: string, args: readonly string[], input?: string): Promise<{ code: number | null; output: string }> {
  const child = spawn(command, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  if (input !== undefined) child.stdin!.end(input);
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, output };
}

/** A child process the test owns: its output so far, and a stop that waits for the exit. */
export interface OwnedProcess extends AsyncDisposable {
  readonly child: ChildProcess;
  output(): string;
  stop(): Promise<number | null>;
}

function own(child: ChildProcess, cleanup: () => void): OwnedProcess {
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  let stopping: Promise<number | null> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const code = await exited;
      cleanup();
      return code;
    })());
  return { child, output: () => out, stop, [Symbol.asyncDispose]: async () => void (await stop()) };
}

/** Thrown by a `waitFor` probe when waiting longer cannot help (the process it waits on exited). */
export class GiveUp extends Error {}

/**
 * Waits until `probe` returns a value (polling every `everyMs`), or throws with `what` after `timeoutMs`. Other errors
 * of the probe are retried (a server not listening yet); a `GiveUp` ends the wait at once.
 */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs: number, everyMs = 500): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      if (error instanceof GiveUp) throw error;
      lastError = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${(lastError as Error).message})` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** A demo child process in `full` mode on a free port with its own data folder and admin token. */
export interface Demo extends OwnedProcess {
  readonly url: string;
  readonly host: string;
  readonly token: string;
}

export async function startDemo(env: Record<string, string> = {}): Promise<Demo> {
  const dataDir = mkdtempSync(join(tmpdir(), 'guard-prom-demo-'));
  const token = `prom-test-${process.pid}`;
  const child = spawn(process.execPath, [DEMO_ENTRY], {
    env: { ...process.env, PORT: '0', LOG_LEVEL: 'error', PARASITE_GUARD_MODE: 'full', GUARD_DATA_DIR: dataDir, GUARD_ADMIN_TOKEN: token, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const owned = own(child, () => rmSync(dataDir, { recursive: true, force: true }));
  try {
    const url = await waitFor(
      'the demo to print its URL',
      () => {
        if (child.exitCode !== null) throw new GiveUp(`demo exited with ${child.exitCode}: ${owned.output()}`);
        return /Guard demo on (http:\/\/[\d.]+:\d+)/.exec(owned.output())?.[1];
      },
      60_000,
      100,
    );
    return { ...owned, url, host: new URL(url).host, token };
  } catch (error) {
    await owned.stop();
    throw error;
  }
}

/** A port nothing listens on right now (Prometheus needs one on its command line). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

/** A Prometheus on loopback with a temp data dir, scraping `target` every second and evaluating `rulesFile` every second. */
export interface Prometheus extends OwnedProcess {
  readonly url: string;
  /** GET `/api/v1/<path>`; throws on a non-success answer. */
  api<T>(path: string): Promise<T>;
}

export async function startPrometheus(binary: string, target: string, rulesFile: string): Promise<Prometheus> {
  const dir = mkdtempSync(join(tmpdir(), 'guard-prometheus-'));
  const config = join(dir, 'prometheus.yml');
  writeFileSync(
    config,
    [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      '  evaluation_interval: 1s',
      'rule_files:',
      `  - ${JSON.stringify(rulesFile)}`,
      'scrape_configs:',
      '  - job_name: guard-demo',
      '    static_configs:',
      `      - targets: [${JSON.stringify(target)}]`,
      '',
    ].join('\n'),
  );
  // The port is free when picked, but another process may take it first: try a few.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const child = spawn(
      binary,
      [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const owned = own(child, () => rmSync(dir, { recursive: true, force: true }));
    const url = `http://127.0.0.1:${port}`;
    try {
      await waitFor(
        'Prometheus to be ready',
        async () => {
          if (child.exitCode !== null) throw new GiveUp(`prometheus exited with ${child.exitCode}: ${owned.output()}`);
          return (await fetch(`${url}/-/ready`)).ok ? true : undefined;
        },
        60_000,
        200,
      );
    } catch (error) {
      if (child.exitCode !== null && attempt < 3 && /address already in use/.test(owned.output())) continue;
      await owned.stop();
      throw error;
    }
    const api = async <T>(path: string): Promise<T> => {
      const res = await fetch(`${url}/api/v1/${path}`);
      const body = (await res.json()) as { status: string; data: T; error?: string };
      if (body.status !== 'success') throw new Error(`prometheus ${path}: ${body.error ?? res.status}`);
      return body.data;
    };
    return { ...owned, url, api };
  }
}

/** One entry of `/api/v1/alerts`. */
export interface PrometheusAlert {
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly state: 'pending' | 'firing';
  readonly activeAt: string;
  readonly value: string;
}
