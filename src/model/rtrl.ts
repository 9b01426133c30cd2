// Online Elman network trained by exact real-time recurrent learning. It carries
// S_t = d h_t / d(W, U, b) forward every tick, so the gradient of a loss at any tick is exact
// over the whole history, with no truncation. Labels arrive later (see targets.ts): instead of
// one N x P sensitivity per pending tick it keeps each tick's sensitivity projected through
// the output layer (C rows of P), which is all a cross-entropy gradient needs, and in batch
// mode only their running sums.
import { allFinite, elmanOutput, elmanStateStep, inputSkipLogits, projectSensitivity, rtrlSensitivityStep } from './kernels/elman.js';
import type { NativeRtrlAddon } from './kernels/native.js';
import { currentRtrlKernel, type RtrlKernel } from './kernels/select.js';
import { countOutcome, decodeLearnerState, emptyStats, encodeLearnerState, sanitiseInput, type LearnerStateParts, type OnlineLearner } from './learner.js';
import { elmanDecayMask, type ElmanLayout } from './network.js';
import { createOptimiser, type Optimiser } from './optimiser.js';
import { createRecurrentCore, type RecurrentConfig } from './recurrent-config.js';
import type { Rng } from './rng.js';
import { returnSpare, scratchBuffer, takeSpare } from './scratch.js';
import { packRing, requireArray, unpackRing } from './state-codec.js';
import { BatchSizeAverage } from './targets.js';

/** FIFO slots allocated before the ring first grows (doubling up to its capacity). */
const INITIAL_RING_SLOTS = 8;

export class RtrlLearner implements OnlineLearner {
  readonly name: string;
  readonly classes: number;
  readonly stats = emptyStats();
  readonly layout: ElmanLayout;
  /** Flat parameters [W | U | b | V | c]; exposed read-only for tests and inspection. */
  readonly params: Float64Array;
  private readonly optimiser: Optimiser;
  private readonly rng: Rng;
  /** The addon when the native kernel runs this learner's ticks, else the TypeScript kernels. */
  private readonly native: NativeRtrlAddon | undefined;

  private h: Float64Array;
  private hNext: Float64Array;
  /** S_t, N x P. The next one is written into the thread's spare and the two trade places (scratch.ts). */
  private s: Float64Array;
  private readonly input: Float64Array;

  // Batch mode (next-move): running sums over the pending ticks.
  private readonly sumRows: Float64Array; // sum_t rows_t            (C x P)
  private readonly sumProbRows: Float64Array; // sum_t sum_c p_tc rows_tc (P)
  private readonly sumProbHidden: Float64Array; // sum_t p_t h_t^T      (C x N)
  private readonly sumHidden: Float64Array; // sum_t h_t                 (N)
  private readonly sumProbs: Float64Array; // sum_t p_t                  (C)
  private readonly sumProbInput: Float64Array; // sum_t p_t x_t^T          (C x d, input skip)
  private readonly sumInput: Float64Array; // sum_t x_t                    (d, input skip)
  private readonly batchSizes = new BatchSizeAverage();

  // FIFO mode (horizon:k): one slot per pending tick, in a ring of `ringSlots` that doubles up to
  // `capacity` as ticks wait (a time horizon allows 512, of C x P floats each).
  private ringRows: Float64Array; // slots x C x P
  private ringProbs: Float64Array; // slots x C
  private ringHidden: Float64Array; // slots x N
  private ringInputs: Float64Array; // slots x d (input skip)
  private ringSlots: number;
  /** Q x_t of this tick, added to the logits; null without the input skip. */
  private readonly skipLogits: Float64Array | null;
  private readonly capacity: number;
  private head = 0;
  private pendingCount = 0;

  constructor(
    readonly config: RecurrentConfig,
    optimiser?: Optimiser,
    name = 'rtrl',
    readonly kernel: RtrlKernel = currentRtrlKernel(),
  ) {
    const core = createRecurrentCore(config);
    this.name = name;
    this.native = kernel.native;
    this.layout = core.layout;
    this.params = core.params;
    this.rng = core.rng;
    this.classes = config.classes;
    const { n, d, classes: c, recurrent: p, total, skipInputs } = this.layout;
    this.optimiser = optimiser ?? createOptimiser(config.optimiser, total, elmanDecayMask(this.layout), kernel.native);
    this.h = new Float64Array(n);
    this.hNext = new Float64Array(n);
    this.s = new Float64Array(n * p);
    this.input = new Float64Array(d);
    const batch = config.pending.kind === 'batch';
    this.capacity = batch ? config.pending.maxPending : config.pending.capacity;
    this.sumRows = new Float64Array(batch ? c * p : 0);
    this.sumProbRows = new Float64Array(batch ? p : 0);
    this.sumProbHidden = new Float64Array(batch ? c * n : 0);
    this.sumHidden = new Float64Array(batch ? n : 0);
    this.sumProbs = new Float64Array(batch ? c : 0);
    this.sumProbInput = new Float64Array(batch ? c * skipInputs : 0);
    this.sumInput = new Float64Array(batch ? skipInputs : 0);
    this.ringSlots = batch ? 0 : Math.min(this.capacity, INITIAL_RING_SLOTS);
    this.ringRows = new Float64Array(this.ringSlots * c * p);
    this.ringProbs = new Float64Array(this.ringSlots * c);
    this.ringHidden = new Float64Array(this.ringSlots * n);
    this.ringInputs = new Float64Array(this.ringSlots * skipInputs);
    this.skipLogits = skipInputs > 0 ? new Float64Array(c) : null;
  }

  get pending(): number {
    return this.pendingCount;
  }

  /** The current hidden state h_t (read-only view). */
  get hidden(): Float64Array {
    return this.h;
  }

  /** The current sensitivity S_t = d h_t / d(W, U, b), N x P row-major (read-only view). */
  get sensitivity(): Float64Array {
    return this.s;
  }

  predict(features: Float64Array, probs: Float64Array): void {
    const { n, d, classes, recurrent: p, vOffset, qOffset, outputScale } = this.layout;
    const bad = sanitiseInput(features, this.input);
    if (bad > 0) this.stats.nonFiniteInputs += bad;
    if (this.skipLogits !== null) inputSkipLogits(classes, d, qOffset, this.params, this.input, this.skipLogits);
    if (this.native !== undefined) {
      this.predictNative(this.native, probs);
      return;
    }

    elmanStateStep(n, d, this.params, this.h, this.input, this.hNext);
    const sNext = takeSpare(n * p);
    rtrlSensitivityStep(n, d, this.params, this.h, this.input, this.hNext, this.s, sNext);
    const swap = this.h;
    this.h = this.hNext;
    this.hNext = swap;
    returnSpare(this.s);
    this.s = sNext;
    if (!allFinite(this.h, 0, n) || !allFinite(this.s, 0, n * p)) {
      // Only non-finite parameters can cause this; start the state afresh rather than
      // let NaN reach a gradient.
      this.h.fill(0);
      this.s.fill(0);
      this.stats.stateResets++;
    }

    elmanOutput(n, classes, vOffset, outputScale, this.params, this.h, probs, this.skipLogits ?? undefined);
    this.remember(probs);
  }

  /**
   * The same tick as the TypeScript path below in one native call: state, sensitivity, the
   * finiteness check, probabilities, and the projected rows written straight into the
   * running sums (batch) or the ring slot (FIFO); the input skip's sums are kept here.
   */
  private predictNative(native: NativeRtrlAddon, probs: Float64Array): void {
    const { n, d, classes, recurrent: p, vOffset, outputScale } = this.layout;
    let finite: boolean;
    const sNext = takeSpare(n * p);
    if (this.config.pending.kind === 'batch') {
      if (this.pendingCount >= this.capacity) this.discardPending();
      finite = native.step(
        n,
        d,
        classes,
        vOffset,
        outputScale,
        this.params,
        this.h,
        this.input,
        this.hNext,
        this.s,
        sNext,
        probs,
        scratchBuffer('projection', classes * p),
        0,
        this.skipLogits,
        this.sumRows,
        this.sumProbRows,
        this.sumProbHidden,
        this.sumHidden,
        this.sumProbs,
      );
    } else {
      this.makeRoom();
      const slot = (this.head + this.pendingCount) % this.ringSlots;
      finite = native.step(
        n,
        d,
        classes,
        vOffset,
        outputScale,
        this.params,
        this.h,
        this.input,
        this.hNext,
        this.s,
        sNext,
        probs,
        this.ringRows,
        slot * classes * p,
        this.skipLogits,
      );
      for (let c = 0; c < classes; c++) this.ringProbs[slot * classes + c] = probs[c];
      this.ringHidden.set(this.hNext, slot * n);
    }
    this.rememberInput(probs);
    const swap = this.h;
    this.h = this.hNext;
    this.hNext = swap;
    returnSpare(this.s);
    this.s = sNext;
    if (!finite) this.stats.stateResets++;
    this.pendingCount++;
  }

  private remember(probs: Float64Array): void {
    const { n, classes, recurrent: p, vOffset, outputScale } = this.layout;
    if (this.config.pending.kind === 'batch') {
      if (this.pendingCount >= this.capacity) this.discardPending();
      const rows = scratchBuffer('projection', classes * p);
      projectSensitivity(n, p, classes, vOffset, outputScale, this.params, this.s, rows, 0);
      for (let i = 0; i < rows.length; i++) this.sumRows[i] += rows[i];
      for (let c = 0; c < classes; c++) {
        const pc = probs[c];
        const row = c * p;
        for (let j = 0; j < p; j++) this.sumProbRows[j] += pc * rows[row + j];
        const ph = c * n;
        for (let k = 0; k < n; k++) this.sumProbHidden[ph + k] += pc * this.h[k];
        this.sumProbs[c] += pc;
      }
      for (let k = 0; k < n; k++) this.sumHidden[k] += this.h[k];
      this.rememberInput(probs);
      this.pendingCount++;
      return;
    }
    this.makeRoom();
    const slot = (this.head + this.pendingCount) % this.ringSlots;
    projectSensitivity(n, p, classes, vOffset, outputScale, this.params, this.s, this.ringRows, slot * classes * p);
    for (let c = 0; c < classes; c++) this.ringProbs[slot * classes + c] = probs[c];
    this.ringHidden.set(this.h, slot * n);
    this.rememberInput(probs);
    this.pendingCount++;
  }

  /** A free FIFO slot for the next tick: the ring grows while below capacity, then the oldest unresolved tick's slot is reused. */
  private makeRoom(): void {
    if (this.pendingCount < this.ringSlots) return;
    if (this.ringSlots < this.capacity) {
      this.resizeRing(Math.min(this.capacity, 2 * this.ringSlots));
      return;
    }
    this.head = (this.head + 1) % this.ringSlots;
    this.pendingCount--;
  }

  /** Reallocates the FIFO ring to `slots`, its pending ticks laid out from slot 0. */
  private resizeRing(slots: number): void {
    const { n, classes: c, recurrent: p, skipInputs: d } = this.layout;
    const regrow = (ring: Float64Array, stride: number) => {
      const grown = new Float64Array(slots * stride);
      grown.set(packRing(ring, stride, this.ringSlots, this.head, this.pendingCount));
      return grown;
    };
    this.ringRows = regrow(this.ringRows, c * p);
    this.ringProbs = regrow(this.ringProbs, c);
    this.ringHidden = regrow(this.ringHidden, n);
    this.ringInputs = regrow(this.ringInputs, d);
    this.ringSlots = slots;
    this.head = 0;
  }

  /** The input skip's share of the pending tick (before pendingCount counts it): p x^T and x, or x in its ring slot. */
  private rememberInput(probs: Float64Array): void {
    const { classes, skipInputs: d } = this.layout;
    if (d === 0) return;
    const x = this.input;
    if (this.config.pending.kind === 'batch') {
      for (let c = 0; c < classes; c++) {
        const pc = probs[c];
        const row = c * d;
        for (let j = 0; j < d; j++) this.sumProbInput[row + j] += pc * x[j];
      }
      for (let j = 0; j < d; j++) this.sumInput[j] += x[j];
      return;
    }
    this.ringInputs.set(x, ((this.head + this.pendingCount) % this.ringSlots) * d);
  }

  resolve(label: number, count: number): void {
    if (!(Number.isInteger(label) && label >= 0 && label < this.classes)) throw new Error(`label: must be an integer class index in [0, ${this.classes}), got ${label}`);
    if (count <= 0 || this.pendingCount === 0) return;
    if (this.config.pending.kind === 'batch') {
      this.resolveBatch(label);
      return;
    }
    const resolvable = Math.min(count, this.pendingCount);
    for (let i = 0; i < resolvable; i++) this.resolveOldest(label);
  }

  /** One update from the running sums: every pending tick shares the label. */
  private resolveBatch(label: number): void {
    const { n, classes, recurrent: p, vOffset, cOffset, outputScale } = this.layout;
    const count = this.pendingCount;
    const grad = scratchBuffer('gradient', this.layout.total);
    const labelRow = label * p;
    for (let j = 0; j < p; j++) grad[j] = this.sumProbRows[j] - this.sumRows[labelRow + j];
    for (let c = 0; c < classes; c++) {
      const target = c === label ? 1 : 0;
      for (let k = 0; k < n; k++) {
        grad[vOffset + c * n + k] = outputScale * (this.sumProbHidden[c * n + k] - target * this.sumHidden[k]);
      }
      grad[cOffset + c] = this.sumProbs[c] - target * count;
    }
    const { qOffset, skipInputs: d } = this.layout;
    for (let c = 0; c < classes; c++) {
      const target = c === label ? 1 : 0;
      for (let j = 0; j < d; j++) grad[qOffset + c * d + j] = this.sumProbInput[c * d + j] - target * this.sumInput[j];
    }
    const scale = this.batchSizes.scaleFor(this.config.batchReduction, count);
    if (scale !== 1) {
      for (let i = 0; i < grad.length; i++) grad[i] *= scale;
    }
    this.stats.labels += count;
    this.clearBatch();
    countOutcome(this.stats, this.optimiser.step(this.params, grad));
  }

  private resolveOldest(label: number): void {
    const { n, classes, recurrent: p, vOffset, cOffset, qOffset, skipInputs: d, outputScale } = this.layout;
    const slot = this.head;
    const grad = scratchBuffer('gradient', this.layout.total);
    const rowsBase = slot * classes * p;
    const probsBase = slot * classes;
    const labelRow = rowsBase + label * p;
    if (this.native !== undefined) {
      this.native.projectedGradient(classes, p, this.ringRows, rowsBase, this.ringProbs, probsBase, label, grad);
    } else {
      for (let j = 0; j < p; j++) grad[j] = -this.ringRows[labelRow + j];
      for (let c = 0; c < classes; c++) {
        const pc = this.ringProbs[probsBase + c];
        const row = rowsBase + c * p;
        for (let j = 0; j < p; j++) grad[j] += pc * this.ringRows[row + j];
      }
    }
    for (let c = 0; c < classes; c++) {
      const pc = this.ringProbs[probsBase + c];
      const error = pc - (c === label ? 1 : 0);
      for (let k = 0; k < n; k++) grad[vOffset + c * n + k] = outputScale * error * this.ringHidden[slot * n + k];
      grad[cOffset + c] = error;
      for (let j = 0; j < d; j++) grad[qOffset + c * d + j] = error * this.ringInputs[slot * d + j];
    }
    this.head = (this.head + 1) % this.ringSlots;
    this.pendingCount--;
    this.stats.labels++;
    countOutcome(this.stats, this.optimiser.step(this.params, grad));
  }

  private clearBatch(): void {
    this.sumRows.fill(0);
    this.sumProbRows.fill(0);
    this.sumProbHidden.fill(0);
    this.sumHidden.fill(0);
    this.sumProbs.fill(0);
    this.sumProbInput.fill(0);
    this.sumInput.fill(0);
    this.pendingCount = 0;
  }

  discardPending(): void {
    if (this.config.pending.kind === 'batch') this.clearBatch();
    this.head = 0;
    this.pendingCount = 0;
  }

  resetSequence(): void {
    this.discardPending();
    this.h.fill(0);
    this.s.fill(0);
  }

  /** Everything but the FIFO ring, whose saved length depends on the pending ticks (see getState). */
  private stateParts(): LearnerStateParts {
    return {
      kind: 'rtrl',
      // The ring is saved packed from its head, so the head saved is 0.
      meta: { config: this.config, head: 0, pendingCount: this.pendingCount },
      // h and s are read at call time: predict swaps them with their double buffers.
      arrays: {
        params: this.params,
        h: this.h,
        s: this.s,
        sumRows: this.sumRows,
        sumProbRows: this.sumProbRows,
        sumProbHidden: this.sumProbHidden,
        sumHidden: this.sumHidden,
        sumProbs: this.sumProbs,
        batchSizes: this.batchSizes.state,
        sumProbInput: this.sumProbInput,
        sumInput: this.sumInput,
      },
      optimiser: this.optimiser,
      stats: this.stats,
      rng: this.rng,
    };
  }

  /** The FIFO ring is saved for its pending ticks only, oldest first: no empty slot is written. */
  getState(): Uint8Array {
    const parts = this.stateParts();
    const { n, classes: c, recurrent: p, skipInputs: d } = this.layout;
    const live = (ring: Float64Array, stride: number) => (this.ringSlots === 0 ? ring : packRing(ring, stride, this.ringSlots, this.head, this.pendingCount));
    return encodeLearnerState({
      ...parts,
      arrays: {
        ...parts.arrays,
        ringRows: live(this.ringRows, c * p),
        ringProbs: live(this.ringProbs, c),
        ringHidden: live(this.ringHidden, n),
        ringInputs: live(this.ringInputs, d),
      },
    });
  }

  /**
   * Reads the packed ring, and the whole ring at capacity that checkpoints made before it was
   * packed hold (then with the head they saved).
   */
  setState(bytes: Uint8Array): void {
    const { n, classes: c, recurrent: p, skipInputs: d } = this.layout;
    const state = decodeLearnerState(bytes, this.stateParts());
    const pendingCount = Number(state.meta.pendingCount);
    if (!(Number.isInteger(pendingCount) && pendingCount >= 0 && pendingCount <= this.capacity))
      throw new Error(`rtrl state: pendingCount ${String(state.meta.pendingCount)} out of range`);
    if (this.config.pending.kind === 'batch') {
      this.head = 0;
      this.pendingCount = pendingCount;
      return;
    }
    const whole = (state.arrays.ringProbs?.length ?? 0) === this.capacity * c;
    const saved = whole ? this.capacity : pendingCount;
    const rows = requireArray(state, 'ringRows', saved * c * p);
    const probs = requireArray(state, 'ringProbs', saved * c);
    const hidden = requireArray(state, 'ringHidden', saved * n);
    const inputs = requireArray(state, 'ringInputs', saved * d);
    const head = whole ? Number(state.meta.head) : 0;
    if (!(Number.isInteger(head) && head >= 0 && head < Math.max(1, saved))) throw new Error(`rtrl state: head ${String(state.meta.head)} out of range`);
    let slots = Math.min(this.capacity, INITIAL_RING_SLOTS);
    while (slots < saved) slots = Math.min(this.capacity, 2 * slots);
    this.ringSlots = slots;
    this.ringRows = new Float64Array(slots * c * p);
    this.ringProbs = new Float64Array(slots * c);
    this.ringHidden = new Float64Array(slots * n);
    this.ringInputs = new Float64Array(slots * d);
    unpackRing(rows, this.ringRows, c * p, slots, 0);
    unpackRing(probs, this.ringProbs, c, slots, 0);
    unpackRing(hidden, this.ringHidden, n, slots, 0);
    unpackRing(inputs, this.ringInputs, d, slots, 0);
    this.head = head;
    this.pendingCount = pendingCount;
  }
}
