import type { BookSnapshot, Rejected, RejectReason } from './types.js';
import { rejected } from './types.js';

export interface BookProblem {
  readonly reason: RejectReason;
  readonly detail: string;
}

/**
 * The one check every source runs before a snapshot leaves the edge: finite numbers,
 * sizes > 0, bids strictly descending, asks strictly ascending, at least one level on
 * each side, and not crossed or locked (best bid < best ask).
 * Returns null when the book is sound.
 */
export function checkBook(bids: Float64Array, asks: Float64Array): BookProblem | null {
  const sideProblem = checkSide('bids', bids, -1) ?? checkSide('asks', asks, 1);
  if (sideProblem) return sideProblem;
  if (bids.length === 0 || asks.length === 0) {
    return { reason: 'empty_book', detail: `${bids.length === 0 ? 'bids' : 'asks'}: no levels` };
  }
  if (bids[0] >= asks[0]) {
    return {
      reason: 'crossed_book',
      detail: `bids[0][0]: best bid ${bids[0]} >= best ask ${asks[0]} (crossed or locked book)`,
    };
  }
  return null;
}

function checkSide(name: 'bids' | 'asks', side: Float64Array, direction: 1 | -1): BookProblem | null {
  if (side.length % 2 !== 0) return { reason: 'schema', detail: `${name}: odd number of values` };
  for (let i = 0; i < side.length; i += 2) {
    const price = side[i];
    const size = side[i + 1];
    const level = i >> 1;
    if (!Number.isFinite(price)) return { reason: 'non_finite', detail: `${name}[${level}][0]: price must be finite, got ${price}` };
    if (!Number.isFinite(size)) return { reason: 'non_finite', detail: `${name}[${level}][1]: size must be finite, got ${size}` };
    if (!(size > 0)) return { reason: 'non_positive_size', detail: `${name}[${level}][1]: size must be > 0, got ${size}` };
    if (level > 0) {
      const previous = side[i - 2];
      const ordered = direction === 1 ? price > previous : price < previous;
      if (!ordered) {
        const want = direction === 1 ? 'strictly ascending' : 'strictly descending';
        return { reason: 'unordered_levels', detail: `${name}[${level}][0]: prices must be ${want}, got ${previous} then ${price}` };
      }
    }
  }
  return null;
}

/** Runs `checkBook` and turns the outcome into either the snapshot or a Rejected message. */
export function snapshotOrRejected(snapshot: BookSnapshot, raw?: unknown): BookSnapshot | Rejected {
  const problem = checkBook(snapshot.bids, snapshot.asks);
  if (!problem) return snapshot;
  return rejected(problem.reason, `${snapshot.symbol}: ${problem.detail}`, raw ?? snapshot.symbol, snapshot.symbol);
}
