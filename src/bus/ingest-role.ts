// `lob-rtrl serve --role ingest`: the configured live feeds (LOB_RTRL_FEEDS) and push ingest
// (POST /v1/snapshots, WS /v1/ingest: src/bus/push-ingest.ts) written to the NATS market-data
// log instead of an engine. Every message the venue mappers or the canonical edge accept
// (snapshots, trades, disconnect markers) is published in arrival order per feed and counted
// once JetStream acknowledged it; rejections stay here, counted. /healthz and /metrics answer
// on the configured port.
import type { Logger } from 'pino';
import { messageOf } from '../domain/json-edge.js';
import { redactUrl } from '../domain/redact.js';
import { createLiveFeed, type LiveFeed } from '../ingest/live-client.js';
import { venueById } from '../venues/registry.js';
import type { BookDepth } from '../venues/types.js';
import type { BusConfig } from './config.js';
import { connectBus, MarketLogPublisher } from './market-log.js';
import { registerPushIngest, type PushIngestStats } from './push-ingest.js';
import { startRoleServer } from './role-server.js';

export interface IngestFeedConfig {
  readonly venue: string;
  readonly url: string;
  readonly restUrl?: string;
  readonly symbols: readonly string[];
  /** Binance: the diff stream or a partial-depth stream (see LiveFeedConfig.depth). */
  readonly depth?: BookDepth;
}

export interface IngestRole {
  readonly address: string;
  close(): Promise<void>;
}

interface RunningFeed {
  readonly config: IngestFeedConfig;
  readonly feed: LiveFeed;
  readonly publisher: MarketLogPublisher;
  rejected: number;
  done: Promise<void>;
}

export async function startIngestRole(options: {
  bus: BusConfig;
  feeds: readonly IngestFeedConfig[];
  levels: number;
  host: string;
  port: number;
  logger: Logger;
  /** Push ingest: the edge limits and the token of the service's own ingest routes. */
  push: { readonly maxBatch: number; readonly token?: string; readonly maxClockSkewMs: number; readonly bodyLimit: number; readonly maxConnections: number };
}): Promise<IngestRole> {
  const { logger } = options;
  const bus = await connectBus(options.bus, { name: 'lob-rtrl ingest' });
  let stopping = false;
  const running: RunningFeed[] = options.feeds.map((config) => {
    const feed = createLiveFeed(
      venueById(config.venue),
      { url: config.url, restUrl: config.restUrl, symbols: config.symbols, depth: config.depth },
      { now: Date.now, levels: options.levels, logger },
    );
    const entry: RunningFeed = { config, feed, publisher: new MarketLogPublisher(bus), rejected: 0, done: Promise.resolve() };
    entry.done = (async () => {
      try {
        for await (const message of feed.messages()) {
          if (stopping) break;
          if (message.type === 'rejected') {
            entry.rejected++;
            continue;
          }
          // One at a time: the log keeps the feed's order, and a slow log slows the feed's
          // consumer, whose queue conflates books (never trades) as it does for an engine.
          await entry.publisher.publish(config.venue, message);
        }
      } catch (error) {
        if (!stopping) logger.error({ venue: config.venue, url: redactUrl(config.url), err: messageOf(error) }, 'feed to the market-data log stopped');
      }
    })();
    return entry;
  });
  logger.info({ feeds: options.feeds.map((feed) => ({ venue: feed.venue, url: redactUrl(feed.url), symbols: feed.symbols })) }, 'ingest publishing to the market-data log');
  const pushPublisher = new MarketLogPublisher(bus);
  let push: PushIngestStats = { published: 0, rejected: 0, refused: 0, unavailable: 0 };

  const server = await startRoleServer({
    role: 'ingest',
    host: options.host,
    port: options.port,
    bodyLimit: options.push.bodyLimit,
    routes: async (app) => {
      push = await registerPushIngest(app, { publisher: pushPublisher, levels: options.levels, now: Date.now, ...options.push });
    },
    health: () => ({ feeds: running.map(({ config, feed }) => ({ venue: config.venue, connected: feed.stats.connected, synced: feed.stats.synced })) }),
    metrics: () => [
      '# HELP lob_rtrl_bus_published_total Market messages JetStream acknowledged, per feed.',
      '# TYPE lob_rtrl_bus_published_total counter',
      ...running.map(({ config, publisher }) => `lob_rtrl_bus_published_total{venue="${config.venue}"} ${publisher.published}`),
      '# HELP lob_rtrl_bus_duplicates_total Messages JetStream already held (re-sent within the duplicate window).',
      '# TYPE lob_rtrl_bus_duplicates_total counter',
      ...running.map(({ config, publisher }) => `lob_rtrl_bus_duplicates_total{venue="${config.venue}"} ${publisher.duplicates}`),
      '# HELP lob_rtrl_feed_rejected_total Frames the venue mapper rejected (never published).',
      '# TYPE lob_rtrl_feed_rejected_total counter',
      ...running.map(({ config, rejected }) => `lob_rtrl_feed_rejected_total{venue="${config.venue}"} ${rejected}`),
      "# HELP lob_rtrl_feed_connected 1 while the feed's websocket is open.",
      '# TYPE lob_rtrl_feed_connected gauge',
      ...running.map(({ config, feed }) => `lob_rtrl_feed_connected{venue="${config.venue}"} ${feed.stats.connected ? 1 : 0}`),
      '# HELP lob_rtrl_push_published_total Pushed messages (POST /v1/snapshots, WS /v1/ingest) JetStream acknowledged.',
      '# TYPE lob_rtrl_push_published_total counter',
      `lob_rtrl_push_published_total ${push.published}`,
      '# HELP lob_rtrl_push_rejected_total Pushed messages refused at the edge (never published).',
      '# TYPE lob_rtrl_push_rejected_total counter',
      `lob_rtrl_push_rejected_total ${push.rejected}`,
      '# HELP lob_rtrl_push_refused_total Push requests and connections refused over maxIngestConnections.',
      '# TYPE lob_rtrl_push_refused_total counter',
      `lob_rtrl_push_refused_total ${push.refused}`,
      '# HELP lob_rtrl_push_unavailable_total Push bodies and frames answered 503 (or a log_unavailable error frame) because JetStream did not store a message in time.',
      '# TYPE lob_rtrl_push_unavailable_total counter',
      `lob_rtrl_push_unavailable_total ${push.unavailable}`,
    ],
  });
  return {
    address: server.address,
    async close() {
      stopping = true;
      await server.close();
      await Promise.all(running.map(({ feed }) => feed.close()));
      await Promise.all(running.map(({ done }) => done));
      await bus.close();
    },
  };
}
