// A price-level (L2) order book for diff feeds: no I/O, no venue knowledge.
//
// Each side keeps its prices in one sorted Float64Array with the sizes in a parallel array,
// ordered so that the BEST level sits at the END (bids ascending, asks descending). Real
// feeds change the levels near the touch far more often than the deep ones, and an insert
// or delete only shifts the levels after it, so keeping the touch at the tail makes the
// common update move a handful of elements instead of the whole side. A lookup is a binary
// search; reading the top L levels is a backwards copy with no sorting. With ~1000-5000
// levels per side this beats a tree on both speed and garbage.

export type BookSide = 'bid' | 'ask';

const MIN_CAPACITY = 16;

class SideLevels {
  prices: Float64Array;
  sizes: Float64Array;
  count = 0;

  /**
   * `ascending` is the storage order: true for bids (best = highest = last),
   * false for asks (best = lowest = last).
   */
  constructor(
    private readonly ascending: boolean,
    capacity: number,
  ) {
    this.prices = new Float64Array(capacity);
    this.sizes = new Float64Array(capacity);
  }

  clear(): void {
    this.count = 0;
  }

  /** Index of `price` if present, otherwise -(insertion index) - 1. */
  private search(price: number): number {
    const prices = this.prices;
    let low = 0;
    let high = this.count - 1;
    if (this.ascending) {
      while (low <= high) {
        const mid = (low + high) >>> 1;
        const value = prices[mid];
        if (value < price) low = mid + 1;
        else if (value > price) high = mid - 1;
        else return mid;
      }
    } else {
      while (low <= high) {
        const mid = (low + high) >>> 1;
        const value = prices[mid];
        if (value > price) low = mid + 1;
        else if (value < price) high = mid - 1;
        else return mid;
      }
    }
    return -low - 1;
  }

  set(price: number, size: number): void {
    // Fast path: the touch is the last element and is the most frequently updated level.
    const last = this.count - 1;
    const found = last >= 0 && this.prices[last] === price ? last : this.search(price);
    if (found >= 0) {
      if (size > 0) {
        this.sizes[found] = size;
      } else {
        this.prices.copyWithin(found, found + 1, this.count);
        this.sizes.copyWithin(found, found + 1, this.count);
        this.count -= 1;
      }
      return;
    }
    // Deleting a level we do not hold is normal for diff feeds (it was outside our snapshot).
    if (size === 0) return;
    const at = -found - 1;
    if (this.count === this.prices.length) this.grow();
    this.prices.copyWithin(at + 1, at, this.count);
    this.sizes.copyWithin(at + 1, at, this.count);
    this.prices[at] = price;
    this.sizes[at] = size;
    this.count += 1;
  }

  /** Writes up to `levels` best-first [p, s] pairs into `out`; returns the number written. */
  writeTop(levels: number, out: Float64Array): number {
    const n = Math.min(levels, this.count, out.length >> 1);
    const prices = this.prices;
    const sizes = this.sizes;
    for (let k = 0, i = this.count - 1; k < n; k += 1, i -= 1) {
      out[2 * k] = prices[i];
      out[2 * k + 1] = sizes[i];
    }
    return n;
  }

  /** Keeps the best `depth` levels: the worst sit at the front, so this is one shift. */
  truncate(depth: number): void {
    if (this.count <= depth) return;
    const drop = this.count - depth;
    this.prices.copyWithin(0, drop, this.count);
    this.sizes.copyWithin(0, drop, this.count);
    this.count = depth;
  }

  best(): number {
    return this.count > 0 ? this.prices[this.count - 1] : Number.NaN;
  }

  private grow(): void {
    const capacity = Math.max(MIN_CAPACITY, this.prices.length * 2);
    const prices = new Float64Array(capacity);
    const sizes = new Float64Array(capacity);
    prices.set(this.prices.subarray(0, this.count));
    sizes.set(this.sizes.subarray(0, this.count));
    this.prices = prices;
    this.sizes = sizes;
  }

  /** Replaces the side with `levels` (flat [p0, s0, ...], any order, size 0 skipped, last duplicate wins). */
  replace(levels: Float64Array): void {
    const pairs = levels.length >> 1;
    const order: number[] = [];
    for (let k = 0; k < pairs; k += 1) order.push(k);
    // Storage order, ties by input position so that the later duplicate is seen last.
    const sign = this.ascending ? 1 : -1;
    order.sort((a, b) => sign * (levels[2 * a] - levels[2 * b]) || a - b);
    let capacity = this.prices.length;
    while (capacity < pairs) capacity = Math.max(MIN_CAPACITY, capacity * 2);
    if (capacity !== this.prices.length) {
      this.prices = new Float64Array(capacity);
      this.sizes = new Float64Array(capacity);
    }
    let count = 0;
    for (const k of order) {
      const price = levels[2 * k];
      const size = levels[2 * k + 1];
      if (count > 0 && this.prices[count - 1] === price) {
        count -= 1; // a later duplicate replaces (or, with size 0, removes) the earlier one
      }
      if (size > 0) {
        this.prices[count] = price;
        this.sizes[count] = size;
        count += 1;
      }
    }
    this.count = count;
  }
}

function checkLevel(price: number, size: number): void {
  if (!Number.isFinite(price)) throw new RangeError(`price must be finite, got ${price}`);
  if (!(size >= 0) || size === Number.POSITIVE_INFINITY) throw new RangeError(`size must be finite and >= 0, got ${size}`);
}

export class L2Book {
  private readonly bids: SideLevels;
  private readonly asks: SideLevels;

  constructor(initialCapacityPerSide = 1024) {
    const capacity = Math.max(MIN_CAPACITY, Math.floor(initialCapacityPerSide));
    this.bids = new SideLevels(true, capacity);
    this.asks = new SideLevels(false, capacity);
  }

  /** Empties both sides; keeps the allocated storage. */
  reset(): void {
    this.bids.clear();
    this.asks.clear();
  }

  /**
   * Sets the absolute size at `price`; size 0 removes the level (removing a level that is not
   * held is a no-op). Throws RangeError for a non-finite price or a negative/non-finite size:
   * callers validate venue input before it reaches the book.
   */
  setLevel(side: BookSide, price: number, size: number): void {
    checkLevel(price, size);
    (side === 'bid' ? this.bids : this.asks).set(price, size);
  }

  /** Resets one side to `levels` (flat [p0, s0, p1, s1, ...] in any order); for venue snapshots. */
  replaceSide(side: BookSide, levels: Float64Array): void {
    if (levels.length % 2 !== 0) throw new RangeError(`levels must hold [price, size] pairs, got ${levels.length} values`);
    for (let i = 0; i < levels.length; i += 2) checkLevel(levels[i], levels[i + 1]);
    (side === 'bid' ? this.bids : this.asks).replace(levels);
  }

  /** The best `levels` bids, highest first, as a new [p0, s0, ...] sized to the real depth. */
  topBids(levels: number): Float64Array {
    return this.top(this.bids, levels);
  }

  /** The best `levels` asks, lowest first, as a new [p0, s0, ...] sized to the real depth. */
  topAsks(levels: number): Float64Array {
    return this.top(this.asks, levels);
  }

  /**
   * Allocation-free variant of topBids/topAsks: fills `out` (capacity out.length / 2 levels)
   * best first and returns the number of levels written.
   */
  writeTop(side: BookSide, levels: number, out: Float64Array): number {
    return (side === 'bid' ? this.bids : this.asks).writeTop(Math.max(0, Math.floor(levels)), out);
  }

  /**
   * Drops every level of `side` past the best `depth`: for venues that send no delete for a
   * level pushed out of the subscribed depth (Kraken, OKX `books5`...).
   */
  truncate(side: BookSide, depth: number): void {
    (side === 'bid' ? this.bids : this.asks).truncate(Math.max(0, Math.floor(depth)));
  }

  /** Highest bid price, NaN when the side is empty. */
  bestBid(): number {
    return this.bids.best();
  }

  /** Lowest ask price, NaN when the side is empty. */
  bestAsk(): number {
    return this.asks.best();
  }

  /** Number of price levels held on `side`. */
  depth(side: BookSide): number {
    return (side === 'bid' ? this.bids : this.asks).count;
  }

  private top(levels: SideLevels, wanted: number): Float64Array {
    const n = Math.max(0, Math.min(Math.floor(wanted), levels.count));
    const out = new Float64Array(2 * n);
    levels.writeTop(n, out);
    return out;
  }
}
