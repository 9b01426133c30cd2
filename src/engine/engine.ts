// The one pipeline below the entry points: canonical messages in, predictions out to sinks.
// `serve` and `replay` differ only in the source that feeds `process`, the clock they pass and
// the sinks they attach.
import { reachedBy } from '../domain/stream.js';
import type { MarketMessage, RejectReason } from '../domain/types.js';
import { modelName } from '../model/factory.js';
import { classNames } from '../model/targets.js';
import type { EngineConfig } from './config.js';
import { LatencyHistogram } from './latency.js';
import { SymbolEngine, type Prediction, type StreamObserver } from './symbol-engine.js';

export type PredictionSink = (prediction: Prediction) => void;

export interface EngineLogger {
  warn(fields: object, message: string): void;
}

export interface EngineCounters {
  /** Snapshots and rejected inputs seen (markers are counted apart). */
  eventsRead: number;
  accepted: number;
  rejected: Partial<Record<RejectReason, number>>;
  disconnects: number;
  /** Trades and order events applied to a symbol's flow features (they never predict by themselves). */
  trades: number;
  orderEvents: number;
}

export interface EngineOptions {
  /** Monotonic milliseconds (performance.now) for step latency; omit to skip measuring. */
  readonly clock?: () => number;
  readonly logger?: EngineLogger;
  /** An observer of a symbol's ticks and scores, attached on first sight (replay's report timeline). */
  readonly observerFor?: (symbol: string, models: readonly string[], classes: number) => StreamObserver;
  /**
   * Builds the engine of a symbol first seen, before its first tick: checkpoints restore here,
   * each candidate into its own `fresh()` engine. Default: a fresh engine.
   */
  readonly createSymbol?: (symbol: string, fresh: () => SymbolEngine) => SymbolEngine;
  /** Called once a new symbol's engine is in place. */
  readonly onNewSymbol?: (engine: SymbolEngine) => void;
  /** At most this many symbols (a bound on memory for push ingest). */
  readonly maxSymbols?: number;
  /**
   * Symbols the caller took out with `release` (hibernated: their state only in a checkpoint).
   * They count towards `maxSymbols`, and one of them seen again is created (restored) within it.
   */
  readonly released?: { readonly size: number; has(symbol: string): boolean };
}

export class Engine {
  readonly symbols = new Map<string, SymbolEngine>();
  readonly counters: EngineCounters = { eventsRead: 0, accepted: 0, rejected: {}, disconnects: 0, trades: 0, orderEvents: 0 };
  readonly latency = new LatencyHistogram();
  private readonly sinks: PredictionSink[] = [];
  private readonly loggedReasons = new Set<string>();

  constructor(
    readonly config: EngineConfig,
    private readonly options: EngineOptions = {},
  ) {}

  addSink(sink: PredictionSink): () => void {
    this.sinks.push(sink);
    return () => {
      const index = this.sinks.indexOf(sink);
      if (index >= 0) this.sinks.splice(index, 1);
    };
  }

  /** Puts `engine` in place of its symbol's running one (a restore built it whole beside it). */
  replace(engine: SymbolEngine): void {
    const running = this.symbols.get(engine.symbol);
    if (!running) throw new Error(`replace: ${engine.symbol} is not running`);
    // The process-lifetime count follows the symbol, not the object, so the counter never goes back.
    engine.ticksThisProcess += running.ticksThisProcess;
    this.symbols.set(engine.symbol, engine);
  }

  /** Takes a symbol's engine out (its state saved elsewhere); its next message creates it anew through `createSymbol`. */
  release(symbol: string): SymbolEngine | undefined {
    const engine = this.symbols.get(symbol);
    this.symbols.delete(symbol);
    return engine;
  }

  /** A fresh engine for `symbol` with this engine's configuration, not yet in place. */
  freshSymbol(symbol: string): SymbolEngine {
    return new SymbolEngine(symbol, this.config);
  }

  symbol(symbol: string): SymbolEngine | undefined {
    return this.symbols.get(symbol);
  }

  /** The symbol's engine, created (and restored through `createSymbol`) if new; null over the symbol limit. */
  symbolOrCreate(symbol: string): SymbolEngine | null {
    return this.engineFor(symbol);
  }

  /** Feeds one message through the pipeline. Never throws for bad market data. */
  process(message: MarketMessage): Prediction | null {
    switch (message.type) {
      case 'book_snapshot': {
        const engine = this.engineFor(message.symbol);
        if (!engine) {
          this.reject('unknown_symbol', `symbol: "${message.symbol}" would exceed the limit of ${this.options.maxSymbols} symbols`, message.symbol, message.symbol);
          return null;
        }
        this.counters.eventsRead++;
        this.counters.accepted++;
        const prediction = engine.onSnapshot(message, this.options.clock, this.latency);
        for (const sink of this.sinks) sink(prediction);
        return prediction;
      }
      case 'trade':
      case 'order_event': {
        const engine = this.engineFor(message.symbol);
        if (!engine) {
          this.reject('unknown_symbol', `symbol: "${message.symbol}" would exceed the limit of ${this.options.maxSymbols} symbols`, message.symbol, message.symbol);
          return null;
        }
        if (message.type === 'trade') {
          this.counters.trades++;
          engine.onTrade(message);
        } else {
          this.counters.orderEvents++;
          engine.onOrderEvent(message);
        }
        return null;
      }
      case 'rejected':
        this.reject(message.reason, message.detail, message.sample, message.symbol);
        return null;
      case 'disconnect':
        this.counters.disconnects++;
        if (message.symbol === null) {
          for (const engine of this.symbols.values()) if (reachedBy(message, engine.symbol)) engine.onDisconnect();
        } else {
          this.symbols.get(message.symbol)?.onDisconnect();
        }
        return null;
    }
  }

  /**
   * Counts `message` as `process` would, without running it: for a caller whose symbols run
   * on worker threads (src/engine/worker-pool.ts). Rejections are counted and logged here;
   * a disconnect is counted (its symbols are reset where they run).
   */
  count(message: MarketMessage): void {
    switch (message.type) {
      case 'book_snapshot':
        this.counters.eventsRead++;
        this.counters.accepted++;
        return;
      case 'trade':
        this.counters.trades++;
        return;
      case 'order_event':
        this.counters.orderEvents++;
        return;
      case 'rejected':
        this.reject(message.reason, message.detail, message.sample, message.symbol);
        return;
      case 'disconnect':
        this.counters.disconnects++;
        return;
    }
  }

  private reject(reason: RejectReason, detail: string, sample: string, symbol: string | null): void {
    this.counters.eventsRead++;
    this.counters.rejected[reason] = (this.counters.rejected[reason] ?? 0) + 1;
    if (!this.loggedReasons.has(reason)) {
      // Once per reason: a flood of bad frames must not flood the log.
      this.loggedReasons.add(reason);
      this.options.logger?.warn({ reason, detail, sample, symbol }, 'input rejected (further rejections for this reason are only counted)');
    }
  }

  private engineFor(symbol: string): SymbolEngine | null {
    const existing = this.symbols.get(symbol);
    if (existing) return existing;
    const released = this.options.released;
    if (this.options.maxSymbols !== undefined && !released?.has(symbol) && this.symbols.size + (released?.size ?? 0) >= this.options.maxSymbols) return null;
    const observer = this.options.observerFor?.(symbol, this.config.models.map(modelName), classNames(this.config.target).length) ?? null;
    const fresh = () => new SymbolEngine(symbol, this.config, observer);
    const engine = this.options.createSymbol ? this.options.createSymbol(symbol, fresh) : fresh();
    this.symbols.set(symbol, engine);
    this.options.onNewSymbol?.(engine);
    return engine;
  }
}
