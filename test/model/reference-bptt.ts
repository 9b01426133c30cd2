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
  const take = (rows: number, cols: number) => Array.from({ length: rows }, () => Array.from({ length: cols }, () => theta[o++]));
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

interface Gradients {
  gW: number[][];
  gU: number[][];
  gb: number[];
  gV: number[][];
  gc: number[];
  gQ: number[][];
}

function zeroGradients({ n, d, classes }: Shape): Gradients {
  const rows = (count: number, length: number) => Array.from({ length: count }, () => new Array(length).fill(0));
  return { gW: rows(n, n), gU: rows(n, d), gb: new Array(n).fill(0), gV: rows(classes, n), gc: new Array(classes).fill(0), gQ: rows(classes, d) };
}

/** Adds tick t's output-layer gradient (V, c, Q) and returns dL/dz there. */
function addOutputGradient(g: Gradients, { n, d, classes, scale }: Shape, seq: Sequence, t: number, h: number[], p: number[]): number[] {
  const dz = p.map((value, k) => value - (k === seq.labels[t] ? 1 : 0));
  for (let k = 0; k < classes; k++) {
    g.gc[k] += dz[k];
    for (let j = 0; j < n; j++) g.gV[k][j] += scale * dz[k] * h[j];
    for (let j = 0; j < d; j++) g.gQ[k][j] += dz[k] * seq.inputs[t][j];
  }
  return dz;
}

function flatten(g: Gradients, shape: Shape): Float64Array {
  return Float64Array.from([...g.gW.flat(), ...g.gU.flat(), ...g.gb, ...g.gV.flat(), ...g.gc, ...(shape.skip ? g.gQ.flat() : [])]);
}

/** Gradient of sum_t CE(p_t, y_t) by backpropagation through the whole sequence. */
export function referenceGradient(theta: ArrayLike<number>, shape: Shape, seq: Sequence): Float64Array {
  const { n, d, scale } = shape;
  const { W, V } = unpack(theta, shape);
  const { hs, ps } = forward(theta, shape, seq);
  const g = zeroGradients(shape);
  const { gW, gU, gb } = g;
  let carry = new Array(n).fill(0); // dL/dh_t flowing back from t+1
  for (let t = seq.inputs.length - 1; t >= 0; t--) {
    const h = hs[t];
    const hPrev = t > 0 ? hs[t - 1] : new Array(n).fill(0);
    const dz = addOutputGradient(g, shape, seq, t, h, ps[t]);
    const dh = carry.map((v, j) => v + scale * dz.reduce((s, e, k) => s + e * V[k][j], 0));
    const da = dh.map((v, i) => v * (1 - h[i] * h[i]));
    for (let i = 0; i < n; i++) {
      gb[i] += da[i];
      for (let j = 0; j < n; j++) gW[i][j] += da[i] * hPrev[j];
      for (let j = 0; j < d; j++) gU[i][j] += da[i] * seq.inputs[t][j];
    }
    carry = Array.from({ length: n }, (_, j) => da.reduce((s, v, i) => s + v * W[i][j], 0));
  }
  return flatten(g, shape);
}

/**
 * Gradient of sum_t CE(p_t, y_t) when each tick's loss flows back through at most `truncation`
 * steps (t down to t − truncation + 1): the TBPTT(τ) gradient, written per tick from the
 * equations.
 */
export function referenceTruncatedGradient(theta: ArrayLike<number>, shape: Shape, seq: Sequence, truncation: number): Float64Array {
  const { n, d, scale } = shape;
  const { W, V } = unpack(theta, shape);
  const { hs, ps } = forward(theta, shape, seq);
  const g = zeroGradients(shape);
  const { gW, gU, gb } = g;
  for (let t = 0; t < seq.inputs.length; t++) {
    const dz = addOutputGradient(g, shape, seq, t, hs[t], ps[t]);
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
  return flatten(g, shape);
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
