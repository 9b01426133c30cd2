// RTRL must follow the exact gradient: over T >= 100 steps with frozen parameters its summed
// gradient equals full backpropagation through time (an independent reverse-mode
// implementation, test/model/reference-bptt.ts), and both agree with central finite
// differences. TBPTT with a window covering the whole sequence must equal them too.
// The RTRL cases run on the TypeScript kernel and on the native addon alike.
import { describe, expect, it } from 'vitest';
import { RtrlLearner } from '../../src/model/rtrl.js';
import { findNativeAddon, loadNativeAddon } from '../../src/model/kernels/native.js';
import { JS_KERNEL, nativeKernelOf, type RtrlKernel } from '../../src/model/kernels/select.js';
import { TbpttLearner } from '../../src/model/tbptt.js';
import { defaultOptimiserConfig } from '../../src/model/optimiser.js';
import type { ElmanLayout } from '../../src/model/network.js';
import type { RecurrentConfig } from '../../src/model/recurrent-config.js';
import type { PendingMode } from '../../src/model/targets.js';
import type { OnlineLearner } from '../../src/model/learner.js';
import { Rng } from '../../src/model/rng.js';
import { GradientRecorder } from './gradient-recorder.js';
import { finiteDifferenceGradient, referenceGradient, referenceTruncatedGradient, relativeError, runBatched, type Sequence } from './reference-bptt.js';

function makeSequence(length: number, d: number, classes: number, seed: number, runLength = 1): Sequence {
  const rng = new Rng(seed);
  const inputs = Array.from({ length }, () => Array.from({ length: d }, () => rng.normal()));
  const labels: number[] = [];
  while (labels.length < length) {
    const label = Math.floor(rng.uniform() * classes);
    const run = 1 + Math.floor(rng.uniform() * runLength);
    for (let i = 0; i < run && labels.length < length; i++) labels.push(label);
  }
  return { inputs, labels };
}

function config(n: number, d: number, classes: number, pending: PendingMode, beta = 0): RecurrentConfig {
  return {
    hidden: n,
    inputs: d,
    classes,
    outputScaleBeta: beta,
    recurrentGain: 1.2,
    inputSkip: true,
    seed: 7,
    optimiser: defaultOptimiserConfig,
    pending,
    batchReduction: 'sum',
  };
}

/**
 * Initial parameters with a nonzero input skip Q (it starts at zero, which would leave its
 * share of the logits untested), and the learner set to them.
 */
function withSkipWeights<L extends { readonly params: Float64Array; readonly layout: ElmanLayout }>(learner: L, seed = 13): L {
  const rng = new Rng(seed);
  for (let i = learner.layout.qOffset; i < learner.params.length; i++) learner.params[i] = 0.5 * rng.normal();
  return learner;
}

/** Feeds the sequence, resolving each label as soon as its tick is predicted. */
function runImmediate(learner: OnlineLearner, seq: Sequence): void {
  const probs = new Float64Array(learner.classes);
  seq.inputs.forEach((x, t) => {
    learner.predict(Float64Array.from(x), probs);
    learner.resolve(seq.labels[t], 1);
  });
}

/** Feeds the sequence, resolving each label `lag` ticks after its prediction (horizon:k style). */
function runLagged(learner: OnlineLearner, seq: Sequence, lag: number): void {
  const probs = new Float64Array(learner.classes);
  seq.inputs.forEach((x, t) => {
    if (t >= lag) learner.resolve(seq.labels[t - lag], 1);
    learner.predict(Float64Array.from(x), probs);
  });
  for (let t = Math.max(0, seq.inputs.length - lag); t < seq.inputs.length; t++) learner.resolve(seq.labels[t], 1);
}

/** Both kernels, always: the native one must be built here (npm ci builds it). */
function kernels(): RtrlKernel[] {
  const loaded = loadNativeAddon(findNativeAddon());
  if (!loaded.ok) throw new Error(`the native addon must be built for this test: ${loaded.reason}`);
  return [JS_KERNEL, nativeKernelOf(loaded.addon)];
}

describe.each(kernels().map((kernel) => [kernel.name, kernel] as const))('RTRL gradient is exact (%s kernel)', (_name, kernel) => {
  const n = 6;
  const d = 3;
  const classes = 3;
  const seq = makeSequence(150, d, classes, 11);

  it('equals full BPTT over 150 steps and both match central finite differences', () => {
    const cfg = config(n, d, classes, { kind: 'fifo', capacity: 1 });
    const probe = withSkipWeights(new RtrlLearner(cfg));
    const theta = Float64Array.from(probe.params);
    const recorder = new GradientRecorder(theta.length);
    const rtrl = withSkipWeights(new RtrlLearner(cfg, recorder, 'rtrl', kernel));
    expect(Array.from(rtrl.params)).toEqual(Array.from(theta));
    expect(rtrl.kernel).toBe(kernel);
    runImmediate(rtrl, seq);
    expect(recorder.steps).toBe(150);

    const shape = { n, d, classes, scale: 1, skip: true };
    const bptt = referenceGradient(theta, shape, seq);
    const fd = finiteDifferenceGradient(theta, shape, seq);
    expect(relativeError(recorder.total, bptt)).toBeLessThan(1e-9);
    expect(relativeError(bptt, fd)).toBeLessThan(1e-6);
    expect(relativeError(recorder.total, fd)).toBeLessThan(1e-6);
    // The gradient is not trivially small: the comparison means something.
    expect(Math.hypot(...bptt)).toBeGreaterThan(1);
  });

  it('stays exact when labels arrive late: batched runs (next-move) and a lag-4 FIFO (horizon:4)', () => {
    const runs = makeSequence(160, d, 2, 5, 6);
    const batchCfg = config(8, d, 2, { kind: 'batch', maxPending: 1000 }, 0.5);
    const theta = Float64Array.from(withSkipWeights(new RtrlLearner(batchCfg)).params);
    const shape = { n: 8, d, classes: 2, scale: Math.pow(8, -0.5), skip: true };
    const expected = referenceGradient(theta, shape, runs);

    const batchRecorder = new GradientRecorder(theta.length);
    runBatched(withSkipWeights(new RtrlLearner(batchCfg, batchRecorder, 'rtrl', kernel)), runs);
    expect(relativeError(batchRecorder.total, expected)).toBeLessThan(1e-9);

    const fifoCfg = { ...batchCfg, pending: { kind: 'fifo', capacity: 4 } as const };
    const fifoRecorder = new GradientRecorder(theta.length);
    runLagged(withSkipWeights(new RtrlLearner(fifoCfg, fifoRecorder, 'rtrl', kernel)), runs, 4);
    expect(fifoRecorder.steps).toBe(160);
    expect(relativeError(fifoRecorder.total, expected)).toBeLessThan(1e-9);
  });
});

describe('TBPTT gradient', () => {
  const n = 6;
  const d = 3;
  const classes = 3;
  const seq = makeSequence(120, d, classes, 23);
  const cfg = config(n, d, classes, { kind: 'fifo', capacity: 1 });
  const theta = Float64Array.from(withSkipWeights(new RtrlLearner(cfg)).params);
  const shape = { n, d, classes, scale: 1, skip: true };
  const expected = referenceGradient(theta, shape, seq);

  it('equals full BPTT and RTRL when the window covers the whole sequence', () => {
    const recorder = new GradientRecorder(theta.length);
    const tbptt = withSkipWeights(new TbpttLearner(cfg, 120, recorder));
    expect(Array.from(tbptt.params)).toEqual(Array.from(theta));
    runImmediate(tbptt, seq);
    expect(relativeError(recorder.total, expected)).toBeLessThan(1e-9);

    const batchCfg = config(n, d, 2, { kind: 'batch', maxPending: 64 });
    const runs = makeSequence(130, d, 2, 3, 5);
    const thetaBatch = Float64Array.from(withSkipWeights(new RtrlLearner(batchCfg)).params);
    const batchRecorder = new GradientRecorder(thetaBatch.length);
    runBatched(withSkipWeights(new TbpttLearner(batchCfg, 200, batchRecorder)), runs);
    expect(relativeError(batchRecorder.total, referenceGradient(thetaBatch, { n, d, classes: 2, scale: 1, skip: true }, runs))).toBeLessThan(1e-9);
  });

  it('equals truncated BPTT when a still book leaves up to 60 ticks pending (its rings and history grow)', () => {
    const batchCfg = config(n, d, 2, { kind: 'batch', maxPending: 1000 });
    const runs = makeSequence(400, d, 2, 17, 60);
    const thetaBatch = Float64Array.from(withSkipWeights(new RtrlLearner(batchCfg)).params);
    const shapeBatch = { n, d, classes: 2, scale: 1, skip: true };
    for (const truncation of [3, 10]) {
      const recorder = new GradientRecorder(thetaBatch.length);
      runBatched(withSkipWeights(new TbpttLearner(batchCfg, truncation, recorder)), runs);
      expect(relativeError(recorder.total, referenceTruncatedGradient(thetaBatch, shapeBatch, runs, truncation))).toBeLessThan(1e-9);
    }
  });

  it('is biased when truncated: tau = 3 differs from the true gradient', () => {
    const recorder = new GradientRecorder(theta.length);
    runImmediate(withSkipWeights(new TbpttLearner(cfg, 3, recorder)), seq);
    expect(relativeError(recorder.total, expected)).toBeGreaterThan(1e-3);
    // The output layer's gradient does not depend on truncation.
    const outputStart = n * n + n * d + n;
    expect(relativeError(recorder.total.subarray(outputStart), expected.subarray(outputStart))).toBeLessThan(1e-12);
  });
});
