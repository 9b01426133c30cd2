// Fixed-memory latency histogram: log-spaced buckets from 0.1 us to ~100 s, 20 per decade,
// so recording costs one log and one increment and quantiles are within ~6% of the truth.

const MIN_US = 0.1;
const PER_DECADE = 20;
const DECADES = 9;

/** A histogram's whole content, to carry it from a worker thread and add it to another. */
export interface LatencyState {
  readonly buckets: Float64Array;
  readonly count: number;
  readonly sumUs: number;
  readonly maxUs: number;
}

export class LatencyHistogram {
  private readonly buckets = new Float64Array(PER_DECADE * DECADES + 1);
  count = 0;
  sumUs = 0;
  maxUs = 0;

  record(us: number): void {
    if (!(us >= 0)) return;
    const index = us <= MIN_US ? 0 : Math.min(this.buckets.length - 1, Math.ceil(Math.log10(us / MIN_US) * PER_DECADE));
    this.buckets[index]++;
    this.count++;
    this.sumUs += us;
    if (us > this.maxUs) this.maxUs = us;
  }

  /** Upper bound of the bucket holding quantile q (0..1), in microseconds; null when empty. */
  quantile(q: number): number | null {
    if (this.count === 0) return null;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      seen += this.buckets[i];
      if (seen >= rank) return Math.min(this.maxUs, MIN_US * Math.pow(10, i / PER_DECADE));
    }
    return this.maxUs;
  }

  /**
   * Recordings at or below the upper bound of bucket `index` (cumulative, as Prometheus' `le`
   * buckets count). Bucket i holds values up to `bucketUpperUs(i)`.
   */
  countAtOrBelow(index: number): number {
    let seen = 0;
    const last = Math.min(index, this.buckets.length - 1);
    for (let i = 0; i <= last; i++) seen += this.buckets[i];
    return seen;
  }

  static bucketUpperUs(index: number): number {
    return MIN_US * Math.pow(10, index / PER_DECADE);
  }

  static readonly bucketsPerDecade = PER_DECADE;
  static readonly bucketCount = PER_DECADE * DECADES + 1;

  getState(): LatencyState {
    return { buckets: this.buckets.slice(), count: this.count, sumUs: this.sumUs, maxUs: this.maxUs };
  }

  /** Adds another histogram's recordings (a worker's) to this one. */
  add(state: LatencyState): void {
    if (state.buckets.length !== this.buckets.length) throw new RangeError(`latency state: ${state.buckets.length} buckets, expected ${this.buckets.length}`);
    for (let i = 0; i < this.buckets.length; i++) this.buckets[i] += state.buckets[i];
    this.count += state.count;
    this.sumUs += state.sumUs;
    if (state.maxUs > this.maxUs) this.maxUs = state.maxUs;
  }

  reset(): void {
    this.buckets.fill(0);
    this.count = 0;
    this.sumUs = 0;
    this.maxUs = 0;
  }
}
