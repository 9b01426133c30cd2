// What the snapshot-and-delta mappers (Kraken v2, Bybit v5, OKX v5, tardis incremental_book_L2)
// share: decimal parsing that names the field, a per-symbol L2Book that remembers the venue's
// exact price and size strings where a checksum is computed from them, and the one place a
// book leaves as a checked BookSnapshot. No I/O, nothing here throws on venue input.
import { L2Book } from '../book/l2-book.js';
import type { BookSide } from '../book/l2-book.js';
import { snapshotOrRejected } from '../domain/book-check.js';
import type { BookSnapshot, EpochMs, Rejected } from '../domain/types.js';
import { FrameError, isFrameError, shown } from './frame.js';

/** A plain decimal as venues write prices and sizes: no sign, no exponent. */
export const DECIMAL_TEXT = /^\d+(?:\.\d+)?$/;

/**
 * A price or size sent as a decimal string. `zero` says whether 0 is allowed (a delete in a
 * delta) or not (a trade, a snapshot level).
 */
export function decimalText(raw: unknown, field: string, zero: 'zero_deletes' | 'positive'): number | FrameError {
  if (typeof raw !== 'string' || !DECIMAL_TEXT.test(raw)) {
    return new FrameError('schema', `${field}: expected a decimal string, got ${shown(raw)}`);
  }
  const value = Number(raw);
  if (!Number.isFinite(value)) return new FrameError('non_finite', `${field}: must be finite, got ${shown(raw)}`);
  if (value === 0 && zero === 'positive') return new FrameError('non_positive_size', `${field}: must be > 0, got ${shown(raw)}`);
  return value;
}

/** An RFC 3339 UTC time (`2023-09-25T07:49:37.708706Z`) as epoch ms; a FrameError naming the field otherwise. */
export function isoTimeMs(raw: unknown, field: string): number | FrameError {
  const ms = typeof raw === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z$/.test(raw) ? Date.parse(raw) : Number.NaN;
  if (!Number.isFinite(ms)) return new FrameError('schema', `${field}: expected an RFC 3339 UTC time, got ${shown(raw)}`);
  return ms;
}

/** A non-negative integer (sequence number, update id), as a JSON number; a FrameError otherwise. */
export function sequenceNumber(raw: unknown, field: string): number | FrameError {
  if (typeof raw !== 'number' || !Number.isSafeInteger(raw) || raw < 0) {
    return new FrameError('schema', `${field}: expected a non-negative integer, got ${shown(raw)}`);
  }
  return raw;
}

/**
 * An L2Book per symbol, plus the venue's own strings for each held level when `keepTexts`:
 * Kraken's and OKX's checksums are over those strings ("0.10000000" is not 0.1 to a CRC).
 */
export class DepthBook {
  readonly book: L2Book;
  private readonly priceTexts: Record<BookSide, Map<number, string>> = { bid: new Map(), ask: new Map() };
  private readonly sizeTexts: Record<BookSide, Map<number, string>> = { bid: new Map(), ask: new Map() };
  private scratch = new Float64Array(64);

  constructor(
    private readonly keepTexts: boolean,
    capacityPerSide = 256,
  ) {
    this.book = new L2Book(capacityPerSide);
  }

  reset(): void {
    this.book.reset();
    for (const side of ['bid', 'ask'] as const) {
      this.priceTexts[side].clear();
      this.sizeTexts[side].clear();
    }
  }

  /** Sets (size > 0) or deletes (size 0) the level; callers validated both numbers. */
  set(side: BookSide, price: number, size: number, priceText: string, sizeText: string): void {
    this.book.setLevel(side, price, size);
    if (!this.keepTexts) return;
    if (size === 0) {
      this.priceTexts[side].delete(price);
      this.sizeTexts[side].delete(price);
    } else {
      this.priceTexts[side].set(price, priceText);
      this.sizeTexts[side].set(price, sizeText);
    }
  }

  /** Drops levels past the best `depth` per side (venues send no delete for them). */
  truncate(depth: number): void {
    for (const side of ['bid', 'ask'] as const) {
      const held = this.book.depth(side);
      if (held <= depth) continue;
      if (this.keepTexts) {
        const count = this.writeTop(side, held);
        for (let i = depth; i < count; i += 1) {
          this.priceTexts[side].delete(this.scratch[2 * i]);
          this.sizeTexts[side].delete(this.scratch[2 * i]);
        }
      }
      this.book.truncate(side, depth);
    }
  }

  /**
   * The venue strings of the best `count` levels of `side`, best first, into the two arrays
   * (their length is set to the levels written). Only for a book built with `keepTexts`.
   */
  topTexts(side: BookSide, count: number, prices: string[], sizes: string[]): number {
    const n = this.writeTop(side, count);
    prices.length = n;
    sizes.length = n;
    for (let i = 0; i < n; i += 1) {
      const price = this.scratch[2 * i];
      prices[i] = this.priceTexts[side].get(price) ?? '';
      sizes[i] = this.sizeTexts[side].get(price) ?? '';
    }
    return n;
  }

  /** The book as a checked snapshot of `levels` per side. */
  emit(symbol: string, ts: number, localTs: EpochMs, seq: number | undefined, levels: number, raw: string): BookSnapshot | Rejected {
    const snapshot: BookSnapshot = {
      type: 'book_snapshot',
      symbol,
      ts,
      localTs,
      seq,
      bids: this.book.topBids(levels),
      asks: this.book.topAsks(levels),
    };
    return snapshotOrRejected(snapshot, raw);
  }

  private writeTop(side: BookSide, count: number): number {
    if (this.scratch.length < 2 * count) this.scratch = new Float64Array(Math.max(2 * count, 2 * this.scratch.length));
    return this.book.writeTop(side, count, this.scratch);
  }
}

/** Clamps a requested number of emitted levels to a positive integer (default 10). */
export function levelsOption(levels: number, fallback = 10): number {
  const whole = Math.floor(levels);
  return Number.isFinite(whole) && whole > 0 ? whole : fallback;
}

/**
 * `[price, size, ...]` levels as Bybit and OKX send them (decimal strings), parsed into reused
 * storage: `values` [p0, s0, p1, s1, ...] and the strings themselves for checksums.
 */
export class TextLevels {
  values = new Float64Array(128);
  readonly prices: string[] = [];
  readonly sizes: string[] = [];
  count = 0;

  /**
   * Reads `raw` (`field` names it in a FrameError). `zero` allows size 0, a delete in a delta.
   * On a FrameError the contents are undefined; nothing is applied anywhere.
   */
  read(raw: unknown, field: string, zero: 'zero_deletes' | 'positive'): FrameError | null {
    if (!Array.isArray(raw)) return new FrameError('schema', `${field}: expected an array of [price, size], got ${shown(raw)}`);
    if (this.values.length < 2 * raw.length) this.values = new Float64Array(Math.max(2 * raw.length, 2 * this.values.length));
    this.prices.length = raw.length;
    this.sizes.length = raw.length;
    for (let i = 0; i < raw.length; i += 1) {
      const level: unknown = raw[i];
      if (!Array.isArray(level) || level.length < 2) return new FrameError('schema', `${field}[${i}]: expected [price, size], got ${shown(level)}`);
      const price = decimalText(level[0], `${field}[${i}][0]`, 'positive');
      if (isFrameError(price)) return price.reason === 'non_positive_size' ? new FrameError('schema', price.detail) : price;
      const size = decimalText(level[1], `${field}[${i}][1]`, zero);
      if (isFrameError(size)) return size;
      this.values[2 * i] = price;
      this.values[2 * i + 1] = size;
      this.prices[i] = level[0] as string;
      this.sizes[i] = level[1] as string;
    }
    this.count = raw.length;
    return null;
  }

  /** Applies the levels read last to `side` of `book`, in order (a later entry for a price wins). */
  applyTo(book: DepthBook, side: BookSide): void {
    for (let i = 0; i < this.count; i += 1) book.set(side, this.values[2 * i], this.values[2 * i + 1], this.prices[i], this.sizes[i]);
  }
}
