// `mix`: an online mixture of the other configured learners, the exponentially weighted
// average forecaster on log-loss (Cesa-Bianchi & Lugosi 2006, "Prediction, Learning, and
// Games", section 3.3). It predicts p = sum_i w_i p_i with w_i proportional to
// exp(-eta L_i), L_i member i's cumulative log-loss on the resolved ticks. Log-loss is
// exp-concave with eta = 1, for which the mixture's cumulative loss stays within ln M of its
// best member's (M members) whatever the data: the rate comes from that bound, not from data.
// With eta = 1 this is the Bayesian mixture of the members as predictive distributions.
//
// Labels arrive late here: under next-move a whole run of ticks is predicted with the same
// weights and resolved at once with one shared label, so those D losses are one piece of
// evidence, not D independent ones, and an eta = 1 update per tick swings the weights D
// times too far (on a quiet Binance book, runs of 50 ticks made the mixture worse than every
// member). With feedback delayed by D rounds the exp-concave bound holds for a rate divided
// by the delay (Weinberger & Ordentlich 2002; Joulani, Gyorgy & Szepesvari 2013), so each
// update uses eta / D-bar, D-bar the running mean number of ticks outstanding when a label
// arrives. With one-step feedback (horizon:1) D-bar is 1 and this is the plain eta = 1 forecaster.
import type { LearnerStats, OnlineLearner } from './learner.js';
import { emptyStats, restoreStats, statsArray } from './learner.js';
import { decodeState, encodeState, packRing, requireArray, requireSameConfig, unpackRing } from './state-codec.js';
import { BatchSizeAverage, type PendingMode } from './targets.js';

/** The exp-concavity constant of log-loss: the largest rate the ln M regret bound holds for. */
export const MIXTURE_RATE = 1;

/** Member probabilities below this count as this for their log, so one zero never poisons a weight with -Infinity. */
const PROBABILITY_FLOOR = 1e-300;

export class MixtureLearner implements OnlineLearner {
  readonly name = 'mix';
  readonly stats: LearnerStats = emptyStats();
  /** Natural log of each member's weight, up to a constant (kept with its maximum at 0). */
  private readonly logWeights: Float64Array;
  private readonly weightScratch: Float64Array;
  /** Batch mode: per member and class, the sum of ln p over the pending ticks. */
  private readonly logSums: Float64Array;
  /** FIFO mode: per pending tick, per member and class, ln p. */
  private readonly ring: Float64Array;
  private readonly capacity: number;
  private head = 0;
  private pendingCount = 0;
  /** Running mean of the ticks outstanding when a label arrives: the delay D-bar. */
  private readonly delays = new BatchSizeAverage();
  private memberProbs: Float64Array | null = null;
  private memberOffsets: Int32Array = new Int32Array(0);

  constructor(
    readonly members: number,
    readonly classes: number,
    private readonly pending: PendingMode,
    readonly rate = MIXTURE_RATE,
  ) {
    if (!(Number.isInteger(members) && members >= 1)) throw new Error(`mix: needs at least one other model, got ${members}`);
    if (!(rate > 0 && Number.isFinite(rate))) throw new Error(`mix: rate must be a finite number > 0, got ${rate}`);
    this.logWeights = new Float64Array(members);
    this.weightScratch = new Float64Array(members);
    const stride = members * classes;
    this.capacity = pending.kind === 'batch' ? pending.maxPending : pending.capacity;
    this.logSums = new Float64Array(pending.kind === 'batch' ? stride : 0);
    this.ring = new Float64Array(pending.kind === 'batch' ? 0 : this.capacity * stride);
  }

  /**
   * Where the members' probabilities of the current tick are: `probs[offsets[i] + c]`. The
   * learner set calls this once and has every member predict before the mixture does.
   */
  bind(probs: Float64Array, offsets: readonly number[]): void {
    if (offsets.length !== this.members) throw new Error(`mix: bound to ${offsets.length} members, built for ${this.members}`);
    this.memberProbs = probs;
    this.memberOffsets = Int32Array.from(offsets);
  }

  /** The current weights, summing to 1, in member order, written into `out`. */
  weights(out: Float64Array): Float64Array {
    let total = 0;
    for (let i = 0; i < this.members; i++) total += out[i] = Math.exp(this.logWeights[i]);
    for (let i = 0; i < this.members; i++) out[i] /= total;
    return out;
  }

  predict(_features: Float64Array, probs: Float64Array): void {
    const source = this.memberProbs;
    if (source === null) throw new Error('mix: predict before bind');
    const { classes, members } = this;
    const weights = this.weights(this.weightScratch);
    for (let c = 0; c < classes; c++) probs[c] = 0;
    for (let i = 0; i < members; i++) {
      const offset = this.memberOffsets[i];
      for (let c = 0; c < classes; c++) probs[c] += weights[i] * source[offset + c];
    }
    this.remember(source);
  }

  private remember(source: Float64Array): void {
    const { classes, members } = this;
    const stride = members * classes;
    let target: Float64Array;
    let base: number;
    if (this.pending.kind === 'batch') {
      if (this.pendingCount >= this.capacity) this.discardPending();
      target = this.logSums;
      base = 0;
    } else {
      if (this.pendingCount === this.capacity) {
        this.head = (this.head + 1) % this.capacity;
        this.pendingCount--;
      }
      target = this.ring;
      base = ((this.head + this.pendingCount) % this.capacity) * stride;
    }
    const accumulate = this.pending.kind === 'batch';
    for (let i = 0; i < members; i++) {
      const offset = this.memberOffsets[i];
      for (let c = 0; c < classes; c++) {
        const p = source[offset + c];
        const logP = Math.log(p > PROBABILITY_FLOOR ? p : PROBABILITY_FLOOR);
        const at = base + i * classes + c;
        target[at] = accumulate ? target[at] + logP : logP;
      }
    }
    this.pendingCount++;
  }

  resolve(label: number, count: number): void {
    if (!(Number.isInteger(label) && label >= 0 && label < this.classes)) throw new Error(`label: must be an integer class index in [0, ${this.classes}), got ${label}`);
    if (count <= 0 || this.pendingCount === 0) return;
    const { classes, members } = this;
    const rate = this.rate / this.delays.add(this.pendingCount);
    if (this.pending.kind === 'batch') {
      // Every pending tick has the same label, so their sequential updates add up to one.
      for (let i = 0; i < members; i++) this.logWeights[i] += rate * this.logSums[i * classes + label];
      this.stats.labels += this.pendingCount;
      this.logSums.fill(0);
      this.pendingCount = 0;
    } else {
      const stride = members * classes;
      const resolvable = Math.min(count, this.pendingCount);
      for (let r = 0; r < resolvable; r++) {
        const base = this.head * stride;
        for (let i = 0; i < members; i++) this.logWeights[i] += rate * this.ring[base + i * classes + label];
        this.head = (this.head + 1) % this.capacity;
        this.pendingCount--;
      }
      this.stats.labels += resolvable;
    }
    this.stats.updates++;
    this.renormalise();
  }

  /** Shifts the log-weights so the largest is 0: same weights, no underflow over a long run. */
  private renormalise(): void {
    let max = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < this.members; i++) if (this.logWeights[i] > max) max = this.logWeights[i];
    if (!Number.isFinite(max)) {
      this.logWeights.fill(0);
      this.stats.skippedNonFinite++;
      return;
    }
    for (let i = 0; i < this.members; i++) this.logWeights[i] -= max;
  }

  discardPending(): void {
    this.logSums.fill(0);
    this.head = 0;
    this.pendingCount = 0;
  }

  resetSequence(): void {
    this.discardPending();
  }

  getState(): Uint8Array {
    const stride = this.members * this.classes;
    const pendingRows = this.pending.kind === 'batch' ? this.logSums : packRing(this.ring, stride, this.capacity, this.head, this.pendingCount);
    return encodeState({
      kind: 'mix',
      meta: { config: { members: this.members, classes: this.classes, rate: this.rate, pending: this.pending }, pendingCount: this.pendingCount },
      arrays: { logWeights: this.logWeights, pending: pendingRows, delays: this.delays.state, stats: statsArray(this.stats) },
    });
  }

  setState(bytes: Uint8Array): void {
    const state = decodeState(bytes, 'mix');
    requireSameConfig(state.meta.config, { members: this.members, classes: this.classes, rate: this.rate, pending: this.pending }, 'config');
    const pendingCount = Number(state.meta.pendingCount);
    if (!(Number.isInteger(pendingCount) && pendingCount >= 0 && pendingCount <= this.capacity))
      throw new Error(`mix state: pendingCount ${String(state.meta.pendingCount)} out of range`);
    this.logWeights.set(requireArray(state, 'logWeights', this.members));
    this.delays.state.set(requireArray(state, 'delays', 2));
    const stride = this.members * this.classes;
    if (this.pending.kind === 'batch') {
      this.logSums.set(requireArray(state, 'pending', stride));
    } else {
      unpackRing(requireArray(state, 'pending', pendingCount * stride), this.ring, stride, this.capacity, 0);
      this.head = 0;
    }
    this.pendingCount = pendingCount;
    restoreStats(this.stats, requireArray(state, 'stats', 6));
  }
}
