// Bybit v5 public WebSocket: `orderbook.<depth>.<symbol>` and `publicTrade.<symbol>`
// (wss://stream.bybit.com/v5/public/{spot,linear,inverse}). References:
// https://bybit-exchange.github.io/docs/v5/websocket/public/orderbook,
// https://bybit-exchange.github.io/docs/v5/websocket/public/trade,
// https://bybit-exchange.github.io/docs/v5/ws/connect (subscribe, ping every 20 s).
//
//   book   {"topic":"orderbook.50.BTCUSDT","type":"snapshot"|"delta","ts":...,"cts":...,
//           "data":{"s":"BTCUSDT","b":[["71423.80","0.557"],...],"a":[...],"u":10132540,"seq":...}}
//   trade  {"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":...,"data":[{"T","s","S":"Buy"|"Sell",
//           "v","p","i","BT","seq"},...]}; `S` is the taker's side, `i` the trade id.
//
// The documented rules: a snapshot resets the book; a delta's size is absolute, 0 deletes the
// level, an unknown price inserts it; "u is always in sequence" and "occasionally you'll receive
// u=1, which is a snapshot due to the restart of the service: overwrite the local book". So a
// message with u = 1 is a snapshot whatever its `type`, and a delta whose u is not the book's u + 1
// means a message was lost: the book is dropped and the topic resubscribed (a new subscription
// starts with a snapshot). `cts`, the matching engine's time that `publicTrade` T correlates
// with, is the book's venue time where sent, else `ts`.
import type { Aggressor, EpochMs, MarketMessage, Rejected, RejectReason, Trade } from '../domain/types.js';
import { rejected } from '../domain/types.js';
import { BookRegistry } from './book-registry.js';
import { decimalText, DepthBook, levelsOption, sequenceNumber, TextLevels } from './depth-book.js';
import { isFrameError, isRecord, parseJsonFrame, shown } from './frame.js';
import type { FrameMapper, LiveProtocol, MapperOptions, Venue } from './types.js';

const BOOK_TOPIC = /^orderbook\.(1|25|50|100|200|500|1000)\.(.+)$/;
const TRADE_TOPIC = /^publicTrade\.(.+)$/;
/** Bybit spot takes at most 10 topics per subscribe request. */
const TOPICS_PER_REQUEST = 10;

interface SymbolBook {
  readonly depthBook: DepthBook;
  updateId: number;
}

function takerSide(side: unknown): Aggressor | null {
  return side === 'Buy' ? 1 : side === 'Sell' ? -1 : null;
}

class BybitMapper implements FrameMapper {
  // Levels past the topic's depth are truncated; the book grows to what a snapshot holds.
  private readonly books = new BookRegistry<SymbolBook>(() => ({ depthBook: new DepthBook(false, 128), updateId: 0 }));
  private readonly levels: number;
  private readonly bids = new TextLevels();
  private readonly asks = new TextLevels();

  constructor(options: MapperOptions) {
    this.levels = levelsOption(options.levels);
  }

  map(frame: string, localTs: EpochMs): MarketMessage[] {
    const parsed = parseJsonFrame(frame, 'frame', null);
    if ('type' in parsed) return [parsed];
    const message = parsed.value;
    if (!isRecord(message)) return [rejected('schema', `frame: expected a JSON object, got ${shown(message)}`, frame, null)];
    if (typeof message.op === 'string' || 'success' in message) {
      if (message.success === false) return [rejected('venue_error', `ret_msg: ${message.op ?? 'request'} failed: ${shown(message.ret_msg, 120)}`, frame, null)];
      return []; // subscribe acks and pongs
    }
    const topic = message.topic;
    if (typeof topic !== 'string') return [rejected('schema', `topic: expected a topic name, got ${shown(topic)}`, frame, null)];
    const book = BOOK_TOPIC.exec(topic);
    if (book) return this.mapBook(message, Number(book[1]), book[2], frame, localTs);
    const trade = TRADE_TOPIC.exec(topic);
    if (trade) return this.mapTrades(message, trade[1], frame, localTs);
    return [rejected('unsupported_message', `topic: ${shown(topic)} is not handled`, frame, null)];
  }

  takeResyncRequests(): string[] {
    return this.books.takeResyncRequests();
  }

  reset(): void {
    this.books.reset();
  }

  private mapBook(message: Record<string, unknown>, depth: number, topicSymbol: string, frame: string, localTs: EpochMs): MarketMessage[] {
    const kind = message.type;
    if (kind !== 'snapshot' && kind !== 'delta') return [rejected('schema', `type: expected "snapshot" or "delta", got ${shown(kind)}`, frame, topicSymbol)];
    const data = message.data;
    if (!isRecord(data)) return [rejected('schema', `data: expected an object, got ${shown(data)}`, frame, topicSymbol)];
    const symbol = data.s === undefined ? topicSymbol : data.s;
    if (typeof symbol !== 'string' || symbol !== topicSymbol) {
      return [rejected('schema', `data.s: expected "${topicSymbol}" as the topic names, got ${shown(data.s)}`, frame, topicSymbol)];
    }
    const updateId = sequenceNumber(data.u, 'data.u');
    if (isFrameError(updateId)) return this.loseBook(symbol, updateId.reason, updateId.detail, frame, localTs);
    const venueTime = message.cts ?? message.ts;
    if (typeof venueTime !== 'number' || !Number.isFinite(venueTime)) {
      return [rejected('schema', `${message.cts === undefined ? 'ts' : 'cts'}: expected a time in ms, got ${shown(venueTime)}`, frame, symbol)];
    }
    const isSnapshot = kind === 'snapshot' || updateId === 1;
    const zero = isSnapshot ? 'positive' : 'zero_deletes';
    const problem = this.bids.read(data.b, 'data.b', zero) ?? this.asks.read(data.a, 'data.a', zero);
    if (problem) return this.loseBook(symbol, problem.reason, problem.detail, frame, localTs);

    let entry = this.books.live(symbol);
    if (isSnapshot) {
      entry = this.books.entry(symbol);
      entry.book.depthBook.reset();
      this.books.synced(entry);
    } else {
      // No book (before the first snapshot, or dropped until the resubscription's snapshot).
      if (entry === undefined) return [];
      const held = entry.book;
      if (updateId !== held.updateId + 1) {
        return this.loseBook(symbol, 'sequence_gap', `data.u: expected ${held.updateId + 1} after ${held.updateId}, got ${updateId}`, frame, localTs);
      }
    }
    const book = entry.book.depthBook;
    this.bids.applyTo(book, 'bid');
    this.asks.applyTo(book, 'ask');
    // Levels pushed past the subscribed depth are not always deleted by the venue.
    book.truncate(depth);
    entry.book.updateId = updateId;
    const out: MarketMessage[] = [];
    this.books.emit(entry, book.emit(symbol, venueTime, localTs, updateId, this.levels, frame), out);
    return out;
  }

  /** The book can no longer be trusted: drop it, resubscribe, and mark the gap if a book was out. */
  private loseBook(symbol: string, reason: RejectReason, detail: string, frame: string, localTs: EpochMs): MarketMessage[] {
    return this.books.rejectAndLose(symbol, reason, detail, frame, localTs);
  }

  private mapTrades(message: Record<string, unknown>, topicSymbol: string, frame: string, localTs: EpochMs): MarketMessage[] {
    if (!Array.isArray(message.data)) return [rejected('schema', `data: expected an array of trades, got ${shown(message.data)}`, frame, topicSymbol)];
    const out: MarketMessage[] = [];
    for (let i = 0; i < message.data.length; i += 1) out.push(this.mapTrade(message.data[i], `data[${i}]`, topicSymbol, frame, localTs));
    return out;
  }

  private mapTrade(entry: unknown, at: string, topicSymbol: string, frame: string, localTs: EpochMs): Trade | Rejected {
    if (!isRecord(entry)) return rejected('schema', `${at}: expected a trade object, got ${shown(entry)}`, frame, topicSymbol);
    const symbol = entry.s ?? topicSymbol;
    if (symbol !== topicSymbol) return rejected('schema', `${at}.s: expected "${topicSymbol}" as the topic names, got ${shown(entry.s)}`, frame, topicSymbol);
    const aggressor = takerSide(entry.S);
    if (aggressor === null) return rejected('schema', `${at}.S: expected "Buy" or "Sell" (the taker's), got ${shown(entry.S)}`, frame, topicSymbol);
    const price = decimalText(entry.p, `${at}.p`, 'positive');
    if (isFrameError(price)) return rejected(price.reason === 'non_positive_size' ? 'schema' : price.reason, price.detail, frame, topicSymbol);
    const size = decimalText(entry.v, `${at}.v`, 'positive');
    if (isFrameError(size)) return rejected(size.reason, size.detail, frame, topicSymbol);
    const tradeTime = entry.T;
    if (typeof tradeTime !== 'number' || !Number.isFinite(tradeTime))
      return rejected('schema', `${at}.T: expected a trade time in ms, got ${shown(tradeTime)}`, frame, topicSymbol);
    const tradeId = entry.i;
    if (typeof tradeId !== 'string' || tradeId.length === 0) return rejected('schema', `${at}.i: expected a trade id, got ${shown(tradeId)}`, frame, topicSymbol);
    return { type: 'trade', symbol: topicSymbol, ts: tradeTime, localTs, price, size, aggressor, tradeId };
  }
}

export type BybitDepth = 1 | 50 | 200 | 500 | 1000;

function bybitLive(depth: BybitDepth): LiveProtocol {
  const requests = (op: 'subscribe' | 'unsubscribe', topics: readonly string[]): string[] => {
    const frames: string[] = [];
    for (let i = 0; i < topics.length; i += TOPICS_PER_REQUEST) frames.push(JSON.stringify({ op, args: topics.slice(i, i + TOPICS_PER_REQUEST) }));
    return frames;
  };
  const bookTopics = (symbols: readonly string[]) => symbols.map((symbol) => `orderbook.${depth}.${symbol}`);
  const allTopics = (symbols: readonly string[]) => symbols.flatMap((symbol) => [`orderbook.${depth}.${symbol}`, `publicTrade.${symbol}`]);
  return {
    venue: 'bybit',
    connectUrl: (baseUrl) => baseUrl,
    subscribeFrames: (symbols) => requests('subscribe', allTopics(symbols)),
    unsubscribeFrames: (symbols) => requests('unsubscribe', allTopics(symbols)),
    // A new book subscription starts with a snapshot; publicTrade stays subscribed.
    resyncFrames: (symbols) => [...requests('unsubscribe', bookTopics(symbols)), ...requests('subscribe', bookTopics(symbols))],
    pingFrame: () => JSON.stringify({ op: 'ping' }),
    snapshotUrl: () => null,
  };
}

/**
 * Bybit v5 public `orderbook.<depth>.<symbol>` (default 50) and `publicTrade.<symbol>`. The URL
 * names the category (wss://stream.bybit.com/v5/public/linear, .../spot); the mapper reads the
 * depth of each book from its topic, so replay needs no option.
 */
export function bybitVenue(depth: BybitDepth = 50): Venue {
  if (![1, 50, 200, 500, 1000].includes(depth)) throw new RangeError(`bybit depth must be one of 1, 50, 200, 500, 1000, got ${depth}`);
  return {
    id: 'bybit',
    createMapper: (options) => new BybitMapper(options),
    live: bybitLive(depth),
  };
}

export const bybit: Venue = bybitVenue();
