// Non-finite inputs and exploding gradients never corrupt a learner's state.
import { describe, expect, it } from 'vitest';
import { createLearners, defaultLearnerSettings, parseModelList } from '../../src/model/factory.js';
import { prepareGradient, createOptimiser, defaultOptimiserConfig } from '../../src/model/optimiser.js';
import { RtrlLearner } from '../../src/model/rtrl.js';
import { TbpttLearner } from '../../src/model/tbptt.js';
import { Rng } from '../../src/model/rng.js';
import { parseTarget } from '../../src/model/targets.js';
import { TemperatureScaled } from '../../src/model/temperature.js';

function everyFinite(values: ArrayLike<number>): boolean {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return false;
  return true;
}

describe('robustness', () => {
  it('NaN and infinite inputs are counted, replaced, and never reach parameters or predictions', () => {
    const target = parseTarget('next-move');
    const learners = createLearners(parseModelList('rtrl,tbptt:5,logistic'), { ...defaultLearnerSettings, hidden: 6 }, 3, target);
    const rng = new Rng(9);
    const probs = new Float64Array(2);
    let label = 0;
    for (let t = 0; t < 300; t++) {
      const x = Float64Array.of(rng.normal(), t % 7 === 0 ? Number.NaN : rng.normal(), t % 11 === 0 ? Number.POSITIVE_INFINITY : rng.normal());
      for (const learner of learners) {
        learner.predict(x, probs);
        expect(everyFinite(probs)).toBe(true);
        if (t % 3 === 2) learner.resolve(label, 3);
      }
      if (t % 3 === 2) label = 1 - label;
    }
    for (const learner of learners) {
      expect(learner.stats.nonFiniteInputs).toBe(43 + 28);
      expect(learner.stats.updates).toBe(100);
      const trained = learner instanceof TemperatureScaled ? learner.inner : learner;
      expect(everyFinite((trained as RtrlLearner).params)).toBe(true);
    }
  });

  it('exploding gradients are clipped to the global norm and parameters stay finite', () => {
    const learner = new RtrlLearner({
      hidden: 8,
      inputs: 2,
      classes: 2,
      outputScaleBeta: 0,
      recurrentGain: 3,
      inputSkip: true,
      seed: 3,
      optimiser: { ...defaultOptimiserConfig, kind: 'sgd', learningRate: 0.5, clipNorm: 1 },
      pending: { kind: 'fifo', capacity: 1 },
      batchReduction: 'mean',
    });
    const probs = new Float64Array(2);
    for (let t = 0; t < 500; t++) {
      learner.predict(Float64Array.of(t % 2 ? 1e150 : -1e150, 1e-3), probs);
      learner.resolve(t % 2, 1);
      expect(everyFinite(learner.params)).toBe(true);
      expect(everyFinite(learner.hidden)).toBe(true);
      expect(everyFinite(learner.sensitivity)).toBe(true);
    }
    expect(learner.stats.clipped).toBeGreaterThan(0);
  });

  it('a non-finite gradient skips the update and leaves parameters untouched', () => {
    const params = Float64Array.of(1, 2, 3);
    const optimiser = createOptimiser(defaultOptimiserConfig, 3, new Uint8Array(3));
    expect(optimiser.step(params, Float64Array.of(0.1, Number.NaN, 0.1))).toBe('skipped_non_finite');
    expect(optimiser.step(params, Float64Array.of(Number.NEGATIVE_INFINITY, 0, 0))).toBe('skipped_non_finite');
    expect(Array.from(params)).toEqual([1, 2, 3]);
    expect(optimiser.steps).toBe(0);
    // A huge but finite gradient is clipped, not mistaken for an overflow.
    const huge = Float64Array.of(1e300, 1e300, 0);
    expect(prepareGradient(params, huge, 0, new Uint8Array(3), 1)).toBe('clipped');
    expect(huge[0]).toBeCloseTo(Math.SQRT1_2, 12);
  });

  it('a corrupted parameter resets the recurrent state instead of spreading NaN; the update is skipped', () => {
    const cfg = {
      hidden: 4,
      inputs: 2,
      classes: 2,
      outputScaleBeta: 0,
      recurrentGain: 1,
      inputSkip: true,
      seed: 1,
      optimiser: defaultOptimiserConfig,
      pending: { kind: 'fifo', capacity: 1 } as const,
      batchReduction: 'mean' as const,
    };
    for (const learner of [new RtrlLearner(cfg), new TbpttLearner(cfg, 3)]) {
      const probs = new Float64Array(2);
      learner.params[0] = Number.NaN;
      learner.predict(Float64Array.of(1, 1), probs);
      learner.resolve(1, 1);
      expect(learner.stats.stateResets).toBe(1);
      expect(learner.stats.updates + learner.stats.skippedNonFinite).toBe(1);
    }
  });
});
