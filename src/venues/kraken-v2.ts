// Kraken WebSocket API v2, public `book` and `trade` channels (wss://ws.kraken.com/v2); v1 stays
// in kraken.ts. References: https://docs.kraken.com/api/docs/websocket-v2/book,
// https://docs.kraken.com/api/docs/websocket-v2/trade and the v2 book checksum guide,
// https://docs.kraken.com/api/docs/guides/spot-ws-book-v2.
//
//   book   {"channel":"book","type":"snapshot"|"update","data":[{"symbol":"BTC/USD",
//           "bids":[{"price":45283.5,"qty":0.10000000}],"asks":[...],"checksum":3310070434,
//           "timestamp":"2023-10-06T17:35:55.440295Z"}]}
//   trade  {"channel":"trade","type":"update"|"snapshot","data":[{"symbol","side":"buy"|"sell",
//           "price","qty","ord_type","trade_id","timestamp"}]}; `side` is the taker's.
//
// The guide's rules: apply every level of a message before checking; qty 0 removes the level;
// truncate each side to the subscribed depth afterwards (no delete comes for a level pushed out);
// the checksum is CRC32 of, for the ten best asks (low to high) then the ten best bids (high to
// low), price then qty with the '.' and then the leading zeros removed, unsigned. v2 sends price
// and qty as JSON numbers "with full precision", and JSON.parse would turn 0.10000000 into 0.1,
// so the lexemes are read from the frame text beside the parsed values (and must agree with them).
// A failed checksum drops the book and resubscribes its channel; the trades keep flowing.
import type { BookSide } from '../book/l2-book.js';
import type { Aggressor, EpochMs, MarketMessage, Rejected, Trade } from '../domain/types.js';
import { rejected } from '../domain/types.js';
import { BookRegistry } from './book-registry.js';
import { DECIMAL_TEXT, DepthBook, isoTimeMs, levelsOption } from './depth-book.js';
import { FrameError, isFrameError, isRecord, parseJsonFrame, shown } from './frame.js';
import { krakenBookChecksum } from './kraken.js';
import type { FrameMapper, LiveProtocol, MapperOptions, Venue } from './types.js';

const CHECKSUM_LEVELS = 10;
const VALID_DEPTHS = [10, 25, 100, 500, 1000] as const;
export type KrakenV2Depth = (typeof VALID_DEPTHS)[number];

/** The price and qty lexemes of one `bids` or `asks` array, in frame order. */
interface SideLexemes {
  readonly prices: string[];
  readonly qtys: string[];
}

const LEVEL_FIELD = /"(price|qty)"\s*:\s*([^,}\s]+)/g;

/**
 * Finds the next `"<key>":[` at or after `from` and reads the `price`/`qty` lexemes of its objects
 * up to the closing `]` (level objects hold no arrays). Returns the lexemes and where it stopped.
 */
function sideLexemesAt(frame: string, key: 'bids' | 'asks', from: number): { lexemes: SideLexemes; end: number } | null {
  const keyAt = frame.indexOf(`"${key}"`, from);
  if (keyAt < 0) return null;
  const open = frame.indexOf('[', keyAt);
  const close = open < 0 ? -1 : frame.indexOf(']', open);
  if (close < 0) return null;
  const prices: string[] = [];
  const qtys: string[] = [];
  const body = frame.slice(open + 1, close);
  for (const match of body.matchAll(LEVEL_FIELD)) (match[1] === 'price' ? prices : qtys).push(match[2]);
  return { lexemes: { prices, qtys }, end: close + 1 };
}

/** A v2 level's number with the lexeme it was sent as; a FrameError naming the field otherwise. */
function levelValue(raw: unknown, lexeme: string | undefined, field: string, zeroAllowed: boolean): number | FrameError {
  if (typeof raw !== 'number') return new FrameError('schema', `${field}: expected a number, got ${shown(raw)}`);
  if (!Number.isFinite(raw)) return new FrameError('non_finite', `${field}: must be finite, got ${shown(raw)}`);
  if (raw < 0 || (raw === 0 && !zeroAllowed)) return new FrameError('non_positive_size', `${field}: must be ${zeroAllowed ? '>= 0' : '> 0'}, got ${raw}`);
  // The checksum needs the sent digits: a lexeme that is not a plain decimal, or that is not
  // this value, means the frame could not be read exactly.
  if (lexeme === undefined || !DECIMAL_TEXT.test(lexeme) || Number(lexeme) !== raw) {
    return new FrameError('schema', `${field}: could not read the exact decimal sent (got ${shown(lexeme)}); the checksum needs it`);
  }
  return raw;
}

interface ParsedLevels {
  readonly values: Float64Array;
  readonly texts: SideLexemes;
}

function parseSide(entries: unknown, lexemes: SideLexemes, field: string, zeroAllowed: boolean): ParsedLevels | FrameError {
  if (!Array.isArray(entries)) return new FrameError('schema', `${field}: expected an array of {price, qty}, got ${shown(entries)}`);
  if (lexemes.prices.length !== entries.length || lexemes.qtys.length !== entries.length) {
    return new FrameError('schema', `${field}: every level needs exactly one price and one qty`);
  }
  const values = new Float64Array(2 * entries.length);
  for (let i = 0; i < entries.length; i += 1) {
    const entry: unknown = entries[i];
    if (!isRecord(entry)) return new FrameError('schema', `${field}[${i}]: expected {price, qty}, got ${shown(entry)}`);
    const price = levelValue(entry.price, lexemes.prices[i], `${field}[${i}].price`, false);
    if (isFrameError(price)) return price;
    const qty = levelValue(entry.qty, lexemes.qtys[i], `${field}[${i}].qty`, zeroAllowed);
    if (isFrameError(qty)) return qty;
    values[2 * i] = price;
    values[2 * i + 1] = qty;
  }
  return { values, texts: lexemes };
}

function takerSide(side: unknown): Aggressor | null {
  return side === 'buy' ? 1 : side === 'sell' ? -1 : null;
}

class KrakenV2Mapper implements FrameMapper {
  private readonly books: BookRegistry<DepthBook>;
  private readonly levels: number;
  private readonly askPrices: string[] = [];
  private readonly askQtys: string[] = [];
  private readonly bidPrices: string[] = [];
  private readonly bidQtys: string[] = [];

  constructor(
    options: MapperOptions,
    private readonly depth: number,
  ) {
    this.levels = levelsOption(options.levels);
    this.books = new BookRegistry(() => new DepthBook(true, 2 * depth));
  }

  map(frame: string, localTs: EpochMs): MarketMessage[] {
    const parsed = parseJsonFrame(frame, 'frame', null);
    if ('type' in parsed) return [parsed];
    const message = parsed.value;
    if (!isRecord(message)) return [rejected('schema', `frame: expected a JSON object, got ${shown(message)}`, frame, null)];
    if (typeof message.method === 'string') return this.mapResponse(message, frame);
    switch (message.channel) {
      case 'book':
        return this.mapBook(message, frame, localTs);
      case 'trade':
        return this.mapTrades(message, frame, localTs);
      case 'heartbeat':
      case 'status':
        return [];
      default:
        return [rejected('unsupported_message', `channel: ${shown(message.channel)} is not handled`, frame, null)];
    }
  }

  takeResyncRequests(): string[] {
    return this.books.takeResyncRequests();
  }

  reset(): void {
    this.books.reset();
  }

  /** Acks of subscribe/unsubscribe/ping: only a failure says something. */
  private mapResponse(message: Record<string, unknown>, frame: string): MarketMessage[] {
    if (message.success === false) {
      // Kraken names the symbol at the top of a failed response, inside `result` of a good one.
      const named = typeof message.symbol === 'string' ? message.symbol : isRecord(message.result) ? message.result.symbol : undefined;
      const symbol = typeof named === 'string' ? named : null;
      return [rejected('venue_error', `error: ${message.method} failed: ${shown(message.error, 120)}`, frame, symbol)];
    }
    // The resync path unsubscribes the book first: nothing more comes for the old book.
    if (message.method === 'unsubscribe' && isRecord(message.result) && message.result.channel === 'book' && typeof message.result.symbol === 'string') {
      this.books.forget(message.result.symbol);
    }
    return [];
  }

  private mapBook(message: Record<string, unknown>, frame: string, localTs: EpochMs): MarketMessage[] {
    const kind = message.type;
    if (kind !== 'snapshot' && kind !== 'update') {
      return [rejected('schema', `type: expected "snapshot" or "update", got ${shown(kind)}`, frame, null)];
    }
    if (!Array.isArray(message.data)) return [rejected('schema', `data: expected an array, got ${shown(message.data)}`, frame, null)];
    const out: MarketMessage[] = [];
    let cursor = frame.indexOf('"data"');
    for (let i = 0; i < message.data.length; i += 1) {
      const entry: unknown = message.data[i];
      if (!isRecord(entry)) {
        out.push(rejected('schema', `data[${i}]: expected an object, got ${shown(entry)}`, frame, null));
        return out;
      }
      // Keys come out of JSON.parse in frame order, so the bids/asks arrays are met in that order.
      const lexemes: Partial<Record<'bids' | 'asks', SideLexemes>> = {};
      for (const key of Object.keys(entry)) {
        if (key !== 'bids' && key !== 'asks') continue;
        const found = sideLexemesAt(frame, key, cursor);
        if (found === null) break;
        lexemes[key] = found.lexemes;
        cursor = found.end;
      }
      this.applyBook(kind, entry, lexemes, `data[${i}]`, frame, localTs, out);
    }
    return out;
  }

  private applyBook(
    kind: 'snapshot' | 'update',
    entry: Record<string, unknown>,
    lexemes: Partial<Record<'bids' | 'asks', SideLexemes>>,
    at: string,
    frame: string,
    localTs: EpochMs,
    out: MarketMessage[],
  ): void {
    const symbol = entry.symbol;
    if (typeof symbol !== 'string' || symbol.length === 0) {
      out.push(rejected('schema', `${at}.symbol: expected a symbol, got ${shown(symbol)}`, frame, null));
      return;
    }
    const checksum = entry.checksum;
    if (typeof checksum !== 'number' || !Number.isInteger(checksum) || checksum < 0 || checksum > 0xffffffff) {
      out.push(...this.loseBook(symbol, `${at}.checksum: expected an unsigned 32-bit integer, got ${shown(checksum)}`, 'schema', frame, localTs));
      return;
    }
    let ts = localTs as number;
    if (entry.timestamp !== undefined) {
      const parsedTs = isoTimeMs(entry.timestamp, `${at}.timestamp`);
      if (isFrameError(parsedTs)) {
        out.push(rejected(parsedTs.reason, parsedTs.detail, frame, symbol));
        return;
      }
      ts = parsedTs;
    }
    const zeroAllowed = kind === 'update';
    const sides: Partial<Record<BookSide, ParsedLevels>> = {};
    for (const [key, side] of [
      ['bids', 'bid'],
      ['asks', 'ask'],
    ] as const) {
      if (entry[key] === undefined && kind === 'update') continue;
      const parsed = parseSide(entry[key], lexemes[key] ?? { prices: [], qtys: [] }, `${at}.${key}`, zeroAllowed);
      if (isFrameError(parsed)) {
        out.push(...this.loseBook(symbol, parsed.detail, parsed.reason, frame, localTs));
        return;
      }
      sides[side] = parsed;
    }
    let held = this.books.live(symbol);
    if (kind === 'snapshot') {
      held = this.books.entry(symbol);
      held.book.reset();
      this.books.synced(held);
    } else if (held === undefined) {
      // An update before the snapshot (or after a dropped book, until the resubscription's
      // snapshot) has nothing to apply to.
      return;
    }
    const book = held.book;
    for (const side of ['bid', 'ask'] as const) {
      const parsed = sides[side];
      if (parsed === undefined) continue;
      for (let k = 0; k < parsed.texts.prices.length; k += 1) {
        book.set(side, parsed.values[2 * k], parsed.values[2 * k + 1], parsed.texts.prices[k], parsed.texts.qtys[k]);
      }
    }
    book.truncate(this.depth);
    book.topTexts('ask', CHECKSUM_LEVELS, this.askPrices, this.askQtys);
    book.topTexts('bid', CHECKSUM_LEVELS, this.bidPrices, this.bidQtys);
    const computed = krakenBookChecksum(this.askPrices, this.askQtys, this.bidPrices, this.bidQtys);
    if (computed !== checksum) {
      out.push(...this.loseBook(symbol, `${at}.checksum: venue checksum ${checksum}, local book gives ${computed}`, 'checksum_mismatch', frame, localTs));
      return;
    }
    this.books.emit(held, book.emit(symbol, ts, localTs, undefined, this.levels, frame), out);
  }

  /**
   * A bad book message: the book can no longer be trusted. Drops it, asks for a fresh one, and
   * marks the gap when a book of it was already out.
   */
  private loseBook(symbol: string, detail: string, reason: Rejected['reason'], frame: string, localTs: EpochMs): MarketMessage[] {
    return this.books.rejectAndLose(symbol, reason, detail, frame, localTs);
  }

  private mapTrades(message: Record<string, unknown>, frame: string, localTs: EpochMs): MarketMessage[] {
    // The snapshot of recent trades sent on subscription is history from before this book.
    if (message.type === 'snapshot') return [];
    if (message.type !== 'update') return [rejected('schema', `type: expected "update" or "snapshot", got ${shown(message.type)}`, frame, null)];
    if (!Array.isArray(message.data)) return [rejected('schema', `data: expected an array, got ${shown(message.data)}`, frame, null)];
    const out: MarketMessage[] = [];
    for (let i = 0; i < message.data.length; i += 1) out.push(this.mapTrade(message.data[i], `data[${i}]`, frame, localTs));
    return out;
  }

  private mapTrade(entry: unknown, at: string, frame: string, localTs: EpochMs): Trade | Rejected {
    if (!isRecord(entry)) return rejected('schema', `${at}: expected a trade object, got ${shown(entry)}`, frame, null);
    const symbol = entry.symbol;
    if (typeof symbol !== 'string' || symbol.length === 0) return rejected('schema', `${at}.symbol: expected a symbol, got ${shown(symbol)}`, frame, null);
    const aggressor = takerSide(entry.side);
    if (aggressor === null) return rejected('schema', `${at}.side: expected "buy" or "sell" (the taker's), got ${shown(entry.side)}`, frame, symbol);
    const price = entry.price;
    if (typeof price !== 'number' || !Number.isFinite(price) || !(price > 0)) {
      return rejected('schema', `${at}.price: expected a number > 0, got ${shown(price)}`, frame, symbol);
    }
    const qty = entry.qty;
    if (typeof qty !== 'number' || !Number.isFinite(qty) || !(qty > 0)) {
      return rejected('non_positive_size', `${at}.qty: expected a number > 0, got ${shown(qty)}`, frame, symbol);
    }
    const tradeId = entry.trade_id;
    if (typeof tradeId !== 'number' || !Number.isSafeInteger(tradeId) || tradeId < 0) {
      return rejected('schema', `${at}.trade_id: expected a non-negative integer, got ${shown(tradeId)}`, frame, symbol);
    }
    const ts = isoTimeMs(entry.timestamp, `${at}.timestamp`);
    if (isFrameError(ts)) return rejected(ts.reason, ts.detail, frame, symbol);
    return { type: 'trade', symbol, ts, localTs, price, size: qty, aggressor, tradeId: String(tradeId) };
  }
}

function krakenV2Live(depth: KrakenV2Depth): LiveProtocol {
  const book = (symbols: readonly string[], method: 'subscribe' | 'unsubscribe') =>
    JSON.stringify({
      method,
      params: method === 'subscribe' ? { channel: 'book', symbol: [...symbols], depth, snapshot: true } : { channel: 'book', symbol: [...symbols], depth },
    });
  const trade = (symbols: readonly string[], method: 'subscribe' | 'unsubscribe') =>
    JSON.stringify({ method, params: method === 'subscribe' ? { channel: 'trade', symbol: [...symbols], snapshot: false } : { channel: 'trade', symbol: [...symbols] } });
  return {
    venue: 'kraken-v2',
    connectUrl: (baseUrl) => baseUrl,
    subscribeFrames: (symbols) => (symbols.length ? [book(symbols, 'subscribe'), trade(symbols, 'subscribe')] : []),
    unsubscribeFrames: (symbols) => (symbols.length ? [book(symbols, 'unsubscribe'), trade(symbols, 'unsubscribe')] : []),
    // A new book subscription starts with a snapshot; the trade subscription is left alone.
    resyncFrames: (symbols) => (symbols.length ? [book(symbols, 'unsubscribe'), book(symbols, 'subscribe')] : []),
    pingFrame: () => JSON.stringify({ method: 'ping' }),
    snapshotUrl: () => null,
  };
}

/**
 * Kraken v2 `book` at a subscription depth of 10, 25, 100, 500 or 1000 levels per side, and
 * `trade`. The live client connects to the URL as configured (wss://ws.kraken.com/v2). v2 book
 * messages do not repeat the depth, so the mapper truncates to the one given here.
 */
export function krakenV2Venue(depth: KrakenV2Depth = 10): Venue {
  if (!VALID_DEPTHS.includes(depth)) throw new RangeError(`kraken-v2 depth must be one of ${VALID_DEPTHS.join(', ')}, got ${depth}`);
  return {
    id: 'kraken-v2',
    createMapper: (options) => new KrakenV2Mapper(options, depth),
    live: krakenV2Live(depth),
  };
}

export const krakenV2: Venue = krakenV2Venue();
