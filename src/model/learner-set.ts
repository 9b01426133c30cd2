// The per-tick order that keeps labels honest, shared by every learner of a symbol:
//   1. the tick's mid resolves earlier ticks (Labeler.observe);
//   2. each resolved prediction is scored (prequential), then its learner learns the label;
//   3. every learner predicts this tick with the parameters it has now;
//   4. the tick becomes pending.
// A label therefore never reaches a parameter that was used for a prediction made at or after
// the tick the label became known, and never one used before the tick it labels.
import type { OnlineLearner } from './learner.js';
import { MixtureLearner } from './mixture.js';
import { packRing, unpackRing } from './state-codec.js';
import { Labeler, pendingCapacity, type TargetSpec } from './targets.js';

/** Called for every prediction whose label resolved, before its learner sees the label. */
export type ScoreSink = (learnerIndex: number, probs: Float64Array, offset: number, label: number) => void;

/** Pending ticks the ring holds before it first grows (doubling; most books move within a few ticks). */
const INITIAL_PENDING_SLOTS = 8;

export class LearnerSet {
  readonly classes: number;
  readonly labeler: Labeler;
  /** This tick's probabilities, learner-major: probs[i * classes + c]. */
  readonly probs: Float64Array;
  /** Predictions that expired unlabelled (a book that never moved) or were dropped by a disconnect. */
  unscored = 0;
  /**
   * Per learner, the probabilities of its pending predictions, oldest at `head`, in a ring of
   * `slots` that starts small and doubles up to `capacity` when a book stays still for long:
   * a quiet symbol holds a few KB here, not capacity x learners x classes.
   */
  private pendingProbs: Float64Array;
  private readonly capacity: number;
  private slots: number;
  private head = 0;
  private count = 0;
  private readonly row: Float64Array[];
  /** Learner indices in prediction order: every member before the mixture that reads them. */
  private readonly order: Int32Array;
  /** The mixture among the learners, if one is configured, and the indices of its members. */
  readonly mixture: MixtureLearner | null;
  readonly mixtureMembers: readonly number[];

  constructor(
    readonly learners: readonly OnlineLearner[],
    readonly target: TargetSpec,
    readonly maxPending = 10_000,
  ) {
    if (learners.length === 0) throw new Error('models: at least one learner is needed');
    this.classes = learners[0].classes;
    for (const learner of learners) {
      if (learner.classes !== this.classes) throw new Error(`models: ${learner.name} has ${learner.classes} classes, expected ${this.classes}`);
    }
    this.labeler = new Labeler(target, maxPending);
    this.capacity = pendingCapacity(target, maxPending);
    this.slots = Math.min(this.capacity, INITIAL_PENDING_SLOTS);
    this.pendingProbs = new Float64Array(learners.length * this.slots * this.classes);
    this.probs = new Float64Array(learners.length * this.classes);
    this.row = learners.map((_, i) => this.probs.subarray(i * this.classes, (i + 1) * this.classes));
    const mixtures = learners.filter((learner): learner is MixtureLearner => learner instanceof MixtureLearner);
    if (mixtures.length > 1) throw new Error('models: at most one mix');
    this.mixture = mixtures[0] ?? null;
    this.mixtureMembers = learners.flatMap((learner, i) => (learner instanceof MixtureLearner ? [] : [i]));
    this.mixture?.bind(
      this.probs,
      this.mixtureMembers.map((i) => i * this.classes),
    );
    const mixtureIndex = this.mixture ? learners.indexOf(this.mixture) : -1;
    this.order = Int32Array.from([...this.mixtureMembers, ...(mixtureIndex >= 0 ? [mixtureIndex] : [])]);
  }

  get pending(): number {
    return this.count;
  }

  /** One tick at venue time `ts`: resolve, score, learn, predict. Returns `probs` (valid until the next call). */
  step(mid: number, features: Float64Array, score?: ScoreSink, ts = 0): Float64Array {
    for (let resolution = this.labeler.observe(mid, ts); resolution !== null; resolution = this.labeler.observe(mid, ts)) {
      if (resolution.kind === 'label') {
        this.resolve(resolution.label, resolution.count, score);
      } else {
        for (const learner of this.learners) learner.discardPending();
        this.unscored += resolution.count;
        this.head = 0;
        this.count = 0;
      }
    }
    if (this.count === this.slots) this.grow();
    const stride = this.slots * this.classes;
    const slot = (this.head + this.count) % this.slots;
    for (let k = 0; k < this.order.length; k++) {
      const i = this.order[k];
      const row = this.row[i];
      this.learners[i].predict(features, row);
      this.pendingProbs.set(row, i * stride + slot * this.classes);
    }
    this.count++;
    this.labeler.addPending(mid, ts);
    return this.probs;
  }

  /** Doubles the pending ring (up to `capacity`), laying each learner's ring out from slot 0. */
  private grow(): void {
    const slots = Math.min(this.capacity, this.slots * 2);
    if (slots === this.slots) return;
    const grown = new Float64Array(this.learners.length * slots * this.classes);
    const oldStride = this.slots * this.classes;
    for (let i = 0; i < this.learners.length; i++) {
      const block = this.pendingProbs.subarray(i * oldStride, (i + 1) * oldStride);
      grown.set(packRing(block, this.classes, this.slots, this.head, this.count), i * slots * this.classes);
    }
    this.pendingProbs = grown;
    this.slots = slots;
    this.head = 0;
  }

  private resolve(label: number, resolved: number, score: ScoreSink | undefined): void {
    const stride = this.slots * this.classes;
    for (let i = 0; i < this.learners.length; i++) {
      if (score) {
        for (let r = 0; r < resolved; r++) {
          score(i, this.pendingProbs, i * stride + ((this.head + r) % this.slots) * this.classes, label);
        }
      }
      this.learners[i].resolve(label, resolved);
    }
    this.head = (this.head + resolved) % this.slots;
    this.count -= resolved;
  }

  /** A break in the feed: pending predictions are dropped unscored, recurrent state restarts. */
  disconnect(): void {
    this.unscored += this.labeler.discard();
    for (const learner of this.learners) learner.resetSequence();
    this.head = 0;
    this.count = 0;
  }

  /** Pending probabilities are saved only for the pending ticks, learner by learner. */
  getState(): { labeler: Float64Array; pendingProbs: Float64Array; cursor: Float64Array; learners: Uint8Array[] } {
    const stride = this.slots * this.classes;
    const pendingProbs = new Float64Array(this.learners.length * this.count * this.classes);
    for (let i = 0; i < this.learners.length; i++) {
      const block = this.pendingProbs.subarray(i * stride, (i + 1) * stride);
      pendingProbs.set(packRing(block, this.classes, this.slots, this.head, this.count), i * this.count * this.classes);
    }
    return {
      labeler: this.labeler.getState(),
      pendingProbs,
      // The saved ring is packed from slot 0, so its head is 0 whatever it is here.
      cursor: Float64Array.of(0, this.count, this.unscored),
      learners: this.learners.map((learner) => learner.getState()),
    };
  }

  setState(state: { labeler: Float64Array; pendingProbs: Float64Array; cursor: Float64Array; learners: Uint8Array[] }): void {
    if (state.learners.length !== this.learners.length) throw new Error(`state: ${state.learners.length} learners saved, ${this.learners.length} configured`);
    const count = state.cursor[1];
    const perLearner = count * this.classes;
    if (!(Number.isInteger(count) && count >= 0 && count <= this.capacity) || state.pendingProbs.length !== this.learners.length * perLearner) {
      throw new Error('state: pending probabilities do not match the configured learners and target');
    }
    this.labeler.setState(state.labeler);
    let slots = Math.min(this.capacity, INITIAL_PENDING_SLOTS);
    while (slots < count) slots = Math.min(this.capacity, slots * 2);
    if (slots !== this.slots) {
      this.slots = slots;
      this.pendingProbs = new Float64Array(this.learners.length * slots * this.classes);
    }
    const stride = this.slots * this.classes;
    for (let i = 0; i < this.learners.length; i++) {
      unpackRing(state.pendingProbs.subarray(i * perLearner, (i + 1) * perLearner), this.pendingProbs.subarray(i * stride, (i + 1) * stride), this.classes, this.slots, 0);
    }
    this.head = 0;
    this.count = count;
    this.unscored = state.cursor[2];
    this.learners.forEach((learner, i) => learner.setState(state.learners[i]));
  }
}
