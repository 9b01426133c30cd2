// Everything the long-running service holds, without HTTP: the engine, its live feeds, push
// ingest, checkpoints and the recent predictions. The HTTP layer (src/http) only reads and
// drives it. Live runs exactly the engine replay runs; only the source and the clock differ.
//
// Every producer's work goes through one IngestScheduler (src/service/ingest-scheduler.ts):
// each push connection, POST body and live feed is a lane, and so are checkpoint writes and
// the background restore of stored symbols. The lanes take turns one message at a time, in
// slices of a few milliseconds, so no producer starves another and the event loop (health,
// readiness, the stream) is never held for longer than one slice.
import { redactedError, redactUrl } from '../domain/redact.js';
import { inStream, namedStream, PUSH_VENUE, reachedBy, splitStreamId, streamIdOf, type StreamId } from '../domain/stream.js';
import type { EpochMs, MarketMessage } from '../domain/types.js';
import { engineConfigHash, type EngineConfig } from '../engine/config.js';
import { Engine } from '../engine/engine.js';
import { LatencyHistogram } from '../engine/latency.js';
import type { Prediction, RecordedPrediction, Resolution, SymbolEngine } from '../engine/symbol-engine.js';
import { createLiveFeed, type LiveFeed } from '../ingest/live-client.js';
import { checksumOf, type CheckpointMeta } from '../store/checkpoints.js';
import { storeFailureKind, type StoreFailureKind } from '../store/database.js';
import { EngineCheckpoints } from '../store/engine-checkpoints.js';
import { CanonicalMapper } from '../venues/canonical.js';
import { venueById } from '../venues/registry.js';
import { engineConfigOf, type FeedConfig, type ServiceConfig } from './config.js';
import { IngestScheduler, type IngestLane } from './ingest-scheduler.js';
import { SymbolWorkerPool } from '../engine/worker-pool.js';
import type { SymbolSummary } from '../engine/worker-protocol.js';
export type { SymbolMetrics } from '../engine/symbol-metrics.js';
import { metricsOfEngine, type SymbolMetrics } from '../engine/symbol-metrics.js';
import { StreamStats } from './stream-stats.js';
import { MemoryReclaimer } from './memory-reclaimer.js';
import { Slots } from './slots.js';
import { mapLargeBlocksSeparately } from '../engine/memory.js';

export interface RuntimeLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
  debug(fields: object, message: string): void;
}

export type PredictionListener = (prediction: Prediction) => void;

/**
 * The id of the stream a request names among `known` streams: by venue and symbol, by a stream
 * id, or by a symbol only one venue carries. Throws NotFoundError when none, ConflictError
 * (naming the candidates) when several venues carry the symbol.
 */
export function resolveStreamAmong(symbol: string, venue: string | undefined, isKnown: (id: StreamId) => boolean, known: Iterable<StreamId>): StreamId {
  if (venue !== undefined) {
    const id = streamIdOf(venue, symbol);
    if (!isKnown(id)) throw new NotFoundError(`unknown stream "${id}"`);
    return id;
  }
  if (isKnown(symbol) && splitStreamId(symbol).venue !== '') return symbol;
  const candidates: StreamId[] = [];
  for (const id of known) if (splitStreamId(id).symbol === symbol) candidates.push(id);
  if (candidates.length === 1) return candidates[0];
  if (candidates.length === 0) throw new NotFoundError(`unknown symbol "${symbol}"`);
  throw new ConflictError(
    `symbol "${symbol}" is carried by ${candidates.length} venues (${candidates.sort().join(', ')}); name one: /v1/streams/<venue>/${encodeURIComponent(symbol)}`,
  );
}

/** What the service shows of a running symbol, wherever it runs (this thread or a worker). */
export interface SymbolView {
  readonly symbol: string;
  readonly ticks: number;
  /** Ticks accepted by this process (the lifetime count less what the restored checkpoint had). */
  readonly ticksThisProcess: number;
  readonly disconnects: number;
  readonly lastPrediction: Prediction | null;
  readonly modelNames: readonly string[];
  readonly classNames: readonly string[];
  readonly targetName: string;
  /** The feature normaliser has seen its warm-up ticks. */
  readonly warm: boolean;
}

/** A symbol on a worker thread, as this thread knows it: updated by each prediction handed back. */
class WorkerSymbol implements SymbolView {
  ticks: number;
  ticksThisProcess: number;
  disconnects: number;
  lastPrediction: Prediction | null;
  warm: boolean;
  /** Snapshots sent to the worker: the seq of the next one where the source has none. */
  sent: number;
  readonly modelNames: readonly string[];
  readonly classNames: readonly string[];
  readonly targetName: string;
  constructor(
    readonly symbol: string,
    from: SymbolEngine,
  ) {
    this.ticks = from.ticks;
    this.ticksThisProcess = from.ticksThisProcess;
    this.sent = from.ticks;
    this.disconnects = from.disconnects;
    this.lastPrediction = from.lastPrediction;
    this.warm = from.warm;
    this.modelNames = from.modelNames;
    this.classNames = from.classNames;
    this.targetName = from.targetName;
  }
}

/** A model's scores and learner counters, as /v1/symbols/:symbol/metrics shows them. */
function metricsOfSummary(summary: SymbolSummary): SymbolMetrics {
  return {
    unscored: summary.unscored,
    models: summary.summaries.map((overall, i) => ({ model: summary.modelNames[i], overall, rolling: summary.rolling[i], learner: summary.learnerStats[i] })),
    mixWeights: summary.mixWeights,
  };
}

/**
 * A hibernated symbol as the service shows it: its state is only in its newest checkpoint, and
 * this summary answers the listing, readiness, the latest prediction and the metrics until its
 * next message restores it.
 */
class HibernatedSymbol implements SymbolView {
  /** Disconnects that concerned it while it slept: applied, in order, when it wakes. */
  disconnectsPending = 0;
  readonly ticks: number;
  readonly ticksThisProcess: number;
  disconnects: number;
  readonly lastPrediction: Prediction | null;
  readonly modelNames: readonly string[];
  readonly classNames: readonly string[];
  readonly targetName: string;
  readonly warm: boolean;
  constructor(
    readonly symbol: string,
    from: SymbolView,
    readonly metrics: SymbolMetrics,
  ) {
    this.ticks = from.ticks;
    this.ticksThisProcess = from.ticksThisProcess;
    this.disconnects = from.disconnects;
    this.lastPrediction = from.lastPrediction;
    this.modelNames = from.modelNames;
    this.classNames = from.classNames;
    this.targetName = from.targetName;
    this.warm = from.warm;
  }
}

/**
 * Per symbol: when it last had a message (wall clock) and a count of the messages that changed
 * its state, beside the count its newest checkpoint (written or restored) holds: a symbol whose
 * two counts agree hibernates without writing again.
 */
interface SymbolActivity {
  at: number;
  version: number;
  savedVersion: number;
}

/**
 * States asked of the workers at once. Each brings a whole state to this thread (336 KB at the
 * default models), written to SQLite as it arrives (a synchronous commit, up to 15 ms measured):
 * with 300 asked together they arrived in bursts that held the event loop 60 ms and more. Two
 * at a time kept /healthz under 35 ms during periodic checkpoints of 300 symbols (four: 58 to
 * 72 ms at worst in three runs).
 */
const WORKER_STATES_AT_ONCE = 2;

/** Hibernations gathered into one memory reclaim (a collection on each thread, then malloc_trim). */
const MEMORY_RECLAIM_DELAY_MS = 2000;

/** Rows a symbol's prediction ring holds before it first grows (doubling up to its capacity). */
const INITIAL_RING_ROWS = 16;

/** Slots of a ring row before the probabilities: ts, localTs, seq, mid, label. */
const RING_HEADER = 5;

/**
 * The last `capacity` predictions of a symbol, oldest first, each with the label it resolved
 * to once a later tick revealed it. Each is kept as one row of float64 (ts, localTs, seq, mid,
 * label as a class index or NaN while pending, then every model's probabilities: exact, as a
 * prediction holds only doubles besides the names every prediction of the symbol shares) in an
 * array that grows as predictions arrive: 15 numbers a prediction at the default models instead
 * of a dozen small objects, and a young symbol holds only what it has seen.
 */
export class PredictionRing {
  private rows: Float64Array;
  private readonly stride: number;
  private readonly classes: number;
  /** Where the next prediction goes; while the ring is not full, also how many it holds. */
  private next = 0;
  private size = 0;

  constructor(
    readonly capacity: number,
    /** Every prediction of one symbol shares these: its symbol, target, class and model names. */
    private readonly shape: Pick<Prediction, 'symbol' | 'target' | 'classNames'> & { readonly models: readonly string[] },
  ) {
    this.classes = shape.classNames.length;
    this.stride = RING_HEADER + shape.models.length * this.classes;
    this.rows = new Float64Array(Math.min(capacity, INITIAL_RING_ROWS) * this.stride);
  }

  /** A ring shaped like `prediction` (its symbol, target, classes and models). */
  static of(prediction: Prediction, capacity: number): PredictionRing {
    return new PredictionRing(capacity, { symbol: prediction.symbol, target: prediction.target, classNames: prediction.classNames, models: prediction.models.map((m) => m.model) });
  }

  get length(): number {
    return this.size;
  }

  /** Whether `prediction` has this ring's shape: its target, classes and models, in order. */
  fits(prediction: Prediction): boolean {
    const { target, classNames, models } = this.shape;
    return (
      prediction.target === target &&
      prediction.classNames.length === classNames.length &&
      prediction.classNames.every((name, c) => name === classNames[c]) &&
      prediction.models.length === models.length &&
      prediction.models.every((model, m) => model.model === models[m])
    );
  }

  push(prediction: Prediction): void {
    // What this tick resolved is older than it: labelled before the tick joins the ring.
    if (prediction.resolved) for (const resolution of prediction.resolved) this.label(resolution);
    if (this.next * this.stride === this.rows.length) {
      // Not full yet (a full ring wraps before `next` reaches the end): the rows are in order from 0.
      const grown = new Float64Array(Math.min(this.capacity, 2 * this.next) * this.stride);
      grown.set(this.rows);
      this.rows = grown;
    }
    const at = this.next * this.stride;
    const rows = this.rows;
    rows[at] = prediction.ts;
    rows[at + 1] = prediction.localTs;
    rows[at + 2] = prediction.seq;
    rows[at + 3] = prediction.mid;
    rows[at + 4] = Number.NaN;
    let to = at + RING_HEADER;
    for (const model of prediction.models) for (let c = 0; c < this.classes; c++) rows[to++] = model.probs[c];
    this.next = (this.next + 1) % this.capacity;
    if (this.size < this.capacity) this.size++;
  }

  /**
   * Labels the predictions the resolution names. They are the oldest still pending, so the walk
   * back from the newest row stops at the first seq below the run (or at the ring's start).
   */
  private label(resolution: Resolution): void {
    const label = this.shape.classNames.indexOf(resolution.label);
    for (let i = 1; i <= this.size; i++) {
      const at = ((this.next - i + this.capacity) % this.capacity) * this.stride;
      const seq = this.rows[at + 2];
      if (seq < resolution.fromSeq) return;
      if (seq <= resolution.toSeq) this.rows[at + 4] = label;
    }
  }

  /** Predictions with ts > since (all when undefined), at most `limit`, newest last. */
  recent(since: number | undefined, limit: number): RecordedPrediction[] {
    const picked: number[] = [];
    for (let i = 0; i < this.size; i++) {
      const row = (this.next - this.size + i + this.capacity) % this.capacity;
      if (since === undefined || this.rows[row * this.stride] > since) picked.push(row);
    }
    return picked.slice(Math.max(0, picked.length - limit)).map((row) => this.prediction(row));
  }

  private prediction(row: number): RecordedPrediction {
    const at = row * this.stride;
    const { symbol, target, classNames, models } = this.shape;
    const label = this.rows[at + 4];
    const from = at + RING_HEADER;
    return {
      type: 'prediction',
      symbol,
      ts: this.rows[at],
      localTs: this.rows[at + 1],
      seq: this.rows[at + 2],
      mid: this.rows[at + 3],
      target,
      classNames,
      models: models.map((model, m) => ({ model, probs: Array.from(this.rows.subarray(from + m * this.classes, from + (m + 1) * this.classes)) })),
      label: Number.isNaN(label) ? null : classNames[label],
    };
  }
}

export interface RunningFeed {
  readonly config: FeedConfig;
  readonly feed: LiveFeed;
  done: Promise<void>;
}

export interface IngestOutcome {
  /** Snapshots that made a prediction, in the order sent: their stream (`venue:symbol`), its venue and the venue's symbol. */
  readonly accepted: Array<{ stream: string; venue: string; symbol: string; seq: number }>;
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
    super(
      `shutdown checkpoints failed for ${lost.length} symbol(s): ${lost.map((l) => `${l.symbol} (${l.ticksSinceCheckpoint} ticks since its last checkpoint: ${l.error})`).join('; ')}`,
    );
  }
}

/** One message of a push frame or body waiting its turn. */
interface PushItem {
  readonly batch: PushBatch;
  readonly element: unknown;
  readonly index: number | undefined;
}

interface PushBatch {
  /** The venue of the producer's streams. */
  readonly venue: string;
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
    /** The venue of this producer's streams. */
    readonly venue: string,
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
    const pending: PushBatch = { venue: this.venue, outcome, localTs: this.runtime.clockNow(), remaining: batch.elements.length, done };
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
  /** Every symbol's engine with one thread; with workers it only counts and rejects. */
  readonly engine: Engine;
  /** The worker threads the symbols run on, or null when they run on this thread (`workers` ≤ 1). */
  readonly pool: SymbolWorkerPool | null;
  readonly checkpoints: EngineCheckpoints;
  readonly scheduler: IngestScheduler;
  readonly rings = new Map<string, PredictionRing>();
  readonly feeds: RunningFeed[] = [];
  /** Checkpoint write durations, in microseconds. */
  readonly checkpointWrites = new LatencyHistogram();
  readonly storeHealth: StoreHealth = { writable: true, corrupt: false, lastFailure: null };
  /** Counters of the connections predictions leave by and pushed input arrives on (the WebSocket routes count, /metrics and /v1/status read). */
  readonly streamStats = new StreamStats();
  /** @internal the push-ingest ordering state, shared by every push lane. */
  readonly ingestMapper: CanonicalMapper;
  /** The URL of the demo feed, when one runs instead of configured feeds. */
  demoFeedUrl: string | null = null;
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
  private readonly workerSymbols = new Map<string, WorkerSymbol>();
  /** Symbols whose worker thread failed: they take no input until a restart. */
  readonly failedSymbols = new Set<string>();
  private readonly workerLatency = new LatencyHistogram();
  private latencyTimer: NodeJS.Timeout | null = null;
  private flushScheduled = false;
  /** Tick checkpoints being taken from workers and written, by symbol; acks of that symbol's ticks wait for them. */
  private readonly checkpointsInFlight = new Map<string, Promise<void>>();
  /** Symbols whose tick checkpoint fell due while predictions were handed back. */
  private readonly dueOnWorkers = new Set<string>();
  private stopping = false;
  private drained: Promise<void> | null = null;
  /** Hibernated symbols: their state only in their newest checkpoint, their summary here. */
  private readonly hibernated = new Map<string, HibernatedSymbol>();
  private readonly activity = new Map<string, SymbolActivity>();
  private readonly hibernateLane: IngestLane<string>;
  private readonly hibernationQueued = new Set<string>();
  private hibernateTimer: NodeJS.Timeout | null = null;
  /** Set once the background restore has had its symbol this turn of the event loop; settles at the next. */
  private restoreTurn: Promise<void> | null = null;
  /** Whole states taken from workers at once (checkpoints, hibernations): see WORKER_STATES_AT_ONCE. */
  private readonly workerStates = new Slots(WORKER_STATES_AT_ONCE);
  /** Returns the memory of hibernated symbols to the system, a while after they went to sleep. */
  private readonly memoryReclaimer: MemoryReclaimer;
  /** Hibernations and wake-ups since start (Prometheus counters). */
  hibernations = 0;
  wakeUps = 0;

  constructor(
    readonly config: ServiceConfig,
    readonly logger: RuntimeLogger,
    /** Wall clock for live data and checkpoint times; the only clock below the entry point. */
    private readonly now: () => number = Date.now,
    /** An open store to use (the store plugin's, which closes it); else the runtime opens `config.db` and closes it in `stop`. */
    store?: EngineCheckpoints,
  ) {
    this.engineConfig = engineConfigOf(config);
    this.configHash = engineConfigHash(this.engineConfig);
    this.checkpoints = store ?? openStore(config);
    this.ingestMapper = new CanonicalMapper({ levels: config.levels, maxBatch: config.ingestMaxBatch, maxClockSkewMs: config.clockSkewSeconds * 1000 });
    this.scheduler = new IngestScheduler({
      sliceMs: config.ingestSliceMs,
      onError: (lane, error) => logger.error({ lane, err: error }, 'ingest item failed; the lane goes on'),
    });
    this.checkpointLane = this.scheduler.lane<string>('checkpoints', (symbol) => this.runQueuedCheckpoint(symbol));
    this.restoreLane = this.scheduler.lane<string>(
      'restore',
      (symbol) => {
        this.unrestored.delete(symbol);
        if (this.pool && this.idleMs > 0 && this.restoreAsleep(symbol)) return;
        if (!this.symbolOrCreate(symbol) || this.idleMs <= 0) return;
        // With hibernation on, a stored symbol no message has asked for yet is verified, summarised
        // and released at once: a restart does not bring every stored symbol back into memory.
        this.hibernate(symbol, true).catch((error: unknown) => logger.error({ symbol, err: error }, 'hibernation failed; the symbol stays in memory'));
      },
      () => this.backgroundRestoreTurn(),
    );
    // Hibernations take their turn like checkpoint writes, so many symbols going idle at once are spread out.
    this.hibernateLane = this.scheduler.lane<string>('hibernate', (symbol) => {
      this.hibernate(symbol).catch((error: unknown) => logger.error({ symbol, err: error }, 'hibernation failed; the symbol stays in memory'));
    });
    this.engine = new Engine(this.engineConfig, {
      clock: () => performance.now(),
      logger,
      maxSymbols: config.maxSymbols,
      released: this.hibernated,
      createSymbol: (symbol, fresh) => this.createSymbol(symbol, fresh),
    });
    this.engine.addSink((prediction) => this.onPrediction(prediction));
    this.pool =
      config.workers > 1
        ? new SymbolWorkerPool({
            workers: config.workers,
            config: this.engineConfig,
            queueMs: config.workerQueueMs,
            nice: config.workerNice,
            onPrediction: (prediction, ticks, warm) => {
              const view = this.workerSymbols.get(prediction.symbol);
              if (view) {
                view.ticksThisProcess++;
                view.ticks = ticks;
                view.warm = warm;
                view.lastPrediction = prediction;
              }
              this.onPrediction(prediction);
              this.maybeCheckpoint(prediction.symbol);
            },
            onWorkerFailure: (worker, error, symbols) => {
              for (const symbol of symbols) this.failedSymbols.add(symbol);
              this.logger.error({ worker, symbols, err: error }, 'worker thread failed: its symbols take no more input until a restart (readiness reports it)');
            },
          })
        : null;
    const pool = this.pool;
    if (this.idleMs > 0) mapLargeBlocksSeparately();
    this.memoryReclaimer = new MemoryReclaimer({
      delayMs: MEMORY_RECLAIM_DELAY_MS,
      collection: pool ? 'minor' : 'major',
      collectElsewhere: pool ? () => pool.collectGarbage() : undefined,
      onError: (error) => logger.warn({ err: error }, 'returning freed memory to the system failed; it stays with the process for reuse'),
    });
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
    this.restoreStoredInBackground();
    this.startFeeds();
    this.startWorkerLatency();
    this.startCheckpointTimers();
  }

  /**
   * The background restore's gate: one stored symbol per turn of the event loop. A restore is a
   * SQLite read, a checksum and a decode (2 to 5 ms at the default models), so two or three in a
   * slice, back to back for every turn of a thousand-symbol restart, kept each turn long enough
   * that a health check waiting a few turns took over 50 ms. A symbol asked for by name or by a
   * message is restored at once all the same.
   */
  private backgroundRestoreTurn(): Promise<void> | null {
    if (this.restoreTurn) return this.restoreTurn;
    this.restoreTurn = new Promise<void>((resolve) =>
      setImmediate(() => {
        this.restoreTurn = null;
        resolve();
      }),
    );
    return null;
  }

  /**
   * Queues every stored stream for the background restore (each is also restored on first use).
   * Checkpoints written before streams had venues wait for the first stream of their symbol.
   */
  restoreStoredInBackground(): void {
    for (const symbol of this.checkpoints.repository.listStreams()) {
      if (this.symbolView(symbol, false)) continue;
      this.unrestored.add(symbol);
      this.restoreLane.push(symbol);
    }
  }

  /** Connects the configured feeds. */
  startFeeds(): void {
    for (const feedConfig of this.config.feeds) this.startFeed(feedConfig);
  }

  /** Connects a demo feed the entry point runs (no feed being configured); the views mark it as the demo. */
  startDemoFeed(feed: FeedConfig): void {
    this.demoFeedUrl = feed.url;
    this.logger.info({ ws: redactUrl(feed.url) }, 'no feeds configured: connecting the built-in demo feed, a recording replayed on loopback (set LOB_RTRL_FEEDS for a real venue)');
    this.startFeed(feed);
  }

  /** With worker threads: gathers their step latency each second (/metrics and the dashboard). */
  startWorkerLatency(): void {
    if (this.pool) {
      const pool = this.pool;
      this.latencyTimer = setInterval(() => {
        void pool.latency().then(
          (states) => {
            this.workerLatency.reset();
            for (const state of states) this.workerLatency.add(state);
          },
          () => {},
        );
      }, 1000);
      this.latencyTimer.unref();
    }
  }

  /** The interval checkpoints and, with retention, the prediction log's writes and pruning. */
  startCheckpointTimers(): void {
    this.checkpointTimer = setInterval(() => this.queueCheckpoints('interval'), this.config.checkpointEverySeconds * 1000);
    this.checkpointTimer.unref();
    if (this.idleMs > 0) {
      this.hibernateTimer = setInterval(() => this.queueIdleHibernations(), Math.min(1000, Math.max(100, this.idleMs / 4)));
      this.hibernateTimer.unref();
    }
    if (this.config.predictionRetentionSeconds > 0) {
      this.pruneTimer = setInterval(() => this.flushPredictionLog(), 1000);
      this.pruneTimer.unref();
    }
  }

  /**
   * The stream a request names: `venue` and `symbol` name exactly one; a symbol alone names the
   * one stream of that symbol (or is a stream id itself), and is refused with the candidates when
   * two venues carry it. Throws NotFoundError or ConflictError.
   */
  resolveStream(symbol: string, venue?: string): StreamId {
    return resolveStreamAmong(symbol, venue, (id) => this.isKnownStream(id), this.knownStreams());
  }

  private isKnownStream(id: StreamId): boolean {
    return this.unrestored.has(id) || this.hibernated.has(id) || (this.pool ? this.workerSymbols.has(id) : this.engine.symbols.has(id));
  }

  /** Every stream running, asleep or stored and not yet restored. */
  private *knownStreams(): Iterable<StreamId> {
    yield* this.pool ? this.workerSymbols.keys() : this.engine.symbols.keys();
    yield* this.hibernated.keys();
    yield* this.unrestored;
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
    if (running || !(this.unrestored.has(symbol) || this.hibernated.has(symbol))) return running;
    return this.engine.symbolOrCreate(symbol) ?? undefined;
  }

  /**
   * The symbol as the service shows it, wherever it runs; a stored one not yet restored is
   * restored now (unless `restore` is false). Undefined when it is unknown.
   */
  symbolView(symbol: string, restore = true): SymbolView | undefined {
    // A hibernated symbol answers from its summary: looking at it does not wake it.
    const sleeping = this.hibernated.get(symbol);
    if (sleeping) return sleeping;
    if (!this.pool) return restore ? this.symbolEngine(symbol) : this.engine.symbol(symbol);
    const running = this.workerSymbols.get(symbol);
    if (running || !restore || !this.unrestored.has(symbol)) return running;
    return this.symbolOrCreate(symbol) ?? undefined;
  }

  /** Every running symbol, in order of first sight. */
  symbolViews(): SymbolView[] {
    const running: SymbolView[] = this.pool ? [...this.workerSymbols.values()] : [...this.engine.symbols.values()];
    return this.hibernated.size === 0 ? running : [...running, ...this.hibernated.values()];
  }

  /** Symbols hibernated now. */
  get hibernatedSymbols(): number {
    return this.hibernated.size;
  }

  isHibernated(symbol: string): boolean {
    return this.hibernated.has(symbol);
  }

  /** Restores a hibernated symbol now (an operator's action on it needs its state); false when it was not asleep. */
  wake(symbol: string): boolean {
    return this.hibernated.has(symbol) && this.symbolOrCreate(symbol) !== null;
  }

  /** Step latency of every symbol engine, on this thread or gathered from the workers each second. */
  get stepLatency(): LatencyHistogram {
    return this.pool ? this.workerLatency : this.engine.latency;
  }

  /** Scores and learner counters of a running symbol (asked of its worker when it has one). */
  async symbolMetrics(symbol: string): Promise<SymbolMetrics> {
    const sleeping = this.hibernated.get(symbol);
    if (sleeping) return sleeping.metrics;
    if (!this.pool) {
      const engine = this.engine.symbol(symbol);
      if (!engine) throw new NotFoundError(`unknown symbol "${symbol}"`);
      return metricsOfEngine(engine);
    }
    const summary = (await this.pool.summary(false, [symbol])).symbols[0];
    if (!summary) throw new ConflictError(`the worker thread running "${symbol}" has failed`);
    return metricsOfSummary(summary);
  }

  /** Every running symbol's scores at once (one request per worker), for the Prometheus scrape. */
  async allSymbolMetrics(): Promise<Array<SymbolMetrics & { symbol: string }>> {
    const sleeping = [...this.hibernated.values()].map((view) => ({ symbol: view.symbol, ...view.metrics }));
    if (!this.pool) return [...[...this.engine.symbols.values()].map((engine) => ({ symbol: engine.symbol, ...metricsOfEngine(engine) })), ...sleeping];
    const running = (await this.pool.summary(false)).symbols.filter((summary) => !this.hibernated.has(summary.symbol));
    return [...running.map((summary) => ({ symbol: summary.symbol, ...metricsOfSummary(summary) })), ...sleeping];
  }

  /** The symbol, created (and restored) if new; null over the symbol limit. */
  private symbolOrCreate(symbol: string): SymbolView | null {
    if (!this.pool) return this.engine.symbolOrCreate(symbol);
    const running = this.workerSymbols.get(symbol);
    if (running) return running;
    if (!this.hibernated.has(symbol) && this.workerSymbols.size + this.hibernated.size >= this.config.maxSymbols) return null;
    // Restored here, whole and verified, so the ordering checks resume at once; the worker
    // then loads the same state.
    const { engine: restored, checkpoint, payload } = this.restoreSymbol(symbol, () => this.engine.freshSymbol(symbol));
    const view = new WorkerSymbol(symbol, restored);
    this.workerSymbols.set(symbol, view);
    // The stored bytes when they are the state restored: no second encoding of it here.
    const candidates = checkpoint === null ? [] : [{ id: checkpoint, payload: payload ?? restored.getState() }];
    this.pool.open(symbol, candidates).catch((error: unknown) => this.logger.error({ symbol, err: error }, 'symbol could not be opened on its worker'));
    return view;
  }

  /** Posts what this slice queued for the workers once it ends, as one round. */
  private scheduleFlush(): void {
    if (this.flushScheduled || !this.pool) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.pool?.flush();
    });
  }

  /**
   * Resolves once every message handed to the engine so far has made its predictions (at
   * once on one thread): push acknowledgements wait for it, so an acknowledged snapshot's
   * prediction is already in the ring, the stream and the REST answers.
   */
  settled(): Promise<void> {
    return this.pool ? this.pool.whenHandedOver() : Promise.resolve();
  }

  /** A message for symbols on workers: counted here, queued for the owning worker. */
  private dispatch(message: MarketMessage): { symbol: string; seq: number } | null {
    const pool = this.pool!;
    switch (message.type) {
      case 'book_snapshot':
      case 'trade':
      case 'order_event': {
        const view = this.symbolOrCreate(message.symbol);
        if (!view) {
          this.engine.count({
            type: 'rejected',
            reason: 'unknown_symbol',
            detail: `symbol: "${message.symbol}" would exceed the limit of ${this.config.maxSymbols} symbols`,
            sample: message.symbol,
            symbol: message.symbol,
          });
          return null;
        }
        const worker = view as WorkerSymbol;
        if (this.failedSymbols.has(message.symbol)) {
          this.engine.count({
            type: 'rejected',
            reason: 'unknown_symbol',
            detail: `symbol: "${message.symbol}" stopped: its worker thread failed`,
            sample: message.symbol,
            symbol: message.symbol,
          });
          return null;
        }
        this.engine.count(message);
        this.scheduleFlush();
        if (message.type === 'trade') pool.trade(message);
        else if (message.type === 'order_event') pool.orderEvent(message);
        else {
          pool.snapshot(message);
          const seq = message.seq ?? worker.sent;
          worker.sent++;
          return { symbol: message.symbol, seq };
        }
        return null;
      }
      case 'disconnect':
        this.engine.count(message);
        pool.disconnect(message.symbol, message.venue);
        for (const view of this.workerSymbols.values()) if (reachedBy(message, view.symbol)) view.disconnects++;
        this.scheduleFlush();
        return null;
      case 'rejected':
        this.engine.count(message);
        return null;
    }
  }

  /**
   * The background restore of a stored symbol with worker threads and hibernation on: verified,
   * restored and summarised on this thread, then left asleep without ever going to a worker
   * (its first message places it there, as a wake-up does). False when it has no checkpoint to
   * wake from (the usual path then opens it) or is already known.
   */
  private restoreAsleep(symbol: string): boolean {
    if (this.workerSymbols.has(symbol) || this.hibernated.has(symbol)) return true;
    if (this.workerSymbols.size + this.hibernated.size >= this.config.maxSymbols) return true;
    const { engine: restored, checkpoint } = this.restoreSymbol(symbol, () => this.engine.freshSymbol(symbol));
    if (checkpoint === null) return false;
    this.putToSleep(symbol, restored, metricsOfEngine(restored));
    return true;
  }

  /** A symbol's summary kept for the views while its state is only in its newest checkpoint; its memory is reclaimed soon after. */
  private putToSleep(symbol: string, from: SymbolView, metrics: SymbolMetrics): void {
    this.hibernated.set(symbol, new HibernatedSymbol(symbol, from, metrics));
    this.hibernations++;
    this.memoryReclaimer.request();
  }

  /** A symbol first seen: restored from its checkpoints (or fresh), and its ingest ordering resumed. */
  private createSymbol(symbol: string, fresh: () => SymbolEngine): SymbolEngine {
    return this.restoreSymbol(symbol, fresh).engine;
  }

  /**
   * `createSymbol`, also saying which checkpoint it resumed from (null: fresh) and, when the
   * engine holds exactly that checkpoint's state (nothing applied at wake-up), its payload.
   */
  private restoreSymbol(symbol: string, fresh: () => SymbolEngine): { engine: SymbolEngine; checkpoint: number | null; payload: Uint8Array | null } {
    this.unrestored.delete(symbol);
    // Waking from hibernation is this same restore: its newest checkpoint holds its whole state.
    const sleeping = this.hibernated.get(symbol);
    this.hibernated.delete(symbol);
    let symbolEngine: SymbolEngine;
    let restored: number | null = null;
    let payload: Uint8Array | null = null;
    try {
      ({ engine: symbolEngine, checkpoint: restored, payload } = this.checkpoints.restore(symbol, fresh, this.configHash, this.logger));
    } catch (error) {
      // A store that cannot be read must not stop the symbol from running: it starts fresh.
      this.noteStoreFailure(error);
      this.logger.error({ symbol, err: error }, 'checkpoints could not be read; the symbol starts fresh');
      symbolEngine = fresh();
    }
    this.resumeOrdering(symbolEngine);
    this.lastCheckpointTick.set(symbol, symbolEngine.ticks);
    const activity = this.activity.get(symbol) ?? { at: 0, version: 0, savedVersion: -1 };
    this.activity.set(symbol, activity);
    activity.at = this.now();
    activity.savedVersion = restored === null ? -1 : activity.version;
    if (sleeping) {
      symbolEngine.ticksThisProcess = sleeping.ticksThisProcess;
      // As they would have reached it awake: a disconnect only resets state, so applying it now, before its next message, is the same.
      for (let i = 0; i < sleeping.disconnectsPending; i++) symbolEngine.onDisconnect();
      if (sleeping.disconnectsPending > 0) {
        activity.version++;
        payload = null;
      }
      this.wakeUps++;
      this.logger.debug({ symbol, checkpoint: restored, ticks: symbolEngine.ticks }, 'woke from hibernation');
      if (restored === null) this.logger.error({ symbol }, 'hibernated symbol found no checkpoint to wake from; it starts fresh');
    } else if (restored !== null) {
      this.logger.info({ symbol, checkpoint: restored, ticks: symbolEngine.ticks }, 'resumed from checkpoint');
    }
    return { engine: symbolEngine, checkpoint: restored, payload };
  }

  private resumeOrdering(symbolEngine: SymbolEngine): void {
    this.ingestMapper.forget(symbolEngine.symbol);
    if (symbolEngine.lastInputTs !== null || symbolEngine.lastInputSeq !== null) {
      this.ingestMapper.remember(symbolEngine.symbol, symbolEngine.lastInputSeq ?? undefined, symbolEngine.lastInputTs ?? Number.NEGATIVE_INFINITY);
    }
  }

  private startFeed(feedConfig: FeedConfig): void {
    const feed = createLiveFeed(
      venueById(feedConfig.venue),
      { url: feedConfig.url, restUrl: feedConfig.restUrl, symbols: feedConfig.symbols, depth: feedConfig.depth },
      {
        now: this.now,
        levels: this.config.levels,
        logger: this.logger,
        // A mapper releases what it held during a resync in one burst; books conflate only once a
        // symbol has this many waiting, i.e. when the engine really lags, not on every burst.
        maxPendingPerSymbol: FEED_PENDING_BOOKS,
        maxQueued: FEED_PENDING_BOOKS * (feedConfig.symbols.length + 1),
      },
    );
    const lane = this.scheduler.lane<MarketMessage>(
      `feed:${feedConfig.venue}`,
      (message) => this.process(message),
      // Messages are already in their streams here (qualified as they entered the lane).
      (message) => (message.type === 'book_snapshot' || message.type === 'trade' || message.type === 'order_event' ? this.roomFor(message.symbol) : null),
    );
    const running: RunningFeed = { config: feedConfig, feed, done: Promise.resolve() };
    running.done = (async () => {
      try {
        for await (const message of feed.messages()) {
          if (this.stopping) break;
          lane.push(inStream(feedConfig.venue, message));
          // Beyond a few messages the client's own queue waits, and conflates, instead of this lane.
          if (lane.queued >= FEED_LANE_LIMIT) await lane.queuedBelow(FEED_LANE_LIMIT / 2);
        }
      } catch (error) {
        this.logger.error({ venue: feedConfig.venue, url: redactUrl(feedConfig.url), err: redactedError(error) }, 'feed stopped');
      }
    })();
    this.feeds.push(running);
  }

  /**
   * The one entry into the engine for live and pushed data, already in their streams (their
   * symbol qualified by `inStream`). With workers the prediction comes later (to the ring, the
   * stream and the listeners), so this returns null.
   */
  process(message: MarketMessage): Prediction | null {
    this.noteMessage(message);
    if (this.pool) {
      this.dispatch(message);
      return null;
    }
    const prediction = this.engine.process(message);
    if (prediction) this.maybeCheckpoint(prediction.symbol);
    return prediction;
  }

  /** `process`, answering with the accepted snapshot's stream and seq (at once, on workers too). */
  private accept(message: MarketMessage): IngestOutcome['accepted'][number] | null {
    let accepted: { symbol: string; seq: number } | null;
    if (this.pool) {
      this.noteMessage(message);
      accepted = this.dispatch(message);
    } else {
      const prediction = this.process(message);
      accepted = prediction ? { symbol: prediction.symbol, seq: prediction.seq } : null;
    }
    return accepted && { ...namedStream(accepted.symbol), seq: accepted.seq };
  }

  /** A lane for one push producer (a WS connection, a POST body) whose streams are `venue`'s. */
  pushLane(name: string, venue: string = PUSH_VENUE): PushLane {
    return new PushLane(
      this.scheduler.lane<PushItem>(
        name,
        (item) => this.runPushItem(item),
        (item) => {
          // Validated when it runs; its symbol is only peeked at here to find its worker.
          const symbol = (item.element as { symbol?: unknown } | null)?.symbol;
          return typeof symbol === 'string' ? this.roomFor(streamIdOf(venue, symbol)) : null;
        },
      ),
      this,
      venue,
    );
  }

  /**
   * A lane whose next message is for a symbol whose worker is full waits (the others go on):
   * so a worker holds about `workerQueueMs` of work, and a message waits behind no more than that.
   */
  private roomFor(symbol: string): Promise<void> | null {
    return this.pool ? this.pool.roomFor(symbol) : null;
  }

  /**
   * Push ingest done at once, outside the scheduler: for in-process callers (tests, tools) that
   * hand over a whole value and want its outcome now. The network routes use `pushLane`.
   */
  ingest(value: unknown, venue: string = PUSH_VENUE): IngestOutcome {
    const outcome: IngestOutcome = { accepted: [], trades: 0, rejected: [] };
    const batch = this.ingestMapper.batchOf(value);
    if (!batch.ok) {
      this.process(batch.rejection);
      outcome.rejected.push({ reason: batch.rejection.reason, detail: batch.rejection.detail });
      return outcome;
    }
    const pending: PushBatch = { venue, outcome, localTs: this.now(), remaining: batch.elements.length, done: () => {} };
    for (let i = 0; i < batch.elements.length; i++) this.runPushItem({ batch: pending, element: batch.elements[i], index: batch.single ? undefined : i });
    return outcome;
  }

  private runPushItem(item: PushItem): void {
    const { batch } = item;
    try {
      const checked = this.ingestMapper.validate(item.element, batch.localTs, item.index);
      const valid = checked.type === 'rejected' ? checked : (inStream(batch.venue, checked) as typeof checked);
      // A stored symbol is restored before the ordering check, so it is checked against where it stopped.
      const known = valid.type === 'rejected' ? null : this.symbolOrCreate(valid.symbol);
      const message = valid.type === 'rejected' || known === null ? valid : this.ingestMapper.order(valid, item.element, item.index);
      if (message.type === 'rejected') {
        this.process(message);
        batch.outcome.rejected.push({ reason: message.reason, detail: message.detail });
      } else if (known === null) {
        const detail = `${item.index === undefined ? '' : `${item.index}.`}symbol: "${message.symbol}" exceeds the limit of ${this.config.maxSymbols} symbols`;
        this.process({ type: 'rejected', reason: 'unknown_symbol', detail, sample: message.symbol, symbol: message.symbol });
        batch.outcome.rejected.push({ reason: 'unknown_symbol', detail });
      } else if (this.failedSymbols.has(message.symbol)) {
        const detail = `${item.index === undefined ? '' : `${item.index}.`}symbol: "${message.symbol}" stopped: its worker thread failed`;
        this.process({ type: 'rejected', reason: 'unknown_symbol', detail, sample: message.symbol, symbol: message.symbol });
        batch.outcome.rejected.push({ reason: 'unknown_symbol', detail });
      } else if (message.type === 'trade') {
        this.process(message);
        batch.outcome.trades++;
      } else {
        const accepted = this.accept(message);
        if (accepted) batch.outcome.accepted.push(accepted);
      }
    } finally {
      if (--batch.remaining === 0) {
        if (this.pool) {
          void this.settled()
            .then(() => this.checkpointsOf(batch.outcome.accepted))
            .then(() => batch.done(batch.outcome));
        } else batch.done(batch.outcome);
      }
    }
  }

  /**
   * The tick checkpoints in flight of the symbols an ack names: it waits for those alone, so a
   * producer is never held by the write of another producer's symbol.
   */
  private checkpointsOf(accepted: IngestOutcome['accepted']): Promise<unknown> {
    const writes: Promise<void>[] = [];
    for (const { stream } of accepted) {
      const write = this.checkpointsInFlight.get(stream);
      if (write && !writes.includes(write)) writes.push(write);
    }
    return Promise.all(writes);
  }

  /**
   * Before a message reaches its symbol: a hibernated symbol is woken (restored whole, in order,
   * before the message applies), and the symbol's activity is noted for the idle clock and for
   * whether its newest checkpoint still holds its state.
   */
  private noteMessage(message: MarketMessage): void {
    switch (message.type) {
      case 'book_snapshot':
      case 'trade':
      case 'order_event': {
        // Created (or restored) first, so the activity counted below is the message's own.
        if (this.hibernated.has(message.symbol) || !this.activity.has(message.symbol)) this.symbolOrCreate(message.symbol);
        const activity = this.activity.get(message.symbol);
        if (activity) {
          activity.at = this.now();
          activity.version++;
        }
        return;
      }
      case 'disconnect':
        for (const [symbol, activity] of this.activity) {
          if (!reachedBy(message, symbol)) continue;
          activity.version++;
          const sleeping = this.hibernated.get(symbol);
          if (sleeping) {
            sleeping.disconnectsPending++;
            sleeping.disconnects++;
          }
        }
        return;
      case 'rejected':
        return;
    }
  }

  private get idleMs(): number {
    return this.config.hibernateIdleSeconds * 1000;
  }

  /** Queues the hibernation of every symbol idle for `hibernateIdleSeconds` (the timer's sweep). */
  private queueIdleHibernations(): void {
    const now = this.now();
    for (const [symbol, activity] of this.activity) {
      if (now - activity.at < this.idleMs || this.hibernated.has(symbol) || this.hibernationQueued.has(symbol)) continue;
      this.hibernationQueued.add(symbol);
      this.hibernateLane.push(symbol);
    }
  }

  /** Hibernates at once every symbol idle for `hibernateIdleSeconds` (0: none); resolves with how many went. */
  async hibernateIdle(): Promise<number> {
    if (this.idleMs <= 0) return 0;
    const now = this.now();
    let hibernated = 0;
    for (const [symbol, activity] of [...this.activity]) {
      if (now - activity.at >= this.idleMs && (await this.hibernate(symbol))) hibernated++;
    }
    return hibernated;
  }

  /**
   * Hibernates `symbol` if it is still idle: writes its whole state as a checkpoint (unless its
   * newest one already holds it), keeps a summary for the views and releases the rest. A failed
   * write leaves it running, retried with the checkpoints' backoff. Resolves whether it went.
   * `restoredJustNow`: the background restore's symbol, which goes at once if nothing moved it.
   */
  private async hibernate(symbol: string, restoredJustNow = false): Promise<boolean> {
    this.hibernationQueued.delete(symbol);
    const activity = this.activity.get(symbol);
    if (this.stopping || !activity || this.idleMs <= 0) return false;
    if (restoredJustNow ? activity.version !== activity.savedVersion : this.now() - activity.at < this.idleMs) return false;
    if (this.hibernated.has(symbol) || this.failedSymbols.has(symbol)) return false;
    const failing = this.failingCheckpoints.get(symbol);
    if (failing && this.now() < failing.retryAt) return false;
    if (this.pool) return this.hibernateOnWorker(symbol, activity);
    const symbolEngine = this.engine.symbol(symbol);
    if (!symbolEngine) return false;
    if (activity.version !== activity.savedVersion) {
      try {
        this.writeCheckpoint(symbol, symbolEngine.ticks, symbolEngine.getState(), 'hibernate', performance.now());
      } catch (error) {
        this.noteCheckpointFailure(symbol, symbolEngine.ticks, error);
        return false;
      }
    }
    this.engine.release(symbol);
    this.putToSleep(symbol, symbolEngine, metricsOfEngine(symbolEngine));
    return true;
  }

  /**
   * `hibernate` for a symbol on a worker. The worker hands over the state and drops the engine
   * but holds the state until `forget`: a message sent for the symbol meanwhile (its activity
   * count moved) revives it there, and it stays awake; the checkpoint written is still good.
   */
  private hibernateOnWorker(symbol: string, activity: SymbolActivity): Promise<boolean> {
    return this.workerStates.run(() => this.releaseFromWorker(symbol, activity));
  }

  private async releaseFromWorker(symbol: string, activity: SymbolActivity): Promise<boolean> {
    const pool = this.pool!;
    const view = this.workerSymbols.get(symbol);
    if (!view || this.stopping) return false;
    const version = activity.version;
    const started = performance.now();
    const taken = await pool.release(symbol);
    if (version !== activity.savedVersion) {
      try {
        this.writeCheckpoint(symbol, taken.ticks, taken.state!, 'hibernate', started, version);
      } catch (error) {
        // Its worker still holds the state: the next message (or checkpoint) revives it there.
        this.noteCheckpointFailure(symbol, taken.ticks, error);
        return false;
      }
    }
    if (activity.version !== version || this.stopping) return false;
    pool.forget(symbol);
    this.workerSymbols.delete(symbol);
    this.putToSleep(symbol, view, metricsOfSummary(taken));
    return true;
  }

  get memoryReclaim(): { readonly reclaims: number; readonly lastPauseMs: number } {
    return this.memoryReclaimer;
  }

  /** Returns hibernated symbols' memory to the system now instead of after the reclaim delay (tests, drills). */
  reclaimMemoryNow(): Promise<void> {
    return this.memoryReclaimer.reclaimNow();
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
      ring = PredictionRing.of(prediction, this.config.predictionRing);
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
    const symbolEngine = this.symbolView(symbol, false);
    if (!symbolEngine) return;
    const last = this.lastCheckpointTick.get(symbol) ?? 0;
    if (symbolEngine.ticks - last < this.config.checkpointEveryTicks) return;
    if (this.pool) this.checkpointSoon(symbol);
    else this.queueCheckpoint(symbol, 'ticks');
  }

  /**
   * A symbol on a worker whose tick checkpoint is due: taken as soon as the predictions being
   * handed back are through (one per symbol however many of its ticks were in the round), and
   * tracked, so the acknowledgement of those ticks waits for it as it would on one thread.
   */
  private checkpointSoon(symbol: string): void {
    if (this.stopping) return;
    const failing = this.failingCheckpoints.get(symbol);
    if (failing && this.now() < failing.retryAt) return;
    if (this.dueOnWorkers.size === 0) {
      queueMicrotask(() => {
        for (const due of this.dueOnWorkers) {
          // The one in flight takes the state after these ticks: one write, not one per round.
          if (this.checkpointsInFlight.has(due)) continue;
          this.checkpointsInFlight.set(
            due,
            this.checkpointWithBackoff(due, 'ticks').finally(() => this.checkpointsInFlight.delete(due)),
          );
        }
        this.dueOnWorkers.clear();
      });
    }
    this.dueOnWorkers.add(symbol);
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
    for (const symbolEngine of this.symbolViews()) {
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
    void this.checkpointWithBackoff(symbol, reason);
  }

  /** Writes a checkpoint; a failure is logged once per streak and retried with backoff, never thrown. */
  private async checkpointWithBackoff(symbol: string, reason: string): Promise<void> {
    const symbolEngine = this.symbolView(symbol, false);
    if (!symbolEngine) return;
    try {
      await this.checkpoint(symbol, reason);
    } catch (error) {
      this.noteCheckpointFailure(symbol, symbolEngine.ticks, error);
    }
  }

  private noteCheckpointFailure(symbol: string, ticks: number, error: unknown): void {
    const failing = this.failingCheckpoints.get(symbol);
    const delayMs = failing ? Math.min(CHECKPOINT_RETRY_MAX_MS, failing.delayMs * 2) : CHECKPOINT_RETRY_MS;
    this.failingCheckpoints.set(symbol, { retryAt: this.now() + delayMs, delayMs });
    if (!failing) this.logger.error({ symbol, ticks, err: error }, 'checkpoint failed; retrying with backoff');
  }

  /**
   * Writes a checkpoint of `symbol`; resolves once it is committed, rejects with StoreWriteError
   * on a store failure. On one thread the write is done before this returns; a symbol on a
   * worker hands its state over first, and this thread writes it.
   */
  checkpoint(symbol: string, reason: string): Promise<CheckpointMeta | null> {
    if (this.pool) return this.checkpointFromWorker(symbol, reason);
    try {
      const symbolEngine = this.engine.symbol(symbol);
      if (!symbolEngine) return Promise.resolve(null);
      const started = performance.now();
      // Serialising is the engine's business: a failure there is a bug, not a store failure.
      return Promise.resolve(this.writeCheckpoint(symbol, symbolEngine.ticks, symbolEngine.getState(), reason, started));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private checkpointFromWorker(symbol: string, reason: string): Promise<CheckpointMeta | null> {
    return this.workerStates.run(() => this.writeWorkerCheckpoint(symbol, reason));
  }

  private async writeWorkerCheckpoint(symbol: string, reason: string): Promise<CheckpointMeta | null> {
    if (!this.workerSymbols.has(symbol)) return null;
    const started = performance.now();
    // Messages sent after this request are not in the state taken: they leave it unsaved.
    const version = this.activity.get(symbol)?.version;
    const taken = (await this.pool!.summary(true, [symbol])).symbols[0];
    if (!taken?.state) throw new Error(`checkpoint of ${symbol}: its worker thread has failed`);
    return this.writeCheckpoint(symbol, taken.ticks, taken.state, reason, started, version);
  }

  /** `version`: the symbol's activity count when `payload` was taken (now, unless said). */
  private writeCheckpoint(symbol: string, ticks: number, payload: Uint8Array, reason: string, started: number, version = this.activity.get(symbol)?.version): CheckpointMeta {
    let meta: CheckpointMeta;
    try {
      meta = this.checkpoints.repository.save({ symbol, tickCount: ticks, configHash: this.configHash, payload, reason, now: this.now() });
    } catch (error) {
      const kind = this.noteStoreFailure(error);
      throw new StoreWriteError(kind, `checkpoint of ${symbol} not written: ${(error as Error).message}`);
    }
    this.checkpointWrites.record((performance.now() - started) * 1000);
    this.lastCheckpointTick.set(symbol, ticks);
    const activity = this.activity.get(symbol);
    if (activity && version !== undefined) activity.savedVersion = version;
    if (!this.storeHealth.corrupt) this.storeHealth.writable = true;
    if (this.failingCheckpoints.delete(symbol)) this.logger.info({ symbol, ticks }, 'checkpoint writes recovered');
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
  async restore(symbol: string, id: number): Promise<CheckpointMeta> {
    const stored = this.checkpoints.repository.get(id);
    if (!stored || streamIdOf(stored.meta.venue, stored.meta.symbol) !== symbol) throw new NotFoundError(`checkpoint ${id} of ${symbol} not found`);
    if (checksumOf(stored.payload) !== stored.meta.checksum) throw new ConflictError(`checkpoint ${id}: checksum does not match its payload`);
    if (stored.meta.configHash !== this.configHash) throw new ConflictError(`checkpoint ${id}: made with another configuration`);
    if (!this.symbolOrCreate(symbol)) throw new ConflictError(`symbol limit of ${this.config.maxSymbols} reached`);
    // Built whole beside the running engine, which is replaced only once the state has loaded.
    const symbolEngine = this.engine.freshSymbol(symbol);
    try {
      symbolEngine.loadState(stored.payload);
    } catch (error) {
      throw new ConflictError(`checkpoint ${id}: its payload does not decode (${(error as Error).message}); the symbol's state is unchanged`);
    }
    if (this.pool) {
      // Verified whole here; the worker loads the same bytes after everything queued before.
      try {
        await this.pool.load(symbol, stored.payload);
      } catch (error) {
        throw new ConflictError(`checkpoint ${id}: not loaded on the symbol's worker (${(error as Error).message}); the symbol's state is unchanged`);
      }
      const replaced = new WorkerSymbol(symbol, symbolEngine);
      this.workerSymbols.set(symbol, replaced);
    } else {
      this.engine.replace(symbolEngine);
    }
    this.lastCheckpointTick.set(symbol, symbolEngine.ticks);
    // Not necessarily the newest checkpoint: a hibernation must write this state again.
    const activity = this.activity.get(symbol);
    if (activity) activity.version++;
    this.resumeOrdering(symbolEngine);
    return stored.meta;
  }

  /**
   * The operator's reset of one symbol's input ordering (after a producer pushed a far-future
   * ts or a huge seq): its next snapshot is accepted whatever its seq and ts. Written to a
   * checkpoint at once, so a restart does not bring the old ordering back.
   */
  async resetOrdering(symbol: string): Promise<CheckpointMeta | null> {
    if (this.pool) {
      if (this.hibernated.has(symbol)) this.symbolOrCreate(symbol);
      const view = this.workerSymbols.get(symbol);
      if (!view) throw new NotFoundError(`unknown symbol "${symbol}"`);
      this.ingestMapper.forget(symbol);
      const started = performance.now();
      const after = await this.pool.resetOrdering(symbol);
      view.disconnects = after.disconnects;
      return this.writeCheckpoint(symbol, after.ticks, after.state, 'ordering-reset', started);
    }
    const symbolEngine = this.symbolEngine(symbol);
    if (!symbolEngine) throw new NotFoundError(`unknown symbol "${symbol}"`);
    this.ingestMapper.forget(symbol);
    symbolEngine.resetOrdering();
    return this.checkpoint(symbol, 'ordering-reset');
  }

  private flushPredictionLog(): void {
    try {
      if (this.predictionLog.length > 0) {
        const rows = this.predictionLog
          .splice(0)
          .map((p) => ({ symbol: p.symbol, ts: p.ts, seq: p.seq, model: p.models[0].model, probs: p.models[0].probs, createdAt: this.now() }));
        this.checkpoints.repository.insertPredictions(rows);
      }
      this.checkpoints.repository.prunePredictionsOlderThan(this.now() - this.config.predictionRetentionSeconds * 1000);
    } catch (error) {
      // The log is best effort; checkpoints come first. The failure shows in readiness.
      this.noteStoreFailure(error);
      this.logger.warn({ err: error }, 'prediction log not written');
    }
  }

  readiness(): { database: boolean; feeds: boolean; learners: boolean; restored: boolean; workers?: boolean; reason?: string } {
    let database = this.storeHealth.writable && !this.storeHealth.corrupt;
    try {
      this.checkpoints.db.prepare('SELECT 1').get();
    } catch (error) {
      this.noteStoreFailure(error);
      database = false;
    }
    const feeds = this.feeds.every((running) => running.feed.stats.connected && Object.values(running.feed.stats.synced).every(Boolean));
    const symbols = this.symbolViews();
    const learners = symbols.length === 0 ? this.feeds.length === 0 : symbols.every((s) => s.warm);
    const restored = this.unrestored.size === 0;
    const failure = this.storeHealth.lastFailure;
    const checks =
      database || !failure ? { database, feeds, learners, restored } : { database, feeds, learners, restored, reason: `database: ${failure.kind}: ${failure.message}` };
    if (!this.pool) return checks;
    // With worker threads, whether every symbol's thread is alive (a failed one is not ready).
    const workers = this.failedSymbols.size === 0;
    return workers
      ? { ...checks, workers }
      : { ...checks, workers, reason: `${checks.reason ? `${checks.reason}; ` : ''}worker thread failed for ${[...this.failedSymbols].join(', ')}` };
  }

  /**
   * Graceful stop: feeds first, the messages they already delivered, then a checkpoint of every
   * symbol (retried, with space freed when the disk is full), then the database. Throws
   * ShutdownCheckpointError, after closing the database, when some state could not be saved.
   * An app that owns its runtime runs the same steps from its plugins' `onClose` hooks.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    await this.stopFeeds();
    await this.drain();
    const lost = await this.writeShutdownCheckpoints();
    await this.closeWorkers();
    this.checkpoints.close();
    if (lost.length > 0) throw new ShutdownCheckpointError(lost);
  }

  /** No more timers, queued checkpoints or feed messages from here on. */
  private beginStop(): void {
    this.stopping = true;
    this.memoryReclaimer.close();
    if (this.checkpointTimer) clearInterval(this.checkpointTimer);
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    if (this.latencyTimer) clearInterval(this.latencyTimer);
    if (this.hibernateTimer) clearInterval(this.hibernateTimer);
  }

  /** The first step of a stop: the feeds close, their loops end. */
  async stopFeeds(): Promise<void> {
    this.beginStop();
    await Promise.all(this.feeds.map((running) => running.feed.close()));
    await Promise.all(this.feeds.map((running) => running.done));
  }

  /**
   * Runs what the producers already delivered (on the workers too) and the checkpoints under
   * way, then writes the prediction log: what the final checkpoints must include. Once only.
   */
  drain(): Promise<void> {
    this.drained ??= this.drainOnce();
    return this.drained;
  }

  private async drainOnce(): Promise<void> {
    this.beginStop();
    this.checkpointLane.close();
    this.restoreLane.close();
    this.hibernateLane.close();
    await this.scheduler.idle();
    this.scheduler.close();
    // What the workers still hold reaches the ring and the log before the checkpoints.
    if (this.pool) await this.pool.drain();
    await Promise.all(this.checkpointsInFlight.values());
    if (this.config.predictionRetentionSeconds > 0) this.flushPredictionLog();
  }

  /** The last step before the store closes: the worker threads end. */
  async closeWorkers(): Promise<void> {
    if (this.pool) await this.pool.close();
  }

  /** The final checkpoint of every symbol that moved since its last one, retried; returns what could not be saved. */
  async writeShutdownCheckpoints(): Promise<Array<{ symbol: string; ticksSinceCheckpoint: number; error: string }>> {
    let due = this.symbolViews()
      .filter((s) => !this.failedSymbols.has(s.symbol))
      .filter((s) => s.ticks !== this.lastCheckpointTick.get(s.symbol) || this.failingCheckpoints.has(s.symbol));
    let written = 0;
    const errors = new Map<string, StoreWriteError>();
    for (let attempt = 1; attempt <= SHUTDOWN_ATTEMPTS && due.length > 0; attempt++) {
      if (attempt > 1) {
        this.freeStoreSpace();
        await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
      }
      const failed: SymbolView[] = [];
      for (const symbolEngine of due) {
        try {
          await this.checkpoint(symbolEngine.symbol, 'shutdown');
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

/** The store as `serve` opens it: `config.db`, keeping the last `checkpointKeep` checkpoints of each symbol, within `dbMaxBytes`. */
export function openStore(config: ServiceConfig): EngineCheckpoints {
  return EngineCheckpoints.open(config.db, config.checkpointKeep, { maxBytes: config.dbMaxBytes || undefined });
}

export class NotFoundError extends Error {}
export class ConflictError extends Error {}
