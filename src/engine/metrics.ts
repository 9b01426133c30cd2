// Prequential ("test then train") scoring of online classifiers. Each prediction is
// scored once, when its label resolves and before the learner sees that label, so every
// figure here is an out-of-sample figure. Plain objects, no I/O; `record` allocates
// nothing so it can run on every resolved label.
import { z } from 'zod';

/** Probabilities are clipped to this floor before the log, so one confident miss costs ~27.6 nats, not Infinity. */
export const LOG_LOSS_FLOOR = 1e-12;

export const DEFAULT_ROLLING_WINDOWS: readonly number[] = [1000, 10_000];

/** Overall figures; every metric is null while nothing has been scored. */
export interface MetricsSummary {
  readonly n: number;
  readonly accuracy: number | null;
  readonly macroF1: number | null;
  /** Mean negative log-likelihood of the true class, nats. */
  readonly logLoss: number | null;
  readonly brier: number | null;
  /** Counts, `confusion[trueClass][predictedClass]`. */
  readonly confusion: number[][];
}

/**
 * Figures over about the last `window` scored predictions: windows are kept in buckets (see
 * BucketedWindow), so `n` lies within one bucket below `window` once the stream is long
 * enough, and is exactly the number of scores the figures cover.
 */
export interface RollingMetrics {
  readonly window: number;
  readonly n: number;
  readonly accuracy: number | null;
  readonly logLoss: number | null;
  readonly brier: number | null;
}

/** A window's buckets in a checkpoint: complete buckets oldest first, then the open one. */
export interface RollingWindowState {
  readonly window: number;
  readonly bucketSize: number;
  /** Per complete bucket: [hits, logLossSum, brierSum], flattened. */
  readonly complete: number[];
  /** The bucket being filled: [hits, logLossSum, brierSum, count]. */
  readonly open: number[];
}

/** JSON-able checkpoint of a PrequentialMetrics. Version 1 (every recent score) is still read. */
export interface PrequentialMetricsState {
  readonly version: 2;
  readonly classes: number;
  readonly n: number;
  readonly correct: number;
  readonly logLossSum: number;
  readonly brierSum: number;
  /** Row-major `[true][predicted]`, length classes². */
  readonly confusion: number[];
  readonly rolling: RollingWindowState[];
}

const finiteNumber = z.number().refine(Number.isFinite, { message: 'must be a finite number' });
const count = z.number().int().nonnegative();

const overall = {
  classes: z.number().int().min(2),
  n: count,
  correct: count,
  logLossSum: finiteNumber,
  brierSum: finiteNumber,
  confusion: z.array(count),
};

/** For a checkpoint read back from storage (an edge): validate before `setState`. */
export const prequentialMetricsStateSchema = z.discriminatedUnion('version', [
  z.object({
    version: z.literal(2),
    ...overall,
    rolling: z.array(
      z.object({
        window: z.number().int().positive(),
        bucketSize: z.number().int().positive(),
        complete: z.array(finiteNumber).max(3 * 1024),
        open: z.array(finiteNumber).length(4),
      }),
    ),
  }),
  // Checkpoints written before windows were bucketed kept every recent score.
  z.object({
    version: z.literal(1),
    ...overall,
    windows: z.array(z.number().int().positive()),
    recentCorrect: z.array(z.number().int().min(0).max(1)),
    recentLogLoss: z.array(finiteNumber),
    recentBrier: z.array(finiteNumber),
  }),
]);

export type StoredMetricsState = z.infer<typeof prequentialMetricsStateSchema>;

/** Buckets per window: a 10,000-tick window costs 64 buckets, not 10,000 scores. */
const BUCKETS_PER_WINDOW = 64;
/** Buckets allocated before the first growth: a young or quiet symbol fills few. */
const INITIAL_BUCKETS = 4;

/**
 * A sliding window over the last `window` scores kept as sums over buckets of `bucketSize`
 * scores (1 for windows of at most 64, so small windows are exact). It covers the open bucket
 * and as many of the newest complete buckets as fit in `window`: between window − bucket + 1
 * and window scores once that many were seen. Memory and checkpoint size are O(64) whatever the
 * window, and the buckets are allocated as they fill (doubling), so a symbol that scored little
 * holds little; sums are recomputed from the buckets when read, so they never drift.
 */
export class BucketedWindow {
  readonly bucketSize: number;
  /** Complete buckets kept: the most that can fit beside an empty open bucket. */
  private readonly slots: number;
  /**
   * Per complete bucket [hits, logLossSum, brierSum], in a ring of `slots` buckets. Until the
   * ring is full it is only as long as the buckets filled so far (rounded up to a power of two),
   * and as `head === filled` then, growing never has to unwrap it.
   */
  private buckets: Float64Array;
  private head = 0;
  private filled = 0;
  private openHits = 0;
  private openLogLoss = 0;
  private openBrier = 0;
  private openCount = 0;

  constructor(readonly window: number) {
    this.bucketSize = Math.ceil(window / BUCKETS_PER_WINDOW);
    this.slots = Math.floor(window / this.bucketSize);
    this.buckets = new Float64Array(3 * Math.min(this.slots, INITIAL_BUCKETS));
  }

  record(hit: number, logLoss: number, brier: number): void {
    this.openHits += hit;
    this.openLogLoss += logLoss;
    this.openBrier += brier;
    if (++this.openCount < this.bucketSize) return;
    if (3 * this.head === this.buckets.length) this.allocate(Math.min(this.slots, 2 * this.head));
    const at = 3 * this.head;
    this.buckets[at] = this.openHits;
    this.buckets[at + 1] = this.openLogLoss;
    this.buckets[at + 2] = this.openBrier;
    this.head = this.head + 1 === this.slots ? 0 : this.head + 1;
    if (this.filled < this.slots) this.filled++;
    this.openHits = this.openLogLoss = this.openBrier = this.openCount = 0;
  }

  /** Room for `buckets` complete buckets, keeping the ones filled (laid out from 0 while not full). */
  private allocate(buckets: number): void {
    const grown = new Float64Array(3 * buckets);
    grown.set(this.buckets.subarray(0, Math.min(this.buckets.length, grown.length)));
    this.buckets = grown;
  }

  /** Complete buckets the window covers now. */
  private covered(): number {
    return Math.min(this.filled, Math.floor((this.window - this.openCount) / this.bucketSize));
  }

  get n(): number {
    return this.openCount + this.covered() * this.bucketSize;
  }

  /** Sum of hits (0), log-losses (1) or Brier scores (2) over the window. Allocation-free. */
  sum(which: 0 | 1 | 2): number {
    let total = which === 0 ? this.openHits : which === 1 ? this.openLogLoss : this.openBrier;
    const covered = this.covered();
    for (let k = 1; k <= covered; k++) total += this.buckets[3 * ((this.head - k + this.slots) % this.slots) + which];
    return total;
  }

  getState(): RollingWindowState {
    const complete: number[] = [];
    for (let k = this.filled; k > 0; k--) {
      const at = 3 * ((this.head - k + this.slots) % this.slots);
      complete.push(this.buckets[at], this.buckets[at + 1], this.buckets[at + 2]);
    }
    return { window: this.window, bucketSize: this.bucketSize, complete, open: [this.openHits, this.openLogLoss, this.openBrier, this.openCount] };
  }

  /** Restores `getState()` of a window of the same length and bucket size. */
  setState(state: RollingWindowState): void {
    if (state.window !== this.window || state.bucketSize !== this.bucketSize) {
      throw new RangeError(`rolling window ${this.window}: state is for window ${state.window} in buckets of ${state.bucketSize}`);
    }
    const buckets = state.complete.length / 3;
    if (!Number.isInteger(buckets) || buckets > this.slots)
      throw new RangeError(`rolling window ${this.window}: ${state.complete.length} bucket values, expected a multiple of 3 up to ${3 * this.slots}`);
    const openCount = state.open[3];
    if (!(Number.isInteger(openCount) && openCount >= 0 && openCount < this.bucketSize)) throw new RangeError(`rolling window ${this.window}: open bucket count ${openCount}`);
    this.clear();
    let room = Math.min(this.slots, INITIAL_BUCKETS);
    while (room <= buckets && room < this.slots) room = Math.min(this.slots, 2 * room);
    this.buckets = new Float64Array(3 * room);
    this.buckets.set(state.complete);
    this.filled = buckets;
    this.head = buckets % this.slots;
    [this.openHits, this.openLogLoss, this.openBrier] = state.open;
    this.openCount = openCount;
  }

  clear(): void {
    this.head = this.filled = 0;
    this.openHits = this.openLogLoss = this.openBrier = this.openCount = 0;
  }
}

export class PrequentialMetrics {
  readonly classes: number;
  readonly windows: readonly number[];

  private n = 0;
  private correct = 0;
  private logLossSum = 0;
  private brierSum = 0;
  private readonly confusion: Float64Array;
  private readonly rollingWindows: BucketedWindow[];

  constructor(classes: number, rollingWindows: readonly number[] = DEFAULT_ROLLING_WINDOWS) {
    if (!Number.isInteger(classes) || classes < 2) {
      throw new RangeError(`classes must be an integer >= 2, got ${classes}`);
    }
    for (const window of rollingWindows) {
      if (!Number.isInteger(window) || window < 1) {
        throw new RangeError(`rollingWindows: each window must be a positive integer, got ${window}`);
      }
    }
    this.classes = classes;
    this.windows = [...rollingWindows];
    this.confusion = new Float64Array(classes * classes);
    this.rollingWindows = this.windows.map((window) => new BucketedWindow(window));
  }

  /**
   * Scores one prediction: `probs[probsOffset .. probsOffset + classes)` against `label`.
   * The offset lets a caller keep every model's output in one shared buffer.
   */
  record(probs: Float64Array | ArrayLike<number>, probsOffset: number, label: number): void {
    const classes = this.classes;
    if (!(label >= 0 && label < classes) || !Number.isInteger(label)) {
      throw new RangeError(`label must be an integer in [0, ${classes}), got ${label}`);
    }
    let predicted = 0;
    let best = probs[probsOffset];
    let brier = 0;
    for (let c = 0; c < classes; c++) {
      const p = probs[probsOffset + c];
      // Strict '>' keeps the lower class index on ties.
      if (p > best) {
        best = p;
        predicted = c;
      }
      const diff = c === label ? p - 1 : p;
      brier += diff * diff;
    }
    const pTrue = probs[probsOffset + label];
    const logLoss = -Math.log(pTrue < LOG_LOSS_FLOOR ? LOG_LOSS_FLOOR : pTrue > 1 ? 1 : pTrue);
    const hit = predicted === label ? 1 : 0;

    this.n++;
    this.correct += hit;
    this.logLossSum += logLoss;
    this.brierSum += brier;
    this.confusion[label * classes + predicted]++;
    for (let i = 0; i < this.rollingWindows.length; i++) this.rollingWindows[i].record(hit, logLoss, brier);
  }

  /** Scored predictions so far. */
  get count(): number {
    return this.n;
  }

  /** Cumulative mean log-loss; NaN before the first score. Allocation-free, for timelines. */
  meanLogLoss(): number {
    return this.n ? this.logLossSum / this.n : Number.NaN;
  }

  /** Cumulative accuracy; NaN before the first score. */
  meanAccuracy(): number {
    return this.n ? this.correct / this.n : Number.NaN;
  }

  /** Accuracy over `windows[windowIndex]`; NaN before the first score. Allocation-free. */
  rollingAccuracy(windowIndex: number): number {
    const window = this.rollingWindows[windowIndex];
    const n = window.n;
    return n ? window.sum(0) / n : Number.NaN;
  }

  summary(): MetricsSummary {
    const classes = this.classes;
    const confusion: number[][] = [];
    for (let t = 0; t < classes; t++) {
      confusion.push(Array.from(this.confusion.subarray(t * classes, (t + 1) * classes)));
    }
    const n = this.n;
    return {
      n,
      accuracy: n ? this.correct / n : null,
      macroF1: n ? macroF1(confusion) : null,
      logLoss: n ? this.logLossSum / n : null,
      brier: n ? this.brierSum / n : null,
      confusion,
    };
  }

  rolling(): RollingMetrics[] {
    return this.rollingWindows.map((window) => {
      const n = window.n;
      return {
        window: window.window,
        n,
        accuracy: n ? window.sum(0) / n : null,
        logLoss: n ? window.sum(1) / n : null,
        brier: n ? window.sum(2) / n : null,
      };
    });
  }

  getState(): PrequentialMetricsState {
    return {
      version: 2,
      classes: this.classes,
      n: this.n,
      correct: this.correct,
      logLossSum: this.logLossSum,
      brierSum: this.brierSum,
      confusion: Array.from(this.confusion),
      rolling: this.rollingWindows.map((window) => window.getState()),
    };
  }

  /**
   * Restores a checkpoint taken by `getState` (validate untrusted input with the schema
   * first). A configured window the checkpoint has no buckets for starts empty; a version-1
   * checkpoint's recent scores are replayed into the buckets.
   */
  setState(state: PrequentialMetricsState | StoredMetricsState): void {
    if (state.classes !== this.classes) {
      throw new RangeError(`state.classes: expected ${this.classes}, got ${state.classes}`);
    }
    if (state.confusion.length !== this.classes * this.classes) {
      throw new RangeError(`state.confusion: expected ${this.classes * this.classes} counts, got ${state.confusion.length}`);
    }
    if (state.version === 1) {
      const recent = state.recentCorrect.length;
      if (state.recentLogLoss.length !== recent || state.recentBrier.length !== recent || recent > state.n) {
        throw new RangeError(`state.recent*: lengths ${recent}/${state.recentLogLoss.length}/${state.recentBrier.length} must agree and not exceed n=${state.n}`);
      }
    }
    const saved = state.version === 2 ? state.rolling : [];
    // Check every saved window before changing anything.
    const matches = this.rollingWindows.map((window) => saved.find((s) => s.window === window.window && s.bucketSize === window.bucketSize) ?? null);
    const probe = this.rollingWindows.map((window) => new BucketedWindow(window.window));
    matches.forEach((match, i) => match && probe[i].setState(match));

    this.n = state.n;
    this.correct = state.correct;
    this.logLossSum = state.logLossSum;
    this.brierSum = state.brierSum;
    this.confusion.set(state.confusion);
    this.rollingWindows.forEach((window, i) => {
      const match = matches[i];
      if (match) window.setState(match);
      else window.clear();
    });
    if (state.version === 1) {
      for (let k = 0; k < state.recentCorrect.length; k++) {
        for (const window of this.rollingWindows) window.record(state.recentCorrect[k], state.recentLogLoss[k], state.recentBrier[k]);
      }
    }
  }
}

/**
 * Mean over classes of F1 = 2·TP / (2·TP + FP + FN), from `confusion[true][predicted]`.
 * A class that never occurred and was never predicted has no F1 (0/0) and is left out of
 * the mean rather than counted as 0 or 1: early in a stream the "flat" class may simply
 * not have appeared yet. Returns null when no class qualifies.
 */
export function macroF1(confusion: readonly (readonly number[])[]): number | null {
  const classes = confusion.length;
  let sum = 0;
  let counted = 0;
  for (let c = 0; c < classes; c++) {
    const truePositive = confusion[c][c];
    let actual = 0;
    let predicted = 0;
    for (let k = 0; k < classes; k++) {
      actual += confusion[c][k];
      predicted += confusion[k][c];
    }
    if (actual === 0 && predicted === 0) continue;
    sum += (2 * truePositive) / (actual + predicted);
    counted++;
  }
  return counted ? sum / counted : null;
}

// The schema and the interface describe the same object; this line fails to compile if they drift apart.
type CurrentStoredState = Extract<StoredMetricsState, { version: 2 }>;
const stateSchemaMatches: CurrentStoredState extends PrequentialMetricsState ? (PrequentialMetricsState extends CurrentStoredState ? true : false) : false = true;
void stateSchemaMatches;
