// The small interfaces the routes are written against, and how a ServiceRuntime provides each.
// The infrastructure plugins (src/service/plugins/) decorate the app with them; a route never
// reaches into the runtime, its learners or its repository.
import type { Rejected } from '../domain/types.js';
import { currentRtrlKernel } from '../model/kernels/select.js';
import type { EngineCounters } from '../engine/engine.js';
import type { LatencyHistogram } from '../engine/latency.js';
import type { Prediction, RecordedPrediction } from '../engine/symbol-engine.js';
import type { LiveFeedStats } from '../ingest/live-client.js';
import type { CheckpointMeta, StoredPrediction } from '../store/checkpoints.js';
import type { PredictionListener, PushLane, ServiceRuntime, SymbolMetrics, SymbolView } from './runtime.js';

export type Readiness = ReturnType<ServiceRuntime['readiness']>;

/** The running streams (one per symbol), wherever they run: what REST, /metrics and the dashboard read. */
export interface StreamsView {
  /**
   * The id (`venue:symbol`) of the stream a request names: by venue and symbol, or by a symbol
   * only one venue carries. Throws NotFoundError when none, ConflictError when several.
   */
  resolve(symbol: string, venue?: string): string;
  /** Every running stream, in order of first sight. */
  list(): SymbolView[];
  /** The stream of `symbol`; a stored one not yet restored is restored now. Undefined when unknown. */
  get(symbol: string): SymbolView | undefined;
  /** Scores and learner counters of a running stream (asked of its worker thread when it has one). */
  metrics(symbol: string): Promise<SymbolMetrics>;
  /** Every running stream's scores at once, for a Prometheus scrape. */
  allMetrics(): Promise<Array<SymbolMetrics & { symbol: string }>>;
  /** Stored streams the background restore has not loaded yet. */
  readonly restoring: number;
  /** Streams hibernated (idle: their state in their newest checkpoint, a summary in memory). */
  readonly hibernated: number;
  isHibernated(symbol: string): boolean;
  /** Hibernations and wake-ups since the process started. */
  readonly hibernations: number;
  readonly wakeUps: number;
  /** Returns of sleeping streams' memory to the system, and the main thread's pause in the last. */
  readonly memoryReclaim: { readonly reclaims: number; readonly lastPauseMs: number };
  /** Store, feeds, learners, restore and worker threads, as /readyz reports them. */
  readiness(): Readiness;
  /** Step latency of every stream's engine. */
  readonly stepLatency: LatencyHistogram;
  /** Events, rejects (by reason) and disconnects the engine counted. */
  readonly counters: Readonly<EngineCounters>;
  /** The RTRL kernel the streams' learners run on: 'js', or 'native-' and the instruction set (the workers' on the api role). */
  readonly kernel: string;
}

/** The predictions as they are made: subscriptions, and the recent ones of each symbol. */
export interface PredictionBus {
  /** `listener` is called with every new prediction until the returned function is called. */
  subscribe(listener: PredictionListener): () => void;
  readonly subscriberCount: number;
  /** The newest prediction of a running symbol, or null before its first. */
  latest(symbol: string): Prediction | null;
  /** Predictions of `symbol` kept in memory with ts > since (all when undefined), at most `limit`, newest last. */
  recent(symbol: string, since: number | undefined, limit: number): RecordedPrediction[];
  /** Whether older predictions are kept in the store's prediction log (`predictionRetentionSeconds` > 0). */
  readonly logged: boolean;
  /** Logged predictions with fromTs <= ts < toTs, in time order, at most `limit` (first model only). */
  loggedBetween(symbol: string, fromTs: number, toTs: number, limit: number): StoredPrediction[];
}

/** Where pushed input enters: one lane per producer, sharing the engine fairly with every other. */
export interface IngestPort {
  /** A lane for one push producer (a WebSocket connection, a POST body) whose streams are `venue`'s (default `push`). */
  lane(name: string, venue?: string): PushLane;
  /** How many messages a frame or body carries, or null when it is refused whole (not a message, an empty or too long array). */
  messageCount(value: unknown): number | null;
  /** Counts (and logs once per reason) input refused before it reached a lane. */
  reject(rejection: Rejected): void;
  /** Forgets a symbol's last accepted seq and ts, and checkpoints that at once. */
  resetOrdering(symbol: string): Promise<CheckpointMeta | null>;
}

/** The checkpoints of each stream, as an operator lists, writes and restores them. */
export interface CheckpointsPort {
  /** Stored checkpoints of `symbol`, newest first. */
  list(symbol: string): CheckpointMeta[];
  /** Writes one now (waking a hibernated stream first); null when the symbol is unknown. Rejects with StoreWriteError on a store failure. */
  write(symbol: string, reason: string): Promise<CheckpointMeta | null>;
  /** Replaces the stream's state with checkpoint `id` (checksum and configuration verified). */
  restore(symbol: string, id: number): Promise<CheckpointMeta>;
  /** Checkpoint write durations, in microseconds. */
  readonly writes: LatencyHistogram;
}

/** One live feed as the status page and /metrics show it; never its URL, which can carry credentials. */
export interface FeedView {
  readonly venue: string;
  readonly symbols: readonly string[];
  /** The built-in demo feed (the bundled recording on loopback). */
  readonly demo: boolean;
  readonly stats: LiveFeedStats;
}

export interface FeedsView {
  list(): FeedView[];
}

export function streamsViewOf(runtime: ServiceRuntime): StreamsView {
  return {
    resolve: (symbol, venue) => runtime.resolveStream(symbol, venue),
    list: () => runtime.symbolViews(),
    get: (symbol) => runtime.symbolView(symbol),
    metrics: (symbol) => runtime.symbolMetrics(symbol),
    allMetrics: () => runtime.allSymbolMetrics(),
    get restoring() {
      return runtime.symbolsToRestore;
    },
    get hibernated() {
      return runtime.hibernatedSymbols;
    },
    isHibernated: (symbol) => runtime.isHibernated(symbol),
    get hibernations() {
      return runtime.hibernations;
    },
    get wakeUps() {
      return runtime.wakeUps;
    },
    get memoryReclaim() {
      return runtime.memoryReclaim;
    },
    readiness: () => runtime.readiness(),
    get stepLatency() {
      return runtime.stepLatency;
    },
    counters: runtime.engine.counters,
    get kernel() {
      return currentRtrlKernel().name;
    },
  };
}

export function predictionBusOf(runtime: ServiceRuntime): PredictionBus {
  return {
    subscribe: (listener) => runtime.subscribe(listener),
    get subscriberCount() {
      return runtime.subscriberCount;
    },
    latest: (symbol) => runtime.symbolView(symbol, false)?.lastPrediction ?? null,
    recent: (symbol, since, limit) => runtime.rings.get(symbol)?.recent(since, limit) ?? [],
    logged: runtime.config.predictionRetentionSeconds > 0,
    loggedBetween: (symbol, fromTs, toTs, limit) => runtime.checkpoints.repository.predictionsInRange(symbol, fromTs, toTs, limit),
  };
}

export function ingestPortOf(runtime: ServiceRuntime): IngestPort {
  return {
    lane: (name, venue) => runtime.pushLane(name, venue),
    messageCount: (value) => {
      const batch = runtime.ingestMapper.batchOf(value);
      return batch.ok ? batch.elements.length : null;
    },
    reject: (rejection) => void runtime.process(rejection),
    resetOrdering: (symbol) => runtime.resetOrdering(symbol),
  };
}

export function checkpointsPortOf(runtime: ServiceRuntime): CheckpointsPort {
  return {
    list: (symbol) => runtime.checkpoints.repository.list(symbol),
    // A hibernated stream is woken first: its checkpoint is then of the state it restores to.
    write: (symbol, reason) => {
      runtime.wake(symbol);
      return runtime.checkpoint(symbol, reason);
    },
    restore: (symbol, id) => runtime.restore(symbol, id),
    writes: runtime.checkpointWrites,
  };
}

export function feedsViewOf(runtime: ServiceRuntime): FeedsView {
  return {
    list: () =>
      runtime.feeds.map(({ config, feed }) => ({
        venue: config.venue,
        symbols: config.symbols,
        demo: config.url === runtime.demoFeedUrl,
        stats: feed.stats,
      })),
  };
}
