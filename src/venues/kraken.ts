// Kraken websocket API v1, public `book` and `trade` channels (wss://ws.kraken.com).
//
// Frames are either event objects (`systemStatus`, `subscriptionStatus`, `heartbeat`, `pong`,
// `error`) or channel arrays:
//   trades    [channelID, [[price, volume, time, side, orderType, misc(, tradeId)], ...], "trade", pair]
//             side is the taker's: "b"/"buy" or "s"/"sell"; time is decimal epoch seconds. The
//             first trade message after each subscription is a snapshot of the last 50 trades,
//             history from before it: skipped, as tardis-node does, so a reconnect never feeds
//             old trades (or the same trade twice) into the features of a fresh book.
//   snapshot  [channelID, {"as": [[price, volume, ts], ...], "bs": [...]}, "book-N", pair]
//   update    [channelID, {"a": [...]}, "book-N", pair]
//             [channelID, {"b": [...], "c": checksum}, "book-N", pair]
//             [channelID, {"a": [...]}, {"b": [...], "c": checksum}, "book-N", pair]
// An update entry may carry a fourth element "r" (a level republished because it came back
// into the subscribed depth). Prices, volumes and timestamps are decimal strings.
//
// The checksum is computed from the venue's exact strings, so each side keeps them next to the
// parsed numbers; a numeric book could not reproduce "5290.80000" from 5290.8.
// Reference: https://docs.kraken.com/api/docs/guides/spot-ws-book-v1 (book checksum),
// https://docs.kraken.com/api/docs/websocket-v1/trade (trade channel)
import type { Aggressor, BookSnapshot, EpochMs, MarketMessage, Rejected, RejectReason, Trade } from '../domain/types.js';
import { rejected } from '../domain/types.js';
import { snapshotOrRejected } from '../domain/book-check.js';
import { BookRegistry, type BookEntry } from './book-registry.js';
import { FrameError, isRecord, parseJsonFrame, QUOTED, shown } from './frame.js';
import type { FrameMapper, LiveProtocol, MapperOptions, Venue } from './types.js';
import { crc32 } from 'node:zlib';

// ---- raw venue messages (never leave this file) ---------------------------------------------

/** [price, volume, timestamp] or [price, volume, timestamp, "r"]. */
type RawEntry = readonly [string, string, string] | readonly [string, string, string, 'r'];

interface RawEvent {
  readonly event: string;
  readonly status?: unknown;
  readonly pair?: unknown;
  readonly errorMessage?: unknown;
  readonly subscription?: unknown;
}

/** The taker's side as the trade channel spells it (the reference lists buy/sell, its example b/s). */
function takerSide(side: unknown): Aggressor | null {
  switch (side) {
    case 'b':
    case 'buy':
      return 1;
    case 's':
    case 'sell':
      return -1;
    default:
      return null;
  }
}

const TRADE_ID_TEXT = /^\d{1,15}$/;

/** The checksum covers the ten best levels per side whatever the subscribed depth. */
const CHECKSUM_LEVELS = 10;
const DEFAULT_DEPTH = 10;
/** Kraken's largest book subscription. */
const MAX_DEPTH = 1000;

const DECIMAL = /^\d+(?:\.\d+)?$/;
const CHECKSUM_TEXT = /^\d{1,10}$/;
const CHAR_ZERO = 0x30;

// ---- one side of a depth-limited book -------------------------------------------------------

/**
 * Price levels of one side, best first, in parallel arrays (price, volume, and the venue's
 * strings for both). At most a few hundred levels: a binary search plus a splice beats a tree
 * here and keeps iteration in best-first order for free.
 */
class KrakenSide {
  readonly prices: number[] = [];
  readonly volumes: number[] = [];
  readonly priceTexts: string[] = [];
  readonly volumeTexts: string[] = [];

  /** `descending` for bids (best = highest), ascending for asks. */
  constructor(private readonly descending: boolean) {}

  get length(): number {
    return this.prices.length;
  }

  /** Inserts, replaces, or (volume 0) deletes the level at `price`. */
  apply(price: number, priceText: string, volume: number, volumeText: string): void {
    const index = this.search(price);
    const found = index < this.prices.length && this.prices[index] === price;
    if (volume === 0) {
      if (found) {
        this.prices.splice(index, 1);
        this.volumes.splice(index, 1);
        this.priceTexts.splice(index, 1);
        this.volumeTexts.splice(index, 1);
      }
      return;
    }
    if (found) {
      this.volumes[index] = volume;
      this.priceTexts[index] = priceText;
      this.volumeTexts[index] = volumeText;
      return;
    }
    this.prices.splice(index, 0, price);
    this.volumes.splice(index, 0, volume);
    this.priceTexts.splice(index, 0, priceText);
    this.volumeTexts.splice(index, 0, volumeText);
  }

  /** Kraken sends no deletes for levels pushed out of the subscribed depth: drop them here. */
  truncate(depth: number): void {
    if (this.prices.length <= depth) return;
    this.prices.length = depth;
    this.volumes.length = depth;
    this.priceTexts.length = depth;
    this.volumeTexts.length = depth;
  }

  /** The best `levels` levels as [p0, s0, p1, s1, ...]. */
  top(levels: number): Float64Array {
    const count = Math.min(levels, this.prices.length);
    const out = new Float64Array(count * 2);
    for (let i = 0; i < count; i++) {
      out[2 * i] = this.prices[i];
      out[2 * i + 1] = this.volumes[i];
    }
    return out;
  }

  /** Index of `price`, or where it would be inserted to keep best-first order. */
  private search(price: number): number {
    let low = 0;
    let high = this.prices.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      const better = this.descending ? this.prices[mid] > price : this.prices[mid] < price;
      if (better) low = mid + 1;
      else high = mid;
    }
    return low;
  }
}

interface KrakenBook {
  readonly depth: number;
  readonly bids: KrakenSide;
  readonly asks: KrakenSide;
}

/**
 * Kraken's book checksum: for the ten best asks (ascending) then the ten best bids
 * (descending), the price then the volume string with '.' removed and leading zeros stripped,
 * all concatenated; CRC-32 (zlib's) of that, unsigned.
 */
export function krakenBookChecksum(
  askPriceTexts: readonly string[],
  askVolumeTexts: readonly string[],
  bidPriceTexts: readonly string[],
  bidVolumeTexts: readonly string[],
): number {
  return crc32(checksumText(askPriceTexts, askVolumeTexts) + checksumText(bidPriceTexts, bidVolumeTexts)) >>> 0;
}

function checksumText(priceTexts: readonly string[], volumeTexts: readonly string[]): string {
  const count = Math.min(CHECKSUM_LEVELS, priceTexts.length);
  let text = '';
  for (let i = 0; i < count; i++) text += checksumDigits(priceTexts[i]) + checksumDigits(volumeTexts[i]);
  return text;
}

/** "0.05005" -> "5005": the dot removed, then the leading zeros. */
function checksumDigits(text: string): string {
  const digits = text.indexOf('.') >= 0 ? text.replace('.', '') : text;
  let start = 0;
  while (start < digits.length && digits.charCodeAt(start) === CHAR_ZERO) start++;
  return digits.slice(start);
}

// ---- frame validation -----------------------------------------------------------------------

/** Kraken's fractional epoch-seconds string as epoch ms, without a lossy `* 1000`. */
export function krakenSecondsToMs(text: string): number {
  const dot = text.indexOf('.');
  if (dot < 0) return Number(text) * 1000;
  const fraction = text.slice(dot + 1).padEnd(3, '0');
  return Number(`${text.slice(0, dot)}${fraction.slice(0, 3)}.${fraction.slice(3) || '0'}`);
}

/**
 * Checks `entries` (the value of `as`, `bs`, `a` or `b`) and returns the newest entry timestamp
 * in ms (-Infinity when there are none); throws a FrameError naming the field otherwise.
 */
function validateEntries(entries: unknown, field: string): number {
  if (!Array.isArray(entries)) {
    throw new FrameError('schema', `${field}: must be an array of [price, volume, timestamp], got ${shown(entries, 40, QUOTED)}`);
  }
  let newest = -Infinity;
  for (let i = 0; i < entries.length; i++) {
    const entry: unknown = entries[i];
    if (!Array.isArray(entry) || entry.length < 3 || entry.length > 4) {
      throw new FrameError('schema', `${field}[${i}]: must be [price, volume, timestamp] or [price, volume, timestamp, "r"], got ${shown(entry, 60, QUOTED)}`);
    }
    const [priceText, volumeText, tsText] = entry as unknown[];
    if (typeof priceText !== 'string' || !DECIMAL.test(priceText)) {
      throw new FrameError('schema', `${field}[${i}][0]: price must be a decimal string, got ${shown(priceText, 40, QUOTED)}`);
    }
    if (typeof volumeText !== 'string' || !DECIMAL.test(volumeText)) {
      throw new FrameError('schema', `${field}[${i}][1]: volume must be a decimal string, got ${shown(volumeText, 40, QUOTED)}`);
    }
    if (typeof tsText !== 'string' || !DECIMAL.test(tsText)) {
      throw new FrameError('schema', `${field}[${i}][2]: timestamp must be decimal epoch seconds, got ${shown(tsText, 40, QUOTED)}`);
    }
    if (entry.length === 4 && entry[3] !== 'r') {
      throw new FrameError('schema', `${field}[${i}][3]: only "r" (republish) is defined, got ${shown(entry[3], 40, QUOTED)}`);
    }
    // Only absurdly long digit strings overflow; the book must never hold an infinity.
    if (!Number.isFinite(Number(priceText))) throw new FrameError('non_finite', `${field}[${i}][0]: price must be finite, got ${shown(priceText, 40, QUOTED)}`);
    if (!Number.isFinite(Number(volumeText))) throw new FrameError('non_finite', `${field}[${i}][1]: volume must be finite, got ${shown(volumeText, 40, QUOTED)}`);
    const ts = krakenSecondsToMs(tsText);
    if (!Number.isFinite(ts)) throw new FrameError('non_finite', `${field}[${i}][2]: timestamp must be finite, got ${shown(tsText, 40, QUOTED)}`);
    if (ts > newest) newest = ts;
  }
  return newest;
}

/** Applies entries already checked by `validateEntries`, in arrival order. */
function applyEntries(side: KrakenSide, entries: unknown): void {
  if (entries === undefined) return;
  const rows = entries as readonly RawEntry[];
  for (let i = 0; i < rows.length; i++) {
    const [priceText, volumeText] = rows[i];
    side.apply(Number(priceText), priceText, Number(volumeText), volumeText);
  }
}

function parseDepth(channelName: string): number | null {
  const match = /^book-(\d{1,4})$/.exec(channelName);
  if (!match) return null;
  const depth = Number(match[1]);
  return depth >= 1 && depth <= MAX_DEPTH ? depth : null;
}

// ---- the mapper -----------------------------------------------------------------------------

class KrakenMapper implements FrameMapper {
  // Each snapshot brings a book of its own (its channel names the depth).
  private readonly books = new BookRegistry<KrakenBook>(() => ({ depth: DEFAULT_DEPTH, bids: new KrakenSide(true), asks: new KrakenSide(false) }));
  /** Pairs whose trade subscription was confirmed and whose snapshot of past trades is still to come. */
  private readonly tradeSnapshotDue = new Set<string>();
  private readonly levels: number;

  constructor(options: MapperOptions) {
    this.levels = Number.isInteger(options.levels) && options.levels > 0 ? options.levels : DEFAULT_DEPTH;
  }

  map(frame: string, localTs: EpochMs): MarketMessage[] {
    const frameJson = parseJsonFrame(frame, 'frame', null);
    if ('type' in frameJson) return [frameJson];
    const message = frameJson.value;
    if (Array.isArray(message)) return this.mapChannelMessage(message, frame, localTs);
    if (isRecord(message) && typeof message.event === 'string') return this.mapEvent(message as unknown as RawEvent, frame);
    return [rejected('unsupported_message', 'frame: neither an event object nor a channel array', frame, null)];
  }

  takeResyncRequests(): string[] {
    return this.books.takeResyncRequests();
  }

  reset(): void {
    this.books.reset();
    this.tradeSnapshotDue.clear();
  }

  private mapEvent(message: RawEvent, frame: string): MarketMessage[] {
    switch (message.event) {
      case 'systemStatus':
      case 'heartbeat':
      case 'pong':
        return [];
      case 'subscriptionStatus': {
        const pair = typeof message.pair === 'string' ? message.pair : null;
        if (message.status === 'error') {
          return [rejected('venue_error', `subscriptionStatus.errorMessage: ${shown(message.errorMessage, 120, QUOTED)}`, frame, pair)];
        }
        const name = isRecord(message.subscription) ? message.subscription.name : undefined;
        if (pair !== null && name === 'trade') {
          if (message.status === 'subscribed') this.tradeSnapshotDue.add(pair);
          return [];
        }
        // After a book unsubscribe (the resync path) nothing more arrives for the old book.
        if (message.status === 'unsubscribed' && pair !== null) this.books.forget(pair);
        return [];
      }
      case 'error':
        return [rejected('venue_error', `error.errorMessage: ${shown(message.errorMessage, 120, QUOTED)}`, frame, null)];
      default:
        return [rejected('unsupported_message', `event: ${shown(message.event, 40, QUOTED)} is not handled`, frame, null)];
    }
  }

  private mapChannelMessage(message: unknown[], frame: string, localTs: EpochMs): MarketMessage[] {
    if (message.length < 4 || message.length > 5) {
      return [rejected('schema', `frame: a channel message has 4 or 5 elements, got ${message.length}`, frame, null)];
    }
    const pair = message[message.length - 1];
    const channelName = message[message.length - 2];
    if (typeof pair !== 'string' || pair.length === 0) {
      return [rejected('schema', `[${message.length - 1}]: pair must be a non-empty string, got ${shown(pair, 40, QUOTED)}`, frame, null)];
    }
    if (typeof channelName !== 'string') {
      return [rejected('schema', `[${message.length - 2}]: channel name must be a string, got ${shown(channelName, 40, QUOTED)}`, frame, pair)];
    }
    if (channelName === 'trade') return this.mapTrades(message, pair, frame, localTs);
    if (!channelName.startsWith('book')) {
      return [rejected('unsupported_message', `[${message.length - 2}]: channel ${shown(channelName, 40, QUOTED)} is not handled`, frame, pair)];
    }
    const depth = parseDepth(channelName);
    if (depth === null) {
      return [rejected('schema', `[${message.length - 2}]: channel name must be book-N with 1 <= N <= ${MAX_DEPTH}, got ${shown(channelName, 40, QUOTED)}`, frame, pair)];
    }
    const payloads = message.slice(1, message.length - 2);
    for (let i = 0; i < payloads.length; i++) {
      if (!isRecord(payloads[i])) {
        return [rejected('schema', `[${i + 1}]: must be an object, got ${shown(payloads[i], 40, QUOTED)}`, frame, pair)];
      }
    }
    const objects = payloads as Record<string, unknown>[];
    const isSnapshot = objects.length === 1 && ('as' in objects[0] || 'bs' in objects[0]);
    return isSnapshot ? this.applySnapshot(pair, depth, objects[0], frame, localTs) : this.applyUpdate(pair, objects, frame, localTs);
  }

  /** One trade per entry; a bad entry is rejected naming its field, its neighbours still count. */
  private mapTrades(message: unknown[], pair: string, frame: string, localTs: EpochMs): MarketMessage[] {
    if (message.length !== 4 || !Array.isArray(message[1])) {
      return [rejected('schema', `[1]: trades must be an array of [price, volume, time, side, orderType, misc], got ${shown(message[1], 40, QUOTED)}`, frame, pair)];
    }
    if (this.tradeSnapshotDue.delete(pair)) return [];
    const entries = message[1] as unknown[];
    const out: MarketMessage[] = [];
    for (let i = 0; i < entries.length; i++) out.push(this.mapTrade(entries[i], `[1][${i}]`, pair, frame, localTs));
    return out;
  }

  private mapTrade(entry: unknown, at: string, pair: string, frame: string, localTs: EpochMs): Trade | Rejected {
    if (!Array.isArray(entry) || entry.length < 6 || entry.length > 7) {
      return rejected('schema', `${at}: must be [price, volume, time, side, orderType, misc(, tradeId)], got ${shown(entry, 60, QUOTED)}`, frame, pair);
    }
    const [priceText, volumeText, timeText, side, orderType, misc, tradeIdRaw] = entry as unknown[];
    if (typeof priceText !== 'string' || !DECIMAL.test(priceText)) {
      return rejected('schema', `${at}[0]: price must be a decimal string, got ${shown(priceText, 40, QUOTED)}`, frame, pair);
    }
    if (typeof volumeText !== 'string' || !DECIMAL.test(volumeText)) {
      return rejected('schema', `${at}[1]: volume must be a decimal string, got ${shown(volumeText, 40, QUOTED)}`, frame, pair);
    }
    if (typeof timeText !== 'string' || !DECIMAL.test(timeText)) {
      return rejected('schema', `${at}[2]: time must be decimal epoch seconds, got ${shown(timeText, 40, QUOTED)}`, frame, pair);
    }
    const aggressor = takerSide(side);
    if (aggressor === null) {
      return rejected('schema', `${at}[3]: side must be "b" or "s" (the taker's), got ${shown(side, 40, QUOTED)}`, frame, pair);
    }
    if (typeof orderType !== 'string') return rejected('schema', `${at}[4]: order type must be a string, got ${shown(orderType, 40, QUOTED)}`, frame, pair);
    if (typeof misc !== 'string') return rejected('schema', `${at}[5]: misc must be a string, got ${shown(misc, 40, QUOTED)}`, frame, pair);
    let tradeId: string | undefined;
    if (tradeIdRaw !== undefined) {
      tradeId = typeof tradeIdRaw === 'number' ? String(tradeIdRaw) : typeof tradeIdRaw === 'string' ? tradeIdRaw : '';
      if (!TRADE_ID_TEXT.test(tradeId)) {
        return rejected('schema', `${at}[6]: trade id must be a non-negative integer, got ${shown(tradeIdRaw, 40, QUOTED)}`, frame, pair);
      }
    }
    const price = Number(priceText);
    const size = Number(volumeText);
    const ts = krakenSecondsToMs(timeText);
    if (!Number.isFinite(price)) return rejected('non_finite', `${at}[0]: price must be finite, got ${shown(priceText, 40, QUOTED)}`, frame, pair);
    if (!(price > 0)) return rejected('schema', `${at}[0]: price must be > 0, got ${shown(priceText, 40, QUOTED)}`, frame, pair);
    if (!Number.isFinite(size)) return rejected('non_finite', `${at}[1]: volume must be finite, got ${shown(volumeText, 40, QUOTED)}`, frame, pair);
    if (!(size > 0)) return rejected('non_positive_size', `${at}[1]: volume must be > 0, got ${shown(volumeText, 40, QUOTED)}`, frame, pair);
    if (!Number.isFinite(ts)) return rejected('non_finite', `${at}[2]: time must be finite, got ${shown(timeText, 40, QUOTED)}`, frame, pair);

    return { type: 'trade', symbol: pair, ts, localTs, price, size, aggressor, tradeId };
  }

  private applySnapshot(pair: string, depth: number, payload: Record<string, unknown>, frame: string, localTs: EpochMs): MarketMessage[] {
    let newest: number;
    try {
      newest = Math.max(payload.as === undefined ? -Infinity : validateEntries(payload.as, '[1].as'), payload.bs === undefined ? -Infinity : validateEntries(payload.bs, '[1].bs'));
    } catch (error) {
      if (!(error instanceof FrameError)) throw error;
      return this.loseBook(pair, error.reason, error.detail, frame, localTs);
    }
    const book: KrakenBook = { depth, bids: new KrakenSide(true), asks: new KrakenSide(false) };
    applyEntries(book.asks, payload.as);
    applyEntries(book.bids, payload.bs);
    book.asks.truncate(depth);
    book.bids.truncate(depth);
    const entry = this.books.entry(pair);
    entry.book = book;
    this.books.synced(entry);
    return this.emit(entry, newest, localTs, frame);
  }

  private applyUpdate(pair: string, objects: Record<string, unknown>[], frame: string, localTs: EpochMs): MarketMessage[] {
    const entry = this.books.live(pair);
    // Deltas before the snapshot (or after a dropped book, until the resubscription's
    // snapshot) cannot be applied to anything.
    if (entry === undefined) return [];
    const book = entry.book;

    let newest = -Infinity;
    let checksumText: string | undefined;
    // Validate the whole message before touching the book: half an update is a corrupt book.
    try {
      for (let i = 0; i < objects.length; i++) {
        const payload = objects[i];
        const at = `[${i + 1}]`;
        if (payload.a === undefined && payload.b === undefined) {
          throw new FrameError('schema', `${at}: an update object needs "a" or "b"`);
        }
        if (payload.a !== undefined) newest = Math.max(newest, validateEntries(payload.a, `${at}.a`));
        if (payload.b !== undefined) newest = Math.max(newest, validateEntries(payload.b, `${at}.b`));
        if (payload.c !== undefined) {
          if (typeof payload.c !== 'string' || !CHECKSUM_TEXT.test(payload.c) || Number(payload.c) > 0xffffffff) {
            throw new FrameError('schema', `${at}.c: checksum must be an unsigned 32-bit decimal string, got ${shown(payload.c, 40, QUOTED)}`);
          }
          checksumText = payload.c;
        }
      }
    } catch (error) {
      if (!(error instanceof FrameError)) throw error;
      return this.loseBook(pair, error.reason, error.detail, frame, localTs);
    }

    // Within a side the last entry for a price is the newest, so arrival order is kept.
    for (let i = 0; i < objects.length; i++) {
      applyEntries(book.asks, objects[i].a);
      applyEntries(book.bids, objects[i].b);
    }
    book.asks.truncate(book.depth);
    book.bids.truncate(book.depth);

    if (checksumText !== undefined) {
      const expected = Number(checksumText);
      const computed = krakenBookChecksum(book.asks.priceTexts, book.asks.volumeTexts, book.bids.priceTexts, book.bids.volumeTexts);
      if (computed !== expected) {
        return this.loseBook(pair, 'checksum_mismatch', `c: venue checksum ${expected}, local book gives ${computed}`, frame, localTs);
      }
    }
    return this.emit(entry, newest, localTs, frame);
  }

  /** The book can no longer be trusted: say so, forget it and ask for a fresh snapshot. */
  private loseBook(pair: string, reason: RejectReason, detail: string, frame: string, localTs: EpochMs): MarketMessage[] {
    return this.books.rejectAndLose(pair, reason, detail, frame, localTs);
  }

  private emit(entry: BookEntry<KrakenBook, never>, newestMs: number, localTs: EpochMs, frame: string): MarketMessage[] {
    const snapshot: BookSnapshot = {
      type: 'book_snapshot',
      symbol: entry.symbol,
      ts: Number.isFinite(newestMs) ? newestMs : localTs,
      localTs,
      seq: undefined,
      bids: entry.book.bids.top(this.levels),
      asks: entry.book.asks.top(this.levels),
    };
    const out: MarketMessage[] = [];
    this.books.emit(entry, snapshotOrRejected(snapshot, frame), out);
    return out;
  }
}

// ---- live protocol and venue ----------------------------------------------------------------

const VALID_DEPTHS = [10, 25, 100, 500, 1000] as const;
export type KrakenDepth = (typeof VALID_DEPTHS)[number];

function krakenLive(depth: KrakenDepth): LiveProtocol {
  const book = { name: 'book', depth };
  const trade = { name: 'trade' };
  // One subscription per request: the v1 API takes a single `subscription` object.
  const frames = (event: 'subscribe' | 'unsubscribe', symbols: readonly string[], subscriptions: readonly object[]): string[] =>
    symbols.length ? subscriptions.map((subscription) => JSON.stringify({ event, pair: [...symbols], subscription })) : [];
  return {
    venue: 'kraken',
    connectUrl: (baseUrl) => baseUrl,
    subscribeFrames: (symbols) => frames('subscribe', symbols, [book, trade]),
    unsubscribeFrames: (symbols) => frames('unsubscribe', symbols, [book, trade]),
    // A new book subscription starts with a snapshot; the trade subscription stays, so no trade
    // is missed meanwhile.
    resyncFrames: (symbols) => [...frames('unsubscribe', symbols, [book]), ...frames('subscribe', symbols, [book])],
    pingFrame: () => JSON.stringify({ event: 'ping' }),
    snapshotUrl: () => null,
  };
}

/**
 * Kraken v1 `book` at a subscription depth of 10, 25, 100, 500 or 1000 levels per side, and `trade`.
 * The mapper reads the depth of each book from its channel name (`book-N`), so it keeps any
 * subscription correct; `depth` only chooses what the live client asks for.
 */
export function krakenVenue(depth: KrakenDepth = DEFAULT_DEPTH): Venue {
  if (!VALID_DEPTHS.includes(depth)) throw new RangeError(`kraken depth must be one of ${VALID_DEPTHS.join(', ')}, got ${depth}`);
  return {
    id: 'kraken',
    createMapper: (options) => new KrakenMapper(options),
    live: krakenLive(depth),
  };
}

export const kraken: Venue = krakenVenue();
