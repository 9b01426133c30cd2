import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultEngineConfig } from '../../src/engine/config.js';
import { Engine } from '../../src/engine/engine.js';
import { PrequentialMetrics } from '../../src/engine/metrics.js';
import type { Prediction, StreamObserver } from '../../src/engine/symbol-engine.js';
import { modelName } from '../../src/model/factory.js';
import { CanonicalMapper } from '../../src/venues/canonical.js';
import { DownsampledSeries, MetricsTimeline } from '../../src/report/timeline.js';

describe('DownsampledSeries and MetricsTimeline', () => {
  it('keeps evenly spaced points, the first and the latest, within its bound', () => {
    const series = new DownsampledSeries(1, 5);
    for (let i = 0; i < 37; i++) series.offer(i, i * 10);
    const [xs, ys] = series.toColumns();
    // Capacity 4 stored points: strides 1 -> 2 -> 4 -> 8 -> 16; kept 0, 16, 32 then latest 36.
    expect(xs).toEqual([0, 16, 32, 36]);
    expect(ys).toEqual([0, 160, 320, 360]);
  });

  it('stays bounded over a million scored predictions', () => {
    const models = ['rtrl', 'majority'];
    const timeline = new MetricsTimeline({ models, classes: 3 });
    const metrics = models.map(() => new PrequentialMetrics(3));
    const probs = new Float64Array([0.2, 0.3, 0.5, 0.6, 0.3, 0.1]);
    const total = 1_000_000;
    for (let i = 0; i < total; i++) {
      const model = i & 1;
      const label = i % 3;
      metrics[model].record(probs, model * 3, label);
      timeline.onScored(model, 1_000 + i, probs, model * 3, label, metrics[model]);
      timeline.onMid(1_000 + i, 100 + (i % 17));
    }
    const data = timeline.toData();
    expect(data.rollingWindow).toBe(1000);
    for (const model of data.models) {
      expect(model.ts.length).toBeLessThanOrEqual(2000);
      expect(model.ts.length).toBeGreaterThan(900);
      expect(model.rollingAccuracy.length).toBe(model.ts.length);
      const steps = new Set(model.ts.slice(1, -1).map((t, k) => t - model.ts[k]));
      expect(steps.size).toBe(1); // evenly spaced except the appended latest point
    }
    expect(data.models[0].ts[0]).toBe(1_000);
    expect(data.models[1].ts.at(-1)).toBe(1_000 + total - 1);
    expect(data.mid.ts.length).toBeLessThanOrEqual(2000);
    expect(data.mid.ts.at(-1)).toBe(1_000 + total - 1);
    // Labels cycle 0,1,2 over alternate models, so each model sees each label a third of the time.
    expect(data.models[0].cumulativeLogLoss.at(-1)).toBeCloseTo(-(Math.log(0.2) + Math.log(0.3) + Math.log(0.5)) / 3, 4);
    // P(up) = 0.5 for rtrl -> bin [0.5, 0.6); observed up frequency 1/3.
    const rtrlBin = data.models[0].calibration[5];
    expect(rtrlBin.count).toBe(total / 2);
    expect(rtrlBin.meanPredicted).toBeCloseTo(0.5, 12);
    expect(rtrlBin.observedFrequency).toBeCloseTo(1 / 3, 4);
    expect(data.models[1].calibration[1].count).toBe(total / 2); // P(up) = 0.1
  });
});

describe('a stream observer attached to the engine', () => {
  const lines = readFileSync(join(import.meta.dirname, '../../fixtures/canonical/amzn-2012-06-21-first300.jsonl'), 'utf8')
    .trim()
    .split('\n');
  const config = { ...defaultEngineConfig, levels: 5 };

  function run(observerFor?: (symbol: string, models: readonly string[], classes: number) => StreamObserver): Prediction[] {
    const engine = new Engine(config, { observerFor });
    const mapper = new CanonicalMapper({ levels: 5 });
    const made: Prediction[] = [];
    for (const line of lines)
      for (const message of mapper.map(line, 0)) {
        const prediction = engine.process(message);
        if (prediction) made.push(prediction);
      }
    return made;
  }

  it('sees every accepted tick and every score of every model, and changes no prediction', () => {
    const seen = { mids: [] as number[], scores: new Map<number, number>(), symbols: [] as string[] };
    let metricsOfModel0: PrequentialMetrics | null = null;
    const observed = run((symbol, models, classes) => {
      seen.symbols.push(`${symbol}:${models.join(',')}:${classes}`);
      return {
        onMid: (_ts, mid) => void seen.mids.push(mid),
        onScored: (model, _ts, probs, offset, label, metrics) => {
          expect(label).toBeGreaterThanOrEqual(0);
          expect(probs[offset] + probs[offset + 1]).toBeCloseTo(1, 12);
          if (model === 0) metricsOfModel0 = metrics;
          seen.scores.set(model, (seen.scores.get(model) ?? 0) + 1);
        },
        toData: () => null,
      };
    });
    expect(observed).toEqual(run());
    expect(seen.symbols).toEqual([`AMZN:${config.models.map(modelName).join(',')}:2`]);
    expect(seen.mids).toEqual(observed.map((prediction) => prediction.mid));
    const scored = metricsOfModel0!.summary().n;
    expect(scored).toBeGreaterThan(100);
    expect([...seen.scores.values()]).toEqual(config.models.map(() => scored));
  });
});
