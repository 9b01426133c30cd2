// `tick` batch reduction: every resolved tick weighs the same, as in the prequential scores.
// Each batch's update is the exact summed gradient divided by the running mean batch size, so
// multiplying every recorded step back by that mean (computed here independently, as the plain
// mean of the run lengths so far) must give the full-BPTT gradient of test/model/reference-bptt.ts.
import { describe, expect, it } from 'vitest';
import { LogisticLearner } from '../../src/model/baselines.js';
import { defaultOptimiserConfig, type Optimiser, type StepOutcome } from '../../src/model/optimiser.js';
import type { RecurrentConfig } from '../../src/model/recurrent-config.js';
import { Rng } from '../../src/model/rng.js';
import { RtrlLearner } from '../../src/model/rtrl.js';
import { BatchSizeAverage } from '../../src/model/targets.js';
import { TbpttLearner } from '../../src/model/tbptt.js';
import { referenceGradient, relativeError, runBatched, type Sequence } from './reference-bptt.js';

/** Frozen parameters; keeps every step's gradient. */
class StepRecorder implements Optimiser {
  readonly gradients: Float64Array[] = [];
  get steps(): number {
    return this.gradients.length;
  }
  step(_params: Float64Array, grad: Float64Array): StepOutcome {
    this.gradients.push(Float64Array.from(grad));
    return 'applied';
  }
  getState(): Float64Array {
    return new Float64Array(0);
  }
  setState(): void {}
}

/** Runs of one label with lengths 1..maxRun, alternating labels so that each run is one batch. */
function alternatingRuns(length: number, d: number, maxRun: number, seed: number): Sequence & { runs: number[] } {
  const rng = new Rng(seed);
  const inputs = Array.from({ length }, () => Array.from({ length: d }, () => rng.normal()));
  const labels: number[] = [];
  const runs: number[] = [];
  let label = 0;
  while (labels.length < length) {
    const run = Math.min(1 + Math.floor(rng.uniform() * maxRun), length - labels.length);
    for (let i = 0; i < run; i++) labels.push(label);
    runs.push(run);
    label = 1 - label;
  }
  return { inputs, labels, runs };
}

function unweighted(recorder: StepRecorder, runs: readonly number[]): Float64Array {
  expect(recorder.steps).toBe(runs.length);
  const total = new Float64Array(recorder.gradients[0].length);
  let ticks = 0;
  recorder.gradients.forEach((grad, k) => {
    ticks += runs[k];
    const meanRun = ticks / (k + 1);
    for (let i = 0; i < total.length; i++) total[i] += grad[i] * meanRun;
  });
  return total;
}

const n = 6;
const d = 3;
const seq = alternatingRuns(150, d, 7, 13);

function recurrentConfig(): RecurrentConfig {
  return {
    hidden: n,
    inputs: d,
    classes: 2,
    outputScaleBeta: 0,
    recurrentGain: 1.2,
    inputSkip: true,
    seed: 5,
    optimiser: defaultOptimiserConfig,
    pending: { kind: 'batch', maxPending: 1000 },
    batchReduction: 'tick',
  };
}

describe('tick-weighted batch updates', () => {
  const cfg = recurrentConfig();
  const theta = Float64Array.from(new RtrlLearner(cfg).params);
  const expected = referenceGradient(theta, { n, d, classes: 2, scale: 1, skip: true }, seq);

  it('RTRL: steps scaled back by the mean run length add up to the exact BPTT gradient', () => {
    const recorder = new StepRecorder();
    runBatched(new RtrlLearner(cfg, recorder), seq);
    expect(relativeError(unweighted(recorder, seq.runs), expected)).toBeLessThan(1e-9);
    // The runs differ in length, so per-tick weights are not per-run weights: a plain sum of
    // the steps is far from the gradient.
    const plain = new Float64Array(expected.length);
    for (const grad of recorder.gradients) for (let i = 0; i < plain.length; i++) plain[i] += grad[i];
    expect(relativeError(plain, expected)).toBeGreaterThan(0.1);
  });

  it('TBPTT with a window covering the sequence: the same', () => {
    const recorder = new StepRecorder();
    runBatched(new TbpttLearner(cfg, 200, recorder), seq);
    expect(relativeError(unweighted(recorder, seq.runs), expected)).toBeLessThan(1e-9);
  });

  it('logistic: the same against sum_t (p_t - e_y) x_t computed directly', () => {
    const recorder = new StepRecorder();
    const learner = new LogisticLearner(
      { inputs: d, classes: 2, optimiser: defaultOptimiserConfig, pending: { kind: 'batch', maxPending: 1000 }, batchReduction: 'tick' },
      recorder,
    );
    runBatched(learner, seq);
    // Frozen at zero, the model predicts 1/2 for both classes on every tick.
    const direct = new Float64Array(2 * d + 2);
    seq.inputs.forEach((x, t) => {
      for (let c = 0; c < 2; c++) {
        const error = 0.5 - (c === seq.labels[t] ? 1 : 0);
        for (let j = 0; j < d; j++) direct[c * d + j] += error * x[j];
        direct[2 * d + c] += error;
      }
    });
    expect(relativeError(unweighted(recorder, seq.runs), direct)).toBeLessThan(1e-12);
  });
});

describe('BatchSizeAverage', () => {
  it('is the exact mean for the first `window` batches, then an exponential average', () => {
    const sizes = new BatchSizeAverage(4);
    expect([2, 4, 6, 8].map((count) => sizes.add(count))).toEqual([2, 3, 4, 5]);
    expect(sizes.add(13)).toBeCloseTo(5 + (13 - 5) / 4, 12);
    expect(sizes.state[0]).toBe(5);
  });

  it('scales a batch by 1 (sum), 1/count (mean) or 1/running mean (tick)', () => {
    const sizes = new BatchSizeAverage();
    expect(sizes.scaleFor('sum', 5)).toBe(1);
    expect(sizes.scaleFor('mean', 5)).toBeCloseTo(0.2, 15);
    expect(sizes.scaleFor('tick', 5)).toBeCloseTo(0.2, 15);
    expect(sizes.scaleFor('tick', 1)).toBeCloseTo(1 / 3, 15);
    expect(() => new BatchSizeAverage(0)).toThrow(/window: must be a positive integer, got 0/);
  });
});
