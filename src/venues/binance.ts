// Binance spot: the diff-depth stream kept in sync with REST depth snapshots, the partial-book
// streams, and the `<symbol>@trade` / `<symbol>@aggTrade` streams. Raw Binance shapes stay in
// this file; only MarketMessage leaves it.
// Reference: https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams
// (also github.com/binance/binance-spot-api-docs, web-socket-streams.md).
//
// Sync follows Binance's "How to manage a local order book correctly" (spot, current text):
// buffer diff events, fetch a snapshot, refetch while the snapshot is older than the first
// buffered event, drop events with u <= lastUpdateId, then apply an event only when
// U <= bookId + 1 <= u; an event with U > bookId + 1 means events were missed: discard the
// book and start over. Quantities are absolute; a zero quantity removes the level.
//
// USDⓈ-M futures (`binance-usdm`) share this mapper with the futures sync rule from "How to manage
// a local order book correctly" (https://developers.binance.com/docs/derivatives/usds-margined-futures/
// websocket-market-streams/How-to-manage-a-local-order-book-correctly): snapshot from
// GET /fapi/v1/depth, drop events with u < lastUpdateId, the first applied event has
// U <= lastUpdateId <= u, and every later event's `pu` must equal the previous event's u, else
// resync from a new snapshot. Futures diff streams are `<symbol>@depth` (250 ms) and
// `<symbol>@depth@0ms|@100ms|@250ms|@500ms`; their events carry `pu` and the transaction time `T`.
//
// Partial book depth (`<symbol>@depth<5|10|20>[@<speed>]`) sends the whole top-N book in every
// frame: spot as `{lastUpdateId, bids, asks}`, USDⓈ-M futures as a `depthUpdate` with E, T, s, U,
// u, pu, b, a ("Partial Book Depth Streams" in each market's websocket docs). Such a frame is
// emitted as it stands, with no REST snapshot and no sequence rule; a feed picks it with `depth`.
//
// Trades: `@trade` carries one fill (`t` trade id), `@aggTrade` the fills of one taker order at
// one price (`a` aggregate trade id); both carry `p`, `q`, the trade time `T` (the venue time
// used here; `E` is when the event was pushed) and `m`, "is the buyer the market maker?": when
// the buyer rested on the book the seller crossed the spread, so m = true is a sell aggressor.
// While a book waits for its REST snapshot its diff events are held back, and so are its trades:
// they come out with those events, in arrival order, so a resync never moves a trade across a
// book of its symbol.
import { L2Book } from '../book/l2-book.js';
import { snapshotOrRejected } from '../domain/book-check.js';
import type { BookSnapshot, EpochMs, MarketMessage, Rejected, RejectReason, Trade } from '../domain/types.js';
import { BookRegistry, type BookEntry } from './book-registry.js';
import { FrameError, isFrameError, isRecord, parseJsonFrame, shown } from './frame.js';
import { rejected } from '../domain/types.js';
import type { FrameMapper, LiveProtocol, MapperOptions, Venue } from './types.js';

const DEFAULT_LEVELS = 10;
const REST_SNAPSHOT_LIMIT = 1000;

// Channels that carry neither order-book state nor trades; their frames map to nothing.
const IGNORED_CHANNELS = ['bookTicker', 'kline_', 'ticker', 'miniTicker', 'avgPrice'];
const IGNORED_EVENTS = new Set(['kline', '24hrTicker', '24hrMiniTicker', '1hTicker', '4hTicker', '1dTicker', 'avgPrice']);
const SPOT_DIFF_CHANNEL = /^depth(@(100|1000)ms)?$/;
const USDM_DIFF_CHANNEL = /^depth(@(0|100|250|500)ms)?$/;
const ANY_DIFF_CHANNEL = /^depth(@(0|100|250|500|1000)ms)?$/;
// Partial book depth: spot `<symbol>@depth<levels>[@100ms]` (1000 ms alone), USDⓈ-M futures
// `<symbol>@depth<levels>[@100ms|@500ms]` (250 ms alone).
const SPOT_PARTIAL_CHANNEL = /^depth(5|10|20)(@(100|1000)ms)?$/;
const USDM_PARTIAL_CHANNEL = /^depth(5|10|20)(@(100|250|500)ms)?$/;
const ANY_PARTIAL_CHANNEL = /^depth(5|10|20)(@(100|250|500|1000)ms)?$/;
const ENVELOPE_PREFIX = '{"stream":"';

/** Parsed [p0, q0, p1, q1, ...] of one side, reused across frames to spare the hot path. */
class LevelScratch {
  values = new Float64Array(256);
  length = 0;

  reserve(pairs: number): void {
    if (this.values.length < 2 * pairs) this.values = new Float64Array(Math.max(2 * pairs, 2 * this.values.length));
    this.length = 0;
  }

  copy(): Float64Array {
    return this.values.slice(0, this.length);
  }

  /**
   * Orders the pairs by price, highest first for bids (`descending`), lowest first for asks.
   * Insertion sort in place: a partial book holds at most 20 levels, mostly in order already.
   */
  sortBestFirst(descending: boolean): void {
    const values = this.values;
    for (let i = 2; i < this.length; i += 2) {
      const price = values[i];
      const quantity = values[i + 1];
      let j = i - 2;
      while (j >= 0 && (descending ? values[j] < price : values[j] > price)) {
        values[j + 2] = values[j];
        values[j + 3] = values[j + 1];
        j -= 2;
      }
      values[j + 2] = price;
      values[j + 3] = quantity;
    }
  }
}

/** The trade stream a live connection subscribes beside depth. */
export type BinanceTradeChannel = 'trade' | 'aggTrade';

/**
 * Which sync rule a mapper follows: spot (U <= bookId + 1), USDⓈ-M futures (`pu` chains each event
 * to the previous one), or `auto`, for recordings: futures when a diff event carries `pu`.
 */
export type BinanceMarket = 'spot' | 'usdm' | 'auto';

/** A diff event held until a snapshot arrives; its levels are copied out of the scratch. */
interface BufferedEvent {
  readonly type: 'diff';
  readonly eventTime: number;
  readonly firstId: number;
  readonly finalId: number;
  /** Futures `pu`, the previous event's u; -1 on spot. */
  readonly previousFinalId: number;
  readonly bids: Float64Array;
  readonly asks: Float64Array;
  readonly localTs: EpochMs;
  readonly frame: string;
}

/**
 * One diff event on its way into the book. Live events view the mapper's level scratch (lengths
 * below the arrays' sizes), so the mapper keeps one of these and refills it instead of allocating
 * per frame; buffered events view their own copies.
 */
interface DiffInFlight {
  eventTime: number;
  firstId: number;
  finalId: number;
  /** Futures `pu`, the previous event's u; -1 on spot. */
  previousFinalId: number;
  bids: Float64Array;
  bidsLength: number;
  asks: Float64Array;
  asksLength: number;
  localTs: EpochMs;
  frame: string;
}

/** What `readDepthUpdate` read of the last `depthUpdate`; refilled per frame, like the level scratch. */
interface DepthHeader {
  symbol: string;
  eventTime: number;
  firstId: number;
  finalId: number;
  /** Futures `pu`; -1 where not read. */
  previousFinalId: number;
}

function emptyDiffInFlight(): DiffInFlight {
  const none = new Float64Array(0);
  return { eventTime: 0, firstId: 0, finalId: 0, previousFinalId: -1, bids: none, bidsLength: 0, asks: none, asksLength: 0, localTs: 0, frame: '' };
}

/**
 * A symbol's book and where its sync stands once a snapshot is applied (before one, the
 * registry's entry awaits and holds the diff events and trades): `bridging` until the event that
 * joins the snapshot, then `live` while every applied event was contiguous.
 */
interface SymbolSync {
  readonly book: L2Book;
  phase: 'bridging' | 'live';
  /** Update id the book reflects: the snapshot's lastUpdateId, then each applied event's u. */
  bookId: number;
  /** Futures rule: events chain by `pu` (set by the market, or by the first `pu` seen on `auto`). */
  chained: boolean;
}

type SyncEntry = BookEntry<SymbolSync, BufferedEvent>;

/** A Binance decimal (string, or a JSON number from a lenient producer) as a number; NaN when not one. */
function decimal(raw: unknown): number {
  if (typeof raw === 'number') return raw;
  if (typeof raw !== 'string' || raw.length === 0) return Number.NaN;
  const value = Number(raw);
  // Number('') and Number('  ') are 0, which would silently delete a level.
  if (value === 0 && !/\d/.test(raw)) return Number.NaN;
  return value;
}

function updateId(record: Record<string, unknown>, field: string): number | FrameError {
  const value = record[field];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    return new FrameError('schema', `${field}: expected a non-negative integer update id, got ${shown(value)}`);
  }
  return value;
}

/**
 * Parses `raw` (an array of [price, quantity] decimal pairs) into `into`. `zeroMeansDelete`
 * allows quantity 0 (diff events); snapshots must carry positive quantities.
 */
function parseLevels(raw: unknown, field: string, into: LevelScratch, zeroMeansDelete: boolean): FrameError | null {
  if (!Array.isArray(raw)) return new FrameError('schema', `${field}: expected an array of [price, quantity], got ${shown(raw)}`);
  into.reserve(raw.length);
  const values = into.values;
  for (let i = 0; i < raw.length; i += 1) {
    const level: unknown = raw[i];
    if (!Array.isArray(level) || level.length < 2) {
      return new FrameError('schema', `${field}[${i}]: expected [price, quantity], got ${shown(level)}`);
    }
    const price = decimal(level[0]);
    const quantity = decimal(level[1]);
    if (!Number.isFinite(price)) {
      return new FrameError('non_finite', `${field}[${i}][0]: price must be a finite decimal, got ${shown(level[0])}`);
    }
    if (!(price > 0)) return new FrameError('schema', `${field}[${i}][0]: price must be > 0, got ${shown(level[0])}`);
    if (!Number.isFinite(quantity)) {
      return new FrameError('non_finite', `${field}[${i}][1]: quantity must be a finite decimal, got ${shown(level[1])}`);
    }
    if (quantity < 0 || (quantity === 0 && !zeroMeansDelete)) {
      const bound = zeroMeansDelete ? '>= 0' : '> 0';
      return new FrameError('non_positive_size', `${field}[${i}][1]: quantity must be ${bound}, got ${shown(level[1])}`);
    }
    values[2 * i] = price;
    values[2 * i + 1] = quantity;
  }
  into.length = 2 * raw.length;
  return null;
}

/** The `<name>` of a frame that starts `{"stream":"<name>"`, or null; lets ignored channels skip JSON.parse. */
function envelopeStreamName(frame: string): string | null {
  if (!frame.startsWith(ENVELOPE_PREFIX) || frame.charCodeAt(frame.length - 1) !== 0x7d) return null;
  const end = frame.indexOf('"', ENVELOPE_PREFIX.length);
  return end < 0 ? null : frame.slice(ENVELOPE_PREFIX.length, end);
}

function isIgnoredChannel(channel: string): boolean {
  for (const prefix of IGNORED_CHANNELS) if (channel.startsWith(prefix)) return true;
  return false;
}

/** The event's symbol `s`, or the stream's where a combined-stream payload leaves it out. */
function symbolOf(data: Record<string, unknown>, streamSymbol: string | null): string | FrameError {
  const raw = data.s;
  if (typeof raw === 'string' && raw.length > 0) return raw.toUpperCase();
  if (streamSymbol !== null && raw === undefined) return streamSymbol;
  return new FrameError('schema', `s: expected a symbol, got ${shown(raw)}`);
}

/** A trade's price or quantity: a finite decimal > 0, or a FrameError naming the field. */
function positiveDecimal(raw: unknown, field: string, what: string, notPositive: RejectReason): number | FrameError {
  if (typeof raw !== 'string' && typeof raw !== 'number') return new FrameError('schema', `${field}: expected a decimal ${what}, got ${shown(raw)}`);
  const value = decimal(raw);
  if (!Number.isFinite(value)) return new FrameError('non_finite', `${field}: ${what} must be a finite decimal, got ${shown(raw)}`);
  if (!(value > 0)) return new FrameError(notPositive, `${field}: ${what} must be > 0, got ${shown(raw)}`);
  return value;
}

/** A non-negative integer id (trade id, aggregate trade id) as text, or a FrameError naming the field. */
function tradeIdOf(record: Record<string, unknown>, field: string): string | FrameError {
  const value = record[field];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    return new FrameError('schema', `${field}: expected a non-negative integer trade id, got ${shown(value)}`);
  }
  return String(value);
}

class BinanceMapper implements FrameMapper {
  private readonly levels: number;
  private readonly diffChannel: RegExp;
  private readonly partialChannel: RegExp;
  private readonly connectionSymbols: readonly string[];
  private readonly books: BookRegistry<SymbolSync, BufferedEvent>;
  private readonly bidScratch = new LevelScratch();
  private readonly askScratch = new LevelScratch();
  private readonly diffInFlight = emptyDiffInFlight();
  private readonly header: DepthHeader = { symbol: '', eventTime: 0, firstId: 0, finalId: 0, previousFinalId: -1 };

  /**
   * `bareFuturesPartial`: a bare `depthUpdate` (a `/ws/<symbol>@depth<levels>` connection, whose
   * frames name no stream) is a futures partial book, not a diff; combined-stream frames say which.
   */
  constructor(
    options: MapperOptions,
    private readonly market: BinanceMarket = 'spot',
    private readonly bareFuturesPartial = false,
  ) {
    this.diffChannel = market === 'spot' ? SPOT_DIFF_CHANNEL : market === 'usdm' ? USDM_DIFF_CHANNEL : ANY_DIFF_CHANNEL;
    this.partialChannel = market === 'spot' ? SPOT_PARTIAL_CHANNEL : market === 'usdm' ? USDM_PARTIAL_CHANNEL : ANY_PARTIAL_CHANNEL;
    const levels = Math.floor(options.levels);
    this.levels = Number.isFinite(levels) && levels > 0 ? levels : DEFAULT_LEVELS;
    this.connectionSymbols = (options.symbols ?? []).map((symbol) => symbol.toUpperCase());
    this.books = new BookRegistry(() => ({ book: new L2Book(2 * REST_SNAPSHOT_LIMIT), phase: 'bridging', bookId: -1, chained: market === 'usdm' }));
  }

  map(frame: string, localTs: EpochMs): MarketMessage[] {
    const out: MarketMessage[] = [];
    const fastName = envelopeStreamName(frame);
    if (fastName !== null) {
      const at = fastName.indexOf('@');
      if (at > 0 && isIgnoredChannel(fastName.slice(at + 1))) return out;
    }
    const parsed = parseJsonFrame(frame, 'frame', null);
    if ('type' in parsed) {
      out.push(parsed);
      return out;
    }
    const message = parsed.value;
    if (!isRecord(message)) {
      out.push(this.reject('schema', `frame: expected a JSON object, got ${shown(message)}`, frame, null));
      return out;
    }
    if ('stream' in message && 'data' in message) this.mapEnvelope(message.stream, message.data, frame, localTs, out);
    else this.mapBare(message, frame, localTs, out);
    return out;
  }

  mapRestSnapshot(symbol: string, body: string, localTs: EpochMs): MarketMessage[] {
    const out: MarketMessage[] = [];
    const upper = symbol.toUpperCase();
    const parsed = parseJsonFrame(body, 'snapshot', upper);
    if ('type' in parsed) {
      out.push(parsed);
      return out;
    }
    const message = parsed.value;
    if (!isRecord(message)) {
      out.push(this.reject('schema', `snapshot: expected a JSON object, got ${shown(message)}`, body, upper));
      return out;
    }
    this.applyRestSnapshot(upper, message, body, localTs, out);
    return out;
  }

  takeResyncRequests(): string[] {
    return this.books.takeResyncRequests();
  }

  releaseHeld(): MarketMessage[] {
    return this.books.releaseTrades();
  }

  reset(): void {
    this.books.reset();
  }

  private mapEnvelope(stream: unknown, data: unknown, frame: string, localTs: EpochMs, out: MarketMessage[]): void {
    if (typeof stream !== 'string') {
      out.push(this.reject('schema', `stream: expected a stream name, got ${shown(stream)}`, frame, null));
      return;
    }
    // All-market streams (`!ticker@arr`, `!bookTicker`...) carry no order book.
    if (stream.startsWith('!')) return;
    const at = stream.indexOf('@');
    if (at <= 0) {
      out.push(this.reject('schema', `stream: expected <symbol>@<channel>, got ${shown(stream)}`, frame, null));
      return;
    }
    const streamSymbol = stream.slice(0, at).toUpperCase();
    const channel = stream.slice(at + 1);
    if (isIgnoredChannel(channel)) return;
    if (!isRecord(data)) {
      out.push(this.reject('schema', `data: expected a JSON object, got ${shown(data)}`, frame, streamSymbol));
      return;
    }
    if (channel === 'trade' || channel === 'aggTrade') this.mapTrade(data, channel, streamSymbol, frame, localTs, out);
    else if (this.diffChannel.test(channel)) this.mapDiff(data, streamSymbol, frame, localTs, out);
    else if (this.partialChannel.test(channel)) this.mapPartialChannel(data, streamSymbol, frame, localTs, out);
    else out.push(this.reject('unsupported_message', `stream: unsupported channel ${shown(stream)}`, frame, streamSymbol));
  }

  private mapBare(message: Record<string, unknown>, frame: string, localTs: EpochMs, out: MarketMessage[]): void {
    if ('e' in message) {
      const event = message.e;
      if (event === 'depthUpdate') {
        if (this.bareFuturesPartial) this.mapFuturesPartial(message, null, frame, localTs, out);
        else this.mapDiff(message, null, frame, localTs, out);
      } else if (event === 'trade' || event === 'aggTrade') this.mapTrade(message, event, null, frame, localTs, out);
      else if (typeof event !== 'string' || !IGNORED_EVENTS.has(event)) {
        out.push(this.reject('unsupported_message', `e: unsupported event type ${shown(event)}`, frame, null));
      }
      return;
    }
    if ('lastUpdateId' in message) {
      this.mapBareDepthBody(message, frame, localTs, out);
      return;
    }
    // Subscription acks `{"result":null,"id":1}` and bookTicker payloads (no `e`) carry no book.
    if ('result' in message && 'id' in message) return;
    if ('u' in message && 's' in message && 'b' in message && 'a' in message && 'B' in message && 'A' in message) return;
    if ('code' in message && 'msg' in message) {
      out.push(this.reject('unsupported_message', `msg: venue error ${shown(message.code)}: ${shown(message.msg)}`, frame, null));
      return;
    }
    out.push(this.reject('unsupported_message', `frame: unrecognised message with keys ${shown(Object.keys(message))}`, frame, null));
  }

  /**
   * A bare `{"lastUpdateId","bids","asks"}` names no symbol. It is a partial-book frame of a
   * single `/ws/<symbol>@depthN` connection, unless a diff stream already runs for that symbol on
   * this mapper: one `/ws/` connection carries one stream, so then it can only be a REST body.
   */
  private mapBareDepthBody(message: Record<string, unknown>, frame: string, localTs: EpochMs, out: MarketMessage[]): void {
    if (this.connectionSymbols.length !== 1) {
      const detail = `symbol: a bare depth body names no symbol and this connection has ${this.connectionSymbols.length} symbols`;
      out.push(this.reject('unknown_symbol', detail, frame, null));
      return;
    }
    const symbol = this.connectionSymbols[0];
    if (this.books.find(symbol) !== undefined) this.applyRestSnapshot(symbol, message, frame, localTs, out);
    else this.mapPartial(message, symbol, frame, localTs, out);
  }

  /**
   * A partial-book stream frame: spot sends `{lastUpdateId, bids, asks}`, USDⓈ-M futures a
   * diff-shaped `depthUpdate` (E, T, s, U, u, pu, b, a) that is nonetheless the whole top-N book.
   * A recording (`auto`) may hold either; each market reads only its own.
   */
  private mapPartialChannel(data: Record<string, unknown>, streamSymbol: string, frame: string, localTs: EpochMs, out: MarketMessage[]): void {
    const futuresShaped = data.e !== undefined;
    if (this.market === 'spot' || (this.market === 'auto' && !futuresShaped)) {
      this.mapPartial(data, streamSymbol, frame, localTs, out);
      return;
    }
    if (data.e !== 'depthUpdate') {
      out.push(this.reject('schema', `e: expected "depthUpdate" on a futures partial-depth stream, got ${shown(data.e)}`, frame, streamSymbol));
      return;
    }
    this.mapFuturesPartial(data, streamSymbol, frame, localTs, out);
  }

  /**
   * USDⓈ-M futures partial depth: every frame is the whole top <levels> book, so it is emitted as
   * it stands: no REST snapshot, no `pu` chain (a lost frame loses nothing the next one lacks).
   * The venue time is `E`, as for the futures diff stream; `u` is the snapshot's sequence.
   */
  private mapFuturesPartial(data: Record<string, unknown>, streamSymbol: string | null, frame: string, localTs: EpochMs, out: MarketMessage[]): void {
    // `pu` is checked against nothing (see above), but a frame without it is not the documented shape.
    if (!this.readDepthUpdate(data, streamSymbol, frame, true, false, out)) return;
    const { symbol, eventTime, finalId } = this.header;
    // The documented example lists its bids low to high; order each side best first rather than
    // trust the order sent (checkBook then still rejects a repeated price).
    this.bidScratch.sortBestFirst(true);
    this.askScratch.sortBestFirst(false);
    const bids = this.bidScratch.values.slice(0, Math.min(this.bidScratch.length, 2 * this.levels));
    const asks = this.askScratch.values.slice(0, Math.min(this.askScratch.length, 2 * this.levels));
    const snapshot: BookSnapshot = { type: 'book_snapshot', symbol, ts: eventTime, localTs, seq: finalId, bids, asks };
    out.push(snapshotOrRejected(snapshot, frame));
  }

  private mapPartial(data: Record<string, unknown>, symbol: string, frame: string, localTs: EpochMs, out: MarketMessage[]): void {
    const lastUpdateId = updateId(data, 'lastUpdateId');
    if (isFrameError(lastUpdateId)) {
      out.push(this.reject(lastUpdateId.reason, lastUpdateId.detail, frame, symbol));
      return;
    }
    const problem = parseLevels(data.bids, 'bids', this.bidScratch, false) ?? parseLevels(data.asks, 'asks', this.askScratch, false);
    if (problem) {
      out.push(this.reject(problem.reason, problem.detail, frame, symbol));
      return;
    }
    // The payload is already best first; checkBook below verifies that rather than re-sorting.
    const bids = this.bidScratch.values.slice(0, Math.min(this.bidScratch.length, 2 * this.levels));
    const asks = this.askScratch.values.slice(0, Math.min(this.askScratch.length, 2 * this.levels));
    // Partial-book payloads carry no event time; the receive time stands in for it.
    const snapshot: BookSnapshot = { type: 'book_snapshot', symbol, ts: localTs, localTs, seq: lastUpdateId, bids, asks };
    out.push(snapshotOrRejected(snapshot, frame));
  }

  private mapTrade(data: Record<string, unknown>, channel: BinanceTradeChannel, streamSymbol: string | null, frame: string, localTs: EpochMs, out: MarketMessage[]): void {
    const symbol = symbolOf(data, streamSymbol);
    if (typeof symbol !== 'string') {
      out.push(this.reject(symbol.reason, symbol.detail, frame, streamSymbol));
      return;
    }
    if (data.e !== undefined && data.e !== channel) {
      out.push(this.reject('schema', `e: expected "${channel}" on a @${channel} stream, got ${shown(data.e)}`, frame, symbol));
      return;
    }
    const tradeId = tradeIdOf(data, channel === 'trade' ? 't' : 'a');
    if (typeof tradeId !== 'string') {
      out.push(this.reject(tradeId.reason, tradeId.detail, frame, symbol));
      return;
    }
    const price = positiveDecimal(data.p, 'p', 'price', 'schema');
    if (isFrameError(price)) {
      out.push(this.reject(price.reason, price.detail, frame, symbol));
      return;
    }
    const quantity = positiveDecimal(data.q, 'q', 'quantity', 'non_positive_size');
    if (isFrameError(quantity)) {
      out.push(this.reject(quantity.reason, quantity.detail, frame, symbol));
      return;
    }
    const tradeTime = data.T;
    if (typeof tradeTime !== 'number') {
      out.push(this.reject('schema', `T: expected a trade time in ms, got ${shown(tradeTime)}`, frame, symbol));
      return;
    }
    // JSON.parse reads an overlong exponent as Infinity.
    if (!Number.isFinite(tradeTime)) {
      out.push(this.reject('non_finite', `T: trade time must be finite, got ${shown(tradeTime)}`, frame, symbol));
      return;
    }
    const buyerIsMaker = data.m;
    if (typeof buyerIsMaker !== 'boolean') {
      out.push(this.reject('schema', `m: expected true or false (is the buyer the maker), got ${shown(buyerIsMaker)}`, frame, symbol));
      return;
    }
    const trade: Trade = {
      type: 'trade',
      symbol,
      ts: tradeTime,
      localTs,
      price,
      size: quantity,
      aggressor: buyerIsMaker ? -1 : 1,
      tradeId,
    };
    this.books.trade(trade, out);
  }

  /**
   * Reads the fields every `depthUpdate` carries (s, E, U, u, `pu` where `readPu`, b, a) into
   * `this.header` and the level scratch. False after pushing the rejection that names the field.
   * `zeroMeansDelete`: a diff deletes with quantity 0; a whole partial book has none.
   */
  private readDepthUpdate(data: Record<string, unknown>, streamSymbol: string | null, frame: string, readPu: boolean, zeroMeansDelete: boolean, out: MarketMessage[]): boolean {
    const symbol = symbolOf(data, streamSymbol);
    if (typeof symbol !== 'string') {
      out.push(this.reject(symbol.reason, symbol.detail, frame, streamSymbol));
      return false;
    }
    const eventTime = data.E;
    if (typeof eventTime !== 'number' || !Number.isFinite(eventTime)) {
      out.push(this.reject('schema', `E: expected an event time in ms, got ${shown(eventTime)}`, frame, symbol));
      return false;
    }
    const firstId = updateId(data, 'U');
    if (isFrameError(firstId)) {
      out.push(this.reject(firstId.reason, firstId.detail, frame, symbol));
      return false;
    }
    const finalId = updateId(data, 'u');
    if (isFrameError(finalId)) {
      out.push(this.reject(finalId.reason, finalId.detail, frame, symbol));
      return false;
    }
    if (firstId > finalId) {
      out.push(this.reject('out_of_order', `U: first update id ${firstId} is after final update id u=${finalId}`, frame, symbol));
      return false;
    }
    const previousFinalId = readPu ? updateId(data, 'pu') : -1;
    if (isFrameError(previousFinalId)) {
      out.push(this.reject(previousFinalId.reason, previousFinalId.detail, frame, symbol));
      return false;
    }
    const problem = parseLevels(data.b, 'b', this.bidScratch, zeroMeansDelete) ?? parseLevels(data.a, 'a', this.askScratch, zeroMeansDelete);
    if (problem) {
      out.push(this.reject(problem.reason, problem.detail, frame, symbol));
      return false;
    }
    const header = this.header;
    header.symbol = symbol;
    header.eventTime = eventTime;
    header.firstId = firstId;
    header.finalId = finalId;
    header.previousFinalId = previousFinalId;
    return true;
  }

  private mapDiff(data: Record<string, unknown>, streamSymbol: string | null, frame: string, localTs: EpochMs, out: MarketMessage[]): void {
    const readPu = this.market === 'usdm' || (this.market === 'auto' && data.pu !== undefined);
    if (!this.readDepthUpdate(data, streamSymbol, frame, readPu, true, out)) return;
    const { symbol, eventTime, firstId, finalId, previousFinalId } = this.header;
    const entry = this.books.entry(symbol);
    if (previousFinalId >= 0) entry.book.chained = true;
    if (entry.awaiting) {
      this.books.hold(
        entry,
        {
          type: 'diff',
          eventTime,
          firstId,
          finalId,
          previousFinalId,
          bids: this.bidScratch.copy(),
          asks: this.askScratch.copy(),
          localTs,
          frame,
        },
        out,
      );
      return;
    }
    const diff = this.diffInFlight;
    diff.eventTime = eventTime;
    diff.firstId = firstId;
    diff.finalId = finalId;
    diff.previousFinalId = previousFinalId;
    diff.bids = this.bidScratch.values;
    diff.bidsLength = this.bidScratch.length;
    diff.asks = this.askScratch.values;
    diff.asksLength = this.askScratch.length;
    diff.localTs = localTs;
    diff.frame = frame;
    this.applyEvent(entry, diff, out);
  }

  private applyRestSnapshot(symbol: string, body: Record<string, unknown>, raw: string, localTs: EpochMs, out: MarketMessage[]): void {
    const lastUpdateId = updateId(body, 'lastUpdateId');
    if (isFrameError(lastUpdateId)) {
      out.push(this.reject(lastUpdateId.reason, lastUpdateId.detail, raw, symbol));
      return;
    }
    const problem = parseLevels(body.bids, 'bids', this.bidScratch, false) ?? parseLevels(body.asks, 'asks', this.askScratch, false);
    if (problem) {
      out.push(this.reject(problem.reason, problem.detail, raw, symbol));
      return;
    }
    const entry = this.books.entry(symbol);
    const sync = entry.book;
    if (!entry.awaiting && lastUpdateId <= sync.bookId) {
      const detail = `lastUpdateId: snapshot ${lastUpdateId} is not newer than the book (update id ${sync.bookId}); ignored`;
      out.push(this.reject('out_of_order', detail, raw, symbol));
      return;
    }
    const firstBuffered = entry.held.find((item): item is BufferedEvent => item.type === 'diff');
    // Spot: a snapshot at exactly U - 1 still joins the first buffered event (U <= lastUpdateId + 1).
    // Futures: the first applied event must have U <= lastUpdateId.
    const oldestUsable = firstBuffered === undefined ? -1 : sync.chained ? firstBuffered.firstId : firstBuffered.firstId - 1;
    if (firstBuffered !== undefined && lastUpdateId < oldestUsable) {
      const detail = `lastUpdateId: snapshot ${lastUpdateId} is older than the first buffered event (U=${firstBuffered.firstId}); requesting another`;
      out.push(this.reject('out_of_order', detail, raw, symbol));
      this.books.resync(symbol);
      return;
    }
    sync.book.replaceSide('bid', this.bidScratch.values.subarray(0, this.bidScratch.length));
    sync.book.replaceSide('ask', this.askScratch.values.subarray(0, this.askScratch.length));
    sync.bookId = lastUpdateId;
    sync.phase = 'bridging';
    this.books.synced(entry);
    for (const event of this.books.release(entry)) {
      // A gap inside the buffer sends the book back to awaiting its snapshot: keep the rest held.
      if (entry.awaiting) this.books.hold(entry, event, out);
      else if (event.type === 'trade') out.push(event);
      else {
        this.applyEvent(entry, { ...event, bidsLength: event.bids.length, asksLength: event.asks.length }, out);
      }
    }
  }

  private applyEvent(entry: SyncEntry, diff: DiffInFlight, out: MarketMessage[]): void {
    const { eventTime, firstId, finalId, previousFinalId, bids, bidsLength, asks, asksLength, localTs, frame } = diff;
    const sync = entry.book;
    if (sync.chained) {
      if (!this.continuesChain(sync, firstId, finalId, previousFinalId)) {
        // Before the bridge an event the snapshot already holds (u < lastUpdateId) is dropped.
        if (sync.phase === 'bridging' && finalId < sync.bookId) return;
        this.onGap(entry, diff, out);
        return;
      }
    } else if (finalId <= sync.bookId) {
      // While bridging from the snapshot, an event the snapshot already holds is normal. Once
      // live, Binance never repeats an update id, so an older one means the stream restarted
      // (a failover, a looping stand-in): resync instead of ignoring it forever.
      if (sync.phase === 'live') {
        this.onGap(entry, diff, out);
      }
      return;
    } else if (firstId > sync.bookId + 1) {
      this.onGap(entry, diff, out);
      return;
    }
    const book = sync.book;
    for (let i = 0; i < bidsLength; i += 2) book.setLevel('bid', bids[i], bids[i + 1]);
    for (let i = 0; i < asksLength; i += 2) book.setLevel('ask', asks[i], asks[i + 1]);
    sync.bookId = finalId;
    sync.phase = 'live';
    const snapshot: BookSnapshot = {
      type: 'book_snapshot',
      symbol: entry.symbol,
      ts: eventTime,
      localTs,
      seq: finalId,
      bids: book.topBids(this.levels),
      asks: book.topAsks(this.levels),
    };
    this.books.emit(entry, snapshotOrRejected(snapshot, frame), out);
  }

  /**
   * Futures: while bridging, the event must hold the snapshot (U <= lastUpdateId <= u); once live,
   * its `pu` must be the u of the event applied before it.
   */
  private continuesChain(sync: SymbolSync, firstId: number, finalId: number, previousFinalId: number): boolean {
    if (sync.phase === 'bridging') return firstId <= sync.bookId && sync.bookId <= finalId;
    return previousFinalId === sync.bookId;
  }

  private gapReason(sync: SymbolSync, firstId: number, finalId: number, previousFinalId: number): string {
    if (sync.chained) {
      return `sequence gap: expected pu=${sync.bookId}, got pu=${previousFinalId} (U=${firstId}, u=${finalId}); resyncing from a new snapshot`;
    }
    return finalId <= sync.bookId
      ? `stream restarted: update ids went back from ${sync.bookId} to u=${finalId}; resyncing from a new snapshot`
      : `sequence gap: expected U <= ${sync.bookId + 1}, got U=${firstId} (u=${finalId}); resyncing from a new snapshot`;
  }

  /**
   * The event does not continue the book: the book is lost (a disconnect marks it if a book of it
   * went out; else the snapshot simply could not reach the stream) and the event is held for the
   * next snapshot, which is requested.
   */
  private onGap(entry: SyncEntry, diff: DiffInFlight, out: MarketMessage[]): void {
    const { eventTime, firstId, finalId, previousFinalId, localTs, frame } = diff;
    const sync = entry.book;
    if (!this.books.lose(entry.symbol, localTs, this.gapReason(sync, firstId, finalId, previousFinalId), out)) {
      const detail = sync.chained
        ? `lastUpdateId: snapshot ${sync.bookId} is not within the next event's [U=${firstId}; u=${finalId}]; requesting another`
        : `lastUpdateId: snapshot ${sync.bookId} does not reach the next event (U=${firstId}); requesting another`;
      out.push(this.reject('out_of_order', detail, frame, entry.symbol));
    }
    sync.book.reset();
    // The live diff views the mapper's scratch, which the next frame overwrites: hold a copy.
    const bids = diff.bids.slice(0, diff.bidsLength);
    const asks = diff.asks.slice(0, diff.asksLength);
    this.books.hold(entry, { type: 'diff', eventTime, firstId, finalId, previousFinalId, bids, asks, localTs, frame }, out);
  }

  private reject(reason: RejectReason, detail: string, raw: string, symbol: string | null): Rejected {
    return rejected(reason, detail, raw, symbol);
  }
}

function streamsOf(symbols: readonly string[], tradeChannel: BinanceTradeChannel | null, depthStream: string): string[] {
  const streams: string[] = [];
  for (const symbol of symbols) {
    const lower = symbol.toLowerCase();
    streams.push(`${lower}@${depthStream}`);
    if (tradeChannel !== null) streams.push(`${lower}@${tradeChannel}`);
  }
  return streams;
}

function withoutTrailingSlash(url: string): string {
  return url.endsWith('/') ? url.slice(0, -1) : url;
}

interface LiveShape {
  readonly venue: string;
  readonly depthStream: string;
  /** REST depth path (spot `/api/v3/depth`, USDⓈ-M futures `/fapi/v1/depth`); null for a partial-depth stream, which needs none. */
  readonly depthPath: string | null;
}

const SPOT_LIVE: LiveShape = { venue: 'binance', depthStream: 'depth@100ms', depthPath: '/api/v3/depth' };

function createLiveProtocol(tradeChannel: BinanceTradeChannel | null, shape: LiveShape = SPOT_LIVE): LiveProtocol {
  let requestId = 0;
  const streams = (symbols: readonly string[]) => streamsOf(symbols, tradeChannel, shape.depthStream);
  const depthPath = shape.depthPath;
  return {
    venue: shape.venue,
    connectUrl: (baseUrl, symbols) => `${withoutTrailingSlash(baseUrl)}/stream?streams=${streams(symbols).join('/')}`,
    // The combined-stream URL already subscribes.
    subscribeFrames: () => [],
    unsubscribeFrames: (symbols) => {
      if (symbols.length === 0) return [];
      requestId += 1;
      return [JSON.stringify({ method: 'UNSUBSCRIBE', params: streams(symbols), id: requestId })];
    },
    // Books resync from REST snapshots (a partial stream needs no resync); the stream itself is never touched.
    resyncFrames: () => [],
    // Binance pings at the websocket level and ws answers those pongs itself.
    pingFrame: () => null,
    snapshotUrl: (baseRestUrl, symbol) =>
      depthPath === null ? null : `${withoutTrailingSlash(baseRestUrl)}${depthPath}?symbol=${encodeURIComponent(symbol.toUpperCase())}&limit=${REST_SNAPSHOT_LIMIT}`,
  };
}

/**
 * The book stream a live connection follows: the diff stream synced to REST snapshots (`diff`),
 * or a partial-depth stream of the top 5, 10 or 20 levels, each frame a whole book.
 */
export type BinanceDepth = 'diff' | 5 | 10 | 20;
export const BINANCE_DEPTHS: readonly BinanceDepth[] = ['diff', 5, 10, 20];

function checkDepth(venue: string, depth: BinanceDepth): void {
  if (!BINANCE_DEPTHS.includes(depth)) throw new RangeError(`${venue} depth must be one of ${BINANCE_DEPTHS.join(', ')}, got ${String(depth)}`);
}

/** The venue plus the way a feed's config picks its depth: `build` checks the choice. */
function withDepths(venue: Omit<Venue, 'withBookDepth'>, build: (depth: BinanceDepth) => Venue): Venue {
  return { ...venue, withBookDepth: (depth) => build(depth as BinanceDepth) };
}

/**
 * Binance spot; the live client subscribes `<symbol>@depth@100ms` (`depth` 'diff', synced to
 * GET /api/v3/depth) or `<symbol>@depth<depth>@100ms` (a partial book, no REST) and, unless
 * `tradeChannel` is null, `<symbol>@trade` (every fill) or `<symbol>@aggTrade` (fills aggregated
 * per taker order and price). The mapper reads whichever stream a frame names, so replay needs no option.
 */
export function binanceVenue(tradeChannel: BinanceTradeChannel | null = 'trade', depth: BinanceDepth = 'diff'): Venue {
  checkDepth('binance', depth);
  const shape: LiveShape = depth === 'diff' ? SPOT_LIVE : { venue: 'binance', depthStream: `depth${depth}@100ms`, depthPath: null };
  return withDepths(
    {
      id: 'binance',
      createMapper: (options: MapperOptions): FrameMapper => new BinanceMapper(options),
      live: createLiveProtocol(tradeChannel, shape),
    },
    (chosen) => binanceVenue(tradeChannel, chosen),
  );
}

export const binance: Venue = binanceVenue();

/**
 * The update speeds USDⓈ-M futures offers: diff depth 0, 100, 250 (`<symbol>@depth` alone) or
 * 500 ms; partial depth 100, 250 (`<symbol>@depth<levels>` alone) or 500 ms.
 */
export type BinanceUsdmDepthSpeed = '0ms' | '100ms' | '250ms' | '500ms';

/**
 * Binance USDⓈ-M futures (wss://fstream.binance.com, REST https://fapi.binance.com): the live
 * client subscribes `<symbol>@depth@<speed>`, syncing each book against GET /fapi/v1/depth?limit=1000
 * with the `pu` chain, or with `depth` 5, 10 or 20 the partial book `<symbol>@depth<depth>@<speed>`
 * (no REST), and `<symbol>@aggTrade` (or `@trade`).
 */
export function binanceUsdmVenue(tradeChannel: BinanceTradeChannel | null = 'aggTrade', speed: BinanceUsdmDepthSpeed = '100ms', depth: BinanceDepth = 'diff'): Venue {
  checkDepth('binance-usdm', depth);
  let shape: LiveShape = { venue: 'binance-usdm', depthStream: `depth@${speed}`, depthPath: '/fapi/v1/depth' };
  if (depth !== 'diff') {
    if (speed === '0ms') throw new RangeError('binance-usdm partial depth streams are pushed every 100, 250 or 500 ms, not 0ms');
    // `<symbol>@depth<levels>` alone is the 250 ms stream; the documentation names no `@250ms` form.
    shape = { venue: 'binance-usdm', depthStream: speed === '250ms' ? `depth${depth}` : `depth${depth}@${speed}`, depthPath: null };
  }
  return withDepths(
    {
      id: 'binance-usdm',
      createMapper: (options: MapperOptions): FrameMapper => new BinanceMapper(options, 'usdm', depth !== 'diff'),
      live: createLiveProtocol(tradeChannel, shape),
    },
    (chosen) => binanceUsdmVenue(tradeChannel, speed, chosen),
  );
}

export const binanceUsdm: Venue = binanceUsdmVenue();

/** A mapper for recordings that may be spot or futures: the `pu` of the diff events decides. */
export function createBinanceRecordingMapper(options: MapperOptions): FrameMapper {
  return new BinanceMapper(options, 'auto');
}
