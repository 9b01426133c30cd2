// GET /metrics in the Prometheus text format. Every value is read from the service's views when the
// scraper asks (collect callbacks): the engine already counts ticks and rejects and measures
// each step, so nothing here adds work to a tick.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { packageVersion } from '../domain/package-root.js';
import { splitStreamId } from '../domain/stream.js';
import { LatencyHistogram } from '../engine/latency.js';
import type { FeedView } from '../service/views.js';

type HistogramExport = Awaited<ReturnType<Histogram['get']>>;

/** Scores are read once per scrape: every family of one scrape sees the same figures. */
const SCORES_FRESH_MS = 250;

/**
 * Prometheus `le` bounds: every fifth bucket of the engine's histogram (four per decade, from
 * 1 µs to 100 s), so each bound is exactly one of the engine's own and the cumulative counts are
 * exact, not interpolated.
 */
const BUCKET_STRIDE = LatencyHistogram.bucketsPerDecade / 4;
const FIRST_BUCKET = LatencyHistogram.bucketsPerDecade; // 1 µs: the histogram starts a decade lower, at 0.1 µs
const EXPORTED_BUCKETS: number[] = [];
for (let i = FIRST_BUCKET; i < LatencyHistogram.bucketCount; i += BUCKET_STRIDE) EXPORTED_BUCKETS.push(i);

/**
 * A Prometheus histogram whose buckets are read from one of the engine's fixed-memory latency
 * histograms (microseconds) at scrape time.
 *
 * Why not observe a prom-client Histogram per tick: the engine records every step into its own
 * log-bucket histogram anyway; a second one would add a label lookup and a bucket search to the
 * hot path for the same information. Exported as cumulative buckets it aggregates across
 * instances (`histogram_quantile(0.99, sum by (le) (rate(..._bucket[5m])))`).
 */
class EngineHistogram extends Histogram {
  constructor(
    private readonly metricName: string,
    private readonly helpText: string,
    registry: Registry,
    private readonly source: () => LatencyHistogram,
  ) {
    super({ name: metricName, help: helpText, buckets: EXPORTED_BUCKETS.map((i) => LatencyHistogram.bucketUpperUs(i) / 1e6), registers: [registry] });
  }

  override async get(): Promise<HistogramExport> {
    const histogram = this.source();
    const values: HistogramExport['values'] = [];
    for (const index of EXPORTED_BUCKETS) {
      values.push({ metricName: `${this.metricName}_bucket`, labels: { le: roundBound(LatencyHistogram.bucketUpperUs(index) / 1e6) }, value: histogram.countAtOrBelow(index) });
    }
    values.push({ metricName: `${this.metricName}_bucket`, labels: { le: '+Inf' }, value: histogram.count });
    values.push({ metricName: `${this.metricName}_sum`, labels: {}, value: histogram.sumUs / 1e6 });
    values.push({ metricName: `${this.metricName}_count`, labels: {}, value: histogram.count });
    // prom-client's MetricType is a declared enum with no runtime value: its string stands in.
    return { name: this.metricName, help: this.helpText, type: 'histogram', values, aggregator: 'sum' } as unknown as HistogramExport;
  }

  // The registry prints histograms through this one (prom-client's exemplar path), not `get`.
  async getForPromString(): Promise<HistogramExport> {
    return this.get();
  }
}

/** Bounds printed with 6 significant digits: the same text from every instance, so they aggregate. */
function roundBound(seconds: number): number {
  return Number(seconds.toPrecision(6));
}

/**
 * Process-wide facts (CPU, memory, event loop lag, GC) belong to the process, not to an app:
 * collectDefaultMetrics starts an event-loop-delay monitor and a GC observer that cannot be
 * stopped, so they are set up once however many apps (tests) are built.
 */
let processRegistry: Registry | null = null;
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/** A counter of `registry` whose value is read from `read` at each scrape (a count kept elsewhere). */
export function readCounter(registry: Registry, name: string, help: string, read: () => number): Counter {
  return new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

/** What the metrics read: the views the infrastructure plugins decorate the app with. */
export type MetricsSources = Pick<FastifyInstance, 'streams' | 'predictions' | 'feeds' | 'streamStats'> & {
  /** Where checkpoints are written (the embedded service; the api role writes none). */
  readonly checkpoints?: FastifyInstance['checkpoints'];
};

/** The service's own metric families, in a registry of their own (never the global one). */
export function createServiceMetrics(service: MetricsSources): Registry {
  const registry = new Registry();
  const { streams, predictions, checkpoints, feeds } = service;

  new Gauge({
    name: 'lob_rtrl_build_info',
    help: 'Always 1; the labels say which build runs',
    labelNames: ['version', 'node'],
    registers: [registry],
    collect() {
      this.reset();
      this.set({ version: packageVersion(), node: process.versions.node }, 1);
    },
  });

  new Counter({
    name: 'lob_rtrl_ticks_total',
    help: 'Snapshots accepted per symbol since this process started (rate() stays true across restarts)',
    labelNames: ['venue', 'symbol'],
    registers: [registry],
    collect() {
      this.reset();
      for (const symbol of streams.list()) this.inc(splitStreamId(symbol.symbol), symbol.ticksThisProcess);
    },
  });

  new Gauge({
    name: 'lob_rtrl_ticks_lifetime',
    help: 'Snapshots the symbol has learned from over its whole life, restored checkpoints included',
    labelNames: ['venue', 'symbol'],
    registers: [registry],
    collect() {
      this.reset();
      for (const symbol of streams.list()) this.set(splitStreamId(symbol.symbol), symbol.ticks);
    },
  });

  // Per model: what an accuracy-drift alert compares. Read once per scrape (from the workers
  // when symbols run there) and shared by the families below.
  let scores: { at: number; value: ReturnType<MetricsSources['streams']['allMetrics']> } | null = null;
  const currentScores = () => {
    const now = performance.now();
    if (!scores || now - scores.at > SCORES_FRESH_MS) scores = { at: now, value: streams.allMetrics() };
    return scores.value;
  };
  const modelLabels = ['venue', 'symbol', 'model', 'window'] as const;
  new Gauge({
    name: 'lob_rtrl_model_rolling_accuracy',
    help: 'Accuracy of the last `window` scored predictions, per symbol and model',
    labelNames: modelLabels,
    registers: [registry],
    async collect() {
      this.reset();
      for (const symbol of await currentScores()) {
        for (const model of symbol.models)
          for (const rolling of model.rolling)
            if (rolling.n > 0) this.set({ ...splitStreamId(symbol.symbol), model: model.model, window: String(rolling.window) }, rolling.accuracy ?? 0);
      }
    },
  });
  new Gauge({
    name: 'lob_rtrl_model_rolling_log_loss',
    help: 'Mean log-loss (nats) of the last `window` scored predictions, per symbol and model',
    labelNames: modelLabels,
    registers: [registry],
    async collect() {
      this.reset();
      for (const symbol of await currentScores()) {
        for (const model of symbol.models)
          for (const rolling of model.rolling)
            if (rolling.n > 0) this.set({ ...splitStreamId(symbol.symbol), model: model.model, window: String(rolling.window) }, rolling.logLoss ?? 0);
      }
    },
  });
  new Gauge({
    name: 'lob_rtrl_model_accuracy',
    help: "Accuracy over every scored prediction of the symbol's life, per model",
    labelNames: ['venue', 'symbol', 'model'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const symbol of await currentScores()) {
        for (const model of symbol.models) if (model.overall.accuracy !== null) this.set({ ...splitStreamId(symbol.symbol), model: model.model }, model.overall.accuracy);
      }
    },
  });
  new Gauge({
    name: 'lob_rtrl_mix_weight',
    help: "The mix model's weight on each member model, per symbol (absent without a mix)",
    labelNames: ['venue', 'symbol', 'model'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const symbol of await currentScores()) for (const { model, weight } of symbol.mixWeights ?? []) this.set({ ...splitStreamId(symbol.symbol), model }, weight);
    },
  });

  new Counter({
    name: 'lob_rtrl_rejects_total',
    help: 'Inputs rejected at the edge, by reason',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, count] of Object.entries(streams.counters.rejected)) this.inc({ reason }, count ?? 0);
    },
  });

  new Counter({
    name: 'lob_rtrl_disconnects_total',
    help: 'Disconnect markers seen by the engine (feed drops and resyncs)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(streams.counters.disconnects);
    },
  });

  new Gauge({
    name: 'lob_rtrl_kernel_info',
    help: 'The RTRL kernel the learners run on (1 for the one in use): js, or native- and the instruction set',
    labelNames: ['kernel'],
    registers: [registry],
    collect() {
      this.reset();
      this.set({ kernel: streams.kernel }, 1);
    },
  });

  new Gauge({
    name: 'lob_rtrl_symbols',
    help: 'Symbols tracked (running or hibernated)',
    registers: [registry],
    collect() {
      this.set(streams.list().length);
    },
  });
  new Gauge({
    name: 'lob_rtrl_hibernated_symbols',
    help: 'Symbols hibernated: idle past hibernateIdleSeconds, their state in a checkpoint until their next message',
    registers: [registry],
    collect() {
      this.set(streams.hibernated);
    },
  });
  new Counter({
    name: 'lob_rtrl_hibernations_total',
    help: 'Symbols hibernated since this process started',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(streams.hibernations);
    },
  });
  new Counter({
    name: 'lob_rtrl_memory_reclaims_total',
    help: "Returns of hibernated symbols' memory to the system (a collection on every thread, then malloc_trim)",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(streams.memoryReclaim.reclaims);
    },
  });
  new Gauge({
    name: 'lob_rtrl_memory_reclaim_pause_seconds',
    help: "The main thread's pause for the collection of the last memory reclaim",
    registers: [registry],
    collect() {
      this.set(streams.memoryReclaim.lastPauseMs / 1000);
    },
  });
  new Counter({
    name: 'lob_rtrl_wake_ups_total',
    help: 'Hibernated symbols restored by a message since this process started',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(streams.wakeUps);
    },
  });

  new EngineHistogram('lob_rtrl_step_latency_seconds', 'Engine step (features, learners, scoring) per snapshot', registry, () => streams.stepLatency);
  if (checkpoints) {
    new EngineHistogram('lob_rtrl_checkpoint_write_seconds', 'Checkpoint write, from serialising the state to the committed transaction', registry, () => checkpoints.writes);
  }

  // Feeds are labelled by position and venue: URLs can carry credentials.
  const feedLabels = ['feed', 'venue'] as const;
  const eachFeed = (visit: (labels: { feed: string; venue: string }, stats: FeedView['stats']) => void) => {
    feeds.list().forEach((feed, index) => visit({ feed: String(index), venue: feed.venue }, feed.stats));
  };
  new Counter({
    name: 'lob_rtrl_feed_reconnects_total',
    help: 'Upstream websocket connections after the first, per feed',
    labelNames: feedLabels,
    registers: [registry],
    collect() {
      this.reset();
      eachFeed((labels, stats) => this.inc(labels, stats.reconnects));
    },
  });
  new Gauge({
    name: 'lob_rtrl_feed_connected',
    help: '1 while the feed has an open upstream connection',
    labelNames: feedLabels,
    registers: [registry],
    collect() {
      this.reset();
      eachFeed((labels, stats) => this.set(labels, stats.connected ? 1 : 0));
    },
  });
  new Counter({
    name: 'lob_rtrl_feed_conflated_snapshots_total',
    help: 'Snapshots replaced by a newer one of the same symbol before the engine took them',
    labelNames: feedLabels,
    registers: [registry],
    collect() {
      this.reset();
      eachFeed((labels, stats) => this.inc(labels, stats.conflatedSnapshots));
    },
  });
  new Counter({
    name: 'lob_rtrl_feed_dropped_trades_total',
    help: 'Trades dropped because the engine lagged far behind (each run of drops is marked by a disconnect of its symbol)',
    labelNames: feedLabels,
    registers: [registry],
    collect() {
      this.reset();
      eachFeed((labels, stats) => this.inc(labels, stats.droppedTrades));
    },
  });
  new Counter({
    name: 'lob_rtrl_feed_resyncs_total',
    help: 'Book resyncs started (REST re-fetch or resubscription), the first sync of each symbol included',
    labelNames: feedLabels,
    registers: [registry],
    collect() {
      this.reset();
      eachFeed((labels, stats) => this.inc(labels, stats.resyncs));
    },
  });
  new Counter({
    name: 'lob_rtrl_feed_snapshot_failures_total',
    help: 'REST snapshot fetches that failed (timeout, HTTP error, bad body)',
    labelNames: feedLabels,
    registers: [registry],
    collect() {
      this.reset();
      eachFeed((labels, stats) => this.inc(labels, stats.snapshotFailures));
    },
  });
  new Gauge({
    name: 'lob_rtrl_feed_synced',
    help: "1 while the symbol's book continues the venue's stream, 0 while it waits for a snapshot or resync",
    labelNames: [...feedLabels, 'symbol'],
    registers: [registry],
    collect() {
      this.reset();
      feeds.list().forEach((feed, index) => {
        const synced = feed.stats.synced;
        for (const symbol of feed.symbols) this.set({ feed: String(index), venue: feed.venue, symbol }, synced[symbol] ? 1 : 0);
      });
    },
  });
  new Gauge({
    name: 'lob_rtrl_feed_queued',
    help: 'Messages waiting for the engine, per feed',
    labelNames: feedLabels,
    registers: [registry],
    collect() {
      this.reset();
      eachFeed((labels, stats) => this.set(labels, stats.queued));
    },
  });

  new Gauge({
    name: 'lob_rtrl_stream_subscribers',
    help: 'Prediction listeners attached to the runtime (stream connections)',
    registers: [registry],
    collect() {
      this.set(predictions.subscriberCount);
    },
  });

  const { streamStats } = service;
  const streamCounter = (name: string, help: string, read: () => number) => readCounter(registry, name, help, read);
  streamCounter(
    'lob_rtrl_stream_conflated_total',
    'Predictions never sent because a newer one of the same symbol replaced them in a subscriber queue',
    () => streamStats.conflated,
  );
  streamCounter('lob_rtrl_stream_dropped_total', 'Predictions discarded unsent (queue overflow, or queued when a slow subscriber was closed)', () => streamStats.dropped);
  streamCounter('lob_rtrl_stream_slow_closed_total', 'Stream subscribers closed with 1013 because their send buffer did not drain', () => streamStats.slowClosed);
  streamCounter('lob_rtrl_stream_half_open_closed_total', 'Stream subscribers terminated because they did not answer a ping', () => streamStats.halfOpenClosed);
  streamCounter('lob_rtrl_connections_refused_total', 'WebSocket upgrades refused because the connection limit was reached', () => streamStats.connectionsRefused);
  streamCounter('lob_rtrl_ingest_rate_limited_total', 'Ingest frames refused by the per-connection rate limit', () => streamStats.rateLimited);
  new Gauge({
    name: 'lob_rtrl_ingest_connections',
    help: 'Open /v1/ingest connections',
    registers: [registry],
    collect() {
      this.set(streamStats.ingestConnections);
    },
  });

  return registry;
}

export interface MetricsRouteOptions {
  /** Families of a role's own, added to the service's registry (the api role's prediction-stream figures). */
  readonly extend?: (registry: Registry) => void;
}

async function registerMetricsRoute(app: FastifyInstance, options: MetricsRouteOptions): Promise<void> {
  const registry = createServiceMetrics({
    streams: app.streams,
    predictions: app.predictions,
    feeds: app.feeds,
    streamStats: app.streamStats,
    checkpoints: app.hasDecorator('checkpoints') ? app.checkpoints : undefined,
  });
  options.extend?.(registry);
  const defaults = processMetrics();
  app.get('/metrics', { schema: { summary: 'Prometheus metrics (text exposition format 0.0.4)', produces: ['text/plain'] } }, async (_request, reply) => {
    const text = (await registry.metrics()) + (await defaults.metrics());
    return reply.type(registry.contentType).send(text);
  });
}

/** `GET /metrics`: the service's families followed by the process defaults. */
export const metricsRoute = fp(registerMetricsRoute, { name: 'metrics-route', dependencies: ['engine', 'predictions', 'feeds'], encapsulate: true });
