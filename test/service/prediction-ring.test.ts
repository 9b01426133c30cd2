// The per-symbol ring of recent predictions keeps each as a row of float64 and grows as they
// arrive: what it answers must be exactly the predictions pushed, oldest first.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultEngineConfig } from '../../src/engine/config.js';
import { Engine } from '../../src/engine/engine.js';
import type { Prediction } from '../../src/engine/symbol-engine.js';
import { PredictionRing } from '../../src/service/runtime.js';
import { CanonicalMapper } from '../../src/venues/canonical.js';

const lines = readFileSync(join(import.meta.dirname, '../../fixtures/canonical/amzn-2012-06-21-first300.jsonl'), 'utf8')
  .trim()
  .split('\n');

function predictions(count: number): Prediction[] {
  const engine = new Engine({ ...defaultEngineConfig, levels: 5 });
  const mapper = new CanonicalMapper({ levels: 5 });
  const out: Prediction[] = [];
  for (const line of lines.slice(0, count)) {
    for (const message of mapper.map(line, 0)) {
      const prediction = engine.process(message);
      if (prediction) out.push(prediction);
    }
  }
  return out;
}

describe('PredictionRing', () => {
  const made = predictions(120);

  it('answers exactly the predictions pushed, oldest first, while it grows and once it wraps', () => {
    expect(made.length).toBe(120);
    for (const capacity of [1, 7, 16, 50, 1000]) {
      const ring = PredictionRing.of(made[0], capacity);
      made.forEach((prediction, i) => {
        ring.push(prediction);
        const kept = made.slice(Math.max(0, i + 1 - capacity), i + 1);
        expect(ring.length).toBe(kept.length);
        if (i % 13 === 0 || i === made.length - 1) expect(ring.recent(undefined, 10_000)).toEqual(kept);
      });
    }
  });

  it('filters by ts (exclusive) and keeps the newest `limit`', () => {
    const ring = PredictionRing.of(made[0], 100);
    for (const prediction of made) ring.push(prediction);
    const since = made[60].ts;
    const expected = made.slice(20).filter((p) => p.ts > since);
    expect(expected.length).toBeGreaterThan(5);
    expect(ring.recent(since, 10_000)).toEqual(expected);
    expect(ring.recent(since, 5)).toEqual(expected.slice(-5));
    expect(ring.recent(undefined, 3)).toEqual(made.slice(-3));
  });
});
