// The same online Elman network trained by truncated backpropagation through time:
// the gradient of each label's loss flows back at most `truncation` steps from the tick it
// labels (BPTT(h) of Williams & Peng). The comparison RTRL is measured against: truncation
// is cheap but blind to dependencies longer than the window.
import { allFinite, elmanOutput, elmanStateStep, inputSkipLogits } from './kernels/elman.js';
import type { NativeRtrlAddon } from './kernels/native.js';
import { currentRtrlKernel, type RtrlKernel } from './kernels/select.js';
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
  /** The addon when the native kernel runs the backward pass, else the TypeScript loop below. */
  private readonly native: NativeRtrlAddon | undefined;

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
  private readonly input: Float64Array;
  private readonly hScratch: Float64Array;
  private readonly delta: Float64Array;
  private readonly deltaA: Float64Array;
  /** Q x_t of this tick (the input skip's logits). */
  private readonly skipLogits: Float64Array;
  private readonly batchSizes = new BatchSizeAverage();

  /**
   * The native kernel runs the backward pass and the optimiser, each bit for bit the TypeScript
   * one (the forward step stays TypeScript), so a TBPTT learner predicts the same bits whichever
   * kernel runs.
   */
  constructor(
    readonly config: RecurrentConfig,
    readonly truncation: number,
    optimiser?: Optimiser,
    name = `tbptt:${truncation}`,
    kernel: RtrlKernel = currentRtrlKernel(),
  ) {
    if (!(Number.isInteger(truncation) && truncation >= 1)) throw new Error(`tbptt truncation: must be a positive integer, got ${truncation}`);
    const core = createRecurrentCore(config);
    this.name = name;
    this.native = kernel.native;
    this.layout = core.layout;
    this.params = core.params;
    this.rng = core.rng;
    this.classes = config.classes;
    const { n, d, classes: c, total } = this.layout;
    // The addon's exact Adam: the TypeScript optimiser's bits at vector speed.
    this.optimiser =
      optimiser ?? createOptimiser(config.optimiser, total, elmanDecayMask(this.layout), kernel.native === undefined ? undefined : { adam: kernel.native.exactAdam });
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
    const grad = this.grad;
    if (this.config.pending.kind === 'batch') {
      const resolved = this.pendingCount;
      grad.fill(0);
      this.accumulateOldest(label, resolved, grad);
      const scale = this.batchSizes.scaleFor(this.config.batchReduction, resolved);
      if (scale !== 1) {
        for (let i = 0; i < grad.length; i++) grad[i] *= scale;
      }
      this.stats.labels += resolved;
      countOutcome(this.stats, this.optimiser.step(this.params, grad));
      return;
    }
    const resolvable = Math.min(count, this.pendingCount);
    for (let i = 0; i < resolvable; i++) {
      grad.fill(0);
      this.accumulateOldest(label, 1, grad);
      this.stats.labels++;
      countOutcome(this.stats, this.optimiser.step(this.params, grad));
    }
  }

  /** Adds the truncated gradients of the `count` oldest pending ticks' losses to `grad`, then pops them. */
  private accumulateOldest(label: number, count: number, grad: Float64Array): void {
    if (this.native !== undefined) {
      const { n, d, classes, skipInputs, outputScale } = this.layout;
      this.native.tbpttGradient(
        n,
        d,
        classes,
        skipInputs,
        this.truncation,
        label,
        outputScale,
        this.params,
        this.historySize,
        this.historyInputs,
        this.historyHidden,
        this.pendingSlots,
        this.pendingHead,
        count,
        this.pendingTicks,
        this.pendingProbs,
        this.pendingOutputWeights,
        grad,
      );
    } else {
      for (let q = 0; q < count; q++) this.accumulateTick((this.pendingHead + q) % this.pendingSlots, label, grad);
    }
    this.pendingHead = (this.pendingHead + count) % this.pendingSlots;
    this.pendingCount -= count;
  }

  /** Adds the truncated gradient of the loss of the pending tick in `slot` to `grad` (the TypeScript kernel). */
  private accumulateTick(slot: number, label: number, grad: Float64Array): void {
    const { n, d, classes, uOffset, bOffset, vOffset, cOffset, qOffset, skipInputs, outputScale } = this.layout;
    // The rings are read in place (locals, no copies): this loop is most of a TBPTT learner's time.
    const params = this.params;
    const hidden = this.historyHidden;
    const inputs = this.historyInputs;
    const size = this.historySize;
    const probs = this.pendingProbs;
    const outputWeights = this.pendingOutputWeights;
    const t = this.pendingTicks[slot];
    const delta = this.delta;
    const deltaA = this.deltaA;
    const hT = (t % size) * n;

    // Output layer and dL/dh_t with the output weights the prediction was made with.
    delta.fill(0);
    const xT = (t % size) * d;
    for (let c = 0; c < classes; c++) {
      const error = probs[slot * classes + c] - (c === label ? 1 : 0);
      const weights = (slot * classes + c) * n;
      const gradV = vOffset + c * n;
      for (let k = 0; k < n; k++) {
        grad[gradV + k] += outputScale * error * hidden[hT + k];
        delta[k] += error * outputWeights[weights + k];
      }
      grad[cOffset + c] += error;
      const gradQ = qOffset + c * skipInputs;
      for (let j = 0; j < skipInputs; j++) grad[gradQ + j] += error * inputs[xT + j];
    }

    const oldest = Math.max(0, t - this.truncation + 1);
    for (let s = t; s >= oldest; s--) {
      const hS = (s % size) * n;
      // h before the sequence is zero: its W gradient terms vanish (adding 0 * da leaves grad as is).
      const hPrev = s >= 1 ? ((s - 1) % size) * n : -1;
      const xBase = (s % size) * d;
      for (let k = 0; k < n; k++) {
        const h = hidden[hS + k];
        deltaA[k] = delta[k] * (1 - h * h);
      }
      for (let i = 0; i < n; i++) {
        const da = deltaA[i];
        if (da === 0) continue;
        const wRow = i * n;
        if (hPrev >= 0) {
          for (let j = 0; j < n; j++) grad[wRow + j] += da * hidden[hPrev + j];
        } else {
          for (let j = 0; j < n; j++) grad[wRow + j] += da * 0;
        }
        const uRow = uOffset + i * d;
        for (let j = 0; j < d; j++) grad[uRow + j] += da * inputs[xBase + j];
        grad[bOffset + i] += da;
      }
      if (s === oldest) break;
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let i = 0; i < n; i++) sum += params[i * n + j] * deltaA[i];
        delta[j] = sum;
      }
    }
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
   * window of the oldest pending tick, or of the next tick when nothing is pending (its window
   * reaches back before the save too). */
  private liveHistoryStart(): number {
    const needed = (this.pendingCount > 0 ? this.pendingTicks[this.pendingHead] : this.tick) - this.truncation;
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
