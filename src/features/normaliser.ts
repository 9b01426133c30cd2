// Online per-element standardisation of feature vectors. Each element keeps an exponentially
// weighted mean and variance, updated with the incremental form of Finch (2009), "Incremental
// calculation of weighted mean and variance", section 9:
//   d = x - mean;  mean += w d;  var = (1 - w) (var + w d^2)
// with weight w = max(1/n, alpha). While 1/n > alpha this is exactly the running mean and
// population variance of the n samples seen (Welford), so the zero initial values carry no
// weight; once 1/n falls below alpha it becomes the exponential average with that half-life.

const STATE_FORMAT = 1;
const HEADER_LENGTH = 5;

export interface NormaliserOptions {
  /** Ticks after which a sample's weight has halved (default 1000). */
  readonly halfLife?: number;
  /** Outputs are clipped to [-clip, clip] (default 5). */
  readonly clip?: number;
  /** Ticks before `isWarm` turns true (default 100). */
  readonly warmup?: number;
  /** Added to the variance before the square root, so a constant element maps to 0 (default 1e-8). */
  readonly epsilon?: number;
}

export class OnlineNormaliser {
  readonly dimension: number;
  readonly halfLife: number;
  readonly clip: number;
  readonly warmup: number;
  readonly epsilon: number;
  /** Weight of the newest sample once past the equal-weight phase: 1 - 2^(-1/halfLife). */
  readonly alpha: number;

  private tickCount = 0;
  private nonFiniteTotal = 0;
  // Per element: samples accepted so far (elements can skip non-finite samples independently).
  private readonly counts: Float64Array;
  private readonly means: Float64Array;
  private readonly variances: Float64Array;

  constructor(dimension: number, options: NormaliserOptions = {}) {
    const { halfLife = 1000, clip = 5, warmup = 100, epsilon = 1e-8 } = options;
    if (!Number.isInteger(dimension) || dimension < 1) throw new RangeError(`dimension must be a positive integer, got ${dimension}`);
    if (!(halfLife > 0) || !Number.isFinite(halfLife)) throw new RangeError(`halfLife must be a finite number > 0, got ${halfLife}`);
    if (!(clip > 0)) throw new RangeError(`clip must be > 0, got ${clip}`);
    if (!Number.isInteger(warmup) || warmup < 0) throw new RangeError(`warmup must be an integer >= 0, got ${warmup}`);
    if (!(epsilon > 0) || !Number.isFinite(epsilon)) throw new RangeError(`epsilon must be a finite number > 0, got ${epsilon}`);
    this.dimension = dimension;
    this.halfLife = halfLife;
    this.clip = clip;
    this.warmup = warmup;
    this.epsilon = epsilon;
    this.alpha = -Math.expm1(-Math.LN2 / halfLife);
    this.counts = new Float64Array(dimension);
    this.means = new Float64Array(dimension);
    this.variances = new Float64Array(dimension);
  }

  /** Vectors normalised since construction or the last `reset()`. */
  get ticks(): number {
    return this.tickCount;
  }

  /** Elements written as 0 because the input (or the statistics it would produce) was not finite. */
  get nonFiniteCount(): number {
    return this.nonFiniteTotal;
  }

  get isWarm(): boolean {
    return this.tickCount >= this.warmup;
  }

  meanOf(index: number): number {
    return this.means[index];
  }

  varianceOf(index: number): number {
    return this.variances[index];
  }

  /**
   * Updates the statistics with `input`, then writes (x - mean) / sqrt(var + epsilon), clipped,
   * into `out`. Updating first means the sample is scored against statistics that include
   * it, so the first samples of a stream give small scores instead of clipped spikes.
   * `out` may be `input` itself.
   */
  normalise(input: Float64Array, out: Float64Array): void {
    const dimension = this.dimension;
    if (input.length !== dimension || out.length !== dimension) {
      throw new RangeError(`input and out must have length ${dimension}, got ${input.length} and ${out.length}`);
    }
    const { counts, means, variances, alpha, epsilon, clip } = this;
    this.tickCount++;
    for (let i = 0; i < dimension; i++) {
      const x = input[i];
      const n = counts[i] + 1;
      const weight = 1 / n > alpha ? 1 / n : alpha;
      const diff = x - means[i];
      const increment = weight * diff;
      const mean = means[i] + increment;
      const keep = 1 - weight;
      // (keep * diff) first: on a first sample keep is 0, and 0 * diff * increment must not
      // become 0 * Infinity when diff is beyond 1e154.
      const variance = keep * variances[i] + keep * diff * increment;
      // A NaN or infinite x fails here, and so does a finite x so large that its square overflows.
      if (!(Number.isFinite(mean) && Number.isFinite(variance))) {
        this.nonFiniteTotal++;
        out[i] = 0;
        continue;
      }
      counts[i] = n;
      means[i] = mean;
      variances[i] = variance;
      const z = (x - mean) / Math.sqrt(variance + epsilon);
      out[i] = z > clip ? clip : z < -clip ? -clip : z;
    }
  }

  /** Forgets every statistic, as if newly constructed. */
  reset(): void {
    this.tickCount = 0;
    this.nonFiniteTotal = 0;
    this.counts.fill(0);
    this.means.fill(0);
    this.variances.fill(0);
  }

  /** [format, dimension, halfLife, ticks, nonFiniteCount, counts (d), means (d), variances (d)]. */
  getState(): Float64Array {
    const d = this.dimension;
    const state = new Float64Array(HEADER_LENGTH + 3 * d);
    state[0] = STATE_FORMAT;
    state[1] = d;
    state[2] = this.halfLife;
    state[3] = this.tickCount;
    state[4] = this.nonFiniteTotal;
    state.set(this.counts, HEADER_LENGTH);
    state.set(this.means, HEADER_LENGTH + d);
    state.set(this.variances, HEADER_LENGTH + 2 * d);
    return state;
  }

  /**
   * Restores a state from `getState()`; the normaliser then continues bit-identically.
   * The dimension and half-life must match, since statistics under another half-life would
   * mean something else. Clip, warm-up and epsilon are output policy and stay as constructed.
   */
  setState(state: Float64Array): void {
    const d = this.dimension;
    if (state.length !== HEADER_LENGTH + 3 * d || state[0] !== STATE_FORMAT || state[1] !== d) {
      throw new RangeError(
        `normaliser state: expected format ${STATE_FORMAT}, dimension ${d} (${HEADER_LENGTH + 3 * d} values), got format ${state[0]}, dimension ${state[1]} (${state.length} values)`,
      );
    }
    if (state[2] !== this.halfLife) {
      throw new RangeError(`normaliser state: halfLife ${state[2]} does not match this normaliser's ${this.halfLife}`);
    }
    this.tickCount = state[3];
    this.nonFiniteTotal = state[4];
    this.counts.set(state.subarray(HEADER_LENGTH, HEADER_LENGTH + d));
    this.means.set(state.subarray(HEADER_LENGTH + d, HEADER_LENGTH + 2 * d));
    this.variances.set(state.subarray(HEADER_LENGTH + 2 * d));
  }
}
