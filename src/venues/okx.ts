// OKX v5 public WebSocket: `books` (400 levels, snapshot then incremental) and `trades`
// (wss://ws.okx.com:8443/ws/v5/public). References: https://www.okx.com/docs-v5/en/#order-book-trading-market-data-ws-order-book-channel,
// https://www.okx.com/docs-v5/en/#order-book-trading-market-data-ws-trades-channel and the
// "Checksum" and "Sequence ID" sections there.
//
//   book   {"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot"|"update",
//           "data":[{"asks":[["8476.98","415","0","13"],...],"bids":[...],"ts":"1597026383085",
//           "checksum":-855196043,"prevSeqId":-1,"seqId":123456}]}
//           level = [price, size, deprecated, order count]; size 0 deletes the level.
//   trade  {"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId","tradeId","px","sz",
//           "side":"buy"|"sell","ts","count"}]}; `side` is the taker's.
//
// Continuity: an update's prevSeqId must equal the seqId of the message before it (a snapshot's
// prevSeqId is -1; an update with no change repeats the seqId as its prevSeqId), else a message
// was lost and the book is resubscribed. Checksum: over the best 25 bids and asks, alternately
// "bid price:bid size:ask price:ask size:..." (where one side runs out, the other continues),
// with the strings as sent; CRC32 as a signed 32-bit integer. OKX deprecated the checksum on
// 23 June 2026: it is sent as 0 since, and is checked only where it is not 0 (older recordings).
// seqId is absent from older recordings; then only the checksum guards the book.
// Keepalive is the text frame `ping`, answered by the text frame `pong`.
import { crc32 } from 'node:zlib';
import type { Aggressor, EpochMs, MarketMessage, Rejected, RejectReason, Trade } from '../domain/types.js';
import { rejected } from '../domain/types.js';
import { BookRegistry } from './book-registry.js';
import { decimalText, DepthBook, levelsOption, TextLevels } from './depth-book.js';
import { FrameError, isFrameError, isRecord, parseJsonFrame, shown } from './frame.js';
import type { FrameMapper, LiveProtocol, MapperOptions, Venue } from './types.js';

const CHECKSUM_LEVELS = 25;
/** Book channels and the depth each keeps (levels pushed past it get no delete). */
const BOOK_DEPTHS: Readonly<Record<string, number>> = { books: 400, 'books-l2-tbt': 400, 'books50-l2-tbt': 50 };

/** OKX's checksum of the best 25 levels per side, from the venue's strings; signed 32-bit. */
export function okxBookChecksum(bidPrices: readonly string[], bidSizes: readonly string[], askPrices: readonly string[], askSizes: readonly string[]): number {
  let text = '';
  for (let i = 0; i < CHECKSUM_LEVELS; i += 1) {
    if (i < bidPrices.length) text += `${text.length ? ':' : ''}${bidPrices[i]}:${bidSizes[i]}`;
    if (i < askPrices.length) text += `${text.length ? ':' : ''}${askPrices[i]}:${askSizes[i]}`;
  }
  return crc32(text) | 0;
}

/** A millisecond time sent as a decimal string (`ts`). */
function msText(raw: unknown, field: string): number | FrameError {
  if (typeof raw !== 'string' || !/^\d{1,16}$/.test(raw)) return new FrameError('schema', `${field}: expected a time in ms as a string, got ${shown(raw)}`);
  return Number(raw);
}

function takerSide(side: unknown): Aggressor | null {
  return side === 'buy' ? 1 : side === 'sell' ? -1 : null;
}

interface SymbolBook {
  readonly depthBook: DepthBook;
  /** seqId of the last applied message; null where the stream sends none. */
  seqId: number | null;
}

class OkxMapper implements FrameMapper {
  // The book grows to what a snapshot holds (400 levels a side on `books`).
  private readonly books = new BookRegistry<SymbolBook>(() => ({ depthBook: new DepthBook(true, 800), seqId: null }));
  private readonly levels: number;
  private readonly bids = new TextLevels();
  private readonly asks = new TextLevels();
  private readonly bidPrices: string[] = [];
  private readonly bidSizes: string[] = [];
  private readonly askPrices: string[] = [];
  private readonly askSizes: string[] = [];

  constructor(options: MapperOptions) {
    this.levels = levelsOption(options.levels);
  }

  map(frame: string, localTs: EpochMs): MarketMessage[] {
    if (frame === 'pong') return [];
    const parsed = parseJsonFrame(frame, 'frame', null);
    if ('type' in parsed) return [parsed];
    const message = parsed.value;
    if (!isRecord(message)) return [rejected('schema', `frame: expected a JSON object, got ${shown(message)}`, frame, null)];
    if (typeof message.event === 'string') {
      if (message.event === 'error') return [rejected('venue_error', `msg: venue error ${shown(message.code)}: ${shown(message.msg, 120)}`, frame, null)];
      return []; // subscribe/unsubscribe acks, notices
    }
    const arg = message.arg;
    if (!isRecord(arg) || typeof arg.channel !== 'string' || typeof arg.instId !== 'string' || arg.instId.length === 0) {
      return [rejected('schema', `arg: expected {channel, instId}, got ${shown(arg)}`, frame, null)];
    }
    const depth = BOOK_DEPTHS[arg.channel];
    if (depth !== undefined) return this.mapBook(message, arg.instId, depth, frame, localTs);
    if (arg.channel === 'trades') return this.mapTrades(message, arg.instId, frame, localTs);
    return [rejected('unsupported_message', `arg.channel: ${shown(arg.channel)} is not handled`, frame, arg.instId)];
  }

  takeResyncRequests(): string[] {
    return this.books.takeResyncRequests();
  }

  reset(): void {
    this.books.reset();
  }

  private mapBook(message: Record<string, unknown>, symbol: string, depth: number, frame: string, localTs: EpochMs): MarketMessage[] {
    const action = message.action;
    if (action !== 'snapshot' && action !== 'update') return [rejected('schema', `action: expected "snapshot" or "update", got ${shown(action)}`, frame, symbol)];
    if (!Array.isArray(message.data) || message.data.length !== 1 || !isRecord(message.data[0])) {
      return [rejected('schema', `data: expected one book object, got ${shown(message.data)}`, frame, symbol)];
    }
    const data = message.data[0];
    const ts = msText(data.ts, 'data[0].ts');
    if (isFrameError(ts)) return [rejected(ts.reason, ts.detail, frame, symbol)];
    const checksum = data.checksum;
    if (checksum !== undefined && (typeof checksum !== 'number' || !Number.isInteger(checksum) || checksum < -0x80000000 || checksum > 0x7fffffff)) {
      return this.loseBook(symbol, 'schema', `data[0].checksum: expected a signed 32-bit integer, got ${shown(checksum)}`, frame, localTs);
    }
    let seqId: number | null = null;
    let prevSeqId: number | null = null;
    if (data.seqId !== undefined || data.prevSeqId !== undefined) {
      if (typeof data.seqId !== 'number' || !Number.isSafeInteger(data.seqId) || data.seqId < 0) {
        return this.loseBook(symbol, 'schema', `data[0].seqId: expected a non-negative integer, got ${shown(data.seqId)}`, frame, localTs);
      }
      if (typeof data.prevSeqId !== 'number' || !Number.isSafeInteger(data.prevSeqId) || data.prevSeqId < -1) {
        return this.loseBook(symbol, 'schema', `data[0].prevSeqId: expected an integer >= -1, got ${shown(data.prevSeqId)}`, frame, localTs);
      }
      seqId = data.seqId;
      prevSeqId = data.prevSeqId;
    }
    const zero = action === 'snapshot' ? 'positive' : 'zero_deletes';
    const problem = this.bids.read(data.bids, 'data[0].bids', zero) ?? this.asks.read(data.asks, 'data[0].asks', zero);
    if (problem) return this.loseBook(symbol, problem.reason, problem.detail, frame, localTs);

    let entry = this.books.live(symbol);
    if (action === 'snapshot') {
      entry = this.books.entry(symbol);
      entry.book.depthBook.reset();
      this.books.synced(entry);
    } else {
      if (entry === undefined) return []; // before the snapshot, or until the resubscription's
      const held = entry.book;
      if (prevSeqId !== null && held.seqId !== null && prevSeqId !== held.seqId) {
        return this.loseBook(symbol, 'sequence_gap', `data[0].prevSeqId: expected ${held.seqId} (the last seqId), got ${prevSeqId}`, frame, localTs);
      }
      // An update with no levels keeps the connection alive; it changes nothing.
      if (this.bids.count === 0 && this.asks.count === 0) {
        held.seqId = seqId ?? held.seqId;
        return [];
      }
    }
    const book = entry.book.depthBook;
    this.bids.applyTo(book, 'bid');
    this.asks.applyTo(book, 'ask');
    book.truncate(depth);
    entry.book.seqId = seqId;
    if (typeof checksum === 'number' && checksum !== 0) {
      book.topTexts('bid', CHECKSUM_LEVELS, this.bidPrices, this.bidSizes);
      book.topTexts('ask', CHECKSUM_LEVELS, this.askPrices, this.askSizes);
      const computed = okxBookChecksum(this.bidPrices, this.bidSizes, this.askPrices, this.askSizes);
      if (computed !== checksum) {
        return this.loseBook(symbol, 'checksum_mismatch', `data[0].checksum: venue checksum ${checksum}, local book gives ${computed}`, frame, localTs);
      }
    }
    const out: MarketMessage[] = [];
    this.books.emit(entry, book.emit(symbol, ts, localTs, seqId ?? undefined, this.levels, frame), out);
    return out;
  }

  /** The book can no longer be trusted: drop it, resubscribe, and mark the gap if a book was out. */
  private loseBook(symbol: string, reason: RejectReason, detail: string, frame: string, localTs: EpochMs): MarketMessage[] {
    return this.books.rejectAndLose(symbol, reason, detail, frame, localTs);
  }

  private mapTrades(message: Record<string, unknown>, symbol: string, frame: string, localTs: EpochMs): MarketMessage[] {
    if (!Array.isArray(message.data)) return [rejected('schema', `data: expected an array of trades, got ${shown(message.data)}`, frame, symbol)];
    const out: MarketMessage[] = [];
    for (let i = 0; i < message.data.length; i += 1) out.push(this.mapTrade(message.data[i], `data[${i}]`, symbol, frame, localTs));
    return out;
  }

  private mapTrade(entry: unknown, at: string, symbol: string, frame: string, localTs: EpochMs): Trade | Rejected {
    if (!isRecord(entry)) return rejected('schema', `${at}: expected a trade object, got ${shown(entry)}`, frame, symbol);
    if (entry.instId !== undefined && entry.instId !== symbol) {
      return rejected('schema', `${at}.instId: expected "${symbol}" as arg names, got ${shown(entry.instId)}`, frame, symbol);
    }
    const aggressor = takerSide(entry.side);
    if (aggressor === null) return rejected('schema', `${at}.side: expected "buy" or "sell" (the taker's), got ${shown(entry.side)}`, frame, symbol);
    const price = decimalText(entry.px, `${at}.px`, 'positive');
    if (isFrameError(price)) return rejected(price.reason === 'non_positive_size' ? 'schema' : price.reason, price.detail, frame, symbol);
    const size = decimalText(entry.sz, `${at}.sz`, 'positive');
    if (isFrameError(size)) return rejected(size.reason, size.detail, frame, symbol);
    const ts = msText(entry.ts, `${at}.ts`);
    if (isFrameError(ts)) return rejected(ts.reason, ts.detail, frame, symbol);
    const tradeId = entry.tradeId;
    if (typeof tradeId !== 'string' || tradeId.length === 0) return rejected('schema', `${at}.tradeId: expected a trade id, got ${shown(tradeId)}`, frame, symbol);
    return { type: 'trade', symbol, ts, localTs, price, size, aggressor, tradeId };
  }
}

function okxLive(): LiveProtocol {
  const request = (op: 'subscribe' | 'unsubscribe', symbols: readonly string[], channels: readonly string[]): string[] =>
    symbols.length ? [JSON.stringify({ op, args: symbols.flatMap((instId) => channels.map((channel) => ({ channel, instId }))) })] : [];
  return {
    venue: 'okx',
    connectUrl: (baseUrl) => baseUrl,
    subscribeFrames: (symbols) => request('subscribe', symbols, ['books', 'trades']),
    unsubscribeFrames: (symbols) => request('unsubscribe', symbols, ['books', 'trades']),
    // A new books subscription starts with a snapshot; trades stay subscribed.
    resyncFrames: (symbols) => [...request('unsubscribe', symbols, ['books']), ...request('subscribe', symbols, ['books'])],
    pingFrame: () => 'ping',
    snapshotUrl: () => null,
  };
}

/** OKX v5 public `books` (400 levels) and `trades`; the live client connects to wss://ws.okx.com:8443/ws/v5/public. */
export const okx: Venue = {
  id: 'okx',
  createMapper: (options) => new OkxMapper(options),
  live: okxLive(),
};
