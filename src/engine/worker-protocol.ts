// The messages between the main thread and a symbol worker (src/engine/symbol-worker.ts).
// Market data travels as transferable record batches (worker-wire.ts); these small objects,
// structured-cloned, carry the rest: opening a symbol with its checkpoint candidates,
// state for checkpoints, summaries for reports and REST.
import type { LearnerStats } from '../model/learner.js';
import type { EngineConfig } from './config.js';
import type { LatencyState } from './latency.js';
import type { MetricsSummary, RollingMetrics } from './metrics.js';
import type { Prediction } from './symbol-engine.js';

export interface WorkerStartData {
  readonly config: EngineConfig;
  /** URL of a StreamObserverModule whose observer watches each symbol (replay --html: the report timeline); null for none. */
  readonly observerModule: string | null;
  /** The RTRL kernel the main thread chose, so every thread runs (and reports) the same one. */
  readonly rtrlKernel: 'js' | 'native';
  /** Niceness this thread adds to the one it started with (Linux, where it is per thread), so the main thread's I/O preempts it; 0 leaves it. */
  readonly nice: number;
}

/** Where a symbol's input stream stands, as the main thread needs it without asking. */
export interface SymbolSnapshot {
  readonly ticks: number;
  readonly disconnects: number;
  readonly lastPrediction: Prediction | null;
  readonly lastInputSeq: number | null;
  readonly lastInputTs: number | null;
  readonly warm: boolean;
}

export interface SymbolOpened extends SymbolSnapshot {
  /** The checkpoint restored, or null when the symbol started fresh. */
  readonly checkpoint: number | null;
  /** Candidates that verified on the main thread but did not decode here, newest first. */
  readonly failures: Array<{ id: number; message: string }>;
}

export interface SymbolSummary extends SymbolSnapshot {
  readonly symbolId: number;
  readonly symbol: string;
  /** Predictions made and not yet scored. */
  readonly unscored: number;
  readonly modelNames: readonly string[];
  readonly summaries: MetricsSummary[];
  readonly rolling: RollingMetrics[][];
  readonly learnerStats: LearnerStats[];
  /** The mix model's weight on each member; null without a mix. */
  readonly mixWeights: Array<{ model: string; weight: number }> | null;
  /** The symbol's observer's data (StreamObserver.toData), null without an observer. */
  readonly observed: unknown;
  /** The whole state (SymbolEngine.getState) when asked for. */
  readonly state: Uint8Array | null;
}

export interface WorkerSummary {
  readonly symbols: SymbolSummary[];
  readonly latency: LatencyState;
}

export type WorkerRequest =
  | { readonly op: 'batch'; readonly round: number; readonly records: Float64Array }
  | { readonly op: 'open'; readonly requestId: number; readonly symbolId: number; readonly symbol: string; readonly candidates: ReadonlyArray<{ id: number; payload: Uint8Array }> }
  | { readonly op: 'summary'; readonly requestId: number; readonly symbolIds: number[] | null; readonly withState: boolean }
  | { readonly op: 'load'; readonly requestId: number; readonly symbolId: number; readonly payload: Uint8Array }
  | { readonly op: 'resetOrdering'; readonly requestId: number; readonly symbolId: number }
  /** Hibernation: the symbol's summary with its whole state, its engine dropped; the worker holds the state until `forget`. */
  | { readonly op: 'release'; readonly requestId: number; readonly symbolId: number }
  /** The released state was written: the worker drops it (unless a later message revived the symbol). No reply. */
  | { readonly op: 'forget'; readonly symbolId: number }
  /** A major collection of the worker's heap, so the engines it dropped free their arrays; answers whether it ran. */
  | { readonly op: 'collectGarbage'; readonly requestId: number };

export type WorkerReply =
  /** `busyMs`: the time this thread spent on the batch, from which the pool sizes what it keeps in flight. */
  | { readonly op: 'batch'; readonly round: number; readonly predictions: Float64Array; readonly busyMs: number }
  | { readonly op: 'reply'; readonly requestId: number; readonly value: unknown }
  | { readonly op: 'failed'; readonly requestId: number; readonly round: number; readonly message: string };
