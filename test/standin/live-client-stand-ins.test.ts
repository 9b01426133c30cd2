// The live client against the Coinbase, Kraken v1 and Kraken v2 stand-ins, each serving its
// recording of fixtures/ (the real Binance excerpt re-encoded, see convert-binance.test.ts):
// the books it ends on are the ones the venue's mapper builds from the same frames, a missed
// update (Kraken: a failed checksum) is resynced by resubscribing the book, and a dropped
// connection reconnects and recovers the book.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import type { BookSnapshot, MarketMessage, Trade } from '../../src/domain/types.js';
import { createLiveFeed, type LiveFeed } from '../../src/ingest/live-client.js';
import { startFeedServer, type FeedServer, type StandInVenue } from '../../src/standin/server.js';
import { binance } from '../../src/venues/binance.js';
import { coinbase } from '../../src/venues/coinbase.js';
import { kraken } from '../../src/venues/kraken.js';
import { krakenV2 } from '../../src/venues/kraken-v2.js';
import { parseRecordedLine } from '../../src/venues/lines.js';
import type { Venue } from '../../src/venues/types.js';
import { collect, until } from '../ingest/fake-exchange.js';

const fixture = (path: string) => fileURLToPath(new URL(`../../fixtures/${path}`, import.meta.url));
const LEVELS = 10;

interface Case {
  readonly id: StandInVenue;
  readonly venue: Venue;
  readonly symbol: string;
  readonly recording: string;
  /** Whether a client can see a missed update (Kraken's checksum); Coinbase's level2 carries nothing to see it by. */
  readonly detectsMissedUpdates: boolean;
}

const cases: Case[] = [
  { id: 'coinbase', venue: coinbase, symbol: 'BTC-USDT', recording: fixture('coinbase/btc-usdt_from-binance_20240808.gz'), detectsMissedUpdates: false },
  { id: 'kraken', venue: kraken, symbol: 'XBT/USDT', recording: fixture('kraken/xbt-usdt_book10_v1_from-binance_20240808.gz'), detectsMissedUpdates: true },
  { id: 'kraken-v2', venue: krakenV2, symbol: 'BTC/USDT', recording: fixture('kraken/btc-usdt_book10_v2_from-binance_20240808.gz'), detectsMissedUpdates: true },
];

const books = (messages: readonly MarketMessage[]) => messages.filter((m): m is BookSnapshot => m.type === 'book_snapshot');
const trades = (messages: readonly MarketMessage[]) => messages.filter((m): m is Trade => m.type === 'trade');
const sides = (book: BookSnapshot) => [[...book.bids], [...book.asks]];
// Lossless: every book the stand-in causes is compared, none conflated.
const options = {
  now: () => 1_723_161_000_000,
  levels: LEVELS,
  pingIntervalMs: 0,
  maxPendingPerSymbol: 5_000,
  maxQueued: 20_000,
  backoff: { initialMs: 10, maxMs: 20, jitter: 'none' as const },
};

/** The recording's frames through a fresh mapper: what a client that saw all of them holds. */
function replay(venue: Venue, recording: string): MarketMessage[] {
  const mapper = venue.createMapper({ levels: LEVELS });
  const out: MarketMessage[] = [];
  for (const line of gunzipSync(readFileSync(recording)).toString('utf8').split('\n')) {
    const recorded = parseRecordedLine(line);
    if (recorded) out.push(...mapper.map(recorded.frame, recorded.localTs));
  }
  return out;
}

/** A stand-in of the case at 20 times the recorded pace and a live client of it, once 30 books came. */
async function streamUnderWay({ id, venue, symbol, recording }: Case): Promise<{ items: MarketMessage[]; standIn: FeedServer; client: LiveFeed }> {
  const standIn = await startFeedServer({ venue: id, recording, speed: 20, loop: false });
  server = standIn;
  const client = createLiveFeed(venue, { url: standIn.wsUrl, symbols: [symbol] }, options);
  feed = client;
  const { items } = collect(client.messages());
  await until(() => books(items).length >= 30, 'the stream under way');
  return { items, standIn, client };
}

/** Whether `items` hold the recording's last book (every book has its own venue time here). */
const reachedLastBook = (standIn: Case) => {
  const lastBook = books(replay(standIn.venue, standIn.recording)).at(-1)!;
  return { lastBook, reached: (items: readonly MarketMessage[]) => books(items).some((book) => book.ts === lastBook.ts) };
};

let server: FeedServer | null = null;
let feed: LiveFeed | null = null;
afterEach(async () => {
  await feed?.close();
  await server?.close();
  feed = null;
  server = null;
});

describe.each(cases)('live client against the $id stand-in', (standIn) => {
  const { id, venue, symbol, recording } = standIn;
  const expected = replay(venue, recording);
  const expectedBooks = books(expected);
  const { lastBook, reached: endsOnLastBook } = reachedLastBook(standIn);

  it('gets every book the recording implies, in order, and its trades', async () => {
    server = await startFeedServer({ venue: id, recording, speed: 'max', loop: false });
    feed = createLiveFeed(venue, { url: server.wsUrl, symbols: [symbol] }, options);
    const { items } = collect(feed.messages());
    const key = (t: Trade) => t.tradeId ?? `${t.ts} ${t.price} ${t.size} ${t.aggressor}`;
    const all = trades(expected).map(key);
    await until(() => books(items).length === expectedBooks.length, `all ${expectedBooks.length} books`);
    await until(() => trades(items).some((t) => key(t) === all.at(-1)), 'the last recorded trade');
    expect(books(items).map(sides)).toEqual(expectedBooks.map(sides));
    expect(items.filter((m) => m.type === 'rejected' || m.type === 'disconnect')).toEqual([]);
    // Kraken v1 subscribes trades in a second request, so the first trades may pass before it lands.
    const live = trades(items).map(key);
    expect(live.length).toBeGreaterThan(all.length - 20);
    expect(live).toEqual(all.slice(all.length - live.length));
    expect(server.stats.snapshotsSent).toBe(1);
  });

  it('reconnects after the connection drops and rebuilds the book from a fresh snapshot', async () => {
    const { items, standIn: running, client } = await streamUnderWay(standIn);
    expect(running.dropConnections()).toBe(1);
    await until(() => client.stats.connects === 2, 'the reconnect');
    const afterDrop = items.length;
    await until(() => endsOnLastBook(items.slice(afterDrop)), 'the last recorded book after the reconnect');
    expect(sides(books(items).at(-1)!)).toEqual(sides(lastBook));
    expect(items.slice(0, afterDrop).some((m) => m.type === 'disconnect')).toBe(true);
    expect(running.stats).toMatchObject({ droppedByFault: 1, connections: 2, snapshotsSent: 2 });
  });
});

describe.each(cases.filter((c) => c.detectsMissedUpdates))('live client against the $id stand-in, a missed update', (standIn) => {
  const { lastBook, reached: endsOnLastBook } = reachedLastBook(standIn);

  it('resubscribes the book after a missed update fails the checksum, and ends on the recorded book', async () => {
    const { items, standIn: running, client } = await streamUnderWay(standIn);
    running.skipBookUpdates(1);
    await until(() => endsOnLastBook(items), 'the last recorded book');
    expect(sides(books(items).at(-1)!)).toEqual(sides(lastBook));
    expect(running.stats.skippedByFault).toBe(1);
    expect(items.filter((m) => m.type === 'rejected').map((m) => m.type === 'rejected' && m.reason)).toEqual(['checksum_mismatch']);
    expect(items.filter((m) => m.type === 'disconnect')).toHaveLength(1);
    expect(running.stats.snapshotsSent).toBe(2);
    expect(client.stats.connects).toBe(1);
  });
});

describe.each(cases.filter((c) => !c.detectsMissedUpdates))('live client against the $id stand-in, a missed update', (standIn) => {
  const { lastBook, reached: endsOnLastBook } = reachedLastBook(standIn);

  it('cannot see a missed update (level2 carries no sequence), so only a reconnect restores the recorded book', async () => {
    const { items, standIn: running, client } = await streamUnderWay(standIn);
    const resyncsBefore = client.stats.resyncs;
    running.skipBookUpdates(1);
    await until(() => running.stats.skippedByFault === 1, 'the update left out');
    const booksAfterSkip = books(items).length;
    await until(() => books(items).length >= booksAfterSkip + 10, 'more updates after the missed one');
    // Nothing told the client: no resubscription, no fresh snapshot, the same connection.
    expect(client.stats.resyncs).toBe(resyncsBefore);
    expect(running.stats.snapshotsSent).toBe(1);
    expect(items.some((m) => m.type === 'disconnect')).toBe(false);
    running.dropConnections();
    await until(() => client.stats.connects === 2, 'the reconnect');
    const afterDrop = items.length;
    await until(() => endsOnLastBook(items.slice(afterDrop)), 'the last recorded book after the reconnect');
    expect(sides(books(items).at(-1)!)).toEqual(sides(lastBook));
  });
});

describe('live client against a looping coinbase stand-in', () => {
  it('gets the recorded snapshot again when the recording starts over, and trades whose ids move on', async () => {
    const { symbol, recording, venue } = cases[0];
    const recordedTrades = trades(replay(venue, recording)).length;
    server = await startFeedServer({ venue: 'coinbase', recording, speed: 'max', loop: true });
    feed = createLiveFeed(venue, { url: server.wsUrl, symbols: [symbol] }, options);
    const { items } = collect(feed.messages());
    await until(() => trades(items).length > recordedTrades + 10, 'trades of the second pass');
    await feed.close();
    expect(server.stats.loops).toBeGreaterThanOrEqual(1);
    expect(server.stats.snapshotsSent).toBeGreaterThanOrEqual(2);
    expect(items.filter((m) => m.type === 'rejected')).toEqual([]);
    const ids = trades(items).map((t) => Number(t.tradeId));
    expect(ids.every((id, i) => i === 0 || id > ids[i - 1])).toBe(true);
  });
});

describe('live client against the binance stand-in, faults', () => {
  const recording = fixture('binance/spot_btcusdt_20240808.head3000.gz');

  it('refetches the REST snapshot after a missed diff, and reconnects after a drop', async () => {
    server = await startFeedServer({ venue: 'binance', recording, speed: 20, loop: false });
    feed = createLiveFeed(binance, { url: server.wsUrl, restUrl: server.url, symbols: ['BTCUSDT'] }, options);
    const { items } = collect(feed.messages());
    await until(() => books(items).length >= 30, 'the stream under way');
    server.skipBookUpdates(1);
    await until(() => feed!.stats.snapshotFetches === 2, 'the REST resync after the gap');
    const afterResync = books(items).length;
    await until(() => books(items).length > afterResync + 5, 'books after the resync');
    expect(items.filter((m) => m.type === 'disconnect')).toHaveLength(1);
    expect(feed.stats.connects).toBe(1);
    server.dropConnections();
    await until(() => feed!.stats.connects === 2 && feed!.stats.synced.BTCUSDT === true, 'the reconnect and its sync');
    expect(server.stats).toMatchObject({ skippedByFault: 1, droppedByFault: 1, connections: 2 });
  });
});
