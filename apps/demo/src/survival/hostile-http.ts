import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { DEMO_PATHS } from '../route-template.js';

/** One generated request. `mayReset`: the server may close before reading it all (huge body, unparsable request). */
export interface HostileCase {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body?: Buffer;
  readonly mayReset?: boolean;
}

/** What one request got: a status (and Retry-After), or a transport error; `ms` until the response ended. */
export interface Outcome {
  readonly status?: number;
  readonly retryAfter?: string;
  readonly error?: string;
  readonly ms: number;
}

/** A small seeded PRNG (mulberry32), so a failing case can be reproduced from its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Every path the demo serves, and the odd ones: unknown ids, oversized or encoded segments, traversal, scanners. */
const PATHS = [
  ...DEMO_PATHS,
  '/api/analyses/an_nope',
  `/api/analyses/${'x'.repeat(300)}`,
  '/api/analyses/%F0%9F%98%80',
  '/chaos/not-a-scenario',
  '/chaos/ws-no-ack',
  '/ws',
  '/nope',
  '/%',
  '/..%2f..%2fetc%2fpasswd',
  '//',
  '//evil.example/api/analyses',
  '/api/analyses/../immune/event',
];
const QUERIES = [
  '',
  '',
  '?limit=abc',
  '?limit=-1',
  '?limit=1e309',
  '?limit=100000',
  '?limit=1&limit=2',
  '?since=zz',
  '?since=-1',
  '?window=9999999d',
  '?window=1e400ms',
  '?severity=LOUD',
  '?type=%00',
  '?%zz=%zz',
  '?limit=%F0%9F',
  `?${'a=1&'.repeat(2_000)}`,
  `?q=${'%ED%A0%80'.repeat(20)}`,
];
const METHODS = ['GET', 'GET', 'POST', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'PROPFIND'];
const TYPES = ['application/json', 'application/json', 'text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=utf-16', 'multipart/form-data; boundary=x', '', 'application/vnd.api+json'];
const BODIES: (() => string | Buffer)[] = [
  () => '',
  () => '{',
  () => 'null',
  () => '[]',
  () => '42',
  () => '"text"',
  () => '{"text":"\\ud800"}',
  () => '{"text":"ok \\ud83d"}',
  () => '{"text":"\\udc00 tail"}',
  () => '{"text":""}',
  () => '{"text":42}',
  () => `{"text":"${'y'.repeat(20_000)}"}`,
  () => '{"text":"a","extra":true}',
  () => '{"__proto__":{"polluted":true},"text":"p"}',
  () => `${'['.repeat(20_000)}${']'.repeat(20_000)}`,
  () => '{"severity":"CRITICAL","type":"ERROR_SPIKE","message":"\\ud800"}',
  () => '{"severity":"LOUD","type":"ERROR_SPIKE","message":"x"}',
  () => `{"severity":"INFO","type":"ERROR_SPIKE","message":"m","meta":{"k":"${'z'.repeat(70_000)}"}}`,
  () => '{"mode":"loud"}',
  () => '{"mode":"full","component":42}',
  () => '{"confirm":true}',
  () => Buffer.from([0xff, 0xfe, 0x7b, 0x00]),
  () => Buffer.alloc(1_048_576, 0x61),
  () => Buffer.alloc(100_000, 0x7b),
];

/** `count` hostile requests across every endpoint, reproducible from `seed`. None carries a credential. */
export function generateHostileCases(count: number, seed: number): HostileCase[] {
  const random = seededRandom(seed);
  const pick = <T>(list: readonly T[]) => list[Math.floor(random() * list.length)]!;
  const cases: HostileCase[] = [];
  for (let i = 0; i < count; i++) {
    const method = pick(METHODS);
    const hasBody = method !== 'GET' && method !== 'HEAD' ? random() < 0.9 : random() < 0.1;
    const raw = hasBody ? pick(BODIES)() : undefined;
    const body = raw === undefined ? undefined : Buffer.isBuffer(raw) ? raw : Buffer.from(raw, 'utf8');
    const headers: Record<string, string> = {};
    const type = pick(TYPES);
    if (body !== undefined && type) headers['content-type'] = type;
    let path = `${pick(PATHS)}${pick(QUERIES)}`;
    if (random() < 0.02) path = `/api/analyses/${'L'.repeat(20_000)}`; // past Node's header limit: 431
    if (random() < 0.03) headers.authorization = pick(['Bearer wrong', 'Basic abc', 'Bearer ', `Bearer ${'t'.repeat(5_000)}`]);
    // Node's client sends a GET/DELETE/OPTIONS body with no length unless told (the server would read it as the next
    // request): always declare it, and sometimes lie (longer than sent: the server waits for the rest, we give up).
    const lie = random() < 0.02;
    if (body !== undefined || lie) headers['content-length'] = String((body?.length ?? 0) + (lie ? 10 : 0));
    const mayReset = (body !== undefined && body.length > 60_000) || path.length > 16_000 || lie;
    cases.push({ method, path, headers, body, mayReset });
  }
  return cases;
}

/** Sends one case and waits for the whole response (an event stream counts as answered at its headers). */
export function sendCase(port: number, agent: Agent, c: HostileCase, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const started = performance.now();
    let settled = false;
    const done = (outcome: Omit<Outcome, 'ms'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ...outcome, ms: performance.now() - started });
    };
    const req = request({ host: '127.0.0.1', port, method: c.method, path: c.path, headers: c.headers, agent }, (res) => {
      const outcome = { status: res.statusCode, retryAfter: res.headers['retry-after'] };
      if (String(res.headers['content-type']).includes('text/event-stream')) {
        res.destroy();
        return done(outcome);
      }
      res.on('error', () => {});
      res.once('end', () => done(outcome));
      res.once('close', () => done(outcome));
      res.resume();
    });
    const timer = setTimeout(() => {
      req.destroy();
      done({ error: 'HANG' });
    }, timeoutMs);
    req.on('error', (error: NodeJS.ErrnoException) => done({ error: error.code ?? error.message }));
    if (c.mayReset && Number(c.headers['content-length'] ?? 0) > (c.body?.length ?? 0)) {
      // The declared length is longer than what we send: give the server a moment, then give up on our side.
      if (c.body) req.write(c.body);
      setTimeout(() => req.destroy(), 200).unref();
    } else req.end(c.body);
  });
}

/** Runs `cases` with `concurrency` requests in flight. */
export async function sendAll(port: number, cases: readonly HostileCase[], concurrency: number, timeoutMs: number): Promise<Outcome[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const outcomes: Outcome[] = new Array(cases.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < cases.length) {
        const index = next++;
        outcomes[index] = await sendCase(port, agent, cases[index]!, timeoutMs);
      }
    }),
  );
  agent.destroy();
  return outcomes;
}

/** Requests no HTTP client library will write: unknown methods, bad versions, broken framing, NUL bytes. */
export const RAW_REQUESTS: readonly string[] = [
  'FOO / HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET / HTTP/9.9\r\nHost: x\r\n\r\n',
  'GET /\0 HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: x\r\nX-Bad: a\0b\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: x\r\nBad Header Name: 1\r\n\r\n',
  'POST /api/analyses HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello',
  'POST /api/analyses HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n',
  'POST /api/analyses HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n',
  'POST /api/analyses HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: x\r\n' + `X-Long: ${'a'.repeat(20_000)}\r\n\r\n`,
  'GET / HTTP/1.1\r\n' + 'X-Many: 1\r\n'.repeat(3_000) + '\r\n',
  'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n',
  'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: x\r\nSec-WebSocket-Version: 99\r\n\r\n',
  'GET /elsewhere HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
];

/** Requests that never finish their head: the server rightly waits for more (its headers timeout ends them). */
export const RAW_UNFINISHED: readonly string[] = ['\r\n\r\n\r\n', 'GET / HTTP/1.1\r\nHost: x\r\n'];

/** Writes `text` on a fresh connection; resolves with the status code it got, or the error when the server closed. */
export function sendRaw(port: number, text: string, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = connect(port, '127.0.0.1');
    let out = '';
    let settled = false;
    const done = (outcome: Omit<Outcome, 'ms'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...outcome, ms: performance.now() - started });
    };
    const timer = setTimeout(() => done({ error: 'NO_ANSWER' }), timeoutMs);
    socket.on('error', (error: NodeJS.ErrnoException) => done({ error: error.code ?? error.message }));
    socket.on('data', (chunk: Buffer) => {
      out += chunk.toString('latin1');
      const head = /^HTTP\/1\.1 (\d{3})[^\r]*\r\n([\s\S]*?)\r\n\r\n/.exec(out);
      if (head) done({ status: Number(head[1]), retryAfter: /^retry-after: *(\S+)/im.exec(head[2]!)?.[1] });
    });
    socket.on('close', () => done({ error: 'CLOSED' }));
    socket.write(text);
  });
}
