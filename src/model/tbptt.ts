// The same online Elman network trained by truncated backpropagation through time:
// the gradient of each label's loss flows back at most `truncation` steps from the tick it
// labels (BPTT(h) of Williams & Peng). The comparison RTRL is measured against: truncation
// is cheap but blind to dependencies longer than the window.
import { allFinite, elmanOutput, elmanStateStep } from './kernels/elman.js';
import { countOutcome, decodeLearnerState, emptyStats, encodeLearnerState, sanitiseInput, type LearnerStateParts, type OnlineLearner } from './learner.js';
import { elmanDecayMask, type ElmanLayout } from './network.js';
import { createOptimiser, type Optimiser } from './optimiser.js';
import { createRecurrentCore, type RecurrentConfig } from './recurrent-config.js';
import { packRing, requireSameConfig, unpackRing } from './state-codec.js';
import type { Rng } from './rng.js';
import { BatchSizeAverage } from './targets.js';

export class TbpttLearner implements OnlineLearner {
  readonly name: string;
  readonly classes: number;
  readonly stats = emptyStats();
  readonly layout: ElmanLayout;
  readonly params: Float64Array;
  private readonly optimiser: Optimiser;
  private readonly rng: Rng;

  /** History ring: slot of tick t holds x_t and h_t; `historySize` >= truncation + pending. */
  private readonly historySize: number;
  private readonly historyInputs: Float64Array;
  private readonly historyHidden: Float64Array;
  /** Ticks since the sequence started (a reset starts a new one); the newest tick is tick - 1. */
  private tick = 0;

  /** Pending ticks, oldest first: tick index, probabilities, and s*V at prediction time. */
  private readonly pendingCapacity: number;
  private readonly pendingTicks: Float64Array;
  private readonly pendingProbs: Float64Array;
  private readonly pendingOutputWeights: Float64Array;
  private pendingHead = 0;
  private pendingCount = 0;

  /** One view per history slot, made once so reading the history allocates nothing. */
  private readonly hiddenViews: Float64Array[];
  private readonly initialHidden: Float64Array;
  private readonly input: Float64Array;
  private readonly hScratch: Float64Array;
  private readonly delta: Float64Array;
  private readonly deltaA: Float64Array;
  private readonly grad: Float64Array;
  private readonly batchSizes = new BatchSizeAverage();

  constructor(readonly config: RecurrentConfig, readonly truncation: number, optimiser?: Optimiser, name = `tbptt:${truncation}`) {
    if (!(Number.isInteger(truncation) && truncation >= 1)) throw new Error(`tbptt truncation: must be a positive integer, got ${truncation}`);
    const core = createRecurrentCore(config);
    this.name = name;
    this.layout = core.layout;
    this.params = core.params;
    this.rng = core.rng;
    this.classes = config.classes;
    const { n, d, classes: c, total } = this.layout;
    this.optimiser = optimiser ?? createOptimiser(config.optimiser, total, elmanDecayMask(this.layout));
    this.pendingCapacity = config.pending.kind === 'batch' ? config.pending.maxPending : config.pending.capacity;
    // +1 keeps h_{t-truncation} (the state the window starts from) of the oldest pending tick.
    this.historySize = truncation + this.pendingCapacity + 1;
    this.historyInputs = new Float64Array(this.historySize * d);
    this.historyHidden = new Float64Array(this.historySize * n);
    this.pendingTicks = new Float64Array(this.pendingCapacity);
    this.pendingProbs = new Float64Array(this.pendingCapacity * c);
    this.pendingOutputWeights = new Float64Array(this.pendingCapacity * c * n);
    this.hiddenViews = Array.from({ length: this.historySize }, (_, slot) => this.historyHidden.subarray(slot * n, slot * n + n));
    this.initialHidden = new Float64Array(n);
    this.input = new Float64Array(d);
    this.hScratch = new Float64Array(n);
    this.delta = new Float64Array(n);
    this.deltaA = new Float64Array(n);
    this.grad = new Float64Array(total);
  }

  get pending(): number {
    return this.pendingCount;
  }

  predict(features: Float64Array, probs: Float64Array): void {
    const { n, d, classes, vOffset, outputScale } = this.layout;
    const bad = sanitiseInput(features, this.input);
    if (bad > 0) this.stats.nonFiniteInputs += bad;
    const previous = this.hiddenAt(this.tick - 1);
    elmanStateStep(n, d, this.params, previous, this.input, this.hScratch);
    if (!allFinite(this.hScratch, 0, n)) {
      this.hScratch.fill(0);
      this.stats.stateResets++;
    }
    const slot = this.tick % this.historySize;
    this.historyHidden.set(this.hScratch, slot * n);
    this.historyInputs.set(this.input, slot * d);
    elmanOutput(n, classes, vOffset, outputScale, this.params, this.hScratch, probs);

    if (this.pendingCount === this.pendingCapacity) {
      this.pendingHead = (this.pendingHead + 1) % this.pendingCapacity;
      this.pendingCount--;
    }
    const p = (this.pendingHead + this.pendingCount) % this.pendingCapacity;
    this.pendingTicks[p] = this.tick;
    for (let c = 0; c < classes; c++) {
      this.pendingProbs[p * classes + c] = probs[c];
      const dst = (p * classes + c) * n;
      for (let k = 0; k < n; k++) this.pendingOutputWeights[dst + k] = outputScale * this.params[vOffset + c * n + k];
    }
    this.pendingCount++;
    this.tick++;
  }

  /** h of a tick of the current sequence; before its start the state is zero. */
  private hiddenAt(tick: number): Float64Array {
    if (tick < 0) return this.initialHidden;
    return this.hiddenViews[tick % this.historySize];
  }

  resolve(label: number, count: number): void {
    if (!(Number.isInteger(label) && label >= 0 && label < this.classes)) throw new Error(`label: must be an integer class index in [0, ${this.classes}), got ${label}`);
    if (count <= 0 || this.pendingCount === 0) return;
    if (this.config.pending.kind === 'batch') {
      const resolved = this.pendingCount;
      this.grad.fill(0);
      while (this.pendingCount > 0) this.accumulateOldest(label);
      const scale = this.batchSizes.scaleFor(this.config.batchReduction, resolved);
      if (scale !== 1) {
        for (let i = 0; i < this.grad.length; i++) this.grad[i] *= scale;
      }
      this.stats.labels += resolved;
      countOutcome(this.stats, this.optimiser.step(this.params, this.grad));
      return;
    }
    const resolvable = Math.min(count, this.pendingCount);
    for (let i = 0; i < resolvable; i++) {
      this.grad.fill(0);
      this.accumulateOldest(label);
      this.stats.labels++;
      countOutcome(this.stats, this.optimiser.step(this.params, this.grad));
    }
  }

  /** Adds the truncated gradient of the oldest pending tick's loss to `grad`, then pops it. */
  private accumulateOldest(label: number): void {
    const { n, d, classes, uOffset, bOffset, vOffset, cOffset, outputScale } = this.layout;
    const params = this.params;
    const grad = this.grad;
    const slot = this.pendingHead;
    const t = this.pendingTicks[slot];
    const delta = this.delta;
    const deltaA = this.deltaA;
    const hT = this.hiddenAt(t);

    // Output layer and dL/dh_t with the output weights the prediction was made with.
    delta.fill(0);
    for (let c = 0; c < classes; c++) {
      const error = this.pendingProbs[slot * classes + c] - (c === label ? 1 : 0);
      const weights = (slot * classes + c) * n;
      for (let k = 0; k < n; k++) {
        grad[vOffset + c * n + k] += outputScale * error * hT[k];
        delta[k] += error * this.pendingOutputWeights[weights + k];
      }
      grad[cOffset + c] += error;
    }

    const oldest = Math.max(0, t - this.truncation + 1);
    for (let s = t; s >= oldest; s--) {
      const hS = this.hiddenAt(s);
      const hPrev = this.hiddenAt(s - 1);
      const xBase = (s % this.historySize) * d;
      for (let k = 0; k < n; k++) deltaA[k] = delta[k] * (1 - hS[k] * hS[k]);
      for (let i = 0; i < n; i++) {
        const da = deltaA[i];
        if (da === 0) continue;
        const wRow = i * n;
        for (let j = 0; j < n; j++) grad[wRow + j] += da * hPrev[j];
        const uRow = uOffset + i * d;
        for (let j = 0; j < d; j++) grad[uRow + j] += da * this.historyInputs[xBase + j];
        grad[bOffset + i] += da;
      }
      if (s === oldest) break;
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let i = 0; i < n; i++) sum += params[i * n + j] * deltaA[i];
        delta[j] = sum;
      }
    }
    this.pendingHead = (this.pendingHead + 1) % this.pendingCapacity;
    this.pendingCount--;
  }

  discardPending(): void {
    this.pendingHead = 0;
    this.pendingCount = 0;
  }

  resetSequence(): void {
    this.discardPending();
    this.tick = 0;
    this.historyHidden.fill(0);
    this.historyInputs.fill(0);
  }

  /** The first tick whose history a restored learner can still need: the state before the
   * oldest pending tick's window, or the latest state when nothing is pending. */
  private liveHistoryStart(): number {
    const needed = this.pendingCount > 0 ? this.pendingTicks[this.pendingHead] - this.truncation : this.tick - 1;
    return Math.max(0, Math.min(this.tick - 1, needed));
  }

  private stateParts(): LearnerStateParts {
    return {
      kind: 'tbptt',
      meta: { config: this.config, truncation: this.truncation, tick: this.tick },
      arrays: { params: this.params, batchSizes: this.batchSizes.state },
      optimiser: this.optimiser,
      stats: this.stats,
      rng: this.rng,
    };
  }

  getState(): Uint8Array {
    const { n, d, classes } = this.layout;
    const parts = this.stateParts();
    // Only the live part of the rings: the preallocated history covers maxPending ticks.
    const historyFrom = this.liveHistoryStart();
    const live = Math.max(0, this.tick - historyFrom);
    const historyStart = historyFrom % this.historySize;
    const pending = (values: Float64Array, stride: number) => packRing(values, stride, this.pendingCapacity, this.pendingHead, this.pendingCount);
    return encodeLearnerState({
      ...parts,
      meta: { ...parts.meta, historyFrom },
      arrays: {
        ...parts.arrays,
        historyInputs: packRing(this.historyInputs, d, this.historySize, historyStart, live),
        historyHidden: packRing(this.historyHidden, n, this.historySize, historyStart, live),
        pendingTicks: pending(this.pendingTicks, 1),
        pendingProbs: pending(this.pendingProbs, classes),
        pendingOutputWeights: pending(this.pendingOutputWeights, classes * n),
      },
    });
  }

  setState(bytes: Uint8Array): void {
    const { n, d, classes } = this.layout;
    const { meta, arrays } = decodeLearnerState(bytes, this.stateParts());
    requireSameConfig(meta.truncation, this.truncation, 'truncation');
    this.tick = Number(meta.tick);
    const historyStart = Number(meta.historyFrom) % this.historySize;
    const empty = new Float64Array(0);
    unpackRing(arrays.historyInputs ?? empty, this.historyInputs, d, this.historySize, historyStart);
    unpackRing(arrays.historyHidden ?? empty, this.historyHidden, n, this.historySize, historyStart);
    this.pendingHead = 0;
    this.pendingCount = unpackRing(arrays.pendingTicks ?? empty, this.pendingTicks, 1, this.pendingCapacity, 0);
    unpackRing(arrays.pendingProbs ?? empty, this.pendingProbs, classes, this.pendingCapacity, 0);
    unpackRing(arrays.pendingOutputWeights ?? empty, this.pendingOutputWeights, classes * n, this.pendingCapacity, 0);
  }
}
