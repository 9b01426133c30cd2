// An independent reverse-mode implementation of the Elman network's loss gradient over a
// whole sequence with frozen parameters, written from the equations, sharing no code with
// src/model: the yardstick the RTRL and TBPTT gradients are checked against. (`runBatched`
// at the end only drives a learner the way next-move resolves labels.)

import type { OnlineLearner } from '../../src/model/learner.js';

export interface Sequence {
  readonly inputs: number[][]; // T x d
  readonly labels: number[]; // T
}

export interface Shape {
  readonly n: number;
  readonly d: number;
  readonly classes: number;
  readonly scale: number;
  /** Direct input-to-output weights Q (C x d) after c. */
  readonly skip?: boolean;
}

interface Unpacked {
  W: number[][];
  U: number[][];
  b: number[];
  V: number[][];
  c: number[];
  Q: number[][];
}

function unpack(theta: ArrayLike<number>, { n, d, classes, skip }: Shape): Unpacked {
  let o = 0;
  const take = (rows: number, cols: number) =>
    Array.from({ length: rows }, () => Array.from({ length: cols }, () => theta[o++]));
  const W = take(n, n);
  const U = take(n, d);
  const b = take(1, n)[0];
  const V = take(classes, n);
  const c = take(1, classes)[0];
  const Q = skip ? take(classes, d) : Array.from({ length: classes }, () => new Array(d).fill(0));
  return { W, U, b, V, c, Q };
}

function forward(theta: ArrayLike<number>, shape: Shape, seq: Sequence) {
  const { n, classes, scale } = shape;
  const { W, U, b, V, c, Q } = unpack(theta, shape);
  const hs: number[][] = [];
  const ps: number[][] = [];
  let h = new Array(n).fill(0);
  let loss = 0;
  for (let t = 0; t < seq.inputs.length; t++) {
    const x = seq.inputs[t];
    const next = W.map((row, i) => Math.tanh(row.reduce((s, w, j) => s + w * h[j], 0) + U[i].reduce((s, u, j) => s + u * x[j], 0) + b[i]));
    const z = V.map((row, k) => scale * row.reduce((s, v, j) => s + v * next[j], 0) + c[k] + Q[k].reduce((s, q, j) => s + q * x[j], 0));
    const m = Math.max(...z);
    const e = z.map((v) => Math.exp(v - m));
    const sum = e.reduce((s, v) => s + v, 0);
    const p = e.map((v) => v / sum);
    loss -= Math.log(p[seq.labels[t]]);
    hs.push(next);
    ps.push(p);
    h = next;
  }
  void classes;
  return { hs, ps, loss };
}

export function referenceLoss(theta: ArrayLike<number>, shape: Shape, seq: Sequence): number {
  return forward(theta, shape, seq).loss;
}

/** Gradient of sum_t CE(p_t, y_t) by backpropagation through the whole sequence. */
export function referenceGradient(theta: ArrayLike<number>, shape: Shape, seq: Sequence): Float64Array {
  const { n, d, classes, scale } = shape;
  const { W, V } = unpack(theta, shape);
  const { hs, ps } = forward(theta, shape, seq);
  const gW = Array.from({ length: n }, () => new Array(n).fill(0));
  const gU = Array.from({ length: n }, () => new Array(d).fill(0));
  const gb = new Array(n).fill(0);
  const gV = Array.from({ length: classes }, () => new Array(n).fill(0));
  const gc = new Array(classes).fill(0);
  const gQ = Array.from({ length: classes }, () => new Array(d).fill(0));
  let carry = new Array(n).fill(0); // dL/dh_t flowing back from t+1
  for (let t = seq.inputs.length - 1; t >= 0; t--) {
    const h = hs[t];
    const hPrev = t > 0 ? hs[t - 1] : new Array(n).fill(0);
    const dz = ps[t].map((p, k) => p - (k === seq.labels[t] ? 1 : 0));
    for (let k = 0; k < classes; k++) {
      gc[k] += dz[k];
      for (let j = 0; j < n; j++) gV[k][j] += scale * dz[k] * h[j];
      for (let j = 0; j < d; j++) gQ[k][j] += dz[k] * seq.inputs[t][j];
    }
    const dh = carry.map((v, j) => v + scale * dz.reduce((s, e, k) => s + e * V[k][j], 0));
    const da = dh.map((v, i) => v * (1 - h[i] * h[i]));
    for (let i = 0; i < n; i++) {
      gb[i] += da[i];
      for (let j = 0; j < n; j++) gW[i][j] += da[i] * hPrev[j];
      for (let j = 0; j < d; j++) gU[i][j] += da[i] * seq.inputs[t][j];
    }
    carry = Array.from({ length: n }, (_, j) => da.reduce((s, v, i) => s + v * W[i][j], 0));
  }
  return Float64Array.from([...gW.flat(), ...gU.flat(), ...gb, ...gV.flat(), ...gc, ...(shape.skip ? gQ.flat() : [])]);
}

/**
 * Gradient of sum_t CE(p_t, y_t) when each tick's loss flows back through at most `truncation`
 * steps (t down to t − truncation + 1): the TBPTT(τ) gradient, written per tick from the
 * equations.
 */
export function referenceTruncatedGradient(theta: ArrayLike<number>, shape: Shape, seq: Sequence, truncation: number): Float64Array {
  const { n, d, classes, scale } = shape;
  const { W, V } = unpack(theta, shape);
  const { hs, ps } = forward(theta, shape, seq);
  const gW = Array.from({ length: n }, () => new Array(n).fill(0));
  const gU = Array.from({ length: n }, () => new Array(d).fill(0));
  const gb = new Array(n).fill(0);
  const gV = Array.from({ length: classes }, () => new Array(n).fill(0));
  const gc = new Array(classes).fill(0);
  const gQ = Array.from({ length: classes }, () => new Array(d).fill(0));
  for (let t = 0; t < seq.inputs.length; t++) {
    const dz = ps[t].map((p, k) => p - (k === seq.labels[t] ? 1 : 0));
    for (let k = 0; k < classes; k++) {
      gc[k] += dz[k];
      for (let j = 0; j < n; j++) gV[k][j] += scale * dz[k] * hs[t][j];
      for (let j = 0; j < d; j++) gQ[k][j] += dz[k] * seq.inputs[t][j];
    }
    let dh = Array.from({ length: n }, (_, j) => scale * dz.reduce((s, e, k) => s + e * V[k][j], 0));
    for (let s = t; s >= Math.max(0, t - truncation + 1); s--) {
      const hPrev = s > 0 ? hs[s - 1] : new Array(n).fill(0);
      const da = dh.map((v, i) => v * (1 - hs[s][i] * hs[s][i]));
      for (let i = 0; i < n; i++) {
        gb[i] += da[i];
        for (let j = 0; j < n; j++) gW[i][j] += da[i] * hPrev[j];
        for (let j = 0; j < d; j++) gU[i][j] += da[i] * seq.inputs[s][j];
      }
      dh = Array.from({ length: n }, (_, j) => da.reduce((acc, v, i) => acc + v * W[i][j], 0));
    }
  }
  return Float64Array.from([...gW.flat(), ...gU.flat(), ...gb, ...gV.flat(), ...gc, ...(shape.skip ? gQ.flat() : [])]);
}

/** Central finite differences of the sequence loss. */
export function finiteDifferenceGradient(theta: Float64Array, shape: Shape, seq: Sequence, eps = 1e-6): Float64Array {
  const grad = new Float64Array(theta.length);
  const probe = Float64Array.from(theta);
  for (let i = 0; i < theta.length; i++) {
    probe[i] = theta[i] + eps;
    const up = referenceLoss(probe, shape, seq);
    probe[i] = theta[i] - eps;
    const down = referenceLoss(probe, shape, seq);
    probe[i] = theta[i];
    grad[i] = (up - down) / (2 * eps);
  }
  return grad;
}

/** ||a - b|| / max(||a||, ||b||). */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    diff += (a[i] - b[i]) ** 2;
    na += a[i] ** 2;
    nb += b[i] ** 2;
  }
  return Math.sqrt(diff) / Math.max(Math.sqrt(na), Math.sqrt(nb), 1e-300);
}

/** Feeds the sequence, resolving each run of equal labels together when the run ends (next-move style). */
export function runBatched(learner: OnlineLearner, seq: Sequence): void {
  const probs = new Float64Array(learner.classes);
  let pending = 0;
  seq.inputs.forEach((x, t) => {
    learner.predict(Float64Array.from(x), probs);
    pending++;
    if (t === seq.inputs.length - 1 || seq.labels[t + 1] !== seq.labels[t]) {
      learner.resolve(seq.labels[t], pending);
      pending = 0;
    }
  });
}
