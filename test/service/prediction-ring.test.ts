// The per-symbol ring of recent predictions keeps each as a row of float64 and grows as they
// arrive: what it answers must be exactly the predictions pushed, oldest first, each with the
// label a later tick resolved it to (worked out here from the mids: the next-move target's
// label is the direction of the next change of the mid).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultEngineConfig } from '../../src/engine/config.js';
import { Engine } from '../../src/engine/engine.js';
import type { Prediction, RecordedPrediction } from '../../src/engine/symbol-engine.js';
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

/** Prediction `i` of `made` as a ring holding made[0..pushed) answers it. */
function recorded(made: Prediction[], i: number, pushed: number): RecordedPrediction {
  const { resolved: _resolved, ...prediction } = made[i];
  let next = i + 1;
  while (next < pushed && made[next].mid === made[i].mid) next++;
  const label = next < pushed ? (made[next].mid > made[i].mid ? 'up' : 'down') : null;
  return { ...prediction, label };
}

describe('PredictionRing', () => {
  const made = predictions(120);

  it('answers exactly the predictions pushed, oldest first, while it grows and once it wraps', () => {
    expect(made.length).toBe(120);
    for (const capacity of [1, 7, 16, 50, 1000]) {
      const ring = PredictionRing.of(made[0], capacity);
      made.forEach((prediction, i) => {
        ring.push(prediction);
        const kept = made.slice(Math.max(0, i + 1 - capacity), i + 1).map((p) => recorded(made, made.indexOf(p), i + 1));
        expect(ring.length).toBe(kept.length);
        if (i % 13 === 0 || i === made.length - 1) expect(ring.recent(undefined, 10_000)).toEqual(kept);
      });
    }
  });

  it('filters by ts (exclusive) and keeps the newest `limit`', () => {
    const ring = PredictionRing.of(made[0], 100);
    for (const prediction of made) ring.push(prediction);
    const since = made[60].ts;
    const all = made.map((_p, i) => recorded(made, i, made.length));
    const expected = all.slice(20).filter((p) => p.ts > since);
    expect(expected.length).toBeGreaterThan(5);
    expect(ring.recent(since, 10_000)).toEqual(expected);
    expect(ring.recent(since, 5)).toEqual(expected.slice(-5));
    expect(ring.recent(undefined, 3)).toEqual(all.slice(-3));
    // The fixture's mid moves often: most are labelled, in both directions; the newest are pending.
    const labels = all.map((p) => p.label);
    expect(labels.filter((l) => l === 'up').length).toBeGreaterThan(10);
    expect(labels.filter((l) => l === 'down').length).toBeGreaterThan(10);
    expect(labels.at(-1)).toBeNull();
  });
});
