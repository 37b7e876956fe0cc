import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkAdminToken, problemFromError, readJsonBody, requireAdminToken, sendJson, sendProblem } from './http.js';

let base = '';
const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  if (req.url === '/admin') {
    const denied = checkAdminToken(req, 's3cret');
    return denied ? sendProblem(res, denied) : sendJson(res, 200, { ok: true });
  }
  if (req.url === '/admin-off') {
    const denied = checkAdminToken(req, undefined);
    return denied ? sendProblem(res, denied) : sendJson(res, 200, { ok: true });
  }
  if (req.url === '/required' || req.url === '/required-off') {
    if (!requireAdminToken(req, res, req.url === '/required' ? 's3cret' : undefined)) return;
    return void readJsonBody(req).then((body) => sendJson(res, 200, { body }));
  }
  if (req.url?.startsWith('/parsed-')) return preParsed(req, res);
  readJsonBody(req, { limitBytes: 1024 }).then(
    (body) => sendJson(res, 200, { body }),
    (error) => sendProblem(res, problemFromError(error)),
  );
});

/** Stands in for a body parser that ran first: consumes the stream, leaves `req.body` as the URL says. */
function preParsed(req: IncomingMessage, res: ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    const raw = Buffer.concat(chunks);
    const kind = req.url!.slice('/parsed-'.length);
    (req as IncomingMessage & { body?: unknown }).body = kind === 'object' ? JSON.parse(raw.toString()) : kind === 'string' ? raw.toString() : raw;
    readJsonBody(req, { limitBytes: 1024 }).then(
      (body) => sendJson(res, 200, { body }),
      (error) => sendProblem(res, problemFromError(error)),
    );
  });
}

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const post = (body: string | Buffer, type = 'application/json') => fetch(`${base}/json`, { method: 'POST', headers: { 'content-type': type }, body });

describe('readJsonBody over real HTTP', () => {
  it('parses a JSON body', async () => {
    const res = await post('{"a":1}');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ body: { a: 1 } });
  });

  it('answers malformed JSON with 400 problem+json naming the body', async () => {
    const res = await post('{"a":');
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect(await res.json()).toMatchObject({ status: 400, field: 'body', code: 'INVALID_INPUT' });
  });

  it('answers a wrong content type with 415', async () => {
    const res = await post('a=1', 'application/x-www-form-urlencoded');
    expect(res.status).toBe(415);
    expect(await res.json()).toMatchObject({ field: 'content-type' });
  });

  it('answers a huge body with 413 and keeps serving', async () => {
    const res = await post(Buffer.alloc(1024 * 1024, 'a'));
    expect(res.status).toBe(413);
    expect(res.headers.get('connection')).toBe('close');
    expect((await post('{}')).status).toBe(200);
  });

  it('does not leak internal error messages', () => {
    expect(problemFromError(new Error('db password is hunter2'))).toEqual({ status: 500, title: 'Internal server error' });
  });
});

describe('readJsonBody after a body parser already ran', () => {
  const postTo = (kind: string, body: string, type = 'application/json') => fetch(`${base}/parsed-${kind}`, { method: 'POST', headers: { 'content-type': type }, body });

  it('uses the parsed object instead of the consumed stream', async () => {
    const res = await postTo('object', '{"mode":"full"}');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ body: { mode: 'full' } });
  });

  it('parses a string or Buffer body left by a raw or text parser', async () => {
    expect(await (await postTo('string', '{"a":1}')).json()).toEqual({ body: { a: 1 } });
    expect(await (await postTo('buffer', '{"b":2}')).json()).toEqual({ body: { b: 2 } });
  });

  it('still answers malformed, empty and oversized string bodies as problems', async () => {
    expect(await (await postTo('string', '{"a":')).json()).toMatchObject({ status: 400, field: 'body' });
    expect(await (await postTo('buffer', ' ')).json()).toMatchObject({ status: 400, detail: 'request body is empty' });
    expect((await postTo('string', JSON.stringify({ pad: 'x'.repeat(2000) }))).status).toBe(413);
  });

  it('keeps the content-type check (415) even when a body was parsed', async () => {
    expect((await postTo('string', '{"a":1}', 'text/plain')).status).toBe(415);
  });
});

describe('checkAdminToken', () => {
  it('401 without a token, 403 with a wrong one, passes with the right one', async () => {
    expect((await fetch(`${base}/admin`)).status).toBe(401);
    expect((await fetch(`${base}/admin`, { headers: { authorization: 'Bearer nope' } })).status).toBe(403);
    expect((await fetch(`${base}/admin`, { headers: { authorization: 'Bearer s3cret' } })).status).toBe(200);
  });

  it('is off (403) when no token is configured', async () => {
    const res = await fetch(`${base}/admin-off`, { headers: { authorization: 'Bearer anything' } });
    expect(res.status).toBe(403);
  });
});

describe('requireAdminToken', () => {
  const post = (path: string, authorization?: string) =>
    fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) }, body: '{"mode":"full"}' });

  it('answers 401 with WWW-Authenticate: Bearer when the token is missing, 403 without it when wrong or off; the route never runs', async () => {
    const missing = await post('/required');
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toBe('Bearer');
    expect(await missing.json()).toMatchObject({ title: 'Unauthorized', field: 'authorization' });
    const wrong = await post('/required', 'Bearer nope');
    expect(wrong.status).toBe(403);
    expect(wrong.headers.get('www-authenticate')).toBeNull();
    const off = await post('/required-off', 'Bearer anything');
    expect(off.status).toBe(403);
    expect(await off.json()).toMatchObject({ title: 'Admin endpoints disabled' });
  });

  it('lets an authorized request through to the route, body unread', async () => {
    const ok = await post('/required', 'Bearer s3cret');
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ body: { mode: 'full' } });
  });
});
