import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkBook } from '../../src/domain/book-check.js';
import type { BookSnapshot, MarketMessage, Rejected, Trade } from '../../src/domain/types.js';
import { binance, binanceVenue } from '../../src/venues/binance.js';
import { parseRecordedLine } from '../../src/venues/lines.js';
import type { RecordedFrame } from '../../src/venues/lines.js';
import type { FrameMapper } from '../../src/venues/types.js';
import { expectSoundTrade } from './sound-trade.js';

// fixtures/binance/README.md: the first 3000 lines of spot_btcusdt_20240808.gz, REST snapshot on line 8.
const fixture = new URL('../../fixtures/binance/spot_btcusdt_20240808.head3000.gz', import.meta.url);
const frames: RecordedFrame[] = gunzipSync(readFileSync(fixture))
  .toString('utf8')
  .split('\n')
  .filter((line) => line.length > 0)
  .map((line) => parseRecordedLine(line) as RecordedFrame);

const SNAPSHOT_LINE = 7; // zero-based
const SNAPSHOT_ID = 50093239218;
const isDepth = (frame: string) => frame.startsWith('{"stream":"btcusdt@depth@100ms"');
const isRestSnapshot = (frame: string) => frame.startsWith('{"lastUpdateId"');

interface DepthData {
  e: string;
  E: number;
  s: string;
  U: number;
  u: number;
  b: [string, string][];
  a: [string, string][];
}
const depthData = (frame: string) => (JSON.parse(frame) as { data: DepthData }).data;

function feed(mapper: FrameMapper, recorded: readonly RecordedFrame[]): MarketMessage[] {
  const out: MarketMessage[] = [];
  for (const { frame, localTs } of recorded) {
    if (isRestSnapshot(frame)) out.push(...mapper.mapRestSnapshot!('BTCUSDT', frame, localTs));
    else out.push(...mapper.map(frame, localTs));
  }
  return out;
}

const snapshotsOf = (messages: readonly MarketMessage[]) => messages.filter((m): m is BookSnapshot => m.type === 'book_snapshot');
const tradesOf = (messages: readonly MarketMessage[]) => messages.filter((m): m is Trade => m.type === 'trade');
/** Everything but books and trades: disconnects and rejections. */
const markersOf = (messages: readonly MarketMessage[]) => messages.filter((m) => m.type !== 'book_snapshot' && m.type !== 'trade');
const isTrade = (frame: string) => frame.startsWith('{"stream":"btcusdt@trade"');

interface TradeData {
  e: string;
  E: number;
  s: string;
  t: number;
  p: string;
  q: string;
  T: number;
  m: boolean;
  M: boolean;
}
const tradeData = (frame: string) => (JSON.parse(frame) as { data: TradeData }).data;

function expectSound(snapshot: BookSnapshot): void {
  for (const value of snapshot.bids) expect(Number.isFinite(value)).toBe(true);
  for (const value of snapshot.asks) expect(Number.isFinite(value)).toBe(true);
  expect(checkBook(snapshot.bids, snapshot.asks)).toBeNull();
}

/** A REST depth body holding every level of `snapshot` (taken from a full-depth mapper). */
function restBodyOf(snapshot: BookSnapshot): string {
  const levels = (side: Float64Array) => {
    const pairs: string[][] = [];
    for (let i = 0; i < side.length; i += 2) pairs.push([String(side[i]), String(side[i + 1])]);
    return pairs;
  };
  return JSON.stringify({ lastUpdateId: snapshot.seq, bids: levels(snapshot.bids), asks: levels(snapshot.asks) });
}

function firstRejected(messages: readonly MarketMessage[]): Rejected {
  expect(messages).toHaveLength(1);
  expect(messages[0].type).toBe('rejected');
  return messages[0] as Rejected;
}

describe('binance mapper: sync from the real recording', () => {
  const depthFrames = frames.filter((f) => isDepth(f.frame));

  it('buffers until the snapshot, starts at the straddling event and emits one sound snapshot per applied event', () => {
    const mapper = binance.createMapper({ levels: 10 });
    const beforeSnapshot = feed(mapper, frames.slice(0, SNAPSHOT_LINE));
    expect(beforeSnapshot).toEqual([]);
    // The first buffered diff event asks the live client for a REST snapshot.
    expect(mapper.takeResyncRequests()).toEqual(['BTCUSDT']);

    const messages = feed(mapper, frames.slice(SNAPSHOT_LINE));
    expect(markersOf(messages)).toEqual([]);
    expect(mapper.takeResyncRequests()).toEqual([]);
    const snapshots = snapshotsOf(messages);
    const applicable = depthFrames.filter((f) => depthData(f.frame).u > SNAPSHOT_ID);
    expect(snapshots).toHaveLength(applicable.length);
    expect(snapshots.length).toBe(depthFrames.length - 2);

    const first = depthData(applicable[0].frame);
    expect(first.U).toBeLessThanOrEqual(SNAPSHOT_ID + 1);
    expect(first.u).toBeGreaterThanOrEqual(SNAPSHOT_ID + 1);
    expect(snapshots[0].seq).toBe(first.u);
    expect(snapshots[0].ts).toBe(first.E);
    // That event was received before the snapshot: it keeps its own receive time.
    expect(snapshots[0].localTs).toBeCloseTo(applicable[0].localTs, 6);
    expect(snapshots[0].localTs).toBeLessThan(frames[SNAPSHOT_LINE].localTs);

    for (let i = 0; i < snapshots.length; i += 1) {
      const snapshot = snapshots[i];
      expect(snapshot.symbol).toBe('BTCUSDT');
      expect(snapshot.bids.length).toBe(20);
      expect(snapshot.asks.length).toBe(20);
      expect(snapshot.seq).toBe(depthData(applicable[i].frame).u);
      expectSound(snapshot);
    }
  });

  it('agrees with every recorded bookTicker that carries the update id of an emitted snapshot', () => {
    const snapshots = snapshotsOf(feed(binance.createMapper({ levels: 10 }), frames));
    const bySeq = new Map(snapshots.map((s) => [s.seq, s]));
    let compared = 0;
    for (const { frame } of frames) {
      if (!frame.startsWith('{"stream":"btcusdt@bookTicker"')) continue;
      const ticker = (JSON.parse(frame) as { data: { u: number; b: string; B: string; a: string; A: string } }).data;
      const snapshot = bySeq.get(ticker.u);
      if (snapshot === undefined) continue; // the ticker's update id falls inside a 100 ms diff batch
      compared += 1;
      expect(snapshot.bids[0]).toBeCloseTo(Number(ticker.b), 8);
      expect(snapshot.bids[1]).toBeCloseTo(Number(ticker.B), 8);
      expect(snapshot.asks[0]).toBeCloseTo(Number(ticker.a), 8);
      expect(snapshot.asks[1]).toBeCloseTo(Number(ticker.A), 8);
    }
    expect(compared).toBeGreaterThanOrEqual(30);
  });

  it('treats update ids going back on a live stream (a restarted or looping source) as a break, not as old news', () => {
    const mapper = binance.createMapper({ levels: 10 });
    const firstPass = feed(mapper, frames);
    expect(snapshotsOf(firstPass).length).toBeGreaterThan(200);
    mapper.takeResyncRequests();
    // The recording again from its start, on the same connection: the diffs before the inline
    // snapshot carry ids far below the book's.
    const replayed = feed(mapper, frames.slice(0, SNAPSHOT_LINE));
    const disconnects = replayed.filter((m) => m.type === 'disconnect');
    expect(disconnects).toHaveLength(1);
    expect((disconnects[0] as { reason: string }).reason).toContain('stream restarted');
    expect(snapshotsOf(replayed)).toEqual([]);
    expect(mapper.takeResyncRequests()).toEqual(['BTCUSDT']);
    // Syncing to the recorded snapshot again gives the first pass's books again.
    const again = [...mapper.mapRestSnapshot!('BTCUSDT', frames[SNAPSHOT_LINE].frame, frames[SNAPSHOT_LINE].localTs), ...feed(mapper, frames.slice(SNAPSHOT_LINE + 1))];
    expect(snapshotsOf(again).map((s) => s.seq)).toEqual(snapshotsOf(firstPass).map((s) => s.seq));
  });

  it('turns a missing depth frame into one disconnect and a resync, and agrees again after a fresh snapshot', () => {
    const droppedIndex = frames.indexOf(depthFrames[100]);
    const resumeIndex = frames.indexOf(depthFrames[120]);
    const freshAt = depthData(depthFrames[115].frame).u;

    const reference = snapshotsOf(feed(binance.createMapper({ levels: 100_000 }), frames));
    const freshBody = restBodyOf(reference.find((s) => s.seq === freshAt)!);
    const referenceTop = snapshotsOf(feed(binance.createMapper({ levels: 10 }), frames));

    const gapped = binance.createMapper({ levels: 10 });
    feed(gapped, frames.slice(0, droppedIndex));
    gapped.takeResyncRequests();
    const duringGap = feed(gapped, [...frames.slice(droppedIndex + 1, resumeIndex + 1)]);
    const disconnects = duringGap.filter((m) => m.type === 'disconnect');
    expect(disconnects).toHaveLength(1);
    expect(disconnects[0]).toMatchObject({ type: 'disconnect', symbol: 'BTCUSDT' });
    expect((disconnects[0] as { reason: string }).reason).toContain('sequence gap');
    expect(snapshotsOf(duringGap)).toEqual([]);
    expect(duringGap.filter((m) => m.type === 'rejected')).toEqual([]);
    expect(gapped.takeResyncRequests()).toEqual(['BTCUSDT']);

    const afterFresh = gapped.mapRestSnapshot!('BTCUSDT', freshBody, frames[resumeIndex].localTs);
    const rest = feed(gapped, frames.slice(resumeIndex + 1));
    const resumed = snapshotsOf([...afterFresh, ...rest]);
    // The buffered events after the fresh snapshot's id are applied straight away.
    expect(snapshotsOf(afterFresh).map((s) => s.seq)).toEqual(depthFrames.slice(116, 121).map((f) => depthData(f.frame).u));
    const expected = referenceTop.filter((s) => s.seq! > freshAt);
    expect(resumed.length).toBe(expected.length);
    for (let i = 0; i < resumed.length; i += 1) {
      expect(resumed[i].seq).toBe(expected[i].seq);
      expect([...resumed[i].bids]).toEqual([...expected[i].bids]);
      expect([...resumed[i].asks]).toEqual([...expected[i].asks]);
    }
    expect(markersOf(rest)).toEqual([]);
  });

  it('refuses a snapshot older than the first buffered event and asks for another', () => {
    const mapper = binance.createMapper({ levels: 10 });
    feed(mapper, frames.slice(0, SNAPSHOT_LINE));
    mapper.takeResyncRequests();
    const firstU = depthData(frames.find((f) => isDepth(f.frame))!.frame).U;
    const real = JSON.parse(frames[SNAPSHOT_LINE].frame) as { lastUpdateId: number };
    const stale = JSON.stringify({ ...real, lastUpdateId: firstU - 2 });
    const refused = firstRejected(mapper.mapRestSnapshot!('BTCUSDT', stale, 1));
    expect(refused.reason).toBe('out_of_order');
    expect(refused.detail).toContain('lastUpdateId');
    expect(refused.detail).toContain(String(firstU));
    expect(mapper.takeResyncRequests()).toEqual(['BTCUSDT']);
    // The real snapshot then syncs the buffered events as usual.
    const synced = feed(mapper, frames.slice(SNAPSHOT_LINE));
    expect(markersOf(synced)).toEqual([]);
    expect(snapshotsOf(synced).length).toBe(depthFrames.length - 2);
  });

  it('accepts a snapshot at exactly U - 1 of the first buffered event (it still straddles)', () => {
    const mapper = binance.createMapper({ levels: 10 });
    const event = depthData(depthFrames[0].frame);
    mapper.map(depthFrames[0].frame, depthFrames[0].localTs);
    const body = JSON.stringify({ lastUpdateId: event.U - 1, bids: [['61000.00', '1.0']], asks: [['62000.00', '1.0']] });
    const messages = mapper.mapRestSnapshot!('BTCUSDT', body, 1);
    expect(snapshotsOf(messages).map((s) => s.seq)).toEqual([event.u]);
  });

  it('ignores a snapshot that is not newer than the live book', () => {
    const mapper = binance.createMapper({ levels: 10 });
    const synced = snapshotsOf(feed(mapper, frames.slice(0, 40)));
    const old = firstRejected(mapper.mapRestSnapshot!('BTCUSDT', frames[SNAPSHOT_LINE].frame, 2));
    expect(old.reason).toBe('out_of_order');
    expect(old.detail).toContain('not newer');
    // The book carries on: the next event still applies.
    const next = frames.slice(40).find((f) => isDepth(f.frame))!;
    const after = snapshotsOf(mapper.map(next.frame, next.localTs));
    expect(after[0].seq).toBe(depthData(next.frame).u);
    expect(after[0].seq).toBeGreaterThan(synced[synced.length - 1].seq!);
  });

  it('asks for another snapshot when one received before any event cannot reach the stream', () => {
    const mapper = binance.createMapper({ levels: 10 });
    const tooOld = JSON.stringify({ lastUpdateId: 5, bids: [['1.0', '1.0']], asks: [['2.0', '1.0']] });
    expect(mapper.mapRestSnapshot!('BTCUSDT', tooOld, 0)).toEqual([]);
    const refused = firstRejected(mapper.map(depthFrames[0].frame, depthFrames[0].localTs));
    expect(refused.reason).toBe('out_of_order');
    expect(refused.detail).toContain('does not reach');
    expect(mapper.takeResyncRequests()).toEqual(['BTCUSDT']);
  });
});

describe('binance mapper: trades from the recording', () => {
  const tradeFrames = frames.filter((f) => isTrade(f.frame));

  it('turns every recorded @trade frame into one trade: id t, trade time T, receive time, price, size', () => {
    const trades = tradesOf(feed(binance.createMapper({ levels: 10 }), frames));
    // fixtures/binance/README.md: 518 trade frames in the excerpt.
    expect(tradeFrames).toHaveLength(518);
    expect(trades).toHaveLength(518);
    trades.forEach((trade, i) => {
      const data = tradeData(tradeFrames[i].frame);
      expect(trade).toMatchObject({ symbol: 'BTCUSDT', tradeId: String(data.t), ts: data.T, price: Number(data.p), size: Number(data.q) });
      expect(trade.localTs).toBeCloseTo(tradeFrames[i].localTs, 6);
      expectSoundTrade(trade);
    });
    // By hand from line 4: t=3735683259, p "61837.63000000", q "0.02000000", T 1723161255342,
    // m true (the buyer rested on the bid, so a seller crossed): a sell aggressor.
    expect(trades[0]).toEqual({
      type: 'trade',
      symbol: 'BTCUSDT',
      ts: 1723161255342,
      localTs: 1723161254087.8965,
      price: 61837.63,
      size: 0.02,
      aggressor: -1,
      tradeId: '3735683259',
    });
  });

  it('signs the aggressor from m, and the sign agrees with where the trade printed against the book', () => {
    const messages = feed(binance.createMapper({ levels: 10 }), frames);
    tradesOf(messages).forEach((trade, i) => expect(trade.aggressor).toBe(tradeData(tradeFrames[i].frame).m ? -1 : 1));
    // Independent check of the sign's meaning: a buyer who crosses pays the ask (above the
    // mid of the latest book), a seller hits the bid. Books are 100 ms apart, so a few trades
    // print against a book that has moved on.
    let mid = Number.NaN;
    let compared = 0;
    let agree = 0;
    for (const message of messages) {
      if (message.type === 'book_snapshot') mid = (message.bids[0] + message.asks[0]) / 2;
      if (message.type === 'trade' && Number.isFinite(mid)) {
        compared += 1;
        if (Math.sign(message.price - mid) === message.aggressor) agree += 1;
      }
    }
    expect(compared).toBe(517);
    expect(agree / compared).toBeGreaterThan(0.95);
  });

  it('emits trades and books in the order they were received', () => {
    const tokens = (messages: readonly MarketMessage[]) => messages.flatMap((m) => (m.type === 'trade' ? [`T${m.tradeId}`] : m.type === 'book_snapshot' ? [`B${m.seq}`] : []));
    const recorded = frames.flatMap(({ frame }) => {
      if (isTrade(frame)) return [`T${tradeData(frame).t}`];
      if (isDepth(frame) && depthData(frame).u > SNAPSHOT_ID) return [`B${depthData(frame).u}`];
      return [];
    });
    expect(tokens(feed(binance.createMapper({ levels: 10 }), frames))).toEqual(recorded);
  });

  it("holds a symbol's trades while its book resyncs and releases them in arrival order with the books", () => {
    const depthFrames = frames.filter((f) => isDepth(f.frame));
    const droppedIndex = frames.indexOf(depthFrames[100]);
    const resumeIndex = frames.indexOf(depthFrames[120]);
    const freshAt = depthData(depthFrames[115].frame).u;
    const freshBody = restBodyOf(snapshotsOf(feed(binance.createMapper({ levels: 100_000 }), frames)).find((s) => s.seq === freshAt)!);

    const mapper = binance.createMapper({ levels: 10 });
    feed(mapper, frames.slice(0, droppedIndex));
    const duringGap = feed(mapper, frames.slice(droppedIndex + 1, resumeIndex + 1));
    const heldFrames = frames.slice(droppedIndex + 1, resumeIndex + 1).filter((f) => isTrade(f.frame));
    // The frame after the dropped one reveals the gap; trades before it still belong to the old book.
    const gapAt = frames.indexOf(depthFrames[101]);
    const beforeGap = frames.slice(droppedIndex + 1, gapAt).filter((f) => isTrade(f.frame));
    expect(heldFrames.length - beforeGap.length).toBeGreaterThan(5);
    expect(tradesOf(duringGap).map((t) => t.tradeId)).toEqual(beforeGap.map((f) => String(tradeData(f.frame).t)));
    expect(duringGap.map((m) => m.type)).toEqual([...beforeGap.map(() => 'trade'), 'disconnect']);

    const resumed = [...mapper.mapRestSnapshot!('BTCUSDT', freshBody, frames[resumeIndex].localTs), ...feed(mapper, frames.slice(resumeIndex + 1))];
    // Every held trade comes out, in arrival order, and no book overtakes a trade received
    // before its diff event: the order is the recorded order of the frames that survive.
    const order = (messages: readonly MarketMessage[]) => messages.flatMap((m) => (m.type === 'trade' ? [`T${m.tradeId}`] : m.type === 'book_snapshot' ? [`B${m.seq}`] : []));
    const recorded = frames.slice(gapAt).flatMap(({ frame }) => {
      if (isTrade(frame)) return [`T${tradeData(frame).t}`];
      if (isDepth(frame) && depthData(frame).u > freshAt) return [`B${depthData(frame).u}`];
      return [];
    });
    expect(order(resumed)).toEqual(recorded);
    expect(mapper.releaseHeld!()).toEqual([]);
  });

  it('hands held trades over when no book comes for them (a dropped connection, the end of a recording)', () => {
    const mapper = binance.createMapper({ levels: 10 });
    const beforeSnapshot = feed(mapper, frames.slice(0, SNAPSHOT_LINE));
    expect(beforeSnapshot).toEqual([]);
    const released = mapper.releaseHeld!();
    expect(released.map((m) => m.type)).toEqual(['trade']);
    expect((released[0] as Trade).tradeId).toBe(String(tradeData(frames[3].frame).t));
    expect(mapper.releaseHeld!()).toEqual([]);
    // The diff events stay held: the snapshot still syncs them.
    expect(snapshotsOf(mapper.mapRestSnapshot!('BTCUSDT', frames[SNAPSHOT_LINE].frame, 1))).toHaveLength(1);
  });

  it('maps the documented @aggTrade payload, bare and in its envelope', () => {
    // developers.binance.com/docs/binance-spot-api-docs/web-socket-streams, "Aggregate Trade Streams".
    const documented = { e: 'aggTrade', E: 1672515782136, s: 'BNBBTC', a: 12345, p: '0.001', q: '100', f: 100, l: 105, T: 1672515782136, m: true, M: true };
    const expected: Trade = { type: 'trade', symbol: 'BNBBTC', ts: 1672515782136, localTs: 7, price: 0.001, size: 100, aggressor: -1, tradeId: '12345' };
    const mapper = binance.createMapper({ levels: 10 });
    expect(mapper.map(JSON.stringify(documented), 7)).toEqual([expected]);
    expect(mapper.map(JSON.stringify({ stream: 'bnbbtc@aggTrade', data: documented }), 7)).toEqual([expected]);
    expect(mapper.map(JSON.stringify({ stream: 'bnbbtc@aggTrade', data: { ...documented, m: false } }), 7)).toEqual([{ ...expected, aggressor: 1 }]);
  });

  const recordedTrade = JSON.parse(tradeFrames[0].frame) as { stream: string; data: Record<string, unknown> };
  const tradeWith = (change: (data: Record<string, unknown>) => void): string => {
    const data = structuredClone(recordedTrade.data);
    change(data);
    return JSON.stringify({ stream: recordedTrade.stream, data });
  };
  const tradeCases: [string, string, Rejected['reason'], string][] = [
    ['a missing price', tradeWith((d) => delete d.p), 'schema', 'p:'],
    ['a non-numeric price', tradeWith((d) => (d.p = 'abc')), 'non_finite', 'p:'],
    ['a NaN price', tradeWith((d) => (d.p = 'NaN')), 'non_finite', 'p:'],
    ['an infinite price', tradeWith((d) => (d.p = '1e400')), 'non_finite', 'p:'],
    ['a zero price', tradeWith((d) => (d.p = '0.00000000')), 'schema', 'p:'],
    ['a zero quantity', tradeWith((d) => (d.q = '0.00000000')), 'non_positive_size', 'q:'],
    ['a negative quantity', tradeWith((d) => (d.q = '-0.1')), 'non_positive_size', 'q:'],
    ['a missing quantity', tradeWith((d) => delete d.q), 'schema', 'q:'],
    ['an empty quantity', tradeWith((d) => (d.q = '')), 'non_finite', 'q:'],
    ['a missing trade time', tradeWith((d) => delete d.T), 'schema', 'T:'],
    ['a trade time as text', tradeWith((d) => (d.T = '1723161255342')), 'schema', 'T:'],
    ['an infinite trade time', tradeWith((d) => (d.T = 1)).replace('"T":1,', '"T":1e400,'), 'non_finite', 'T:'],
    ['a missing maker flag', tradeWith((d) => delete d.m), 'schema', 'm:'],
    ['a maker flag as text', tradeWith((d) => (d.m = 'true')), 'schema', 'm:'],
    ['a missing trade id', tradeWith((d) => delete d.t), 'schema', 't:'],
    ['a negative trade id', tradeWith((d) => (d.t = -1)), 'schema', 't:'],
    ['an event type of another stream', tradeWith((d) => (d.e = 'aggTrade')), 'schema', 'e:'],
    ['a bare trade without s', JSON.stringify({ ...recordedTrade.data, s: undefined }), 'schema', 's:'],
  ];

  it.each(tradeCases)('rejects a trade with %s naming the field, and counts it under its reason', (_label, frame, reason, field) => {
    const rejected = firstRejected(binance.createMapper({ levels: 10 }).map(frame, 1));
    expect(rejected.reason).toBe(reason);
    expect(rejected.detail.startsWith(field)).toBe(true);
  });
});

describe('binance mapper: partial book, non-book and malformed frames', () => {
  // A depth20 payload cut from the recorded REST snapshot (same shape as @depth20@100ms).
  const recorded = JSON.parse(frames[SNAPSHOT_LINE].frame) as { lastUpdateId: number; bids: string[][]; asks: string[][] };
  const partial = { lastUpdateId: recorded.lastUpdateId, bids: recorded.bids.slice(0, 20), asks: recorded.asks.slice(0, 20) };

  it('maps combined partial-book frames with the symbol from the stream name', () => {
    const mapper = binance.createMapper({ levels: 5 });
    const messages = mapper.map(JSON.stringify({ stream: 'btcusdt@depth20@100ms', data: partial }), 123.5);
    const [snapshot] = snapshotsOf(messages);
    expect(messages).toHaveLength(1);
    expect(snapshot).toMatchObject({ symbol: 'BTCUSDT', seq: SNAPSHOT_ID, ts: 123.5, localTs: 123.5 });
    expect([...snapshot.bids]).toEqual(partial.bids.slice(0, 5).flat().map(Number));
    expect([...snapshot.asks]).toEqual(partial.asks.slice(0, 5).flat().map(Number));
  });

  it('takes the symbol of a bare /ws/<symbol>@depthN frame from the options, and rejects it when unknown', () => {
    const bare = JSON.stringify(partial);
    const single = snapshotsOf(binance.createMapper({ levels: 10, symbols: ['btcusdt'] }).map(bare, 1));
    expect(single[0].symbol).toBe('BTCUSDT');
    expect(single[0].bids.length).toBe(20);
    const unknown = firstRejected(binance.createMapper({ levels: 10 }).map(bare, 1));
    expect(unknown.reason).toBe('unknown_symbol');
    expect(unknown.detail).toContain('symbol');
  });

  it('treats a bare depth body as the REST snapshot once a diff stream runs for the single symbol', () => {
    const mapper = binance.createMapper({ levels: 10, symbols: ['BTCUSDT'] });
    const messages: MarketMessage[] = [];
    for (const { frame, localTs } of frames.slice(0, 40)) messages.push(...mapper.map(frame, localTs));
    const viaRest = snapshotsOf(feed(binance.createMapper({ levels: 10 }), frames.slice(0, 40)));
    expect(snapshotsOf(messages)).toEqual(viaRest);
  });

  it('maps bookTicker, subscription acks and other frames with neither book nor trade to nothing', () => {
    const mapper = binance.createMapper({ levels: 10 });
    const ticker = frames.find((f) => f.frame.includes('@bookTicker'))!.frame;
    const bareTicker = JSON.stringify((JSON.parse(ticker) as { data: unknown }).data);
    const kline = '{"stream":"bnbbtc@kline_1m","data":{"e":"kline","E":1672515782136,"s":"BNBBTC","k":{}}}';
    for (const frame of [ticker, bareTicker, kline, '{"result":null,"id":1}', '{"stream":"!ticker@arr","data":[]}']) {
      expect(mapper.map(frame, 1)).toEqual([]);
    }
    expect(mapper.takeResyncRequests()).toEqual([]);
    expect(firstRejected(mapper.map('{"stream":"btcusdt@kaboom","data":{}}', 1)).reason).toBe('unsupported_message');
    expect(firstRejected(mapper.map('{"e":"outboundAccountPosition"}', 1)).reason).toBe('unsupported_message');
    const venueError = firstRejected(mapper.map('{"code":2,"msg":"Invalid request"}', 1));
    expect(venueError.detail).toContain('Invalid request');
  });

  const depth = JSON.parse(frames.find((f) => isDepth(f.frame))!.frame) as { stream: string; data: DepthData };
  const mutated = (change: (data: Record<string, unknown>) => void): string => {
    const data = structuredClone(depth.data) as unknown as Record<string, unknown>;
    change(data);
    return JSON.stringify({ stream: depth.stream, data });
  };
  const cases: [string, string, Rejected['reason'], string][] = [
    ['truncated JSON', depthFrames()[0].slice(0, 80), 'malformed_json', 'frame'],
    ['a JSON array', '[1,2]', 'schema', 'frame'],
    ['missing U', mutated((d) => delete d.U), 'schema', 'U:'],
    ['non-numeric u', mutated((d) => (d.u = '50093239202')), 'schema', 'u:'],
    ['E as a string', mutated((d) => (d.E = 'now')), 'schema', 'E:'],
    ['b not an array', mutated((d) => (d.b = {})), 'schema', 'b:'],
    ['a level that is not a pair', mutated((d) => ((d.a as unknown[])[1] = ['1.0'])), 'schema', 'a[1]:'],
    ['a non-numeric price', mutated((d) => ((d.b as string[][])[0][0] = 'abc')), 'non_finite', 'b[0][0]'],
    ['a NaN price', mutated((d) => ((d.a as string[][])[2][0] = 'NaN')), 'non_finite', 'a[2][0]'],
    ['an empty quantity', mutated((d) => ((d.b as string[][])[1][1] = '')), 'non_finite', 'b[1][1]'],
    ['a negative quantity', mutated((d) => ((d.a as string[][])[0][1] = '-2')), 'non_positive_size', 'a[0][1]'],
    ['a zero price', mutated((d) => ((d.b as string[][])[0][0] = '0.00')), 'schema', 'b[0][0]'],
    ['U after u', mutated((d) => (d.U = (d.u as number) + 1)), 'out_of_order', 'U:'],
    ['a bare depthUpdate without s', JSON.stringify({ ...depth.data, s: undefined }), 'schema', 's:'],
    ['a stream name without @', JSON.stringify({ stream: 'btcusdt', data: depth.data }), 'schema', 'stream'],
  ];
  function depthFrames(): string[] {
    return frames.filter((f) => isDepth(f.frame)).map((f) => f.frame);
  }

  it.each(cases)('rejects %s naming the field', (_label, frame, reason, field) => {
    const mapper = binance.createMapper({ levels: 10 });
    const rejected = firstRejected(mapper.map(frame, 1));
    expect(rejected.reason).toBe(reason);
    expect(rejected.detail).toContain(field);
    expect(rejected.sample.length).toBeGreaterThan(0);
  });

  it('rejects malformed REST snapshot bodies naming the field', () => {
    const mapper = binance.createMapper({ levels: 10 });
    expect(firstRejected(mapper.mapRestSnapshot!('BTCUSDT', '{"lastUpdateId":', 1)).reason).toBe('malformed_json');
    const noId = firstRejected(mapper.mapRestSnapshot!('BTCUSDT', JSON.stringify({ bids: [], asks: [] }), 1));
    expect(noId.detail).toContain('lastUpdateId');
    const zero = firstRejected(mapper.mapRestSnapshot!('BTCUSDT', JSON.stringify({ ...partial, asks: [['62000.0', '0']] }), 1));
    expect(zero).toMatchObject({ reason: 'non_positive_size', symbol: 'BTCUSDT' });
    expect(zero.detail).toContain('asks[0][1]');
  });
});

describe('binance mapper: never throws, never emits a non-finite book', () => {
  const realFrames = frames.slice(0, 200).map((f) => f.frame);

  /** A mapper already synced on the recording, so random depth events can reach the book. */
  function syncedMapper(): { mapper: FrameMapper; nextId: number } {
    const mapper = binance.createMapper({ levels: 10 });
    const synced = snapshotsOf(feed(mapper, frames.slice(0, 12)));
    return { mapper, nextId: synced[synced.length - 1].seq! + 1 };
  }

  function expectOnlySoundOutput(messages: readonly MarketMessage[]): void {
    for (const message of messages) {
      if (message.type === 'book_snapshot') expectSound(message);
      else if (message.type === 'trade') expectSoundTrade(message);
      else if (message.type === 'rejected') expect(message.detail.length).toBeGreaterThan(0);
    }
  }

  // Bid prices below and ask prices above the recorded touch (61837.63 / 61837.64), so that valid
  // events keep the book uncrossed; junk is mixed in at a low rate.
  const junk = fc.oneof(fc.constantFrom('-1', 'NaN', 'Infinity', '1e400', '', ' ', '0x10'), fc.jsonValue());
  const decimalIn = (min: number, max: number) => fc.double({ min, max, noNaN: true }).map((v) => v.toFixed(2));
  const quantity = fc.oneof({ weight: 15, arbitrary: decimalIn(0.01, 5) }, { weight: 4, arbitrary: fc.constant('0.00000000') }, { weight: 1, arbitrary: junk });
  const levelsArbitrary = (maxLength: number, minPrice = 61000, maxPrice = 62500) =>
    fc.array(
      fc.oneof(
        { weight: 30, arbitrary: fc.tuple(decimalIn(minPrice, maxPrice), quantity) },
        { weight: 1, arbitrary: fc.tuple(junk, quantity) },
        { weight: 1, arbitrary: fc.jsonValue() },
      ),
      { maxLength },
    );
  const depthEventArbitrary = (nextId: number, bids: fc.Arbitrary<unknown[]>, asks = bids) =>
    fc.record({
      e: fc.constant('depthUpdate'),
      E: fc.oneof({ weight: 9, arbitrary: fc.constant(1723161255408) }, { weight: 1, arbitrary: fc.jsonValue() }),
      s: fc.oneof({ weight: 9, arbitrary: fc.constant('BTCUSDT') }, { weight: 1, arbitrary: fc.jsonValue() }),
      U: fc.oneof({ weight: 8, arbitrary: fc.constant(nextId) }, fc.integer({ min: 0, max: nextId + 5 }), fc.jsonValue()),
      u: fc.oneof({ weight: 8, arbitrary: fc.constant(nextId) }, fc.integer({ min: nextId, max: nextId + 5 }), fc.jsonValue()),
      b: fc.oneof({ weight: 9, arbitrary: bids }, { weight: 1, arbitrary: fc.jsonValue() }),
      a: fc.oneof({ weight: 9, arbitrary: asks }, { weight: 1, arbitrary: fc.jsonValue() }),
    });

  it('applies random depth events to a synced book without ever emitting an unsound snapshot', () => {
    const { nextId } = syncedMapper();
    let emitted = 0;
    fc.assert(
      fc.property(fc.array(depthEventArbitrary(nextId, levelsArbitrary(6, 61000, 61837.6), levelsArbitrary(6, 61837.7, 62500)), { minLength: 1, maxLength: 3 }), (events) => {
        const { mapper } = syncedMapper();
        for (const data of events) {
          const messages = mapper.map(JSON.stringify({ stream: 'btcusdt@depth@100ms', data }), 1);
          expectOnlySoundOutput(messages);
          emitted += snapshotsOf(messages).length;
        }
      }),
      { numRuns: 300 },
    );
    // The generator is biased towards valid, contiguous events so the emitting path is exercised.
    expect(emitted).toBeGreaterThan(50);
  });

  it('handles arbitrary strings', () => {
    const { mapper } = syncedMapper();
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (text) => {
        expectOnlySoundOutput(mapper.map(text, 1));
        expectOnlySoundOutput(mapper.mapRestSnapshot!('BTCUSDT', text, 1));
      }),
      { numRuns: 400 },
    );
  });

  it('handles truncated prefixes of real frames', () => {
    fc.assert(
      fc.property(fc.nat({ max: realFrames.length - 1 }), fc.double({ min: 0, max: 1, noNaN: true }), (index, cut) => {
        const { mapper } = syncedMapper();
        const frame = realFrames[index];
        const prefix = frame.slice(0, Math.floor(cut * frame.length));
        const messages = mapper.map(prefix, 1);
        expectOnlySoundOutput(messages);
        if (prefix.length < frame.length && messages.length > 0) expect(messages[0].type).toBe('rejected');
      }),
      { numRuns: 300 },
    );
  });

  it('handles random JSON values, bare, in envelopes and as depth-event fields', () => {
    const { mapper, nextId } = syncedMapper();
    const levels = levelsArbitrary(8);
    const depthEvent = depthEventArbitrary(nextId, levels);
    const stream = fc.constantFrom('btcusdt@depth@100ms', 'btcusdt@depth', 'btcusdt@depth10', 'btcusdt@bookTicker', 'btcusdt@trade', 'btcusdt@aggTrade', 'x@y', '');
    const tradeEvent = fc.record({
      e: fc.constantFrom('trade', 'aggTrade'),
      s: fc.oneof({ weight: 9, arbitrary: fc.constant('BTCUSDT') }, { weight: 1, arbitrary: fc.jsonValue() }),
      t: fc.oneof(fc.nat(), fc.jsonValue()),
      a: fc.oneof(fc.nat(), fc.jsonValue()),
      p: fc.oneof(decimalIn(0, 70000), junk),
      q: fc.oneof(quantity, junk),
      T: fc.oneof(fc.constant(1723161255342), fc.jsonValue()),
      m: fc.oneof(fc.boolean(), fc.jsonValue()),
    });
    const frame = fc.oneof(
      fc.jsonValue().map((value) => JSON.stringify(value)),
      fc.tuple(stream, fc.jsonValue()).map(([name, data]) => JSON.stringify({ stream: name, data })),
      depthEvent.map((data) => JSON.stringify({ stream: 'btcusdt@depth@100ms', data })),
      depthEvent.map((data) => JSON.stringify(data)),
      tradeEvent.map((data) => JSON.stringify({ stream: `btcusdt@${data.e}`, data })),
      tradeEvent.map((data) => JSON.stringify(data)),
      fc.record({ lastUpdateId: fc.jsonValue(), bids: levels, asks: levels }).map((body) => JSON.stringify(body)),
    );
    fc.assert(
      fc.property(frame, (text) => {
        expectOnlySoundOutput(mapper.map(text, 1));
      }),
      { numRuns: 600 },
    );
    expectOnlySoundOutput(mapper.mapRestSnapshot!('BTCUSDT', JSON.stringify({ lastUpdateId: 1e300, bids: 'x' }), 1));
  });
});

describe('binance live protocol', () => {
  const live = binance.live!;

  it('builds the combined-stream URL, the REST snapshot URL and no app-level ping', () => {
    expect(live.venue).toBe('binance');
    expect(live.connectUrl('wss://stream.binance.com:9443', ['BTCUSDT', 'ethusdt'])).toBe(
      'wss://stream.binance.com:9443/stream?streams=btcusdt@depth@100ms/btcusdt@trade/ethusdt@depth@100ms/ethusdt@trade',
    );
    expect(live.connectUrl('ws://127.0.0.1:8080/', ['btcusdt'])).toBe('ws://127.0.0.1:8080/stream?streams=btcusdt@depth@100ms/btcusdt@trade');
    expect(live.snapshotUrl('https://api.binance.com', 'btcusdt')).toBe('https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=1000');
    expect(live.subscribeFrames(['btcusdt'])).toEqual([]);
    expect(live.resyncFrames(['btcusdt'])).toEqual([]);
    expect(live.pingFrame()).toBeNull();
    const [unsubscribe] = live.unsubscribeFrames(['BTCUSDT']);
    expect(JSON.parse(unsubscribe)).toMatchObject({ method: 'UNSUBSCRIBE', params: ['btcusdt@depth@100ms', 'btcusdt@trade'] });
  });

  it('subscribes @aggTrade instead, or depth alone, when asked', () => {
    expect(binanceVenue('aggTrade').live!.connectUrl('wss://stream.binance.com:9443', ['BTCUSDT'])).toBe(
      'wss://stream.binance.com:9443/stream?streams=btcusdt@depth@100ms/btcusdt@aggTrade',
    );
    expect(binanceVenue(null).live!.connectUrl('wss://stream.binance.com:9443', ['BTCUSDT'])).toBe('wss://stream.binance.com:9443/stream?streams=btcusdt@depth@100ms');
  });

  it('forgets books and pending resync requests on reset', () => {
    const mapper = binance.createMapper({ levels: 10 });
    feed(mapper, frames.slice(0, 40));
    mapper.map(frames.find((f) => isDepth(f.frame))!.frame, 1); // an old event: ignored, still synced
    mapper.reset();
    const next = frames.slice(40).find((f) => isDepth(f.frame))!;
    expect(mapper.map(next.frame, next.localTs)).toEqual([]); // buffered: no book until a new snapshot
    expect(mapper.takeResyncRequests()).toEqual(['BTCUSDT']);
  });
});
