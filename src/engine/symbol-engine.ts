// Everything stateful about one symbol: features -> normaliser -> learners (with their label
// bookkeeping) -> prequential metrics. Plain object, no I/O, no clock of its own: the caller
// passes a monotonic clock only to measure step latency.
import { FeatureExtractor, midPrice } from '../features/extract.js';
import { OnlineNormaliser } from '../features/normaliser.js';
import type { BookSnapshot, OrderEvent, Trade } from '../domain/types.js';
import { createLearners, modelName } from '../model/factory.js';
import { LearnerSet } from '../model/learner-set.js';
import { classNames, targetName } from '../model/targets.js';
import { decodeState, encodeState, packChunks, packRing, requireArray, unpackChunks } from '../model/state-codec.js';
import { PrequentialMetrics, prequentialMetricsStateSchema } from './metrics.js';
import type { EngineConfig } from './config.js';
import type { LatencyHistogram } from './latency.js';
import { describeIssues } from '../domain/schemas.js';
import { z } from 'zod';

const savedPredictionSchema = z.object({
  type: z.literal('prediction'),
  symbol: z.string(),
  ts: z.number(),
  localTs: z.number(),
  seq: z.number(),
  mid: z.number(),
  target: z.string(),
  classNames: z.array(z.string()),
  models: z.array(z.object({ model: z.string(), probs: z.array(z.number()) })),
  resolved: z.array(z.object({ fromSeq: z.number(), toSeq: z.number(), count: z.number(), label: z.string() })).optional(),
});

export interface ModelPrediction {
  readonly model: string;
  /** Class probabilities in class order (down, up) or (down, flat, up). */
  readonly probs: readonly number[];
}

/**
 * Earlier predictions of the stream whose label one tick revealed: the `count` consecutive
 * predictions from seq `fromSeq` to `toSeq`, all with the class `label`. Scored as the engine
 * scores them; a client marks its predictions with these instead of working labels out itself.
 */
export interface Resolution {
  readonly fromSeq: number;
  readonly toSeq: number;
  readonly count: number;
  readonly label: string;
}

export interface Prediction {
  readonly type: 'prediction';
  readonly symbol: string;
  readonly ts: number;
  readonly localTs: number;
  /** The snapshot's seq where the source has one, else its index in this symbol's accepted stream. */
  readonly seq: number;
  readonly mid: number;
  readonly target: string;
  readonly classNames: readonly string[];
  readonly models: readonly ModelPrediction[];
  /** What this tick resolved, oldest first; absent when it resolved nothing. */
  readonly resolved?: readonly Resolution[];
}

/** A prediction as a history keeps it: with the class it resolved to, null while pending (or never scored). */
export interface RecordedPrediction extends Prediction {
  readonly label: string | null;
}

/**
 * Watches one stream's engine tick by tick, for what the engine itself does not keep (the
 * replay report's timeline). Called synchronously inside the tick: it must not throw or block.
 */
export interface StreamObserver {
  /** A snapshot was accepted, at venue time `ts`, with this mid-price. */
  onMid(ts: number, mid: number): void;
  /**
   * A prediction of model `modelIndex` was scored at venue time `ts` (when its label resolved):
   * its probabilities at `probs[offset..]`, the label, and the model's metrics just updated.
   */
  onScored(modelIndex: number, ts: number, probs: Float64Array, offset: number, label: number, metrics: PrequentialMetrics): void;
  /** What it recorded, as plain data (structured-cloned from a worker thread to whoever attached it). */
  toData(): unknown;
}

/**
 * What a module named by a worker pool's `observerModule` exports, so a worker thread builds the
 * observers of its streams itself: functions cannot cross to a thread, a module URL can.
 */
export interface StreamObserverModule {
  createObserver(symbol: string, models: readonly string[], classes: number): StreamObserver;
}

export class SymbolEngine {
  readonly features: FeatureExtractor;
  readonly normaliser: OnlineNormaliser;
  readonly learners: LearnerSet;
  readonly metrics: PrequentialMetrics[];
  readonly modelNames: readonly string[];
  readonly classNames: readonly string[];
  readonly targetName: string;
  /** Accepted snapshots of this symbol, across restarts. */
  ticks = 0;
  /** Accepted snapshots in this process only (never checkpointed): what a Prometheus counter needs. */
  ticksThisProcess = 0;
  disconnects = 0;
  lastPrediction: Prediction | null = null;
  /** The last accepted snapshot's own seq (null when the source has none). */
  lastInputSeq: number | null = null;
  /**
   * The last accepted snapshot's venue time: with `lastInputSeq`, where the ordering checks of
   * push ingest resume after a restart. Null after an operator reset of the ordering.
   */
  lastInputTs: number | null = null;
  private readonly raw: Float64Array;
  private readonly normalised: Float64Array;
  private currentTs = 0;
  private readonly scoreSink: (learnerIndex: number, probs: Float64Array, offset: number, label: number) => void;
  /** Seqs of the pending predictions, oldest at `pendingHead`, in a ring that doubles as needed. */
  private pendingSeqs = new Float64Array(16);
  private pendingHead = 0;
  private pendingCount = 0;
  /** This tick's resolutions so far, four numbers each (fromSeq, toSeq, count, label), reused. */
  private runs = new Float64Array(16);
  private runCount = 0;

  constructor(
    readonly symbol: string,
    readonly config: EngineConfig,
    private readonly observer: StreamObserver | null = null,
  ) {
    this.features = new FeatureExtractor(config.levels);
    this.normaliser = new OnlineNormaliser(this.features.dimension, config.normaliser);
    this.learners = new LearnerSet(createLearners(config.models, config.learner, this.features.dimension, config.target), config.target, config.learner.maxPending);
    this.modelNames = config.models.map(modelName);
    this.classNames = classNames(config.target);
    this.targetName = targetName(config.target);
    this.metrics = this.modelNames.map(() => new PrequentialMetrics(this.classNames.length, [...config.rollingWindows]));
    this.raw = new Float64Array(this.features.dimension);
    this.normalised = new Float64Array(this.features.dimension);
    this.scoreSink = (learnerIndex, probs, offset, label) => {
      const metrics = this.metrics[learnerIndex];
      metrics.record(probs, offset, label);
      this.observer?.onScored(learnerIndex, this.currentTs, probs, offset, label, metrics);
      // Every learner scores the same predictions in the same order: the first one says which.
      if (learnerIndex === 0) this.noteResolved(label);
    };
  }

  /** The last tick's feature vector before standardisation (valid until the next tick). */
  get rawFeatures(): Float64Array {
    return this.raw;
  }

  /** The feature normaliser has seen its warm-up ticks (readiness waits for it). */
  get warm(): boolean {
    return this.normaliser.isWarm;
  }

  /** One tick. `clock` (ms, monotonic) and `latency` are optional, for measurement only. */
  onSnapshot(snapshot: BookSnapshot, clock?: () => number, latency?: LatencyHistogram): Prediction {
    const started = clock ? clock() : 0;
    this.currentTs = snapshot.ts;
    this.features.extract(snapshot, this.raw);
    this.normaliser.normalise(this.raw, this.normalised);
    const mid = midPrice(snapshot);
    this.observer?.onMid(snapshot.ts, mid);
    this.runCount = 0;
    const probs = this.learners.step(mid, this.normalised, this.scoreSink, snapshot.ts);
    // What is still pending besides this tick; the rest expired unscored (a horizon passed in a gap).
    this.dropOldestPending(this.pendingCount - (this.learners.pending - 1));
    const seq = snapshot.seq ?? this.ticks;
    this.pushPending(seq);
    const classes = this.classNames.length;
    // The prediction is the output (it leaves for the stream, the ring and the log), so it is
    // new each tick; its arrays are filled by index, without a view or an iterator per model.
    const modelCount = this.modelNames.length;
    const models: ModelPrediction[] = new Array(modelCount);
    for (let i = 0; i < modelCount; i++) {
      const modelProbs: number[] = new Array(classes);
      for (let c = 0; c < classes; c++) modelProbs[c] = probs[i * classes + c];
      models[i] = { model: this.modelNames[i], probs: modelProbs };
    }
    const prediction: Prediction = {
      type: 'prediction',
      symbol: this.symbol,
      ts: snapshot.ts,
      localTs: snapshot.localTs,
      seq,
      mid,
      target: this.targetName,
      classNames: this.classNames,
      models,
      // Always present (undefined when nothing resolved), so every prediction has one shape.
      resolved: this.runCount > 0 ? this.resolutions() : undefined,
    };
    this.ticks++;
    this.ticksThisProcess++;
    this.lastPrediction = prediction;
    this.lastInputSeq = snapshot.seq ?? null;
    this.lastInputTs = snapshot.ts;
    if (clock && latency) latency.record((clock() - started) * 1000);
    return prediction;
  }

  /** The prediction with the oldest pending seq resolved to `label`: extends this tick's last run or starts one. */
  private noteResolved(label: number): void {
    const seq = this.pendingSeqs[this.pendingHead];
    this.dropOldestPending(1);
    const runs = this.runs;
    const last = (this.runCount - 1) * 4;
    if (this.runCount > 0 && runs[last + 3] === label) {
      runs[last + 1] = seq;
      runs[last + 2]++;
      return;
    }
    if ((this.runCount + 1) * 4 > runs.length) {
      this.runs = new Float64Array(runs.length * 2);
      this.runs.set(runs);
    }
    const at = this.runCount++ * 4;
    this.runs[at] = seq;
    this.runs[at + 1] = seq;
    this.runs[at + 2] = 1;
    this.runs[at + 3] = label;
  }

  private resolutions(): Resolution[] {
    const resolved: Resolution[] = new Array(this.runCount);
    for (let r = 0; r < this.runCount; r++) {
      const at = r * 4;
      resolved[r] = { fromSeq: this.runs[at], toSeq: this.runs[at + 1], count: this.runs[at + 2], label: this.classNames[this.runs[at + 3]] };
    }
    return resolved;
  }

  private dropOldestPending(count: number): void {
    if (count <= 0) return;
    this.pendingHead = (this.pendingHead + count) % this.pendingSeqs.length;
    this.pendingCount -= count;
  }

  private pushPending(seq: number): void {
    if (this.pendingCount === this.pendingSeqs.length) {
      const grown = new Float64Array(this.pendingSeqs.length * 2);
      grown.set(this.pendingSeqsInOrder());
      this.pendingSeqs = grown;
      this.pendingHead = 0;
    }
    this.pendingSeqs[(this.pendingHead + this.pendingCount) % this.pendingSeqs.length] = seq;
    this.pendingCount++;
  }

  /** The pending seqs oldest first, as a checkpoint keeps them. */
  private pendingSeqsInOrder(): Float64Array {
    return packRing(this.pendingSeqs, 1, this.pendingSeqs.length, this.pendingHead, this.pendingCount);
  }

  /**
   * Forgets where the input stream stands (its last seq and ts), so the next snapshot is
   * accepted whatever they are: the operator's way out when a bad producer pushed a far-future
   * ts or seq. The features and pending predictions restart as after a disconnect.
   */
  resetOrdering(): void {
    this.lastInputSeq = null;
    this.lastInputTs = null;
    this.onDisconnect();
  }

  /** The mix's current weight on each member model, or null without a `mix` among the models. */
  mixtureWeights(): { model: string; weight: number }[] | null {
    const { mixture, mixtureMembers } = this.learners;
    if (!mixture) return null;
    const weights = mixture.weights(new Float64Array(mixture.members));
    return mixtureMembers.map((learner, i) => ({ model: this.modelNames[learner], weight: weights[i] }));
  }

  /** A trade of this symbol: it only moves the flow features of the next snapshot. */
  onTrade(trade: Trade): void {
    this.features.observeTrade(trade);
  }

  /** An order event (submission, cancellation) of this symbol: flow features only. */
  onOrderEvent(event: OrderEvent): void {
    this.features.observeOrderEvent(event);
  }

  /** A break in the feed: features restart, pending predictions are dropped unscored. */
  onDisconnect(): void {
    this.features.reset();
    this.learners.disconnect();
    this.pendingHead = 0;
    this.pendingCount = 0;
    this.disconnects++;
  }

  getState(): Uint8Array {
    const learnerState = this.learners.getState();
    const header = encodeState({
      kind: 'symbol-engine',
      meta: {
        symbol: this.symbol,
        ticks: this.ticks,
        disconnects: this.disconnects,
        metrics: this.metrics.map((m) => m.getState()),
        // So a restarted service answers "latest prediction" and refuses replayed input at once.
        lastPrediction: this.lastPrediction,
        lastInputSeq: this.lastInputSeq,
        lastInputTs: this.lastInputTs,
      },
      arrays: {
        features: this.features.getState(),
        normaliser: this.normaliser.getState(),
        labeler: learnerState.labeler,
        pendingProbs: learnerState.pendingProbs,
        cursor: learnerState.cursor,
        pendingSeqs: this.pendingSeqsInOrder(),
      },
    });
    return packChunks([header, ...learnerState.learners]);
  }

  /**
   * Replaces the whole state with `bytes`, or throws and leaves this engine exactly as it was:
   * the bytes are first applied to a scratch engine of the same configuration, so a state that
   * fails half-way (learners restored, metrics not) is never half-applied here.
   */
  setState(bytes: Uint8Array): void {
    new SymbolEngine(this.symbol, this.config).loadState(bytes);
    this.loadState(bytes);
  }

  /**
   * Loads `bytes` into an engine nothing else holds yet (a restore builds one per candidate
   * checkpoint): cheaper than `setState`, but a failure leaves it half-loaded, so the caller
   * throws it away.
   */
  loadState(bytes: Uint8Array): void {
    const [headerBytes, ...learnerBytes] = unpackChunks(bytes);
    if (!headerBytes) throw new Error('symbol state: empty');
    const header = decodeState(headerBytes, 'symbol-engine');
    const metricsStates = (header.meta.metrics ?? []) as unknown[];
    if (!Array.isArray(metricsStates) || metricsStates.length !== this.metrics.length) {
      throw new Error(`symbol state: ${Array.isArray(metricsStates) ? metricsStates.length : 0} metrics saved, ${this.metrics.length} models configured`);
    }
    const parsedMetrics = metricsStates.map((state, i) => {
      const parsed = prequentialMetricsStateSchema.safeParse(state);
      if (!parsed.success) throw new Error(`symbol state: metrics[${i}]: ${describeIssues(parsed.error)}`);
      return parsed.data;
    });
    this.features.setState(header.arrays.features ?? new Float64Array(0));
    this.normaliser.setState(header.arrays.normaliser ?? new Float64Array(0));
    this.learners.setState({
      labeler: header.arrays.labeler ?? new Float64Array(0),
      pendingProbs: header.arrays.pendingProbs ?? new Float64Array(0),
      cursor: requireArray(header, 'cursor', 3),
      learners: learnerBytes,
    });
    parsedMetrics.forEach((state, i) => this.metrics[i].setState(state));
    // Checkpoints from before the seqs were kept: the pending ones resolve as NaN..NaN.
    const pendingSeqs = header.arrays.pendingSeqs ?? new Float64Array(this.learners.pending).fill(NaN);
    if (pendingSeqs.length !== this.learners.pending) throw new Error(`symbol state: ${pendingSeqs.length} pending seqs saved for ${this.learners.pending} pending predictions`);
    this.pendingSeqs = new Float64Array(Math.max(16, pendingSeqs.length));
    this.pendingSeqs.set(pendingSeqs);
    this.pendingHead = 0;
    this.pendingCount = pendingSeqs.length;
    this.ticks = Number(header.meta.ticks);
    this.disconnects = Number(header.meta.disconnects);
    const last = savedPredictionSchema.nullable().optional().safeParse(header.meta.lastPrediction);
    if (!last.success) throw new Error(`symbol state: lastPrediction: ${describeIssues(last.error)}`);
    this.lastPrediction = last.data ?? null;
    this.lastInputSeq = typeof header.meta.lastInputSeq === 'number' ? header.meta.lastInputSeq : null;
    // Checkpoints from before lastInputTs was saved resume from the last prediction's time.
    this.lastInputTs = typeof header.meta.lastInputTs === 'number' ? header.meta.lastInputTs : 'lastInputTs' in header.meta ? null : (this.lastPrediction?.ts ?? null);
  }
}
