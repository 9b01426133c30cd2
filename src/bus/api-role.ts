// `lob-rtrl serve --role api`: REST, the WebSocket stream, the dashboard and /metrics of a NATS
// deployment, served from the prediction stream and the workers' stream summaries
// (src/bus/api-view.ts) by the embedded service's own route plugins. It learns nothing and
// holds no state of its own beyond what it reads, so any number of api processes can run, and
// one restarted reads the newest prediction of every stream again at once. Input goes to the
// ingest role; checkpoints are the workers'.
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Logger } from 'pino';
import { Gauge, type Registry } from 'prom-client';
import { splitStreamId } from '../domain/stream.js';
import { createHttpApp } from '../http/app.js';
import { dashboardRoutes } from '../http/dashboard.js';
import { metricsRoute, readCounter } from '../http/metrics.js';
import { restRoutes } from '../http/rest.js';
import { webSocketRoutes } from '../http/ws.js';
import type { ServiceConfig } from '../service/config.js';
import { StreamStats } from '../service/stream-stats.js';
import { PredictionStreamView } from './api-view.js';
import { connectBus } from './market-log.js';

export interface ApiRole {
  readonly address: string;
  readonly app: FastifyInstance;
  readonly view: PredictionStreamView;
  close(): Promise<void>;
}

/**
 * The views the route plugins read, from the prediction stream. Registered under the embedded
 * service's plugin names (config, engine, predictions, feeds) because they stand in for them:
 * each route plugin declares those names as its dependencies.
 */
function apiViewPlugins(view: PredictionStreamView, config: ServiceConfig, logger: FastifyBaseLogger) {
  return [
    fp(async (app) => void app.decorate('serviceConfig', config), { name: 'config' }),
    fp(
      async (app) => {
        app.decorate('serviceLog', logger);
        app.decorate('streams', view.streamsView());
        app.decorate('streamStats', new StreamStats());
      },
      { name: 'engine', dependencies: ['config'] },
    ),
    fp(async (app) => void app.decorate('predictions', view.predictionBus()), { name: 'predictions', dependencies: ['engine'] }),
    fp(async (app) => void app.decorate('feeds', view.feedsView()), { name: 'feeds', dependencies: ['engine'] }),
  ];
}

/** The api role's own figures beside the service's families. */
function apiMetrics(view: PredictionStreamView): (registry: Registry) => void {
  return (registry) => {
    const counter = (name: string, help: string, read: () => number) => readCounter(registry, name, help, read);
    counter('lob_rtrl_api_predictions_total', 'Predictions read from the prediction stream and served', () => view.counts.predictions);
    counter('lob_rtrl_api_duplicate_predictions_total', 'Predictions dropped because their stream already had one from the same or a later input', () => view.counts.duplicates);
    counter('lob_rtrl_api_rejected_total', 'Prediction-stream messages or stream summaries that failed their check', () => view.counts.rejected);
    counter('lob_rtrl_api_summaries_total', 'Stream summaries read from the workers', () => view.counts.summaries);
    new Gauge({
      name: 'lob_rtrl_api_consumer_lag',
      help: 'Predictions in the prediction stream not yet read by this api process (as of the last one read)',
      registers: [registry],
      collect() {
        this.set(view.counts.lag);
      },
    });
    new Gauge({
      name: 'lob_rtrl_api_bus_connected',
      help: '1 while connected to NATS',
      registers: [registry],
      collect() {
        this.set(view.isConnected ? 1 : 0);
      },
    });
    new Gauge({
      name: 'lob_rtrl_api_caught_up',
      help: '1 once the prediction stream was read up to where it stood at start',
      registers: [registry],
      collect() {
        this.set(view.isCaughtUp ? 1 : 0);
      },
    });
    new Gauge({
      name: 'lob_rtrl_api_summary_age_seconds',
      help: "Age of each stream's newest summary (its worker's clock): how stale /metrics and the scores are",
      labelNames: ['venue', 'symbol'],
      registers: [registry],
      collect() {
        this.reset();
        const now = Date.now();
        for (const id of view.ids()) {
          const age = view.summaryAge(id, now);
          if (age !== null) this.set(splitStreamId(id), age);
        }
      },
    });
  };
}

/** The api app over a view (tests build it over their own view). */
export async function buildApiApp(options: { config: ServiceConfig; view: PredictionStreamView; logger: FastifyBaseLogger | false }): Promise<FastifyInstance> {
  const app = await createHttpApp(options.config, options.logger);
  const serviceLog = options.logger || app.log;
  for (const plugin of apiViewPlugins(options.view, options.config, serviceLog)) await app.register(plugin);
  await app.register(restRoutes);
  await app.register(webSocketRoutes, { ingest: false });
  await app.register(metricsRoute, { extend: apiMetrics(options.view) });
  await app.register(dashboardRoutes);
  return app;
}

export async function startApiRole(options: { config: ServiceConfig; logger: Logger }): Promise<ApiRole> {
  const { config, logger } = options;
  const bus = await connectBus(config, { name: 'lob-rtrl api' });
  let view: PredictionStreamView | undefined;
  try {
    view = await PredictionStreamView.open(bus, { ringCapacity: config.predictionRing, maxStreams: config.maxSymbols, logger: logger.child({ component: 'api' }) });
    const app = await buildApiApp({ config: { ...config, role: 'api' }, view, logger });
    const address = await app.listen({ host: config.host, port: config.port });
    const opened = view;
    return {
      address,
      app,
      view: opened,
      async close() {
        await app.close();
        await opened.close();
        await bus.close();
      },
    };
  } catch (error) {
    await view?.close();
    await bus.close();
    throw error;
  }
}
