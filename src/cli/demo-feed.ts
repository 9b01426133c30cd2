// The built-in demo feed of `serve`: with no feed configured (and `demoFeed` on), the bundled
// Binance BTCUSDT recording is served on loopback by the Binance stand-in and connected as an
// ordinary live feed. Chosen here, at the entry point: the service itself knows no stand-in.
import { join } from 'node:path';
import { packageRoot } from '../domain/package-root.js';
import type { FeedConfig } from '../service/config.js';
import type { DemoFeed } from '../service/plugins/source.js';
import { startFeedServer } from '../standin/server.js';

export const DEMO_RECORDING = 'fixtures/binance/spot_btcusdt_20240808.head3000.gz';

export async function startDemoFeed(): Promise<DemoFeed> {
  const server = await startFeedServer({ recording: join(packageRoot(), DEMO_RECORDING), host: '127.0.0.1', port: 0, speed: 1, loop: true });
  const feed: FeedConfig = { venue: 'binance', url: server.wsUrl, restUrl: server.url, symbols: ['BTCUSDT'] };
  return { feed, close: () => server.close() };
}
