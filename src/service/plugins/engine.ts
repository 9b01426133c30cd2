// The engine: one stream per symbol, each restored from the store when it first appears (and
// stored ones in the background once the app is ready), with the ingest lanes producers push
// into. It decorates the views the routes use; `serviceRuntime` itself is for the other
// infrastructure plugins only.
import fp from 'fastify-plugin';
import { ServiceRuntime, type RuntimeLogger } from '../runtime.js';
import type { StreamStats } from '../stream-stats.js';
import { ingestPortOf, streamsViewOf, type IngestPort, type StreamsView } from '../views.js';
import { isLent, type ServiceSource } from './source.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** @internal the runtime behind the views: infrastructure plugins only, never a route. */
    serviceRuntime: ServiceRuntime;
    /** The runtime's logger: what the service itself reports, beside fastify's request log. */
    serviceLog: RuntimeLogger;
    streams: StreamsView;
    ingest: IngestPort;
    streamStats: StreamStats;
  }
}

export const enginePlugin = fp<ServiceSource>(
  async (app, source) => {
    const runtime = isLent(source) ? source.runtime : new ServiceRuntime(app.serviceConfig, source.logger, source.now, app.store);
    app.decorate('serviceRuntime', runtime);
    app.decorate('serviceLog', runtime.logger);
    app.decorate('streams', streamsViewOf(runtime));
    app.decorate('ingest', ingestPortOf(runtime));
    app.decorate('streamStats', runtime.streamStats);
    if (isLent(source)) return;
    app.addHook('onReady', async () => {
      runtime.restoreStoredInBackground();
      runtime.startWorkerLatency();
    });
    // Whatever was delivered runs before the worker threads end (the checkpointing plugin has
    // usually drained already: its final checkpoints must include it).
    app.addHook('onClose', async () => {
      await runtime.drain();
      await runtime.closeWorkers();
    });
  },
  { name: 'engine', dependencies: ['config', 'store'] },
);
