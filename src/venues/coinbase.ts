// Coinbase Exchange websocket feed (wss://ws-feed.exchange.coinbase.com), `level2_batch` and
// `level2` channels (same messages; `level2` now needs authentication):
//   {"type":"snapshot","product_id":"BTC-USD","bids":[[price, size],...],"asks":[...]}
//   {"type":"l2update","product_id":"BTC-USD","time":"2022-08-04T15:25:05.010758Z",
//    "changes":[["buy"|"sell", price, size],...]}     size is absolute; "0" removes the level
// and, on the same connection, the `matches` channel:
//   {"type":"match"|"last_match","trade_id":10,"sequence":50,"maker_order_id":..,
//    "taker_order_id":..,"time":"2014-11-07T08:19:27.028459Z","product_id":"BTC-USD",
//    "size":"5.23512","price":"400.23","side":"sell"}
// where `side` is the MAKER's side ("sell": a resting sell was lifted, so the taker bought),
// and `last_match`, the first message after subscribing, repeats the latest trade before it.
// Several products share one connection, each with its own book. level2 has no sequence
// numbers, so continuity rests on the channel's delivery guarantee; matches may be dropped by
// the venue (its docs say so), so trade ids can skip.
// Reference: https://docs.cdp.coinbase.com/exchange/websocket-feed/channels
import type { Aggressor, BookSnapshot, EpochMs, MarketMessage, Rejected, RejectReason, Trade } from '../domain/types.js';
import { rejected } from '../domain/types.js';
import { snapshotOrRejected } from '../domain/book-check.js';
import { L2Book } from '../book/l2-book.js';
import { BookRegistry, type BookEntry } from './book-registry.js';
import { FrameError, isRecord, parseJsonFrame, QUOTED, shown } from './frame.js';
import type { FrameMapper, LiveProtocol, MapperOptions, Venue } from './types.js';

// ---- raw venue messages (never leave this file) ---------------------------------------------

type RawLevel = readonly [price: string, size: string];
type RawChange = readonly [side: 'buy' | 'sell', price: string, size: string];

interface RawMessage {
  readonly type: string;
  readonly product_id?: unknown;
  readonly time?: unknown;
  readonly bids?: unknown;
  readonly asks?: unknown;
  readonly changes?: unknown;
  readonly message?: unknown;
  readonly reason?: unknown;
  // match / last_match
  readonly trade_id?: unknown;
  readonly price?: unknown;
  readonly size?: unknown;
  readonly side?: unknown;
}

const DEFAULT_LEVELS = 10;
const DECIMAL = /^\d+(?:\.\d+)?$/;
const ISO_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;

/**
 * An ISO-8601 UTC time with up to nanosecond digits as fractional epoch ms. The sub-ms digits
 * are joined as text and parsed once, so "…05.010758Z" gives exactly …5010.758 (to the
 * nearest double), not a sum of two rounded numbers. Null when the text is not such a time.
 */
export function isoToEpochMs(text: string): number | null {
  const match = ISO_TIME.exec(text);
  if (!match) return null;
  const [, year, month, day, hour, minute, second, fraction = '', zone] = match;
  const y = Number(year);
  const mo = Number(month);
  const d = Number(day);
  const h = Number(hour);
  const mi = Number(minute);
  const s = Number(second);
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59) return null;
  let wholeMs = Date.UTC(y, mo - 1, d, h, mi, s);
  // Date.UTC rolls 31 April over into May; a real time never needs that.
  if (new Date(wholeMs).getUTCDate() !== d) return null;
  if (zone !== 'Z') {
    const sign = zone[0] === '-' ? -1 : 1;
    const offsetHours = Number(zone.slice(1, 3));
    const offsetMinutes = Number(zone.slice(4, 6));
    if (offsetHours > 23 || offsetMinutes > 59) return null;
    wholeMs -= sign * (offsetHours * 60 + offsetMinutes) * 60_000;
  }
  const digits = fraction.padEnd(3, '0');
  wholeMs += Number(digits.slice(0, 3));
  const subMs = digits.slice(3);
  return subMs.length > 0 ? Number(`${wholeMs}.${subMs}`) : wholeMs;
}

// ---- frame validation -----------------------------------------------------------------------

function checkDecimal(value: unknown, field: string, what: string): number {
  if (typeof value !== 'string' || !DECIMAL.test(value)) {
    throw new FrameError('schema', `${field}: ${what} must be a decimal string, got ${shown(value, 40, QUOTED)}`);
  }
  const parsed = Number(value);
  // Only absurdly long digit strings overflow; the book must never hold an infinity.
  if (!Number.isFinite(parsed)) throw new FrameError('non_finite', `${field}: ${what} must be finite, got ${shown(value, 40, QUOTED)}`);
  return parsed;
}

/** A snapshot side as flat [p0, s0, ...] (any order), or a FrameError naming the field. */
function parseSnapshotSide(levels: unknown, field: string): Float64Array {
  if (!Array.isArray(levels)) throw new FrameError('schema', `${field}: must be an array of [price, size], got ${shown(levels, 40, QUOTED)}`);
  const out = new Float64Array(levels.length * 2);
  for (let i = 0; i < levels.length; i++) {
    const level: unknown = levels[i];
    if (!Array.isArray(level) || level.length < 2) {
      throw new FrameError('schema', `${field}[${i}]: must be [price, size], got ${shown(level, 60, QUOTED)}`);
    }
    const [price, size] = level as unknown as RawLevel;
    out[2 * i] = checkDecimal(price, `${field}[${i}][0]`, 'price');
    out[2 * i + 1] = checkDecimal(size, `${field}[${i}][1]`, 'size');
  }
  return out;
}

/** Checks every change of an l2update so that none is applied unless all can be. */
function checkChanges(changes: unknown): readonly RawChange[] {
  if (!Array.isArray(changes)) throw new FrameError('schema', `changes: must be an array of [side, price, size], got ${shown(changes, 40, QUOTED)}`);
  for (let i = 0; i < changes.length; i++) {
    const change: unknown = changes[i];
    if (!Array.isArray(change) || change.length < 3) {
      throw new FrameError('schema', `changes[${i}]: must be [side, price, size], got ${shown(change, 60, QUOTED)}`);
    }
    if (change[0] !== 'buy' && change[0] !== 'sell') {
      throw new FrameError('schema', `changes[${i}][0]: side must be "buy" or "sell", got ${shown(change[0], 40, QUOTED)}`);
    }
    checkDecimal(change[1], `changes[${i}][1]`, 'price');
    checkDecimal(change[2], `changes[${i}][2]`, 'size');
  }
  return changes as readonly RawChange[];
}

// ---- the mapper -----------------------------------------------------------------------------

class CoinbaseMapper implements FrameMapper {
  private readonly books = new BookRegistry<L2Book>(() => new L2Book(256));
  /** Per product, the last trade id emitted; kept across reset() so a reconnect's last_match is not counted twice. */
  private readonly lastTradeIds = new Map<string, number>();
  private readonly levels: number;

  constructor(options: MapperOptions) {
    this.levels = Number.isInteger(options.levels) && options.levels > 0 ? options.levels : DEFAULT_LEVELS;
  }

  map(frame: string, localTs: EpochMs): MarketMessage[] {
    const frameJson = parseJsonFrame(frame, 'frame', null);
    if ('type' in frameJson) return [frameJson];
    const parsed = frameJson.value;
    if (!isRecord(parsed) || typeof parsed.type !== 'string') {
      return [rejected('schema', `type: a feed message is an object with a string "type", got ${shown(parsed, 40, QUOTED)}`, frame, null)];
    }
    const message = parsed as unknown as RawMessage;
    switch (message.type) {
      case 'snapshot':
      case 'l2update':
        return this.mapBookMessage(message, frame, localTs);
      case 'match':
      case 'last_match':
        return [this.mapMatch(message, frame, localTs)];
      case 'subscriptions':
      case 'heartbeat':
        return [];
      case 'error':
        // The error names no product in a field (only, at times, inside the free-text reason),
        // and the ones seen here are subscribe failures, after which no book exists to lose.
        // Errors that end the session are followed by the socket closing, which the live
        // client reports as a disconnect for every symbol.
        return [rejected('venue_error', `error: message ${shown(message.message, 80, QUOTED)}, reason ${shown(message.reason, 120, QUOTED)}`, frame, null)];
      default:
        return [rejected('unsupported_message', `type: ${shown(message.type, 40, QUOTED)} is not handled`, frame, null)];
    }
  }

  /**
   * A trade, or a rejection naming the field. A trade id at or below the last one emitted for
   * the product is a repeat (the `last_match` after a reconnect), not a second trade.
   */
  private mapMatch(message: RawMessage, frame: string, localTs: EpochMs): Trade | Rejected {
    const product = message.product_id;
    if (typeof product !== 'string' || product.length === 0) {
      return rejected('schema', `product_id: must be a non-empty string, got ${shown(product, 40, QUOTED)}`, frame, null);
    }
    const tradeId = message.trade_id;
    if (typeof tradeId !== 'number' || !Number.isSafeInteger(tradeId) || tradeId < 0) {
      return rejected('schema', `trade_id: must be a non-negative integer, got ${shown(tradeId, 40, QUOTED)}`, frame, product);
    }
    const time = typeof message.time === 'string' ? isoToEpochMs(message.time) : null;
    if (time === null) return rejected('schema', `time: must be an ISO-8601 UTC time, got ${shown(message.time, 40, QUOTED)}`, frame, product);
    const makerSide = message.side;
    if (makerSide !== 'buy' && makerSide !== 'sell') {
      return rejected('schema', `side: the maker's side must be "buy" or "sell", got ${shown(makerSide, 40, QUOTED)}`, frame, product);
    }
    let price: number;
    let size: number;
    try {
      price = checkDecimal(message.price, 'price', 'price');
      size = checkDecimal(message.size, 'size', 'size');
    } catch (error) {
      if (!(error instanceof FrameError)) throw error;
      return rejected(error.reason, error.detail, frame, product);
    }
    if (!(price > 0)) return rejected('schema', `price: must be > 0, got ${shown(message.price, 40, QUOTED)}`, frame, product);
    if (!(size > 0)) return rejected('non_positive_size', `size: must be > 0, got ${shown(message.size, 40, QUOTED)}`, frame, product);
    const lastTradeId = this.lastTradeIds.get(product);
    if (lastTradeId !== undefined && tradeId <= lastTradeId) {
      return rejected('out_of_order', `trade_id: ${tradeId} is not after the last trade of ${product} (${lastTradeId}); a repeat`, frame, product);
    }
    this.lastTradeIds.set(product, tradeId);
    // A resting sell was lifted by a buyer (+1); a resting buy was hit by a seller (-1).
    const aggressor: Aggressor = makerSide === 'sell' ? 1 : -1;
    return { type: 'trade', symbol: product, ts: time, localTs, price, size, aggressor, tradeId: String(tradeId) };
  }

  takeResyncRequests(): string[] {
    return this.books.takeResyncRequests();
  }

  reset(): void {
    this.books.reset();
  }

  private mapBookMessage(message: RawMessage, frame: string, localTs: EpochMs): MarketMessage[] {
    const product = message.product_id;
    if (typeof product !== 'string' || product.length === 0) {
      return [rejected('schema', `product_id: must be a non-empty string, got ${shown(product, 40, QUOTED)}`, frame, null)];
    }
    let ts = localTs;
    if (message.time !== undefined) {
      const parsed = typeof message.time === 'string' ? isoToEpochMs(message.time) : null;
      if (parsed === null) {
        return this.loseBook(product, 'schema', `time: must be an ISO-8601 UTC time, got ${shown(message.time, 40, QUOTED)}`, frame, localTs);
      }
      ts = parsed;
    }
    return message.type === 'snapshot' ? this.applySnapshot(product, message, ts, frame, localTs) : this.applyUpdate(product, message, ts, frame, localTs);
  }

  private applySnapshot(product: string, message: RawMessage, ts: EpochMs, frame: string, localTs: EpochMs): MarketMessage[] {
    let bids: Float64Array;
    let asks: Float64Array;
    try {
      bids = parseSnapshotSide(message.bids, 'bids');
      asks = parseSnapshotSide(message.asks, 'asks');
    } catch (error) {
      if (!(error instanceof FrameError)) throw error;
      return this.loseBook(product, error.reason, error.detail, frame, localTs);
    }
    const entry = this.books.entry(product);
    entry.book.replaceSide('bid', bids);
    entry.book.replaceSide('ask', asks);
    this.books.synced(entry);
    return this.emit(entry, ts, localTs, frame);
  }

  private applyUpdate(product: string, message: RawMessage, ts: EpochMs, frame: string, localTs: EpochMs): MarketMessage[] {
    const entry = this.books.live(product);
    // Updates before the product's snapshot have nothing to apply to (tardis-node's habit).
    if (entry === undefined) return [];
    let changes: readonly RawChange[];
    try {
      changes = checkChanges(message.changes);
    } catch (error) {
      if (!(error instanceof FrameError)) throw error;
      return this.loseBook(product, error.reason, error.detail, frame, localTs);
    }
    for (let i = 0; i < changes.length; i++) {
      const [side, price, size] = changes[i];
      entry.book.setLevel(side === 'buy' ? 'bid' : 'ask', Number(price), Number(size));
    }
    return this.emit(entry, ts, localTs, frame);
  }

  /**
   * A product message we could not apply leaves that book behind the venue: say so, forget
   * the book and ask the live client to resubscribe (which brings a fresh snapshot).
   */
  private loseBook(product: string, reason: RejectReason, detail: string, frame: string, localTs: EpochMs): MarketMessage[] {
    return this.books.rejectAndLose(product, reason, detail, frame, localTs);
  }

  private emit(entry: BookEntry<L2Book, never>, ts: EpochMs, localTs: EpochMs, frame: string): MarketMessage[] {
    const snapshot: BookSnapshot = {
      type: 'book_snapshot',
      symbol: entry.symbol,
      ts,
      localTs,
      seq: undefined,
      bids: entry.book.topBids(this.levels),
      asks: entry.book.topAsks(this.levels),
    };
    const out: MarketMessage[] = [];
    this.books.emit(entry, snapshotOrRejected(snapshot, frame), out);
    return out;
  }
}

// ---- live protocol and venue ----------------------------------------------------------------

/** `level2_batch` needs no authentication; `level2` (same messages, unbatched) does. */
export type CoinbaseLevel2Channel = 'level2_batch' | 'level2';

function coinbaseLive(channel: CoinbaseLevel2Channel): LiveProtocol {
  const frame = (type: 'subscribe' | 'unsubscribe', symbols: readonly string[], channels: readonly string[]): string[] =>
    symbols.length ? [JSON.stringify({ type, product_ids: [...symbols], channels })] : [];
  const bookAndTrades = [channel, 'matches'];
  return {
    venue: 'coinbase',
    connectUrl: (baseUrl) => baseUrl,
    subscribeFrames: (symbols) => frame('subscribe', symbols, bookAndTrades),
    unsubscribeFrames: (symbols) => frame('unsubscribe', symbols, bookAndTrades),
    // A new level2 subscription starts with a snapshot; matches stay subscribed, so no trade is
    // missed (nor its last_match repeated) while the book comes back.
    resyncFrames: (symbols) => [...frame('unsubscribe', symbols, [channel]), ...frame('subscribe', symbols, [channel])],
    pingFrame: () => null,
    snapshotUrl: () => null,
  };
}

export function coinbaseVenue(channel: CoinbaseLevel2Channel = 'level2_batch'): Venue {
  return {
    id: 'coinbase',
    createMapper: (options) => new CoinbaseMapper(options),
    live: coinbaseLive(channel),
  };
}

export const coinbase: Venue = coinbaseVenue();
