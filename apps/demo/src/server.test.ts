import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { startDemo } from './server.js';

describe('demo server', () => {
  it('serves metrics with default process metrics, and probes', async () => {
    await using demo = await startDemo({ port: 0, host: '127.0.0.1' });
    const metrics = await fetch(`${demo.url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('process_cpu_seconds_total');
    expect((await fetch(`${demo.url}/livez`)).status).toBe(200);
    expect((await fetch(`${demo.url}/readyz`)).status).toBe(200);
    const missing = await fetch(`${demo.url}/nope`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toContain('application/problem+json');
  });

  it('the built entry starts on PORT and exits 0 on SIGTERM', async () => {
    const entry = fileURLToPath(new URL('../dist/index.js', import.meta.url));
    const child = spawn(process.execPath, [entry], { env: { ...process.env, PORT: '0', LOG_LEVEL: 'error' }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (chunk: string) => {
        out += chunk;
        const match = /on (http:\/\/[\d.:]+)/.exec(out);
        if (match) resolve(match[1]!);
      });
      child.once('exit', (code) => reject(new Error(`exited early with ${code}: ${out}`)));
    });
    expect((await fetch(`${url}/livez`)).status).toBe(200);
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
  });
});
