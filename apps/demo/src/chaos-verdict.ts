import type { ScenarioStatus } from './chaos-lab.js';
import type { ScenarioClaim, ScenarioName } from './chaos-scenarios.js';

/** A scenario's status as `GET /chaos/:scenario` sends it. */
export type ChaosStatus = ScenarioStatus;

/** One scenario's outcome as the CLI judged it. */
export interface Verdict {
  scenario: ScenarioName;
  claim?: ScenarioClaim;
  ok: boolean;
  /** `healed`, `protected` or `reported` when it passed. */
  verdict: string;
  detectedMs?: number;
  remediatedMs?: number;
  recoveredMs?: number;
  reportedMs?: number;
  misses: string[];
  status?: ChaosStatus;
  error?: string;
}

/** The verdict follows the claim: every milestone it needs must be there, in order, within the targets. */
export function judge(status: ChaosStatus): Verdict {
  const ms = (at?: number) => (at === undefined ? undefined : at - status.injectedAt);
  const v: Verdict = {
    scenario: status.scenario,
    claim: status.claim,
    ok: false,
    verdict: 'FAIL',
    detectedMs: ms(status.detectedAt),
    remediatedMs: ms(status.remediatedAt),
    recoveredMs: ms(status.recoveredAt),
    reportedMs: ms(status.reportedAt),
    misses: [],
    status,
  };
  const { detectMs, recoverMs } = status.targets;
  if (v.detectedMs === undefined) v.misses.push('not detected');
  else if (v.detectedMs > detectMs) v.misses.push(`detected after ${v.detectedMs} ms > ${detectMs} ms`);
  if (status.claim === 'reported') {
    if (v.reportedMs === undefined) v.misses.push('not reported in the immune log');
    if (v.remediatedMs !== undefined || v.recoveredMs !== undefined) v.misses.push('claims a heal for a report-only finding');
  } else {
    const action = status.claim === 'healed' ? 'no healing action by the guard' : 'no protection by the guard';
    if (v.remediatedMs === undefined) v.misses.push(action);
    if (v.recoveredMs === undefined) v.misses.push('not recovered');
    else if (v.recoveredMs > recoverMs) v.misses.push(`recovered after ${v.recoveredMs} ms > ${recoverMs} ms`);
    if (v.remediatedMs !== undefined && v.detectedMs !== undefined && v.remediatedMs < v.detectedMs) v.misses.push('remedy before detection');
    if (v.remediatedMs !== undefined && v.recoveredMs !== undefined && v.recoveredMs < v.remediatedMs) v.misses.push('recovered before the remedy');
  }
  v.ok = v.misses.length === 0;
  v.verdict = v.ok ? status.claim : 'FAIL';
  return v;
}

