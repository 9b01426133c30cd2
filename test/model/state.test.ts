// A learner restored mid-stream continues with bit-identical predictions to one that never stopped.
import { describe, expect, it } from 'vitest';
import { createLearners, defaultLearnerSettings, parseModelList } from '../../src/model/factory.js';
import { LearnerSet } from '../../src/model/learner-set.js';
import { Rng } from '../../src/model/rng.js';
import { decodeState, encodeState } from '../../src/model/state-codec.js';
import { parseTarget } from '../../src/model/targets.js';

const INPUTS = 5;
const MODELS = 'rtrl,tbptt:4,logistic,majority';

function makeSet(targetText: string) {
  const target = parseTarget(targetText);
  return new LearnerSet(createLearners(parseModelList(MODELS), { ...defaultLearnerSettings, hidden: 5, optimiser: { ...defaultLearnerSettings.optimiser, kind: targetText === 'next-move' ? 'adam' : 'sgd', decayGamma: 0.5 } }, INPUTS, target), target);
}

/** Mids that move with probability `moves` a tick: 0.03 keeps a still book for ~30 ticks, so the pending rings grow. */
function stream(length: number, moves = 0.4) {
  const rng = new Rng(42);
  let mid = 50;
  return Array.from({ length }, () => {
    mid += rng.uniform() < moves ? (rng.uniform() < 0.5 ? -0.5 : 0.5) : 0;
    return { mid, x: Float64Array.from({ length: INPUTS }, () => rng.normal()) };
  });
}

describe('save and restore', () => {
  for (const [targetText, moves] of [['next-move', 0.4], ['horizon:3', 0.4], ['next-move', 0.03]] as const) {
    it(`${targetText}, mid moving with probability ${moves}: a restored learner set continues bit for bit`, () => {
      const ticks = stream(700, moves);
      const uninterrupted = makeSet(targetText);
      const first = makeSet(targetText);
      for (let t = 0; t < 400; t++) {
        uninterrupted.step(ticks[t].mid, ticks[t].x);
        first.step(ticks[t].mid, ticks[t].x);
      }
      // On the still book the save falls in a run longer than the rings' first allocation (8 ticks).
      expect(first.pending).toBeGreaterThan(moves < 0.1 ? 8 : 0);
      const saved = first.getState();
      const restored = makeSet(targetText);
      restored.setState({ ...saved, learners: saved.learners.map((bytes) => Uint8Array.from(bytes)) });
      for (let t = 400; t < 700; t++) {
        const a = Array.from(uninterrupted.step(ticks[t].mid, ticks[t].x));
        const b = Array.from(restored.step(ticks[t].mid, ticks[t].x));
        for (let i = 0; i < a.length; i++) expect(Object.is(a[i], b[i])).toBe(true);
      }
      uninterrupted.learners.forEach((learner, i) => expect(restored.learners[i].stats).toEqual(learner.stats));
      expect(uninterrupted.learners[0].stats.updates).toBeGreaterThan(moves < 0.1 ? 10 : 50);
    });
  }

  it('refuses a state made with another configuration, naming what differs', () => {
    const small = makeSet('next-move');
    const other = new LearnerSet(createLearners(parseModelList(MODELS), { ...defaultLearnerSettings, hidden: 6 }, INPUTS, parseTarget('next-move')), parseTarget('next-move'));
    expect(() => other.learners[0].setState(small.learners[0].getState())).toThrow(/config differs/);
    expect(() => small.learners[1].setState(small.learners[0].getState())).toThrow(/kind is "rtrl", expected "tbptt"/);
  });

  it('the codec round-trips every float64 bit pattern and rejects damaged bytes', () => {
    const values = Float64Array.of(0, -0, 1e-310, Number.MAX_VALUE, Math.PI, -1 / 3);
    const bytes = encodeState({ kind: 'k', meta: { a: 1 }, arrays: { values } });
    const back = decodeState(bytes, 'k');
    for (let i = 0; i < values.length; i++) expect(Object.is(back.arrays.values[i], values[i])).toBe(true);
    expect(() => decodeState(bytes.subarray(0, bytes.length - 8))).toThrow(/runs past the end/);
    const bad = Uint8Array.from(bytes);
    bad[0] ^= 0xff;
    expect(() => decodeState(bad)).toThrow(/bad magic/);
  });
});
