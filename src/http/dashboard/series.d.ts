// Types of series.js for the Node tests (the page itself runs the plain JS).

export declare class PredictionWindow {
  constructor(capacity: number, models: readonly string[]);
  readonly capacity: number;
  readonly models: readonly string[];
  /** Predictions ever pushed; the newest is number total - 1. */
  readonly total: number;
  /** Predictions held now (at most capacity). */
  readonly size: number;
  readonly lastSeq: number;
  readonly lastTime: number;
  push(timeSeconds: number, seq: number, mid: number, probsUp: readonly number[]): void;
  resolve(index: number, right: boolean): void;
  probUpOf(index: number, model: number): number;
  /** uPlot data, oldest first: [time, mid] and [time, P(up) per model..., right, wrong]. */
  views(): {
    mid: [Float64Array, Float64Array];
    prob: Array<Float64Array | Array<number | null>>;
  };
}

export declare class NextMoveResolver {
  right: number;
  wrong: number;
  reset(): void;
  dropPending(): void;
  onPrediction(ring: PredictionWindow, index: number, mid: number): void;
}
