import { describe, expect, it } from 'vitest';
import { PrequentialMetrics, macroF1, prequentialMetricsStateSchema } from '../../src/engine/metrics.js';

// Six 3-class predictions [down, flat, up], scored by hand below.
const HAND_STREAM: Array<{ probs: number[]; label: number }> = [
  { probs: [0.7, 0.2, 0.1], label: 0 }, // predicts 0, hit.  -ln .7 = 0.356675  Brier .09+.04+.01 = 0.14
  { probs: [0.2, 0.5, 0.3], label: 2 }, // predicts 1, miss. -ln .3 = 1.203973  Brier .04+.25+.49 = 0.78
  { probs: [0.1, 0.1, 0.8], label: 2 }, // predicts 2, hit.  -ln .8 = 0.223144  Brier .01+.01+.04 = 0.06
  { probs: [0.4, 0.4, 0.2], label: 1 }, // tie 0/1 -> 0, miss. -ln .4 = 0.916291  Brier .16+.36+.04 = 0.56
  { probs: [0.0, 0.7, 0.3], label: 0 }, // predicts 1, miss. p clipped to 1e-12: 27.631021  Brier 1+.49+.09 = 1.58
  { probs: [0.3, 0.6, 0.1], label: 1 }, // predicts 1, hit.  -ln .6 = 0.510826  Brier .09+.16+.01 = 0.26
];
const HAND_LOG_LOSS = [0.356675, 1.203973, 0.223144, 0.916291, 27.631021, 0.510826];
const HAND_BRIER = [0.14, 0.78, 0.06, 0.56, 1.58, 0.26];
const HAND_HITS = [1, 0, 1, 0, 0, 1];

const mean = (values: number[]): number => values.reduce((a, b) => a + b, 0) / values.length;

/** Rolling sums are added up from buckets in one order, so a restored copy may differ in the last bits. */
function expectSameRolling(actual: PrequentialMetrics, expected: PrequentialMetrics): void {
  const want = expected.rolling();
  actual.rolling().forEach((got, i) => {
    expect(got.window).toBe(want[i].window);
    expect(got.n).toBe(want[i].n);
    expect(got.accuracy).toBe(want[i].accuracy);
    expect(got.logLoss).toBeCloseTo(want[i].logLoss!, 12);
    expect(got.brier).toBeCloseTo(want[i].brier!, 12);
  });
}

function recordAll(metrics: PrequentialMetrics, stream: Array<{ probs: number[]; label: number }>): void {
  for (const { probs, label } of stream) metrics.record(probs, 0, label);
}

/** Deterministic uniform numbers in [0, 1) (mulberry32). */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('PrequentialMetrics on a hand-scored stream', () => {
  it('matches accuracy, macro-F1, log-loss, Brier and the confusion matrix worked out by hand', () => {
    const metrics = new PrequentialMetrics(3);
    recordAll(metrics, HAND_STREAM);
    const summary = metrics.summary();

    expect(summary.n).toBe(6);
    // Confusion [true][predicted]: true 0 -> predicted 0 (#1), 1 (#5); true 1 -> 0 (#4), 1 (#6);
    // true 2 -> 1 (#2), 2 (#3).
    expect(summary.confusion).toEqual([
      [1, 1, 0],
      [1, 1, 0],
      [0, 1, 1],
    ]);
    expect(summary.accuracy).toBeCloseTo(3 / 6, 12);
    // F1 = 2TP / (actual + predicted): class 0: 2/(2+2) = 0.5; class 1: 2/(2+3) = 0.4;
    // class 2: 2/(2+1) = 2/3. Mean = 0.522222.
    expect(summary.macroF1).toBeCloseTo((0.5 + 0.4 + 2 / 3) / 3, 12);
    // (0.356675 + 1.203973 + 0.223144 + 0.916291 + 27.631021 + 0.510826) / 6 = 5.140322
    expect(summary.logLoss).toBeCloseTo(5.140322, 5);
    // (0.14 + 0.78 + 0.06 + 0.56 + 1.58 + 0.26) / 6 = 0.563333
    expect(summary.brier).toBeCloseTo(0.563333, 5);
  });

  it('reads probabilities at an offset inside a shared buffer', () => {
    const shared = new Float64Array(HAND_STREAM.length * 5);
    const direct = new PrequentialMetrics(3);
    const offset = new PrequentialMetrics(3);
    HAND_STREAM.forEach(({ probs, label }, i) => {
      shared.set(probs, i * 5 + 2);
      direct.record(probs, 0, label);
      offset.record(shared, i * 5 + 2, label);
    });
    expect(offset.summary()).toEqual(direct.summary());
  });

  it('leaves out of macro-F1 a class never seen and never predicted', () => {
    const metrics = new PrequentialMetrics(3);
    metrics.record([0.6, 0.1, 0.3], 0, 0); // hit on class 0
    metrics.record([0.6, 0.1, 0.3], 0, 2); // class 2 predicted as 0
    // class 0: 2·1/(1+2) = 2/3; class 2: 0/(1+0) = 0; class 1 excluded, not counted as 0 or 1.
    expect(metrics.summary().macroF1).toBeCloseTo(1 / 3, 12);
    expect(
      macroF1([
        [0, 0],
        [0, 0],
      ]),
    ).toBeNull();
  });

  it('reports null metrics before the first score, and rejects a label outside the classes', () => {
    const metrics = new PrequentialMetrics(2);
    expect(metrics.summary()).toEqual({
      n: 0,
      accuracy: null,
      macroF1: null,
      logLoss: null,
      brier: null,
      confusion: [
        [0, 0],
        [0, 0],
      ],
    });
    expect(metrics.rolling().map((r) => r.accuracy)).toEqual([null, null]);
    expect(() => metrics.record([0.5, 0.5], 0, 2)).toThrow(/label must be an integer in \[0, 2\), got 2/);
    expect(() => metrics.record([0.5, 0.5], 0, 0.5)).toThrow(/got 0.5/);
  });
});

describe('PrequentialMetrics rolling windows', () => {
  it('covers the last 2 and last 4 scores of the hand stream', () => {
    const metrics = new PrequentialMetrics(3, [2, 4]);
    metrics.record(HAND_STREAM[0].probs, 0, HAND_STREAM[0].label);
    expect(metrics.rolling()[1]).toMatchObject({ window: 4, n: 1, accuracy: 1 });
    recordAll(metrics, HAND_STREAM.slice(1));
    const [lastTwo, lastFour] = metrics.rolling();
    expect(lastTwo.n).toBe(2);
    expect(lastTwo.accuracy).toBeCloseTo(mean(HAND_HITS.slice(4)), 12);
    expect(lastTwo.logLoss).toBeCloseTo(mean(HAND_LOG_LOSS.slice(4)), 5);
    expect(lastTwo.brier).toBeCloseTo(mean(HAND_BRIER.slice(4)), 9);
    expect(lastFour.n).toBe(4);
    expect(lastFour.accuracy).toBeCloseTo(mean(HAND_HITS.slice(2)), 12);
    expect(lastFour.logLoss).toBeCloseTo(mean(HAND_LOG_LOSS.slice(2)), 5);
    expect(lastFour.brier).toBeCloseTo(mean(HAND_BRIER.slice(2)), 9);
  });

  it('agrees with a direct recomputation over a long random stream', () => {
    const random = seededRandom(7);
    const windows = [1000, 10_000];
    const metrics = new PrequentialMetrics(2, windows);
    const hits: number[] = [];
    const logLosses: number[] = [];
    const briers: number[] = [];
    const probs = new Float64Array(2);
    for (let i = 0; i < 25_000; i++) {
      probs[1] = random();
      probs[0] = 1 - probs[1];
      const label = random() < 0.55 ? 1 : 0;
      metrics.record(probs, 0, label);
      const predicted = probs[1] > probs[0] ? 1 : 0;
      hits.push(predicted === label ? 1 : 0);
      logLosses.push(-Math.log(Math.max(1e-12, probs[label])));
      briers.push(2 * (1 - probs[label]) ** 2);
      // Early indices fall while the buckets are still being allocated (they grow as they fill).
      if (i === 40 || i === 200 || i === 700 || i === 4321 || i === 24_999 || i === 24_990) {
        metrics.rolling().forEach((rolling, w) => {
          // Buckets of ceil(W / 64) scores: the window covers between W - bucket + 1 and W of the newest.
          const bucket = Math.ceil(windows[w] / 64);
          expect(rolling.n).toBeLessThanOrEqual(Math.min(windows[w], hits.length));
          expect(rolling.n).toBeGreaterThan(Math.min(windows[w], hits.length) - bucket);
          const from = hits.length - rolling.n;
          expect(rolling.accuracy).toBeCloseTo(mean(hits.slice(from)), 12);
          expect(rolling.logLoss).toBeCloseTo(mean(logLosses.slice(from)), 9);
          expect(rolling.brier).toBeCloseTo(mean(briers.slice(from)), 9);
          expect(metrics.rollingAccuracy(w)).toBeCloseTo(mean(hits.slice(from)), 12);
        });
      }
    }
    expect(metrics.summary().accuracy).toBeCloseTo(mean(hits), 12);
    expect(metrics.meanLogLoss()).toBeCloseTo(mean(logLosses), 9);
  });
});

describe('PrequentialMetrics state', () => {
  it('restored while its buckets are still growing, it scores bit for bit as one never saved', () => {
    const random = seededRandom(11);
    const scores = Array.from({ length: 3000 }, () => {
      const up = random();
      return { probs: Float64Array.of(1 - up, up), label: random() < 0.5 ? 1 : 0 };
    });
    for (const savedAt of [3, 100, 900, 2500]) {
      const uninterrupted = new PrequentialMetrics(2, [1000, 10_000]);
      const first = new PrequentialMetrics(2, [1000, 10_000]);
      for (const { probs, label } of scores.slice(0, savedAt)) {
        uninterrupted.record(probs, 0, label);
        first.record(probs, 0, label);
      }
      const restored = new PrequentialMetrics(2, [1000, 10_000]);
      restored.setState(prequentialMetricsStateSchema.parse(JSON.parse(JSON.stringify(first.getState()))));
      for (const { probs, label } of scores.slice(savedAt)) {
        uninterrupted.record(probs, 0, label);
        restored.record(probs, 0, label);
        expect(restored.rolling()).toEqual(uninterrupted.rolling());
      }
      expect(restored.getState()).toEqual(uninterrupted.getState());
    }
  });

  it('round-trips through JSON and keeps scoring identically afterwards', () => {
    const original = new PrequentialMetrics(3, [2, 4]);
    recordAll(original, HAND_STREAM);
    const parsed = prequentialMetricsStateSchema.parse(JSON.parse(JSON.stringify(original.getState())));
    const restored = new PrequentialMetrics(3, [2, 4]);
    restored.setState(parsed);
    expect(restored.summary()).toEqual(original.summary());
    expectSameRolling(restored, original);

    const more = HAND_STREAM.slice(0, 3);
    recordAll(original, more);
    recordAll(restored, more);
    expect(restored.summary()).toEqual(original.summary());
    expectSameRolling(restored, original);
  });

  it('starts a window the checkpoint has no buckets for afresh, and keeps the overall figures', () => {
    const original = new PrequentialMetrics(3, [4]);
    recordAll(original, HAND_STREAM);
    const restored = new PrequentialMetrics(3, [4, 10]);
    restored.setState(original.getState());
    const [lastFour, lastTen] = restored.rolling();
    expect(lastFour.accuracy).toBeCloseTo(mean(HAND_HITS.slice(2)), 12);
    expect(lastTen.n).toBe(0);
    expect(restored.summary()).toEqual(original.summary());
  });

  it('reads a version-1 checkpoint (every recent score) into its buckets', () => {
    const original = new PrequentialMetrics(3, [2, 4]);
    recordAll(original, HAND_STREAM);
    const summary = original.summary();
    const version1 = prequentialMetricsStateSchema.parse({
      version: 1,
      classes: 3,
      windows: [4],
      n: HAND_STREAM.length,
      correct: HAND_HITS.reduce((a, b) => a + b, 0),
      logLossSum: HAND_LOG_LOSS.reduce((a, b) => a + b, 0),
      brierSum: HAND_BRIER.reduce((a, b) => a + b, 0),
      confusion: summary.confusion.flat(),
      recentCorrect: HAND_HITS.slice(2),
      recentLogLoss: HAND_LOG_LOSS.slice(2),
      recentBrier: HAND_BRIER.slice(2),
    });
    const restored = new PrequentialMetrics(3, [2, 4]);
    restored.setState(version1);
    expect(restored.summary().n).toBe(summary.n);
    // The hand log-losses above are rounded to 6 decimals.
    restored.rolling().forEach((got, i) => {
      const want = original.rolling()[i];
      expect([got.window, got.n, got.accuracy]).toEqual([want.window, want.n, want.accuracy]);
      expect(got.logLoss).toBeCloseTo(want.logLoss!, 5);
      expect(got.brier).toBeCloseTo(want.brier!, 9);
    });
  });

  it('keeps a checkpoint small whatever the window: 64 buckets, not every score', () => {
    const metrics = new PrequentialMetrics(2, [1000, 10_000]);
    const probs = Float64Array.of(0.4, 0.6);
    for (let i = 0; i < 50_000; i++) metrics.record(probs, 0, i % 3 === 0 ? 0 : 1);
    const bytes = JSON.stringify(metrics.getState()).length;
    expect(bytes).toBeLessThan(12_000);
    const restored = new PrequentialMetrics(2, [1000, 10_000]);
    restored.setState(prequentialMetricsStateSchema.parse(JSON.parse(JSON.stringify(metrics.getState()))));
    expectSameRolling(restored, metrics);
  });

  it('refuses a state for another number of classes, naming the field', () => {
    const binary = new PrequentialMetrics(2);
    expect(() => binary.setState(new PrequentialMetrics(3).getState())).toThrow(/state.classes: expected 2, got 3/);
    const corrupt = { ...new PrequentialMetrics(2).getState(), logLossSum: 'x' };
    const result = prequentialMetricsStateSchema.safeParse(corrupt);
    expect(result.success).toBe(false);
    expect(result.error?.issues[0].path).toEqual(['logLossSum']);
  });
});
