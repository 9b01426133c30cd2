// A learner restored mid-stream continues with bit-identical predictions to one that never stopped.
import { describe, expect, it } from 'vitest';
import { createLearners, defaultLearnerSettings, parseModelList } from '../../src/model/factory.js';
import { LearnerSet } from '../../src/model/learner-set.js';
import { Rng } from '../../src/model/rng.js';
import { decodeState, encodeState, packChunks, unpackChunks } from '../../src/model/state-codec.js';
import { parseTarget } from '../../src/model/targets.js';

const INPUTS = 5;
const MODELS = 'rtrl,tbptt:4,logistic,majority';

function makeSet(targetText: string) {
  const target = parseTarget(targetText);
  return new LearnerSet(
    createLearners(
      parseModelList(MODELS),
      { ...defaultLearnerSettings, hidden: 5, optimiser: { ...defaultLearnerSettings.optimiser, kind: targetText === 'next-move' ? 'adam' : 'sgd', decayGamma: 0.5 } },
      INPUTS,
      target,
    ),
    target,
  );
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
  for (const [targetText, moves] of [
    ['next-move', 0.4],
    ['horizon:3', 0.4],
    ['horizon:40', 0.4],
    ['next-move', 0.03],
  ] as const) {
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

  it('horizon:40: a FIFO ring is saved for its pending ticks only, and a ring saved whole at capacity (older checkpoints) still loads', () => {
    const ticks = stream(300);
    const first = makeSet('horizon:40');
    // 30 ticks: fewer pending than the ring's capacity of 40 (that the packed state continues
    // bit for bit is the test above).
    for (let t = 0; t < 30; t++) first.step(ticks[t].mid, ticks[t].x);
    const saved = first.getState();
    const [temperatureChunk, rtrlChunk] = unpackChunks(saved.learners[0]);
    const rtrl = decodeState(rtrlChunk, 'rtrl');
    const pending = Number(rtrl.meta.pendingCount);
    expect(pending).toBe(30);
    const rowLength = rtrl.arrays.ringRows.length / pending;
    const classes = first.classes;
    expect(rtrl.arrays.ringProbs.length).toBe(pending * classes);
    const temperature = decodeState(temperatureChunk, 'temperature');
    expect(temperature.arrays.terms.length).toBe(pending * (classes + 1));

    // The layout older checkpoints have: every ring at capacity, the oldest tick at `head`.
    const head = 17;
    const capacity = 40;
    const whole = (packed: Float64Array, stride: number) => {
      const ring = new Float64Array(capacity * stride);
      for (let r = 0; r < packed.length / stride; r++) ring.set(packed.subarray(r * stride, (r + 1) * stride), ((head + r) % capacity) * stride);
      return ring;
    };
    const oldRtrl = encodeState({
      kind: 'rtrl',
      meta: { ...rtrl.meta, head },
      arrays: {
        ...rtrl.arrays,
        ringRows: whole(rtrl.arrays.ringRows, rowLength),
        ringProbs: whole(rtrl.arrays.ringProbs, classes),
        ringHidden: whole(rtrl.arrays.ringHidden, rtrl.arrays.ringHidden.length / pending),
        ringInputs: whole(rtrl.arrays.ringInputs, INPUTS),
      },
    });
    const oldTemperature = encodeState({
      ...temperature,
      arrays: { ...temperature.arrays, terms: whole(temperature.arrays.terms, classes + 1), cursor: Float64Array.of(head, pending) },
    });
    for (const learners of [saved.learners, [packChunks([oldTemperature, oldRtrl]), ...saved.learners.slice(1)]]) {
      const reference = makeSet('horizon:40');
      reference.setState({ ...saved, learners: saved.learners.map((bytes) => Uint8Array.from(bytes)) });
      const restored = makeSet('horizon:40');
      restored.setState({ ...saved, learners });
      for (let t = 30; t < 300; t++) {
        const a = Array.from(reference.step(ticks[t].mid, ticks[t].x));
        const b = Array.from(restored.step(ticks[t].mid, ticks[t].x));
        for (let i = 0; i < a.length; i++) expect(Object.is(a[i], b[i])).toBe(true);
      }
    }
  });

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
