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
  | 'sequence_gap'
  | 'checksum_mismatch'
  | 'unknown_symbol'
  | 'unsupported_message'
  | 'venue_error';

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

export type MarketMessage = BookSnapshot | Disconnect | Rejected;

/** A rejection: `detail` names the field and value; `raw` is excerpted for the log. */
export function rejected(reason: RejectReason, detail: string, raw: unknown, symbol: string | null): Rejected {
  return { type: 'rejected', reason, detail, sample: sampleOf(raw), symbol };
}

/** Truncates raw input for logs and error frames. */
export function sampleOf(raw: unknown, max = 200): string {
  const text = typeof raw === 'string' ? raw : safeStringify(raw);
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

function safeStringify(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
