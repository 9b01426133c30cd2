import { describeUntrusted } from './json-edge.js';

// Domain types shared by every stage. Readonly, told apart by `type`.
// Inside the process a book side is a flat Float64Array [price0, size0, price1, size1, ...]
// (best level first) so features read it without chasing nested arrays.

/** Epoch milliseconds, fractional allowed. */
export type EpochMs = number;

export interface BookSnapshot {
  readonly type: 'book_snapshot';
  readonly symbol: string;
  /** Venue (exchange) time of the book state, epoch ms. */
  readonly ts: EpochMs;
  /** Local receive time, epoch ms; equals `ts` for files that carry no receive time. */
  readonly localTs: EpochMs;
  /** Venue sequence number (update id, LOBSTER row...) where the source has one. */
  readonly seq: number | undefined;
  /** Bid levels, best (highest) first: [p0, s0, p1, s1, ...]; length = 2 * levels. */
  readonly bids: Float64Array;
  /** Ask levels, best (lowest) first: [p0, s0, p1, s1, ...]; length = 2 * levels. */
  readonly asks: Float64Array;
}

/**
 * The feed for `symbol` (or every symbol of the source when null) lost continuity:
 * a dropped connection, a sequence gap, a failed checksum. Predictions pending across it
 * are discarded downstream, never labelled by a guess.
 */
export interface Disconnect {
  readonly type: 'disconnect';
  readonly symbol: string | null;
  /** With `symbol` null inside the engine: only the streams of this venue lost continuity (unset: every stream). */
  readonly venue?: string;
  readonly localTs: EpochMs;
  readonly reason: string;
}

/** Why an input was dropped at the edge; counted per reason. */
export type RejectReason =
  | 'malformed_json'
  | 'schema'
  | 'non_finite'
  | 'crossed_book'
  | 'unordered_levels'
  | 'non_positive_size'
  | 'empty_book'
  | 'out_of_order'
  | 'implausible_ts'
  | 'sequence_gap'
  | 'checksum_mismatch'
  | 'unknown_symbol'
  | 'unsupported_message'
  | 'venue_error'
  | 'too_deep'
  | 'too_many'
  | 'rate_limited';

/** An input that was dropped at the edge; it never reaches a learner. */
export interface Rejected {
  readonly type: 'rejected';
  readonly reason: RejectReason;
  /** Names the field and the problem, e.g. `bids[3][1]: size must be > 0, got -2`. */
  readonly detail: string;
  /** A short excerpt of the offending input, for the once-per-reason log line. */
  readonly sample: string;
  readonly symbol: string | null;
}

/** Who took liquidity: +1 a buyer lifted the ask, -1 a seller hit the bid, 0 the venue does not say. */
export type Aggressor = 1 | -1 | 0;

/**
 * An execution. Never a reason to predict by itself: trades feed the features of the next
 * book update of their symbol.
 */
export interface Trade {
  readonly type: 'trade';
  readonly symbol: string;
  /** Venue time of the execution, epoch ms. */
  readonly ts: EpochMs;
  /** Local receive time, epoch ms; equals `ts` for files that carry no receive time. */
  readonly localTs: EpochMs;
  readonly price: number;
  /** Executed quantity, > 0. */
  readonly size: number;
  readonly aggressor: Aggressor;
  /** The venue's trade id where it has one. */
  readonly tradeId: string | undefined;
}

/** What happened to a resting limit order (LOBSTER message types 1 to 3; executions are trades). */
export type OrderEventKind = 'submit' | 'cancel' | 'delete';

/**
 * A change to one resting limit order, where the source reports individual orders (LOBSTER).
 * Like trades, order events only feed the features of the next book update.
 */
export interface OrderEvent {
  readonly type: 'order_event';
  readonly symbol: string;
  readonly ts: EpochMs;
  readonly localTs: EpochMs;
  readonly kind: OrderEventKind;
  /** Side of the resting order: +1 bid (buy order), -1 ask (sell order). */
  readonly side: 1 | -1;
  readonly price: number;
  /** Shares submitted, cancelled or deleted, > 0. */
  readonly size: number;
  /**
   * Where its price sat in its side of the book just before the event: the number of that
   * side's levels priced strictly better (0 = at or inside the best), or -1 when the source
   * cannot tell (deeper than the levels it carries).
   */
  readonly level: number;
}

export type MarketMessage = BookSnapshot | Trade | OrderEvent | Disconnect | Rejected;

/** A rejection: `detail` names the field and value; `raw` is excerpted for the log. */
export function rejected(reason: RejectReason, detail: string, raw: unknown, symbol: string | null): Rejected {
  return { type: 'rejected', reason, detail, sample: sampleOf(raw), symbol };
}

/** Truncates raw input for logs and error frames; never throws, whatever `raw` is. */
export function sampleOf(raw: unknown, max = 200): string {
  if (typeof raw !== 'string') return describeUntrusted(raw, max);
  return raw.length > max ? `${raw.slice(0, max)}…` : raw;
}
