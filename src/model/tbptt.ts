// The same online Elman network trained by truncated backpropagation through time:
// the gradient of each label's loss flows back at most `truncation` steps from the tick it
// labels (BPTT(h) of Williams & Peng). The comparison RTRL is measured against: truncation
// is cheap but blind to dependencies longer than the window.
import { allFinite, elmanOutput, elmanStateStep, inputSkipLogits } from './kernels/elman.js';
import { countOutcome, decodeLearnerState, emptyStats, encodeLearnerState, sanitiseInput, type LearnerStateParts, type OnlineLearner } from './learner.js';
import { elmanDecayMask, type ElmanLayout } from './network.js';
import { createOptimiser, type Optimiser } from './optimiser.js';
import { createRecurrentCore, type RecurrentConfig } from './recurrent-config.js';
import { packRing, requireSameConfig, unpackRing } from './state-codec.js';
import type { Rng } from './rng.js';
import { scratchBuffer } from './scratch.js';
import { BatchSizeAverage } from './targets.js';

/**
 * Pending ticks the rings hold before they first grow: on a moving book a label resolves within
 * a few ticks, so most symbols never need more, and a thousand idle ones hold 8 slots each.
 */
const INITIAL_PENDING_SLOTS = 8;

export class TbpttLearner implements OnlineLearner {
  readonly name: string;
  readonly classes: number;
  readonly stats = emptyStats();
  readonly layout: ElmanLayout;
  readonly params: Float64Array;
  private readonly optimiser: Optimiser;
  private readonly rng: Rng;

  /**
   * History ring: slot of tick t (t mod `historySize`) holds x_t and h_t. It must reach back from
   * the newest tick to the window start of the oldest pending one; it starts small and doubles
   * (up to truncation + pending capacity + 1) when a still book leaves many ticks pending.
   */
  private historySize: number;
  private readonly maxHistorySize: number;
  private historyInputs: Float64Array;
  private historyHidden: Float64Array;
  /** Ticks since the sequence started (a reset starts a new one); the newest tick is tick - 1. */
  private tick = 0;

  /** Pending ticks, oldest first: tick index, probabilities, and s*V at prediction time. */
  private readonly pendingCapacity: number;
  /** Allocated pending slots: grows by doubling up to `pendingCapacity`. */
  private pendingSlots: number;
  private pendingTicks: Float64Array;
  private pendingProbs: Float64Array;
  private pendingOutputWeights: Float64Array;
  private pendingHead = 0;
  private pendingCount = 0;

  /** h_{t-1} and h_s copied out of the history for the kernels (h before a sequence is zero). */
  private readonly hPrevious: Float64Array;
  private readonly hCurrent: Float64Array;
  private readonly input: Float64Array;
  private readonly hScratch: Float64Array;
  private readonly delta: Float64Array;
  private readonly deltaA: Float64Array;
  /** Q x_t of this tick (the input skip's logits). */
  private readonly skipLogits: Float64Array;
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
    this.maxHistorySize = truncation + this.pendingCapacity + 1;
    this.historySize = Math.min(this.maxHistorySize, truncation + INITIAL_PENDING_SLOTS + 1);
    this.historyInputs = new Float64Array(this.historySize * d);
    this.historyHidden = new Float64Array(this.historySize * n);
    this.pendingSlots = Math.min(this.pendingCapacity, INITIAL_PENDING_SLOTS);
    this.pendingTicks = new Float64Array(this.pendingSlots);
    this.pendingProbs = new Float64Array(this.pendingSlots * c);
    this.pendingOutputWeights = new Float64Array(this.pendingSlots * c * n);
    this.hPrevious = new Float64Array(n);
    this.hCurrent = new Float64Array(n);
    this.input = new Float64Array(d);
    this.hScratch = new Float64Array(n);
    this.delta = new Float64Array(n);
    this.deltaA = new Float64Array(n);
    this.skipLogits = new Float64Array(c);
  }

  get pending(): number {
    return this.pendingCount;
  }

  predict(features: Float64Array, probs: Float64Array): void {
    const { n, d, classes, vOffset, qOffset, skipInputs, outputScale } = this.layout;
    const bad = sanitiseInput(features, this.input);
    if (bad > 0) this.stats.nonFiniteInputs += bad;
    if (this.pendingCount === this.pendingSlots && this.pendingSlots < this.pendingCapacity) this.growPending();
    // The new tick's window start must stay in the history: from the oldest pending tick's
    // window start to this tick.
    const oldestNeeded = this.pendingCount > 0 ? Math.max(0, this.pendingTicks[this.pendingHead] - this.truncation) : this.tick;
    if (this.tick - oldestNeeded + 1 > this.historySize && this.historySize < this.maxHistorySize) this.growHistory(oldestNeeded);
    this.loadHidden(this.tick - 1, this.hPrevious);
    elmanStateStep(n, d, this.params, this.hPrevious, this.input, this.hScratch);
    if (!allFinite(this.hScratch, 0, n)) {
      this.hScratch.fill(0);
      this.stats.stateResets++;
    }
    const slot = this.tick % this.historySize;
    this.historyHidden.set(this.hScratch, slot * n);
    this.historyInputs.set(this.input, slot * d);
    if (skipInputs > 0) inputSkipLogits(classes, d, qOffset, this.params, this.input, this.skipLogits);
    elmanOutput(n, classes, vOffset, outputScale, this.params, this.hScratch, probs, skipInputs > 0 ? this.skipLogits : undefined);

    if (this.pendingCount === this.pendingSlots) {
      this.pendingHead = (this.pendingHead + 1) % this.pendingSlots;
      this.pendingCount--;
    }
    const p = (this.pendingHead + this.pendingCount) % this.pendingSlots;
    this.pendingTicks[p] = this.tick;
    for (let c = 0; c < classes; c++) {
      this.pendingProbs[p * classes + c] = probs[c];
      const dst = (p * classes + c) * n;
      for (let k = 0; k < n; k++) this.pendingOutputWeights[dst + k] = outputScale * this.params[vOffset + c * n + k];
    }
    this.pendingCount++;
    this.tick++;
  }

  /** Copies h of a tick of the current sequence into `into`; before its start the state is zero. */
  private loadHidden(tick: number, into: Float64Array): Float64Array {
    if (tick < 0) {
      into.fill(0);
    } else {
      const from = (tick % this.historySize) * this.layout.n;
      into.set(this.historyHidden.subarray(from, from + this.layout.n));
    }
    return into;
  }

  /** Doubles the pending ring (up to its capacity), laying it out from slot 0. */
  private growPending(): void {
    const { n, classes } = this.layout;
    const slots = Math.min(this.pendingCapacity, this.pendingSlots * 2);
    const regrow = (values: Float64Array, stride: number) => {
      const grown = new Float64Array(slots * stride);
      grown.set(packRing(values, stride, this.pendingSlots, this.pendingHead, this.pendingCount));
      return grown;
    };
    this.pendingTicks = regrow(this.pendingTicks, 1);
    this.pendingProbs = regrow(this.pendingProbs, classes);
    this.pendingOutputWeights = regrow(this.pendingOutputWeights, classes * n);
    this.pendingSlots = slots;
    this.pendingHead = 0;
  }

  /** Grows the history so ticks `from` .. tick (inclusive) fit, keeping each at slot t mod size. */
  private growHistory(from: number): void {
    const { n, d } = this.layout;
    let size = this.historySize;
    while (size < this.tick - from + 1) size *= 2;
    size = Math.min(this.maxHistorySize, size);
    const inputs = new Float64Array(size * d);
    const hidden = new Float64Array(size * n);
    for (let t = from; t < this.tick; t++) {
      const oldSlot = t % this.historySize;
      const newSlot = t % size;
      inputs.set(this.historyInputs.subarray(oldSlot * d, oldSlot * d + d), newSlot * d);
      hidden.set(this.historyHidden.subarray(oldSlot * n, oldSlot * n + n), newSlot * n);
    }
    this.historyInputs = inputs;
    this.historyHidden = hidden;
    this.historySize = size;
  }

  /** The gradient being summed: the thread's scratch, as it lives only within one resolve. */
  private get grad(): Float64Array {
    return scratchBuffer('gradient', this.layout.total);
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
    const { n, d, classes, uOffset, bOffset, vOffset, cOffset, qOffset, skipInputs, outputScale } = this.layout;
    const params = this.params;
    const grad = this.grad;
    const slot = this.pendingHead;
    const t = this.pendingTicks[slot];
    const delta = this.delta;
    const deltaA = this.deltaA;
    const hT = this.loadHidden(t, this.hCurrent);

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
      const xT = (t % this.historySize) * d;
      for (let j = 0; j < skipInputs; j++) grad[qOffset + c * skipInputs + j] += error * this.historyInputs[xT + j];
    }

    const oldest = Math.max(0, t - this.truncation + 1);
    for (let s = t; s >= oldest; s--) {
      const hS = this.loadHidden(s, this.hCurrent);
      const hPrev = this.loadHidden(s - 1, this.hPrevious);
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
    this.pendingHead = (this.pendingHead + 1) % this.pendingSlots;
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
    const pending = (values: Float64Array, stride: number) => packRing(values, stride, this.pendingSlots, this.pendingHead, this.pendingCount);
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
    const empty = new Float64Array(0);
    const pendingTicks = arrays.pendingTicks ?? empty;
    const historyInputs = arrays.historyInputs ?? empty;
    // Size the rings for what was saved before unpacking into them.
    let slots = Math.min(this.pendingCapacity, INITIAL_PENDING_SLOTS);
    while (slots < pendingTicks.length && slots < this.pendingCapacity) slots = Math.min(this.pendingCapacity, slots * 2);
    this.pendingSlots = slots;
    this.pendingTicks = new Float64Array(slots);
    this.pendingProbs = new Float64Array(slots * classes);
    this.pendingOutputWeights = new Float64Array(slots * classes * n);
    let size = Math.min(this.maxHistorySize, this.truncation + INITIAL_PENDING_SLOTS + 1);
    while (size < historyInputs.length / d + 1 && size < this.maxHistorySize) size = Math.min(this.maxHistorySize, size * 2);
    this.historySize = size;
    this.historyInputs = new Float64Array(size * d);
    this.historyHidden = new Float64Array(size * n);
    const historyStart = Number(meta.historyFrom) % this.historySize;
    unpackRing(historyInputs, this.historyInputs, d, this.historySize, historyStart);
    unpackRing(arrays.historyHidden ?? empty, this.historyHidden, n, this.historySize, historyStart);
    this.pendingHead = 0;
    this.pendingCount = unpackRing(pendingTicks, this.pendingTicks, 1, this.pendingSlots, 0);
    unpackRing(arrays.pendingProbs ?? empty, this.pendingProbs, classes, this.pendingSlots, 0);
    unpackRing(arrays.pendingOutputWeights ?? empty, this.pendingOutputWeights, classes * n, this.pendingSlots, 0);
  }
}
