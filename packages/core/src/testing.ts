// `@guard/core/testing`: the real parts Guard's tests run against (a Postgres database of their own, pools on it, a
// TCP proxy to cut the network, spawned Node processes). No test framework is imported here.
export { DEFAULT_TEST_PG_URL, pgTestDatabase, pgTestServerUrl } from './testing/pg-test-database.js';
export type { PgTestDatabase } from './testing/pg-test-database.js';
export { pgTestPools } from './testing/pg-test-pools.js';
export type { PgTestPools, PgTestPoolsOptions, PgTestPoolConfig, PgTestPoolLike } from './testing/pg-test-pools.js';
export { startTcpProxy, urlThrough, serverPort } from './testing/tcp-proxy.js';
export type { TcpProxy } from './testing/tcp-proxy.js';
export { runNodeBin, runPackageScript, scrapeDualBuild } from './testing/run-node.js';
export type { NodeRunOutcome, RunNodeBinOptions, DualBuildScrape, ScrapeDualBuildOptions } from './testing/run-node.js';
