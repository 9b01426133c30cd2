// Shape and initialisation of the Elman network h_t = tanh(W h_{t-1} + U x_t + b),
// p_t = softmax(s V h_t + c + Q x_t) (Q only with the input skip). The flat parameter layout is documented in kernels/elman.ts.
import { Rng } from './rng.js';

export interface ElmanShape {
  readonly hidden: number;
  readonly inputs: number;
  readonly classes: number;
  /**
   * Output scaling exponent beta: s = N^-beta (the mean-field scaling of the RTRL
   * convergence analysis, beta in [0.5, 1]); 0 gives s = 1, the default.
   */
  readonly outputScaleBeta: number;
  /**
   * Direct input-to-output weights Q (C x d): the readout sees x_t beside h_t, so the network
   * contains the linear model and the recurrent part only has to learn what the inputs alone
   * do not say. Q starts at zero, so the initial network is the plain Elman one.
   */
  readonly inputSkip: boolean;
}

export interface ElmanLayout {
  readonly n: number;
  readonly d: number;
  readonly classes: number;
  /** Number of recurrent parameters (W, U, b): the width of the sensitivity matrix. */
  readonly recurrent: number;
  readonly uOffset: number;
  readonly bOffset: number;
  readonly vOffset: number;
  readonly cOffset: number;
  /** Offset of Q (C x d) after c; equal to `total` when there is no input skip. */
  readonly qOffset: number;
  /** Columns of Q: d with the input skip, else 0. */
  readonly skipInputs: number;
  readonly total: number;
  readonly outputScale: number;
}

export function elmanLayout(shape: ElmanShape): ElmanLayout {
  const { hidden: n, inputs: d, classes } = shape;
  if (!Number.isInteger(n) || n < 1) throw new Error(`hidden: must be a positive integer, got ${n}`);
  if (!Number.isInteger(d) || d < 1) throw new Error(`inputs: must be a positive integer, got ${d}`);
  if (!Number.isInteger(classes) || classes < 2) throw new Error(`classes: must be an integer >= 2, got ${classes}`);
  const beta = shape.outputScaleBeta;
  if (beta !== 0 && !(beta >= 0.5 && beta <= 1)) throw new Error(`outputScaleBeta: must be 0 or in [0.5, 1], got ${beta}`);
  const recurrent = n * n + n * d + n;
  const skipInputs = shape.inputSkip ? d : 0;
  const qOffset = recurrent + classes * n + classes;
  return {
    n,
    d,
    classes,
    recurrent,
    uOffset: n * n,
    bOffset: n * n + n * d,
    vOffset: recurrent,
    cOffset: recurrent + classes * n,
    qOffset,
    skipInputs,
    total: qOffset + classes * skipInputs,
    outputScale: beta === 0 ? 1 : Math.pow(n, -beta),
  };
}

/**
 * Seeded initialisation: W ~ N(0, gain^2 / N) so the recurrent Jacobian starts near the edge
 * of stability (memory without explosion), U ~ N(0, 1 / d), V ~ N(0, 1 / N), biases and Q 0.
 */
export function initElmanParams(layout: ElmanLayout, rng: Rng, recurrentGain = 1): Float64Array {
  const params = new Float64Array(layout.total);
  const { n, d, classes } = layout;
  const wStd = recurrentGain / Math.sqrt(n);
  for (let i = 0; i < n * n; i++) params[i] = wStd * rng.normal();
  const uStd = 1 / Math.sqrt(d);
  for (let i = 0; i < n * d; i++) params[layout.uOffset + i] = uStd * rng.normal();
  const vStd = 1 / Math.sqrt(n);
  for (let i = 0; i < classes * n; i++) params[layout.vOffset + i] = vStd * rng.normal();
  return params;
}

/** Mask of the entries that L2 decay applies to: weights, not biases. */
export function elmanDecayMask(layout: ElmanLayout): Uint8Array {
  const mask = new Uint8Array(layout.total);
  mask.fill(1, 0, layout.bOffset);
  mask.fill(1, layout.vOffset, layout.cOffset);
  mask.fill(1, layout.qOffset, layout.total);
  return mask;
}
