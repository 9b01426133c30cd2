// What the learners predict and when the answer becomes known. A label is only known in the
// future, so every learner keeps its predictions pending until the Labeler resolves them,
// exactly as it would live.

export type TargetSpec =
  | { readonly kind: 'next-move' }
  | { readonly kind: 'horizon'; readonly k: number; readonly flatBand: number }
  /** Sign of the mid change over `ms` of venue time, for feeds whose tick rate varies. */
  | { readonly kind: 'time-horizon'; readonly ms: number; readonly flatBand: number };

/**
 * Ticks a time horizon keeps pending at most. Past it (a burst of more ticks within one
 * horizon) the pending ticks expire unscored, as a next-move book that never moves does: the
 * recurrent learners keep a C x P row per pending tick, so the bound is memory.
 */
export const TIME_HORIZON_PENDING = 512;

export const NEXT_MOVE_CLASSES = ['down', 'up'] as const;
export const HORIZON_CLASSES = ['down', 'flat', 'up'] as const;

export function classNames(target: TargetSpec): readonly string[] {
  return target.kind === 'next-move' ? NEXT_MOVE_CLASSES : HORIZON_CLASSES;
}

export function targetName(target: TargetSpec): string {
  if (target.kind === 'next-move') return 'next-move';
  const horizon = target.kind === 'horizon' ? `${target.k}` : target.ms % 1000 === 0 ? `${target.ms / 1000}s` : `${target.ms}ms`;
  return target.flatBand === 0 ? `horizon:${horizon}` : `horizon:${horizon}:${target.flatBand}`;
}

/**
 * Parses `next-move`, `horizon:K` (ticks), `horizon:Ns` / `horizon:Nms` (venue time), each
 * optionally `:THETA` (relative flat band, e.g. 0.0001 = 1 bp). Throws an error naming the problem.
 */
export function parseTarget(text: string): TargetSpec {
  if (text === 'next-move') return { kind: 'next-move' };
  const timed = /^horizon:(\d+(?:\.\d+)?)(ms|s)(?::([0-9.eE+-]+))?$/.exec(text);
  if (timed) {
    const ms = Number(timed[1]) * (timed[2] === 's' ? 1000 : 1);
    const flatBand = timed[3] === undefined ? 0 : Number(timed[3]);
    if (!(Number.isFinite(ms) && ms >= 1 && ms <= 86_400_000)) throw new Error(`target: time horizon must be between 1 ms and 1 day, got ${timed[1]}${timed[2]}`);
    if (!Number.isFinite(flatBand) || flatBand < 0) throw new Error(`target: flat band THETA must be a finite number >= 0, got ${timed[3]}`);
    return { kind: 'time-horizon', ms, flatBand };
  }
  const match = /^horizon:(\d+)(?::([0-9.eE+-]+))?$/.exec(text);
  if (!match) throw new Error(`target: expected next-move, horizon:K, horizon:Ns, horizon:Nms (each with an optional :THETA), got "${text}"`);
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
  if (target.kind === 'next-move') return { kind: 'batch', maxPending };
  return { kind: 'fifo', capacity: pendingCapacity(target, maxPending) };
}

/** Most ticks pending at once under `target`. */
export function pendingCapacity(target: TargetSpec, maxPending: number): number {
  if (target.kind === 'horizon') return target.k;
  if (target.kind === 'time-horizon') return Math.min(maxPending, TIME_HORIZON_PENDING);
  return maxPending;
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
export type Resolution = { readonly kind: 'label'; readonly label: number; readonly count: number } | { readonly kind: 'expire'; readonly count: number };

/**
 * Turns the stream of mid-prices into label resolutions, shared by every learner of a symbol.
 * Per tick: `observe(mid, ts)` until it returns null (each call may resolve earlier ticks with
 * what this tick reveals), then the learners predict, then `addPending(mid, ts)`. A label
 * therefore only ever reaches a learner after the prediction it labels was made.
 *
 * A time horizon H labels the tick made at ts with the mid in force at ts + H: that of the
 * last tick at or before ts + H, known once a tick later than ts + H arrives.
 */
export class Labeler {
  private readonly mids: Float64Array;
  private readonly times: Float64Array;
  private readonly slots: number;
  private head = 0;
  private count = 0;
  private lastMid = Number.NaN;

  constructor(
    readonly target: TargetSpec,
    readonly maxPending = 10_000,
  ) {
    if (!Number.isInteger(maxPending) || maxPending < 1) throw new Error(`maxPending: must be a positive integer, got ${maxPending}`);
    this.slots = target.kind === 'next-move' ? 1 : pendingCapacity(target, maxPending);
    this.mids = new Float64Array(this.slots);
    this.times = new Float64Array(target.kind === 'time-horizon' ? this.slots : 0);
  }

  get pending(): number {
    return this.count;
  }

  /** The next resolution revealed by a new tick (mid, venue ts), before that tick's prediction; null when none is left. */
  observe(mid: number, ts = 0): Resolution | null {
    if (this.count === 0) return null;
    const target = this.target;
    if (target.kind === 'next-move') {
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
    if (target.kind === 'time-horizon') {
      if (this.times[this.head] + target.ms < ts) return { kind: 'label', label: this.takeOldest(this.lastMid, target.flatBand), count: 1 };
      if (this.count >= this.slots) {
        // More ticks within one horizon than the learners keep: they go unscored.
        const expired = this.count;
        this.count = 0;
        this.head = 0;
        return { kind: 'expire', count: expired };
      }
      return null;
    }
    if (this.count < target.k) return null;
    return { kind: 'label', label: this.takeOldest(mid, target.flatBand), count: 1 };
  }

  /** Pops the oldest pending tick and labels it by the move from its mid to `mid`. */
  private takeOldest(mid: number, flatBand: number): number {
    const then = this.mids[this.head];
    this.head = (this.head + 1) % this.slots;
    this.count--;
    const band = flatBand * then;
    const change = mid - then;
    return change > band ? 2 : change < -band ? 0 : 1;
  }

  /** Registers the tick just predicted as pending. */
  addPending(mid: number, ts = 0): void {
    this.lastMid = mid;
    if (this.target.kind === 'next-move') {
      this.count++;
      return;
    }
    const slot = (this.head + this.count) % this.slots;
    this.mids[slot] = mid;
    if (this.times.length > 0) this.times[slot] = ts;
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
    const state = new Float64Array(3 + this.mids.length + this.times.length);
    state[0] = this.head;
    state[1] = this.count;
    state[2] = this.lastMid;
    state.set(this.mids, 3);
    state.set(this.times, 3 + this.mids.length);
    return state;
  }

  setState(state: Float64Array): void {
    const expected = 3 + this.mids.length + this.times.length;
    if (state.length !== expected) throw new Error(`labeler state: expected ${expected} values, got ${state.length}`);
    this.head = state[0];
    this.count = state[1];
    this.lastMid = state[2];
    this.mids.set(state.subarray(3, 3 + this.mids.length));
    this.times.set(state.subarray(3 + this.mids.length));
  }
}
