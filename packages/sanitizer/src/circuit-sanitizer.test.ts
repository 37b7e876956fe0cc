import { once } from 'node:events';
import { createServer } from 'node:http';
import type { CircuitTarget, Detection } from '@guard/core';
import { describe, expect, it } from 'vitest';
import { createCircuitSanitizer } from './circuit-sanitizer.js';

/** A tiny real breaker whose half-open probe is a real HTTP request carrying an AbortSignal. */
class TestBreakers implements CircuitTarget {
  readonly states = new Map<string, 'closed' | 'open' | 'half_open'>();
  readonly probes = new Map<string, AbortController>();
  readonly reasons: string[] = [];

  probe(circuit: string, url: string): Promise<unknown> {
    this.states.set(circuit, 'half_open');
    const controller = new AbortController();
    this.probes.set(circuit, controller);
    return fetch(url, { signal: controller.signal });
  }
  reopen(circuit: string, reason: string): boolean {
    if (!this.states.has(circuit)) return false;
    this.probes.get(circuit)?.abort(new Error(reason));
    this.probes.delete(circuit);
    this.states.set(circuit, 'open');
    this.reasons.push(reason);
    return true;
  }
}

function detection(resourceId: string): Detection {
  return { id: 'det_b', component: 'circuit', pattern: 'half_open_orphan', severity: 'critical', resourceId, message: '', details: {}, detectedAt: 0 };
}

describe('createCircuitSanitizer', () => {
  it('aborts a hanging half-open probe (the server sees the request go away) and reopens the breaker', async () => {
    const server = createServer(() => {
      /* never answers: the probe hangs */
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const { port } = server.address() as { port: number };
      const requestSeen = once(server, 'request');
      const breakers = new TestBreakers();
      const probe = breakers.probe('payments', `http://127.0.0.1:${port}/health`);
      const [request] = (await requestSeen) as [import('node:http').IncomingMessage];
      const gone = once(request.socket, 'close');

      const report = await createCircuitSanitizer(breakers).sanitize(detection('payments'), { signal: new AbortController().signal });

      expect(report).toEqual({ outcome: 'success', actions: ['reopen'], details: { circuit: 'payments', reopened: true } });
      await expect(probe).rejects.toThrow(/half-open probe orphaned \(det_b\)/);
      await gone;
      expect(breakers.states.get('payments')).toBe('open');
      await expect(createCircuitSanitizer(breakers).sanitize(detection('unknown'), { signal: new AbortController().signal })).resolves.toMatchObject({
        outcome: 'skipped',
        details: { reopened: false },
      });
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});
