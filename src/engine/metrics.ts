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

/** Figures over the last `window` scored predictions (fewer while the stream is young). */
export interface RollingMetrics {
  readonly window: number;
  readonly n: number;
  readonly accuracy: number | null;
  readonly logLoss: number | null;
  readonly brier: number | null;
}

/** JSON-able checkpoint of a PrequentialMetrics; `recent*` hold the last scores, oldest first. */
export interface PrequentialMetricsState {
  readonly version: 1;
  readonly classes: number;
  readonly windows: number[];
  readonly n: number;
  readonly correct: number;
  readonly logLossSum: number;
  readonly brierSum: number;
  /** Row-major `[true][predicted]`, length classes². */
  readonly confusion: number[];
  readonly recentCorrect: number[];
  readonly recentLogLoss: number[];
  readonly recentBrier: number[];
}

const finiteNumber = z.number().refine(Number.isFinite, { message: 'must be a finite number' });
const count = z.number().int().nonnegative();

/** For a checkpoint read back from storage (an edge): validate before `setState`. */
export const prequentialMetricsStateSchema = z.object({
  version: z.literal(1),
  classes: z.number().int().min(2),
  windows: z.array(z.number().int().positive()),
  n: count,
  correct: count,
  logLossSum: finiteNumber,
  brierSum: finiteNumber,
  confusion: z.array(count),
  recentCorrect: z.array(z.number().int().min(0).max(1)),
  recentLogLoss: z.array(finiteNumber),
  recentBrier: z.array(finiteNumber),
});

export class PrequentialMetrics {
  readonly classes: number;
  readonly windows: readonly number[];

  private n = 0;
  private correct = 0;
  private logLossSum = 0;
  private brierSum = 0;
  private readonly confusion: Float64Array;

  // One ring of the last max(windows) scores serves every window; each window keeps
  // running sums and subtracts the score that falls out of it.
  private readonly capacity: number;
  private readonly ringCorrect: Uint8Array;
  private readonly ringLogLoss: Float64Array;
  private readonly ringBrier: Float64Array;
  private head = 0;
  private filled = 0;
  private readonly windowCorrect: Float64Array;
  private readonly windowLogLoss: Float64Array;
  private readonly windowBrier: Float64Array;

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
    this.capacity = rollingWindows.length ? Math.max(...rollingWindows) : 0;
    this.ringCorrect = new Uint8Array(this.capacity);
    this.ringLogLoss = new Float64Array(this.capacity);
    this.ringBrier = new Float64Array(this.capacity);
    this.windowCorrect = new Float64Array(rollingWindows.length);
    this.windowLogLoss = new Float64Array(rollingWindows.length);
    this.windowBrier = new Float64Array(rollingWindows.length);
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
    if (this.capacity > 0) this.pushRecent(hit, logLoss, brier);
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
    const n = Math.min(this.filled, this.windows[windowIndex]);
    return n ? this.windowCorrect[windowIndex] / n : Number.NaN;
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
    return this.windows.map((window, i) => {
      const n = Math.min(this.filled, window);
      return {
        window,
        n,
        accuracy: n ? this.windowCorrect[i] / n : null,
        logLoss: n ? this.windowLogLoss[i] / n : null,
        brier: n ? this.windowBrier[i] / n : null,
      };
    });
  }

  getState(): PrequentialMetricsState {
    const recentCorrect: number[] = [];
    const recentLogLoss: number[] = [];
    const recentBrier: number[] = [];
    for (let k = this.filled; k > 0; k--) {
      const at = (this.head - k + this.capacity) % this.capacity;
      recentCorrect.push(this.ringCorrect[at]);
      recentLogLoss.push(this.ringLogLoss[at]);
      recentBrier.push(this.ringBrier[at]);
    }
    return {
      version: 1,
      classes: this.classes,
      windows: [...this.windows],
      n: this.n,
      correct: this.correct,
      logLossSum: this.logLossSum,
      brierSum: this.brierSum,
      confusion: Array.from(this.confusion),
      recentCorrect,
      recentLogLoss,
      recentBrier,
    };
  }

  /**
   * Restores a checkpoint taken by `getState` (validate untrusted input with a schema first).
   * The windows may differ from the saved ones: the recent scores are replayed into this
   * object's rings, so a longer window simply starts with what was kept.
   */
  setState(state: PrequentialMetricsState): void {
    if (state.classes !== this.classes) {
      throw new RangeError(`state.classes: expected ${this.classes}, got ${state.classes}`);
    }
    if (state.confusion.length !== this.classes * this.classes) {
      throw new RangeError(`state.confusion: expected ${this.classes * this.classes} counts, got ${state.confusion.length}`);
    }
    const recent = state.recentCorrect.length;
    if (state.recentLogLoss.length !== recent || state.recentBrier.length !== recent || recent > state.n) {
      throw new RangeError(
        `state.recent*: lengths ${recent}/${state.recentLogLoss.length}/${state.recentBrier.length} must agree and not exceed n=${state.n}`,
      );
    }
    this.n = state.n;
    this.correct = state.correct;
    this.logLossSum = state.logLossSum;
    this.brierSum = state.brierSum;
    this.confusion.set(state.confusion);
    this.head = 0;
    this.filled = 0;
    this.windowCorrect.fill(0);
    this.windowLogLoss.fill(0);
    this.windowBrier.fill(0);
    if (this.capacity === 0) return;
    for (let k = Math.max(0, recent - this.capacity); k < recent; k++) {
      this.pushRecent(state.recentCorrect[k], state.recentLogLoss[k], state.recentBrier[k]);
    }
  }

  private pushRecent(hit: number, logLoss: number, brier: number): void {
    const capacity = this.capacity;
    const windows = this.windows;
    for (let i = 0; i < windows.length; i++) {
      const window = windows[i];
      if (this.filled >= window) {
        const leaving = (this.head - window + capacity) % capacity;
        this.windowCorrect[i] -= this.ringCorrect[leaving];
        this.windowLogLoss[i] -= this.ringLogLoss[leaving];
        this.windowBrier[i] -= this.ringBrier[leaving];
      }
      this.windowCorrect[i] += hit;
      this.windowLogLoss[i] += logLoss;
      this.windowBrier[i] += brier;
    }
    this.ringCorrect[this.head] = hit;
    this.ringLogLoss[this.head] = logLoss;
    this.ringBrier[this.head] = brier;
    this.head = this.head + 1 === capacity ? 0 : this.head + 1;
    if (this.filled < capacity) this.filled++;
    // Adding and subtracting floats for millions of ticks drifts; once per lap of the
    // ring the float sums are recomputed exactly (amortised O(1) per record).
    if (this.head === 0) this.resumWindows();
  }

  private resumWindows(): void {
    const capacity = this.capacity;
    for (let i = 0; i < this.windows.length; i++) {
      const n = Math.min(this.filled, this.windows[i]);
      let logLoss = 0;
      let brier = 0;
      for (let k = 1; k <= n; k++) {
        const at = (this.head - k + capacity) % capacity;
        logLoss += this.ringLogLoss[at];
        brier += this.ringBrier[at];
      }
      this.windowLogLoss[i] = logLoss;
      this.windowBrier[i] = brier;
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

// ---------------------------------------------------------------------------------------
// Timeline for the report: bounded whatever the stream length.

export const DEFAULT_TIMELINE_POINTS = 2000;

/**
 * Keeps every `stride`-th offered point; when full it drops every other kept point and
 * doubles the stride, so the points stay evenly spaced in offer order and memory stays
 * fixed. The latest offered point is always appended on read, so a chart ends where the
 * stream ended.
 */
export class DownsampledSeries {
  private readonly capacity: number;
  private readonly columns: number;
  private readonly data: Float64Array;
  private count = 0;
  private stride = 1;
  private offered = 0;
  private readonly last: Float64Array;

  /** `maxPoints` bounds what `toColumns` returns, the latest point included. */
  constructor(yColumns: number, maxPoints = DEFAULT_TIMELINE_POINTS) {
    if (!Number.isInteger(maxPoints) || maxPoints < 3) {
      throw new RangeError(`maxPoints must be an integer >= 3, got ${maxPoints}`);
    }
    this.columns = 1 + yColumns;
    this.capacity = maxPoints - 1;
    this.data = new Float64Array(this.capacity * this.columns);
    this.last = new Float64Array(this.columns);
  }

  get offeredCount(): number {
    return this.offered;
  }

  offer(x: number, y0: number, y1 = 0): void {
    const columns = this.columns;
    this.last[0] = x;
    this.last[1] = y0;
    if (columns > 2) this.last[2] = y1;
    const index = this.offered++;
    if (index % this.stride !== 0) return;
    if (this.count === this.capacity) {
      this.thin();
      if (index % this.stride !== 0) return;
    }
    const at = this.count * columns;
    this.data[at] = x;
    this.data[at + 1] = y0;
    if (columns > 2) this.data[at + 2] = y1;
    this.count++;
  }

  /** `[xs, ys0, ys1...]` as plain arrays. */
  toColumns(): number[][] {
    const columns = this.columns;
    const out: number[][] = [];
    for (let col = 0; col < columns; col++) {
      const values: number[] = [];
      for (let i = 0; i < this.count; i++) values.push(this.data[i * columns + col]);
      out.push(values);
    }
    const lastStored = (this.count - 1) * this.stride;
    if (this.offered > 0 && this.offered - 1 !== lastStored) {
      for (let col = 0; col < columns; col++) out[col].push(this.last[col]);
    }
    return out;
  }

  private thin(): void {
    const columns = this.columns;
    let kept = 0;
    for (let i = 0; i < this.count; i += 2, kept++) {
      this.data.copyWithin(kept * columns, i * columns, (i + 1) * columns);
    }
    this.count = kept;
    this.stride *= 2;
  }
}

export interface CalibrationBin {
  readonly lower: number;
  readonly upper: number;
  readonly count: number;
  /** Mean predicted probability of the "up" class in this bin; null when empty. */
  readonly meanPredicted: number | null;
  /** Fraction of this bin's predictions whose label was "up"; null when empty. */
  readonly observedFrequency: number | null;
}

export interface ModelTimelineData {
  readonly name: string;
  /** Time each score became known (the label's resolution), epoch ms. */
  readonly ts: number[];
  readonly rollingAccuracy: number[];
  readonly cumulativeLogLoss: number[];
  readonly calibration: CalibrationBin[];
}

export interface TimelineData {
  readonly classes: number;
  /** Index of the class whose probability the calibration bins ("up", the last class). */
  readonly upClass: number;
  /** Window behind `rollingAccuracy`; null means it is the cumulative accuracy. */
  readonly rollingWindow: number | null;
  readonly models: ModelTimelineData[];
  readonly mid: { readonly ts: number[]; readonly price: number[] };
}

export interface MetricsTimelineOptions {
  readonly models: readonly string[];
  readonly classes: number;
  /** Per series; default 2000. */
  readonly maxPoints?: number;
  /** Default 10 equal-width bins over [0, 1]. */
  readonly calibrationBins?: number;
}

/**
 * What the HTML report draws, recorded as the replay runs: per model the rolling accuracy
 * and cumulative log-loss (downsampled), a reliability histogram of P(up), and the
 * downsampled mid-price path. Memory is fixed at construction.
 */
export class MetricsTimeline {
  private readonly models: readonly string[];
  private readonly classes: number;
  private readonly upClass: number;
  private readonly bins: number;
  private readonly series: DownsampledSeries[];
  private readonly midSeries: DownsampledSeries;
  // [model * bins + bin]
  private readonly binCount: Float64Array;
  private readonly binPredicted: Float64Array;
  private readonly binUp: Float64Array;
  private rollingWindow: number | null | undefined;

  constructor(options: MetricsTimelineOptions) {
    const bins = options.calibrationBins ?? 10;
    if (!Number.isInteger(bins) || bins < 1) throw new RangeError(`calibrationBins must be a positive integer, got ${bins}`);
    this.models = [...options.models];
    this.classes = options.classes;
    this.upClass = options.classes - 1;
    this.bins = bins;
    const maxPoints = options.maxPoints ?? DEFAULT_TIMELINE_POINTS;
    this.series = this.models.map(() => new DownsampledSeries(2, maxPoints));
    this.midSeries = new DownsampledSeries(1, maxPoints);
    this.binCount = new Float64Array(this.models.length * bins);
    this.binPredicted = new Float64Array(this.models.length * bins);
    this.binUp = new Float64Array(this.models.length * bins);
  }

  /**
   * Call right after `metrics.record(probs, probsOffset, label)` for the same model, with
   * the time the label resolved. Reads the rolling accuracy of the metrics' first window.
   */
  recordScored(
    modelIndex: number,
    ts: number,
    probs: Float64Array | ArrayLike<number>,
    probsOffset: number,
    label: number,
    metrics: PrequentialMetrics,
  ): void {
    const hasWindow = metrics.windows.length > 0;
    if (this.rollingWindow === undefined) this.rollingWindow = hasWindow ? metrics.windows[0] : null;
    const accuracy = hasWindow ? metrics.rollingAccuracy(0) : metrics.meanAccuracy();
    this.series[modelIndex].offer(ts, accuracy, metrics.meanLogLoss());

    const pUp = probs[probsOffset + this.upClass];
    if (!(pUp >= 0 && pUp <= 1)) return;
    const bin = Math.min(this.bins - 1, Math.floor(pUp * this.bins));
    const at = modelIndex * this.bins + bin;
    this.binCount[at]++;
    this.binPredicted[at] += pUp;
    if (label === this.upClass) this.binUp[at]++;
  }

  recordMid(ts: number, mid: number): void {
    this.midSeries.offer(ts, mid);
  }

  toData(): TimelineData {
    const bins = this.bins;
    const models = this.models.map((name, m): ModelTimelineData => {
      const [ts, rollingAccuracy, cumulativeLogLoss] = this.series[m].toColumns();
      const calibration: CalibrationBin[] = [];
      for (let b = 0; b < bins; b++) {
        const at = m * bins + b;
        const count = this.binCount[at];
        calibration.push({
          lower: b / bins,
          upper: (b + 1) / bins,
          count,
          meanPredicted: count ? this.binPredicted[at] / count : null,
          observedFrequency: count ? this.binUp[at] / count : null,
        });
      }
      return { name, ts, rollingAccuracy, cumulativeLogLoss, calibration };
    });
    const [midTs, midPrice] = this.midSeries.toColumns();
    return {
      classes: this.classes,
      upClass: this.upClass,
      rollingWindow: this.rollingWindow ?? null,
      models,
      mid: { ts: midTs, price: midPrice },
    };
  }
}

// The schema and the interface describe the same object; this line fails to compile if they drift apart.
const stateSchemaMatches: z.infer<typeof prequentialMetricsStateSchema> extends PrequentialMetricsState
  ? PrequentialMetricsState extends z.infer<typeof prequentialMetricsStateSchema>
    ? true
    : false
  : false = true;
void stateSchemaMatches;
