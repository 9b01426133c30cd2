// The live feeds (or, with none configured, the demo feed the entry point provides: serve's is
// the bundled recording on a loopback stand-in), connected once the app is ready. They depend on checkpointing so that they stop
// first: the final checkpoints then hold everything they delivered.
import fp from 'fastify-plugin';
import { feedsViewOf, type FeedsView } from '../views.js';
import { isLent, type DemoFeed, type ServiceSource } from './source.js';

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
    let demo: DemoFeed | null = null;
    app.addHook('onReady', async () => {
      const config = app.serviceConfig;
      if (config.feeds.length === 0 && config.demoFeed && source.demoFeed) {
        demo = await source.demoFeed();
        runtime.startDemoFeed(demo.feed);
      } else {
        runtime.startFeeds();
      }
    });
    app.addHook('onClose', async () => {
      await runtime.stopFeeds();
      await demo?.close();
    });
  },
  { name: 'feeds', dependencies: ['engine', 'checkpointing'] },
);
