// Types of series.js for the Node tests (the page itself runs the plain JS).

/** A prediction as the service sends it (REST history or the /v1/stream frame). */
export interface PredictionMessage {
  readonly seq: number;
  readonly mid: number;
  readonly models: ReadonlyArray<{ readonly probs: Readonly<Record<string, number>> }>;
  readonly label?: string | null;
  readonly resolved?: ReadonlyArray<{ readonly fromSeq: number; readonly toSeq: number; readonly label: string }>;
}

export declare class PredictionWindow {
  constructor(capacity: number, models: readonly string[], classNames?: readonly string[]);
  readonly capacity: number;
  readonly models: readonly string[];
  readonly classNames: readonly string[];
  /** Predictions ever pushed; the newest is number total - 1. */
  readonly total: number;
  /** Predictions held now (at most capacity). */
  readonly size: number;
  readonly lastSeq: number;
  readonly lastTime: number;
  /** Resolved predictions in view, by whether the first model called them right. */
  readonly right: number;
  readonly wrong: number;
  push(timeSeconds: number, prediction: PredictionMessage): void;
  resolveRun(fromSeq: number, toSeq: number, label: string): void;
  /** uPlot data, oldest first: [time, mid] and [time, P(up) per model..., right, wrong]. */
  views(): {
    mid: [Float64Array, Float64Array];
    prob: Array<Float64Array | Array<number | null>>;
  };
}
