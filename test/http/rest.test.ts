// Every REST route through `app.inject`, on a runtime without feeds fed the real AMZN excerpt
// (fixtures/canonical: the first 300 LOBSTER snapshots of 2012-06-21), success and each
// failure the route can give.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/http/app.js';
import { loadServiceConfig } from '../../src/service/config.js';
import { ServiceRuntime } from '../../src/service/runtime.js';
import { amznSnapshots } from '../setup/canonical-fixture.js';

const snapshots = amznSnapshots();

const quiet = { info() {}, warn() {}, error() {}, debug() {} };
const token = 'a-test-token-of-32-characters-xx';

interface Service {
  readonly runtime: ServiceRuntime;
  readonly app: FastifyInstance;
  readonly db: string;
}
const running: Service[] = [];

async function service(flags: Record<string, unknown> = {}, db = join(mkdtempSync(join(tmpdir(), 'lob-rtrl-rest-')), 'db.sqlite')): Promise<Service> {
  const config = loadServiceConfig({ flags: { db, demoFeed: false, workers: 1, levels: 5, hidden: 8, ...flags } });
  const runtime = new ServiceRuntime(config, quiet);
  const app = await buildApp({ runtime, logger: false });
  const created = { runtime, app, db };
  running.push(created);
  return created;
}

async function shutDown(target: Service): Promise<void> {
  running.splice(running.indexOf(target), 1);
  await target.app.close();
  await target.runtime.stop();
}

afterEach(async () => {
  for (const target of [...running]) await shutDown(target);
});

function post(app: FastifyInstance, url: string, body?: unknown, bearer?: string) {
  return app.inject({ method: 'POST', url, payload: body as object | undefined, headers: bearer === undefined ? {} : { authorization: `Bearer ${bearer}` } });
}

/** A prediction as the API shows it, without the wall-clock receive time. */
function withoutLocalTs(body: Record<string, unknown>): Record<string, unknown> {
  const { localTs: _localTs, ...rest } = body;
  return rest;
}

describe('health', () => {
  it('healthz answers while the process is up; an unknown route is a 404 naming it', async () => {
    const { app } = await service();
    const health = await app.inject({ url: '/healthz' });
    expect(health.statusCode).toBe(200);
    expect(health.json()).toEqual({ status: 'ok' });
    const missing = await app.inject({ url: '/v2/nothing?x=1' });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toEqual({ error: 'Not Found', message: 'no route GET /v2/nothing' });
  });

  it('readyz is 503 until every learner is warm, then 200; 503 again once the database is gone', async () => {
    const { app, runtime } = await service();
    expect((await post(app, '/v1/snapshots', snapshots.slice(0, 50))).statusCode).toBe(200);
    const cold = await app.inject({ url: '/readyz' });
    expect(cold.statusCode).toBe(503);
    expect(cold.json()).toEqual({ status: 'not ready', checks: { database: true, feeds: true, learners: false, restored: true } });

    // The normaliser warms up after 100 ticks.
    expect((await post(app, '/v1/snapshots', snapshots.slice(50, 100))).statusCode).toBe(200);
    const warm = await app.inject({ url: '/readyz' });
    expect(warm.statusCode).toBe(200);
    expect(warm.json()).toEqual({ status: 'ready', checks: { database: true, feeds: true, learners: true, restored: true } });

    runtime.checkpoints.close();
    const closed = await app.inject({ url: '/readyz' });
    expect(closed.statusCode).toBe(503);
    expect(closed.json().checks.database).toBe(false);
    // With the database gone the shutdown cannot save the 100 ticks, and says so.
    await expect(shutDown(running[0])).rejects.toThrow(/shutdown checkpoints failed for 1 symbol\(s\): push:AMZN \(100 ticks/);
  });
});

describe('push ingest and reads', () => {
  it('POST /v1/snapshots takes one snapshot or an array and acks every seq; the read routes show the result', async () => {
    const { app } = await service();
    const one = await post(app, '/v1/snapshots', snapshots[0]);
    expect(one.statusCode).toBe(200);
    expect(one.json()).toEqual({ accepted: [{ stream: 'push:AMZN', venue: 'push', symbol: 'AMZN', seq: 0 }], trades: 0, rejected: [] });
    const rest = await post(app, '/v1/snapshots', snapshots.slice(1));
    expect(rest.statusCode).toBe(200);
    expect(rest.json().accepted.map((ack: { seq: number }) => ack.seq)).toEqual(snapshots.slice(1).map((s) => s.seq));

    const last = snapshots[snapshots.length - 1];
    const lastMid = (last.bids[0][0] + last.asks[0][0]) / 2;
    const symbols = (await app.inject({ url: '/v1/symbols' })).json();
    expect(symbols.symbols).toHaveLength(1);
    expect(symbols.symbols[0]).toMatchObject({ stream: 'push:AMZN', venue: 'push', symbol: 'AMZN', ticks: 300, disconnects: 0, lastTs: last.ts });
    expect(symbols.symbols[0].mid).toBeCloseTo(lastMid, 9);

    const latest = await app.inject({ url: '/v1/symbols/AMZN/prediction' });
    expect(latest.statusCode).toBe(200);
    const prediction = latest.json();
    expect(prediction).toMatchObject({ stream: 'push:AMZN', venue: 'push', symbol: 'AMZN', seq: last.seq, ts: last.ts, target: 'next-move' });
    expect(prediction.mid).toBeCloseTo(lastMid, 9);
    expect(prediction.models.map((m: { model: string }) => m.model)).toEqual(['rtrl', 'tbptt:10', 'logistic', 'majority', 'mix']);
    for (const model of prediction.models) {
      expect(Object.keys(model.probs)).toEqual(['down', 'up']);
      expect(model.probs.down + model.probs.up).toBeCloseTo(1, 9);
    }

    const metrics = await app.inject({ url: '/v1/symbols/AMZN/metrics' });
    expect(metrics.statusCode).toBe(200);
    const body = metrics.json();
    expect(body).toMatchObject({ stream: 'push:AMZN', venue: 'push', symbol: 'AMZN', target: 'next-move', classes: ['down', 'up'], ticks: 300 });
    expect(body.models).toHaveLength(5);
    for (const model of body.models) {
      expect(model.overall.n).toBeGreaterThan(0);
      expect(model.overall.n).toBeLessThanOrEqual(300);
      expect(model.overall.confusion.flat().reduce((a: number, b: number) => a + b, 0)).toBe(model.overall.n);
      expect(model.overall.accuracy).toBeGreaterThanOrEqual(0);
      expect(model.overall.accuracy).toBeLessThanOrEqual(1);
      expect(model.rolling.length).toBeGreaterThan(0);
      for (const window of model.rolling) expect(window.n).toBe(Math.min(window.window, model.overall.n));
    }
  });

  it('a bad body is a 400 naming the field, alone or inside an array; a bad book a 400 with its reason', async () => {
    const { app, runtime } = await service();
    // Each message is checked on its own, as on the WebSocket: the body's good messages are
    // taken, every bad one is listed with the path of its field.
    const negativeSize = await post(app, '/v1/snapshots', { ...snapshots[0], bids: [[223.18, -5]] });
    expect(negativeSize.statusCode).toBe(400);
    expect(negativeSize.json()).toEqual({ accepted: [], trades: 0, rejected: [{ reason: 'schema', detail: 'bids.0.1: size must be > 0' }] });

    const inArray = await post(app, '/v1/snapshots', [
      { ...snapshots[0], bids: [[223.18, -5]] },
      { ...snapshots[1], asks: [[223.95, 'many']] },
    ]);
    expect(inArray.statusCode).toBe(400);
    expect(inArray.json().rejected).toEqual([
      { reason: 'schema', detail: '0.bids.0.1: size must be > 0' },
      { reason: 'schema', detail: expect.stringMatching(/^1\.asks\.0\.1: .*expected number/) },
    ]);

    const noSymbol = await post(app, '/v1/snapshots', { ts: 1, bids: [], asks: [] });
    expect(noSymbol.statusCode).toBe(400);
    expect(noSymbol.json().rejected[0].detail).toMatch(/^symbol: /);

    // Schema-valid but crossed: the book check rejects it and names the field and values.
    const crossed = await post(app, '/v1/snapshots', { symbol: 'AMZN', ts: 1, bids: [[224, 1]], asks: [[223, 1]] });
    expect(crossed.statusCode).toBe(400);
    expect(crossed.json().accepted).toEqual([]);
    expect(crossed.json().rejected).toEqual([{ reason: 'crossed_book', detail: expect.stringMatching(/bids\[0\]\[0\].*224.*223/) }]);

    const malformed = await app.inject({ method: 'POST', url: '/v1/snapshots', payload: '{"symbol":', headers: { 'content-type': 'application/json' } });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json()).toEqual({ error: 'Bad Request', message: expect.stringContaining('not valid JSON') });

    // Nothing bad reached a learner; every rejection was counted by reason.
    expect(runtime.engine.symbols.size).toBe(0);
    expect(runtime.engine.counters.rejected).toEqual({ schema: 4, crossed_book: 1 });
  });

  it('a body over the limit is a 413', async () => {
    const { app, runtime } = await service({ bodyLimitBytes: 4096 });
    const body = JSON.stringify(snapshots.slice(0, 40));
    expect(body.length).toBeGreaterThan(4096);
    const response = await app.inject({ method: 'POST', url: '/v1/snapshots', payload: body, headers: { 'content-type': 'application/json' } });
    expect(response.statusCode).toBe(413);
    expect(response.json()).toEqual({ error: 'Payload Too Large', message: expect.stringContaining('too large') });
    expect(runtime.engine.counters.accepted).toBe(0);
    expect((await post(app, '/v1/snapshots', snapshots.slice(0, 5))).statusCode).toBe(200);
  });

  it('every symbol route is a 404 naming an unknown symbol', async () => {
    const { app } = await service();
    await post(app, '/v1/snapshots', snapshots.slice(0, 3));
    for (const [method, url] of [
      ['GET', '/v1/symbols/MSFT/prediction'],
      ['GET', '/v1/symbols/MSFT/predictions?limit=5'],
      ['GET', '/v1/symbols/MSFT/metrics'],
      ['POST', '/v1/symbols/MSFT/checkpoints'],
    ] as const) {
      const response = await app.inject({ method, url });
      expect(response.statusCode, `${method} ${url}`).toBe(404);
      expect(response.json()).toEqual({ error: 'Not Found', message: 'unknown symbol "MSFT"' });
    }
    // Listing checkpoints of a stream never seen is an empty list, not an error: the database
    // may hold streams the engine has not loaded.
    expect((await app.inject({ url: '/v1/symbols/MSFT/checkpoints' })).json()).toEqual({ stream: 'MSFT', venue: '', symbol: 'MSFT', checkpoints: [] });
    expect((await app.inject({ url: '/v1/streams/okx/MSFT/checkpoints' })).json()).toEqual({ stream: 'okx:MSFT', venue: 'okx', symbol: 'MSFT', checkpoints: [] });
  });

  it('predictions?since=&limit= gives the newest predictions after `since`, at most `limit`, oldest first', async () => {
    const { app } = await service({ predictionRing: 1000 });
    await post(app, '/v1/snapshots', snapshots);
    const get = (query: string) => app.inject({ url: `/v1/symbols/AMZN/predictions${query}` });

    const byDefault = (await get('')).json();
    expect(byDefault.predictions.map((p: { seq: number }) => p.seq)).toEqual(snapshots.slice(200).map((s) => s.seq));

    const newestTen = (await get('?limit=10')).json().predictions;
    expect(newestTen.map((p: { seq: number }) => p.seq)).toEqual(snapshots.slice(290).map((s) => s.seq));
    expect(newestTen[9].models).toHaveLength(5);

    const since = snapshots[250].ts;
    const expectedSince = snapshots.filter((s) => s.ts > since).map((s) => s.seq);
    expect(expectedSince.length).toBeGreaterThan(0);
    expect(expectedSince.length).toBeLessThan(50);
    expect((await get(`?since=${since}&limit=1000`)).json().predictions.map((p: { seq: number }) => p.seq)).toEqual(expectedSince);
    expect((await get(`?since=${since}&limit=3`)).json().predictions.map((p: { seq: number }) => p.seq)).toEqual(expectedSince.slice(-3));
    expect((await get(`?since=${snapshots[299].ts}`)).json().predictions).toEqual([]);

    for (const [query, path] of [
      ['?limit=0', 'limit'],
      ['?limit=abc', 'limit'],
      ['?limit=10001', 'limit'],
      ['?since=yesterday', 'since'],
    ]) {
      const response = await get(query);
      expect(response.statusCode, query).toBe(400);
      expect(response.json()).toMatchObject({ message: 'invalid querystring', issues: [{ path }] });
    }
  });

  it('with retention on, predictions older than the ring come from the SQLite log, ties at the ring edge included', async () => {
    // 14 puts the ring's oldest entry (index 286) on the same timestamp as index 285.
    expect(snapshots[285].ts).toBe(snapshots[286].ts);
    const { app, runtime } = await service({ predictionRing: 14, predictionRetentionSeconds: 3600 });
    await runtime.start();
    await post(app, '/v1/snapshots', snapshots);
    // The runtime appends the log once a second, off the tick path.
    await expect.poll(() => runtime.checkpoints.repository.predictionsInRange('push:AMZN', 0, Number.POSITIVE_INFINITY).length, { timeout: 5000 }).toBe(300);

    const since = snapshots[0].ts;
    const all = (await app.inject({ url: `/v1/symbols/AMZN/predictions?since=${since}&limit=1000` })).json().predictions;
    const expected = snapshots.filter((s) => s.ts > since);
    expect(all.map((p: { seq: number }) => p.seq)).toEqual(expected.map((s) => s.seq));
    const fromLog = all.filter((p: { source?: string }) => p.source === 'log');
    expect(fromLog).toHaveLength(expected.length - 14);
    expect(fromLog[0]).toMatchObject({ stream: 'push:AMZN', venue: 'push', symbol: 'AMZN', model: 'rtrl', ts: expected[0].ts });
    expect(fromLog[0].probs[0] + fromLog[0].probs[1]).toBeCloseTo(1, 9);
    // The ring part carries every model.
    expect(all[all.length - 1].models).toHaveLength(5);
  });
});

describe('bearer token', () => {
  it('guards ingest, checkpoint and restore with 401 when the token is missing or wrong; reads stay open', async () => {
    const { app } = await service({ token });
    const guarded = [
      ['/v1/snapshots', snapshots.slice(0, 2)],
      ['/v1/symbols/AMZN/checkpoints', undefined],
      ['/v1/symbols/AMZN/checkpoints/1/restore', undefined],
    ] as const;
    for (const [url, body] of guarded) {
      for (const bearer of [undefined, 'wrong', `${token}x`, token.slice(0, -1)]) {
        const response = await post(app, url, body, bearer);
        expect(response.statusCode, `${url} with ${bearer}`).toBe(401);
        expect(response.json()).toEqual({ error: 'Unauthorized', message: 'missing or wrong bearer token' });
      }
    }
    const ingested = await post(app, '/v1/snapshots', snapshots.slice(0, 2), token);
    expect(ingested.statusCode).toBe(200);
    const checkpoint = await post(app, '/v1/symbols/AMZN/checkpoints', undefined, token);
    expect(checkpoint.statusCode).toBe(201);
    const restored = await post(app, `/v1/symbols/AMZN/checkpoints/${checkpoint.json().id}/restore`, undefined, token);
    expect(restored.statusCode).toBe(200);
    for (const url of ['/healthz', '/v1/symbols', '/v1/symbols/AMZN/prediction', '/v1/symbols/AMZN/checkpoints', '/metrics']) {
      expect((await app.inject({ url })).statusCode, url).toBe(200);
    }
  });
});

describe('checkpoints', () => {
  it('checkpoint then restore: the predictions after the restore equal those the uninterrupted run made', async () => {
    const { app } = await service();
    const at = 150;
    await post(app, '/v1/snapshots', snapshots.slice(0, at));
    const written = await post(app, '/v1/symbols/AMZN/checkpoints');
    expect(written.statusCode).toBe(201);
    const meta = written.json();
    expect(meta).toMatchObject({ venue: 'push', symbol: 'AMZN', tickCount: at, reason: 'manual', checksum: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(meta.sizeBytes).toBeGreaterThan(0);
    const listed = (await app.inject({ url: '/v1/symbols/AMZN/checkpoints' })).json();
    expect(listed.checkpoints).toEqual([meta]);

    const uninterrupted: Record<string, unknown>[] = [];
    for (const snapshot of snapshots.slice(at, at + 40)) {
      await post(app, '/v1/snapshots', snapshot);
      uninterrupted.push(withoutLocalTs((await app.inject({ url: '/v1/symbols/AMZN/prediction' })).json()));
    }

    const restored = await post(app, `/v1/symbols/AMZN/checkpoints/${meta.id}/restore`);
    expect(restored.statusCode).toBe(200);
    expect(restored.json()).toEqual(meta);
    expect((await app.inject({ url: '/v1/symbols' })).json().symbols[0].ticks).toBe(at);

    // The restore also rewinds push ingest's order guard to the checkpoint, so the producer
    // can send the same snapshots again.
    const replayed: Record<string, unknown>[] = [];
    for (const snapshot of snapshots.slice(at, at + 40)) {
      expect((await post(app, '/v1/snapshots', snapshot)).json()).toEqual({
        accepted: [{ stream: 'push:AMZN', venue: 'push', symbol: 'AMZN', seq: snapshot.seq }],
        trades: 0,
        rejected: [],
      });
      replayed.push(withoutLocalTs((await app.inject({ url: '/v1/symbols/AMZN/prediction' })).json()));
    }
    // Same code, same state, same inputs: equal to the last bit.
    expect(replayed).toEqual(uninterrupted);
  });

  it('restore answers 404 for a missing checkpoint or one of another symbol, 409 for another config or a bad checksum', async () => {
    const first = await service();
    await post(first.app, '/v1/snapshots', snapshots.slice(0, 60));
    const ours = (await post(first.app, '/v1/symbols/AMZN/checkpoints')).json();
    await post(first.app, '/v1/snapshots', { symbol: 'OTHER', ts: 1, bids: [[10, 1]], asks: [[11, 1]] });
    const othersSymbol = (await post(first.app, '/v1/symbols/OTHER/checkpoints')).json();
    await shutDown(first);

    // Same database, another hidden size: another configuration hash.
    const second = await service({ hidden: 6 }, first.db);
    await second.runtime.start();
    const foreign = (await post(second.app, '/v1/snapshots', snapshots.slice(0, 5))).statusCode;
    expect(foreign).toBe(200);

    const missing = await post(second.app, '/v1/symbols/AMZN/checkpoints/999999/restore');
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toEqual({ error: 'Not Found', message: 'checkpoint 999999 of push:AMZN not found' });
    const wrongSymbol = await post(second.app, `/v1/symbols/AMZN/checkpoints/${othersSymbol.id}/restore`);
    expect(wrongSymbol.statusCode).toBe(404);

    const otherConfig = await post(second.app, `/v1/symbols/AMZN/checkpoints/${ours.id}/restore`);
    expect(otherConfig.statusCode).toBe(409);
    expect(otherConfig.json()).toEqual({ error: 'Conflict', message: `checkpoint ${ours.id}: made with another configuration` });
    // The refused restore left the running state alone.
    expect((await second.app.inject({ url: '/v1/symbols' })).json().symbols.find((s: { symbol: string }) => s.symbol === 'AMZN').ticks).toBe(5);

    const own = (await post(second.app, '/v1/symbols/AMZN/checkpoints')).json();
    second.runtime.checkpoints.db.prepare('UPDATE checkpoints SET payload = zeroblob(size_bytes) WHERE id = ?').run(own.id);
    const corrupted = await post(second.app, `/v1/symbols/AMZN/checkpoints/${own.id}/restore`);
    expect(corrupted.statusCode).toBe(409);
    expect(corrupted.json().message).toBe(`checkpoint ${own.id}: checksum does not match its payload`);

    const badId = await post(second.app, '/v1/symbols/AMZN/checkpoints/-3/restore');
    expect(badId.statusCode).toBe(400);
    expect(badId.json().issues[0].path).toBe('id');
  });

  it('a restart on the same database resumes each symbol from its newest checkpoint, last prediction included', async () => {
    const first = await service();
    await post(first.app, '/v1/snapshots', snapshots.slice(0, 120));
    const before = withoutLocalTs((await first.app.inject({ url: '/v1/symbols/AMZN/prediction' })).json());
    await shutDown(first); // writes the shutdown checkpoint

    const second = await service({}, first.db);
    await second.runtime.start();
    // The service answers at once; stored symbols load in the background, or on first use.
    expect((await second.app.inject({ url: '/v1/symbols' })).json()).toEqual({ restoring: 1, hibernated: 0, symbols: [] });
    expect((await second.app.inject({ url: '/readyz' })).json().checks.restored).toBe(false);
    await second.runtime.whenRestored();
    expect((await second.app.inject({ url: '/readyz' })).json().checks.restored).toBe(true);
    // Restored in the background and asleep until a message asks for it (hibernation is on by default).
    const symbols = (await second.app.inject({ url: '/v1/symbols' })).json().symbols;
    expect(symbols).toEqual([{ stream: 'push:AMZN', venue: 'push', symbol: 'AMZN', hibernated: true, ticks: 120, disconnects: 0, lastTs: snapshots[119].ts, mid: before.mid }]);
    expect(withoutLocalTs((await second.app.inject({ url: '/v1/symbols/AMZN/prediction' })).json())).toEqual(before);
    const list = (await second.app.inject({ url: '/v1/symbols/AMZN/checkpoints' })).json().checkpoints;
    expect(list[0]).toMatchObject({ tickCount: 120, reason: 'shutdown' });

    // A symbol known but never ticked has no latest prediction yet.
    second.runtime.engine.symbolOrCreate('push:EMPTY');
    const none = await second.app.inject({ url: '/v1/symbols/EMPTY/prediction' });
    expect(none.statusCode).toBe(404);
    expect(none.json().message).toBe('no prediction yet for "push:EMPTY"');
  });
});

describe('documents and errors', () => {
  it('/docs/json is an OpenAPI document listing every route, with the bearer scheme on the guarded ones', async () => {
    const { app } = await service();
    const response = await app.inject({ url: '/docs/json' });
    expect(response.statusCode).toBe(200);
    const document = response.json();
    expect(document.openapi).toMatch(/^3\./);
    expect(document.components.securitySchemes.bearer).toEqual({ type: 'http', scheme: 'bearer' });
    const paths = Object.keys(document.paths);
    for (const path of [
      '/healthz',
      '/readyz',
      '/metrics',
      '/v1/symbols',
      '/v1/symbols/{symbol}/prediction',
      '/v1/symbols/{symbol}/predictions',
      '/v1/symbols/{symbol}/metrics',
      '/v1/snapshots',
      '/v1/symbols/{symbol}/checkpoints',
      '/v1/symbols/{symbol}/checkpoints/{id}/restore',
      '/v1/symbols/{symbol}/ordering/reset',
      '/v1/streams/{venue}/{symbol}/prediction',
      '/v1/streams/{venue}/{symbol}/predictions',
      '/v1/streams/{venue}/{symbol}/metrics',
      '/v1/streams/{venue}/{symbol}/checkpoints',
      '/v1/streams/{venue}/{symbol}/checkpoints/{id}/restore',
      '/v1/streams/{venue}/{symbol}/ordering/reset',
    ]) {
      expect(paths, path).toContain(path);
    }
    expect(document.paths['/v1/snapshots'].post.security).toEqual([{ bearer: [] }]);
    expect(document.paths['/v1/symbols/{symbol}/predictions'].get.parameters.map((p: { name: string }) => p.name).sort()).toEqual(['limit', 'since', 'symbol']);
    expect(document.paths['/v1/streams/{venue}/{symbol}/predictions'].get.parameters.map((p: { name: string }) => p.name).sort()).toEqual(['limit', 'since', 'symbol', 'venue']);
    expect((await app.inject({ url: '/docs' })).statusCode).toBeLessThan(400);
  });

  it('a failure inside a route is a 500 with no stack trace or internal message', async () => {
    const { app, runtime } = await service();
    await post(app, '/v1/snapshots', snapshots.slice(0, 3));
    const amzn = runtime.engine.symbol('push:AMZN')!;
    amzn.getState = () => {
      throw new Error('state codec bug at src/model/state-codec.ts:57');
    };
    const response = await post(app, '/v1/symbols/AMZN/checkpoints');
    delete (amzn as { getState?: unknown }).getState;
    expect(response.statusCode).toBe(500);
    expect(response.json()).toEqual({ error: 'Internal Server Error', message: 'internal error' });
    expect(response.body).not.toMatch(/\bat\b|\.ts|\.js|codec|stack/i);
  });

  it('a checkpoint that cannot be written is a 503 saying why, and readiness reports the database down until a write succeeds', async () => {
    const { app, runtime } = await service();
    await post(app, '/v1/snapshots', snapshots.slice(0, 3));
    runtime.checkpoints.db.pragma('query_only = ON'); // every write now fails as on a read-only file
    const response = await post(app, '/v1/symbols/AMZN/checkpoints');
    expect(response.statusCode).toBe(503);
    expect(response.json()).toEqual({ error: 'Service Unavailable', message: expect.stringMatching(/checkpoint of push:AMZN not written: .*readonly/i), store: 'readonly' });
    const ready = await app.inject({ url: '/readyz' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json().checks).toMatchObject({ database: false, reason: expect.stringMatching(/^database: readonly: /) });

    runtime.checkpoints.db.pragma('query_only = OFF');
    expect((await post(app, '/v1/symbols/AMZN/checkpoints')).statusCode).toBe(201);
    expect((await app.inject({ url: '/readyz' })).json().checks.database).toBe(true);
  });
});
