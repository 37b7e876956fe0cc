import type { MemoryAlarm } from '@guard/core';
import type { MemoryThresholdsChange } from './memory-thresholds.js';
import type { MemoryRestartNotice } from './restart-controller.js';

declare module '@guard/core' {
  interface GuardEvents {
    /** The guardrail started a restart, the restart budget refused one, or the process survived one. */
    memoryRestart: [MemoryRestartNotice];
    /** Thresholds were changed at run time (the audit record: who, what, before and after). */
    memoryThresholdsChanged: [MemoryThresholdsChange];
  }
}

/**
 * The events a {@link MemoryGuardrail} offers through `onAlarm`, `onRestart` and `onThresholdsChange`; the same
 * payloads go to the bus as `memoryAlarm`, `memoryRestart` and `memoryThresholdsChanged`.
 */
export interface MemoryGuardrailEvents {
  /** Every status change (not every unhealthy check). */
  alarm: [MemoryAlarm];
  restart: [MemoryRestartNotice];
  thresholdsChange: [MemoryThresholdsChange];
}

