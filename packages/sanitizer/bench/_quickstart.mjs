import { GuardBus } from '@guard/core';
import { DeferredSanitizer, createWebSocketSanitizer, createHandleSanitizer } from '@guard/sanitizer';
import { MemoryWebSocketTarget } from '@guard/sanitizer/testing'; // in an app: the ws tracker of @guard/detectors

const wsTracker = new MemoryWebSocketTarget();
wsTracker.add('conn-42', { pending: 3 });
const bus = new GuardBus();
bus.subscribe('sanitization', (r) => console.log(r.component, r.outcome, r.actions, r.details));
const sanitizer = new DeferredSanitizer({ sanitizers: [createWebSocketSanitizer(wsTracker), createHandleSanitizer()], bus, delaysMs: { websocket: 100 } });
sanitizer.schedule({ id: 'det_1', component: 'websocket', pattern: 'no_ack', severity: 'critical', resourceId: 'conn-42', message: '3 unacked', details: {}, detectedAt: Date.now() });
await sanitizer.waitForSanitization(5_000); // websocket success [ 'close(1008)', 'forget' ] { code: 1008, terminated: false, droppedMessages: 3 }
await sanitizer.close();
