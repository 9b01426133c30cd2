// Everything the long-running service holds, without HTTP: the engine, its live feeds, push
// ingest, checkpoints and the recent predictions. The HTTP layer (src/http) only reads and
// drives it. Live runs exactly the engine replay runs; only the source and the clock differ.
import { join } from 'node:path';
import type { MarketMessage } from '../domain/types.js';
import { packageRoot } from '../domain/package-root.js';
import { engineConfigHash, type EngineConfig } from '../engine/config.js';
import { Engine } from '../engine/engine.js';
import { LatencyHistogram } from '../engine/latency.js';
import type { Prediction } from '../engine/symbol-engine.js';
import { startFeedServer, type FeedServer } from '../ingest/feed-server.js';
import { createLiveFeed, type LiveFeed } from '../ingest/live-client.js';
import { checksumOf, type CheckpointMeta } from '../store/checkpoints.js';
import { EngineCheckpoints } from '../store/engine-checkpoints.js';
import { CanonicalMapper } from '../venues/canonical.js';
import { venueById } from '../venues/registry.js';
import { engineConfigOf, type FeedConfig, type ServiceConfig } from './config.js';

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
  readonly accepted: Array<{ symbol: string; seq: number }>;
  readonly rejected: Array<{ reason: string; detail: string }>;
}

export class ServiceRuntime {
  readonly engineConfig: EngineConfig;
  readonly configHash: string;
  readonly engine: Engine;
  readonly checkpoints: EngineCheckpoints;
  readonly rings = new Map<string, PredictionRing>();
  readonly feeds: RunningFeed[] = [];
  /** Checkpoint write durations, in microseconds. */
  readonly checkpointWrites = new LatencyHistogram();
  demoFeedServer: FeedServer | null = null;
  private readonly listeners = new Set<PredictionListener>();
  private readonly ingestMapper: CanonicalMapper;
  private readonly lastCheckpointTick = new Map<string, number>();
  /** Symbols whose last tick-driven checkpoint failed, so a failing disk logs once, not per tick. */
  private readonly failingCheckpoints = new Set<string>();
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
    this.checkpoints = EngineCheckpoints.open(config.db, config.checkpointKeep);
    this.ingestMapper = new CanonicalMapper({ levels: config.levels });
    this.engine = new Engine(this.engineConfig, {
      clock: () => performance.now(),
      logger,
      maxSymbols: config.maxSymbols,
      onNewSymbol: (symbolEngine) => {
        const restored = this.checkpoints.restore(symbolEngine, this.configHash, logger);
        const last = symbolEngine.lastPrediction;
        if (last) this.ingestMapper.remember(symbolEngine.symbol, symbolEngine.lastInputSeq ?? undefined, last.ts);
        this.lastCheckpointTick.set(symbolEngine.symbol, symbolEngine.ticks);
        if (restored !== null) logger.info({ symbol: symbolEngine.symbol, checkpoint: restored, ticks: symbolEngine.ticks }, 'resumed from checkpoint');
      },
    });
    this.engine.addSink((prediction) => this.onPrediction(prediction));
  }

  /** Symbols with a checkpoint are restored at start, so they resume before their first tick. */
  async start(): Promise<void> {
    for (const symbol of this.checkpoints.repository.listSymbols()) this.engine.symbolOrCreate(symbol);
    let feeds = this.config.feeds;
    if (feeds.length === 0 && this.config.demoFeed) {
      const recording = join(packageRoot(), 'fixtures/binance/spot_btcusdt_20240808.head3000.gz');
      this.demoFeedServer = await startFeedServer({ recording, host: '127.0.0.1', port: 0, speed: 1, loop: true });
      feeds = [{ venue: 'binance', url: this.demoFeedServer.wsUrl, restUrl: this.demoFeedServer.url, symbols: ['BTCUSDT'] }];
      this.logger.info({ ws: this.demoFeedServer.wsUrl, rest: this.demoFeedServer.url }, 'no feeds configured: replaying the bundled Binance BTCUSDT recording on loopback as a live feed (set LOB_RTRL_FEEDS for a real venue)');
    }
    for (const feedConfig of feeds) this.startFeed(feedConfig);
    this.checkpointTimer = setInterval(() => this.checkpointAll('interval', true), this.config.checkpointEverySeconds * 1000);
    this.checkpointTimer.unref();
    if (this.config.predictionRetentionSeconds > 0) {
      this.pruneTimer = setInterval(() => this.flushPredictionLog(), 1000);
      this.pruneTimer.unref();
    }
  }

  private startFeed(feedConfig: FeedConfig): void {
    const feed = createLiveFeed(venueById(feedConfig.venue), { url: feedConfig.url, restUrl: feedConfig.restUrl, symbols: feedConfig.symbols }, {
      now: this.now,
      levels: this.config.levels,
      logger: this.logger,
    });
    const running: RunningFeed = { config: feedConfig, feed, done: Promise.resolve() };
    running.done = (async () => {
      try {
        for await (const message of feed.messages()) {
          if (this.stopping) break;
          this.process(message);
        }
      } catch (error) {
        this.logger.error({ venue: feedConfig.venue, error: (error as Error).message }, 'feed stopped');
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

  /** Push ingest: one canonical snapshot or an array of them, already parsed from JSON. */
  ingest(value: unknown): IngestOutcome {
    const outcome: IngestOutcome = { accepted: [], rejected: [] };
    for (const message of this.ingestMapper.mapValue(value, this.now())) {
      if (message.type === 'rejected') {
        this.engine.process(message);
        outcome.rejected.push({ reason: message.reason, detail: message.detail });
        continue;
      }
      const prediction = this.process(message);
      if (prediction) outcome.accepted.push({ symbol: prediction.symbol, seq: prediction.seq });
      else if (message.type === 'book_snapshot') outcome.rejected.push({ reason: 'unknown_symbol', detail: `symbol: "${message.symbol}" exceeds the limit of ${this.config.maxSymbols} symbols` });
    }
    return outcome;
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
        this.logger.warn({ error: (error as Error).message }, 'prediction listener failed');
      }
    }
  }

  /**
   * A failed write must not fail the tick: the tick is already in the learner's state, so an
   * error here would reject an accepted snapshot (and a producer's retry would then be out of
   * order) or end a live feed's loop for good. The next tick retries; one log line per streak.
   */
  private maybeCheckpoint(symbol: string): void {
    const symbolEngine = this.engine.symbol(symbol);
    if (!symbolEngine) return;
    const last = this.lastCheckpointTick.get(symbol) ?? 0;
    if (symbolEngine.ticks - last < this.config.checkpointEveryTicks) return;
    try {
      this.checkpoint(symbol, 'ticks');
    } catch (error) {
      if (!this.failingCheckpoints.has(symbol)) {
        this.failingCheckpoints.add(symbol);
        this.logger.error({ symbol, ticks: symbolEngine.ticks, error: (error as Error).message }, 'checkpoint failed');
      }
      return;
    }
    if (this.failingCheckpoints.delete(symbol)) this.logger.info({ symbol, ticks: symbolEngine.ticks }, 'checkpoint writes recovered');
  }

  /** Writes a checkpoint of `symbol` now; returns once it is committed. */
  checkpoint(symbol: string, reason: string): CheckpointMeta | null {
    const symbolEngine = this.engine.symbol(symbol);
    if (!symbolEngine) return null;
    const started = performance.now();
    const meta = this.checkpoints.save(symbolEngine, this.configHash, reason, this.now());
    this.checkpointWrites.record((performance.now() - started) * 1000);
    this.lastCheckpointTick.set(symbol, symbolEngine.ticks);
    return meta;
  }

  /** Checkpoints every symbol (only those that moved since their last one when `onlyChanged`). */
  checkpointAll(reason: string, onlyChanged = false): CheckpointMeta[] {
    const written: CheckpointMeta[] = [];
    for (const symbolEngine of this.engine.symbols.values()) {
      if (onlyChanged && symbolEngine.ticks === this.lastCheckpointTick.get(symbolEngine.symbol)) continue;
      try {
        const meta = this.checkpoint(symbolEngine.symbol, reason);
        if (meta) written.push(meta);
      } catch (error) {
        this.logger.error({ symbol: symbolEngine.symbol, error: (error as Error).message }, 'checkpoint failed');
      }
    }
    return written;
  }

  /** Replaces a symbol's state with checkpoint `id` (checksum and configuration verified). */
  restore(symbol: string, id: number): CheckpointMeta {
    const stored = this.checkpoints.repository.get(id);
    if (!stored || stored.meta.symbol !== symbol) throw new NotFoundError(`checkpoint ${id} of ${symbol} not found`);
    if (checksumOf(stored.payload) !== stored.meta.checksum) throw new ConflictError(`checkpoint ${id}: checksum does not match its payload`);
    if (stored.meta.configHash !== this.configHash) throw new ConflictError(`checkpoint ${id}: made with another configuration`);
    const symbolEngine = this.engine.symbolOrCreate(symbol);
    if (!symbolEngine) throw new ConflictError(`symbol limit of ${this.config.maxSymbols} reached`);
    symbolEngine.setState(stored.payload);
    this.lastCheckpointTick.set(symbol, symbolEngine.ticks);
    const last = symbolEngine.lastPrediction;
    if (last) this.ingestMapper.remember(symbol, symbolEngine.lastInputSeq ?? undefined, last.ts);
    return stored.meta;
  }

  private flushPredictionLog(): void {
    if (this.predictionLog.length > 0) {
      const rows = this.predictionLog.splice(0).map((p) => ({ symbol: p.symbol, ts: p.ts, seq: p.seq, model: p.models[0].model, probs: p.models[0].probs, createdAt: this.now() }));
      this.checkpoints.repository.insertPredictions(rows);
    }
    this.checkpoints.repository.prunePredictionsOlderThan(this.now() - this.config.predictionRetentionSeconds * 1000);
  }

  readiness(): { database: boolean; feeds: boolean; learners: boolean } {
    let database = true;
    try {
      this.checkpoints.db.prepare('SELECT 1').get();
    } catch {
      database = false;
    }
    const feeds = this.feeds.every((running) => running.feed.stats.connected && Object.values(running.feed.stats.synced).every(Boolean));
    const learners = this.engine.symbols.size === 0 ? this.feeds.length === 0 : [...this.engine.symbols.values()].every((s) => s.normaliser.isWarm);
    return { database, feeds, learners };
  }

  /** Graceful stop: feeds first, then a checkpoint of every symbol, then the database. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.checkpointTimer) clearInterval(this.checkpointTimer);
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    await Promise.all(this.feeds.map((running) => running.feed.close()));
    await Promise.all(this.feeds.map((running) => running.done));
    if (this.demoFeedServer) await this.demoFeedServer.close();
    if (this.config.predictionRetentionSeconds > 0) this.flushPredictionLog();
    const written = this.checkpointAll('shutdown');
    this.logger.info({ checkpoints: written.length }, 'shutdown checkpoints written');
    this.checkpoints.close();
  }
}

export class NotFoundError extends Error {}
export class ConflictError extends Error {}
