// The dashboard through `app.inject`: the page and every asset it names are served from this
// service with the right content types and no URL of another origin; `GET /v1/status` reports
// feeds, engine latency and symbols. Then the page's data code (series.js) run in Node on the
// real AMZN excerpt (fixtures/canonical: the first 300 LOBSTER snapshots of 2012-06-21): the
// right/wrong marks it draws from the labels the engine streams agree with the engine's own
// prequential accuracy, for any target, and its window stays at its capacity.
import { mkdtempSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/http/app.js';
import { currentRtrlKernel } from '../../src/model/kernels/select.js';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { DASHBOARD_CSP, loadDashboardAssets, registerDashboard } from '../../src/http/dashboard.js';
import { PredictionWindow } from '../../src/http/dashboard/series.js';
import { predictionView } from '../../src/http/rest.js';
import { loadServiceConfig } from '../../src/service/config.js';
import { ServiceRuntime } from '../../src/service/runtime.js';

const fixture = join(import.meta.dirname, '../../fixtures/canonical/amzn-2012-06-21-first300.jsonl');
const snapshots: unknown[] = readFileSync(fixture, 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((line) => JSON.parse(line));

const quiet = { info() {}, warn() {}, error() {}, debug() {} };

interface Service {
  readonly runtime: ServiceRuntime;
  readonly app: FastifyInstance;
}
const running: Service[] = [];

async function service(flags: Record<string, unknown> = {}): Promise<Service> {
  const db = join(mkdtempSync(join(tmpdir(), 'lob-rtrl-dashboard-')), 'db.sqlite');
  const config = loadServiceConfig({ flags: { db, demoFeed: false, workers: 1, levels: 5, hidden: 8, models: 'rtrl,logistic,majority', ...flags } });
  const runtime = new ServiceRuntime(config, quiet);
  const app = await buildApp({ runtime, logger: false });
  const created = { runtime, app };
  running.push(created);
  return created;
}

afterEach(async () => {
  for (const target of running.splice(0)) {
    await target.app.close();
    await target.runtime.stop();
  }
});

/** Every src/href in the page, and every url(...) / import in the assets, that names an origin. */
function externalUrls(text: string): string[] {
  const found: string[] = [];
  for (const match of text.matchAll(/(?:src|href)\s*=\s*["']([^"']+)["']|url\(\s*["']?([^"')]+)|(?:from|import)\s*\(?\s*["']([^"']+)["']|\b(?:https?|wss?):\/\/[^\s"'`)]+/g)) {
    const url = match[1] ?? match[2] ?? match[3] ?? match[0];
    if (/^(?:[a-z]+:)?\/\//i.test(url) && !url.startsWith('data:')) found.push(url);
  }
  return found;
}

describe('the page and its assets', () => {
  it('serves / as HTML with a same-origin CSP, and every script and stylesheet it names with its content type', async () => {
    const { app } = await service();
    const page = await app.inject({ url: '/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toBe(DASHBOARD_CSP);
    expect(DASHBOARD_CSP).toContain("default-src 'self'");
    expect(DASHBOARD_CSP).toContain("connect-src 'self'");

    const referenced = [...page.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]).filter((url) => !url.startsWith('data:'));
    expect(referenced.sort()).toEqual(['/dashboard/dashboard.css', '/dashboard/dashboard.js', '/dashboard/uPlot.min.css', '/dashboard/uplot.iife.min.js']);
    const expectedType = (url: string) => (url.endsWith('.css') ? 'text/css; charset=utf-8' : 'text/javascript; charset=utf-8');
    for (const url of [...referenced, '/dashboard/series.js']) {
      const asset = await app.inject({ url });
      expect(asset.statusCode, url).toBe(200);
      expect(asset.headers['content-type'], url).toBe(expectedType(url));
      expect(asset.headers['x-content-type-options'], url).toBe('nosniff');
      expect(asset.rawPayload.length, url).toBeGreaterThan(500);
    }
  });

  it("serves uPlot's own build byte for byte from node_modules", async () => {
    const { app } = await service();
    const uplotDist = join(createRequire(import.meta.url).resolve('uplot/dist/uPlot.iife.min.js'), '..');
    const script = await app.inject({ url: '/dashboard/uplot.iife.min.js' });
    expect(script.rawPayload.equals(readFileSync(join(uplotDist, 'uPlot.iife.min.js')))).toBe(true);
    const css = await app.inject({ url: '/dashboard/uPlot.min.css' });
    expect(css.rawPayload.equals(readFileSync(join(uplotDist, 'uPlot.min.css')))).toBe(true);
  });

  it('names no other origin in the page, its script, its data module or its stylesheet', async () => {
    const { app } = await service();
    for (const url of ['/', '/dashboard/dashboard.js', '/dashboard/series.js', '/dashboard/dashboard.css']) {
      const body = (await app.inject({ url })).body;
      expect(externalUrls(body), url).toEqual([]);
    }
    // The scanner itself finds what it is meant to find.
    expect(externalUrls('<script src="https://cdn.example/u.js"></script> url(//fonts.example/x) import "https://esm.sh/uplot"')).toEqual([
      'https://cdn.example/u.js',
      '//fonts.example/x',
      'https://esm.sh/uplot',
    ]);
  });

  it('every element id the script looks up exists in the page', () => {
    const assets = loadDashboardAssets();
    const html = assets.find((a) => a.path === '/')!.body.toString('utf8');
    const script = assets.find((a) => a.path === '/dashboard/dashboard.js')!.body.toString('utf8');
    const ids = new Set([...script.matchAll(/\$\('([\w-]+)'\)/g)].map((m) => m[1]));
    expect(ids.size).toBeGreaterThan(10);
    for (const id of ids) expect(html, id).toContain(`id="${id}"`);
  });

  it('fails to load naming the missing file, and a service without the page answers / with 503 but keeps its API', async () => {
    const missing = join(tmpdir(), 'lob-rtrl-no-such-dashboard');
    expect(() => loadDashboardAssets(missing)).toThrow(join(missing, 'index.html'));

    const db = join(mkdtempSync(join(tmpdir(), 'lob-rtrl-dashboard-')), 'db.sqlite');
    const errors: string[] = [];
    const runtime = new ServiceRuntime(loadServiceConfig({ flags: { db, demoFeed: false, workers: 1 } }), {
      ...quiet,
      error: (fields: object) => errors.push(JSON.stringify(fields)),
    });
    const Fastify = (await import('fastify')).default;
    const app = Fastify();
    // As buildApp sets them: the routes' response schemas are zod.
    app.setValidatorCompiler(validatorCompiler);
    app.setSerializerCompiler(serializerCompiler);
    await registerDashboard(app, runtime, missing);
    running.push({ runtime, app });
    const page = await app.inject({ url: '/' });
    expect(page.statusCode).toBe(503);
    expect(page.json().message).toContain('index.html');
    expect(errors.join('\n')).toContain('index.html');
    expect((await app.inject({ url: '/v1/status' })).statusCode).toBe(200);
  });
});

describe('GET /v1/status', () => {
  it('reports symbols with their models, engine steps and latency quantiles after real snapshots', async () => {
    const { app } = await service();
    const ingested = await app.inject({ method: 'POST', url: '/v1/snapshots', payload: snapshots as object });
    expect(ingested.statusCode).toBe(200);
    const accepted = (ingested.json() as { accepted: unknown[] }).accepted.length;

    const status = (await app.inject({ url: '/v1/status' })).json();
    expect(status.feeds).toEqual([]);
    expect(status.symbols).toEqual([{ stream: 'push:AMZN', venue: 'push', symbol: 'AMZN', ticks: accepted, models: ['rtrl', 'logistic', 'majority'], target: 'next-move' }]);
    expect(status.engine.steps).toBe(accepted);
    const { p50, p99, max } = status.engine.stepLatencyUs;
    expect(p50).toBeGreaterThan(0);
    expect(p99).toBeGreaterThanOrEqual(p50);
    expect(max).toBeGreaterThanOrEqual(p99);
    expect(status.stream).toEqual({ subscribers: 0, conflated: 0, dropped: 0 });
  });

  it('reports a configured feed that cannot connect as disconnected and not in sync, and no latency before any step', async () => {
    const { app, runtime } = await service({ feeds: [{ venue: 'binance', url: 'ws://127.0.0.1:9/', restUrl: 'http://127.0.0.1:9/', symbols: ['BTCUSDT'] }] });
    await runtime.start();
    const status = (await app.inject({ url: '/v1/status' })).json();
    expect(status.feeds).toHaveLength(1);
    expect(status.feeds[0]).toMatchObject({ venue: 'binance', symbols: ['BTCUSDT'], demo: false, connected: false, synced: { BTCUSDT: false } });
    expect(status.engine).toEqual({ kernel: currentRtrlKernel().name, steps: 0, stepLatencyUs: { p50: null, p99: null, max: null } });
    expect(status.engine.kernel).toMatch(/^(js|native-(avx512|avx2|baseline))$/);
  });
});

describe("the page's data (series.js)", () => {
  async function predictionsOfFixture(models: string, target = 'next-move') {
    const { runtime } = await service({ models, target });
    const made: ReturnType<typeof predictionView>[] = [];
    runtime.subscribe((prediction) => made.push(predictionView(prediction)));
    runtime.ingest(snapshots);
    return { runtime, made };
  }

  for (const target of ['next-move', 'horizon:5:0.00002']) {
    it(`marks the first model's calls with the labels the engine streams, exactly as it scores them (${target})`, async () => {
      const { runtime, made } = await predictionsOfFixture('rtrl,logistic,majority', target);
      expect(made.length).toBe(snapshots.length);
      const classNames = Object.keys(made[0].models[0].probs);
      const ring = new PredictionWindow(2000, ['rtrl', 'logistic', 'majority'], classNames);
      made.forEach((p, i) => ring.push(i / 10, p));
      expect(made[0]).toMatchObject({ stream: 'push:AMZN', venue: 'push', symbol: 'AMZN' });
      const engineScore = runtime.engine.symbol('push:AMZN')!.metrics[0].summary();
      expect(engineScore.n).toBeGreaterThan(100);
      expect(ring.right + ring.wrong).toBe(engineScore.n);
      expect(ring.right / (ring.right + ring.wrong)).toBeCloseTo(engineScore.accuracy!, 12);

      // The marks sit on the first model's P(up) at each resolved prediction, and only there.
      const { prob } = ring.views();
      const [time, rtrl] = prob as Float64Array[];
      const right = prob[4] as Array<number | null>;
      const wrong = prob[5] as Array<number | null>;
      let marked = 0;
      for (let k = 0; k < time.length; k++) {
        if (right[k] !== null) expect(right[k]).toBe(rtrl[k]);
        if (wrong[k] !== null) expect(wrong[k]).toBe(rtrl[k]);
        expect(right[k] !== null && wrong[k] !== null).toBe(false);
        if (right[k] !== null || wrong[k] !== null) marked++;
      }
      expect(marked).toBe(engineScore.n);
    });
  }

  it('holds only the newest `capacity` predictions, oldest first, however many arrive, and counts the marks in view', async () => {
    const { made } = await predictionsOfFixture('logistic,majority');
    const capacity = 64;
    const ring = new PredictionWindow(capacity, ['logistic', 'majority']);
    for (let round = 0; round < 3; round++) made.forEach((p, i) => ring.push(round * 1000 + i, p));
    expect(ring.total).toBe(3 * made.length);
    expect(ring.size).toBe(capacity);
    const { mid, prob } = ring.views();
    expect(mid[0].length).toBe(capacity);
    const newest = made.slice(-capacity);
    expect(Array.from(mid[1])).toEqual(newest.map((p) => p.mid));
    expect(Array.from(prob[1] as Float64Array)).toEqual(newest.map((p) => p.models[0].probs.up));
    expect(Array.from(mid[0])).toEqual(newest.map((_p, i) => 2000 + made.length - capacity + i));
    const marks =
      (prob[3] as Array<number | null>).slice(0, capacity).filter((v) => v !== null).length + (prob[4] as Array<number | null>).slice(0, capacity).filter((v) => v !== null).length;
    expect(marks).toBeGreaterThan(capacity / 2);
    expect(ring.right + ring.wrong).toBe(marks);
    // The buffers are the ones allocated at construction: nothing grew.
    expect(mid[0].buffer.byteLength).toBe(capacity * 8);
  });

  it("marks a history's labels, and a label heard twice (a backfill beside the stream) counts once", async () => {
    const { runtime, app } = await service();
    const live: ReturnType<typeof predictionView>[] = [];
    runtime.subscribe((prediction) => live.push(predictionView(prediction)));
    runtime.ingest(snapshots);
    // The path the page fetches a stream's history from.
    const response = await app.inject({ url: '/v1/streams/push/AMZN/predictions?limit=10000' });
    expect(response.statusCode).toBe(200);
    const history = (response.json() as { predictions: Array<ReturnType<typeof predictionView> & { label: string | null }> }).predictions;
    expect(history.length).toBe(snapshots.length);
    for (const p of [...history, ...live]) expect(p).toMatchObject({ stream: 'push:AMZN', venue: 'push', symbol: 'AMZN' });
    expect(history.filter((p) => p.label !== null).length).toBe(runtime.engine.symbol('push:AMZN')!.metrics[0].summary().n);

    const fromHistory = new PredictionWindow(2000, ['rtrl', 'logistic', 'majority']);
    history.forEach((p, i) => fromHistory.push(i, p));
    const fromStream = new PredictionWindow(2000, ['rtrl', 'logistic', 'majority']);
    live.forEach((p, i) => fromStream.push(i, p));
    expect(fromHistory.views()).toEqual(fromStream.views());
    expect({ right: fromHistory.right, wrong: fromHistory.wrong }).toEqual({ right: fromStream.right, wrong: fromStream.wrong });
    // The stream's runs again, over the labelled history: nothing changes.
    for (const p of live) for (const run of p.resolved ?? []) fromHistory.resolveRun(run.fromSeq, run.toSeq, run.label);
    expect({ right: fromHistory.right, wrong: fromHistory.wrong }).toEqual({ right: fromStream.right, wrong: fromStream.wrong });
  });
});
