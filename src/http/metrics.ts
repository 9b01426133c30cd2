// GET /metrics in the Prometheus text format. Every value is read from the runtime when the
// scraper asks (collect callbacks): the engine already counts ticks and rejects and measures
// each step, so nothing here adds work to a tick.
import { currentRtrlKernel } from '../model/kernels/select.js';
import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Registry, Summary } from 'prom-client';
import type { LatencyHistogram } from '../engine/latency.js';
import type { ServiceRuntime } from '../service/runtime.js';

/** Quantiles published for each measured duration. */
const QUANTILES = [0.5, 0.9, 0.99, 0.999] as const;

type SummaryExport = Awaited<ReturnType<Summary['get']>>;

/**
 * A Prometheus summary whose numbers come from one of the engine's fixed-memory latency
 * histograms (microseconds) at scrape time.
 *
 * Why not a prom-client Histogram: the engine records every step into its own log-bucket
 * histogram anyway; a second one observed per tick would add a label lookup and a bucket
 * search to the hot path for the same information. A summary cannot be aggregated across
 * processes, but this service is one process, and the quantiles are exact to the engine
 * histogram's bucket width (about 6%).
 */
class LatencySummary extends Summary {
  constructor(
    private readonly metricName: string,
    help: string,
    registry: Registry,
    private readonly source: () => LatencyHistogram,
  ) {
    super({ name: metricName, help, percentiles: [...QUANTILES], registers: [registry] });
  }

  override async get(): Promise<SummaryExport> {
    const exported = await super.get();
    const histogram = this.source();
    const values: SummaryExport['values'] = [];
    if (histogram.count > 0) {
      for (const q of QUANTILES) values.push({ labels: { quantile: q }, value: (histogram.quantile(q) ?? 0) / 1e6 });
    }
    values.push({ metricName: `${this.metricName}_sum`, labels: {}, value: histogram.sumUs / 1e6 });
    values.push({ metricName: `${this.metricName}_count`, labels: {}, value: histogram.count });
    return { ...exported, values };
  }
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

/** The service's own metric families, in a registry of their own (never the global one). */
export function createServiceMetrics(runtime: ServiceRuntime): Registry {
  const registry = new Registry();
  const { engine } = runtime;

  new Counter({
    name: 'lob_rtrl_ticks_total',
    help: 'Snapshots accepted per symbol (continues across restarts from the restored checkpoint)',
    labelNames: ['symbol'],
    registers: [registry],
    collect() {
      this.reset();
      for (const symbolEngine of engine.symbols.values()) this.inc({ symbol: symbolEngine.symbol }, symbolEngine.ticks);
    },
  });

  new Counter({
    name: 'lob_rtrl_rejects_total',
    help: 'Inputs rejected at the edge, by reason',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, count] of Object.entries(engine.counters.rejected)) this.inc({ reason }, count ?? 0);
    },
  });

  new Counter({
    name: 'lob_rtrl_disconnects_total',
    help: 'Disconnect markers seen by the engine (feed drops and resyncs)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(engine.counters.disconnects);
    },
  });

  const kernelInfo = new Gauge({
    name: 'lob_rtrl_kernel_info',
    help: 'The RTRL kernel the learners run on (1 for the one in use): js, or native- and the instruction set',
    labelNames: ['kernel'],
    registers: [registry],
  });
  kernelInfo.set({ kernel: currentRtrlKernel().name }, 1);

  new Gauge({
    name: 'lob_rtrl_symbols',
    help: 'Symbols with a live engine',
    registers: [registry],
    collect() {
      this.set(engine.symbols.size);
    },
  });

  new LatencySummary('lob_rtrl_step_latency_seconds', 'Engine step (features, learners, scoring) per snapshot', registry, () => engine.latency);
  new LatencySummary('lob_rtrl_checkpoint_write_seconds', 'Checkpoint write, from serialising the state to the committed transaction', registry, () => runtime.checkpointWrites);

  // Feeds are labelled by position and venue: URLs can carry credentials.
  const feedLabels = ['feed', 'venue'] as const;
  const eachFeed = (visit: (labels: { feed: string; venue: string }, stats: ServiceRuntime['feeds'][number]['feed']['stats']) => void) => {
    runtime.feeds.forEach((running, index) => visit({ feed: String(index), venue: running.config.venue }, running.feed.stats));
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
      this.set(runtime.subscriberCount);
    },
  });

  return registry;
}

/** Registers `GET /metrics`: the service's families followed by the process defaults. */
export async function registerMetricsRoute(app: FastifyInstance, runtime: ServiceRuntime): Promise<void> {
  const registry = createServiceMetrics(runtime);
  const defaults = processMetrics();
  app.get('/metrics', { schema: { summary: 'Prometheus metrics (text exposition format 0.0.4)', produces: ['text/plain'] } }, async (_request, reply) => {
    const text = (await registry.metrics()) + (await defaults.metrics());
    return reply.type(registry.contentType).send(text);
  });
}
