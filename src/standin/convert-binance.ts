// Builds a recording in Coinbase's or Kraken's (v1, v2) websocket protocol from a real Binance
// spot recording (`<receive ns> <frame>` lines with @depth diffs, @trade frames and the REST
// snapshot inline): the Binance book is synced as Binance documents (snapshot, then diffs from
// lastUpdateId + 1), and each step of its evolution is written as the target venue would send
// it, at the receive time of the Binance frame it came from:
// - coinbase: a full-book `snapshot`, then one `l2update` per diff with the levels that changed;
//   each trade as a `match` (side = the maker's: Binance's `m`, buyer is maker, gives "buy").
// - kraken (v1) and kraken-v2: the book at depth 10, a snapshot then one update per diff that
//   changed the top 10: changed levels, deletes, and levels that came into the top 10 ("r" in
//   v1), with the CRC32 checksum of the top 10 as each version defines it; trades with the
//   taker's side.
// The stand-ins of this folder serve the result; their clients' books must equal Binance's.
import { krakenBookChecksum } from '../venues/kraken.js';
import { readLines } from '../venues/lines.js';

export const CONVERSION_TARGETS = ['coinbase', 'kraken', 'kraken-v2'] as const;
export type ConversionTarget = (typeof CONVERSION_TARGETS)[number];

/** The symbol each target venue lists Binance's BTCUSDT under; other pairs keep Binance's letters. */
export function venueSymbol(target: ConversionTarget, binanceSymbol: string): string {
  const quote = ['USDT', 'USDC', 'BTC', 'ETH', 'EUR', 'USD'].find((q) => binanceSymbol.endsWith(q) && binanceSymbol.length > q.length) ?? binanceSymbol.slice(-4);
  const base = binanceSymbol.slice(0, -quote.length);
  if (target === 'coinbase') return `${base}-${quote}`;
  return `${target === 'kraken' && base === 'BTC' ? 'XBT' : base}/${quote}`;
}

interface Level {
  /** Binance's strings. */
  readonly priceText: string;
  readonly sizeText: string;
  /** When the level was last set, epoch ms (Kraken v1 sends it per level). */
  readonly timeMs: number;
}

type Side = Map<number, Level>;

interface Book {
  readonly bids: Side;
  readonly asks: Side;
}

/** A level as a diff changed it: `level` null when it left the book. */
interface Change {
  readonly side: 'bid' | 'ask';
  readonly price: number;
  readonly level: Level | null;
}

interface BinanceTrade {
  readonly tradeId: number;
  readonly priceText: string;
  readonly sizeText: string;
  readonly timeMs: number;
  readonly buyerIsMaker: boolean;
}

/** A Binance decimal with exactly `places` decimals; throws when a digit would be lost. */
function withPlaces(text: string, places: number): string {
  const [whole, fraction = ''] = text.split('.');
  const kept = fraction.slice(0, places).padEnd(places, '0');
  if (/[1-9]/.test(fraction.slice(places))) throw new Error(`${text}: does not fit ${places} decimals`);
  return places > 0 ? `${whole}.${kept}` : whole;
}

/** RFC 3339 with microseconds, as Coinbase and Kraken v2 print times. */
function isoMicros(ms: number): string {
  return new Date(ms).toISOString().replace(/Z$/, '000Z');
}

/** Kraken v1's decimal epoch seconds with microseconds. */
function krakenSeconds(ms: number): string {
  const whole = Math.floor(ms);
  return `${Math.floor(whole / 1000)}.${String(whole % 1000).padStart(3, '0')}000`;
}

function best(side: Side, direction: 'bid' | 'ask', count: number): [number, Level][] {
  const prices = [...side.keys()].sort((a, b) => (direction === 'bid' ? b - a : a - b)).slice(0, count);
  return prices.map((price) => [price, side.get(price) as Level]);
}

/** Writes one venue's frames for each step of the Binance book. */
interface Encoder {
  snapshot(book: Book, timeMs: number): string;
  /** The frames for one diff, given the changes it made and the book before and after. */
  update(changes: readonly Change[], before: Book, after: Book, timeMs: number): string | null;
  trade(trade: BinanceTrade): string;
}

const PRICE_PLACES = 2;
const SIZE_PLACES = 8;
const KRAKEN_DEPTH = 10;

class CoinbaseEncoder implements Encoder {
  private sequence = 0;

  constructor(private readonly product: string) {}

  snapshot(book: Book): string {
    const side = (levels: [number, Level][]) => levels.map(([, level]) => [withPlaces(level.priceText, PRICE_PLACES), withPlaces(level.sizeText, SIZE_PLACES)]);
    this.sequence++;
    return JSON.stringify({ type: 'snapshot', product_id: this.product, bids: side(best(book.bids, 'bid', Infinity)), asks: side(best(book.asks, 'ask', Infinity)) });
  }

  update(changes: readonly Change[], _before: Book, _after: Book, timeMs: number): string | null {
    if (changes.length === 0) return null;
    this.sequence++;
    const rows = changes.map((change) => [
      change.side === 'bid' ? 'buy' : 'sell',
      withPlaces(change.level?.priceText ?? String(change.price), PRICE_PLACES),
      change.level ? withPlaces(change.level.sizeText, SIZE_PLACES) : '0.00000000',
    ]);
    return JSON.stringify({ type: 'l2update', product_id: this.product, changes: rows, time: isoMicros(timeMs) });
  }

  trade(trade: BinanceTrade): string {
    this.sequence++;
    // Binance publishes no order ids on @trade: these are made from the trade id (UUID-shaped, version 4 bits set).
    const orderId = (role: number) => `00000000-0000-4000-800${role}-${trade.tradeId.toString(16).padStart(12, '0')}`;
    return JSON.stringify({
      type: 'match',
      trade_id: trade.tradeId,
      sequence: this.sequence,
      maker_order_id: orderId(1),
      taker_order_id: orderId(2),
      time: isoMicros(trade.timeMs),
      product_id: this.product,
      size: withPlaces(trade.sizeText, SIZE_PLACES),
      price: withPlaces(trade.priceText, PRICE_PLACES),
      side: trade.buyerIsMaker ? 'buy' : 'sell',
    });
  }
}

/** A top-10 entry Kraken sends: the level (null: deleted) and whether it is a republish. */
interface TopEntry {
  readonly price: number;
  readonly level: Level | null;
  readonly republished: boolean;
}

/**
 * The entries of one side that take a depth-limited book from `before` to `after`: changed and
 * new levels, deletes of levels that left the book, and levels that came into the top from
 * below (republished). A level only pushed out of the top is not sent: the client truncates.
 */
function topEntries(direction: 'bid' | 'ask', before: Side, after: Side, changed: ReadonlySet<number>): TopEntry[] {
  const oldTop = new Map(best(before, direction, KRAKEN_DEPTH));
  const newTop = best(after, direction, KRAKEN_DEPTH);
  const entries: TopEntry[] = [];
  for (const [price] of oldTop) if (!after.has(price)) entries.push({ price, level: null, republished: false });
  for (const [price, level] of newTop) {
    const held = oldTop.get(price);
    if (held === level) continue;
    entries.push({ price, level, republished: held === undefined && !changed.has(price) });
  }
  return entries;
}

function topTexts(side: Side, direction: 'bid' | 'ask', price: (level: Level) => string, size: (level: Level) => string): [string[], string[]] {
  const top = best(side, direction, KRAKEN_DEPTH);
  return [top.map(([, level]) => price(level)), top.map(([, level]) => size(level))];
}

function krakenChecksumOf(book: Book, price: (level: Level) => string, size: (level: Level) => string): number {
  const [askPrices, askSizes] = topTexts(book.asks, 'ask', price, size);
  const [bidPrices, bidSizes] = topTexts(book.bids, 'bid', price, size);
  return krakenBookChecksum(askPrices, askSizes, bidPrices, bidSizes);
}

/** Kraken v1 prints prices of this market with 5 decimals ("5541.30000") and volumes with 8. */
const V1_PRICE_PLACES = 5;
const BOOK_CHANNEL_ID = 336;
const TRADE_CHANNEL_ID = 337;

class KrakenV1Encoder implements Encoder {
  constructor(private readonly pair: string) {}

  private readonly price = (level: Level) => withPlaces(level.priceText, V1_PRICE_PLACES);
  private readonly volume = (level: Level) => withPlaces(level.sizeText, SIZE_PLACES);

  snapshot(book: Book): string {
    const side = (levels: [number, Level][]) => levels.map(([, level]) => [this.price(level), this.volume(level), krakenSeconds(level.timeMs)]);
    return JSON.stringify([BOOK_CHANNEL_ID, { as: side(best(book.asks, 'ask', KRAKEN_DEPTH)), bs: side(best(book.bids, 'bid', KRAKEN_DEPTH)) }, `book-${KRAKEN_DEPTH}`, this.pair]);
  }

  update(changes: readonly Change[], before: Book, after: Book, timeMs: number): string | null {
    const changed = (side: 'bid' | 'ask') => new Set(changes.filter((change) => change.side === side).map((change) => change.price));
    const rows = (entries: TopEntry[], oldSide: Side) =>
      entries.map((entry) => {
        if (entry.level === null) {
          const gone = oldSide.get(entry.price) as Level;
          return [this.price(gone), '0.00000000', krakenSeconds(timeMs)];
        }
        const row = [this.price(entry.level), this.volume(entry.level), krakenSeconds(entry.level.timeMs)];
        return entry.republished ? [...row, 'r'] : row;
      });
    const asks = rows(topEntries('ask', before.asks, after.asks, changed('ask')), before.asks);
    const bids = rows(topEntries('bid', before.bids, after.bids, changed('bid')), before.bids);
    if (asks.length === 0 && bids.length === 0) return null;
    const c = String(krakenChecksumOf(after, this.price, this.volume));
    const payloads = asks.length > 0 && bids.length > 0 ? [{ a: asks }, { b: bids, c }] : asks.length > 0 ? [{ a: asks, c }] : [{ b: bids, c }];
    return JSON.stringify([BOOK_CHANNEL_ID, ...payloads, `book-${KRAKEN_DEPTH}`, this.pair]);
  }

  trade(trade: BinanceTrade): string {
    // The taker's side; Binance does not say the taker's order type: "m" (market) is assumed.
    const row = [withPlaces(trade.priceText, V1_PRICE_PLACES), withPlaces(trade.sizeText, SIZE_PLACES), krakenSeconds(trade.timeMs), trade.buyerIsMaker ? 's' : 'b', 'm', ''];
    return JSON.stringify([TRADE_CHANNEL_ID, [row], 'trade', this.pair]);
  }
}

class KrakenV2Encoder implements Encoder {
  constructor(private readonly symbol: string) {}

  private readonly price = (level: Level) => withPlaces(level.priceText, PRICE_PLACES);
  private readonly qty = (level: Level) => withPlaces(level.sizeText, SIZE_PLACES);

  snapshot(book: Book, timeMs: number): string {
    return this.bookMessage(
      'snapshot',
      best(book.bids, 'bid', KRAKEN_DEPTH).map(([price, level]) => ({ price, level, republished: false })),
      best(book.asks, 'ask', KRAKEN_DEPTH).map(([price, level]) => ({ price, level, republished: false })),
      book,
      book,
      timeMs,
    );
  }

  update(changes: readonly Change[], before: Book, after: Book, timeMs: number): string | null {
    const changed = (side: 'bid' | 'ask') => new Set(changes.filter((change) => change.side === side).map((change) => change.price));
    const bids = topEntries('bid', before.bids, after.bids, changed('bid'));
    const asks = topEntries('ask', before.asks, after.asks, changed('ask'));
    if (bids.length === 0 && asks.length === 0) return null;
    return this.bookMessage('update', bids, asks, before, after, timeMs);
  }

  trade(trade: BinanceTrade): string {
    // v2 prints numbers "with full precision": the lexemes are written by hand, as for the book.
    return (
      `{"channel":"trade","type":"update","data":[{"symbol":${JSON.stringify(this.symbol)},"side":"${trade.buyerIsMaker ? 'sell' : 'buy'}",` +
      `"price":${withPlaces(trade.priceText, PRICE_PLACES)},"qty":${withPlaces(trade.sizeText, SIZE_PLACES)},"ord_type":"market","trade_id":${trade.tradeId},` +
      `"timestamp":"${isoMicros(trade.timeMs)}"}]}`
    );
  }

  private bookMessage(type: 'snapshot' | 'update', bids: TopEntry[], asks: TopEntry[], before: Book, after: Book, timeMs: number): string {
    const levels = (entries: TopEntry[], oldSide: Side) =>
      `[${entries
        .map((entry) => {
          const level = entry.level ?? (oldSide.get(entry.price) as Level);
          return `{"price":${this.price(level)},"qty":${entry.level ? this.qty(level) : '0.00000000'}}`;
        })
        .join(',')}]`;
    const checksum = krakenChecksumOf(after, this.price, this.qty);
    return (
      `{"channel":"book","type":"${type}","data":[{"symbol":${JSON.stringify(this.symbol)},"bids":${levels(bids, before.bids)},"asks":${levels(asks, before.asks)},` +
      `"checksum":${checksum},"timestamp":"${isoMicros(timeMs)}"}]}`
    );
  }
}

function encoderFor(target: ConversionTarget, symbol: string): Encoder {
  const venue = venueSymbol(target, symbol);
  if (target === 'coinbase') return new CoinbaseEncoder(venue);
  if (target === 'kraken') return new KrakenV1Encoder(venue);
  return new KrakenV2Encoder(venue);
}

interface DiffFrame {
  readonly ns: string;
  readonly timeMs: number;
  readonly firstUpdateId: number;
  readonly finalUpdateId: number;
  readonly bids: readonly [string, string][];
  readonly asks: readonly [string, string][];
}

export interface ConversionReport {
  /** Lines written, Binance diffs turned into book messages, trades, and why the conversion stopped early (null: it did not). */
  lines: number;
  diffs: number;
  trades: number;
  stoppedAt: string | null;
}

const copy = (side: Side): Side => new Map(side);

/**
 * The target venue's recording lines (`<receive ns> <frame>`) for a Binance recording of one
 * symbol. Stops at the first update-id gap (the recording then needs a new REST snapshot,
 * which it does not hold), saying so in `report.stoppedAt`.
 */
export async function* convertBinanceRecording(paths: readonly string[], target: ConversionTarget, report: ConversionReport): AsyncGenerator<string> {
  const book: Book = { bids: new Map(), asks: new Map() };
  let encoder: Encoder | null = null;
  let lastUpdateId = -1;
  let synced = false;
  /** A snapshot synced before any diff named the symbol: written once the encoder exists. */
  let pendingSnapshot: { ns: string; timeMs: number } | null = null;
  const buffered: DiffFrame[] = [];

  const applyDiff = (diff: DiffFrame): Change[] => {
    const changes: Change[] = [];
    for (const [name, levels] of [
      ['bid', diff.bids],
      ['ask', diff.asks],
    ] as const) {
      const side = name === 'bid' ? book.bids : book.asks;
      for (const [priceText, sizeText] of levels) {
        const price = Number(priceText);
        const held = side.get(price);
        if (Number(sizeText) === 0) {
          if (!held) continue;
          side.delete(price);
          changes.push({ side: name, price, level: null });
        } else if (!held || Number(held.sizeText) !== Number(sizeText)) {
          const level = { priceText, sizeText, timeMs: diff.timeMs };
          side.set(price, level);
          changes.push({ side: name, price, level });
        }
      }
    }
    lastUpdateId = diff.finalUpdateId;
    return changes;
  };

  outer: for (const path of paths) {
    for await (const line of readLines(path)) {
      const space = line.indexOf(' ');
      const ns = line.slice(0, space);
      if (!/^\d+$/.test(ns)) continue;
      const frame = JSON.parse(line.slice(space + 1)) as Record<string, unknown>;
      const receivedMs = Number(ns.slice(0, -6)) / 1000;
      if ('lastUpdateId' in frame) {
        if (synced) continue;
        const body = frame as unknown as { lastUpdateId: number; bids: [string, string][]; asks: [string, string][] };
        for (const [priceText, sizeText] of body.bids) book.bids.set(Number(priceText), { priceText, sizeText, timeMs: receivedMs });
        for (const [priceText, sizeText] of body.asks) book.asks.set(Number(priceText), { priceText, sizeText, timeMs: receivedMs });
        lastUpdateId = body.lastUpdateId;
        // Binance's rule: drop what the snapshot holds; the first diff applied straddles lastUpdateId + 1.
        for (const diff of buffered) {
          if (diff.finalUpdateId <= lastUpdateId) continue;
          if (diff.firstUpdateId > lastUpdateId + 1) {
            report.stoppedAt = `the diffs buffered before the snapshot skip past lastUpdateId ${lastUpdateId}`;
            return;
          }
          applyDiff(diff);
        }
        synced = true;
        if (encoder === null) {
          pendingSnapshot = { ns, timeMs: receivedMs };
          continue;
        }
        yield `${ns} ${encoder.snapshot(book, receivedMs)}`;
        report.lines++;
        continue;
      }
      const data = frame.data as Record<string, unknown> | undefined;
      if (!data || typeof frame.stream !== 'string') continue;
      if (data.e === 'depthUpdate') {
        encoder ??= encoderFor(target, String(data.s));
        const diff: DiffFrame = {
          ns,
          timeMs: Number(data.E),
          firstUpdateId: Number(data.U),
          finalUpdateId: Number(data.u),
          bids: data.b as [string, string][],
          asks: data.a as [string, string][],
        };
        if (!synced) {
          buffered.push(diff);
          continue;
        }
        if (pendingSnapshot !== null) {
          yield `${pendingSnapshot.ns} ${encoder.snapshot(book, pendingSnapshot.timeMs)}`;
          report.lines++;
          pendingSnapshot = null;
        }
        if (diff.finalUpdateId <= lastUpdateId) continue;
        if (diff.firstUpdateId !== lastUpdateId + 1) {
          report.stoppedAt = `update-id gap at ${ns}: U ${diff.firstUpdateId} after u ${lastUpdateId}`;
          break outer;
        }
        const before: Book = { bids: copy(book.bids), asks: copy(book.asks) };
        const changes = applyDiff(diff);
        const text = encoder.update(changes, before, book, diff.timeMs);
        report.diffs++;
        if (text === null) continue;
        yield `${ns} ${text}`;
        report.lines++;
      } else if (data.e === 'trade' && synced && encoder !== null) {
        yield `${ns} ${encoder.trade({ tradeId: Number(data.t), priceText: String(data.p), sizeText: String(data.q), timeMs: Number(data.T), buyerIsMaker: data.m === true })}`;
        report.trades++;
        report.lines++;
      }
    }
  }
}
