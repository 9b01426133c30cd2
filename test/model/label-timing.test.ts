// No label may leak into an earlier prediction: changing the future must not change the past.
import { describe, expect, it } from 'vitest';
import { createLearners, defaultLearnerSettings, parseModelList } from '../../src/model/factory.js';
import { LearnerSet } from '../../src/model/learner-set.js';
import { Rng } from '../../src/model/rng.js';
import { Labeler, parseTarget, targetName, type TargetSpec } from '../../src/model/targets.js';

const INPUTS = 4;

function midPath(length: number, seed: number): number[] {
  const rng = new Rng(seed);
  const mids = [100];
  for (let t = 1; t < length; t++) {
    const u = rng.uniform();
    mids.push(mids[t - 1] + (u < 0.3 ? -0.01 : u > 0.7 ? 0.01 : 0));
  }
  return mids;
}

/** Features that never look ahead: derived from the mid path up to t only. */
function featuresAt(mids: number[], t: number): Float64Array {
  const previous = t > 0 ? mids[t - 1] : mids[t];
  return Float64Array.of(mids[t] - previous, (mids[t] - 100) * 10, Math.sin(t), 1);
}

function predictions(target: TargetSpec, mids: number[]): number[][] {
  const set = new LearnerSet(createLearners(parseModelList('rtrl,tbptt:5,logistic,majority'), { ...defaultLearnerSettings, hidden: 6 }, INPUTS, target), target);
  return mids.map((mid, t) => Array.from(set.step(mid, featuresAt(mids, t))));
}

describe('label timing', () => {
  for (const targetText of ['next-move', 'horizon:3']) {
    it(`${targetText}: predictions up to tick t do not depend on any mid after t`, () => {
      const target = parseTarget(targetText);
      const mids = midPath(400, 3);
      const cut = 250;
      const future = midPath(400, 99).map((m, t) => (t <= cut ? mids[t] : m + 0.5));
      const original = predictions(target, mids);
      const altered = predictions(target, future);
      for (let t = 0; t <= cut; t++) expect(altered[t]).toEqual(original[t]);
      // The future really differs and really reaches later predictions: the test can fail.
      expect(altered.slice(cut + 2).some((row, i) => row.some((p, c) => p !== original[cut + 2 + i][c]))).toBe(true);
    });
  }

  it('a label is scored and learned only after the prediction it labels was made', () => {
    const target = parseTarget('next-move');
    const mids = midPath(300, 5);
    const set = new LearnerSet(createLearners(parseModelList('rtrl,majority'), { ...defaultLearnerSettings, hidden: 4 }, INPUTS, target), target);
    const scoredPerTick: Array<{ tick: number; label: number }> = [];
    let predicted = 0;
    mids.forEach((mid, t) => {
      set.step(mid, featuresAt(mids, t), (learner, _probs, _offset, label) => {
        if (learner === 0) scoredPerTick.push({ tick: t, label });
      });
      predicted++;
      // Everything scored so far labels a tick strictly before this one.
      expect(scoredPerTick.length).toBeLessThan(predicted);
    });
    // Each scored label is the direction of the mid change at the tick it was scored.
    const byTick = new Map<number, number>();
    for (const { tick, label } of scoredPerTick) byTick.set(tick, label);
    for (const [tick, label] of byTick) expect(label).toBe(mids[tick] > mids[tick - 1] ? 1 : 0);
  });
});

describe('Labeler', () => {
  it('next-move resolves every pending tick at the next mid change, up or down', () => {
    const labeler = new Labeler({ kind: 'next-move' });
    const seen: unknown[] = [];
    for (const mid of [10, 10, 10, 11, 11, 9]) {
      seen.push(labeler.observe(mid));
      labeler.addPending(mid);
    }
    expect(seen).toEqual([null, null, null, { kind: 'label', label: 1, count: 3 }, null, { kind: 'label', label: 0, count: 2 }]);
    expect(labeler.pending).toBe(1);
  });

  it('horizon:2 with a flat band labels sign(mid[t+2] - mid[t]) two ticks later', () => {
    const labeler = new Labeler({ kind: 'horizon', k: 2, flatBand: 0.01 });
    const seen: unknown[] = [];
    for (const mid of [100, 100.5, 102, 100.2, 98]) {
      seen.push(labeler.observe(mid));
      labeler.addPending(mid);
    }
    // 102 vs 100: +2% > 1% band -> up; 100.2 vs 100.5: within band -> flat; 98 vs 102 -> down.
    expect(seen).toEqual([null, null, { kind: 'label', label: 2, count: 1 }, { kind: 'label', label: 1, count: 1 }, { kind: 'label', label: 0, count: 1 }]);
  });

  it('expires next-move predictions of a book that never moves, and a disconnect drops pending ticks', () => {
    const labeler = new Labeler({ kind: 'next-move' }, 3);
    const results = [5, 5, 5, 5].map((mid) => {
      const r = labeler.observe(mid);
      labeler.addPending(mid);
      return r;
    });
    expect(results[3]).toEqual({ kind: 'expire', count: 3 });
    expect(labeler.discard()).toBe(1);
    expect(labeler.observe(6)).toBeNull();
  });

  it('parses targets and names the problem in bad ones', () => {
    expect(parseTarget('horizon:10')).toEqual({ kind: 'horizon', k: 10, flatBand: 0 });
    expect(parseTarget('horizon:5:0.0001')).toEqual({ kind: 'horizon', k: 5, flatBand: 0.0001 });
    expect(() => parseTarget('horizon:0')).toThrow(/horizon K/);
    expect(() => parseTarget('later')).toThrow(/target: expected/);
  });
});

describe('time horizons (horizon:1s, horizon:500ms)', () => {
  it('parses and names them', () => {
    expect(parseTarget('horizon:1s')).toEqual({ kind: 'time-horizon', ms: 1000, flatBand: 0 });
    expect(parseTarget('horizon:500ms')).toEqual({ kind: 'time-horizon', ms: 500, flatBand: 0 });
    expect(parseTarget('horizon:1s:0.0001')).toEqual({ kind: 'time-horizon', ms: 1000, flatBand: 0.0001 });
    expect(targetName(parseTarget('horizon:1s'))).toBe('horizon:1s');
    expect(targetName(parseTarget('horizon:500ms'))).toBe('horizon:500ms');
    expect(() => parseTarget('horizon:0ms')).toThrow(/between 1 ms and 1 day/);
  });

  it('labels a tick by the mid in force one horizon later, known once a later tick arrives', () => {
    const labeler = new Labeler(parseTarget('horizon:1s'));
    // (ts ms, mid). The tick at 0 is labelled by the mid at 1000 ms, the tick at 900's 100.5
    // (up), revealed by the tick at 1200; 300 by the mid at 1300 (101, up) at 1800; 900 by the
    // mid at 1900 (100 < 100.5, down) at 2000; at 3000, 1200 (100 < 101, down) and 1800 (flat);
    // 2000 + 1000 is not before 3000, so that one still waits.
    const ticks: [number, number][] = [
      [0, 100],
      [300, 100],
      [900, 100.5],
      [1200, 101],
      [1800, 100],
      [2000, 100],
      [3000, 100],
    ];
    const seen: (string | null)[][] = [];
    for (const [ts, mid] of ticks) {
      const here: (string | null)[] = [];
      for (let r = labeler.observe(mid, ts); r !== null; r = labeler.observe(mid, ts)) here.push(r.kind === 'label' ? ['down', 'flat', 'up'][r.label] : 'expire');
      seen.push(here);
      labeler.addPending(mid, ts);
    }
    expect(seen).toEqual([[], [], [], ['up'], ['up'], ['down'], ['down', 'flat']]);
    expect(labeler.pending).toBe(2);
  });
});

describe('time horizons through the learner set', () => {
  it('every learner scores each tick once when its horizon has passed; a burst past the bound expires', () => {
    const target = parseTarget('horizon:500ms');
    const set = new LearnerSet(createLearners(parseModelList('rtrl,logistic,majority'), defaultLearnerSettings, 3, target), target);
    const scored = [0, 0, 0];
    const features = new Float64Array(3);
    const rng = new Rng(3);
    for (let t = 0; t < 400; t++) {
      features[0] = rng.uniform() - 0.5;
      set.step(100 + Math.round(rng.uniform() * 4), features, (learner) => scored[learner]++, t * 100);
    }
    // Ticks at 0..39900 ms: a tick is resolved once one later than its ts + 500 came, so those before 39400.
    expect(scored).toEqual([394, 394, 394]);
    // 600 ticks within one horizon: more than TIME_HORIZON_PENDING (512) wait, so they expire.
    for (let t = 0; t < 600; t++) set.step(100, features, () => undefined, 40_000 + t * 1e-3);
    expect(set.unscored).toBeGreaterThanOrEqual(512);
  });
});
