// Everything the long-running service holds, without HTTP: the engine, its live feeds, push
// ingest, checkpoints and the recent predictions. The HTTP layer (src/http) only reads and
// drives it. Live runs exactly the engine replay runs; only the source and the clock differ.
//
// Every producer's work goes through one IngestScheduler (src/service/ingest-scheduler.ts):
// each push connection, POST body and live feed is a lane, and so are checkpoint writes and
// the background restore of stored symbols. The lanes take turns one message at a time, in
// slices of a few milliseconds, so no producer starves another and the event loop (health,
// readiness, the stream) is never held for longer than one slice.
import { join } from 'node:path';
import { redactedError, redactUrl } from '../domain/redact.js';
import type { EpochMs, MarketMessage } from '../domain/types.js';
import { packageRoot } from '../domain/package-root.js';
import { engineConfigHash, type EngineConfig } from '../engine/config.js';
import { Engine } from '../engine/engine.js';
import { LatencyHistogram } from '../engine/latency.js';
import type { Prediction, SymbolEngine } from '../engine/symbol-engine.js';
import { startFeedServer, type FeedServer } from '../ingest/feed-server.js';
import { createLiveFeed, type LiveFeed } from '../ingest/live-client.js';
import { checksumOf, type CheckpointMeta } from '../store/checkpoints.js';
import { storeFailureKind, type StoreFailureKind } from '../store/database.js';
import { EngineCheckpoints } from '../store/engine-checkpoints.js';
import { CanonicalMapper } from '../venues/canonical.js';
import { venueById } from '../venues/registry.js';
import { engineConfigOf, type FeedConfig, type ServiceConfig } from './config.js';
import { IngestScheduler, type IngestLane } from './ingest-scheduler.js';

export interface RuntimeLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
  debug(fields: object, message: string): void;
}

export type PredictionListener = (prediction: Prediction) => void;

/** The last `capacity` predictions of a symbol, oldest first. */
export class PredictionRing {
  private readonly items: (Prediction | undefined)[];
  private next = 0;
  private size = 0;
  constructor(readonly capacity: number) {
    this.items = new Array(capacity);
  }
  push(prediction: Prediction): void {
    this.items[this.next] = prediction;
    this.next = (this.next + 1) % this.capacity;
    if (this.size < this.capacity) this.size++;
  }
  /** Predictions with ts > since (all when undefined), at most `limit`, newest last. */
  recent(since: number | undefined, limit: number): Prediction[] {
    const out: Prediction[] = [];
    for (let i = 0; i < this.size; i++) {
      const item = this.items[(this.next - this.size + i + this.capacity) % this.capacity] as Prediction;
      if (since === undefined || item.ts > since) out.push(item);
    }
    return out.length > limit ? out.slice(out.length - limit) : out;
  }
}

export interface RunningFeed {
  readonly config: FeedConfig;
  readonly feed: LiveFeed;
  done: Promise<void>;
}

export interface IngestOutcome {
  /** Snapshots that made a prediction, in the order sent. */
  readonly accepted: Array<{ symbol: string; seq: number }>;
  /** Trades applied to their symbol's flow features. */
  trades: number;
  readonly rejected: Array<{ reason: string; detail: string }>;
}

/** How the database has been doing: readiness and 503 answers say so. */
export interface StoreHealth {
  /** False after a write failed, until a later write succeeds. */
  writable: boolean;
  /** Set for good once SQLite reports corruption: nothing it says can be trusted until a restart. */
  corrupt: boolean;
  lastFailure: { kind: StoreFailureKind; message: string; at: EpochMs } | null;
}

/** A checkpoint could not be written; `kind` says why (full disk, read-only file, corruption...). */
export class StoreWriteError extends Error {
  override readonly name = 'StoreWriteError';
  constructor(
    readonly kind: StoreFailureKind,
    message: string,
  ) {
    super(message);
  }
}

/** The final checkpoints of a shutdown could not all be written: the state since their last checkpoints is lost. */
export class ShutdownCheckpointError extends Error {
  override readonly name = 'ShutdownCheckpointError';
  constructor(readonly lost: ReadonlyArray<{ symbol: string; ticksSinceCheckpoint: number; error: string }>) {
    super(`shutdown checkpoints failed for ${lost.length} symbol(s): ${lost.map((l) => `${l.symbol} (${l.ticksSinceCheckpoint} ticks since its last checkpoint: ${l.error})`).join('; ')}`);
  }
}

/** One message of a push frame or body waiting its turn. */
interface PushItem {
  readonly batch: PushBatch;
  readonly element: unknown;
  readonly index: number | undefined;
}

interface PushBatch {
  readonly outcome: IngestOutcome;
  readonly localTs: EpochMs;
  remaining: number;
  readonly done: (outcome: IngestOutcome) => void;
}

/** A producer's place in the scheduler: frames or bodies go in, each answered once all its messages ran. */
export class PushLane {
  constructor(
    private readonly lane: IngestLane<PushItem>,
    private readonly runtime: ServiceRuntime,
  ) {}

  /** Messages of this producer waiting their turn. */
  get queued(): number {
    return this.lane.queued;
  }

  /**
   * Queues one parsed frame or body; `done` is called with its outcome once every message in it
   * has gone through the engine (never, if the lane is closed first).
   */
  submit(value: unknown, done: (outcome: IngestOutcome) => void): void {
    const outcome: IngestOutcome = { accepted: [], trades: 0, rejected: [] };
    const batch = this.runtime.ingestMapper.batchOf(value);
    if (!batch.ok) {
      this.runtime.process(batch.rejection);
      outcome.rejected.push({ reason: batch.rejection.reason, detail: batch.rejection.detail });
      done(outcome);
      return;
    }
    const pending: PushBatch = { outcome, localTs: this.runtime.clockNow(), remaining: batch.elements.length, done };
    for (let i = 0; i < batch.elements.length; i++) this.lane.push({ batch: pending, element: batch.elements[i], index: batch.single ? undefined : i });
  }

  /** Resolves once fewer than `count` messages wait. */
  queuedBelow(count: number): Promise<void> {
    return this.lane.queuedBelow(count);
  }

  close(): void {
    this.lane.close();
  }
}

/**
 * Messages a live feed may have waiting in its lane (about a tenth of a second of engine work)
 * before its client's own queue holds the rest, where snapshots of a lagging feed conflate.
 */
const FEED_LANE_LIMIT = 1024;
/** Books of one symbol that may wait in a feed's queue before newer ones replace them. */
const FEED_PENDING_BOOKS = 256;
/** A failed tick or interval checkpoint of a symbol is retried no sooner than this, doubling to a minute. */
const CHECKPOINT_RETRY_MS = 1000;
const CHECKPOINT_RETRY_MAX_MS = 60_000;
/** Attempts at each shutdown checkpoint before its loss is reported. */
const SHUTDOWN_ATTEMPTS = 3;

export class ServiceRuntime {
  readonly engineConfig: EngineConfig;
  readonly configHash: string;
  readonly engine: Engine;
  readonly checkpoints: EngineCheckpoints;
  readonly scheduler: IngestScheduler;
  readonly rings = new Map<string, PredictionRing>();
  readonly feeds: RunningFeed[] = [];
  /** Checkpoint write durations, in microseconds. */
  readonly checkpointWrites = new LatencyHistogram();
  readonly storeHealth: StoreHealth = { writable: true, corrupt: false, lastFailure: null };
  /** @internal the push-ingest ordering state, shared by every push lane. */
  readonly ingestMapper: CanonicalMapper;
  demoFeedServer: FeedServer | null = null;
  /** Stored symbols not yet restored by the background restore. */
  private readonly unrestored = new Set<string>();
  private readonly listeners = new Set<PredictionListener>();
  private readonly lastCheckpointTick = new Map<string, number>();
  /** Symbols whose last checkpoint failed, with when to retry, so a failing disk logs once and is not hammered. */
  private readonly failingCheckpoints = new Map<string, { retryAt: number; delayMs: number }>();
  private readonly checkpointLane: IngestLane<string>;
  private readonly checkpointReasons = new Map<string, string>();
  private readonly restoreLane: IngestLane<string>;
  private checkpointTimer: NodeJS.Timeout | null = null;
  private pruneTimer: NodeJS.Timeout | null = null;
  private readonly predictionLog: Prediction[] = [];
  private stopping = false;

  constructor(
    readonly config: ServiceConfig,
    readonly logger: RuntimeLogger,
    /** Wall clock for live data and checkpoint times; the only clock below the entry point. */
    private readonly now: () => number = Date.now,
  ) {
    this.engineConfig = engineConfigOf(config);
    this.configHash = engineConfigHash(this.engineConfig);
    this.checkpoints = EngineCheckpoints.open(config.db, config.checkpointKeep, { maxBytes: config.dbMaxBytes || undefined });
    this.ingestMapper = new CanonicalMapper({ levels: config.levels, maxBatch: config.ingestMaxBatch, maxClockSkewMs: config.clockSkewSeconds * 1000 });
    this.scheduler = new IngestScheduler({
      sliceMs: config.ingestSliceMs,
      onError: (lane, error) => logger.error({ lane, err: error }, 'ingest item failed; the lane goes on'),
    });
    this.checkpointLane = this.scheduler.lane<string>('checkpoints', (symbol) => this.runQueuedCheckpoint(symbol));
    this.restoreLane = this.scheduler.lane<string>('restore', (symbol) => {
      this.unrestored.delete(symbol);
      this.engine.symbolOrCreate(symbol);
    });
    this.engine = new Engine(this.engineConfig, {
      clock: () => performance.now(),
      logger,
      maxSymbols: config.maxSymbols,
      createSymbol: (symbol, fresh) => this.createSymbol(symbol, fresh),
    });
    this.engine.addSink((prediction) => this.onPrediction(prediction));
  }

  /** The wall clock below the entry point (receive times of pushed input). */
  clockNow(): EpochMs {
    return this.now();
  }

  /**
   * Starts the feeds and timers at once and restores stored symbols in the background (each
   * also on first use), so the service answers while a large store is still loading.
   */
  async start(): Promise<void> {
    for (const symbol of this.checkpoints.repository.listSymbols()) {
      if (this.engine.symbol(symbol)) continue;
      this.unrestored.add(symbol);
      this.restoreLane.push(symbol);
    }
    let feeds = this.config.feeds;
    if (feeds.length === 0 && this.config.demoFeed) {
      const recording = join(packageRoot(), 'fixtures/binance/spot_btcusdt_20240808.head3000.gz');
      this.demoFeedServer = await startFeedServer({ recording, host: '127.0.0.1', port: 0, speed: 1, loop: true });
      feeds = [{ venue: 'binance', url: this.demoFeedServer.wsUrl, restUrl: this.demoFeedServer.url, symbols: ['BTCUSDT'] }];
      this.logger.info({ ws: this.demoFeedServer.wsUrl, rest: this.demoFeedServer.url }, 'no feeds configured: replaying the bundled Binance BTCUSDT recording on loopback as a live feed (set LOB_RTRL_FEEDS for a real venue)');
    }
    for (const feedConfig of feeds) this.startFeed(feedConfig);
    this.checkpointTimer = setInterval(() => this.queueCheckpoints('interval'), this.config.checkpointEverySeconds * 1000);
    this.checkpointTimer.unref();
    if (this.config.predictionRetentionSeconds > 0) {
      this.pruneTimer = setInterval(() => this.flushPredictionLog(), 1000);
      this.pruneTimer.unref();
    }
  }

  /** Stored symbols still waiting for the background restore. */
  get symbolsToRestore(): number {
    return this.unrestored.size;
  }

  /** Resolves once the background restore has loaded every stored symbol. */
  async whenRestored(): Promise<void> {
    while (this.unrestored.size > 0 && !this.stopping) await this.restoreLane.queuedBelow(1);
  }

  /**
   * The symbol's engine if it runs or is stored (a stored one is restored now, ahead of the
   * background restore); undefined when it is unknown.
   */
  symbolEngine(symbol: string): SymbolEngine | undefined {
    const running = this.engine.symbol(symbol);
    if (running || !this.unrestored.has(symbol)) return running;
    return this.engine.symbolOrCreate(symbol) ?? undefined;
  }

  /** A symbol first seen: restored from its checkpoints (or fresh), and its ingest ordering resumed. */
  private createSymbol(symbol: string, fresh: () => SymbolEngine): SymbolEngine {
    this.unrestored.delete(symbol);
    let symbolEngine: SymbolEngine;
    let restored: number | null = null;
    try {
      ({ engine: symbolEngine, checkpoint: restored } = this.checkpoints.restore(symbol, fresh, this.configHash, this.logger));
    } catch (error) {
      // A store that cannot be read must not stop the symbol from running: it starts fresh.
      this.noteStoreFailure(error);
      this.logger.error({ symbol, err: error }, 'checkpoints could not be read; the symbol starts fresh');
      symbolEngine = fresh();
    }
    this.resumeOrdering(symbolEngine);
    this.lastCheckpointTick.set(symbol, symbolEngine.ticks);
    if (restored !== null) this.logger.info({ symbol, checkpoint: restored, ticks: symbolEngine.ticks }, 'resumed from checkpoint');
    return symbolEngine;
  }

  private resumeOrdering(symbolEngine: SymbolEngine): void {
    this.ingestMapper.forget(symbolEngine.symbol);
    if (symbolEngine.lastInputTs !== null || symbolEngine.lastInputSeq !== null) {
      this.ingestMapper.remember(symbolEngine.symbol, symbolEngine.lastInputSeq ?? undefined, symbolEngine.lastInputTs ?? Number.NEGATIVE_INFINITY);
    }
  }

  private startFeed(feedConfig: FeedConfig): void {
    const feed = createLiveFeed(venueById(feedConfig.venue), { url: feedConfig.url, restUrl: feedConfig.restUrl, symbols: feedConfig.symbols }, {
      now: this.now,
      levels: this.config.levels,
      logger: this.logger,
      // A mapper releases what it held during a resync in one burst; books conflate only once a
      // symbol has this many waiting, i.e. when the engine really lags, not on every burst.
      maxPendingPerSymbol: FEED_PENDING_BOOKS,
      maxQueued: FEED_PENDING_BOOKS * (feedConfig.symbols.length + 1),
    });
    const lane = this.scheduler.lane<MarketMessage>(`feed:${feedConfig.venue}`, (message) => this.process(message));
    const running: RunningFeed = { config: feedConfig, feed, done: Promise.resolve() };
    running.done = (async () => {
      try {
        for await (const message of feed.messages()) {
          if (this.stopping) break;
          lane.push(message);
          // Beyond a few messages the client's own queue waits, and conflates, instead of this lane.
          if (lane.queued >= FEED_LANE_LIMIT) await lane.queuedBelow(FEED_LANE_LIMIT / 2);
        }
      } catch (error) {
        this.logger.error({ venue: feedConfig.venue, url: redactUrl(feedConfig.url), err: redactedError(error) }, 'feed stopped');
      }
    })();
    this.feeds.push(running);
  }

  /** The one entry into the engine for live and pushed data. */
  process(message: MarketMessage): Prediction | null {
    const prediction = this.engine.process(message);
    if (prediction) this.maybeCheckpoint(prediction.symbol);
    return prediction;
  }

  /** A lane for one push producer (a WS connection, a POST body). */
  pushLane(name: string): PushLane {
    return new PushLane(
      this.scheduler.lane<PushItem>(name, (item) => this.runPushItem(item)),
      this,
    );
  }

  /**
   * Push ingest done at once, outside the scheduler: for in-process callers (tests, tools) that
   * hand over a whole value and want its outcome now. The network routes use `pushLane`.
   */
  ingest(value: unknown): IngestOutcome {
    const outcome: IngestOutcome = { accepted: [], trades: 0, rejected: [] };
    const batch = this.ingestMapper.batchOf(value);
    if (!batch.ok) {
      this.process(batch.rejection);
      outcome.rejected.push({ reason: batch.rejection.reason, detail: batch.rejection.detail });
      return outcome;
    }
    const pending: PushBatch = { outcome, localTs: this.now(), remaining: batch.elements.length, done: () => {} };
    for (let i = 0; i < batch.elements.length; i++) this.runPushItem({ batch: pending, element: batch.elements[i], index: batch.single ? undefined : i });
    return outcome;
  }

  private runPushItem(item: PushItem): void {
    const { batch } = item;
    try {
      const valid = this.ingestMapper.validate(item.element, batch.localTs, item.index);
      // A stored symbol is restored before the ordering check, so it is checked against where it stopped.
      const known = valid.type === 'rejected' ? null : this.engine.symbolOrCreate(valid.symbol);
      const message = valid.type === 'rejected' || known === null ? valid : this.ingestMapper.order(valid, item.element, item.index);
      if (message.type === 'rejected') {
        this.process(message);
        batch.outcome.rejected.push({ reason: message.reason, detail: message.detail });
      } else if (known === null) {
        const detail = `${item.index === undefined ? '' : `${item.index}.`}symbol: "${message.symbol}" exceeds the limit of ${this.config.maxSymbols} symbols`;
        this.process({ type: 'rejected', reason: 'unknown_symbol', detail, sample: message.symbol, symbol: message.symbol });
        batch.outcome.rejected.push({ reason: 'unknown_symbol', detail });
      } else if (message.type === 'trade') {
        this.process(message);
        batch.outcome.trades++;
      } else {
        const prediction = this.process(message);
        if (prediction) batch.outcome.accepted.push({ symbol: prediction.symbol, seq: prediction.seq });
      }
    } finally {
      if (--batch.remaining === 0) batch.done(batch.outcome);
    }
  }

  subscribe(listener: PredictionListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get subscriberCount(): number {
    return this.listeners.size;
  }

  private onPrediction(prediction: Prediction): void {
    let ring = this.rings.get(prediction.symbol);
    if (!ring) {
      ring = new PredictionRing(this.config.predictionRing);
      this.rings.set(prediction.symbol, ring);
    }
    ring.push(prediction);
    if (this.config.predictionRetentionSeconds > 0) this.predictionLog.push(prediction);
    for (const listener of this.listeners) {
      try {
        listener(prediction);
      } catch (error) {
        this.logger.warn({ err: error }, 'prediction listener failed');
      }
    }
  }

  /**
   * Tick-driven checkpoints are queued, not written inside the tick: the write takes its turn in
   * the scheduler like any producer, so a burst of symbols due at once is spread out.
   */
  private maybeCheckpoint(symbol: string): void {
    const symbolEngine = this.engine.symbol(symbol);
    if (!symbolEngine) return;
    const last = this.lastCheckpointTick.get(symbol) ?? 0;
    if (symbolEngine.ticks - last < this.config.checkpointEveryTicks) return;
    this.queueCheckpoint(symbol, 'ticks');
  }

  private queueCheckpoint(symbol: string, reason: string): void {
    if (this.checkpointReasons.has(symbol) || this.stopping) return;
    const failing = this.failingCheckpoints.get(symbol);
    if (failing && this.now() < failing.retryAt) return;
    this.checkpointReasons.set(symbol, reason);
    this.checkpointLane.push(symbol);
  }

  /** Queues a checkpoint of every symbol that moved since its last one. */
  queueCheckpoints(reason: string): void {
    for (const symbolEngine of this.engine.symbols.values()) {
      if (symbolEngine.ticks !== this.lastCheckpointTick.get(symbolEngine.symbol)) this.queueCheckpoint(symbolEngine.symbol, reason);
    }
  }

  /**
   * A failed write must not fail a tick: the tick is already in the learner's state, so an
   * error here would reject an accepted snapshot (and a producer's retry would then be out of
   * order) or end a live feed's loop for good. Retries back off; one log line per streak.
   */
  private runQueuedCheckpoint(symbol: string): void {
    const reason = this.checkpointReasons.get(symbol) ?? 'ticks';
    this.checkpointReasons.delete(symbol);
    const symbolEngine = this.engine.symbol(symbol);
    if (!symbolEngine) return;
    try {
      this.checkpoint(symbol, reason);
    } catch (error) {
      const failing = this.failingCheckpoints.get(symbol);
      const delayMs = failing ? Math.min(CHECKPOINT_RETRY_MAX_MS, failing.delayMs * 2) : CHECKPOINT_RETRY_MS;
      this.failingCheckpoints.set(symbol, { retryAt: this.now() + delayMs, delayMs });
      if (!failing) this.logger.error({ symbol, ticks: symbolEngine.ticks, err: error }, 'checkpoint failed; retrying with backoff');
      return;
    }
  }

  /** Writes a checkpoint of `symbol` now; returns once it is committed. Throws StoreWriteError on failure. */
  checkpoint(symbol: string, reason: string): CheckpointMeta | null {
    const symbolEngine = this.engine.symbol(symbol);
    if (!symbolEngine) return null;
    const started = performance.now();
    // Serialising is the engine's business: a failure there is a bug, not a store failure.
    const payload = symbolEngine.getState();
    let meta: CheckpointMeta;
    try {
      meta = this.checkpoints.repository.save({ symbol, tickCount: symbolEngine.ticks, configHash: this.configHash, payload, reason, now: this.now() });
    } catch (error) {
      const kind = this.noteStoreFailure(error);
      throw new StoreWriteError(kind, `checkpoint of ${symbol} not written: ${(error as Error).message}`);
    }
    this.checkpointWrites.record((performance.now() - started) * 1000);
    this.lastCheckpointTick.set(symbol, symbolEngine.ticks);
    if (!this.storeHealth.corrupt) this.storeHealth.writable = true;
    if (this.failingCheckpoints.delete(symbol)) this.logger.info({ symbol, ticks: symbolEngine.ticks }, 'checkpoint writes recovered');
    return meta;
  }

  /** Records a store failure for readiness; returns its kind. */
  private noteStoreFailure(error: unknown): StoreFailureKind {
    const kind = storeFailureKind(error);
    this.storeHealth.writable = false;
    if (kind === 'corrupt') this.storeHealth.corrupt = true;
    this.storeHealth.lastFailure = { kind, message: (error as Error).message, at: this.now() };
    return kind;
  }

  /** Replaces a symbol's state with checkpoint `id` (checksum and configuration verified). */
  restore(symbol: string, id: number): CheckpointMeta {
    const stored = this.checkpoints.repository.get(id);
    if (!stored || stored.meta.symbol !== symbol) throw new NotFoundError(`checkpoint ${id} of ${symbol} not found`);
    if (checksumOf(stored.payload) !== stored.meta.checksum) throw new ConflictError(`checkpoint ${id}: checksum does not match its payload`);
    if (stored.meta.configHash !== this.configHash) throw new ConflictError(`checkpoint ${id}: made with another configuration`);
    if (!this.engine.symbolOrCreate(symbol)) throw new ConflictError(`symbol limit of ${this.config.maxSymbols} reached`);
    // Built whole beside the running engine, which is replaced only once the state has loaded.
    const symbolEngine = this.engine.freshSymbol(symbol);
    try {
      symbolEngine.loadState(stored.payload);
    } catch (error) {
      throw new ConflictError(`checkpoint ${id}: its payload does not decode (${(error as Error).message}); the symbol's state is unchanged`);
    }
    this.engine.replace(symbolEngine);
    this.lastCheckpointTick.set(symbol, symbolEngine.ticks);
    this.resumeOrdering(symbolEngine);
    return stored.meta;
  }

  /**
   * The operator's reset of one symbol's input ordering (after a producer pushed a far-future
   * ts or a huge seq): its next snapshot is accepted whatever its seq and ts. Written to a
   * checkpoint at once, so a restart does not bring the old ordering back.
   */
  resetOrdering(symbol: string): CheckpointMeta | null {
    const symbolEngine = this.engine.symbol(symbol);
    if (!symbolEngine) throw new NotFoundError(`unknown symbol "${symbol}"`);
    this.ingestMapper.forget(symbol);
    symbolEngine.resetOrdering();
    return this.checkpoint(symbol, 'ordering-reset');
  }

  private flushPredictionLog(): void {
    try {
      if (this.predictionLog.length > 0) {
        const rows = this.predictionLog.splice(0).map((p) => ({ symbol: p.symbol, ts: p.ts, seq: p.seq, model: p.models[0].model, probs: p.models[0].probs, createdAt: this.now() }));
        this.checkpoints.repository.insertPredictions(rows);
      }
      this.checkpoints.repository.prunePredictionsOlderThan(this.now() - this.config.predictionRetentionSeconds * 1000);
    } catch (error) {
      // The log is best effort; checkpoints come first. The failure shows in readiness.
      this.noteStoreFailure(error);
      this.logger.warn({ err: error }, 'prediction log not written');
    }
  }

  readiness(): { database: boolean; feeds: boolean; learners: boolean; restored: boolean; reason?: string } {
    let database = this.storeHealth.writable && !this.storeHealth.corrupt;
    try {
      this.checkpoints.db.prepare('SELECT 1').get();
    } catch (error) {
      this.noteStoreFailure(error);
      database = false;
    }
    const feeds = this.feeds.every((running) => running.feed.stats.connected && Object.values(running.feed.stats.synced).every(Boolean));
    const learners = this.engine.symbols.size === 0 ? this.feeds.length === 0 : [...this.engine.symbols.values()].every((s) => s.normaliser.isWarm);
    const restored = this.unrestored.size === 0;
    const failure = this.storeHealth.lastFailure;
    return database || !failure ? { database, feeds, learners, restored } : { database, feeds, learners, restored, reason: `database: ${failure.kind}: ${failure.message}` };
  }

  /**
   * Graceful stop: feeds first, the messages they already delivered, then a checkpoint of every
   * symbol (retried, with space freed when the disk is full), then the database. Throws
   * ShutdownCheckpointError, after closing the database, when some state could not be saved.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.checkpointTimer) clearInterval(this.checkpointTimer);
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    await Promise.all(this.feeds.map((running) => running.feed.close()));
    await Promise.all(this.feeds.map((running) => running.done));
    if (this.demoFeedServer) await this.demoFeedServer.close();
    this.checkpointLane.close();
    this.restoreLane.close();
    await this.scheduler.idle();
    this.scheduler.close();
    if (this.config.predictionRetentionSeconds > 0) this.flushPredictionLog();
    const lost = await this.writeShutdownCheckpoints();
    this.checkpoints.close();
    if (lost.length > 0) throw new ShutdownCheckpointError(lost);
  }

  private async writeShutdownCheckpoints(): Promise<Array<{ symbol: string; ticksSinceCheckpoint: number; error: string }>> {
    let due = [...this.engine.symbols.values()].filter((s) => s.ticks !== this.lastCheckpointTick.get(s.symbol) || this.failingCheckpoints.has(s.symbol));
    let written = 0;
    const errors = new Map<string, StoreWriteError>();
    for (let attempt = 1; attempt <= SHUTDOWN_ATTEMPTS && due.length > 0; attempt++) {
      if (attempt > 1) {
        this.freeStoreSpace();
        await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
      }
      const failed: SymbolEngine[] = [];
      for (const symbolEngine of due) {
        try {
          this.checkpoint(symbolEngine.symbol, 'shutdown');
          written++;
          errors.delete(symbolEngine.symbol);
        } catch (error) {
          errors.set(symbolEngine.symbol, error as StoreWriteError);
          failed.push(symbolEngine);
        }
      }
      if (failed.length > 0) {
        this.logger.error({ attempt, of: SHUTDOWN_ATTEMPTS, failed: failed.length, error: errors.get(failed[0].symbol)?.message }, 'shutdown checkpoints failed');
      }
      due = failed;
    }
    this.logger.info({ checkpoints: written, failed: due.length }, 'shutdown checkpoints written');
    return due.map((s) => ({ symbol: s.symbol, ticksSinceCheckpoint: s.ticks - (this.lastCheckpointTick.get(s.symbol) ?? 0), error: errors.get(s.symbol)?.message ?? 'unknown' }));
  }

  /**
   * Makes room for the shutdown checkpoints on a full disk: the WAL is folded into the main
   * file and truncated, the prediction log is dropped, and each symbol keeps only its newest
   * checkpoint; the pages freed are reused by the next write.
   */
  private freeStoreSpace(): void {
    const db = this.checkpoints.db;
    const attempt = (what: string, run: () => void) => {
      try {
        run();
      } catch (error) {
        this.logger.warn({ what, err: error }, 'could not free space in the store');
      }
    };
    attempt('wal checkpoint', () => db.pragma('wal_checkpoint(TRUNCATE)'));
    attempt('prediction log', () => this.checkpoints.repository.prunePredictionsOlderThan(Number.POSITIVE_INFINITY));
    attempt('older checkpoints', () => {
      for (const symbol of this.checkpoints.repository.listSymbols()) this.checkpoints.repository.keepNewest(symbol, 1);
    });
    attempt('wal checkpoint', () => db.pragma('wal_checkpoint(TRUNCATE)'));
  }
}

export class NotFoundError extends Error {}
export class ConflictError extends Error {}
