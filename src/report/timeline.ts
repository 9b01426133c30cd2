// What the HTML report draws of one stream, recorded as a replay runs: a StreamObserver the
// replay attaches to each stream's engine (src/cli/replay.ts), bounded whatever the stream's
// length. The engine knows nothing of it.
import type { PrequentialMetrics } from '../engine/metrics.js';
import type { StreamObserver, StreamObserverModule } from '../engine/symbol-engine.js';

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
export class MetricsTimeline implements StreamObserver {
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

  /** Reads the rolling accuracy of the metrics' first window, just updated with this score. */
  onScored(modelIndex: number, ts: number, probs: Float64Array | ArrayLike<number>, probsOffset: number, label: number, metrics: PrequentialMetrics): void {
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

  onMid(ts: number, mid: number): void {
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

/** The StreamObserverModule entry point: replay names this module for its worker threads. */
export function createObserver(_symbol: string, models: readonly string[], classes: number): MetricsTimeline {
  return new MetricsTimeline({ models, classes });
}

// This module is a StreamObserverModule; the line fails to compile if its export drifts.
const isObserverModule: StreamObserverModule = { createObserver };
void isObserverModule;
