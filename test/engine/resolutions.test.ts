// What each tick resolved travels with its prediction (`resolved`: runs of consecutive seqs
// with one label), so a client marks its predictions with the engine's labels instead of
// working them out again. The runs must name exactly the predictions the engine scored, with
// the labels it scored them by, for every kind of target; survive a checkpoint; and leave out
// what a disconnect dropped. Books: the real AMZN excerpt (fixtures/canonical).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { MarketMessage } from '../../src/domain/types.js';
import { defaultEngineConfig, type EngineConfig } from '../../src/engine/config.js';
import { Engine } from '../../src/engine/engine.js';
import type { Prediction } from '../../src/engine/symbol-engine.js';
import { decodeState, encodeState, packChunks, unpackChunks } from '../../src/model/state-codec.js';
import { parseTarget } from '../../src/model/targets.js';
import { CanonicalMapper } from '../../src/venues/canonical.js';

const lines = readFileSync(join(import.meta.dirname, '../../fixtures/canonical/amzn-2012-06-21-first300.jsonl'), 'utf8')
  .trim()
  .split('\n');

function messages(): MarketMessage[] {
  const mapper = new CanonicalMapper({ levels: 5 });
  return lines.flatMap((line) => mapper.map(line, 0));
}

function configFor(target: string): EngineConfig {
  return { ...defaultEngineConfig, levels: 5, target: parseTarget(target), learner: { ...defaultEngineConfig.learner, hidden: 6 } };
}

function run(engine: Engine, input: readonly MarketMessage[]): Prediction[] {
  const out: Prediction[] = [];
  for (const message of input) {
    const prediction = engine.process(message);
    if (prediction) out.push(prediction);
  }
  return out;
}

/** Index of the largest probability, the lowest class on ties. */
function argmax(probs: readonly number[]): number {
  let best = 0;
  for (let c = 1; c < probs.length; c++) if (probs[c] > probs[best]) best = c;
  return best;
}

describe('resolutions on predictions', () => {
  for (const target of ['next-move', 'horizon:5', 'horizon:5:0.00002', 'horizon:400ms']) {
    it(`name every prediction the engine scored, once, with its label (${target})`, () => {
      const engine = new Engine(configFor(target));
      const made = run(engine, messages());
      const symbol = engine.symbol('AMZN')!;
      const bySeq = new Map(made.map((p) => [p.seq, p]));
      const resolvedSeqs: number[] = [];
      const scored = symbol.modelNames.map(() => ({ n: 0, right: 0 }));
      for (const prediction of made) {
        for (const run of prediction.resolved ?? []) {
          expect(run.count).toBe(run.toSeq - run.fromSeq + 1);
          expect(run.toSeq).toBeLessThan(prediction.seq);
          const label = symbol.classNames.indexOf(run.label);
          expect(label).toBeGreaterThanOrEqual(0);
          for (let seq = run.fromSeq; seq <= run.toSeq; seq++) {
            resolvedSeqs.push(seq);
            const earlier = bySeq.get(seq)!;
            earlier.models.forEach((model, m) => {
              scored[m].n++;
              if (argmax(model.probs) === label) scored[m].right++;
            });
          }
        }
      }
      // In order, each once, and the runs' labels give every model the engine's own accuracy.
      expect(resolvedSeqs.every((seq, i) => i === 0 || seq > resolvedSeqs[i - 1])).toBe(true);
      symbol.metrics.forEach((metrics, m) => {
        const summary = metrics.summary();
        expect(summary.n).toBeGreaterThan(200);
        expect(scored[m].n).toBe(summary.n);
        expect(scored[m].right / scored[m].n).toBeCloseTo(summary.accuracy!, 12);
      });
    });
  }

  it('give the next-move label the mids say: the direction of the next change', () => {
    const engine = new Engine(configFor('next-move'));
    const made = run(engine, messages());
    const labelOf = new Map<number, string>();
    for (const prediction of made) for (const run of prediction.resolved ?? []) for (let seq = run.fromSeq; seq <= run.toSeq; seq++) labelOf.set(seq, run.label);
    let checked = 0;
    made.forEach((prediction, i) => {
      let next = i + 1;
      while (next < made.length && made[next].mid === prediction.mid) next++;
      if (next === made.length) expect(labelOf.has(prediction.seq)).toBe(false);
      else {
        expect(labelOf.get(prediction.seq)).toBe(made[next].mid > prediction.mid ? 'up' : 'down');
        checked++;
      }
    });
    expect(checked).toBeGreaterThan(250);
  });

  it('leave out what a disconnect dropped', () => {
    const input = messages();
    const cut = 150;
    const withBreak: MarketMessage[] = [...input.slice(0, cut), { type: 'disconnect', symbol: 'AMZN', localTs: 0, reason: 'test' }, ...input.slice(cut)];
    const engine = new Engine(configFor('horizon:5'));
    const made = run(engine, withBreak);
    const before = made.filter((p) => p.seq < (input[cut] as { seq: number }).seq);
    const resolved = new Set<number>();
    for (const prediction of made) for (const run of prediction.resolved ?? []) for (let seq = run.fromSeq; seq <= run.toSeq; seq++) resolved.add(seq);
    // The last five before the break were pending (horizon 5): never resolved, never scored.
    const dropped = before.slice(-5).map((p) => p.seq);
    expect(dropped.every((seq) => !resolved.has(seq))).toBe(true);
    expect(before.slice(0, -5).every((p) => resolved.has(p.seq))).toBe(true);
    expect(resolved.size).toBe(engine.symbol('AMZN')!.metrics[0].summary().n);
  });

  it('survive a checkpoint: a restored engine resolves what was pending as the one that never stopped', () => {
    const input = messages();
    const config = configFor('next-move');
    const whole = run(new Engine(config), input).map((p) => JSON.stringify(p));
    const first = new Engine(config);
    const half = run(first, input.slice(0, 160));
    const state = first.symbol('AMZN')!.getState();
    const second = new Engine(config);
    second.symbolOrCreate('AMZN')!.setState(state);
    const rest = run(second, input.slice(160));
    expect([...half, ...rest].map((p) => JSON.stringify(p))).toEqual(whole);
  });

  it('resolve the pending predictions of a checkpoint from before seqs were kept as NaN runs, and go on', () => {
    const input = messages();
    const config = configFor('horizon:5');
    const first = new Engine(config);
    run(first, input.slice(0, 100));
    const [headerBytes, ...learners] = unpackChunks(first.symbol('AMZN')!.getState());
    const header = decodeState(headerBytes, 'symbol-engine');
    const { pendingSeqs, ...arrays } = header.arrays;
    expect(pendingSeqs.length).toBe(5);
    const legacy = packChunks([encodeState({ kind: header.kind, meta: header.meta, arrays }), ...learners]);

    const second = new Engine(config);
    second.symbolOrCreate('AMZN')!.setState(legacy);
    const rest = run(second, input.slice(100));
    const runs = rest.flatMap((p) => p.resolved ?? []);
    expect(runs.slice(0, 5).every((r) => Number.isNaN(r.fromSeq) && Number.isNaN(r.toSeq) && r.count === 1)).toBe(true);
    expect(runs.slice(5).every((r) => Number.isInteger(r.fromSeq))).toBe(true);
    expect(runs[5].fromSeq).toBe(rest[0].seq);
  });
});
