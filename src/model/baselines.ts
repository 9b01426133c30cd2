// The simple learners RTRL must beat, behind the same interface and target bookkeeping:
// online multinomial logistic regression on the current features, and the running class
// frequencies (majority class).
import {
  countOutcome,
  decodeLearnerState,
  emptyStats,
  encodeLearnerState,
  restoreStats,
  sanitiseInput,
  statsArray,
  type LearnerStateParts,
  type OnlineLearner,
} from './learner.js';
import { createOptimiser, defaultOptimiserConfig, type Optimiser, type OptimiserConfig } from './optimiser.js';
import { BatchSizeAverage, type BatchReduction, type PendingMode } from './targets.js';
import { decodeState, encodeState, requireArray, requireSameConfig } from './state-codec.js';

export interface LogisticConfig {
  readonly inputs: number;
  readonly classes: number;
  readonly optimiser: OptimiserConfig;
  readonly pending: PendingMode;
  readonly batchReduction: BatchReduction;
}

export const defaultLogisticOptimiser: OptimiserConfig = defaultOptimiserConfig;

/**
 * p = softmax(A x + a), parameters [A (C x d) | a (C)], zero-initialised. Its cross-entropy
 * gradient is (p - e_y) x^T, linear in the label, so batch resolution keeps running sums.
 */
export class LogisticLearner implements OnlineLearner {
  readonly name = 'logistic';
  readonly classes: number;
  readonly stats = emptyStats();
  readonly params: Float64Array;
  private readonly optimiser: Optimiser;
  private readonly input: Float64Array;
  private readonly grad: Float64Array;
  private readonly capacity: number;
  // Batch mode sums.
  private readonly sumProbInput: Float64Array; // sum p x^T (C x d)
  private readonly sumInput: Float64Array; // sum x (d)
  private readonly sumProbs: Float64Array; // sum p (C)
  private readonly batchSizes = new BatchSizeAverage();
  // FIFO mode ring.
  private readonly ringInputs: Float64Array;
  private readonly ringProbs: Float64Array;
  private head = 0;
  private pendingCount = 0;

  constructor(
    readonly config: LogisticConfig,
    optimiser?: Optimiser,
  ) {
    const { inputs: d, classes: c } = config;
    if (!(Number.isInteger(d) && d >= 1)) throw new Error(`inputs: must be a positive integer, got ${d}`);
    if (!(Number.isInteger(c) && c >= 2)) throw new Error(`classes: must be an integer >= 2, got ${c}`);
    this.classes = c;
    this.params = new Float64Array(c * d + c);
    const decayMask = new Uint8Array(this.params.length).fill(1, 0, c * d);
    this.optimiser = optimiser ?? createOptimiser(config.optimiser, this.params.length, decayMask);
    this.input = new Float64Array(d);
    this.grad = new Float64Array(this.params.length);
    const batch = config.pending.kind === 'batch';
    this.capacity = batch ? config.pending.maxPending : config.pending.capacity;
    this.sumProbInput = new Float64Array(batch ? c * d : 0);
    this.sumInput = new Float64Array(batch ? d : 0);
    this.sumProbs = new Float64Array(batch ? c : 0);
    this.ringInputs = new Float64Array(batch ? 0 : this.capacity * d);
    this.ringProbs = new Float64Array(batch ? 0 : this.capacity * c);
  }

  predict(features: Float64Array, probs: Float64Array): void {
    const { inputs: d, classes } = this.config;
    const bad = sanitiseInput(features, this.input);
    if (bad > 0) this.stats.nonFiniteInputs += bad;
    const x = this.input;
    const biasOffset = classes * d;
    let max = -Infinity;
    for (let c = 0; c < classes; c++) {
      let z = this.params[biasOffset + c];
      for (let j = 0; j < d; j++) z += this.params[c * d + j] * x[j];
      probs[c] = z;
      if (z > max) max = z;
    }
    let sum = 0;
    for (let c = 0; c < classes; c++) {
      probs[c] = Math.exp(probs[c] - max);
      sum += probs[c];
    }
    for (let c = 0; c < classes; c++) probs[c] /= sum;

    if (this.config.pending.kind === 'batch') {
      if (this.pendingCount >= this.capacity) this.discardPending();
      for (let c = 0; c < classes; c++) {
        const pc = probs[c];
        for (let j = 0; j < d; j++) this.sumProbInput[c * d + j] += pc * x[j];
        this.sumProbs[c] += pc;
      }
      for (let j = 0; j < d; j++) this.sumInput[j] += x[j];
      this.pendingCount++;
      return;
    }
    if (this.pendingCount === this.capacity) {
      this.head = (this.head + 1) % this.capacity;
      this.pendingCount--;
    }
    const slot = (this.head + this.pendingCount) % this.capacity;
    this.ringInputs.set(x, slot * d);
    for (let c = 0; c < classes; c++) this.ringProbs[slot * classes + c] = probs[c];
    this.pendingCount++;
  }

  resolve(label: number, count: number): void {
    const { inputs: d, classes } = this.config;
    if (!(Number.isInteger(label) && label >= 0 && label < classes)) throw new Error(`label: must be an integer class index in [0, ${classes}), got ${label}`);
    if (count <= 0 || this.pendingCount === 0) return;
    const grad = this.grad;
    const biasOffset = classes * d;
    if (this.config.pending.kind === 'batch') {
      const resolved = this.pendingCount;
      for (let c = 0; c < classes; c++) {
        const target = c === label ? 1 : 0;
        for (let j = 0; j < d; j++) grad[c * d + j] = this.sumProbInput[c * d + j] - target * this.sumInput[j];
        grad[biasOffset + c] = this.sumProbs[c] - target * resolved;
      }
      const scale = this.batchSizes.scaleFor(this.config.batchReduction, resolved);
      if (scale !== 1) {
        for (let i = 0; i < grad.length; i++) grad[i] *= scale;
      }
      this.discardPending();
      this.stats.labels += resolved;
      countOutcome(this.stats, this.optimiser.step(this.params, grad));
      return;
    }
    const resolvable = Math.min(count, this.pendingCount);
    for (let r = 0; r < resolvable; r++) {
      const slot = this.head;
      for (let c = 0; c < classes; c++) {
        const error = this.ringProbs[slot * classes + c] - (c === label ? 1 : 0);
        for (let j = 0; j < d; j++) grad[c * d + j] = error * this.ringInputs[slot * d + j];
        grad[biasOffset + c] = error;
      }
      this.head = (this.head + 1) % this.capacity;
      this.pendingCount--;
      this.stats.labels++;
      countOutcome(this.stats, this.optimiser.step(this.params, grad));
    }
  }

  discardPending(): void {
    this.sumProbInput.fill(0);
    this.sumInput.fill(0);
    this.sumProbs.fill(0);
    this.head = 0;
    this.pendingCount = 0;
  }

  resetSequence(): void {
    this.discardPending();
  }

  private stateParts(): LearnerStateParts {
    return {
      kind: 'logistic',
      meta: { config: this.config, head: this.head, pendingCount: this.pendingCount },
      arrays: {
        params: this.params,
        sumProbInput: this.sumProbInput,
        sumInput: this.sumInput,
        sumProbs: this.sumProbs,
        batchSizes: this.batchSizes.state,
        ringInputs: this.ringInputs,
        ringProbs: this.ringProbs,
      },
      optimiser: this.optimiser,
      stats: this.stats,
    };
  }

  getState(): Uint8Array {
    return encodeLearnerState(this.stateParts());
  }

  setState(bytes: Uint8Array): void {
    const { meta } = decodeLearnerState(bytes, this.stateParts());
    this.head = Number(meta.head);
    this.pendingCount = Number(meta.pendingCount);
  }
}

/**
 * Predicts the running class frequencies (add-one smoothed): the majority class wins the
 * argmax. Pending ticks carry nothing to learn from but their count.
 */
export class MajorityLearner implements OnlineLearner {
  readonly name = 'majority';
  readonly stats = emptyStats();
  private readonly counts: Float64Array;

  constructor(readonly classes: number) {
    if (!(Number.isInteger(classes) && classes >= 2)) throw new Error(`classes: must be an integer >= 2, got ${classes}`);
    this.counts = new Float64Array(classes);
  }

  predict(_features: Float64Array, probs: Float64Array): void {
    let total = 0;
    for (let c = 0; c < this.classes; c++) total += this.counts[c];
    for (let c = 0; c < this.classes; c++) probs[c] = (this.counts[c] + 1) / (total + this.classes);
  }

  resolve(label: number, count: number): void {
    if (!(Number.isInteger(label) && label >= 0 && label < this.classes)) throw new Error(`label: must be an integer class index in [0, ${this.classes}), got ${label}`);
    if (count <= 0) return;
    this.counts[label] += count;
    this.stats.labels += count;
    this.stats.updates++;
  }

  discardPending(): void {}

  resetSequence(): void {}

  getState(): Uint8Array {
    return encodeState({ kind: 'majority', meta: { classes: this.classes }, arrays: { counts: this.counts, stats: statsArray(this.stats) } });
  }

  setState(bytes: Uint8Array): void {
    const state = decodeState(bytes, 'majority');
    requireSameConfig(state.meta.classes, this.classes, 'classes');
    this.counts.set(requireArray(state, 'counts', this.classes));
    restoreStats(this.stats, requireArray(state, 'stats', 6));
  }
}
