import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

// Ctrl-C in a terminal signals the whole foreground process group: pnpm and the demo both get SIGINT, and pnpm
// forwards one more to its child. The demo must drain, close and exit 0, so pnpm prints no ELIFECYCLE error.
it('Ctrl-C on `pnpm start` shuts the demo down gracefully and quietly, exit 0', { timeout: 60_000 }, async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'guard-demo-ctrl-c-'));
  const child = spawn('pnpm', ['--silent', 'start'], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    env: { ...process.env, PORT: '0', LOG_LEVEL: 'error', GUARD_DATA_DIR: dataDir },
    detached: true, // its own process group, like a terminal's foreground job
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  try {
    while (!output.includes('Guard demo on')) {
      if (child.exitCode !== null) throw new Error(`the demo exited early: ${output}`);
      await once(child.stdout, 'data');
    }
    process.kill(-child.pid!, 'SIGINT');
    const [code] = (await once(child, 'exit')) as [number | null];
    expect({ code, output }).toEqual({ code: 0, output: expect.stringContaining('Guard demo on') });
    expect(output).not.toMatch(/ELIFECYCLE|ERR_PNPM|Command failed/);
  } finally {
    if (child.exitCode === null) process.kill(-child.pid!, 'SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  }
});
