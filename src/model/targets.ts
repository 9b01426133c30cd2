// What the learners predict and when the answer becomes known. A label is only known in the
// future, so every learner keeps its predictions pending until the Labeler resolves them,
// exactly as it would live.

export type TargetSpec =
  | { readonly kind: 'next-move' }
  | { readonly kind: 'horizon'; readonly k: number; readonly flatBand: number };

export const NEXT_MOVE_CLASSES = ['down', 'up'] as const;
export const HORIZON_CLASSES = ['down', 'flat', 'up'] as const;

export function classNames(target: TargetSpec): readonly string[] {
  return target.kind === 'next-move' ? NEXT_MOVE_CLASSES : HORIZON_CLASSES;
}

export function targetName(target: TargetSpec): string {
  if (target.kind === 'next-move') return 'next-move';
  return target.flatBand === 0 ? `horizon:${target.k}` : `horizon:${target.k}:${target.flatBand}`;
}

/**
 * Parses `next-move`, `horizon:K` or `horizon:K:THETA` (THETA: relative flat band, e.g. 0.0001
 * = 1 bp). Throws an error naming the problem.
 */
export function parseTarget(text: string): TargetSpec {
  if (text === 'next-move') return { kind: 'next-move' };
  const match = /^horizon:(\d+)(?::([0-9.eE+-]+))?$/.exec(text);
  if (!match) throw new Error(`target: expected next-move, horizon:K or horizon:K:THETA, got "${text}"`);
  const k = Number(match[1]);
  const flatBand = match[2] === undefined ? 0 : Number(match[2]);
  if (!Number.isInteger(k) || k < 1 || k > 100_000) throw new Error(`target: horizon K must be an integer in [1, 100000], got ${match[1]}`);
  if (!Number.isFinite(flatBand) || flatBand < 0) throw new Error(`target: flat band THETA must be a finite number >= 0, got ${match[2]}`);
  return { kind: 'horizon', k, flatBand };
}

/**
 * How a learner keeps pending ticks. `batch`: every pending tick resolves at once with the
 * same label (next-move), so running sums are exact. `fifo`: ticks resolve one by one,
 * oldest first, `capacity` ticks after they were made (horizon:k).
 */
export type PendingMode = { readonly kind: 'batch'; readonly maxPending: number } | { readonly kind: 'fifo'; readonly capacity: number };

export function pendingModeFor(target: TargetSpec, maxPending: number): PendingMode {
  return target.kind === 'next-move' ? { kind: 'batch', maxPending } : { kind: 'fifo', capacity: target.k };
}

/**
 * How one update weighs a batch of ticks resolved together (next-move):
 * - `tick`: the summed gradient divided by the running mean batch size. Every tick weighs the
 *   same, as it does in the prequential scores, while an average update keeps the size of one
 *   tick's gradient. The default.
 * - `mean`: the mean over the batch. Each resolution weighs the same, so a tick in a run of
 *   30 quiet ticks counts 1/30 of the lone tick after a fast move, though both are scored alike.
 * - `sum`: the plain sum; its size grows with the run, so a norm clip caps long runs.
 */
export type BatchReduction = 'tick' | 'mean' | 'sum';

/**
 * Running mean of the number of ticks per resolved batch, the divisor of `tick` reduction.
 * The weight of a new batch is max(1/k, 1/window) after k batches: the exact mean of the
 * first `window` batches, then an exponential average that follows a market getting busier
 * or quieter.
 */
export class BatchSizeAverage {
  /** [batches seen, mean size]: the whole state, saved and restored in place with a learner's arrays. */
  readonly state = new Float64Array(2);

  constructor(readonly window = 1000) {
    if (!(Number.isInteger(window) && window >= 1)) throw new Error(`window: must be a positive integer, got ${window}`);
  }

  get mean(): number {
    return this.state[1];
  }

  /** Adds a batch of `count` ticks and returns the mean including it. */
  add(count: number): number {
    const batches = ++this.state[0];
    const weight = Math.max(1 / batches, 1 / this.window);
    this.state[1] += weight * (count - this.state[1]);
    return this.state[1];
  }

  /** Gradient scale for a batch of `count` ticks resolved together under `reduction`. */
  scaleFor(reduction: BatchReduction, count: number): number {
    if (reduction === 'sum') return 1;
    if (reduction === 'mean') return 1 / count;
    return 1 / this.add(count);
  }
}

/** The oldest `count` pending ticks get `label`; or they expire unlabelled. */
export type Resolution =
  | { readonly kind: 'label'; readonly label: number; readonly count: number }
  | { readonly kind: 'expire'; readonly count: number };

/**
 * Turns the stream of mid-prices into label resolutions, shared by every learner of a symbol.
 * Per tick: `observe(mid)` first (it may resolve earlier ticks with what this tick's mid
 * reveals), then the learners predict, then `addPending(mid)`. A label therefore only ever
 * reaches a learner after the prediction it labels was made.
 */
export class Labeler {
  private readonly mids: Float64Array;
  private head = 0;
  private count = 0;
  private lastMid = Number.NaN;

  constructor(readonly target: TargetSpec, readonly maxPending = 10_000) {
    if (!Number.isInteger(maxPending) || maxPending < 1) throw new Error(`maxPending: must be a positive integer, got ${maxPending}`);
    this.mids = new Float64Array(target.kind === 'horizon' ? target.k : 1);
  }

  get pending(): number {
    return this.count;
  }

  /** Resolutions revealed by a new tick's mid, before that tick's prediction. */
  observe(mid: number): Resolution | null {
    if (this.count === 0) return null;
    if (this.target.kind === 'next-move') {
      if (mid !== this.lastMid) {
        const resolved = this.count;
        this.count = 0;
        return { kind: 'label', label: mid > this.lastMid ? 1 : 0, count: resolved };
      }
      if (this.count >= this.maxPending) {
        // A book that never moves would hold predictions forever; let them go unscored.
        const expired = this.count;
        this.count = 0;
        return { kind: 'expire', count: expired };
      }
      return null;
    }
    if (this.count < this.target.k) return null;
    const then = this.mids[this.head];
    this.head = (this.head + 1) % this.target.k;
    this.count--;
    const band = this.target.flatBand * then;
    const change = mid - then;
    const label = change > band ? 2 : change < -band ? 0 : 1;
    return { kind: 'label', label, count: 1 };
  }

  /** Registers the tick just predicted as pending. */
  addPending(mid: number): void {
    if (this.target.kind === 'next-move') {
      this.lastMid = mid;
      this.count++;
      return;
    }
    const k = this.target.k;
    this.mids[(this.head + this.count) % k] = mid;
    this.count++;
  }

  /** A disconnect: pending predictions are dropped, never labelled by a guess. */
  discard(): number {
    const dropped = this.count;
    this.count = 0;
    this.head = 0;
    this.lastMid = Number.NaN;
    return dropped;
  }

  getState(): Float64Array {
    const state = new Float64Array(3 + this.mids.length);
    state[0] = this.head;
    state[1] = this.count;
    state[2] = this.lastMid;
    state.set(this.mids, 3);
    return state;
  }

  setState(state: Float64Array): void {
    if (state.length !== 3 + this.mids.length) throw new Error(`labeler state: expected ${3 + this.mids.length} values, got ${state.length}`);
    this.head = state[0];
    this.count = state[1];
    this.lastMid = state[2];
    this.mids.set(state.subarray(3));
  }
}
