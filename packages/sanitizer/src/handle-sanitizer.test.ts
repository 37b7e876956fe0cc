import type { Detection } from '@guard/core';
import { describe, expect, it } from 'vitest';
import { createHandleSanitizer, handleTypesOf } from './handle-sanitizer.js';

function detection(details: Record<string, unknown>): Detection {
  return { id: 'det_h', component: 'handles', pattern: 'handle_leak', severity: 'warning', resourceId: 'process', message: '', details, detectedAt: 0 };
}

describe('createHandleSanitizer', () => {
  it('reports the leaking types and touches nothing', async () => {
    const timers = Array.from({ length: 5 }, () => setInterval(() => {}, 60_000));
    try {
      const count = () => process.getActiveResourcesInfo().filter((t) => t === 'Timeout').length;
      const before = count();
      const report = await createHandleSanitizer().sanitize(detection({ growth: { Timeout: 5, TCPSocketWrap: 2 } }), { signal: new AbortController().signal });
      expect(report).toEqual({ outcome: 'skipped', actions: ['report'], details: { types: ['Timeout', 'TCPSocketWrap'], reason: 'no safe automatic fix for handle leaks' } });
      expect(count()).toBe(before);
    } finally {
      for (const timer of timers) clearInterval(timer);
    }
  });

  it('reads the types from details.types as a list or a record, and copes with neither', () => {
    expect(handleTypesOf(detection({ types: ['Timeout', 3] }))).toEqual(['Timeout']);
    expect(handleTypesOf(detection({ types: { FSReqCallback: 4 } }))).toEqual(['FSReqCallback']);
    expect(handleTypesOf(detection({}))).toEqual([]);
  });
});
