import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The built demo entry and chaos CLI (tests run after `pnpm build`). */
export const DEMO_ENTRY = fileURLToPath(new URL('../dist/index.js', import.meta.url));
export const CHAOS_CLI = fileURLToPath(new URL('../dist/chaos.js', import.meta.url));

/** The admin token the spawned demos and the chaos CLI runs share (lab endpoints are off without one). */
export const ADMIN_TOKEN = 'test-admin-token';

/** A demo started as a real child process on a free port with its own data folder. */
export interface DemoProcess extends AsyncDisposable {
  readonly url: string;
  readonly child: ChildProcess;
  readonly dataDir: string;
  output(): string;
  stop(): Promise<number | null>;
}

/** Spawns the built demo with `env` and waits for its URL. */
export async function spawnDemo(env: Record<string, string> = {}): Promise<DemoProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), 'guard-demo-'));
  const child = spawn(process.execPath, [DEMO_ENTRY], {
    env: { ...process.env, PORT: '0', LOG_LEVEL: 'error', GUARD_DATA_DIR: dataDir, GUARD_ADMIN_TOKEN: ADMIN_TOKEN, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const url = await new Promise<string>((resolve, reject) => {
    const onData = () => {
      const match = /on (http:\/\/[\d.:]+)/.exec(out);
      if (match) resolve(match[1]!);
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`demo exited early with ${code}: ${out}`)));
  });
  const stop = async () => {
    if (child.exitCode !== null) return child.exitCode;
    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number | null];
    rmSync(dataDir, { recursive: true, force: true });
    return code;
  };
  return { url, child, dataDir, output: () => out, stop, [Symbol.asyncDispose]: async () => void (await stop()) };
}

/** Runs a command to completion and returns its exit code and output. */
export async function run(args: readonly string[], env: Record<string, string> = {}): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, args, { env: { ...process.env, GUARD_ADMIN_TOKEN: ADMIN_TOKEN, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, output };
}
