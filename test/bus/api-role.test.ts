// The api role on a real nats-server: a worker consumes the market-data log and publishes
// predictions and stream summaries; api processes serve REST, the WebSocket stream, /metrics
// and the dashboard from them. What they answer equals what the embedded service answers for
// the same input (predictions bit for bit, scores once the last summary is in); a re-published
// prediction is dropped; bad messages on the bus are counted, never served; a NATS restart is
// survived; push ingest and checkpoints are not served here (they are the other roles').
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { startApiRole, type ApiRole } from '../../src/bus/api-role.js';
import { connectBus, MarketLogPublisher, type BusConnection } from '../../src/bus/market-log.js';
import { PartitionWorker } from '../../src/bus/partition-worker.js';
import { predictionSubject } from '../../src/bus/subjects.js';
import type { BookSnapshot } from '../../src/domain/types.js';
import { buildApp } from '../../src/http/app.js';
import { currentRtrlKernel } from '../../src/model/kernels/select.js';
import { engineConfigOf, loadServiceConfig, type ServiceConfig } from '../../src/service/config.js';
import { parseCanonical } from '../../src/venues/canonical.js';
import { amznSnapshots } from '../setup/canonical-fixture.js';
import { startNatsServer, type NatsServer } from '../../bench/nats-server.js';

const silent = pino({ level: 'silent' });
const lines = amznSnapshots();
const VENUE = 'nasdaq';
const FIRST = 200;

let nats: NatsServer;
let bus: BusConnection;
let config: ServiceConfig;
let worker: PartitionWorker;
let embedded: FastifyInstance;
const roles: ApiRole[] = [];

function snapshotsOf(part: typeof lines): BookSnapshot[] {
  return part.map((line) => {
    // The ingest role records a pushed message's receive time as its own ts; so does this test.
    const parsed = parseCanonical(line, 5, line.ts);
    if (parsed.type !== 'book_snapshot') throw new Error(`fixture line ${line.seq}: ${JSON.stringify(parsed)}`);
    return parsed;
  });
}

async function publish(part: typeof lines): Promise<void> {
  const publisher = new MarketLogPublisher(bus);
  for (const snapshot of snapshotsOf(part)) await publisher.publish(VENUE, snapshot);
}

async function until<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not reached in ${timeoutMs} ms; last ${JSON.stringify(value).slice(0, 400)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function get(app: FastifyInstance, url: string) {
  const response = await app.inject({ url });
  return {
    status: response.statusCode,
    json: response.headers['content-type']?.toString().includes('json') ? (response.json() as Record<string, unknown>) : null,
    text: response.body,
  };
}

/** Everything a prediction answer says but its receive time (the embedded service stamps its own clock on pushed books). */
function withoutReceiveTime(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value), (key, field) => (key === 'localTs' ? undefined : field));
}

async function apiRole(): Promise<ApiRole> {
  const role = await startApiRole({ config, logger: silent });
  roles.push(role);
  return role;
}

beforeAll(async () => {
  nats = await startNatsServer();
  config = loadServiceConfig({
    flags: { demoFeed: false, workers: 0, levels: 5, hidden: 8, db: ':memory:', host: '127.0.0.1', port: 0 },
    env: { LOB_RTRL_NATS_URL: nats.url, LOB_RTRL_NATS_PREFIX: 'apitest', LOB_RTRL_NATS_PARTITIONS: '2', LOB_RTRL_NATS_SUMMARY_SECONDS: '0.1', LOB_RTRL_NATS_LEASE_SECONDS: '2' },
  });
  bus = await connectBus(config, { name: 'api-role test' });
  // The reference: the embedded service fed the same books under the same venue.
  embedded = await buildApp({ config: { ...config, natsUrl: undefined }, serviceLogger: silent, logger: false });
  await embedded.ready();
}, 120_000);

afterAll(async () => {
  for (const role of roles.splice(0)) await role.close().catch(() => undefined);
  await worker?.close().catch(() => undefined);
  await embedded?.close();
  await bus?.close();
  await nats?.dispose();
});

describe('the api role', () => {
  it('serves the predictions, history and scores the embedded service serves for the same input', async () => {
    // Started before any input: every prediction reaches it as new.
    const api = await apiRole();
    expect((await get(api.app, '/v1/symbols')).json).toEqual({ restoring: 0, hibernated: 0, symbols: [] });

    worker = await PartitionWorker.start({ bus, engineConfig: engineConfigOf(config), logger: silent });
    await publish(lines.slice(0, FIRST));
    const outcome = embedded.serviceRuntime.ingest(lines.slice(0, FIRST), VENUE);
    expect(outcome.accepted).toHaveLength(FIRST);
    await embedded.serviceRuntime.drain();

    const expectedHistory = (await get(embedded, `/v1/streams/${VENUE}/AMZN/predictions?limit=1000`)).json as { predictions: unknown[] };
    expect(expectedHistory.predictions.length).toBeGreaterThan(100);
    const history = await until(
      'the api serving every prediction',
      () => get(api.app, `/v1/streams/${VENUE}/AMZN/predictions?limit=1000`),
      (answer) => answer.status === 200 && (answer.json?.predictions as unknown[]).length === expectedHistory.predictions.length,
    );
    expect(withoutReceiveTime(history.json)).toEqual(withoutReceiveTime(expectedHistory));
    // The bare symbol names the one stream that carries it.
    expect(withoutReceiveTime((await get(api.app, '/v1/symbols/AMZN/prediction')).json)).toEqual(withoutReceiveTime((await get(embedded, '/v1/symbols/AMZN/prediction')).json));

    // Scores and tick counts come from the worker's summary: equal once it covers every book.
    const expectedMetrics = (await get(embedded, `/v1/streams/${VENUE}/AMZN/metrics`)).json as { ticks: number };
    expect(expectedMetrics.ticks).toBe(FIRST);
    const metrics = await until(
      'the summary of every book',
      () => get(api.app, `/v1/streams/${VENUE}/AMZN/metrics`),
      (answer) => answer.json?.ticks === FIRST,
    );
    expect(metrics.json).toEqual(expectedMetrics);
    const symbols = (await get(api.app, '/v1/symbols')).json as { symbols: Array<Record<string, unknown>> };
    expect(symbols.symbols).toEqual((await get(embedded, '/v1/symbols')).json?.symbols);

    // A second api started now reads the newest prediction of each stream at once; its history starts there.
    const late = await apiRole();
    const latest = await until(
      'the late api reading the newest prediction',
      () => get(late.app, `/v1/streams/${VENUE}/AMZN/prediction`),
      (answer) => answer.status === 200,
    );
    expect(withoutReceiveTime(latest.json)).toEqual(withoutReceiveTime((await get(embedded, `/v1/streams/${VENUE}/AMZN/prediction`)).json));
    expect(((await get(late.app, `/v1/streams/${VENUE}/AMZN/predictions`)).json?.predictions as unknown[]).length).toBe(1);
    await until(
      'the late api ready',
      () => get(late.app, '/readyz'),
      (answer) => answer.status === 200,
    );
  }, 120_000);

  it('streams new predictions over WebSocket, in order, to a subscriber of the stream', async () => {
    const api = roles[0];
    const socket = new WebSocket(`${api.address.replace(/^http/, 'ws')}/v1/stream`);
    const frames: Array<{ type?: string; seq?: number; stream?: string }> = [];
    socket.on('message', (data) => frames.push(JSON.parse(String(data))));
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    socket.send(JSON.stringify({ subscribe: [`${VENUE}:AMZN`] }));
    await until(
      'the subscription answered',
      async () => frames.length,
      (count) => count > 0,
    );

    await publish(lines.slice(FIRST));
    expect(embedded.serviceRuntime.ingest(lines.slice(FIRST), VENUE).accepted).toHaveLength(lines.length - FIRST);
    await embedded.serviceRuntime.drain();
    const expected = ((await get(embedded, `/v1/streams/${VENUE}/AMZN/predictions?limit=1000`)).json?.predictions as Array<{ seq: number }>).filter(
      (p) => p.seq > lines[FIRST - 1].seq,
    );
    const predictions = () => frames.filter((frame) => frame.type === 'prediction' || frame.seq !== undefined);
    expect(expected.length).toBeGreaterThan(50);
    await until(
      'every new prediction on the socket',
      async () => predictions().length,
      (count) => count >= expected.length,
    );
    socket.close();
    expect(predictions().map((frame) => frame.seq)).toEqual(expected.map((p) => p.seq));
    expect(new Set(predictions().map((frame) => frame.stream))).toEqual(new Set([`${VENUE}:AMZN`]));
  }, 60_000);

  it('drops a re-published prediction, counts a bad one, and never serves either', async () => {
    const api = roles[0];
    const before = (await get(api.app, `/v1/streams/${VENUE}/AMZN/predictions?limit=1000`)).json?.predictions as unknown[];
    const { predictions: made, duplicates, rejected } = { ...api.view.counts };
    // What a takeover re-publishes after JetStream's duplicate window: the same input sequence under another message id.
    const newest = await bus.jsm.streams.getMessage(bus.names.predictionStream, { last_by_subj: predictionSubject('apitest', VENUE, 'AMZN') });
    if (newest === null) throw new Error('no prediction stored');
    await bus.js.publish(predictionSubject('apitest', VENUE, 'AMZN'), newest.string(), { msgID: 'republished-after-the-window' });
    await bus.js.publish(predictionSubject('apitest', VENUE, 'AMZN'), JSON.stringify({ ...newest.json<object>(), inputSequence: 1e9, models: [{ model: 'rtrl', probs: [0.5] }] }));
    await bus.js.publish(predictionSubject('apitest', VENUE, 'AMZN'), '{"type":"prediction",');
    await until(
      'both seen',
      async () => api.view.counts,
      (counts) => counts.duplicates === duplicates + 1 && counts.rejected === rejected + 2,
    );
    expect(api.view.counts.predictions).toBe(made);
    expect((await get(api.app, `/v1/streams/${VENUE}/AMZN/predictions?limit=1000`)).json?.predictions).toEqual(before);
    const scrape = (await get(api.app, '/metrics')).text;
    expect(scrape).toMatch(new RegExp(`^lob_rtrl_api_duplicate_predictions_total ${duplicates + 1}$`, 'm'));
    expect(scrape).toMatch(new RegExp(`^lob_rtrl_api_rejected_total ${rejected + 2}$`, 'm'));
  }, 30_000);

  it('answers /metrics, the dashboard and /v1/status from the stream; serves no push ingest and no checkpoints', async () => {
    const api = roles[0];
    const lifetime = new RegExp(`^lob_rtrl_ticks_lifetime\\{venue="${VENUE}",symbol="AMZN"\\} ${lines.length}$`, 'm');
    await until(
      'the summary of every book',
      async () => (await get(api.app, '/metrics')).text,
      (text) => lifetime.test(text),
    );
    // One scrape's scores are reused for 250 ms (every family of a scrape sees the same figures): a fresh scrape.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const scrape = (await get(api.app, '/metrics')).text;
    // Ticks since this api started: it started before the first book.
    expect(scrape).toMatch(new RegExp(`^lob_rtrl_ticks_total\\{venue="${VENUE}",symbol="AMZN"\\} ${lines.length}$`, 'm'));
    const lateScrape = (await get(roles[1].app, '/metrics')).text;
    const lateTicks = Number(/^lob_rtrl_ticks_total\{venue="nasdaq",symbol="AMZN"\} (\d+)$/m.exec(lateScrape)?.[1]);
    // The late one started after FIRST books: it counts only those after it.
    expect(lateTicks).toBe(lines.length - FIRST);
    expect(scrape).toMatch(new RegExp(`^lob_rtrl_api_summary_age_seconds\\{venue="${VENUE}",symbol="AMZN"\\} `, 'm'));
    expect(scrape).toMatch(/^lob_rtrl_api_bus_connected 1$/m);
    expect(scrape).toMatch(/^lob_rtrl_api_caught_up 1$/m);
    expect(scrape).toMatch(/^lob_rtrl_api_consumer_lag 0$/m);
    // The scores' families read exactly as the embedded service's for the same books.
    const scores = (text: string) => text.split('\n').filter((line) => /^lob_rtrl_(model_|mix_weight)/.test(line) && line.includes('symbol="AMZN"'));
    expect(scores(scrape).length).toBeGreaterThan(10);
    expect(scores(scrape)).toEqual(scores((await get(embedded, '/metrics')).text));

    const page = await get(api.app, '/');
    expect(page.status).toBe(200);
    expect(page.text).toContain('<html');
    const status = (await get(api.app, '/v1/status')).json as { role: string; symbols: unknown[]; feeds: unknown[]; engine: { kernel: string } };
    expect(status.role).toBe('api');
    // The kernel is the workers' (from their summaries), not this process's.
    expect(status.engine.kernel).toBe(currentRtrlKernel().name);
    expect(scrape).toContain(`lob_rtrl_kernel_info{kernel="${currentRtrlKernel().name}"} 1`);
    expect(status.symbols).toEqual([{ stream: `${VENUE}:AMZN`, venue: VENUE, symbol: 'AMZN', ticks: lines.length, models: expect.any(Array), target: expect.any(String) }]);
    expect(status.feeds).toEqual([]);

    for (const [method, url] of [
      ['POST', '/v1/snapshots'],
      ['GET', '/v1/ingest'],
      ['GET', `/v1/streams/${VENUE}/AMZN/checkpoints`],
      ['POST', `/v1/streams/${VENUE}/AMZN/ordering/reset`],
    ] as const) {
      expect((await api.app.inject({ method, url, payload: method === 'POST' ? {} : undefined })).statusCode, `${method} ${url}`).toBe(404);
    }
    expect((await get(api.app, '/v1/streams/nasdaq/MSFT/prediction')).status).toBe(404);
  }, 30_000);

  it('survives a NATS restart: still connected afterwards, and serving what is predicted after it', async () => {
    const api = roles[0];
    const before = api.view.counts.predictions;
    await nats.stop();
    await until(
      'disconnected',
      async () => api.view.isConnected,
      (connected) => !connected,
    );
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await nats.restart();
    await until(
      'reconnected',
      async () => (await get(api.app, '/metrics')).text,
      (text) => /^lob_rtrl_api_bus_connected 1$/m.test(text),
    );
    // The same books again under a second venue: a new stream the worker predicts from the start.
    const publisher = new MarketLogPublisher(bus);
    await until(
      'publishing after the restart',
      async () => {
        try {
          for (const snapshot of snapshotsOf(lines.slice(0, 50))) await publisher.publish('nasdaq-b', snapshot);
          return true;
        } catch {
          return false;
        }
      },
      (ok) => ok,
    );
    const answer = await until(
      'the new stream served',
      () => get(api.app, '/v1/streams/nasdaq-b/AMZN/predictions?limit=1000'),
      (response) => response.status === 200 && (response.json?.predictions as unknown[]).length > 0 && api.view.counts.predictions > before,
    );
    expect((answer.json?.predictions as Array<{ stream: string }>)[0].stream).toBe('nasdaq-b:AMZN');
    // Two venues carry AMZN now: the bare symbol is ambiguous, as in the embedded service.
    expect((await get(api.app, '/v1/symbols/AMZN/prediction')).status).toBe(409);
  }, 90_000);
});
