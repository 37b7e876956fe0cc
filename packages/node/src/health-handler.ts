import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson } from '@guard/core';
import type { Logger } from '@guard/core';
import type { HealthChecks, HealthReport, ProbeKind } from './health-checks.js';

/** Messages Guard writes itself; a thrown error's message stays in the log (it may hold internals), as the kube-apiserver does. */
const OWN_MESSAGE = /^(timed out after \d+ ms|check returned false|shutting down|memory status \w+)$/;

/**
 * Serves one probe with Kubernetes semantics: 200 when every critical check passes, else 503 (kubelet
 * counts any 2xx-3xx as success). JSON by default; `?verbose` answers the kube-apiserver's plain-text
 * per-check report; `?exclude=name` (repeatable) skips a check.
 *
 * @example
 * const readyz = probeHandler(checks, 'readiness', logger);
 */
export function probeHandler(checks: HealthChecks, probe: ProbeKind, logger: Logger): (req: IncomingMessage, res: ServerResponse) => void {
  const label = probe === 'readiness' ? 'readyz' : 'livez';
  return (req, res) => {
    const query = new URL(req.url ?? '/', 'http://guard').searchParams;
    const verbose = query.has('verbose');
    checks.run(probe, { exclude: query.getAll('exclude') }).then((report) => {
      for (const c of report.checks) if (!c.ok) logger.warn({ check: c.name, probe, critical: c.critical, reason: c.message }, `guard: ${label} check failed`);
      const status = report.ok ? 200 : 503;
      const headers = { 'cache-control': 'no-store' };
      if (verbose) {
        const text = verboseReport(report, label);
        res.writeHead(status, { ...headers, 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) });
        res.end(req.method === 'HEAD' ? undefined : text);
        return;
      }
      sendJson(res, status, { status: report.ok ? 'ok' : 'failed', checks: report.checks.map((c) => ({ ...c, ...(c.message ? { message: publicMessage(c.message) } : {}) })) }, headers);
    }).catch((error: unknown) => {
      logger.error({ err: error, probe }, `guard: ${label} failed`);
      if (!res.headersSent) res.writeHead(500).end();
    });
  };
}

function publicMessage(message: string): string {
  return OWN_MESSAGE.test(message) ? message : 'reason withheld';
}

/**
 * `[+]ping ok` / `[-]db failed: reason withheld` lines, then `readyz check passed|failed` (the kube-apiserver's format).
 *
 * @example
 * console.log(verboseReport(await checks.run('readiness'), 'readyz'));
 */
export function verboseReport(report: HealthReport, label: string): string {
  const lines = report.checks.map((c) => {
    if (c.ok) return `[+]${c.name} ok`;
    return `[-]${c.name} failed: ${publicMessage(c.message ?? 'failed')}${c.critical ? '' : ' (non-critical)'}`;
  });
  lines.push(`${label} check ${report.ok ? 'passed' : 'failed'}`);
  return `${lines.join('\n')}\n`;
}
