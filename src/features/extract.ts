// Per-symbol feature extraction: one sound BookSnapshot in, `featureDimension(L)` numbers out,
// written into a caller-owned Float64Array. No I/O, no allocation per call; the memory of the
// past is the previous snapshot's top L levels (copied, never a reference to the snapshot,
// whose arrays a mapper may reuse) and a few decayed sums of the trades and order events seen
// since. Everything a tick's features use arrived before that tick's snapshot.
import type { BookSnapshot, OrderEvent, Trade } from '../domain/types.js';

const BPS = 1e4;
const STATE_FORMAT = 2;

/**
 * Version of the feature set: it enters the engine's configuration hash and the replay
 * report, so a checkpoint trained on another feature set is never loaded into this one.
 * Bump it whenever a feature is added, removed or redefined.
 */
export const FEATURE_SET_VERSION = 'flow-2';

/** Decay horizons of the trade-flow sums: in ticks (book updates) and in venue time (ms). */
export const FLOW_TICK_HALF_LIVES = [10, 100] as const;
export const FLOW_TIME_HALF_LIVES_MS = [1000, 10_000] as const;
/** Half-life, in ticks, of the decayed counts of submissions and cancellations per side. */
export const ORDER_EVENT_HALF_LIFE = 100;

const FLOW_HORIZONS = FLOW_TICK_HALF_LIVES.length + FLOW_TIME_HALF_LIVES_MS.length;
/** Book-wide elements after the 4L per-level ones, before the L - 1 deeper OFIs. */
const BOOK_WIDE = 6;
/** Elements after the deeper OFIs: signed volume and signed count per horizon, 6 last-event flags, 4 order counts, 3 since-last-move. */
const FLOW_ELEMENTS = 2 * FLOW_HORIZONS + 6 + 4 + 3;
// Last-event flags, in order: submit bid, submit ask, cancel bid, cancel ask, buy trade, sell trade.
const LAST_SUBMIT = 0;
const LAST_CANCEL = 2;
const LAST_TRADE = 4;

/** Number of features for `levels` levels per side (see the ARCHITECTURE.md table). */
export function featureDimension(levels: number): number {
  return 4 * levels + BOOK_WIDE + (levels - 1) + FLOW_ELEMENTS;
}

/** Names of the features in output order, for logs, dashboards and documentation. */
export function featureNames(levels: number): string[] {
  const names: string[] = [];
  for (let i = 0; i < levels; i++) {
    names.push(`bid_dist_bps_${i}`, `ask_dist_bps_${i}`, `log1p_bid_size_${i}`, `log1p_ask_size_${i}`);
  }
  names.push('spread_bps', 'imbalance_l1', 'imbalance_depth', 'ofi_l1', 'mid_return_bps', 'log1p_dt_ms');
  for (let i = 1; i < levels; i++) names.push(`ofi_l${i + 1}`);
  for (const h of FLOW_TICK_HALF_LIVES) names.push(`signed_volume_${h}t`);
  for (const h of FLOW_TIME_HALF_LIVES_MS) names.push(`signed_volume_${h}ms`);
  for (const h of FLOW_TICK_HALF_LIVES) names.push(`signed_trades_${h}t`);
  for (const h of FLOW_TIME_HALF_LIVES_MS) names.push(`signed_trades_${h}ms`);
  names.push('last_submit_bid', 'last_submit_ask', 'last_cancel_bid', 'last_cancel_ask', 'last_trade_buy', 'last_trade_sell');
  names.push('submits_bid', 'submits_ask', 'cancels_bid', 'cancels_ask');
  names.push('last_move_dir', 'log1p_ms_since_move', 'log1p_ticks_since_move');
  return names;
}

/** sign(x) log1p(|x|): keeps the sign and order of a heavy-tailed sum, tames its scale. */
function signedLog1p(x: number): number {
  return x < 0 ? -Math.log1p(-x) : Math.log1p(x);
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
  bidPrice: number,
  bidSize: number,
  askPrice: number,
  askSize: number,
  prevBidPrice: number,
  prevBidSize: number,
  prevAskPrice: number,
  prevAskSize: number,
): number {
  let e = 0;
  if (bidPrice >= prevBidPrice) e += bidSize;
  if (bidPrice <= prevBidPrice) e -= prevBidSize;
  if (askPrice <= prevAskPrice) e -= askSize;
  if (askPrice >= prevAskPrice) e += prevAskSize;
  return e;
}

/**
 * Stateful extractor for one symbol. Output layout (L = `levels`), documented with its
 * definitions in ARCHITECTURE.md:
 *
 * - `4i + 0..3` per level i: bid and ask distance from the mid (bps), log1p of both sizes
 * - `4L + 0..5` spread, level-1 and depth imbalance, level-1 OFI, mid log-return, log1p gap
 * - `4L + 6 + (m - 1)` for m = 1..L-1: OFI at level m + 1 (Xu, Yang, Kong & Wang 2019)
 * - then the flow: aggressor-signed volume and trade count, decayed over ticks and venue
 *   time; the last event since the previous snapshot (submission or cancellation at the best
 *   level, or trade) as six flags; decayed submissions and cancellations per side; the
 *   direction of the last mid change with the log time and ticks since it.
 *
 * Where a side has fewer than L levels, each missing level repeats the distance of the
 * deepest present level on that side and has log size 0, and its OFI is 0.
 * On the first snapshot, and after `reset()` (call it on a disconnect), the "since the
 * previous snapshot" features are 0 and the flow sums start empty.
 */
export class FeatureExtractor {
  readonly levels: number;
  readonly dimension: number;

  private hasPrevious = false;
  private prevMid = 0;
  private prevTs = 0;
  private prevBidLevels = 0;
  private prevAskLevels = 0;
  /** The previous snapshot's top L levels, [p0, s0, p1, s1, ...] per side. */
  private readonly prevBids: Float64Array;
  private readonly prevAsks: Float64Array;
  /** Aggressor-signed volume, then signed count, per tick horizon (decayed once per snapshot). */
  private readonly tickFlow = new Float64Array(2 * FLOW_TICK_HALF_LIVES.length);
  /** Same per venue-time horizon, decayed continuously to `flowTs`. */
  private readonly timeFlow = new Float64Array(2 * FLOW_TIME_HALF_LIVES_MS.length);
  private flowTs = 0;
  private readonly lastEvent = new Float64Array(6);
  /** Decayed counts: submissions bid, ask, cancellations (partial or whole) bid, ask. */
  private readonly orderCounts = new Float64Array(4);
  private lastMoveDirection = 0;
  private lastMoveTs = 0;
  private ticksSinceMove = 0;
  private readonly tickDecay = Float64Array.from(FLOW_TICK_HALF_LIVES, (h) => 2 ** (-1 / h));
  private readonly orderDecay = 2 ** (-1 / ORDER_EVENT_HALF_LIFE);

  constructor(levels: number) {
    if (!Number.isInteger(levels) || levels < 1) {
      throw new RangeError(`levels must be a positive integer, got ${levels}`);
    }
    this.levels = levels;
    this.dimension = featureDimension(levels);
    this.prevBids = new Float64Array(2 * levels);
    this.prevAsks = new Float64Array(2 * levels);
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

    const ofiBase = base + BOOK_WIDE - 1;
    if (this.hasPrevious) {
      // Level m's OFI compares level m of both books; a level missing from either has none.
      for (let m = 0; m < levels; m++) {
        const slot = m === 0 ? base + 3 : ofiBase + m;
        if (m < bidLevels && m < askLevels && m < this.prevBidLevels && m < this.prevAskLevels) {
          const qb = bids[2 * m + 1];
          const qa = asks[2 * m + 1];
          const qbPrev = this.prevBids[2 * m + 1];
          const qaPrev = this.prevAsks[2 * m + 1];
          const ofi = orderFlowImbalance(bids[2 * m], qb, asks[2 * m], qa, this.prevBids[2 * m], qbPrev, this.prevAsks[2 * m], qaPrev);
          out[slot] = finiteRatio(ofi, qb + qbPrev + qa + qaPrev);
        } else {
          out[slot] = 0;
        }
      }
      // A log-return needs two positive mids; a negative-priced book has no meaningful one.
      const ratio = mid > 0 && this.prevMid > 0 ? mid / this.prevMid : 1;
      const logReturn = Math.log(ratio) * BPS;
      out[base + 4] = Number.isFinite(logReturn) ? logReturn : 0;
      // Venue time is checked for order upstream; a negative or non-finite gap still maps to 0.
      const gap = snapshot.ts - this.prevTs;
      out[base + 5] = gap > 0 && Number.isFinite(gap) ? Math.log1p(gap) : 0;
      if (mid !== this.prevMid) {
        this.lastMoveDirection = mid > this.prevMid ? 1 : -1;
        this.lastMoveTs = snapshot.ts;
        this.ticksSinceMove = 0;
      }
    } else {
      out[base + 3] = 0;
      for (let m = 1; m < levels; m++) out[ofiBase + m] = 0;
      out[base + 4] = 0;
      out[base + 5] = 0;
    }

    let o = ofiBase + levels;
    this.decayTimeFlowTo(snapshot.ts);
    const tickFlow = this.tickFlow;
    const timeFlow = this.timeFlow;
    const tickHorizons = FLOW_TICK_HALF_LIVES.length;
    const timeHorizons = FLOW_TIME_HALF_LIVES_MS.length;
    for (let j = 0; j < tickHorizons; j++) out[o++] = signedLog1p(tickFlow[j]);
    for (let j = 0; j < timeHorizons; j++) out[o++] = signedLog1p(timeFlow[j]);
    for (let j = 0; j < tickHorizons; j++) out[o++] = signedLog1p(tickFlow[tickHorizons + j]);
    for (let j = 0; j < timeHorizons; j++) out[o++] = signedLog1p(timeFlow[timeHorizons + j]);
    for (let j = 0; j < tickHorizons; j++) {
      tickFlow[j] *= this.tickDecay[j];
      tickFlow[tickHorizons + j] *= this.tickDecay[j];
    }
    const lastEvent = this.lastEvent;
    for (let j = 0; j < 6; j++) out[o++] = lastEvent[j];
    lastEvent.fill(0);
    const counts = this.orderCounts;
    for (let j = 0; j < 4; j++) {
      out[o++] = Math.log1p(counts[j]);
      counts[j] *= this.orderDecay;
    }
    const sinceMove = snapshot.ts - this.lastMoveTs;
    out[o++] = this.lastMoveDirection;
    out[o++] = this.lastMoveDirection !== 0 && sinceMove > 0 && Number.isFinite(sinceMove) ? Math.log1p(sinceMove) : 0;
    out[o] = this.lastMoveDirection !== 0 ? Math.log1p(this.ticksSinceMove) : 0;
    this.ticksSinceMove++;

    this.hasPrevious = true;
    this.prevMid = mid;
    this.prevTs = snapshot.ts;
    this.prevBidLevels = bidLevels;
    this.prevAskLevels = askLevels;
    for (let i = 0; i < 2 * bidLevels; i++) this.prevBids[i] = bids[i];
    for (let i = 0; i < 2 * askLevels; i++) this.prevAsks[i] = asks[i];
  }

  /** Brings the venue-time sums forward to `ts`; a time earlier than theirs decays nothing. */
  private decayTimeFlowTo(ts: number): void {
    const elapsed = ts - this.flowTs;
    if (!(elapsed > 0 && Number.isFinite(elapsed))) return;
    const horizons = FLOW_TIME_HALF_LIVES_MS.length;
    for (let j = 0; j < horizons; j++) {
      const decay = 2 ** (-elapsed / FLOW_TIME_HALF_LIVES_MS[j]);
      this.timeFlow[j] *= decay;
      this.timeFlow[horizons + j] *= decay;
    }
    this.flowTs = ts;
  }

  /** A trade since the previous snapshot: it enters the flow sums of the next one. */
  observeTrade(trade: Trade): void {
    this.lastEvent.fill(0);
    const side = trade.aggressor;
    if (side === 0 || !(trade.size > 0 && Number.isFinite(trade.size))) return;
    this.decayTimeFlowTo(trade.ts);
    const volume = side * trade.size;
    const tickHorizons = FLOW_TICK_HALF_LIVES.length;
    const timeHorizons = FLOW_TIME_HALF_LIVES_MS.length;
    for (let j = 0; j < tickHorizons; j++) {
      this.tickFlow[j] += volume;
      this.tickFlow[tickHorizons + j] += side;
    }
    for (let j = 0; j < timeHorizons; j++) {
      this.timeFlow[j] += volume;
      this.timeFlow[timeHorizons + j] += side;
    }
    this.lastEvent[LAST_TRADE + (side === 1 ? 0 : 1)] = 1;
  }

  /** An order event since the previous snapshot (LOBSTER): the per-event features. */
  observeOrderEvent(event: OrderEvent): void {
    this.lastEvent.fill(0);
    const sideIndex = event.side === 1 ? 0 : 1;
    const kindIndex = event.kind === 'submit' ? LAST_SUBMIT : LAST_CANCEL;
    this.orderCounts[kindIndex + sideIndex] += 1;
    if (event.level === 0) this.lastEvent[kindIndex + sideIndex] = 1;
  }

  /** Forgets the past: the next snapshot is treated as the first of a stream. */
  reset(): void {
    this.setState(new FeatureExtractor(this.levels).getState());
  }

  /** Every value the next `extract` depends on, behind [format, levels]. */
  getState(): Float64Array {
    const scalars = [
      STATE_FORMAT,
      this.levels,
      this.hasPrevious ? 1 : 0,
      this.prevMid,
      this.prevTs,
      this.prevBidLevels,
      this.prevAskLevels,
      this.flowTs,
      this.lastMoveDirection,
      this.lastMoveTs,
      this.ticksSinceMove,
    ];
    const parts = [this.prevBids, this.prevAsks, this.tickFlow, this.timeFlow, this.lastEvent, this.orderCounts];
    const state = new Float64Array(scalars.length + parts.reduce((n, part) => n + part.length, 0));
    state.set(scalars);
    let offset = scalars.length;
    for (const part of parts) {
      state.set(part, offset);
      offset += part.length;
    }
    return state;
  }

  /** Restores a state from `getState()` of an extractor with the same number of levels and format. */
  setState(state: Float64Array): void {
    const expected = 11 + 4 * this.levels + this.tickFlow.length + this.timeFlow.length + this.lastEvent.length + this.orderCounts.length;
    if (state.length >= 2 && state[0] === STATE_FORMAT && state[1] !== this.levels) {
      throw new RangeError(`feature extractor state: levels ${state[1]} does not match this extractor's ${this.levels}`);
    }
    if (state.length !== expected || state[0] !== STATE_FORMAT) {
      throw new RangeError(`feature extractor state: expected format ${STATE_FORMAT} with ${expected} values, got format ${state[0]} with ${state.length}`);
    }
    this.hasPrevious = state[2] === 1;
    this.prevMid = state[3];
    this.prevTs = state[4];
    this.prevBidLevels = state[5];
    this.prevAskLevels = state[6];
    this.flowTs = state[7];
    this.lastMoveDirection = state[8];
    this.lastMoveTs = state[9];
    this.ticksSinceMove = state[10];
    let offset = 11;
    for (const part of [this.prevBids, this.prevAsks, this.tickFlow, this.timeFlow, this.lastEvent, this.orderCounts]) {
      part.set(state.subarray(offset, offset + part.length));
      offset += part.length;
    }
  }
}
