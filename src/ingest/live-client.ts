// The live source: one websocket connection to one venue for a list of symbols, turned into
// canonical MarketMessages by that venue's FrameMapper. The only place that touches a live
// socket; everything downstream is shared with replay.
//
// Continuity is explicit: every lost connection becomes a `disconnect` message, the mapper
// forgets its books, and the client reconnects with backoff, resubscribes and resyncs each
// symbol (REST snapshot or resubscription). A slow consumer gets the newest book of each
// symbol rather than an ever-growing backlog, and every trade in order (dropped, counted and
// marked by a disconnect only far beyond normal lag; see ConflatingQueue).
//
// The pieces: `connection.ts` (one socket and its timers, the reconnect delay), `resync.ts`
// (when each symbol resyncs, the REST fetch), `conflating-queue.ts` (the bounded queue to the
// consumer). Here they are put together as `liveMessages`, an async generator whose `finally`
// closes the socket and stops every timer, and `createLiveFeed`, the same with stats and close().
import { z } from 'zod';
import type { Disconnect, EpochMs, MarketMessage } from '../domain/types.js';
import { redactedError, redactText } from '../domain/redact.js';
import { sampleOf } from '../domain/types.js';
import type { BookDepth, FrameMapper, LiveProtocol, Venue } from '../venues/types.js';
import { Backoff, type BackoffPolicy, checkBackoffPolicy, defaultBackoffPolicy } from './backoff.js';
import { ConflatingQueue, DEFAULT_MAX_PENDING_FLOW } from './conflating-queue.js';
import { type ConnectionOutcome, ReconnectDelay, VenueConnection } from './connection.js';
import { fetchSnapshot, ResyncScheduler } from './resync.js';

export { ConflatingQueue, DEFAULT_MAX_PENDING_FLOW, type ConflatingQueueLimits } from './conflating-queue.js';
export { retryAfterMs } from './resync.js';

/** The subset of a pino logger the client uses; a pino Logger satisfies it. */
export interface LiveFeedLogger {
  debug(fields: object, message?: string): void;
  info(fields: object, message?: string): void;
  warn(fields: object, message?: string): void;
  error(fields: object, message?: string): void;
}

export interface LiveFeedConfig {
  /** Base websocket URL; the venue's protocol turns it into the connect URL. */
  readonly url: string;
  /** Base REST URL, for venues that sync a diff stream against a REST snapshot. */
  readonly restUrl?: string;
  readonly symbols: readonly string[];
  /**
   * Which book stream to follow where the venue offers a choice (Binance spot and USDⓈ-M futures):
   * `diff` (default), the diff stream synced to REST snapshots, or 5, 10 or 20, the partial-depth
   * stream of that many levels, a whole book in every frame. See `feedDepthSchema`.
   */
  readonly depth?: BookDepth;
}

/** A feed's `depth` as configuration may give it (JSON, environment): checked once at the edge. */
export const feedDepthSchema = z.union([z.literal('diff'), z.literal(5), z.literal(10), z.literal(20)]);

/** The venue subscribing the configured depth; an Error naming `depth` when it cannot. */
function venueWithDepth(venue: Venue, depth: unknown): Venue {
  if (depth === undefined) return venue;
  const parsed = feedDepthSchema.safeParse(depth);
  if (!parsed.success) throw new Error(`depth: expected "diff", 5, 10 or 20, got ${sampleOf(JSON.stringify(depth), 40)}`);
  if (venue.withBookDepth === undefined) throw new Error(`depth: venue ${venue.id} offers no choice of book depth`);
  try {
    return venue.withBookDepth(parsed.data);
  } catch (error) {
    throw new Error(`depth: ${error instanceof Error ? error.message : String(error)}`);
  }
}

export interface LiveFeedOptions {
  /** Clock for localTs and health bookkeeping; the entry point passes Date.now. */
  readonly now: () => EpochMs;
  /** Levels per side in emitted snapshots (default 10). */
  readonly levels?: number;
  /** No frame for this long counts as a dead connection (default 30 000 ms). */
  readonly silenceTimeoutMs?: number;
  /** Websocket ping, plus the protocol's app-level ping frame, this often (default 15 000 ms; 0 = never). */
  readonly pingIntervalMs?: number;
  /** Opening handshake deadline (default 10 000 ms). */
  readonly handshakeTimeoutMs?: number;
  /** Reconnect and resync delays (defaults: defaultBackoffPolicy). */
  readonly backoff?: Partial<BackoffPolicy>;
  /**
   * A connection open this long with every symbol in sync resets the reconnect backoff, and a
   * symbol in sync this long resets its resync attempts (default 60 000 ms).
   */
  readonly healthyAfterMs?: number;
  /**
   * A REST snapshot request (headers and body) that takes longer is abandoned and retried
   * (default 10 000 ms; without it undici waits up to 300 s and the symbol stays unsynced).
   */
  readonly snapshotTimeoutMs?: number;
  /** Resync attempts per symbol before the whole connection is dropped and rebuilt (default 5). */
  readonly maxResyncAttempts?: number;
  /** Snapshots of one symbol that may wait for the consumer before newer ones conflate (default 1). */
  readonly maxPendingPerSymbol?: number;
  /** Rejections that may wait for the consumer; later ones are dropped and counted (default 100). */
  readonly maxPendingRejections?: number;
  /**
   * Trades that may wait for the consumer; beyond it newer ones are dropped, counted and marked
   * by a disconnect of their symbol (default 10 000). See ConflatingQueue.
   */
  readonly maxPendingFlow?: number;
  /** Upper bound on waiting messages; raised to the minimum the other limits need. */
  readonly maxQueued?: number;
  /** Uniform [0, 1) source for backoff jitter (default Math.random). */
  readonly random?: () => number;
  readonly logger?: LiveFeedLogger;
  /** REST client for venue snapshots (default the global fetch). */
  readonly fetch?: typeof globalThis.fetch;
  /** Ends `liveMessages` (as close() ends a LiveFeed): the socket closes, every timer stops. */
  readonly signal?: AbortSignal;
}

export interface LiveFeedStats {
  /** Connections that completed the websocket handshake. */
  readonly connects: number;
  /** Of those, the ones after the first. */
  readonly reconnects: number;
  readonly frames: number;
  readonly snapshotFetches: number;
  readonly snapshotFailures: number;
  /** Resyncs started (REST re-fetch or resubscription), including the first sync of each symbol. */
  readonly resyncs: number;
  /** Snapshots replaced by a newer one of the same symbol before the consumer took them. */
  readonly conflatedSnapshots: number;
  /** Rejections over the cap and redundant disconnect markers dropped while the consumer lagged. */
  readonly droppedMessages: number;
  /** Trades dropped because `maxPendingFlow` trades were waiting. */
  readonly droppedTrades: number;
  /** Messages waiting for the consumer now (trades included), and the most that ever waited. */
  readonly queued: number;
  readonly queueHighWater: number;
  /** Books, markers and rejections that may wait before the queue compacts. */
  readonly queueCapacity: number;
  /** Trades waiting now, and the bound beyond which newer ones are dropped. */
  readonly queuedTrades: number;
  readonly maxPendingFlow: number;
  readonly lastError: string | null;
  readonly connected: boolean;
  /** Per symbol: the mapper has a book that continues the venue's stream. */
  readonly synced: Readonly<Record<string, boolean>>;
}

export interface LiveFeed {
  /** The messages of this feed; iterate once. Ends after close() (or when the loop is left). */
  messages(): AsyncIterable<MarketMessage>;
  readonly stats: LiveFeedStats;
  /** Closes the socket, cancels timers and fetches, ends the iterator. Idempotent. */
  close(): Promise<void>;
}

/**
 * The feed's messages, an async generator: connects on the first `next()`, reconnects after every
 * drop (a `disconnect` marks it), and ends when `options.signal` aborts. Leaving the loop
 * (`break`, `return()`, a throw in the consumer) runs its `finally`: the socket is closed and
 * every timer and fetch of the feed stopped before the loop's exit completes. A bad configuration
 * throws here, before anything connects.
 */
export function liveMessages(venue: Venue, config: LiveFeedConfig, options: LiveFeedOptions): AsyncGenerator<MarketMessage, void, undefined> {
  return new LiveSession(venue, config, options).messages();
}

/** A live feed whose messages are iterated once, with its stats, and closed from outside. */
export function createLiveFeed(venue: Venue, config: LiveFeedConfig, options: LiveFeedOptions): LiveFeed {
  const session = new LiveSession(venue, config, options);
  let iterated = false;
  return {
    messages() {
      if (iterated) throw new Error('LiveFeed.messages(): the feed can be iterated only once');
      iterated = true;
      return session.messages();
    },
    get stats() {
      return session.stats;
    },
    close: () => session.close(),
  };
}

/**
 * Everything one feed holds: the mapper, the queue, the counters, the current connection and
 * the resyncs of its symbols. `messages()` drives it; `close()` stops it from anywhere.
 */
class LiveSession {
  private readonly protocol: LiveProtocol;
  private readonly mapper: FrameMapper;
  private readonly queue: ConflatingQueue;
  private readonly queueCapacity: number;
  private readonly maxPendingFlow: number;
  private readonly backoff: Backoff;
  private readonly resync: ResyncScheduler;
  private readonly now: () => EpochMs;
  private readonly fetchImpl: typeof globalThis.fetch;
  private readonly logger: LiveFeedLogger | undefined;
  private readonly symbols: readonly string[];
  private readonly silenceTimeoutMs: number;
  private readonly pingIntervalMs: number;
  private readonly handshakeTimeoutMs: number;
  private readonly healthyAfterMs: number;
  private readonly snapshotTimeoutMs: number;
  private readonly usesRestSnapshots: boolean;
  private readonly signal: AbortSignal | undefined;
  private readonly reconnectDelay = new ReconnectDelay();

  private closed = false;
  private runPromise: Promise<void> | undefined;
  private waiter: ((message: MarketMessage | undefined) => void) | undefined;

  // The current connection. `generation` tags async work (fetches) so that work started for a
  // connection that is gone cannot touch the mapper of the next one.
  private generation = 0;
  private connection: VenueConnection | undefined;
  private connectionAbort: AbortController | undefined;
  private awaitingFirstFrame = false;
  /** The connection is old enough to count as healthy once every symbol is in sync. */
  private healthyDue = false;

  private readonly counters = { connects: 0, frames: 0, snapshotFetches: 0, snapshotFailures: 0 };
  private lastError: string | null = null;
  private connected = false;
  private readonly synced: Record<string, boolean> = {};

  constructor(
    configuredVenue: Venue,
    private readonly config: LiveFeedConfig,
    options: LiveFeedOptions,
  ) {
    const venue = venueWithDepth(configuredVenue, config.depth);
    if (venue.live === null) throw new Error(`venue ${venue.id}: has no live protocol`);
    if (config.symbols.length === 0) throw new Error('symbols: at least one symbol is required');
    this.protocol = venue.live;
    this.symbols = [...config.symbols];
    this.usesRestSnapshots = this.symbols.some((symbol) => this.protocol.snapshotUrl(config.restUrl ?? '', symbol) !== null);
    if (this.usesRestSnapshots && config.restUrl === undefined) {
      throw new Error(`restUrl: venue ${venue.id} syncs against REST snapshots and needs a REST base URL`);
    }
    this.mapper = venue.createMapper({ levels: options.levels ?? 10, symbols: this.symbols });
    this.now = options.now;
    const random = options.random ?? Math.random;
    this.fetchImpl = options.fetch ?? globalThis.fetch;
    this.logger = options.logger;
    this.signal = options.signal;
    this.silenceTimeoutMs = positive('silenceTimeoutMs', options.silenceTimeoutMs ?? 30_000);
    this.pingIntervalMs = nonNegative('pingIntervalMs', options.pingIntervalMs ?? 15_000);
    this.handshakeTimeoutMs = positive('handshakeTimeoutMs', options.handshakeTimeoutMs ?? 10_000);
    this.healthyAfterMs = nonNegative('healthyAfterMs', options.healthyAfterMs ?? 60_000);
    this.snapshotTimeoutMs = positive('snapshotTimeoutMs', options.snapshotTimeoutMs ?? 10_000);
    const maxAttempts = positive('maxResyncAttempts', options.maxResyncAttempts ?? 5);
    const backoffPolicy = checkBackoffPolicy({ ...defaultBackoffPolicy, ...options.backoff });
    this.backoff = new Backoff(backoffPolicy, random);
    this.resync = new ResyncScheduler(
      { backoff: backoffPolicy, random, now: this.now, healthyAfterMs: this.healthyAfterMs, maxAttempts },
      {
        begin: (symbol) => this.beginResync(symbol),
        giveUp: (symbol, attempts) => this.connection?.drop(`resync of ${symbol} failed after ${attempts} attempts`),
      },
    );

    const maxPendingRejections = options.maxPendingRejections ?? 100;
    const minimum = ConflatingQueue.minimumCapacity(this.symbols.length, maxPendingRejections);
    this.queueCapacity = Math.max(minimum, options.maxQueued ?? 0);
    this.maxPendingFlow = options.maxPendingFlow ?? DEFAULT_MAX_PENDING_FLOW;
    this.queue = new ConflatingQueue({
      maxPendingPerSymbol: options.maxPendingPerSymbol ?? 1,
      maxPendingRejections,
      capacity: this.queueCapacity,
      maxPendingFlow: this.maxPendingFlow,
    });
    for (const symbol of this.symbols) this.synced[symbol] = false;
  }

  get stats(): LiveFeedStats {
    return {
      ...this.counters,
      reconnects: Math.max(0, this.counters.connects - 1),
      resyncs: this.resync.started,
      conflatedSnapshots: this.queue.conflated,
      droppedMessages: this.queue.dropped,
      droppedTrades: this.queue.droppedFlow,
      queued: this.queue.length,
      queueHighWater: this.queue.maxLength,
      queueCapacity: this.queueCapacity,
      queuedTrades: this.queue.flowLength,
      maxPendingFlow: this.maxPendingFlow,
      lastError: this.lastError,
      connected: this.connected,
      synced: { ...this.synced },
    };
  }

  /** Runs the feed while it is iterated; its `finally` is the cleanup of every way out. */
  async *messages(): AsyncGenerator<MarketMessage, void, undefined> {
    const onAbort = (): void => void this.close();
    if (this.signal?.aborted) return;
    this.signal?.addEventListener('abort', onAbort, { once: true });
    if (!this.closed) this.runPromise = this.run();
    try {
      while (!this.closed) {
        const message = this.queue.shift() ?? (await this.nextDelivered());
        if (message === undefined) return;
        yield message;
      }
    } finally {
      this.signal?.removeEventListener('abort', onAbort);
      await this.close();
    }
  }

  /** Closes the socket, stops timers and fetches, ends the messages. Idempotent. */
  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.queue.clear();
      this.reconnectDelay.interrupt();
      this.connection?.close('closed by client');
      const waiter = this.waiter;
      this.waiter = undefined;
      waiter?.(undefined);
    }
    await this.runPromise;
  }

  /** The next message delivered while the consumer waits; undefined once closed. */
  private nextDelivered(): Promise<MarketMessage | undefined> {
    return new Promise((resolve) => {
      this.waiter = resolve;
    });
  }

  private deliver(message: MarketMessage): void {
    if (this.closed) return;
    const waiter = this.waiter;
    if (waiter !== undefined) {
      this.waiter = undefined;
      waiter(message);
    } else {
      this.queue.push(message);
    }
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      const outcome = await this.runConnection();
      if (this.closed) break;
      // Trades held for a book that will not come now still happened: they go before the marker.
      const held = this.mapper.releaseHeld?.();
      if (held !== undefined && held.length > 0) this.emitAll(held);
      if (outcome.opened) {
        const marker: Disconnect = { type: 'disconnect', symbol: null, localTs: this.now(), reason: outcome.reason };
        this.deliver(marker);
      }
      this.mapper.reset();
      for (const symbol of Object.keys(this.synced)) this.synced[symbol] = false;
      const delay = this.backoff.next();
      this.logger?.warn(
        { venue: this.protocol.venue, reason: redactText(outcome.reason), attempt: this.backoff.attempts, delayMs: Math.round(delay) },
        'live feed disconnected; reconnecting',
      );
      await this.reconnectDelay.wait(delay);
    }
  }

  private runConnection(): Promise<ConnectionOutcome> {
    const generation = ++this.generation;
    this.connectionAbort = new AbortController();
    this.resync.clear();
    const connection = new VenueConnection(
      {
        url: this.protocol.connectUrl(this.config.url, this.symbols),
        subscribeFrames: this.protocol.subscribeFrames(this.symbols),
        appPing: this.protocol.pingFrame(),
        pingIntervalMs: this.pingIntervalMs,
        silenceTimeoutMs: this.silenceTimeoutMs,
        handshakeTimeoutMs: this.handshakeTimeoutMs,
        healthyAfterMs: this.healthyAfterMs,
      },
      {
        onOpen: () => this.onOpen(),
        onFrame: (text) => {
          if (generation === this.generation && !this.closed) this.onFrame(text);
        },
        onError: (message) => this.noteError(message),
        onDrop: (reason) => this.logger?.warn({ venue: this.protocol.venue, reason }, 'dropping live connection'),
        onHealthy: () => {
          if (generation !== this.generation) return;
          this.healthyDue = true;
          this.resetBackoffIfHealthy();
        },
        onClose: () => this.endConnection(),
      },
    );
    this.connection = connection;
    return connection.outcome;
  }

  private onOpen(): void {
    this.counters.connects += 1;
    this.connected = true;
    this.logger?.info({ venue: this.protocol.venue, symbols: this.symbols, connects: this.counters.connects }, 'live feed connected');
    // REST snapshots wait for the first frame, as Binance's order-book procedure asks: the
    // snapshot must not predate the diffs the mapper starts buffering.
    this.awaitingFirstFrame = this.usesRestSnapshots;
  }

  private onFrame(frame: string): void {
    this.counters.frames += 1;
    this.emitAll(this.mapper.map(frame, this.now()));
    if (this.awaitingFirstFrame) {
      this.awaitingFirstFrame = false;
      for (const symbol of this.symbols) this.startResync(symbol);
    }
    this.serviceResyncRequests();
  }

  private emitAll(messages: readonly MarketMessage[]): void {
    for (let i = 0; i < messages.length; i += 1) {
      const message = messages[i];
      if (message.type === 'book_snapshot') {
        if (this.synced[message.symbol] !== true) this.markSynced(message.symbol);
      } else if (message.type === 'disconnect') {
        if (message.symbol === null) {
          for (const symbol of Object.keys(this.synced)) this.synced[symbol] = false;
        } else {
          this.synced[message.symbol] = false;
        }
      }
      this.deliver(message);
    }
  }

  private markSynced(symbol: string): void {
    this.synced[symbol] = true;
    this.resync.synced(symbol);
    if (this.healthyDue) this.resetBackoffIfHealthy();
  }

  /** Once the connection has lasted healthyAfterMs, the first moment every symbol is in sync. */
  private resetBackoffIfHealthy(): void {
    if (!this.symbols.every((symbol) => this.synced[symbol])) return;
    this.healthyDue = false;
    this.backoff.reset();
  }

  private serviceResyncRequests(): void {
    const symbols = this.mapper.takeResyncRequests();
    for (let i = 0; i < symbols.length; i += 1) this.startResync(symbols[i]);
  }

  private startResync(symbol: string): void {
    this.synced[symbol] = false;
    this.resync.request(symbol);
  }

  /** Fetch a REST snapshot, or drop and re-add the subscription. */
  private beginResync(symbol: string): void {
    if (this.closed) return;
    if (this.usesRestSnapshots) {
      void this.resyncFromRest(symbol, this.generation);
      return;
    }
    const connection = this.connection;
    if (connection === undefined || !connection.isOpen) return;
    for (const frame of this.protocol.resyncFrames([symbol])) connection.send(frame);
    this.logger?.info({ venue: this.protocol.venue, symbol }, 'resubscribed to resync');
  }

  private async resyncFromRest(symbol: string, generation: number): Promise<void> {
    const url = this.protocol.snapshotUrl(this.config.restUrl ?? '', symbol);
    const abort = this.connectionAbort;
    if (url === null || abort === undefined) return;
    this.resync.setInFlight(symbol, true);
    let failure: string | undefined;
    try {
      const fetched = await fetchSnapshot(this.fetchImpl, url, this.snapshotTimeoutMs, abort.signal, this.now);
      if (generation !== this.generation || this.closed) return;
      if (!fetched.ok) {
        failure = fetched.failure;
        if (fetched.retryAfterMs !== null) this.resync.deferBy(symbol, fetched.retryAfterMs);
      } else {
        this.counters.snapshotFetches += 1;
        const localTs = this.now();
        const messages = this.mapper.mapRestSnapshot ? this.mapper.mapRestSnapshot(symbol, fetched.body, localTs) : this.mapper.map(fetched.body, localTs);
        this.emitAll(messages);
        const rejection = messages.find((message) => message.type === 'rejected');
        if (rejection !== undefined && rejection.type === 'rejected') failure = `rejected: ${rejection.detail}`;
      }
    } catch (error) {
      if (generation !== this.generation || this.closed) return;
      failure = error instanceof Error ? error.message : String(error);
    } finally {
      this.resync.setInFlight(symbol, false);
    }
    if (failure !== undefined) {
      this.counters.snapshotFailures += 1;
      this.noteError(`snapshot ${url}: ${failure}`);
      this.startResync(symbol);
    }
    // The mapper may ask again, e.g. a snapshot older than the first buffered diff.
    this.serviceResyncRequests();
  }

  /** Stops every resync and fetch of the connection that just closed (its own timers are stopped). */
  private endConnection(): void {
    this.connected = false;
    this.healthyDue = false;
    this.generation += 1;
    this.connectionAbort?.abort();
    this.resync.clear();
    this.connection = undefined;
  }

  /** Errors quote URLs (a feed's may carry credentials): stored, served and logged redacted. */
  private noteError(message: string): void {
    this.lastError = redactText(message);
    this.logger?.warn({ venue: this.protocol.venue, err: redactedError(this.lastError) }, 'live feed error');
  }
}

function positive(name: string, value: number): number {
  if (!(Number.isFinite(value) && value > 0)) throw new RangeError(`${name}: must be a finite number > 0, got ${value}`);
  return value;
}

function nonNegative(name: string, value: number): number {
  if (!(Number.isFinite(value) && value >= 0)) throw new RangeError(`${name}: must be a finite number >= 0, got ${value}`);
  return value;
}
