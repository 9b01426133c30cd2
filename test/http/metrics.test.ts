// GET /metrics: each metric family, with values checked against the runtime they are read
// from, after real ticks (the AMZN canonical excerpt pushed in; the bundled Binance recording
// served by the stand-in feed server for the feed families).
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { register as globalRegistry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { packageVersion } from '../../src/domain/package-root.js';
import { buildApp } from '../../src/http/app.js';
import { startFeedServer, type FeedServer } from '../../src/standin/server.js';
import { currentRtrlKernel } from '../../src/model/kernels/select.js';
import { loadServiceConfig } from '../../src/service/config.js';
import { ServiceRuntime } from '../../src/service/runtime.js';

const fixtures = join(import.meta.dirname, '../../fixtures');
const amzn: unknown[] = readFileSync(join(fixtures, 'canonical/amzn-2012-06-21-first300.jsonl'), 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((line) => JSON.parse(line));
const binanceRecording = join(fixtures, 'binance/spot_btcusdt_20240808.head3000.gz');
const quiet = { info() {}, warn() {}, error() {}, debug() {} };

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function service(flags: Record<string, unknown> = {}): Promise<{ runtime: ServiceRuntime; app: FastifyInstance }> {
  const db = join(mkdtempSync(join(tmpdir(), 'lob-rtrl-metrics-')), 'db.sqlite');
  const runtime = new ServiceRuntime(loadServiceConfig({ flags: { db, demoFeed: false, workers: 1, levels: 5, hidden: 8, ...flags } }), quiet);
  const app = await buildApp({ runtime, logger: false });
  cleanups.push(async () => {
    await app.close();
    await runtime.stop();
  });
  return { runtime, app };
}

interface Scrape {
  readonly text: string;
  readonly types: Map<string, string>;
  /** Sample value by `name{labels}` exactly as exposed (labels in exposition order). */
  readonly samples: Map<string, number>;
}

async function scrape(app: FastifyInstance): Promise<Scrape> {
  const response = await app.inject({ url: '/metrics' });
  expect(response.statusCode).toBe(200);
  expect(response.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
  const types = new Map<string, string>();
  const samples = new Map<string, number>();
  for (const line of response.body.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1], type[2]);
    const sample = /^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (sample && !line.startsWith('#')) samples.set(sample[1], Number(sample[2]));
  }
  return { text: response.body, types, samples };
}

describe('GET /metrics', () => {
  it('exposes ticks, rejects by reason, step latency, checkpoint writes, symbols and subscribers as the runtime counts them', async () => {
    const { runtime, app } = await service();
    expect(runtime.ingest(amzn).accepted).toHaveLength(300);
    const bad = runtime.ingest([
      { symbol: 'AMZN', ts: 2e12, bids: [[224, 1]], asks: [[223, 1]] },
      { symbol: 'AMZN', ts: 1, bids: [[222, 1]], asks: [[223, 1]] },
      { symbol: 'AMZN', ts: 2e12, bids: [[220, -1]], asks: [[223, 1]] },
      'not a snapshot',
    ]);
    expect(bad.rejected.map((r) => r.reason)).toEqual(['crossed_book', 'out_of_order', 'schema', 'schema']);
    runtime.checkpoint('push:AMZN', 'manual');
    runtime.checkpoint('push:AMZN', 'manual');
    const unsubscribe = runtime.subscribe(() => {});

    const { types, samples } = await scrape(app);
    expect(Object.fromEntries([...types].filter(([name]) => name.startsWith('lob_rtrl_')))).toEqual({
      lob_rtrl_build_info: 'gauge',
      lob_rtrl_ticks_total: 'counter',
      lob_rtrl_ticks_lifetime: 'gauge',
      lob_rtrl_model_rolling_accuracy: 'gauge',
      lob_rtrl_model_rolling_log_loss: 'gauge',
      lob_rtrl_model_accuracy: 'gauge',
      lob_rtrl_rejects_total: 'counter',
      lob_rtrl_disconnects_total: 'counter',
      lob_rtrl_mix_weight: 'gauge',
      lob_rtrl_symbols: 'gauge',
      lob_rtrl_hibernated_symbols: 'gauge',
      lob_rtrl_hibernations_total: 'counter',
      lob_rtrl_memory_reclaims_total: 'counter',
      lob_rtrl_memory_reclaim_pause_seconds: 'gauge',
      lob_rtrl_wake_ups_total: 'counter',
      lob_rtrl_kernel_info: 'gauge',
      lob_rtrl_step_latency_seconds: 'histogram',
      lob_rtrl_checkpoint_write_seconds: 'histogram',
      lob_rtrl_feed_reconnects_total: 'counter',
      lob_rtrl_feed_connected: 'gauge',
      lob_rtrl_feed_conflated_snapshots_total: 'counter',
      lob_rtrl_feed_dropped_trades_total: 'counter',
      lob_rtrl_feed_resyncs_total: 'counter',
      lob_rtrl_feed_snapshot_failures_total: 'counter',
      lob_rtrl_feed_synced: 'gauge',
      lob_rtrl_feed_queued: 'gauge',
      lob_rtrl_stream_subscribers: 'gauge',
      lob_rtrl_stream_conflated_total: 'counter',
      lob_rtrl_stream_dropped_total: 'counter',
      lob_rtrl_stream_slow_closed_total: 'counter',
      lob_rtrl_stream_half_open_closed_total: 'counter',
      lob_rtrl_connections_refused_total: 'counter',
      lob_rtrl_ingest_rate_limited_total: 'counter',
      lob_rtrl_ingest_connections: 'gauge',
    });
    expect(samples.get(`lob_rtrl_build_info{version="${packageVersion()}",node="${process.versions.node}"}`)).toBe(1);
    expect(samples.get('lob_rtrl_ticks_total{venue="push",symbol="AMZN"}')).toBe(300);
    expect(samples.get('lob_rtrl_ticks_lifetime{venue="push",symbol="AMZN"}')).toBe(300);
    expect(samples.get('lob_rtrl_rejects_total{reason="crossed_book"}')).toBe(1);
    expect(samples.get('lob_rtrl_rejects_total{reason="out_of_order"}')).toBe(1);
    expect(samples.get('lob_rtrl_rejects_total{reason="schema"}')).toBe(2);
    expect(samples.get('lob_rtrl_disconnects_total')).toBe(0);
    expect(samples.get('lob_rtrl_symbols')).toBe(1);
    expect(samples.get('lob_rtrl_hibernated_symbols')).toBe(0);
    expect(samples.get('lob_rtrl_stream_subscribers')).toBe(1);
    // The kernel the learners were built on, and no other.
    const kernels = [...samples].filter(([name]) => name.startsWith('lob_rtrl_kernel_info'));
    expect(kernels).toEqual([[`lob_rtrl_kernel_info{kernel="${currentRtrlKernel().name}"}`, 1]]);
    expect(kernels[0][0]).toMatch(/kernel="(js|native-(avx512|avx2|baseline))"/);
    // The default models end with mix: one weight per other model, summing to 1.
    const weights = ['rtrl', 'tbptt:10', 'logistic', 'majority'].map((model) => samples.get(`lob_rtrl_mix_weight{venue="push",symbol="AMZN",model="${model}"}`) ?? Number.NaN);
    expect(weights.every((w) => w > 0 && w < 1)).toBe(true);
    expect(weights.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);

    // Per model: the rolling and lifetime figures are the symbol's own metrics, read at scrape time.
    const amznEngine = runtime.engine.symbol('push:AMZN')!;
    amznEngine.modelNames.forEach((model, m) => {
      const metrics = amznEngine.metrics[m];
      expect(samples.get(`lob_rtrl_model_accuracy{venue="push",symbol="AMZN",model="${model}"}`)).toBeCloseTo(metrics.meanAccuracy(), 12);
      for (const rolling of metrics.rolling()) {
        expect(rolling.n).toBeGreaterThan(0);
        expect(samples.get(`lob_rtrl_model_rolling_accuracy{venue="push",symbol="AMZN",model="${model}",window="${rolling.window}"}`)).toBeCloseTo(rolling.accuracy as number, 12);
        expect(samples.get(`lob_rtrl_model_rolling_log_loss{venue="push",symbol="AMZN",model="${model}",window="${rolling.window}"}`)).toBeCloseTo(rolling.logLoss as number, 12);
      }
    });

    // Step latency: one observation per accepted snapshot, cumulative buckets that agree with the
    // engine's own histogram at each bound, in seconds.
    expect(samples.get('lob_rtrl_step_latency_seconds_count')).toBe(300);
    expect(samples.get('lob_rtrl_step_latency_seconds_bucket{le="+Inf"}')).toBe(300);
    const buckets = [...samples].filter(([key]) => key.startsWith('lob_rtrl_step_latency_seconds_bucket{le="') && !key.includes('+Inf'));
    expect(buckets.length).toBe(33);
    let previous = 0;
    for (const [key, count] of buckets) {
      const le = Number(/le="([^"]+)"/.exec(key)![1]);
      expect(count).toBeGreaterThanOrEqual(previous);
      previous = count;
      const exact = runtime.engine.latency.countAtOrBelow(Math.round(Math.log10((le * 1e6) / 0.1) * 20));
      expect(count, key).toBe(exact);
    }
    expect(buckets[0][0]).toBe('lob_rtrl_step_latency_seconds_bucket{le="0.000001"}');
    expect(samples.get('lob_rtrl_step_latency_seconds_sum')).toBeCloseTo(runtime.engine.latency.sumUs / 1e6, 9);

    expect(samples.get('lob_rtrl_checkpoint_write_seconds_count')).toBe(2);
    expect(samples.get('lob_rtrl_checkpoint_write_seconds_sum')).toBeGreaterThan(0);
    expect(samples.get('lob_rtrl_checkpoint_write_seconds_sum')).toBeCloseTo(runtime.checkpointWrites.sumUs / 1e6, 9);

    // Process defaults come along.
    for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds']) {
      expect(types.has(name), name).toBe(true);
    }

    // Values are read at scrape time: more ticks and a dropped subscriber show up next scrape.
    unsubscribe();
    expect(runtime.ingest({ symbol: 'MSFT', ts: 1, bids: [[30, 1]], asks: [[31, 1]] }).accepted).toHaveLength(1);
    const next = await scrape(app);
    expect(next.samples.get('lob_rtrl_ticks_total{venue="push",symbol="MSFT"}')).toBe(1);
    expect(next.samples.get('lob_rtrl_ticks_total{venue="push",symbol="AMZN"}')).toBe(300);
    expect(next.samples.get('lob_rtrl_symbols')).toBe(2);
    expect(next.samples.get('lob_rtrl_stream_subscribers')).toBe(0);
    expect(next.samples.get('lob_rtrl_step_latency_seconds_count')).toBe(301);
  });

  it('before any tick the histograms carry zero counts in every bucket and no symbol is labelled', async () => {
    const { app } = await service();
    const { samples, text } = await scrape(app);
    expect(samples.get('lob_rtrl_step_latency_seconds_count')).toBe(0);
    expect(samples.get('lob_rtrl_checkpoint_write_seconds_count')).toBe(0);
    expect(samples.get('lob_rtrl_step_latency_seconds_bucket{le="+Inf"}')).toBe(0);
    expect(text).not.toContain('lob_rtrl_ticks_total{');
    expect(text).not.toContain('lob_rtrl_model_rolling_accuracy{');
  });

  it('counts ticks since process start in lob_rtrl_ticks_total and over the whole life in lob_rtrl_ticks_lifetime', async () => {
    const db = join(mkdtempSync(join(tmpdir(), 'lob-rtrl-metrics-')), 'db.sqlite');
    const first = await service({ db });
    first.runtime.ingest(amzn.slice(0, 200));
    await first.app.close();
    await first.runtime.stop();

    // The second process restores the checkpoint written at shutdown: its counter starts at 0,
    // so rate() shows no spike, while the lifetime gauge continues.
    const second = await service({ db });
    second.runtime.ingest(amzn.slice(200, 250));
    await expect.poll(() => second.runtime.engine.symbol('push:AMZN')?.ticks ?? 0).toBe(250);
    const { samples } = await scrape(second.app);
    expect(samples.get('lob_rtrl_ticks_total{venue="push",symbol="AMZN"}')).toBe(50);
    expect(samples.get('lob_rtrl_ticks_lifetime{venue="push",symbol="AMZN"}')).toBe(250);
  });

  it('keeps a registry per app: two apps report their own runtimes and the global registry stays empty', async () => {
    const first = await service();
    const second = await service();
    first.runtime.ingest(amzn.slice(0, 10));
    second.runtime.ingest(amzn.slice(0, 25));
    expect((await scrape(first.app)).samples.get('lob_rtrl_ticks_total{venue="push",symbol="AMZN"}')).toBe(10);
    expect((await scrape(second.app)).samples.get('lob_rtrl_ticks_total{venue="push",symbol="AMZN"}')).toBe(25);
    expect(await globalRegistry.metrics()).not.toContain('lob_rtrl_');
  });

  it('reports each live feed: connected, reconnects and conflated snapshots, labelled by position and venue', async () => {
    const server: FeedServer = await startFeedServer({ recording: binanceRecording, host: '127.0.0.1', port: 0, speed: 'max', loop: false });
    cleanups.push(() => server.close());
    const { runtime, app } = await service({ feeds: [{ venue: 'binance', url: server.wsUrl, restUrl: server.url, symbols: ['BTCUSDT'] }] });
    await runtime.start();
    await expect.poll(() => runtime.engine.symbol('binance:BTCUSDT')?.ticks ?? 0, { timeout: 20_000 }).toBeGreaterThan(5);

    const { samples } = await scrape(app);
    const stats = runtime.feeds[0].feed.stats;
    const labels = '{feed="0",venue="binance"}';
    expect(samples.get(`lob_rtrl_feed_connected${labels}`)).toBe(1);
    expect(samples.get(`lob_rtrl_feed_reconnects_total${labels}`)).toBe(0);
    const conflated = samples.get(`lob_rtrl_feed_conflated_snapshots_total${labels}`) as number;
    expect(conflated).toBeGreaterThanOrEqual(0);
    expect(conflated).toBeLessThanOrEqual(stats.conflatedSnapshots);
    expect(samples.get(`lob_rtrl_feed_queued${labels}`)).toBeGreaterThanOrEqual(0);
    expect(samples.get(`lob_rtrl_feed_resyncs_total${labels}`)).toBeGreaterThanOrEqual(1);
    expect(samples.get(`lob_rtrl_feed_snapshot_failures_total${labels}`)).toBe(stats.snapshotFailures);
    expect(samples.get('lob_rtrl_feed_synced{feed="0",venue="binance",symbol="BTCUSDT"}')).toBe(1);
    const ticks = samples.get('lob_rtrl_ticks_total{venue="binance",symbol="BTCUSDT"}') as number;
    expect(ticks).toBeGreaterThan(5);
    expect(ticks).toBeLessThanOrEqual(runtime.engine.symbol('binance:BTCUSDT')!.ticks);
  });
});
