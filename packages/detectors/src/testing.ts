/*
 * Test helpers, shipped as `@guard/detectors/testing`: a detector whose findings you set by hand, for testing how an
 * app wires the Parasite Guard (a chain, its modes, the middleware, a sanitizer) without sockets or databases, and a
 * real `ws` server on loopback for testing the C1 tracker.
 */
export { ManualDetector } from './manual-detector.js';
export type { ManualDetectorOptions } from './manual-detector.js';
export { wsTestServer } from './ws-test-server.js';
export type { WsTestPeer, WsTestServer } from './ws-test-server.js';
