import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { BookSnapshot } from '../../src/domain/types.js';
import { FeatureExtractor } from '../../src/features/extract.js';
import { OnlineNormaliser } from '../../src/features/normaliser.js';

/**
 * The same weighting written out non-recursively: with w_k = max(1/k, alpha), sample k of n
 * carries weight w_k * prod_{j=k+1..n} (1 - w_j) (these sum to 1 because w_1 = 1); the mean is
 * the weighted sum and the variance the weighted mean square deviation from it.
 */
function directWeightedStats(samples: readonly number[], alpha: number): { mean: number; variance: number } {
  const n = samples.length;
  const weights = samples.map((_, k) => {
    let weight = Math.max(1 / (k + 1), alpha);
    for (let j = k + 1; j < n; j++) weight *= 1 - Math.max(1 / (j + 1), alpha);
    return weight;
  });
  const mean = samples.reduce((sum, x, k) => sum + weights[k] * x, 0);
  const variance = samples.reduce((sum, x, k) => sum + weights[k] * (x - mean) ** 2, 0);
  return { mean, variance };
}

/** Deterministic pseudo-random samples (xorshift32) so the expected numbers never change. */
function samplesFrom(seed: number, count: number, scale: number, offset: number): number[] {
  let s = seed >>> 0;
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out.push(offset + scale * (s / 2 ** 32 - 0.5));
  }
  return out;
}

function expectRelativelyClose(actual: number, expected: number, tolerance: number): void {
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(tolerance * Math.max(1, Math.abs(expected)));
}

describe('OnlineNormaliser statistics', () => {
  it('alpha is the weight that halves after halfLife ticks', () => {
    const normaliser = new OnlineNormaliser(1, { halfLife: 1000 });
    expect((1 - normaliser.alpha) ** 1000).toBeCloseTo(0.5, 12);
  });

  it('mean and variance match the non-recursive weighted sums within 1e-12, through and past the warm-up', () => {
    // halfLife 10: alpha = 0.067, so 1/n falls below alpha at n = 15 and 400 ticks are deep in the EW regime.
    const columns = [samplesFrom(7, 400, 2, 3), samplesFrom(11, 400, 1e-3, -5e-3), samplesFrom(13, 400, 50, 100)];
    const normaliser = new OnlineNormaliser(3, { halfLife: 10 });
    const input = new Float64Array(3);
    const out = new Float64Array(3);
    for (let t = 0; t < 400; t++) {
      for (let i = 0; i < 3; i++) input[i] = columns[i][t];
      normaliser.normalise(input, out);
      if (t === 5 || t === 14 || t === 15 || t === 100 || t === 399) {
        for (let i = 0; i < 3; i++) {
          const expected = directWeightedStats(columns[i].slice(0, t + 1), normaliser.alpha);
          expectRelativelyClose(normaliser.meanOf(i), expected.mean, 1e-12);
          expectRelativelyClose(normaliser.varianceOf(i), expected.variance, 1e-12);
          const z = (columns[i][t] - expected.mean) / Math.sqrt(expected.variance + normaliser.epsilon);
          expectRelativelyClose(out[i], Math.max(-5, Math.min(5, z)), 1e-9);
        }
      }
    }
  });

  it('during the warm-up the statistics are the plain mean and population variance, untouched by the zero start', () => {
    const samples = samplesFrom(3, 50, 4, 1000);
    const normaliser = new OnlineNormaliser(1); // halfLife 1000: 1/n > alpha for n < 1443
    const out = new Float64Array(1);
    for (const x of samples) normaliser.normalise(Float64Array.of(x), out);
    const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
    const variance = samples.reduce((a, x) => a + (x - mean) ** 2, 0) / samples.length;
    expectRelativelyClose(normaliser.meanOf(0), mean, 1e-12);
    expectRelativelyClose(normaliser.varianceOf(0), variance, 1e-12);
  });

  it('the first sample scores 0 and sets the mean exactly; the second scores +-1', () => {
    const normaliser = new OnlineNormaliser(2);
    const out = new Float64Array(2);
    normaliser.normalise(Float64Array.of(1234.5, -7), out);
    expect(Array.from(out)).toEqual([0, 0]);
    expect(normaliser.meanOf(0)).toBe(1234.5);
    expect(normaliser.varianceOf(0)).toBe(0);
    normaliser.normalise(Float64Array.of(1236.5, -9), out);
    // mean 1235.5, population variance 1: z = (1236.5 - 1235.5) / sqrt(1 + 1e-8)
    expect(out[0]).toBeCloseTo(1 / Math.sqrt(1 + 1e-8), 12);
    expect(out[1]).toBeCloseTo(-1 / Math.sqrt(1 + 1e-8), 12);
  });

  it('a constant element scores 0, not epsilon noise', () => {
    const normaliser = new OnlineNormaliser(1, { halfLife: 3 });
    const out = new Float64Array(1);
    for (let t = 0; t < 50; t++) {
      normaliser.normalise(Float64Array.of(0.1), out);
      expect(out[0]).toBe(0);
    }
  });
});

describe('OnlineNormaliser clip and warm-up', () => {
  it('clips an outlier to +-clip', () => {
    const normaliser = new OnlineNormaliser(1, { clip: 3 });
    const out = new Float64Array(1);
    for (const x of samplesFrom(5, 200, 1, 0)) normaliser.normalise(Float64Array.of(x), out);
    normaliser.normalise(Float64Array.of(1e6), out);
    expect(out[0]).toBe(3);
    normaliser.normalise(Float64Array.of(-1e6), out);
    expect(out[0]).toBe(-3);
    // The default clip is 5.
    const byDefault = new OnlineNormaliser(1);
    for (const x of samplesFrom(5, 200, 1, 0)) byDefault.normalise(Float64Array.of(x), out);
    byDefault.normalise(Float64Array.of(-1e6), out);
    expect(out[0]).toBe(-5);
  });

  it('is warm once `warmup` vectors have been normalised', () => {
    const normaliser = new OnlineNormaliser(2, { warmup: 3 });
    const out = new Float64Array(2);
    const seen: boolean[] = [normaliser.isWarm];
    for (let t = 0; t < 4; t++) {
      normaliser.normalise(Float64Array.of(t, -t), out);
      seen.push(normaliser.isWarm);
    }
    expect(seen).toEqual([false, false, false, true, true]);
    expect(normaliser.ticks).toBe(4);
    expect(new OnlineNormaliser(1).warmup).toBe(100);
  });

  it('rejects nonsensical options', () => {
    expect(() => new OnlineNormaliser(0)).toThrow(/dimension/);
    expect(() => new OnlineNormaliser(2, { halfLife: 0 })).toThrow(/halfLife/);
    expect(() => new OnlineNormaliser(2, { clip: -1 })).toThrow(/clip/);
    expect(() => new OnlineNormaliser(2, { warmup: 1.5 })).toThrow(/warmup/);
    expect(() => new OnlineNormaliser(2).normalise(new Float64Array(3), new Float64Array(2))).toThrow(/length 2/);
  });
});

describe('OnlineNormaliser non-finite input', () => {
  it('writes 0, leaves that element statistics alone, updates the others, and counts', () => {
    const normaliser = new OnlineNormaliser(3, { halfLife: 4 });
    const out = new Float64Array(3);
    normaliser.normalise(Float64Array.of(1, 2, 3), out);
    normaliser.normalise(Float64Array.of(2, 4, 5), out);
    const before = normaliser.getState();

    normaliser.normalise(Float64Array.of(Number.NaN, Number.POSITIVE_INFINITY, 7), out);
    expect(out[0]).toBe(0);
    expect(out[1]).toBe(0);
    expect(Number.isFinite(out[2]) && out[2] !== 0).toBe(true);
    expect(normaliser.nonFiniteCount).toBe(2);
    expect(normaliser.ticks).toBe(3);
    expect([normaliser.meanOf(0), normaliser.varianceOf(0)]).toEqual([1.5, 0.25]);
    expect([normaliser.meanOf(1), normaliser.varianceOf(1)]).toEqual([3, 1]);
    expect(normaliser.meanOf(2)).not.toBe(4);

    // The skipped elements continue as if the bad tick never happened: their next sample is
    // their third, weighted 1/3, exactly like a normaliser that never saw the bad values.
    const clean = new OnlineNormaliser(2, { halfLife: 4 });
    const cleanOut = new Float64Array(2);
    clean.normalise(Float64Array.of(1, 2), cleanOut);
    clean.normalise(Float64Array.of(2, 4), cleanOut);
    clean.normalise(Float64Array.of(6, -1), cleanOut);
    normaliser.normalise(Float64Array.of(6, -1, 7), out);
    expect([out[0], out[1]]).toEqual(Array.from(cleanOut));
    expect(before[3]).toBe(2);
  });

  it('a finite sample so large that its square overflows is skipped like a non-finite one', () => {
    const normaliser = new OnlineNormaliser(1);
    const out = new Float64Array(1);
    normaliser.normalise(Float64Array.of(-1e300), out);
    normaliser.normalise(Float64Array.of(1e300), out);
    expect(out[0]).toBe(0);
    expect(normaliser.nonFiniteCount).toBe(1);
    expect(normaliser.meanOf(0)).toBe(-1e300);
  });
});

describe('OnlineNormaliser state', () => {
  it('a restored normaliser continues bit-identically', () => {
    const dimension = 5;
    const columns = Array.from({ length: dimension }, (_, i) => samplesFrom(100 + i, 600, 10 ** (i - 2), i));
    const row = (t: number): Float64Array => Float64Array.from(columns, (column) => column[t]);
    const original = new OnlineNormaliser(dimension, { halfLife: 50, warmup: 20 });
    const out = new Float64Array(dimension);
    for (let t = 0; t < 300; t++) {
      const input = row(t);
      if (t === 7) input[2] = Number.NaN; // the non-finite count travels with the state too
      original.normalise(input, out);
    }
    const restored = new OnlineNormaliser(dimension, { halfLife: 50, warmup: 20 });
    restored.setState(original.getState());
    expect(restored.ticks).toBe(300);
    expect(restored.nonFiniteCount).toBe(1);
    expect(restored.isWarm).toBe(true);
    const restoredOut = new Float64Array(dimension);
    for (let t = 300; t < 600; t++) {
      original.normalise(row(t), out);
      restored.normalise(row(t), restoredOut);
      expect(Array.from(restoredOut)).toEqual(Array.from(out));
    }
    expect(Array.from(restored.getState())).toEqual(Array.from(original.getState()));
  });

  it('refuses a state of another dimension or half-life', () => {
    const state = new OnlineNormaliser(4, { halfLife: 50 }).getState();
    expect(() => new OnlineNormaliser(3, { halfLife: 50 }).setState(state)).toThrow(/dimension 3/);
    expect(() => new OnlineNormaliser(4, { halfLife: 60 }).setState(state)).toThrow(/halfLife 50/);
  });

  it('reset forgets everything', () => {
    const normaliser = new OnlineNormaliser(2, { warmup: 1 });
    const out = new Float64Array(2);
    normaliser.normalise(Float64Array.of(Number.NaN, 3), out);
    normaliser.reset();
    expect([normaliser.ticks, normaliser.nonFiniteCount, normaliser.isWarm]).toEqual([0, 0, false]);
    expect(Array.from(normaliser.getState())).toEqual(Array.from(new OnlineNormaliser(2, { warmup: 1 }).getState()));
  });

  it('normalises in place when out is the input', () => {
    const a = new OnlineNormaliser(3);
    const b = new OnlineNormaliser(3);
    const separate = new Float64Array(3);
    for (const values of [
      [1, 2, 3],
      [4, 1, 9],
      [0, 0, 1],
    ]) {
      const inPlace = Float64Array.from(values);
      a.normalise(inPlace, inPlace);
      b.normalise(Float64Array.from(values), separate);
      expect(Array.from(inPlace)).toEqual(Array.from(separate));
    }
  });
});

describe('OnlineNormaliser properties', () => {
  it('any input, finite or not, gives outputs within [-clip, clip] and finite statistics', () => {
    const element = fc.oneof(fc.double(), fc.double({ min: -1e3, max: 1e3, noNaN: true }));
    fc.assert(
      fc.property(
        fc.array(fc.array(element, { minLength: 4, maxLength: 4 }), { minLength: 1, maxLength: 60 }),
        fc.double({ min: 0.5, max: 2000, noNaN: true }),
        (rows, halfLife) => {
          const normaliser = new OnlineNormaliser(4, { halfLife, clip: 5 });
          const out = new Float64Array(4);
          for (const row of rows) {
            normaliser.normalise(Float64Array.from(row), out);
            for (let i = 0; i < 4; i++) {
              if (!(Math.abs(out[i]) <= 5)) return false;
              if (!Number.isFinite(normaliser.meanOf(i)) || !Number.isFinite(normaliser.varianceOf(i))) return false;
              if (normaliser.varianceOf(i) < 0) return false;
            }
          }
          return true;
        },
      ),
      { numRuns: 300 },
    );
  });
});

// Real data end to end: the first 200 events of the LOBSTER AAPL excerpt (fixtures/lobster/) through extractor and
// normaliser. Once warm, a standardised element should have an EW mean near 0 and spread near 1.
describe('OnlineNormaliser on features of a real LOBSTER excerpt', () => {
  it('scores every feature finitely and within the clip', () => {
    const dir = fileURLToPath(new URL('../../fixtures/lobster/', import.meta.url));
    const rows = readFileSync(`${dir}AAPL_2012-06-21_34200000_57600000_orderbook_10.csv`, 'utf8').trim().split('\n').slice(0, 200);
    const times = readFileSync(`${dir}AAPL_2012-06-21_34200000_57600000_message_10.csv`, 'utf8').trim().split('\n').slice(0, 200);
    const extractor = new FeatureExtractor(10);
    const normaliser = new OnlineNormaliser(extractor.dimension, { halfLife: 50, warmup: 50 });
    const features = new Float64Array(extractor.dimension);
    const scores = new Float64Array(extractor.dimension);
    const sumOfSquares = new Float64Array(extractor.dimension);
    rows.forEach((row, r) => {
      const cells = row.split(',').map(Number);
      const bids: number[] = [];
      const asks: number[] = [];
      for (let c = 0; c < cells.length; c += 4) {
        asks.push(cells[c] / 10000, cells[c + 1]);
        bids.push(cells[c + 2] / 10000, cells[c + 3]);
      }
      const ts = Number(times[r].split(',')[0]) * 1000;
      const snapshot: BookSnapshot = {
        type: 'book_snapshot',
        symbol: 'AAPL',
        ts,
        localTs: ts,
        seq: r,
        bids: Float64Array.from(bids),
        asks: Float64Array.from(asks),
      };
      extractor.extract(snapshot, features);
      normaliser.normalise(features, scores);
      for (let i = 0; i < scores.length; i++) {
        expect(Number.isFinite(scores[i]) && Math.abs(scores[i]) <= 5).toBe(true);
        if (r >= 100) sumOfSquares[i] += scores[i] ** 2;
      }
    });
    expect(normaliser.isWarm).toBe(true);
    expect(normaliser.nonFiniteCount).toBe(0);
    // Root mean square of the last 100 scores per element: near 1 for a varying element,
    // 0 for an element that did not move. Loose bounds: 100 correlated ticks, heavy tails.
    let varying = 0;
    for (let i = 0; i < sumOfSquares.length; i++) {
      const rms = Math.sqrt(sumOfSquares[i] / 100);
      expect(rms).toBeLessThan(2.5);
      if (rms > 0.3) varying++;
    }
    expect(varying).toBeGreaterThan(30);
  });
});
