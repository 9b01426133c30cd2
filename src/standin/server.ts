// The stand-in server: node:http plus `ws` in noServer mode, one listener for REST and the
// websocket upgrade, serving one recording in one venue's protocol (binance.ts, coinbase.ts,
// kraken.ts, kraken-v2.ts). This module owns what every venue shares: options, the listener,
// the client limit, pings and pong timeouts, the fault controls and a complete close.
//
// Built on node:http rather than fastify: a few fixed routes and no schemas to share, while
// the websocket side needs full control of the upgrade (reject with a status before the
// handshake, route by path, bound the clients), which fastify would only wrap.
import { createServer, STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { WebSocketServer, type WebSocket } from 'ws';
import { z } from 'zod';
import { describeIssues } from '../domain/schemas.js';
import { silentLogger, type FeedServerLogger, type RecordingSummary, type Timeline } from './recording.js';
import { Session, type FeedSpeed, type SessionContext } from './session.js';
import { sendJson } from './replies.js';
import { loadBinanceStandIn } from './binance.js';
import { loadCoinbaseStandIn } from './coinbase.js';
import { loadKrakenStandIn } from './kraken.js';
import { loadKrakenV2StandIn } from './kraken-v2.js';

export type { FeedServerLogger, RecordingSummary } from './recording.js';
export { parseFeedSpeed, type FeedSpeed } from './session.js';

export const STAND_IN_VENUES = ['binance', 'coinbase', 'kraken', 'kraken-v2'] as const;
export type StandInVenue = (typeof STAND_IN_VENUES)[number];

export interface FeedServerOptions {
  /** Raw-frame recording(s), plain or gzip, replayed in the order given as one timeline. */
  readonly recording: string | readonly string[];
  /** The protocol to speak, which is also the venue the recording holds (default binance). */
  readonly venue?: StandInVenue;
  readonly host?: string;
  /** 0 picks a free port; read the chosen one from the returned `port`. */
  readonly port?: number;
  readonly speed: FeedSpeed;
  /** Restart the recording at its end; clients see the update ids jump back (a gap) or a fresh snapshot. */
  readonly loop: boolean;
  readonly logger?: FeedServerLogger;
  /** Websocket ping this often (Binance pings every 20 s). */
  readonly pingIntervalMs?: number;
  /** A client that sent no pong for this long is dropped (Binance: a minute). */
  readonly pongTimeoutMs?: number;
  readonly maxClients?: number;
  /** Binance allows 1024 streams per connection. */
  readonly maxStreamsPerClient?: number;
  /** Incoming messages per second per connection before the client is dropped (Binance spot: 5). */
  readonly maxIncomingMessagesPerSecond?: number;
  /** Per-client send buffer above which replay pauses until the socket drains. */
  readonly highWaterBytes?: number;
  /** Monotonic clock in ms used for pacing (default `performance.now`). */
  readonly clock?: () => number;
  /**
   * Observation hook, called after each frame is handed to a socket with the recording
   * entry index and the clock reading at which it was sent (tests check pacing with it).
   */
  readonly onFrameSent?: (clientId: number, entryIndex: number, sentAt: number, dueAt: number) => void;
  /**
   * Binance: a client's replay waits at the recording's REST snapshot until a depth request has
   * come in during this pass (or this long has passed), as the recorded session did when it
   * fetched that snapshot. So a client at speed max syncs at the recorded point and sees exactly
   * the books a replay of the same recording sees. 0 disables the wait. Default 2000 ms.
   */
  readonly holdAtSnapshotMs?: number;
}

export interface FeedServerStats {
  /** Clients connected now. */
  clients: number;
  /** Websocket connections accepted since start. */
  connections: number;
  /** Upgrades refused (bad path, bad stream name, too many clients or streams). */
  rejectedUpgrades: number;
  /** Clients dropped for not answering pings. */
  pongTimeouts: number;
  framesSent: number;
  /** Times any client wrapped around the end of the recording. */
  loops: number;
  restRequests: number;
  /** Successful `GET /api/v3/depth` answers (Binance). */
  depthRequests: number;
  /** Snapshots sent on (re)subscription (Coinbase, Kraken). */
  snapshotsSent: number;
  /** Connections cut by `dropConnections`, and book updates left out by `skipBookUpdates`. */
  droppedByFault: number;
  skippedByFault: number;
}

export interface FeedServer {
  readonly venue: StandInVenue;
  /** HTTP base, e.g. `http://127.0.0.1:40123`: Binance's REST lives under `/api/v3/...`. */
  readonly url: string;
  /** Websocket base, e.g. `ws://127.0.0.1:40123` (Binance: `/stream?streams=...` or `/ws/<stream>`). */
  readonly wsUrl: string;
  readonly port: number;
  /** Live counters (read-only view). */
  readonly stats: Readonly<FeedServerStats>;
  readonly recording: RecordingSummary;
  /** Fault control: cuts every client's connection without a close handshake; returns how many. */
  dropConnections(): number;
  /**
   * Fault control: every connected client misses its next `count` book updates (default 1), as
   * if the venue lost them. Binance and Kraken clients find out (an update-id gap, a failed
   * checksum) and resync; Coinbase's level2 carries neither, so its clients cannot.
   */
  skipBookUpdates(count?: number): void;
  /** Closes every client (code 1001), the listener and all timers. Idempotent. */
  close(): Promise<void>;
}

/** What a venue module gives the server. */
export interface VenueStandIn {
  readonly timeline: Timeline;
  readonly summary: RecordingSummary;
  /** Answers a REST request (see `answerRest` for venues without REST routes). */
  handleRequest(url: URL, method: string, res: ServerResponse): void;
  /** Accepts a websocket path (with what the connection needs) or refuses it with a status. */
  routeUpgrade(url: URL): UpgradeRoute;
  /** The body of a refused upgrade, in the venue's error shape. */
  errorBody(message: string): unknown;
  /** Logs what the recording itself got wrong, at close. */
  reportAtClose(logger: FeedServerLogger): void;
}

export type UpgradeRoute = { readonly open: (session: Session) => ConnectionHandler; readonly detail: object } | { readonly status: number; readonly message: string };

export interface ConnectionHandler {
  /** A text frame from the client (null for a binary one). */
  onMessage(text: string | null): void;
  onClose(): void;
}

/** What a venue module is handed to build itself. */
export interface StandInSetup {
  readonly paths: readonly string[];
  readonly logger: FeedServerLogger;
  readonly stats: FeedServerStats;
  readonly config: StandInConfig;
}

const optionsSchema = z.object({
  recording: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
  venue: z.enum(STAND_IN_VENUES).default('binance'),
  host: z.string().min(1).default('127.0.0.1'),
  port: z.number().int().min(0).max(65_535).default(0),
  speed: z.union([z.literal('max'), z.number().positive()]),
  loop: z.boolean(),
  pingIntervalMs: z.number().positive().default(20_000),
  pongTimeoutMs: z.number().positive().default(60_000),
  maxClients: z.number().int().positive().default(64),
  maxStreamsPerClient: z.number().int().positive().default(1024),
  maxIncomingMessagesPerSecond: z.number().int().positive().default(5),
  highWaterBytes: z
    .number()
    .int()
    .positive()
    .default(1 << 20),
  holdAtSnapshotMs: z.number().min(0).default(2000),
});

export type StandInConfig = z.infer<typeof optionsSchema>;

const MAX_INCOMING_MESSAGE_BYTES = 16 * 1024;
const CLOSE_GRACE_MS = 1000;

const loaders: Record<StandInVenue, (setup: StandInSetup) => Promise<VenueStandIn>> = {
  binance: loadBinanceStandIn,
  coinbase: loadCoinbaseStandIn,
  kraken: loadKrakenStandIn,
  'kraken-v2': loadKrakenV2StandIn,
};

/**
 * Starts the stand-in. Resolves once the recording is loaded and the port is listening.
 * Throws when an option is invalid or the recording holds no frame.
 */
export async function startFeedServer(options: FeedServerOptions): Promise<FeedServer> {
  const parsedOptions = optionsSchema.safeParse(options);
  if (!parsedOptions.success) throw new Error(`feed-server options: ${describeIssues(parsedOptions.error)}`);
  const config = parsedOptions.data;
  const logger = options.logger ?? silentLogger;
  const clock = options.clock ?? (() => performance.now());
  const paths = typeof config.recording === 'string' ? [config.recording] : config.recording;

  const stats: FeedServerStats = {
    clients: 0,
    connections: 0,
    rejectedUpgrades: 0,
    pongTimeouts: 0,
    framesSent: 0,
    loops: 0,
    restRequests: 0,
    depthRequests: 0,
    snapshotsSent: 0,
    droppedByFault: 0,
    skippedByFault: 0,
  };
  const loadStarted = performance.now();
  const venue = await loaders[config.venue]({ paths, logger, stats, config });
  if (venue.summary.entries === 0) throw new Error(`feed-server: no frames in ${paths.join(', ')}`);

  const context: SessionContext = {
    timeline: venue.timeline,
    speed: config.speed,
    loop: config.loop,
    clock,
    highWaterBytes: config.highWaterBytes,
    stats,
    onFrameSent: options.onFrameSent,
  };
  const sessions = new Map<Session, ConnectionHandler>();
  let nextClientId = 1;
  let closing: Promise<void> | null = null;

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    stats.restRequests++;
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      venue.handleRequest(url, req.method ?? 'GET', res);
    } catch (error) {
      logger.warn({ err: error, url: req.url }, 'feed-server: request failed');
      if (!res.headersSent) sendJson(res, 500, venue.errorBody('An unknown error occurred while processing the request.'));
      else res.destroy();
    }
  };

  const wss = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    perMessageDeflate: false,
    maxPayload: MAX_INCOMING_MESSAGE_BYTES,
  });

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => socket.destroy());
    let route: UpgradeRoute;
    try {
      route = venue.routeUpgrade(new URL(req.url ?? '/', 'http://localhost'));
    } catch {
      route = { status: 400, message: 'malformed URL' };
    }
    if ('status' in route) {
      rejectUpgrade(socket, route.status, venue.errorBody(route.message));
      stats.rejectedUpgrades++;
      return;
    }
    if (sessions.size >= config.maxClients) {
      rejectUpgrade(socket, 429, venue.errorBody(`too many clients: at most ${config.maxClients}`));
      stats.rejectedUpgrades++;
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, route));
  };

  const onConnection = (ws: WebSocket, route: Extract<UpgradeRoute, { open: unknown }>): void => {
    if (closing) {
      ws.terminate();
      return;
    }
    const session = new Session(nextClientId++, ws, context);
    const handler = route.open(session);
    sessions.set(session, handler);
    stats.clients = sessions.size;
    stats.connections++;
    logger.info({ client: session.id, ...route.detail }, 'feed-server: client connected');
    ws.on('pong', () => {
      session.lastPongAt = clock();
    });
    ws.on('message', (data, isBinary) => {
      if (!session.admitMessage(config.maxIncomingMessagesPerSecond)) {
        ws.close(1008, 'Too many requests');
        return;
      }
      handler.onMessage(isBinary ? null : data.toString());
    });
    ws.on('error', (error) => logger.debug({ client: session.id, err: error }, 'feed-server: client socket error'));
    ws.on('close', (code) => {
      session.stop();
      handler.onClose();
      sessions.delete(session);
      stats.clients = sessions.size;
      logger.info({ client: session.id, code }, 'feed-server: client disconnected');
    });
  };

  const pingTimer = setInterval(() => {
    const now = clock();
    for (const session of sessions.keys()) {
      if (now - session.lastPongAt > config.pongTimeoutMs) {
        stats.pongTimeouts++;
        logger.info({ client: session.id }, 'feed-server: no pong in time; dropping client');
        session.stop();
        session.socket.terminate();
      } else {
        session.socket.ping();
      }
    }
  }, config.pingIntervalMs);

  const server = createServer(onRequest);
  server.on('upgrade', onUpgrade);
  // Websocket clients plus a margin for REST calls; anything beyond is refused by the kernel.
  server.maxConnections = config.maxClients * 2 + 32;

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    clearInterval(pingTimer);
    throw error;
  }
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  const hostForUrl = config.host.includes(':') ? `[${config.host}]` : config.host;
  const { summary } = venue;
  logger.info(
    {
      venue: config.venue,
      url: `http://${hostForUrl}:${port}`,
      entries: summary.entries,
      streams: summary.streams,
      symbols: summary.symbols,
      spanMs: Math.round(summary.spanMs),
      skippedLines: summary.skippedLines,
      loadMs: Math.round(performance.now() - loadStarted),
      speed: config.speed,
      loop: config.loop,
    },
    'feed-server: listening',
  );

  const close = (): Promise<void> => {
    closing ??= (async () => {
      clearInterval(pingTimer);
      await Promise.all([...sessions.keys()].map((session) => closeSession(session)));
      server.closeAllConnections();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
      venue.reportAtClose(logger);
    })();
    return closing;
  };

  return {
    venue: config.venue,
    url: `http://${hostForUrl}:${port}`,
    wsUrl: `ws://${hostForUrl}:${port}`,
    port,
    stats,
    recording: summary,
    dropConnections: () => {
      let dropped = 0;
      for (const session of sessions.keys()) {
        session.stop();
        session.socket.terminate();
        dropped++;
      }
      stats.droppedByFault += dropped;
      logger.info({ dropped }, 'feed-server: fault: dropped every connection');
      return dropped;
    },
    skipBookUpdates: (count = 1) => {
      if (!Number.isInteger(count) || count < 1) throw new RangeError(`skipBookUpdates: count must be a positive integer, got ${count}`);
      for (const session of sessions.keys()) session.skipUpdates(count);
      logger.info({ count, clients: sessions.size }, 'feed-server: fault: clients will miss book updates');
    },
    close,
  };
}

/** Closes with 1001 (going away) and waits for the handshake, terminating a silent peer. */
function closeSession(session: Session): Promise<void> {
  session.stop();
  const socket = session.socket;
  if (socket.readyState === socket.CLOSED) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const force = setTimeout(() => socket.terminate(), CLOSE_GRACE_MS);
    socket.once('close', () => {
      clearTimeout(force);
      resolve();
    });
    socket.close(1001, 'Server shutting down');
  });
}

/** Answers an upgrade request with a plain HTTP error instead of the handshake. */
function rejectUpgrade(socket: Duplex, status: number, errorBody: unknown): void {
  const body = JSON.stringify(errorBody);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
      'Connection: close\r\n' +
      'Content-Type: application/json;charset=UTF-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
