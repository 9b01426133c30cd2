// Online temperature scaling: q = softmax(a log p) over a learner's own probabilities p, with
// the sharpness a = 1/T learned from the same resolved ticks, each weighing what it weighs in
// the prequential log-loss. The learner underneath keeps training on its own p, so its
// gradient stays exact, and a > 0 never reorders the classes, so accuracy is untouched.
//
// Why it is needed: the learners clip their gradient to a global norm (most updates on real
// books hit it). That caps how hard a confidently wrong tick can pull, which helps their
// ranking (without the clip rtrl's accuracy on LOBSTER AMZN fell from 0.591 to 0.586) but
// leaves their p far too sharp: the sharpness learned on AMZN settles near 0.2, T close to 5.
// One scalar fitted to the scored loss fixes the probabilities and cannot touch the ranking.
import type { LearnerStats, OnlineLearner } from './learner.js';
import { decodeState, encodeState, packChunks, packRing, requireArray, requireSameConfig, unpackChunks, unpackRing } from './state-codec.js';
import { BatchSizeAverage, type PendingMode } from './targets.js';

export interface TemperatureConfig {
  /** Step on ln(a) per resolution, times the tick-weighted gradient of the scored log-loss. */
  readonly rate: number;
  /** The wrapped learner's pending mode: batches resolve all at once, FIFO one tick at a time. */
  readonly pending: PendingMode;
}

/** ln(a) stays within [ln 0.01, ln 100]: a temperature between 0.01 and 100. */
const MAX_LOG_SHARPNESS = Math.log(100);
/** Probabilities are floored here before the log so a hard 0 stays finite. */
const PROBABILITY_FLOOR = 1e-300;

export class TemperatureScaled implements OnlineLearner {
  readonly name: string;
  readonly classes: number;
  /** [ln a]. */
  private readonly logSharpness = new Float64Array(1);
  private readonly raw: Float64Array;
  private readonly logits: Float64Array;
  /**
   * Per pending tick, the scaled logits z = a ln p (C) and the expected logit sum_c q_c z_c (1):
   * d(-ln q_y)/d(ln a) = sum_c q_c z_c - z_y. Batch mode keeps one running sum of them (every
   * pending tick resolves with the same label and was predicted under the same a); FIFO mode a
   * ring of `capacity` slots.
   */
  private readonly terms: Float64Array;
  private readonly capacity: number;
  /** [head, pending count]. */
  private readonly cursor = new Float64Array(2);
  private readonly batchSizes = new BatchSizeAverage();

  constructor(
    readonly inner: OnlineLearner,
    readonly config: TemperatureConfig,
  ) {
    if (!(Number.isFinite(config.rate) && config.rate > 0)) throw new Error(`temperature.rate: must be a finite number > 0, got ${config.rate}`);
    this.name = inner.name;
    this.classes = inner.classes;
    this.raw = new Float64Array(this.classes);
    this.logits = new Float64Array(this.classes);
    const batch = config.pending.kind === 'batch';
    this.capacity = batch ? config.pending.maxPending : config.pending.capacity;
    this.terms = new Float64Array((batch ? 1 : this.capacity) * (this.classes + 1));
  }

  get stats(): LearnerStats {
    return this.inner.stats;
  }

  /** The current temperature T = 1/a (1 before any label). */
  get temperature(): number {
    return Math.exp(-this.logSharpness[0]);
  }

  predict(features: Float64Array, probs: Float64Array): void {
    const classes = this.classes;
    this.inner.predict(features, this.raw);
    const sharpness = Math.exp(this.logSharpness[0]);
    const logits = this.logits;
    let max = -Infinity;
    for (let c = 0; c < classes; c++) {
      const z = sharpness * Math.log(Math.max(this.raw[c], PROBABILITY_FLOOR));
      logits[c] = z;
      if (z > max) max = z;
    }
    let sum = 0;
    for (let c = 0; c < classes; c++) {
      probs[c] = Math.exp(logits[c] - max);
      sum += probs[c];
    }
    let expectedLogit = 0;
    for (let c = 0; c < classes; c++) {
      probs[c] /= sum;
      expectedLogit += probs[c] * logits[c];
    }
    this.remember(expectedLogit);
  }

  private remember(expectedLogit: number): void {
    const stride = this.classes + 1;
    const terms = this.terms;
    if (this.config.pending.kind === 'batch') {
      // Same rule as the learners: a batch that reached capacity expires unlabelled.
      if (this.cursor[1] >= this.capacity) this.clearPending();
      for (let c = 0; c < this.classes; c++) terms[c] += this.logits[c];
      terms[this.classes] += expectedLogit;
      this.cursor[1]++;
      return;
    }
    if (this.cursor[1] === this.capacity) {
      this.cursor[0] = (this.cursor[0] + 1) % this.capacity;
      this.cursor[1]--;
    }
    const base = ((this.cursor[0] + this.cursor[1]) % this.capacity) * stride;
    terms.set(this.logits, base);
    terms[base + this.classes] = expectedLogit;
    this.cursor[1]++;
  }

  resolve(label: number, count: number): void {
    this.inner.resolve(label, count);
    const pending = this.cursor[1];
    if (count <= 0 || pending === 0) return;
    const stride = this.classes + 1;
    if (this.config.pending.kind === 'batch') {
      const gradient = this.terms[this.classes] - this.terms[label];
      this.clearPending();
      this.step(gradient, pending);
      return;
    }
    const resolvable = Math.min(count, pending);
    for (let i = 0; i < resolvable; i++) {
      const base = this.cursor[0] * stride;
      const gradient = this.terms[base + this.classes] - this.terms[base + label];
      this.cursor[0] = (this.cursor[0] + 1) % this.capacity;
      this.cursor[1]--;
      this.step(gradient, 1);
    }
  }

  /** One step on ln(a) from the summed gradient of `ticks` ticks, weighted per tick. */
  private step(gradient: number, ticks: number): void {
    const scale = this.batchSizes.scaleFor('tick', ticks);
    const next = this.logSharpness[0] - this.config.rate * gradient * scale;
    if (!Number.isFinite(next)) return;
    this.logSharpness[0] = Math.min(MAX_LOG_SHARPNESS, Math.max(-MAX_LOG_SHARPNESS, next));
  }

  private clearPending(): void {
    if (this.config.pending.kind === 'batch') this.terms.fill(0);
    this.cursor.fill(0);
  }

  discardPending(): void {
    this.inner.discardPending();
    this.clearPending();
  }

  resetSequence(): void {
    this.inner.resetSequence();
    this.clearPending();
  }

  /** Its own small state first, then the wrapped learner's, as two chunks. A FIFO ring is saved for its pending ticks only, from slot 0. */
  getState(): Uint8Array {
    const fifo = this.config.pending.kind !== 'batch';
    const terms = fifo ? packRing(this.terms, this.classes + 1, this.capacity, this.cursor[0], this.cursor[1]) : this.terms;
    const cursor = fifo ? Float64Array.of(0, this.cursor[1]) : this.cursor;
    const own = encodeState({
      kind: 'temperature',
      meta: { config: this.config },
      arrays: { logSharpness: this.logSharpness, terms, cursor, batchSizes: this.batchSizes.state },
    });
    return packChunks([own, this.inner.getState()]);
  }

  setState(bytes: Uint8Array): void {
    const [ownBytes, innerBytes] = unpackChunks(bytes);
    if (!ownBytes || !innerBytes) throw new Error("temperature state: expected its own chunk and the wrapped learner's");
    const own = decodeState(ownBytes, 'temperature');
    requireSameConfig(own.meta.config, this.config, 'temperature config');
    const logSharpness = requireArray(own, 'logSharpness', 1);
    const cursor = requireArray(own, 'cursor', 2);
    const pending = cursor[1];
    if (!(Number.isInteger(pending) && pending >= 0 && pending <= this.capacity)) throw new Error(`temperature state: ${pending} pending ticks, at most ${this.capacity}`);
    // Checkpoints made before the ring was packed hold it whole, with its head in the cursor.
    const whole = this.config.pending.kind === 'batch' || own.arrays.terms?.length === this.terms.length;
    const terms = requireArray(own, 'terms', whole ? this.terms.length : pending * (this.classes + 1));
    const batchSizes = requireArray(own, 'batchSizes', 2);
    // The wrapped learner validates its own bytes before anything here changes.
    this.inner.setState(innerBytes);
    this.logSharpness.set(logSharpness);
    if (whole) {
      this.terms.set(terms);
    } else {
      this.terms.fill(0);
      unpackRing(terms, this.terms, this.classes + 1, this.capacity, 0);
    }
    this.cursor.set(cursor);
    this.batchSizes.state.set(batchSizes);
  }
}
