// The Elman kernels against implementations written here from their definitions, over sizes
// that exercise every block path of the blocked sensitivity kernel: N < 4 (single rows only),
// N = 4..7 (one four-row block), N not a multiple of 4 or 8 (source and output remainders),
// d = 1. Two references per kernel:
//  - naive: the textbook sum in plain order; agreement within 1e-12 of the size of the terms
//    summed (the bound reassociation can move a result by), so any correct kernel passes;
//  - fixed order: the summation order the kernel documents as its rounding contract, one row
//    at a time; agreement bit for bit, so a kernel swap that changes results is noticed.
import { describe, expect, it } from 'vitest';
import { elmanOutput, elmanStateStep, projectSensitivity, rtrlSensitivityStep } from '../../src/model/kernels/elman.js';
import { Rng } from '../../src/model/rng.js';

const RELATIVE_TOLERANCE = 1e-12;

const HIDDEN_SIZES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 16, 17, 20, 24];
const INPUT_SIZES = [1, 3, 26];

function recurrentParams(n: number, d: number): number {
  return n * n + n * d + n;
}

function normals(rng: Rng, length: number, scale = 1): Float64Array {
  const out = new Float64Array(length);
  for (let i = 0; i < length; i++) out[i] = scale * rng.normal();
  return out;
}

function hiddenState(rng: Rng, n: number): Float64Array {
  const h = new Float64Array(n);
  for (let i = 0; i < n; i++) h[i] = Math.tanh(1.5 * rng.normal());
  return h;
}

/** Index and values of the first element where `got` is not `want` bit for bit, or undefined. */
function firstBitDifference(got: Float64Array, want: Float64Array): string | undefined {
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(got[i], want[i])) return `index ${i}: got ${got[i]}, want ${want[i]}`;
  }
  return undefined;
}

/** Index and values of the first element further from `want` than the tolerance times `magnitude`. */
function firstOutOfTolerance(got: Float64Array, want: Float64Array, magnitude: Float64Array): string | undefined {
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i] - want[i]) <= RELATIVE_TOLERANCE * magnitude[i])) {
      return `index ${i}: got ${got[i]}, want ${want[i]} (terms of size ${magnitude[i]})`;
    }
  }
  return undefined;
}

/**
 * S_t[k, j] = (1 - h_k^2) (sum_m W[k, m] S_{t-1}[m, j] + I[k, j]) summed in plain order, and in
 * `magnitude` the same sum over absolute values of the terms.
 */
function naiveSensitivityStep(
  n: number,
  d: number,
  params: Float64Array,
  hPrev: Float64Array,
  x: Float64Array,
  h: Float64Array,
  sPrev: Float64Array,
  sNext: Float64Array,
  magnitude: Float64Array,
): void {
  const p = recurrentParams(n, d);
  for (let k = 0; k < n; k++) {
    const slope = 1 - h[k] * h[k];
    for (let j = 0; j < p; j++) {
      let immediate = 0;
      if (j >= k * n && j < (k + 1) * n) immediate = hPrev[j - k * n];
      const uStart = n * n + k * d;
      if (j >= uStart && j < uStart + d) immediate = x[j - uStart];
      if (j === n * n + n * d + k) immediate = 1;
      let sum = 0;
      let size = 0;
      for (let m = 0; m < n; m++) {
        const term = params[k * n + m] * sPrev[m * p + j];
        sum += term;
        size += Math.abs(term);
      }
      sNext[k * p + j] = slope * (sum + immediate);
      magnitude[k * p + j] = Math.abs(slope) * (size + Math.abs(immediate));
    }
  }
}

/** The rounding contract of rtrlSensitivityStep, one output row at a time. */
function fixedOrderSensitivityStep(
  n: number,
  d: number,
  params: Float64Array,
  hPrev: Float64Array,
  x: Float64Array,
  h: Float64Array,
  sPrev: Float64Array,
  sNext: Float64Array,
): void {
  const p = recurrentParams(n, d);
  for (let k = 0; k < n; k++) {
    const w = (m: number): number => params[k * n + m];
    const s = (m: number, j: number): number => sPrev[m * p + j];
    for (let j = 0; j < p; j++) {
      let sum: number;
      let m = 0;
      if (n >= 4) {
        sum = w(0) * s(0, j) + w(1) * s(1, j) + w(2) * s(2, j) + w(3) * s(3, j);
        m = 4;
      } else {
        sum = 0;
      }
      for (; m + 3 < n; m += 4) sum += w(m) * s(m, j) + w(m + 1) * s(m + 1, j) + w(m + 2) * s(m + 2, j) + w(m + 3) * s(m + 3, j);
      for (; m < n; m++) sum += w(m) * s(m, j);
      sNext[k * p + j] = sum;
    }
    const out = k * p;
    for (let j = 0; j < n; j++) sNext[out + k * n + j] += hPrev[j];
    for (let j = 0; j < d; j++) sNext[out + n * n + k * d + j] += x[j];
    sNext[out + n * n + n * d + k] += 1;
    const slope = 1 - h[k] * h[k];
    for (let j = 0; j < p; j++) sNext[out + j] *= slope;
  }
}

interface SensitivityCase {
  readonly n: number;
  readonly d: number;
  readonly params: Float64Array;
  /** Hidden states h_0 .. h_steps. */
  readonly states: readonly Float64Array[];
  /** Inputs x_1 .. x_steps. */
  readonly inputs: readonly Float64Array[];
}

function sensitivityCase(n: number, d: number, steps: number, seed: number): SensitivityCase {
  const rng = new Rng(seed);
  const p = recurrentParams(n, d);
  // Recurrent gain around 1.2, as the learners initialise it, so S neither dies nor explodes.
  const params = normals(rng, p, 1.2 / Math.sqrt(n));
  const states = Array.from({ length: steps + 1 }, () => hiddenState(rng, n));
  const inputs = Array.from({ length: steps }, () => normals(rng, d));
  return { n, d, params, states, inputs };
}

describe('rtrlSensitivityStep', () => {
  const STEPS = 4;

  for (const n of HIDDEN_SIZES) {
    for (const d of INPUT_SIZES) {
      it(`N = ${n}, d = ${d}: ${STEPS} chained steps match the naive sum and the fixed order bit for bit`, () => {
        const { params, states, inputs } = sensitivityCase(n, d, STEPS, 1000 * n + d);
        const p = recurrentParams(n, d);
        // Each step starts from the reference's previous S, so the comparison isolates one step.
        let sPrev = new Float64Array(n * p);
        const got = new Float64Array(n * p);
        const naive = new Float64Array(n * p);
        const magnitude = new Float64Array(n * p);
        const fixedOrder = new Float64Array(n * p);
        for (let t = 0; t < STEPS; t++) {
          got.fill(Number.NaN); // the kernel must overwrite every element, whatever sNext held
          rtrlSensitivityStep(n, d, params, states[t], inputs[t], states[t + 1], sPrev, got);
          naiveSensitivityStep(n, d, params, states[t], inputs[t], states[t + 1], sPrev, naive, magnitude);
          fixedOrderSensitivityStep(n, d, params, states[t], inputs[t], states[t + 1], sPrev, fixedOrder);
          expect(firstOutOfTolerance(got, naive, magnitude), `step ${t}`).toBeUndefined();
          expect(firstBitDifference(got, fixedOrder), `step ${t}`).toBeUndefined();
          sPrev = Float64Array.from(fixedOrder);
        }
        // After a few steps S is dense, so the last comparison covered every block path.
        expect(sPrev.every((value) => value !== 0)).toBe(true);
      });
    }
  }

  it('from S = 0 the result is the scaled immediate Jacobian alone', () => {
    const n = 12;
    const d = 5;
    const { params, states, inputs } = sensitivityCase(n, d, 1, 3);
    const p = recurrentParams(n, d);
    const sNext = new Float64Array(n * p);
    rtrlSensitivityStep(n, d, params, states[0], inputs[0], states[1], new Float64Array(n * p), sNext);
    for (let k = 0; k < n; k++) {
      const slope = 1 - states[1][k] ** 2;
      const row = sNext.subarray(k * p, (k + 1) * p);
      const expected = new Float64Array(p);
      for (let j = 0; j < n; j++) expected[k * n + j] = slope * states[0][j];
      for (let j = 0; j < d; j++) expected[n * n + k * d + j] = slope * inputs[0][j];
      expected[n * n + n * d + k] = slope;
      for (let j = 0; j < p; j++) expect(row[j]).toBeCloseTo(expected[j], 15);
    }
  });
});

/** rows[c, j] = sum_k scale V[c, k] S[k, j] in plain order, and the sum of absolute terms. */
function naiveProjection(
  n: number,
  p: number,
  classes: number,
  outputOffset: number,
  scale: number,
  params: Float64Array,
  s: Float64Array,
  rows: Float64Array,
  magnitude: Float64Array,
): void {
  for (let c = 0; c < classes; c++) {
    for (let j = 0; j < p; j++) {
      let sum = 0;
      let size = 0;
      for (let k = 0; k < n; k++) {
        const term = scale * params[outputOffset + c * n + k] * s[k * p + j];
        sum += term;
        size += Math.abs(term);
      }
      rows[c * p + j] = sum;
      magnitude[c * p + j] = size;
    }
  }
}

/** The rounding contract of projectSensitivity: 0 + v_0 s_0 + v_1 s_1 + ..., skipping v_k = 0. */
function fixedOrderProjection(n: number, p: number, classes: number, outputOffset: number, scale: number, params: Float64Array, s: Float64Array, rows: Float64Array): void {
  for (let c = 0; c < classes; c++) {
    for (let j = 0; j < p; j++) {
      let sum = 0;
      for (let k = 0; k < n; k++) {
        const v = scale * params[outputOffset + c * n + k];
        if (v !== 0) sum += v * s[k * p + j];
      }
      rows[c * p + j] = sum;
    }
  }
}

describe('projectSensitivity', () => {
  const cases = [
    { n: 1, d: 1, classes: 2, zeroWeights: [] },
    { n: 3, d: 2, classes: 3, zeroWeights: [] },
    { n: 4, d: 1, classes: 1, zeroWeights: [] },
    { n: 7, d: 3, classes: 2, zeroWeights: [2] },
    { n: 8, d: 26, classes: 3, zeroWeights: [] },
    { n: 13, d: 5, classes: 4, zeroWeights: [0, 9] },
    { n: 16, d: 26, classes: 3, zeroWeights: [] },
    { n: 20, d: 1, classes: 2, zeroWeights: [5, 19] },
  ];

  for (const { n, d, classes, zeroWeights } of cases) {
    it(`N = ${n}, d = ${d}, C = ${classes}, V zero at [${zeroWeights.join(', ')}]: naive sum within tolerance, fixed order bit for bit`, () => {
      const rng = new Rng(77 * n + classes);
      const p = recurrentParams(n, d);
      const outputOffset = p;
      const params = normals(rng, p + classes * n + classes);
      // Class 0 only: each zero weight sends its group of source rows down the skipping path.
      for (const k of zeroWeights) params[outputOffset + k] = 0;
      const s = normals(rng, n * p);
      const scale = 0.75;
      const rowsOffset = 5;
      const rows = new Float64Array(rowsOffset + classes * p + 3).fill(Number.NaN);
      projectSensitivity(n, p, classes, outputOffset, scale, params, s, rows, rowsOffset);
      const got = rows.subarray(rowsOffset, rowsOffset + classes * p);

      const naive = new Float64Array(classes * p);
      const magnitude = new Float64Array(classes * p);
      naiveProjection(n, p, classes, outputOffset, scale, params, s, naive, magnitude);
      expect(firstOutOfTolerance(got, naive, magnitude)).toBeUndefined();
      const fixedOrder = new Float64Array(classes * p);
      fixedOrderProjection(n, p, classes, outputOffset, scale, params, s, fixedOrder);
      expect(firstBitDifference(got, fixedOrder)).toBeUndefined();
      // Nothing outside rows[rowsOffset, rowsOffset + C*P) is written.
      expect(Array.from(rows.subarray(0, rowsOffset)).every(Number.isNaN)).toBe(true);
      expect(Array.from(rows.subarray(rowsOffset + classes * p)).every(Number.isNaN)).toBe(true);
    });
  }
});

describe('elmanStateStep and elmanOutput', () => {
  for (const [n, d] of [
    [1, 1],
    [5, 3],
    [16, 26],
  ] as const) {
    it(`N = ${n}, d = ${d}: h = tanh(W h + U x + b) and softmax(scale V h + c) match the definitions`, () => {
      const rng = new Rng(5 * n + d);
      const classes = 3;
      const p = recurrentParams(n, d);
      const params = normals(rng, p + classes * n + classes, 0.5);
      const hPrev = hiddenState(rng, n);
      const x = normals(rng, d);
      const h = new Float64Array(n);
      elmanStateStep(n, d, params, hPrev, x, h);
      for (let i = 0; i < n; i++) {
        let a = params[n * n + n * d + i];
        let size = Math.abs(a);
        for (let j = 0; j < n; j++) {
          a += params[i * n + j] * hPrev[j];
          size += Math.abs(params[i * n + j] * hPrev[j]);
        }
        for (let j = 0; j < d; j++) {
          a += params[n * n + i * d + j] * x[j];
          size += Math.abs(params[n * n + i * d + j] * x[j]);
        }
        // tanh has slope <= 1, so the pre-activation's error bound carries over.
        expect(Math.abs(h[i] - Math.tanh(a))).toBeLessThanOrEqual(RELATIVE_TOLERANCE * size + 1e-15);
      }

      const scale = 1.3;
      const probs = new Float64Array(classes);
      elmanOutput(n, classes, p, scale, params, h, probs);
      const logits = Array.from({ length: classes }, (_, c) => {
        let z = 0;
        for (let k = 0; k < n; k++) z += params[p + c * n + k] * h[k];
        return scale * z + params[p + classes * n + c];
      });
      const total = logits.reduce((sum, z) => sum + Math.exp(z), 0);
      logits.forEach((z, c) => expect(probs[c]).toBeCloseTo(Math.exp(z) / total, 14));
    });
  }
});
