// The native RTRL addon (native/) against the TypeScript reference (src/model/kernels/elman.ts)
// on every instruction set this CPU runs: the sensitivity update alone, the whole predict-side
// tick, and whole learner runs, over shapes with odd N and d that reach every tile remainder
// (rows N mod 4 and N mod 8, column strips P mod 12 and P mod 24, vector and scalar column
// tails). Tolerance: 1e-12 of the size of the terms summed, the bound any reassociation or
// fused multiply-add can move a float64 sum by. The addon is built by `npm ci`; this file
// fails, rather than skips, when it is missing.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { elmanOutput, elmanStateStep, projectSensitivity, rtrlSensitivityStep } from '../../src/model/kernels/elman.js';
import { findNativeAddon } from '../../src/model/kernels/native.js';
import { JS_KERNEL, nativeKernelOf } from '../../src/model/kernels/select.js';
import { RtrlLearner } from '../../src/model/rtrl.js';
import { createOptimiser, defaultOptimiserConfig, type StepOutcome } from '../../src/model/optimiser.js';
import type { RecurrentConfig } from '../../src/model/recurrent-config.js';
import type { PendingMode } from '../../src/model/targets.js';
import { Rng } from '../../src/model/rng.js';
import { requireAddonForFile } from './native-addon.js';

const RELATIVE_TOLERANCE = 1e-12;

const addon = requireAddonForFile();

function normals(rng: Rng, length: number, scale = 1): Float64Array {
  const out = new Float64Array(length);
  for (let i = 0; i < length; i++) out[i] = scale * rng.normal();
  return out;
}

function tanhs(rng: Rng, n: number): Float64Array {
  const h = new Float64Array(n);
  for (let i = 0; i < n; i++) h[i] = Math.tanh(1.5 * rng.normal());
  return h;
}

/** |1 - h_k^2| (sum_m |W[k,m] S[m,j]| + |I[k,j]|): the size of the terms behind S_t[k, j]. */
function sensitivityMagnitude(n: number, d: number, params: Float64Array, hPrev: Float64Array, x: Float64Array, h: Float64Array, sPrev: Float64Array): Float64Array {
  const p = n * n + n * d + n;
  const out = new Float64Array(n * p);
  for (let k = 0; k < n; k++) {
    for (let j = 0; j < p; j++) {
      let size = 0;
      for (let m = 0; m < n; m++) size += Math.abs(params[k * n + m] * sPrev[m * p + j]);
      if (j >= k * n && j < (k + 1) * n) size += Math.abs(hPrev[j - k * n]);
      if (j >= n * n + k * d && j < n * n + (k + 1) * d) size += Math.abs(x[j - n * n - k * d]);
      if (j === n * n + n * d + k) size += 1;
      out[k * p + j] = Math.abs(1 - h[k] * h[k]) * size;
    }
  }
  return out;
}

function firstOutOfTolerance(got: Float64Array, want: Float64Array, magnitude: Float64Array | number): string | undefined {
  if (got.length !== want.length) return `length ${got.length}, want ${want.length}`;
  for (let i = 0; i < want.length; i++) {
    const size = typeof magnitude === 'number' ? magnitude : magnitude[i];
    if (!(Math.abs(got[i] - want[i]) <= RELATIVE_TOLERANCE * size)) return `index ${i}: got ${got[i]}, want ${want[i]} (terms of size ${size})`;
  }
  return undefined;
}

// N: below and across the row tiles (4 and 8) and odd; d: odd, 1, and the default L = 10 book (46).
const SHAPES: ReadonlyArray<readonly [number, number]> = [
  [1, 1],
  [2, 3],
  [3, 5],
  [4, 1],
  [5, 7],
  [7, 3],
  [8, 46],
  [9, 2],
  [11, 13],
  [13, 46],
  [16, 46],
  [17, 9],
  [23, 5],
  [32, 46],
];

describe.each(addon.supportedIsas)('native kernel, %s', (isa) => {
  it('runs on this CPU and reports itself', () => {
    expect(addon.select(isa)).toBe(isa);
    expect(nativeKernelOf(addon).name).toBe(`native-${isa}`);
  });

  for (const [n, d] of SHAPES) {
    it(`N = ${n}, d = ${d}: three chained sensitivity steps match rtrlSensitivityStep within 1e-12`, () => {
      addon.select(isa);
      const rng = new Rng(1000 * n + d);
      const p = n * n + n * d + n;
      const params = normals(rng, p, 1.2 / Math.sqrt(n));
      let sJs = normals(rng, n * p, 0.5);
      let sNative = Float64Array.from(sJs);
      let hPrev = tanhs(rng, n);
      for (let step = 0; step < 3; step++) {
        const x = normals(rng, d);
        const h = tanhs(rng, n);
        const magnitude = sensitivityMagnitude(n, d, params, hPrev, x, h, sJs);
        const nextJs = new Float64Array(n * p);
        const nextNative = new Float64Array(n * p).fill(Number.NaN);
        rtrlSensitivityStep(n, d, params, hPrev, x, h, sJs, nextJs);
        addon.sensitivity(n, d, params, hPrev, x, h, sNative, nextNative);
        expect(firstOutOfTolerance(nextNative, nextJs, magnitude)).toBeUndefined();
        // Each side continues from its own result, so differences would compound if they grew.
        sJs = nextJs;
        sNative = nextNative;
        hPrev = h;
      }
    });
  }

  for (const [n, d, classes] of [
    [5, 7, 3],
    [16, 46, 3],
    [9, 4, 2],
  ] as const) {
    it(`N = ${n}, d = ${d}, C = ${classes}: one step gives the TypeScript h, S, probabilities, projected rows and batch sums`, () => {
      addon.select(isa);
      const rng = new Rng(77 + n);
      const p = n * n + n * d + n;
      const vOffset = p;
      const total = p + classes * n + classes;
      const params = normals(rng, total, 0.4);
      const hPrev = tanhs(rng, n);
      const x = normals(rng, d);
      const sPrev = normals(rng, n * p, 0.3);
      const scale = 0.7;

      const hJs = new Float64Array(n);
      const sJs = new Float64Array(n * p);
      const probsJs = new Float64Array(classes);
      const rowsJs = new Float64Array(classes * p);
      elmanStateStep(n, d, params, hPrev, x, hJs);
      rtrlSensitivityStep(n, d, params, hPrev, x, hJs, sPrev, sJs);
      elmanOutput(n, classes, vOffset, scale, params, hJs, probsJs);
      projectSensitivity(n, p, classes, vOffset, scale, params, sJs, rowsJs, 0);

      const h = new Float64Array(n);
      const s = new Float64Array(n * p);
      const probs = new Float64Array(classes);
      const ring = new Float64Array(3 * classes * p).fill(5);
      const sums = [new Float64Array(classes * p), new Float64Array(p), new Float64Array(classes * n), new Float64Array(n), new Float64Array(classes)] as const;
      // FIFO form: the rows land in the middle slot of a ring and nowhere else.
      expect(addon.step(n, d, classes, vOffset, scale, params, hPrev, x, h, sPrev, s, probs, ring, classes * p, null)).toBe(true);
      expect(firstOutOfTolerance(h, hJs, 1)).toBeUndefined();
      expect(firstOutOfTolerance(s, sJs, sensitivityMagnitude(n, d, params, hPrev, x, hJs, sPrev))).toBeUndefined();
      expect(firstOutOfTolerance(probs, probsJs, 1)).toBeUndefined();
      const rowsSize = Math.max(...Array.from(rowsJs, Math.abs)) * n;
      expect(firstOutOfTolerance(ring.subarray(classes * p, 2 * classes * p), rowsJs, rowsSize)).toBeUndefined();
      expect(ring.subarray(0, classes * p).every((value) => value === 5)).toBe(true);
      expect(ring.subarray(2 * classes * p).every((value) => value === 5)).toBe(true);

      // Batch form, twice, with logit offsets (the input skip's Q x): the sums are the rows,
      // sum_c p_c rows_c, p h^T, h and p, accumulated.
      const offsets = normals(rng, classes);
      const probsSkipJs = new Float64Array(classes);
      elmanOutput(n, classes, vOffset, scale, params, hJs, probsSkipJs, offsets);
      probsJs.set(probsSkipJs);
      const rows = new Float64Array(classes * p);
      for (let repeat = 0; repeat < 2; repeat++) {
        expect(addon.step(n, d, classes, vOffset, scale, params, hPrev, x, h, sPrev, s, probs, rows, 0, offsets, ...sums)).toBe(true);
      }
      expect(firstOutOfTolerance(probs, probsSkipJs, 1)).toBeUndefined();
      const sumProbRows = new Float64Array(p);
      for (let c = 0; c < classes; c++) for (let j = 0; j < p; j++) sumProbRows[j] += 2 * probsJs[c] * rowsJs[c * p + j];
      expect(
        firstOutOfTolerance(
          sums[0],
          rowsJs.map((value) => 2 * value),
          2 * rowsSize,
        ),
      ).toBeUndefined();
      expect(firstOutOfTolerance(sums[1], sumProbRows, 2 * rowsSize)).toBeUndefined();
      const probHidden = new Float64Array(classes * n);
      for (let c = 0; c < classes; c++) for (let k = 0; k < n; k++) probHidden[c * n + k] = 2 * probsJs[c] * hJs[k];
      expect(firstOutOfTolerance(sums[2], probHidden, 2)).toBeUndefined();
      expect(
        firstOutOfTolerance(
          sums[3],
          hJs.map((value) => 2 * value),
          2,
        ),
      ).toBeUndefined();
      expect(
        firstOutOfTolerance(
          sums[4],
          probsJs.map((value) => 2 * value),
          2,
        ),
      ).toBeUndefined();
    });
  }

  it('a step split over threads gives the same bits as one thread, and still catches a non-finite S', () => {
    addon.select(isa);
    try {
      // Large enough to be split (N^2 P >= 2^20), with odd N and d for the remainders.
      for (const [n, d, classes] of [
        [32, 46, 3],
        [37, 13, 2],
      ] as const) {
        const p = n * n + n * d + n;
        const rng = new Rng(n + d);
        const params = normals(rng, p + classes * n + classes, 0.2);
        const hPrev = tanhs(rng, n);
        const x = normals(rng, d);
        const sPrev = normals(rng, n * p, 0.3);
        const offsets = normals(rng, classes);
        const run = (threads: number) => {
          expect(addon.setThreads(threads)).toBe(threads);
          const out = { h: new Float64Array(n), s: new Float64Array(n * p), probs: new Float64Array(classes), rows: new Float64Array(classes * p) };
          const sums = [new Float64Array(classes * p), new Float64Array(p), new Float64Array(classes * n), new Float64Array(n), new Float64Array(classes)] as const;
          expect(addon.step(n, d, classes, p, 0.5, params, hPrev, x, out.h, sPrev, out.s, out.probs, out.rows, 0, offsets, ...sums)).toBe(true);
          const sensitivity = new Float64Array(n * p);
          addon.sensitivity(n, d, params, hPrev, x, out.h, sPrev, sensitivity);
          return { ...out, sums, sensitivity };
        };
        const one = run(1);
        for (const threads of [2, 3]) {
          const split = run(threads);
          expect(Buffer.from(split.s.buffer).equals(Buffer.from(one.s.buffer)), `S, ${threads} threads`).toBe(true);
          expect(Buffer.from(split.sensitivity.buffer).equals(Buffer.from(one.sensitivity.buffer))).toBe(true);
          expect(Buffer.from(split.rows.buffer).equals(Buffer.from(one.rows.buffer))).toBe(true);
          expect(Array.from(split.probs)).toEqual(Array.from(one.probs));
          split.sums.forEach((sum, i) => expect(Buffer.from(sum.buffer).equals(Buffer.from(one.sums[i].buffer)), `sum ${i}`).toBe(true));
        }
        addon.setThreads(2);
        for (const column of [0, Math.floor(p / 2), p - 1]) {
          const bad = Float64Array.from(sPrev);
          bad[(n - 1) * p + column] = Number.NaN;
          const s = new Float64Array(n * p);
          expect(addon.step(n, d, classes, p, 1, params, hPrev, x, new Float64Array(n), bad, s, new Float64Array(classes), new Float64Array(classes * p), 0, null)).toBe(false);
          expect(s.every((value) => value === 0)).toBe(true);
        }
      }
    } finally {
      addon.setThreads(1);
    }
  });

  it('500 chained steps split over threads end on the bits of one thread (the pool hands jobs over without loss)', () => {
    addon.select(isa);
    const n = 32;
    const d = 46;
    const classes = 3;
    const p = n * n + n * d + n;
    const rng = new Rng(5);
    const params = normals(rng, p + classes * n + classes, 0.15);
    const inputs = Array.from({ length: 16 }, () => normals(rng, d));
    const chain = (threads: number) => {
      addon.setThreads(threads);
      let h = new Float64Array(n);
      let s = new Float64Array(n * p);
      let hNext = new Float64Array(n);
      let sNext = new Float64Array(n * p);
      const probs = new Float64Array(classes);
      const rows = new Float64Array(classes * p);
      for (let t = 0; t < 500; t++) {
        addon.step(n, d, classes, p, 1, params, h, inputs[t % inputs.length], hNext, s, sNext, probs, rows, 0, null);
        [h, hNext] = [hNext, h];
        [s, sNext] = [sNext, s];
      }
      return { h, s, rows };
    };
    try {
      const one = chain(1);
      const two = chain(2);
      expect(Buffer.from(two.s.buffer).equals(Buffer.from(one.s.buffer))).toBe(true);
      expect(Buffer.from(two.rows.buffer).equals(Buffer.from(one.rows.buffer))).toBe(true);
      expect(Array.from(two.h)).toEqual(Array.from(one.h));
    } finally {
      addon.setThreads(1);
    }
  });

  it('a process that exits with kernel threads running ends cleanly (no std::terminate at exit)', () => {
    const script = `
      const addon = require(${JSON.stringify(findNativeAddon())});
      addon.setThreads(2);
      const n = 32, d = 46, p = n * n + n * d + n;
      addon.sensitivity(n, d, new Float64Array(p), new Float64Array(n), new Float64Array(d), new Float64Array(n), new Float64Array(n * p), new Float64Array(n * p));
    `;
    const exited = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(exited.stderr).toBe('');
    expect(exited.signal).toBeNull();
    expect(exited.status).toBe(0);
  });

  it('an infinite sensitivity with a finite state is caught in S alone, wherever it sits', () => {
    addon.select(isa);
    const n = 9,
      d = 5,
      classes = 2;
    const p = n * n + n * d + n;
    const rng = new Rng(6);
    const params = normals(rng, p + classes * n + classes, 0.3);
    const hPrev = tanhs(rng, n);
    const x = normals(rng, d);
    // Last column (scalar tail strip), first column, and one inside a vector strip.
    for (const column of [p - 1, 0, 37]) {
      const sPrev = normals(rng, n * p, 0.3);
      sPrev[4 * p + column] = Number.POSITIVE_INFINITY;
      const h = new Float64Array(n);
      const s = new Float64Array(n * p);
      expect(addon.step(n, d, classes, p, 1, params, hPrev, x, h, sPrev, s, new Float64Array(classes), new Float64Array(classes * p), 0, null)).toBe(false);
      expect(s.every((value) => value === 0)).toBe(true);
    }
  });

  it('a non-finite weight resets h, S and the projected rows to zero and reports it', () => {
    addon.select(isa);
    const n = 6,
      d = 3,
      classes = 3;
    const p = n * n + n * d + n;
    const rng = new Rng(5);
    const params = normals(rng, p + classes * n + classes, 0.3);
    params[7] = Number.POSITIVE_INFINITY;
    const h = new Float64Array(n).fill(9);
    const s = new Float64Array(n * p).fill(9);
    const rows = new Float64Array(classes * p).fill(9);
    const probs = new Float64Array(classes);
    expect(addon.step(n, d, classes, p, 1, params, tanhs(rng, n), normals(rng, d), h, normals(rng, n * p), s, probs, rows, 0, null)).toBe(false);
    expect(h.every((value) => value === 0) && s.every((value) => value === 0) && rows.every((value) => value === 0)).toBe(true);
    // The probabilities come from the zeroed state: softmax(c), as the TypeScript learner gives.
    const probsFromZero = new Float64Array(classes);
    elmanOutput(n, classes, p, 1, params, new Float64Array(n), probsFromZero);
    expect(firstOutOfTolerance(probs, probsFromZero, 1)).toBeUndefined();
  });
});

describe.each(addon.supportedIsas)('native Adam, %s', (isa) => {
  it('clips, skips non-finite gradients, applies L2 where the mask says, and moves the parameters as the TypeScript Adam', () => {
    addon.select(isa);
    const size = 37;
    const mask = Uint8Array.from({ length: size }, (_, i) => (i % 3 === 0 ? 0 : 1));
    const config = { ...defaultOptimiserConfig, l2: 0.01, clipNorm: 1.5 };
    const js = createOptimiser(config, size, mask);
    const native = createOptimiser(config, size, mask, addon);
    const rng = new Rng(9);
    const paramsJs = normals(rng, size);
    const paramsNative = Float64Array.from(paramsJs);
    const outcomes: StepOutcome[] = [];
    for (let step = 0; step < 40; step++) {
      // Small gradients (applied), large ones (clipped), now and then a NaN (skipped).
      const grad = normals(rng, size, step % 2 === 0 ? 0.01 : 10);
      if (step % 13 === 5) grad[4] = Number.NaN;
      const outcome = js.step(paramsJs, Float64Array.from(grad));
      expect(native.step(paramsNative, Float64Array.from(grad))).toBe(outcome);
      outcomes.push(outcome);
    }
    expect(new Set(outcomes)).toEqual(new Set(['applied', 'clipped', 'skipped_non_finite']));
    expect(native.steps).toBe(js.steps);
    expect(firstOutOfTolerance(paramsNative, paramsJs, 1)).toBeUndefined();
    expect(firstOutOfTolerance(native.getState(), js.getState(), 1)).toBeUndefined();
  });
});

describe('native projected gradient', () => {
  it('is the TypeScript FIFO gradient bit for bit, read from a ring slot', () => {
    const rng = new Rng(12);
    for (const [classes, p] of [
      [2, 1],
      [3, 97],
      [5, 2528],
    ] as const) {
      const slots = 3,
        slot = 1,
        label = classes - 1;
      const rows = normals(rng, slots * classes * p);
      const probs = normals(rng, slots * classes);
      const want = new Float64Array(p);
      const base = slot * classes * p;
      for (let j = 0; j < p; j++) want[j] = -rows[base + label * p + j];
      for (let c = 0; c < classes; c++) for (let j = 0; j < p; j++) want[j] += probs[slot * classes + c] * rows[base + c * p + j];
      const got = new Float64Array(p).fill(Number.NaN);
      addon.projectedGradient(classes, p, rows, base, probs, slot * classes, label, got);
      expect(Array.from(got)).toEqual(Array.from(want));
    }
    expect(() => addon.projectedGradient(3, 10, new Float64Array(29), 0, new Float64Array(3), 0, 0, new Float64Array(10))).toThrow(/rows: needs 30 elements/);
    expect(() => addon.projectedGradient(3, 10, new Float64Array(30), 0, new Float64Array(3), 0, 3, new Float64Array(10))).toThrow(/label/);
  });
});

function learnerConfig(n: number, d: number, pending: PendingMode): RecurrentConfig {
  return {
    hidden: n,
    inputs: d,
    classes: 3,
    outputScaleBeta: 0.5,
    recurrentGain: 1.2,
    inputSkip: true,
    seed: 3,
    optimiser: defaultOptimiserConfig,
    pending,
    batchReduction: 'tick',
  };
}

describe('RtrlLearner on the native kernel', () => {
  const cases: ReadonlyArray<readonly [string, number, number, PendingMode]> = [
    ['next-move batches', 16, 46, { kind: 'batch', maxPending: 50 }],
    ['a horizon:3 FIFO', 7, 5, { kind: 'fifo', capacity: 3 }],
    ['next-move batches, odd shape', 13, 9, { kind: 'batch', maxPending: 4 }],
  ];
  for (const [label, n, d, pending] of cases) {
    it(`${label}, N = ${n}, d = ${d}: 300 ticks give the TypeScript learner's predictions within 1e-12`, () => {
      const js = new RtrlLearner(learnerConfig(n, d, pending), undefined, 'rtrl', JS_KERNEL);
      const native = new RtrlLearner(learnerConfig(n, d, pending), undefined, 'rtrl', nativeKernelOf(addon));
      expect(native.kernel.name).toBe(`native-${addon.isa()}`);
      const rng = new Rng(n * 31 + d);
      const probsJs = new Float64Array(3);
      const probsNative = new Float64Array(3);
      let worst = 0;
      for (let t = 0; t < 300; t++) {
        const x = normals(rng, d);
        if (t === 150) x[2] = Number.NaN; // sanitised on both sides alike
        js.predict(x, probsJs);
        native.predict(x, probsNative);
        for (let c = 0; c < 3; c++) worst = Math.max(worst, Math.abs(probsJs[c] - probsNative[c]));
        // Labels in runs, as next-move resolves them: several pending ticks share one.
        if (t % 3 === 2) {
          const label = Math.floor(rng.uniform() * 3);
          js.resolve(label, pending.kind === 'fifo' ? 1 : js.pending);
          native.resolve(label, pending.kind === 'fifo' ? 1 : native.pending);
        }
      }
      expect(worst).toBeLessThan(RELATIVE_TOLERANCE);
      expect(native.stats).toEqual(js.stats);
      expect(firstOutOfTolerance(native.params, js.params, 1)).toBeUndefined();
    });
  }

  it('a state saved by the native learner restores into the TypeScript one and they go on alike', () => {
    const config = learnerConfig(8, 6, { kind: 'batch', maxPending: 20 });
    const native = new RtrlLearner(config, undefined, 'rtrl', nativeKernelOf(addon));
    const rng = new Rng(4);
    const probs = new Float64Array(3);
    for (let t = 0; t < 40; t++) {
      native.predict(normals(rng, 6), probs);
      if (t % 4 === 3) native.resolve(t % 3, native.pending);
    }
    const js = new RtrlLearner(config, undefined, 'rtrl', JS_KERNEL);
    js.setState(native.getState());
    const x = normals(rng, 6);
    const probsJs = new Float64Array(3);
    native.predict(x, probs);
    js.predict(x, probsJs);
    expect(firstOutOfTolerance(probs, probsJs, 1)).toBeUndefined();
  });
});

describe('native loader', () => {
  it('finds the built addon above the source tree', () => {
    expect(findNativeAddon()).toMatch(/build\/Release\/lob_rtrl_native\.node$/);
  });
});
