// The two WebSocket routes.
//
// /v1/ingest: a producer streams canonical messages (snapshots, trades), one or an array of at
//   most `ingestMaxBatch` per frame. Every frame that is read is answered by one error frame
//   per bad message, then one ack listing the accepted snapshots, once all of its messages have
//   taken their turn in the ingest scheduler (src/service/ingest-scheduler.ts), which shares the
//   engine fairly between producers. A frame that is not read at all (malformed or too deeply
//   nested JSON, too many messages, over the rate limit) is answered by one error frame only.
//   The rate limit counts messages when they arrive: `ingestRatePerSecond` per connection, with
//   a one-second burst. While a producer has a frame waiting, its socket is not read (TCP
//   pushes back). The connection survives bad input; it is closed with 1008 for persistent
//   flooding and 1009 (by ws) for an oversized frame. With a token configured the upgrade
//   itself is refused with 401; over `maxIngestConnections` with 503.
//
// /v1/stream: a client sends {"subscribe":[...]} / {"unsubscribe":[...]} and receives every
//   new prediction of its symbols. Each subscriber has a bounded queue: frames are written only
//   while the socket's send buffer is below a threshold; when the queue is full it is conflated
//   to the newest prediction per symbol (the next frame says how many were skipped); a
//   subscriber whose send buffer does not drain for `stuckMs` is closed with 1013 (the close
//   frame queues behind what it has not read; it is cut off only if it has not read that far
//   within `closeGraceMs`). Clients are pinged every `streamPingSeconds`; one that has not answered the
//   previous ping is half-open and is terminated. Over `maxStreamConnections` the upgrade is
//   refused with 503.
import fastifyWebsocket from '@fastify/websocket';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { parseJsonBounded } from '../domain/json-edge.js';
import { describeIssues } from '../domain/schemas.js';
import { rejected } from '../domain/types.js';
import type { Prediction, Resolution } from '../engine/symbol-engine.js';
import { registerService } from '../service/plugins/index.js';
import type { IngestOutcome, PushLane, ServiceRuntime } from '../service/runtime.js';
import type { StreamStats } from '../service/stream-stats.js';
import type { IngestPort } from '../service/views.js';
import { ingestQuery, streamCommand, zodValidator, type IngestQuery } from './api-schemas.js';
import { splitStreamId } from '../domain/stream.js';
import { requireToken, type Authorise } from './auth.js';
import { predictionView } from './rest.js';

export { StreamStats } from '../service/stream-stats.js';

/** Counters of the WebSocket routes, read by the Prometheus metrics. */

/** The WebSocket counters of `runtime`, for callers that hold the runtime rather than the app (tests, benches). */
export function streamStatsOf(runtime: ServiceRuntime): StreamStats {
  return runtime.streamStats;
}

export interface StreamLimits {
  /** A subscriber is written to only while its socket buffers less than this many bytes. */
  readonly sendBufferBytes: number;
  /** A subscriber that stays at or above `sendBufferBytes` this long is closed with 1013. */
  readonly stuckMs: number;
  /** How often waiting queues are retried and stuck subscribers looked for. */
  readonly drainIntervalMs: number;
  /** An ingest producer whose unread replies exceed this is closed with 1008. */
  readonly ingestReplyBufferBytes: number;
  /** A subscriber closed for being slow has this long to read up to its close frame before it is cut off. */
  readonly closeGraceMs: number;
}

export const defaultStreamLimits: StreamLimits = {
  sendBufferBytes: 512 * 1024,
  stuckMs: 5000,
  drainIntervalMs: 50,
  ingestReplyBufferBytes: 8 * 1024 * 1024,
  closeGraceMs: 30_000,
};

const streamCommandSchema = streamCommand;

const CLOSE_POLICY = 1008;
const CLOSE_INTERNAL_ERROR = 1011;
const CLOSE_TRY_AGAIN_LATER = 1013;
const CLOSE_GOING_AWAY = 1001;
const TEXT_FRAME = { binary: false } as const;

export interface WebSocketRouteOptions {
  /** The preHandler of /v1/ingest; the configured bearer token by default. */
  readonly authorise?: Authorise;
  readonly limits?: StreamLimits;
  /** Serve /v1/ingest (true by default); the api role has no engine to push into and serves /v1/stream alone. */
  readonly ingest?: boolean;
}

/** Only the WebSocket routes, over a runtime the caller starts and stops (tests with small limits). */
export async function registerWebSocketRoutes(app: FastifyInstance, runtime: ServiceRuntime, authorise: Authorise, limits: StreamLimits = defaultStreamLimits): Promise<void> {
  await registerService(app, { runtime });
  await app.register(webSocketRoutes, { authorise, limits });
}

async function registerStreamRoutes(app: FastifyInstance, options: WebSocketRouteOptions): Promise<void> {
  const { serviceConfig: config, streamStats: stats, predictions } = app;
  const authorise = options.authorise ?? requireToken(config.token);
  const limits = options.limits ?? defaultStreamLimits;
  const subscribers = new Set<Subscriber>();
  const frames = new PredictionFrames();
  const corker = new TurnCorker();

  await app.register(fastifyWebsocket, {
    options: { maxPayload: config.wsMaxFrameBytes },
    // Tell clients why the connection ends instead of a bare close.
    preClose() {
      for (const client of app.websocketServer.clients) client.close(CLOSE_GOING_AWAY, 'server shutting down');
      app.websocketServer.close();
    },
    errorHandler(error, socket, request) {
      request.log.debug({ err: error }, 'websocket error');
      socket.terminate();
    },
  });

  const drainTimer = setInterval(() => {
    const now = performance.now();
    for (const subscriber of subscribers) subscriber.tick(now);
  }, limits.drainIntervalMs);
  drainTimer.unref();
  app.addHook('onClose', async () => clearInterval(drainTimer));

  const refuseOver = (count: () => number, limit: number, what: string) => async (_request: FastifyRequest, reply: FastifyReply) => {
    if (count() < limit) return;
    stats.connectionsRefused++;
    return reply
      .code(503)
      .header('retry-after', '5')
      .send({ error: 'Service Unavailable', message: `${limit} ${what} connections are open; try again later` });
  };

  if (options.ingest !== false) {
    app.get(
      '/v1/ingest',
      {
        websocket: true,
        schema: { querystring: ingestQuery },
        // The query schema is zod's: compiled here, so the route also works on an app without the zod compiler (registerWebSocketRoutes).
        validatorCompiler: zodValidator,
        preHandler: [authorise, refuseOver(() => stats.ingestConnections, config.maxIngestConnections, 'ingest')],
      },
      (socket, request) => {
        stats.ingestConnections++;
        const producer = new Producer(socket, app.ingest, (request.query as IngestQuery).venue, config.ingestRatePerSecond, stats, limits, request.log, config.ingestMaxBatch);
        socket.on('message', (data: Buffer, isBinary: boolean) => guarded(stats, request.log, socket, () => producer.onFrame(data, isBinary)));
        request.log.info('ingest connection opened');
        socket.on('close', (code: number) => {
          stats.ingestConnections--;
          producer.close();
          request.log.info({ frames: producer.frames, code }, 'ingest connection closed');
        });
      },
    );
  }

  app.get('/v1/stream', { websocket: true, preHandler: refuseOver(() => stats.subscribers, config.maxStreamConnections, 'stream') }, (socket, request) => {
    const subscriber = new Subscriber(socket, config.subscriberQueue, stats, limits, frames, corker, request.log);
    subscribers.add(subscriber);
    stats.subscribers++;
    const unsubscribe = predictions.subscribe((prediction) => subscriber.offer(prediction));
    socket.on('message', (data: Buffer) => guarded(stats, request.log, socket, () => subscriber.onCommand(data, config.maxSymbols)));
    socket.on('pong', () => subscriber.onPong());
    request.log.info('stream subscriber connected');
    socket.on('close', (code: number) => {
      unsubscribe();
      subscribers.delete(subscriber);
      stats.subscribers--;
      subscriber.discardQueue();
      request.log.info({ code }, 'stream subscriber disconnected');
    });
  });

  const pingMs = config.streamPingSeconds * 1000;
  if (pingMs > 0) {
    const pingTimer = setInterval(() => {
      for (const subscriber of subscribers) subscriber.ping();
    }, pingMs);
    pingTimer.unref();
    app.addHook('onClose', async () => clearInterval(pingTimer));
  }
}

/**
 * /v1/ingest and /v1/stream, over push ingest and the prediction bus; counting into `streamStats`.
 * Not encapsulated: `websocketServer` is the app's, for whoever closes or inspects its clients.
 */
export const webSocketRoutes = fp(registerStreamRoutes, { name: 'websocket-routes', dependencies: ['config', 'engine', 'predictions'] });

/**
 * Whatever a socket handler throws stays here: counted, logged, and the connection closed with
 * 1011, so one frame can never take the process down with it.
 */
function guarded(stats: StreamStats, log: FastifyBaseLogger, socket: WebSocket, handle: () => void): void {
  try {
    handle();
  } catch (error) {
    stats.handlerErrors++;
    log.error({ err: error }, 'websocket handler failed; closing the connection');
    try {
      socket.close(CLOSE_INTERNAL_ERROR, 'internal error');
    } catch {
      socket.terminate();
    }
  }
}

/**
 * One ingest connection. A token bucket of `ingestRatePerSecond` messages with a one-second
 * burst is charged when a frame arrives (not when it is processed, so a backlog cannot refill
 * it), by the number of messages in the frame. Accepted frames wait in the producer's lane of
 * the ingest scheduler; past one full frame of unanswered messages the socket is paused.
 */
class Producer {
  frames = 0;
  private tokens: number;
  private lastRefill = performance.now();
  private droppedWindowStart = performance.now();
  private droppedInWindow = 0;
  private readonly lane: PushLane;
  /**
   * Messages accepted and not yet answered. Past one full frame's worth the socket is not read,
   * so a producer buffers at most about two frames here however fast it sends; counted in
   * messages, not frames, so a producer of small frames can have many in flight and its acks,
   * each waiting for a worker thread's prediction, do not queue behind one another.
   */
  private unanswered = 0;

  constructor(
    private readonly socket: WebSocket,
    private readonly ingest: IngestPort,
    venue: string,
    private readonly ratePerSecond: number,
    private readonly stats: StreamStats,
    private readonly limits: StreamLimits,
    private readonly log: FastifyBaseLogger,
    /** One full frame (`ingestMaxBatch` messages): past it the socket is not read. */
    private readonly maxUnanswered: number,
  ) {
    this.tokens = ratePerSecond;
    this.lane = ingest.lane('ws-ingest', venue);
  }

  onFrame(data: Buffer, isBinary: boolean): void {
    // Frames still arriving after this side closed the connection are not ingested.
    if (this.socket.readyState !== this.socket.OPEN) return;
    const frame = ++this.frames;
    const text = data.toString('utf8');
    const parsed = parseJsonBounded(text, `frame ${frame}${isBinary ? ' (binary)' : ''}`);
    if (!parsed.ok) {
      // Through the engine, so malformed frames are counted with every other rejection.
      this.ingest.reject(rejected(parsed.reason, parsed.detail, text.slice(0, 200), null));
      this.reply({ type: 'error', frame, reason: parsed.reason, detail: parsed.detail });
      return;
    }
    // A frame refused whole (empty, too many messages) is answered at once and costs no tokens.
    const messages = this.ingest.messageCount(parsed.value);
    if (messages !== null && !this.admit(frame, messages)) return;
    const counted = messages ?? 0;
    this.unanswered += counted;
    if (this.unanswered > this.maxUnanswered) this.socket.pause();
    this.lane.submit(parsed.value, (outcome) => this.answer(frame, counted, outcome));
  }

  private answer(frame: number, messages: number, outcome: IngestOutcome): void {
    this.unanswered -= messages;
    for (const { reason, detail } of outcome.rejected) this.reply({ type: 'error', frame, reason, detail });
    this.reply({ type: 'ack', frame, accepted: outcome.accepted, ...(outcome.trades > 0 ? { trades: outcome.trades } : {}) });
    if (this.unanswered <= this.maxUnanswered && this.socket.isPaused) this.socket.resume();
  }

  private admit(frame: number, messages: number): boolean {
    const rate = this.ratePerSecond;
    const now = performance.now();
    this.tokens = Math.min(rate, this.tokens + ((now - this.lastRefill) * rate) / 1000);
    this.lastRefill = now;
    if (this.tokens >= messages) {
      this.tokens -= messages;
      return true;
    }
    this.stats.rateLimited++;
    this.ingest.reject(rejected('rate_limited', `frame ${frame}: over ${rate} messages/s on this connection`, `[${messages} messages]`, null));
    if (now - this.droppedWindowStart > 1000) {
      this.droppedWindowStart = now;
      this.droppedInWindow = 0;
    }
    // A producer refused this often within a second is not going to slow down.
    if (++this.droppedInWindow > Math.max(10, rate / 10)) {
      this.log.warn({ frames: this.frames }, 'closing an ingest producer that keeps exceeding its rate limit');
      this.socket.close(CLOSE_POLICY, `rate limit of ${rate} messages/s exceeded persistently`);
      return false;
    }
    this.reply({ type: 'error', frame, reason: 'rate_limited', detail: `over ${rate} messages/s: frame ${frame} (${messages} messages) dropped` });
    return false;
  }

  close(): void {
    this.lane.close();
  }

  private reply(message: object): void {
    if (this.socket.readyState !== this.socket.OPEN) return;
    if (this.socket.bufferedAmount > this.limits.ingestReplyBufferBytes) {
      this.socket.close(CLOSE_POLICY, 'producer does not read its replies');
      return;
    }
    this.socket.send(JSON.stringify(message));
  }
}

const PREDICTION_PREFIX = '{"type":"prediction",';

/** Every subscriber of a symbol is sent the same bytes: the latest prediction is serialised once. */
class PredictionFrames {
  private prediction: Prediction | null = null;
  private frame: Buffer = Buffer.alloc(0);

  of(prediction: Prediction): Buffer {
    if (prediction !== this.prediction) {
      this.frame = Buffer.from(JSON.stringify({ type: 'prediction', ...predictionView(prediction) }));
      this.prediction = prediction;
    }
    return this.frame;
  }
}

/**
 * A prediction goes to every subscriber, and each ws.send is one write syscall. Under load
 * several predictions are made in one turn of the event loop (reads from several producers,
 * a read carrying many frames, a batch); corking each subscriber's TCP socket until the
 * loop's check phase writes them in one syscall, at the cost of the rest of the poll phase. ws exposes no batching, hence its (stable, widely used) `_socket`.
 */
class TurnCorker {
  private readonly corked = new Set<Duplex>();
  private uncorkScheduled = false;
  private readonly uncorkAll = (): void => {
    this.uncorkScheduled = false;
    for (const raw of this.corked) raw.uncork();
    this.corked.clear();
  };

  corkForThisTurn(socket: WebSocket): void {
    const raw = (socket as unknown as { _socket?: Duplex })._socket;
    if (!raw || this.corked.has(raw)) return;
    raw.cork();
    this.corked.add(raw);
    if (!this.uncorkScheduled) {
      this.uncorkScheduled = true;
      setImmediate(this.uncorkAll);
    }
  }
}

/** One /v1/stream connection: its symbols and its bounded queue of unsent predictions. */
class Subscriber {
  private readonly symbols = new Set<string>();
  private queue: Prediction[] = [];
  /** Predictions skipped since the last frame sent; reported in the next one. */
  private skipped = 0;
  private lastWritable = performance.now();
  private closing = false;
  /** When the 1013 close was sent. */
  private closedAt: number | null = null;
  private awaitingPong = false;

  constructor(
    private readonly socket: WebSocket,
    private readonly capacity: number,
    private readonly stats: StreamStats,
    private readonly limits: StreamLimits,
    private readonly frames: PredictionFrames,
    private readonly corker: TurnCorker,
    private readonly log: FastifyBaseLogger,
  ) {}

  /** A subscription names a stream (`venue:symbol`) or a symbol, which takes it from every venue. */
  private wants(stream: string): boolean {
    return this.symbols.has(stream) || this.symbols.has(splitStreamId(stream).symbol);
  }

  offer(prediction: Prediction): void {
    if (this.closing || !this.wants(prediction.symbol)) return;
    if (this.queue.length === 0 && this.writable()) {
      this.send(prediction);
      return;
    }
    this.queue.push(prediction);
    this.stats.queued++;
    if (this.queue.length > this.capacity) this.conflate();
    this.drain();
  }

  /** The drain timer: retry a waiting queue, and close a subscriber that stopped reading. */
  tick(now: number): void {
    if (this.closing) {
      if (this.socket.readyState === this.socket.CLOSING) this.cutOffIfStalled(now);
      return;
    }
    if (this.socket.readyState !== this.socket.OPEN) return;
    if (this.writable()) {
      this.drain();
      return;
    }
    if (now - this.lastWritable > this.limits.stuckMs) {
      this.closing = true;
      this.stats.slowClosed++;
      this.log.warn({ symbols: [...this.symbols], queued: this.queue.length, bufferedBytes: this.socket.bufferedAmount }, 'closing a stream subscriber that stopped reading');
      this.discardQueue();
      // The close frame waits behind what the client has not read yet. A client that reads it
      // within `closeGraceMs` learns why (1013); only then is it cut off.
      this.socket.close(CLOSE_TRY_AGAIN_LATER, `too slow: send buffer over ${this.limits.sendBufferBytes} bytes for ${this.limits.stuckMs} ms`);
      this.closedAt = now;
    }
  }

  /**
   * Progress of a socket that has stopped reading cannot be seen from here (kernel buffers on
   * both ends hide it), so a closed subscriber gets a fixed grace to read up to its close frame;
   * only then is it cut off.
   */
  private cutOffIfStalled(now: number): void {
    if (this.closedAt !== null && now - this.closedAt > this.limits.closeGraceMs) {
      this.stats.slowTerminated++;
      this.socket.terminate();
    }
  }

  /** Sends a ping; a client that has not answered the previous one is half-open and is dropped. */
  ping(): void {
    if (this.socket.readyState !== this.socket.OPEN) return;
    if (this.awaitingPong) {
      this.stats.halfOpenClosed++;
      this.log.warn({ symbols: [...this.symbols] }, 'terminating a stream client that did not answer a ping');
      this.socket.terminate();
      return;
    }
    this.awaitingPong = true;
    this.socket.ping();
  }

  onPong(): void {
    this.awaitingPong = false;
  }

  onCommand(data: Buffer, maxSymbols: number): void {
    const command = parseJsonBounded(data.toString('utf8'), '(root)');
    if (!command.ok) {
      this.sendControl({ type: 'error', reason: command.reason, detail: command.detail });
      return;
    }
    const parsed = streamCommandSchema.safeParse(command.value);
    if (!parsed.success) {
      this.sendControl({ type: 'error', reason: 'schema', detail: `expected {"subscribe":[symbols]} or {"unsubscribe":[symbols]}: ${describeIssues(parsed.error)}` });
      return;
    }
    if ('subscribe' in parsed.data) {
      const added = parsed.data.subscribe.filter((symbol) => !this.symbols.has(symbol));
      if (this.symbols.size + new Set(added).size > maxSymbols) {
        this.sendControl({ type: 'error', reason: 'schema', detail: `subscribe: at most ${maxSymbols} symbols per connection` });
        return;
      }
      for (const symbol of added) this.symbols.add(symbol);
    } else {
      for (const symbol of parsed.data.unsubscribe) this.symbols.delete(symbol);
      this.forgetUnsubscribed();
    }
    this.sendControl({ type: 'subscriptions', symbols: [...this.symbols] });
  }

  discardQueue(): void {
    this.stats.dropped += this.queue.length;
    this.stats.queued -= this.queue.length;
    this.queue = [];
  }

  private writable(): boolean {
    if (this.socket.readyState !== this.socket.OPEN) return false;
    if (this.socket.bufferedAmount >= this.limits.sendBufferBytes) return false;
    this.lastWritable = performance.now();
    return true;
  }

  private drain(): void {
    let sent = 0;
    while (sent < this.queue.length && this.writable()) this.send(this.queue[sent++]);
    if (sent > 0) {
      this.queue.splice(0, sent);
      this.stats.queued -= sent;
    }
  }

  /**
   * Keeps the newest prediction of each symbol, in the order they were made. What the dropped
   * ones resolved travels on in the kept one (oldest first), so a client still learns the label
   * of every prediction it was sent.
   */
  private conflate(): void {
    const seen = new Set<string>();
    const kept: Prediction[] = [];
    // Per symbol, the resolutions of its dropped predictions, newest first as the loop meets them.
    let carried: Map<string, Array<readonly Resolution[]>> | null = null;
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const prediction = this.queue[i];
      if (seen.has(prediction.symbol)) {
        if (prediction.resolved) {
          carried ??= new Map();
          const lists = carried.get(prediction.symbol);
          if (lists) lists.push(prediction.resolved);
          else carried.set(prediction.symbol, [prediction.resolved]);
        }
        continue;
      }
      seen.add(prediction.symbol);
      kept.push(prediction);
    }
    kept.reverse();
    if (carried) {
      for (let k = 0; k < kept.length; k++) {
        const lists = carried.get(kept[k].symbol);
        if (lists) kept[k] = { ...kept[k], resolved: [...lists.reverse().flat(), ...(kept[k].resolved ?? [])] };
      }
    }
    const conflated = this.queue.length - kept.length;
    // More symbols waiting than the queue holds: the oldest symbols' predictions go.
    const overflow = Math.max(0, kept.length - this.capacity);
    this.stats.conflated += conflated;
    this.stats.dropped += overflow;
    this.stats.queued -= conflated + overflow;
    this.skipped += conflated + overflow;
    this.queue = overflow > 0 ? kept.slice(overflow) : kept;
  }

  private forgetUnsubscribed(): void {
    const before = this.queue.length;
    this.queue = this.queue.filter((prediction) => this.wants(prediction.symbol));
    this.stats.queued -= before - this.queue.length;
  }

  private send(prediction: Prediction): void {
    let frame = this.frames.of(prediction);
    if (this.skipped > 0) {
      frame = Buffer.concat([Buffer.from(`${PREDICTION_PREFIX}"conflated":${this.skipped},`), frame.subarray(PREDICTION_PREFIX.length)]);
      this.skipped = 0;
    }
    this.corker.corkForThisTurn(this.socket);
    this.socket.send(frame, TEXT_FRAME);
  }

  private sendControl(message: object): void {
    if (this.socket.readyState === this.socket.OPEN) this.socket.send(JSON.stringify(message));
  }
}
