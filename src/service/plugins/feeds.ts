// The live feeds (or, with none configured, the demo feed: the bundled recording served on
// loopback), connected once the app is ready. They depend on checkpointing so that they stop
// first: the final checkpoints then hold everything they delivered.
import fp from 'fastify-plugin';
import { feedsViewOf, type FeedsView } from '../views.js';
import { isLent, type ServiceSource } from './source.js';

declare module 'fastify' {
  interface FastifyInstance {
    feeds: FeedsView;
  }
}

export const feedsPlugin = fp<ServiceSource>(
  async (app, source) => {
    const runtime = app.serviceRuntime;
    app.decorate('feeds', feedsViewOf(runtime));
    if (isLent(source)) return;
    app.addHook('onReady', async () => runtime.startFeeds());
    app.addHook('onClose', async () => runtime.stopFeeds());
  },
  { name: 'feeds', dependencies: ['engine', 'checkpointing'] },
);
