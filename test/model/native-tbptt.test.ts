// The native TBPTT backward pass (native/tbptt-impl.h) against the TypeScript one
// (src/model/tbptt.ts) on every instruction set this CPU runs. The native copies are compiled
// without contraction and sum in the TypeScript order, so the comparison is exact, stricter
// than the 1e-12 the RTRL kernel is held to: a TBPTT learner must predict the same bit for
// bit on either kernel. Shapes with odd N and d reach the vector tails; still stretches make
// the pending and history rings grow, and a full batch ring drops its oldest tick.
import { describe, expect, it } from 'vitest';
import { JS_KERNEL, nativeKernelOf } from '../../src/model/kernels/select.js';
import { createOptimiser, defaultOptimiserConfig } from '../../src/model/optimiser.js';
import type { RecurrentConfig } from '../../src/model/recurrent-config.js';
import { Rng } from '../../src/model/rng.js';
import type { PendingMode } from '../../src/model/targets.js';
import { TbpttLearner } from '../../src/model/tbptt.js';
import { requireAddonForFile } from './native-addon.js';

const addon = requireAddonForFile();

const CLASSES = 3;

function learnerConfig(n: number, d: number, pending: PendingMode, inputSkip = true): RecurrentConfig {
  return {
    hidden: n,
    inputs: d,
    classes: CLASSES,
    outputScaleBeta: 0.5,
    recurrentGain: 1.1,
    seed: n * 7 + d,
    optimiser: defaultOptimiserConfig,
    pending,
    batchReduction: 'tick',
    inputSkip,
  };
}

function normals(rng: Rng, length: number): Float64Array {
  const out = new Float64Array(length);
  for (let i = 0; i < length; i++) out[i] = rng.normal();
  return out;
}

/** Ticks between label runs: mostly short, now and then a still stretch longer than the rings start. */
function runLength(rng: Rng, t: number): number {
  return t % 97 === 0 ? 90 : 1 + Math.floor(rng.uniform() * 4);
}

/** Runs both learners over the same ticks; returns the first tick whose probabilities differ, or -1. */
function firstDivergence(js: TbpttLearner, native: TbpttLearner, d: number, ticks: number, seed: number): number {
  const rng = new Rng(seed);
  const probsJs = new Float64Array(CLASSES);
  const probsNative = new Float64Array(CLASSES);
  let nextResolve = runLength(rng, 0);
  for (let t = 0; t < ticks; t++) {
    const x = normals(rng, d);
    if (t === 40) x[0] = Number.POSITIVE_INFINITY; // sanitised alike on both sides
    js.predict(x, probsJs);
    native.predict(x, probsNative);
    for (let c = 0; c < CLASSES; c++) if (!Object.is(probsJs[c], probsNative[c])) return t;
    if (t === nextResolve) {
      const label = Math.floor(rng.uniform() * CLASSES);
      const count = js.pending;
      js.resolve(label, count);
      native.resolve(label, count);
      nextResolve = t + runLength(rng, t);
    }
  }
  return -1;
}

describe.each(addon.supportedIsas)('native TBPTT, %s', (isa) => {
  const cases: ReadonlyArray<readonly [string, number, number, number, PendingMode, boolean]> = [
    ['next-move batches, the default shape', 16, 51, 10, { kind: 'batch', maxPending: 512 }, true],
    ['the default shape without the input skip', 16, 51, 10, { kind: 'batch', maxPending: 512 }, false],
    ['next-move batches, odd shape, a ring that overflows', 13, 9, 5, { kind: 'batch', maxPending: 70 }, true],
    ['a horizon:3 FIFO, odd shape', 7, 5, 4, { kind: 'fifo', capacity: 3 }, true],
    ['a window longer than the sequence, one input', 5, 1, 400, { kind: 'batch', maxPending: 128 }, true],
  ];
  for (const [label, n, d, truncation, pending, inputSkip] of cases) {
    it(`${label} (N = ${n}, d = ${d}, tau = ${truncation}): 600 ticks predict bit for bit as the TypeScript learner`, () => {
      addon.select(isa);
      const js = new TbpttLearner(learnerConfig(n, d, pending, inputSkip), truncation, undefined, 'tbptt', JS_KERNEL);
      const native = new TbpttLearner(learnerConfig(n, d, pending, inputSkip), truncation, undefined, 'tbptt', nativeKernelOf(addon));
      expect(firstDivergence(js, native, d, 600, n + d)).toBe(-1);
      expect(native.stats).toEqual(js.stats);
      expect(native.stats.labels).toBeGreaterThan(100);
      expect(Array.from(native.params)).toEqual(Array.from(js.params));
      expect(native.getState()).toEqual(js.getState());
      // The input skip has learnt (Q is nonzero), so its native gradient was exercised too.
      const qStart = n * n + n * d + n + CLASSES * n + CLASSES;
      if (inputSkip) expect(Array.from(native.params.subarray(qStart)).some((value) => value !== 0)).toBe(true);
      else expect(native.params.length).toBe(qStart);
    });
  }
});

describe('native TBPTT learner state', () => {
  // Saved with nothing pending too (250 ticks end on a resolve): the next tick's window still
  // reaches back into the history before the save.
  it('a state saved on the native kernel restores into the TypeScript learner and both go on alike', () => {
    const config = learnerConfig(9, 7, { kind: 'batch', maxPending: 256 });
    const native = new TbpttLearner(config, 6, undefined, 'tbptt', nativeKernelOf(addon));
    const warmup = new TbpttLearner(config, 6, undefined, 'tbptt', JS_KERNEL);
    expect(firstDivergence(warmup, native, 7, 250, 3)).toBe(-1);
    const js = new TbpttLearner(config, 6, undefined, 'tbptt', JS_KERNEL);
    js.setState(native.getState());
    expect(firstDivergence(js, native, 7, 250, 4)).toBe(-1);
    expect(Array.from(native.params)).toEqual(Array.from(js.params));
  });
});

describe('native TBPTT arguments', () => {
  const n = 4;
  const d = 3;
  const total = n * n + n * d + n + CLASSES * n + CLASSES;
  const call = (overrides: { ticks?: Float64Array; grad?: Float64Array; label?: number }) =>
    addon.tbpttGradient(
      n,
      d,
      CLASSES,
      0,
      2,
      overrides.label ?? 0,
      1,
      new Float64Array(total),
      8,
      new Float64Array(8 * d),
      new Float64Array(8 * n),
      4,
      0,
      2,
      overrides.ticks ?? Float64Array.of(3, 4, 0, 0),
      new Float64Array(4 * CLASSES),
      new Float64Array(4 * CLASSES * n),
      overrides.grad ?? new Float64Array(total),
    );

  it('accumulates into the gradient it is given', () => {
    const grad = new Float64Array(total);
    call({ grad });
    // Zero probabilities against label 0: the c gradient is -1 for class 0 from each of the two ticks.
    expect(grad[total - CLASSES]).toBe(-2);
  });

  it('refuses a negative or fractional tick, a short gradient and a label out of range', () => {
    expect(() => call({ ticks: Float64Array.of(-1, 4, 0, 0) })).toThrow(/pendingTicks: expected non-negative integers/);
    expect(() => call({ ticks: Float64Array.of(3, 4.5, 0, 0) })).toThrow(/pendingTicks/);
    expect(() => call({ grad: new Float64Array(total - 1) })).toThrow(/grad: needs/);
    expect(() => call({ label: CLASSES })).toThrow(/label: expected an integer/);
  });
});

describe.each(addon.supportedIsas)('native exact Adam, %s', (isa) => {
  // Gradients of every kind a learner meets: small ones, ones the clip scales, zero, with and
  // without L2 on a masked subset, and a non-finite one that must skip the step.
  const sizes = [1, 7, 1134];
  it.each(sizes)('steps %i parameters bit for bit as the TypeScript Adam, through clipped, L2 and skipped steps', (size) => {
    addon.select(isa);
    const rng = new Rng(size);
    const mask = Uint8Array.from({ length: size }, (_, i) => (i % 3 === 0 ? 0 : 1));
    for (const l2 of [0, 1e-4]) {
      const config = { ...defaultOptimiserConfig, l2, clipNorm: 10 };
      const js = createOptimiser(config, size, mask);
      const native = createOptimiser(config, size, mask, { adam: addon.exactAdam });
      const paramsJs = normals(rng, size);
      const paramsNative = paramsJs.slice();
      const outcomes = new Set<string>();
      for (let step = 0; step < 300; step++) {
        const scale = step % 7 === 0 ? 50 : step % 11 === 0 ? 0 : 0.3;
        const grad = normals(rng, size).map((g) => g * scale);
        if (step === 150) grad[size - 1] = Number.NaN;
        const outcome = js.step(paramsJs, grad.slice());
        expect(native.step(paramsNative, grad.slice())).toBe(outcome);
        outcomes.add(outcome);
        for (let i = 0; i < size; i++) if (!Object.is(paramsNative[i], paramsJs[i])) throw new Error(`step ${step}, parameter ${i}: ${paramsNative[i]} != ${paramsJs[i]}`);
      }
      expect(native.getState()).toEqual(js.getState());
      expect(outcomes).toEqual(new Set(['applied', 'clipped', 'skipped_non_finite']));
    }
  });
});
