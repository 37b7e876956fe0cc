import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHAOS_CLI, run, spawnDemo, type DemoProcess } from './test-support.js';

// The chaos CLI as an operator meets it: the real built bin, spawned, against a real demo or none.

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('pnpm chaos (the CLI)', () => {
  let demo: DemoProcess;
  beforeAll(async () => {
    demo = await spawnDemo({ PARASITE_GUARD_MODE: 'full' });
  });
  afterAll(async () => {
    expect(await demo?.stop()).toBe(0);
  });

  it('--help prints usage (scenarios, --url, PORT) and exits 0', async () => {
    const { code, output } = await run([CHAOS_CLI, '--help']);
    expect(code).toBe(0);
    expect(output).toMatch(/^Usage: pnpm chaos <all\|scenario/);
    expect(output).toContain('--url <url>');
    expect(output).toContain('$PORT');
    expect(output).toContain('ws-no-ack');
  });

  it.each([
    [['--bogus'], /^chaos: unknown option '--bogus'; see pnpm chaos --help$/],
    [[], /^chaos: name the scenarios to run \(or all\); see pnpm chaos --help$/],
    [['no-such-fault'], /^chaos: unknown scenario no-such-fault; scenarios: ws-no-ack, .*; see pnpm chaos --help$/],
  ])('%j is one clear line and exit 2', async (args, line) => {
    const { code, output } = await run([CHAOS_CLI, ...args]);
    expect(code).toBe(2);
    expect(output.trim().split('\n')).toEqual([expect.stringMatching(line)]);
  });

  it('says the demo is unreachable (and how to start it) instead of failing every scenario', async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const { code, output } = await run([CHAOS_CLI, 'all', '--url', url]);
    expect(code).toBe(1);
    expect(output.trim()).toBe(`chaos: cannot reach the demo at ${url}; start it with \`pnpm demo\` (or pass --url / set PORT)`);
  });

  it('finds the demo through PORT', async () => {
    const port = new URL(demo.url).port;
    const { code, output } = await run([CHAOS_CLI, 'ws-no-ack'], { PORT: port, GUARD_ADMIN_TOKEN: 'wrong-token' });
    expect(code).toBe(1);
    expect(output.trim()).toBe(`chaos: the demo at http://127.0.0.1:${port} refused the admin token; use the GUARD_ADMIN_TOKEN the demo was started with`);
  });

  it('prints each milestone with its elapsed time while the scenario runs', { timeout: 60_000 }, async () => {
    const { code, output } = await run([CHAOS_CLI, 'ws-no-ack', '--url', demo.url]);
    expect(code, output).toBe(0);
    const progress = output.split('\n').filter((line) => /^ {2}\[\s*\d+\.\ds\] /.test(line));
    expect(progress.map((line) => /\] (\w+)/.exec(line)![1])).toEqual(expect.arrayContaining(['injected', 'detected', 'remediated', 'recovered']));
    const elapsed = progress.map((line) => Number(/\[\s*([\d.]+)s\]/.exec(line)![1]));
    expect(elapsed).toEqual([...elapsed].sort((a, b) => a - b));
    expect(output).toMatch(/^ws-no-ack\s+.*PASS healed$/m);
  });
});
