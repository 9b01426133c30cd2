// The live source: one websocket connection to one venue for a list of symbols, turned into
// canonical MarketMessages by that venue's FrameMapper. The only place that touches a live
// socket; everything downstream is shared with replay.
//
// Continuity is explicit: every lost connection becomes a `disconnect` message, the mapper
// forgets its books, and the client reconnects with backoff, resubscribes and resyncs each
// symbol (REST snapshot or resubscription). A slow consumer gets the newest book of each
// symbol rather than an ever-growing backlog, and every trade in order (dropped, counted and
// marked by a disconnect only far beyond normal lag; see ConflatingQueue).
import WebSocket from 'ws';
import type { RawData } from 'ws';
import { z } from 'zod';
import type { BookSnapshot, Disconnect, EpochMs, MarketMessage, OrderEvent, Trade } from '../domain/types.js';
import { redactedError, redactText } from '../domain/redact.js';
import { sampleOf } from '../domain/types.js';
import type { BookDepth, FrameMapper, LiveProtocol, Venue } from '../venues/types.js';
import { Backoff, type BackoffPolicy, checkBackoffPolicy, defaultBackoffPolicy } from './backoff.js';

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

export function createLiveFeed(venue: Venue, config: LiveFeedConfig, options: LiveFeedOptions): LiveFeed {
  return new LiveFeedClient(venue, config, options);
}

// ---------------------------------------------------------------------------------------
// The queue between the socket and the consumer.

export interface ConflatingQueueLimits {
  readonly maxPendingPerSymbol: number;
  readonly maxPendingRejections: number;
  /** Books, disconnect markers and rejections that may wait; flow is bounded apart. */
  readonly capacity: number;
  /** Trades and order events that may wait before newer ones are dropped (default DEFAULT_MAX_PENDING_FLOW). */
  readonly maxPendingFlow?: number;
}

/** Minutes of a busy symbol's trades: reached only by a consumer that has stopped keeping up. */
export const DEFAULT_MAX_PENDING_FLOW = 10_000;

/**
 * FIFO of MarketMessages whose length stays bounded however slowly it is drained, and which
 * never reorders what a symbol's engine sees: per symbol, books and flow (trades, order events)
 * come out in the order they went in, and nothing crosses a disconnect.
 *
 * - Snapshots conflate: once `maxPendingPerSymbol` snapshots of a symbol wait, a newer one
 *   replaces the newest waiting one: in place when none of that symbol's flow waits after it,
 *   otherwise by emptying the waiting one's slot and appending the newer one after that flow,
 *   so no book moves ahead of a trade that arrived before it. Never across a barrier.
 * - Flow is never conflated: each trade moves the features of the next book. Up to
 *   `maxPendingFlow` may wait. Beyond that (a consumer far behind) newer flow is dropped and
 *   counted, and a symbol whose flow is dropped gets a `disconnect` at that point (one per run
 *   of drops), so its features restart instead of silently learning from thinned flow.
 * - Disconnects and rejections are barriers: never reordered against anything around them,
 *   never merged with anything. Rejections beyond `maxPendingRejections` are dropped.
 * - When `capacity` books, markers and rejections wait (possible only when barriers keep
 *   splitting snapshots into separate runs), the queue is compacted: a snapshot followed later
 *   by a newer snapshot of the same symbol is dropped (a coarser conflation; flow between them
 *   keeps its place before the newer one), and so is a disconnect that an earlier waiting one
 *   already covers with neither book nor flow of its symbol in between (it tells the consumer
 *   nothing new). Order is untouched. Without flow what survives is at most one snapshot per
 *   symbol plus O(symbols^2) markers plus the rejections, which is what `minimumCapacity`
 *   reserves; each waiting run of flow can keep one marker more, so when compaction cannot get
 *   under `capacity` the next one waits until twice as many are waiting. Books, markers and
 *   rejections thus stay under 2 (capacity + maxPendingFlow), flow under maxPendingFlow.
 */
export class ConflatingQueue {
  private items: (MarketMessage | undefined)[] = [];
  private head = 0;
  /** Waiting slots emptied by a conflated snapshot; `shift` skips them. */
  private holes = 0;
  /** Bumped by every barrier; a snapshot can be overwritten only within its own segment. */
  private segment = 0;
  private readonly slots = new Map<string, SymbolSlot>();
  private pendingRejections = 0;
  private pendingFlow = 0;
  private readonly maxPendingFlow: number;
  /** Books, markers and rejections waiting at which the next append compacts. */
  private compactAt: number;
  private conflatedCount = 0;
  private droppedCount = 0;
  private droppedFlowCount = 0;
  private highWater = 0;

  constructor(private readonly limits: ConflatingQueueLimits) {
    if (!(Number.isInteger(limits.maxPendingPerSymbol) && limits.maxPendingPerSymbol >= 1)) {
      throw new RangeError(`maxPendingPerSymbol: must be an integer >= 1, got ${limits.maxPendingPerSymbol}`);
    }
    if (!(Number.isInteger(limits.maxPendingRejections) && limits.maxPendingRejections >= 0)) {
      throw new RangeError(`maxPendingRejections: must be an integer >= 0, got ${limits.maxPendingRejections}`);
    }
    if (!(Number.isInteger(limits.capacity) && limits.capacity >= 1)) {
      throw new RangeError(`capacity: must be an integer >= 1, got ${limits.capacity}`);
    }
    this.maxPendingFlow = limits.maxPendingFlow ?? DEFAULT_MAX_PENDING_FLOW;
    if (!(Number.isInteger(this.maxPendingFlow) && this.maxPendingFlow >= 1)) {
      throw new RangeError(`maxPendingFlow: must be an integer >= 1, got ${this.maxPendingFlow}`);
    }
    this.compactAt = limits.capacity;
  }

  /** The smallest capacity at which compaction always makes room, for `symbolCount` symbols. */
  static minimumCapacity(symbolCount: number, maxPendingRejections: number): number {
    const markers = 1 + symbolCount + symbolCount * (symbolCount + 1);
    return symbolCount + markers + maxPendingRejections + 1;
  }

  /** Messages waiting, flow included. */
  get length(): number {
    return this.items.length - this.head - this.holes;
  }

  /** Trades and order events waiting. */
  get flowLength(): number {
    return this.pendingFlow;
  }

  get conflated(): number {
    return this.conflatedCount;
  }

  /** Rejections over their cap and redundant disconnect markers. */
  get dropped(): number {
    return this.droppedCount;
  }

  /** Trades and order events dropped because `maxPendingFlow` were waiting. */
  get droppedFlow(): number {
    return this.droppedFlowCount;
  }

  /** The most messages that ever waited at once, flow included. */
  get maxLength(): number {
    return this.highWater;
  }

  push(message: MarketMessage): void {
    switch (message.type) {
      case 'book_snapshot':
        this.pushSnapshot(message);
        return;
      case 'rejected':
        if (this.pendingRejections >= this.limits.maxPendingRejections) {
          this.droppedCount += 1;
          return;
        }
        this.pendingRejections += 1;
        this.append(message, false);
        this.segment += 1;
        return;
      case 'disconnect':
        this.append(message, false);
        this.segment += 1;
        if (message.symbol !== null) this.slotFor(message.symbol).breakIsLatest = true;
        else for (const slot of this.slots.values()) slot.breakIsLatest = true;
        return;
      case 'trade':
      case 'order_event':
        this.pushFlow(message);
        return;
    }
  }

  shift(): MarketMessage | undefined {
    while (this.head < this.items.length) {
      const message = this.items[this.head];
      this.items[this.head] = undefined;
      this.head += 1;
      if (message === undefined) {
        this.holes -= 1;
        continue;
      }
      if (message.type === 'book_snapshot') {
        const slot = this.slots.get(message.symbol);
        if (slot) slot.pending -= 1;
      } else if (message.type === 'rejected') {
        this.pendingRejections -= 1;
      } else if (message.type === 'trade' || message.type === 'order_event') {
        this.pendingFlow -= 1;
      }
      this.afterShift();
      return message;
    }
    return undefined;
  }

  /** Forgets everything waiting (the feed is closing). */
  clear(): void {
    this.items = [];
    this.head = 0;
    this.holes = 0;
    this.slots.clear();
    this.pendingRejections = 0;
    this.pendingFlow = 0;
    this.compactAt = this.limits.capacity;
  }

  private afterShift(): void {
    if (this.head === this.items.length) {
      this.items.length = 0;
      this.head = 0;
      this.holes = 0;
      this.compactAt = this.limits.capacity;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.dropConsumedPrefix();
    }
  }

  private slotFor(symbol: string): SymbolSlot {
    let slot = this.slots.get(symbol);
    if (slot === undefined) {
      slot = { position: -1, segment: -1, pending: 0, flowAfter: false, breakIsLatest: false };
      this.slots.set(symbol, slot);
    }
    return slot;
  }

  private pushSnapshot(snapshot: BookSnapshot): void {
    const slot = this.slotFor(snapshot.symbol);
    // pending > 0 means the newest snapshot of this symbol (at slot.position) is still waiting.
    if (slot.pending >= this.limits.maxPendingPerSymbol && slot.segment === this.segment) {
      this.conflatedCount += 1;
      if (!slot.flowAfter) {
        this.items[slot.position] = snapshot;
        return;
      }
      this.items[slot.position] = undefined;
      this.holes += 1;
      slot.pending -= 1;
    }
    this.append(snapshot, false);
    slot.position = this.items.length - 1;
    slot.segment = this.segment;
    slot.pending += 1;
    slot.flowAfter = false;
    slot.breakIsLatest = false;
  }

  private pushFlow(message: Trade | OrderEvent): void {
    const slot = this.slotFor(message.symbol);
    if (this.pendingFlow >= this.maxPendingFlow) {
      this.droppedFlowCount += 1;
      if (!slot.breakIsLatest) {
        this.push({
          type: 'disconnect',
          symbol: message.symbol,
          localTs: message.localTs,
          reason: `consumer behind: ${this.maxPendingFlow} trades and order events waiting, newer ones of ${message.symbol} dropped`,
        });
      }
      return;
    }
    this.append(message, true);
    this.pendingFlow += 1;
    slot.flowAfter = true;
    slot.breakIsLatest = false;
  }

  private append(message: MarketMessage, flow: boolean): void {
    if (!flow && this.length - this.pendingFlow >= this.compactAt) this.compact();
    this.items.push(message);
    const length = this.length;
    if (length > this.highWater) this.highWater = length;
  }

  private dropConsumedPrefix(): void {
    const consumed = this.head;
    this.items.splice(0, consumed);
    this.head = 0;
    for (const slot of this.slots.values()) slot.position -= consumed;
  }

  private compact(): void {
    const waiting: MarketMessage[] = [];
    for (let i = this.head; i < this.items.length; i += 1) {
      const message = this.items[i];
      if (message !== undefined) waiting.push(message);
    }
    const keep = new Array<boolean>(waiting.length).fill(true);

    // Backwards: keep only the newest snapshot of each symbol.
    const newerSeen = new Set<string>();
    for (let i = waiting.length - 1; i >= 0; i -= 1) {
      const message = waiting[i];
      if (message.type !== 'book_snapshot') continue;
      if (newerSeen.has(message.symbol)) {
        keep[i] = false;
        this.conflatedCount += 1;
      } else {
        newerSeen.add(message.symbol);
      }
    }

    // Forwards: drop disconnects already covered by an earlier kept one with neither book nor
    // flow of their symbol kept in between. `allCoveredExcept` non-null = a null-symbol
    // disconnect covers every symbol except those listed (seen since).
    let allCoveredExcept: Set<string> | null = null;
    const coveredSymbols = new Set<string>();
    for (let i = 0; i < waiting.length; i += 1) {
      const message = waiting[i];
      if (!keep[i]) continue;
      if (message.type === 'book_snapshot' || message.type === 'trade' || message.type === 'order_event') {
        coveredSymbols.delete(message.symbol);
        allCoveredExcept?.add(message.symbol);
      } else if (message.type === 'disconnect') {
        const covered =
          message.symbol === null
            ? allCoveredExcept !== null && allCoveredExcept.size === 0
            : coveredSymbols.has(message.symbol) || (allCoveredExcept !== null && !allCoveredExcept.has(message.symbol));
        if (covered) {
          keep[i] = false;
          this.droppedCount += 1;
        } else if (message.symbol === null) {
          allCoveredExcept = new Set();
          coveredSymbols.clear();
        } else {
          coveredSymbols.add(message.symbol);
        }
      }
    }

    const kept: MarketMessage[] = [];
    for (let i = 0; i < waiting.length; i += 1) if (keep[i]) kept.push(waiting[i]);
    this.items = kept;
    this.head = 0;
    this.holes = 0;
    this.rebuildSlots();
    const barriersAndBooks = kept.length - this.pendingFlow;
    this.compactAt = barriersAndBooks < this.limits.capacity ? this.limits.capacity : 2 * barriersAndBooks;
  }

  /** Recomputes each symbol's newest waiting snapshot after compaction; `breakIsLatest` survives it unchanged. */
  private rebuildSlots(): void {
    for (const slot of this.slots.values()) {
      slot.pending = 0;
      slot.position = -1;
      slot.segment = -1;
      slot.flowAfter = false;
    }
    this.segment += 1;
    let barrierAfter = false;
    for (let i = this.items.length - 1; i >= 0; i -= 1) {
      const message = this.items[i];
      if (message === undefined) continue;
      if (message.type === 'trade' || message.type === 'order_event') {
        const slot = this.slotFor(message.symbol);
        if (slot.pending === 0) slot.flowAfter = true;
        continue;
      }
      if (message.type !== 'book_snapshot') {
        barrierAfter = true;
        continue;
      }
      const slot = this.slotFor(message.symbol);
      if (slot.pending === 0) {
        slot.position = i;
        // Only a snapshot with no barrier after it may still be overwritten in place.
        slot.segment = barrierAfter ? -1 : this.segment;
      }
      slot.pending += 1;
    }
  }
}

interface SymbolSlot {
  /** Index in `items` of the newest waiting snapshot of the symbol (valid while pending > 0). */
  position: number;
  segment: number;
  pending: number;
  /** Flow of the symbol waits after its newest waiting snapshot, which so cannot be overwritten in place. */
  flowAfter: boolean;
  /**
   * The symbol's latest message pushed is a disconnect covering it: its flow can be dropped with
   * no new marker, since the consumer already restarts its features there.
   */
  breakIsLatest: boolean;
}

// ---------------------------------------------------------------------------------------
// The client.

interface ConnectionOutcome {
  readonly opened: boolean;
  readonly reason: string;
}

/** Per symbol, per connection: where its resync stands. */
interface ResyncState {
  attempts: number;
  inFlight: boolean;
  timer: NodeJS.Timeout | undefined;
  backoff: Backoff;
  /** now() when the symbol last came into sync; NaN while it never has on this connection. */
  syncedAt: number;
  /** now() before which the venue asked not to be asked again (Retry-After on 429 or 418). */
  notBefore: number;
}

/**
 * The wait a 429 or 418 answer asks for, ms: Retry-After in seconds or as an HTTP date; absent
 * or unreadable, null (the backoff alone spaces the retry).
 */
export function retryAfterMs(header: string | null, nowMs: number): number | null {
  if (header === null || header.trim() === '') return null;
  const text = header.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isFinite(at) ? Math.max(0, at - nowMs) : null;
}

const CLOSE_GRACE_MS = 1_000;

class LiveFeedClient implements LiveFeed {
  private readonly protocol: LiveProtocol;
  private readonly mapper: FrameMapper;
  private readonly queue: ConflatingQueue;
  private readonly queueCapacity: number;
  private readonly maxPendingFlow: number;
  private readonly backoff: Backoff;
  private readonly backoffPolicy: BackoffPolicy;
  private readonly now: () => EpochMs;
  private readonly random: () => number;
  private readonly fetchImpl: typeof globalThis.fetch;
  private readonly logger: LiveFeedLogger | undefined;
  private readonly symbols: readonly string[];
  private readonly silenceTimeoutMs: number;
  private readonly pingIntervalMs: number;
  private readonly handshakeTimeoutMs: number;
  private readonly healthyAfterMs: number;
  private readonly snapshotTimeoutMs: number;
  private readonly maxResyncAttempts: number;
  private readonly usesRestSnapshots: boolean;

  private started = false;
  private closed = false;
  private runPromise: Promise<void> | undefined;
  private waiter: ((result: IteratorResult<MarketMessage>) => void) | undefined;
  private wakeSleeper: (() => void) | undefined;

  // The current connection. `generation` tags async work (fetches, timers) so that work
  // started for a connection that is gone cannot touch the mapper of the next one.
  private generation = 0;
  private socket: WebSocket | undefined;
  private connectionAbort: AbortController | undefined;
  private silenceTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private healthTimer: NodeJS.Timeout | undefined;
  private awaitingFirstFrame = false;
  /** The connection is old enough to count as healthy once every symbol is in sync. */
  private healthyDue = false;
  private dropReason: string | undefined;
  private readonly resync = new Map<string, ResyncState>();

  private readonly counters = {
    connects: 0,
    frames: 0,
    snapshotFetches: 0,
    snapshotFailures: 0,
    resyncs: 0,
  };
  private lastError: string | null = null;
  private connected = false;
  private readonly synced: Record<string, boolean> = {};

  constructor(configuredVenue: Venue, private readonly config: LiveFeedConfig, options: LiveFeedOptions) {
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
    this.random = options.random ?? Math.random;
    this.fetchImpl = options.fetch ?? globalThis.fetch;
    this.logger = options.logger;
    this.silenceTimeoutMs = positive('silenceTimeoutMs', options.silenceTimeoutMs ?? 30_000);
    this.pingIntervalMs = nonNegative('pingIntervalMs', options.pingIntervalMs ?? 15_000);
    this.handshakeTimeoutMs = positive('handshakeTimeoutMs', options.handshakeTimeoutMs ?? 10_000);
    this.healthyAfterMs = nonNegative('healthyAfterMs', options.healthyAfterMs ?? 60_000);
    this.snapshotTimeoutMs = positive('snapshotTimeoutMs', options.snapshotTimeoutMs ?? 10_000);
    this.maxResyncAttempts = positive('maxResyncAttempts', options.maxResyncAttempts ?? 5);
    this.backoffPolicy = checkBackoffPolicy({ ...defaultBackoffPolicy, ...options.backoff });
    this.backoff = new Backoff(this.backoffPolicy, this.random);

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

  messages(): AsyncIterable<MarketMessage> {
    if (this.started) throw new Error('LiveFeed.messages(): the feed can be iterated only once');
    this.started = true;
    if (!this.closed) this.runPromise = this.run();
    const iterator: AsyncIterator<MarketMessage> = {
      next: () => this.next(),
      return: async () => {
        await this.close();
        return { done: true, value: undefined };
      },
    };
    return { [Symbol.asyncIterator]: () => iterator };
  }

  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.queue.clear();
      this.wakeSleeper?.();
      const socket = this.socket;
      if (socket !== undefined && socket.readyState !== WebSocket.CLOSED) {
        this.dropReason = 'closed by client';
        if (socket.readyState === WebSocket.OPEN) {
          socket.close(1000, 'client closing');
          // A peer that never answers the close frame must not hold close() hostage.
          const grace = setTimeout(() => socket.terminate(), CLOSE_GRACE_MS);
          socket.once('close', () => clearTimeout(grace));
        } else {
          socket.terminate();
        }
      }
      const waiter = this.waiter;
      this.waiter = undefined;
      waiter?.({ done: true, value: undefined });
    }
    await this.runPromise;
  }

  private next(): Promise<IteratorResult<MarketMessage>> {
    if (this.closed) return Promise.resolve({ done: true, value: undefined });
    const message = this.queue.shift();
    if (message !== undefined) return Promise.resolve({ done: false, value: message });
    return new Promise((resolve) => {
      this.waiter = resolve;
    });
  }

  private deliver(message: MarketMessage): void {
    if (this.closed) return;
    const waiter = this.waiter;
    if (waiter !== undefined) {
      this.waiter = undefined;
      waiter({ done: false, value: message });
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
      await this.sleep(delay);
    }
  }

  /** Waits `ms`, or less when close() wakes it. */
  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wakeSleeper = () => {
        clearTimeout(timer);
        resolve();
      };
    }).finally(() => {
      this.wakeSleeper = undefined;
    });
  }

  private runConnection(): Promise<ConnectionOutcome> {
    const generation = ++this.generation;
    const url = this.protocol.connectUrl(this.config.url, this.symbols);
    this.dropReason = undefined;
    this.connectionAbort = new AbortController();
    this.resync.clear();
    let opened = false;
    let errorMessage: string | undefined;

    return new Promise<ConnectionOutcome>((resolve) => {
      const socket = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: this.handshakeTimeoutMs });
      this.socket = socket;

      socket.on('open', () => {
        opened = true;
        this.onOpen(socket, generation);
      });
      socket.on('message', (data) => {
        if (generation === this.generation && !this.closed) this.onFrame(data);
      });
      socket.on('error', (error) => {
        errorMessage = error.message;
        this.noteError(`websocket ${url}: ${error.message}`);
      });
      socket.on('close', (code, reasonBuffer) => {
        this.endConnection();
        const closeReason = reasonBuffer.length > 0 ? `: ${reasonBuffer.toString('utf8')}` : '';
        const reason =
          this.dropReason ??
          (errorMessage !== undefined ? `websocket error: ${errorMessage}` : `connection closed by peer (code ${code}${closeReason})`);
        resolve({ opened, reason });
      });
    });
  }

  private onOpen(socket: WebSocket, generation: number): void {
    this.counters.connects += 1;
    this.connected = true;
    this.logger?.info({ venue: this.protocol.venue, symbols: this.symbols, connects: this.counters.connects }, 'live feed connected');
    for (const frame of this.protocol.subscribeFrames(this.symbols)) socket.send(frame);
    // REST snapshots wait for the first frame, as Binance's order-book procedure asks: the
    // snapshot must not predate the diffs the mapper starts buffering.
    this.awaitingFirstFrame = this.usesRestSnapshots;

    this.silenceTimer = setTimeout(() => {
      this.dropConnection(`silence: no frame for ${this.silenceTimeoutMs} ms`);
    }, this.silenceTimeoutMs);
    if (this.pingIntervalMs > 0) {
      const appPing = this.protocol.pingFrame();
      this.pingTimer = setInterval(() => {
        if (socket.readyState !== WebSocket.OPEN) return;
        socket.ping();
        if (appPing !== null) socket.send(appPing);
      }, this.pingIntervalMs);
    }
    this.healthTimer = setTimeout(() => {
      if (generation !== this.generation) return;
      this.healthyDue = true;
      this.resetBackoffIfHealthy();
    }, this.healthyAfterMs);
  }

  private onFrame(data: RawData): void {
    this.counters.frames += 1;
    this.silenceTimer?.refresh();
    const frame = rawDataToText(data);
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
    const state = this.resync.get(symbol);
    if (state !== undefined) state.syncedAt = this.now();
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

  /**
   * Brings `symbol` back in sync: fetch a REST snapshot, or drop and re-add the subscription.
   * Retries of one symbol are spaced by backoff; a symbol that stayed in sync for
   * `healthyAfterMs` starts afresh. Past `maxResyncAttempts` the whole connection is rebuilt,
   * so a persistent failure costs one reconnect backoff per round, never a hot loop.
   */
  private startResync(symbol: string): void {
    let state = this.resync.get(symbol);
    if (state === undefined) {
      state = { attempts: 0, inFlight: false, timer: undefined, backoff: new Backoff(this.backoffPolicy, this.random), syncedAt: Number.NaN, notBefore: Number.NEGATIVE_INFINITY };
      this.resync.set(symbol, state);
    }
    this.synced[symbol] = false;
    if (state.inFlight || state.timer !== undefined) return;
    if (this.now() - state.syncedAt >= this.healthyAfterMs) {
      state.attempts = 0;
      state.backoff.reset();
    }
    if (state.attempts >= this.maxResyncAttempts) {
      this.dropConnection(`resync of ${symbol} failed after ${state.attempts} attempts`);
      return;
    }
    const delay = Math.max(state.attempts === 0 ? 0 : state.backoff.next(), state.notBefore - this.now());
    state.attempts += 1;
    this.counters.resyncs += 1;
    const generation = this.generation;
    const resyncState = state;
    const begin = (): void => {
      resyncState.timer = undefined;
      if (generation !== this.generation || this.closed) return;
      if (this.usesRestSnapshots) {
        void this.fetchSnapshot(symbol, resyncState, generation);
      } else {
        this.resubscribe(symbol);
      }
    };
    if (delay === 0) begin();
    else state.timer = setTimeout(begin, delay);
  }

  private resubscribe(symbol: string): void {
    const socket = this.socket;
    if (socket === undefined || socket.readyState !== WebSocket.OPEN) return;
    for (const frame of this.protocol.resyncFrames([symbol])) socket.send(frame);
    this.logger?.info({ venue: this.protocol.venue, symbol }, 'resubscribed to resync');
  }

  private async fetchSnapshot(symbol: string, state: ResyncState, generation: number): Promise<void> {
    const url = this.protocol.snapshotUrl(this.config.restUrl ?? '', symbol);
    if (url === null) return;
    state.inFlight = true;
    let failure: string | undefined;
    try {
      const timeout = AbortSignal.timeout(this.snapshotTimeoutMs);
      const signal = this.connectionAbort ? AbortSignal.any([this.connectionAbort.signal, timeout]) : timeout;
      let response: Response;
      let body: string;
      try {
        response = await this.fetchImpl(url, { signal });
        body = await response.text();
      } catch (error) {
        if (timeout.aborted && !this.connectionAbort?.signal.aborted) throw new Error(`no answer within ${this.snapshotTimeoutMs} ms`);
        throw error;
      }
      if (generation !== this.generation || this.closed) return;
      if (!response.ok) {
        failure = `HTTP ${response.status}: ${sampleOf(body, 120)}`;
        // 429: too many requests; 418: Binance's ban for not backing off. Both say when to come back.
        const wait = response.status === 429 || response.status === 418 ? retryAfterMs(response.headers.get('retry-after'), this.now()) : null;
        if (wait !== null) {
          state.notBefore = this.now() + wait;
          failure += ` (retry after ${Math.round(wait)} ms)`;
        }
      } else {
        this.counters.snapshotFetches += 1;
        const localTs = this.now();
        const messages = this.mapper.mapRestSnapshot ? this.mapper.mapRestSnapshot(symbol, body, localTs) : this.mapper.map(body, localTs);
        this.emitAll(messages);
        const rejection = messages.find((message) => message.type === 'rejected');
        if (rejection !== undefined && rejection.type === 'rejected') failure = `rejected: ${rejection.detail}`;
      }
    } catch (error) {
      if (generation !== this.generation || this.closed) return;
      failure = error instanceof Error ? error.message : String(error);
    } finally {
      state.inFlight = false;
    }
    if (failure !== undefined) {
      this.counters.snapshotFailures += 1;
      this.noteError(`snapshot ${url}: ${failure}`);
      this.startResync(symbol);
    }
    // The mapper may ask again, e.g. a snapshot older than the first buffered diff.
    this.serviceResyncRequests();
  }

  private dropConnection(reason: string): void {
    const socket = this.socket;
    if (socket === undefined || socket.readyState === WebSocket.CLOSED) return;
    this.dropReason ??= reason;
    this.logger?.warn({ venue: this.protocol.venue, reason }, 'dropping live connection');
    socket.terminate();
  }

  /** Stops every timer and fetch of the connection that just closed. */
  private endConnection(): void {
    this.connected = false;
    this.healthyDue = false;
    this.generation += 1;
    this.connectionAbort?.abort();
    clearTimeout(this.silenceTimer);
    clearInterval(this.pingTimer);
    clearTimeout(this.healthTimer);
    this.silenceTimer = undefined;
    this.pingTimer = undefined;
    this.healthTimer = undefined;
    for (const state of this.resync.values()) clearTimeout(state.timer);
    this.resync.clear();
    this.socket = undefined;
  }

  /** Errors quote URLs (a feed's may carry credentials): stored, served and logged redacted. */
  private noteError(message: string): void {
    this.lastError = redactText(message);
    this.logger?.warn({ venue: this.protocol.venue, err: redactedError(this.lastError) }, 'live feed error');
  }
}

function rawDataToText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

function positive(name: string, value: number): number {
  if (!(Number.isFinite(value) && value > 0)) throw new RangeError(`${name}: must be a finite number > 0, got ${value}`);
  return value;
}

function nonNegative(name: string, value: number): number {
  if (!(Number.isFinite(value) && value >= 0)) throw new RangeError(`${name}: must be a finite number >= 0, got ${value}`);
  return value;
}
