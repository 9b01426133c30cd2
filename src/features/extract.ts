// Per-symbol feature extraction: one sound BookSnapshot in, 4L + 6 numbers out, written into
// a caller-owned Float64Array. No I/O, no allocation per call; the only memory of the past is
// the previous snapshot's best levels, copied into fields (never a reference to the snapshot,
// whose arrays a mapper may reuse).
import type { BookSnapshot, OrderEvent, Trade } from '../domain/types.js';

const BPS = 1e4;
const STATE_FORMAT = 1;
const STATE_LENGTH = 9;

/** Number of features for `levels` levels per side: 4 per level, then 6 book-wide ones. */
export function featureDimension(levels: number): number {
  return 4 * levels + 6;
}

/** Names of the features in output order, for logs, dashboards and documentation. */
export function featureNames(levels: number): string[] {
  const names: string[] = [];
  for (let i = 0; i < levels; i++) {
    names.push(`bid_dist_bps_${i}`, `ask_dist_bps_${i}`, `log1p_bid_size_${i}`, `log1p_ask_size_${i}`);
  }
  names.push('spread_bps', 'imbalance_l1', 'imbalance_depth', 'ofi_l1', 'mid_return_bps', 'log1p_dt_ms');
  return names;
}

/**
 * Mid price of a sound book: halfway between the best bid and the best ask.
 * Halves are added rather than the sum halved so two prices near Number.MAX_VALUE do not
 * overflow.
 */
export function midPrice(snapshot: BookSnapshot): number {
  return snapshot.bids[0] * 0.5 + snapshot.asks[0] * 0.5;
}

/**
 * A quotient that is 0 instead of ±Infinity or NaN. The book check guarantees positive
 * sizes and an uncrossed book, but not positive prices (a negative-priced future is a sound
 * book) nor sums that stay below Number.MAX_VALUE; a feature must stay finite regardless.
 */
function finiteRatio(numerator: number, denominator: number): number {
  const ratio = numerator / denominator;
  return Number.isFinite(ratio) ? ratio : 0;
}

/**
 * Order-flow imbalance at level 1 between two snapshots (Cont, Kukanov & Stoikov 2014,
 * "The price impact of order book events", eq. 2), with primes marking the previous book:
 *   e = 1{Pb >= Pb'} qb - 1{Pb <= Pb'} qb' - 1{Pa <= Pa'} qa + 1{Pa >= Pa'} qa'
 * Positive when buy pressure grows: a bid queue that grows or improves, an ask queue that
 * shrinks or retreats.
 */
export function orderFlowImbalance(
  bidPrice: number, bidSize: number, askPrice: number, askSize: number,
  prevBidPrice: number, prevBidSize: number, prevAskPrice: number, prevAskSize: number,
): number {
  let e = 0;
  if (bidPrice >= prevBidPrice) e += bidSize;
  if (bidPrice <= prevBidPrice) e -= prevBidSize;
  if (askPrice <= prevAskPrice) e -= askSize;
  if (askPrice >= prevAskPrice) e += prevAskSize;
  return e;
}

/**
 * Stateful extractor for one symbol. Output layout (L = `levels`):
 *
 * - `4i + 0` bid distance from the mid of level i, bps: (mid - bid_i) / mid * 1e4
 * - `4i + 1` ask distance from the mid of level i, bps: (ask_i - mid) / mid * 1e4
 * - `4i + 2` log1p(bid size of level i)
 * - `4i + 3` log1p(ask size of level i)
 * - `4L + 0` spread, bps: (ask_0 - bid_0) / mid * 1e4
 * - `4L + 1` level-1 size imbalance (qb - qa) / (qb + qa), in [-1, 1]
 * - `4L + 2` depth imbalance over the first min(L, present) levels of each side, in [-1, 1]
 * - `4L + 3` level-1 order-flow imbalance since the previous snapshot, divided by the sum of
 *            the four level-1 sizes it involves (qb + qb' + qa + qa'), so it lies in [-1, 1]
 * - `4L + 4` mid log-return since the previous snapshot, bps: ln(mid / mid') * 1e4
 * - `4L + 5` log1p(venue-time gap since the previous snapshot, ms)
 *
 * Where a side has fewer than L levels, each missing level repeats the distance of the
 * deepest present level on that side and has log size 0: "no more liquidity beyond the last
 * quoted price", which keeps the distance ladder monotone and the missing depth visible as
 * zero size. Levels beyond L are ignored.
 *
 * On the first snapshot, and after `reset()` (call it on a disconnect), the three "since the
 * previous snapshot" features are 0.
 */
export class FeatureExtractor {
  readonly levels: number;
  readonly dimension: number;

  private hasPrevious = false;
  private prevBidPrice = 0;
  private prevBidSize = 0;
  private prevAskPrice = 0;
  private prevAskSize = 0;
  private prevMid = 0;
  private prevTs = 0;

  constructor(levels: number) {
    if (!Number.isInteger(levels) || levels < 1) {
      throw new RangeError(`levels must be a positive integer, got ${levels}`);
    }
    this.levels = levels;
    this.dimension = featureDimension(levels);
  }

  /** Writes the features of `snapshot` (already passed by `checkBook`) into `out`. */
  extract(snapshot: BookSnapshot, out: Float64Array): void {
    if (out.length !== this.dimension) {
      throw new RangeError(`out must have length ${this.dimension}, got ${out.length}`);
    }
    const { bids, asks } = snapshot;
    const levels = this.levels;
    const bestBid = bids[0];
    const bestAsk = asks[0];
    const bestBidSize = bids[1];
    const bestAskSize = asks[1];
    const mid = bestBid * 0.5 + bestAsk * 0.5;
    const bpsPerPrice = finiteRatio(BPS, mid);

    const bidLevels = Math.min(levels, bids.length >> 1);
    const askLevels = Math.min(levels, asks.length >> 1);
    let bidDistance = 0;
    let askDistance = 0;
    let bidDepth = 0;
    let askDepth = 0;
    for (let i = 0; i < levels; i++) {
      const o = 4 * i;
      if (i < bidLevels) {
        const size = bids[2 * i + 1];
        bidDistance = (mid - bids[2 * i]) * bpsPerPrice;
        bidDepth += size;
        out[o + 2] = Math.log1p(size);
      } else {
        out[o + 2] = 0;
      }
      if (i < askLevels) {
        const size = asks[2 * i + 1];
        askDistance = (asks[2 * i] - mid) * bpsPerPrice;
        askDepth += size;
        out[o + 3] = Math.log1p(size);
      } else {
        out[o + 3] = 0;
      }
      // Past the last present level the distance carries over from it: the padding rule.
      out[o] = Number.isFinite(bidDistance) ? bidDistance : 0;
      out[o + 1] = Number.isFinite(askDistance) ? askDistance : 0;
    }

    const base = 4 * levels;
    const spread = (bestAsk - bestBid) * bpsPerPrice;
    out[base] = Number.isFinite(spread) ? spread : 0;
    out[base + 1] = finiteRatio(bestBidSize - bestAskSize, bestBidSize + bestAskSize);
    out[base + 2] = finiteRatio(bidDepth - askDepth, bidDepth + askDepth);

    if (this.hasPrevious) {
      const ofi = orderFlowImbalance(
        bestBid, bestBidSize, bestAsk, bestAskSize,
        this.prevBidPrice, this.prevBidSize, this.prevAskPrice, this.prevAskSize,
      );
      out[base + 3] = finiteRatio(ofi, bestBidSize + this.prevBidSize + bestAskSize + this.prevAskSize);
      // A log-return needs two positive mids; a negative-priced book has no meaningful one.
      const ratio = mid > 0 && this.prevMid > 0 ? mid / this.prevMid : 1;
      const logReturn = Math.log(ratio) * BPS;
      out[base + 4] = Number.isFinite(logReturn) ? logReturn : 0;
      // Venue time is checked for order upstream; a negative or non-finite gap still maps to 0.
      const gap = snapshot.ts - this.prevTs;
      out[base + 5] = gap > 0 && Number.isFinite(gap) ? Math.log1p(gap) : 0;
    } else {
      out[base + 3] = 0;
      out[base + 4] = 0;
      out[base + 5] = 0;
    }

    this.hasPrevious = true;
    this.prevBidPrice = bestBid;
    this.prevBidSize = bestBidSize;
    this.prevAskPrice = bestAsk;
    this.prevAskSize = bestAskSize;
    this.prevMid = mid;
    this.prevTs = snapshot.ts;
  }

  /** A trade since the previous snapshot. The order-flow features (issue 11) accumulate it here. */
  observeTrade(_trade: Trade): void {}

  /** An order event since the previous snapshot, for the per-event features (issue 11). */
  observeOrderEvent(_event: OrderEvent): void {}

  /** Forgets the previous snapshot: the next one is treated as the first of a stream. */
  reset(): void {
    this.hasPrevious = false;
    this.prevBidPrice = 0;
    this.prevBidSize = 0;
    this.prevAskPrice = 0;
    this.prevAskSize = 0;
    this.prevMid = 0;
    this.prevTs = 0;
  }

  /** [format, levels, hasPrevious, prevBid, prevBidSize, prevAsk, prevAskSize, prevMid, prevTs]. */
  getState(): Float64Array {
    return Float64Array.of(
      STATE_FORMAT, this.levels, this.hasPrevious ? 1 : 0,
      this.prevBidPrice, this.prevBidSize, this.prevAskPrice, this.prevAskSize, this.prevMid, this.prevTs,
    );
  }

  /** Restores a state from `getState()` of an extractor with the same number of levels. */
  setState(state: Float64Array): void {
    if (state.length !== STATE_LENGTH || state[0] !== STATE_FORMAT) {
      throw new RangeError(
        `feature extractor state: expected format ${STATE_FORMAT} with ${STATE_LENGTH} values, got format ${state[0]} with ${state.length}`,
      );
    }
    if (state[1] !== this.levels) {
      throw new RangeError(`feature extractor state: levels ${state[1]} does not match this extractor's ${this.levels}`);
    }
    this.hasPrevious = state[2] === 1;
    this.prevBidPrice = state[3];
    this.prevBidSize = state[4];
    this.prevAskPrice = state[5];
    this.prevAskSize = state[6];
    this.prevMid = state[7];
    this.prevTs = state[8];
  }
}
