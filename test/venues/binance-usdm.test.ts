import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { BookSnapshot, Disconnect, MarketMessage, Rejected, Trade } from '../../src/domain/types.js';
import { binance, binanceUsdm, binanceUsdmVenue } from '../../src/venues/binance.js';
import { binanceRaw } from '../../src/venues/binance-raw.js';
import { venueById } from '../../src/venues/registry.js';

// Shapes from Binance's USDⓈ-M futures docs: "Diff. Book Depth Streams" (e, E, T, s, U, u, pu, b, a),
// "Order Book" GET /fapi/v1/depth (lastUpdateId, E, T, bids, asks) and "Aggregate Trade Streams".
// The sync rule under test is "How to manage a local order book correctly" (USDⓈ-M futures).
const LAST_UPDATE_ID = 1027024;
const restBody = JSON.stringify({
  lastUpdateId: LAST_UPDATE_ID,
  E: 1589436922972,
  T: 1589436922959,
  bids: [
    ['4.00000000', '431.00000000'],
    ['3.99000000', '10.00000000'],
  ],
  asks: [
    ['4.00000200', '12.00000000'],
    ['4.10000000', '3.00000000'],
  ],
});

let eventTime = 1589436923000;
function depth(U: number, u: number, pu: number, b: [string, string][] = [], a: [string, string][] = [], speed = '0ms'): string {
  eventTime += 1;
  const data = { e: 'depthUpdate', E: eventTime, T: eventTime - 2, s: 'BTCUSDT', U, u, pu, b, a };
  return JSON.stringify({ stream: `btcusdt@depth@${speed}`, data });
}
function aggTrade(id: number, price: string, buyerIsMaker: boolean): string {
  const data = { e: 'aggTrade', E: eventTime, s: 'BTCUSDT', a: id, p: price, q: '0.5', f: 100, l: 105, T: eventTime, m: buyerIsMaker };
  return JSON.stringify({ stream: 'btcusdt@aggTrade', data });
}

const snapshotsOf = (messages: readonly MarketMessage[]) => messages.filter((m): m is BookSnapshot => m.type === 'book_snapshot');
const rejectionsOf = (messages: readonly MarketMessage[]) => messages.filter((m): m is Rejected => m.type === 'rejected');

function mapAll(frames: readonly string[]) {
  const mapper = binanceUsdm.createMapper({ levels: 5 });
  const out: MarketMessage[] = [];
  for (const frame of frames) out.push(...mapper.map(frame, 1));
  return { mapper, out };
}

describe('binance-usdm: the futures order-book sync', () => {
  it('drops events with u < lastUpdateId, bridges on U <= lastUpdateId <= u, then follows the pu chain', () => {
    const { mapper, out } = mapAll([
      depth(1027000, 1027010, 1026990, [['3.98', '1']]),
      depth(1027011, 1027030, 1027010, [['4.00000000', '400']]),
      depth(1027031, 1027040, 1027030, [], [['4.00000200', '0']]),
    ]);
    expect(out).toEqual([]);
    expect(mapper.takeResyncRequests()).toEqual(['BTCUSDT']);
    const synced = mapper.mapRestSnapshot!('BTCUSDT', restBody, 2);
    const books = snapshotsOf(synced);
    // The first event (u=1027010 < 1027024) is dropped; the second brackets lastUpdateId.
    expect(books.map((b) => b.seq)).toEqual([1027030, 1027040]);
    expect([...books[0].bids.slice(0, 4)]).toEqual([4, 400, 3.99, 10]);
    // The 3.98 bid came only in the dropped event.
    expect(books[1].bids.length).toBe(4);
    expect([...books[1].asks]).toEqual([4.1, 3]);
    const next = mapper.map(depth(1027041, 1027050, 1027040, [['3.99', '0']]), 3);
    expect(snapshotsOf(next).map((b) => b.seq)).toEqual([1027050]);
  });

  it('resyncs when pu does not equal the previous u: disconnect, resync request, a new snapshot', () => {
    const mapper = binanceUsdm.createMapper({ levels: 5 });
    mapper.map(depth(1027020, 1027030, 1027019), 1);
    mapper.mapRestSnapshot!('BTCUSDT', restBody, 2);
    mapper.takeResyncRequests();
    // pu=1027035 skips the events between 1027030 and 1027035.
    const gap = mapper.map(depth(1027036, 1027045, 1027035, [['3.97', '2']]), 3);
    const disconnect = gap.find((m): m is Disconnect => m.type === 'disconnect');
    expect(disconnect?.reason).toContain('expected pu=1027030, got pu=1027035');
    expect(snapshotsOf(gap)).toEqual([]);
    expect(mapper.takeResyncRequests()).toEqual(['BTCUSDT']);
    // Held trades come out with the book, in arrival order.
    expect(mapper.map(aggTrade(7, '4.0', true), 4)).toEqual([]);
    mapper.map(depth(1027046, 1027060, 1027045, [['3.96', '1']]), 5);
    const newBody = JSON.stringify({ lastUpdateId: 1027050, E: 0, T: 0, bids: [['3.90', '1']], asks: [['4.2', '1']] });
    const resynced = mapper.mapRestSnapshot!('BTCUSDT', newBody, 6);
    // The gap event (u=1027045 < 1027050) is dropped; the next one brackets 1027050.
    expect(resynced.map((m) => m.type)).toEqual(['trade', 'book_snapshot']);
    const book = snapshotsOf(resynced)[0];
    expect(book.seq).toBe(1027060);
    expect([...book.bids]).toEqual([3.96, 1, 3.9, 1]);
    const trade = resynced[0] as Trade;
    expect(trade.aggressor).toBe(-1);
    expect(trade.tradeId).toBe('7');
  });

  it('asks for another snapshot while lastUpdateId is older than the first buffered U', () => {
    const mapper = binanceUsdm.createMapper({ levels: 5 });
    mapper.map(depth(1027025, 1027030, 1027020), 1);
    mapper.takeResyncRequests();
    const out = mapper.mapRestSnapshot!('BTCUSDT', restBody, 2);
    expect(rejectionsOf(out)[0].detail).toContain('older than the first buffered event (U=1027025)');
    expect(mapper.takeResyncRequests()).toEqual(['BTCUSDT']);
  });

  it('a snapshot at U - 1 does not bridge on futures (spot accepts it: U <= lastUpdateId + 1)', () => {
    // Spot would accept U = lastUpdateId + 1; the futures rule wants U <= lastUpdateId <= u.
    const mapper = binanceUsdm.createMapper({ levels: 5 });
    mapper.map(depth(1027025, 1027030, 1027024), 1);
    const out = mapper.mapRestSnapshot!('BTCUSDT', restBody, 2);
    expect(rejectionsOf(out)[0].detail).toContain('older than the first buffered event');
  });

  it('rejects a futures diff event without pu, naming the field', () => {
    const frame = JSON.stringify({ stream: 'btcusdt@depth@100ms', data: { e: 'depthUpdate', E: 1, s: 'BTCUSDT', U: 1, u: 2, b: [], a: [] } });
    const [message] = binanceUsdm.createMapper({ levels: 5 }).map(frame, 1) as Rejected[];
    expect(message.type).toBe('rejected');
    expect(message.detail).toMatch(/^pu: expected a non-negative integer update id/);
  });

  it('reads every futures update speed and leaves spot strict', () => {
    for (const speed of ['0ms', '100ms', '250ms', '500ms']) {
      const { out } = mapAll([depth(1, 2, 0, [], [], speed)]);
      expect(out).toEqual([]);
    }
    const spot = binance.createMapper({ levels: 5 }).map(depth(1, 2, 0), 1) as Rejected[];
    expect(spot[0].detail).toContain('unsupported channel');
  });

  it('registers the venue and speaks the futures endpoints live', () => {
    expect(venueById('binance-usdm')).toBe(binanceUsdm);
    const live = binanceUsdmVenue('aggTrade', '0ms').live!;
    expect(live.connectUrl('wss://fstream.binance.com/', ['BTCUSDT'])).toBe('wss://fstream.binance.com/stream?streams=btcusdt@depth@0ms/btcusdt@aggTrade');
    expect(live.snapshotUrl('https://fapi.binance.com', 'btcusdt')).toBe('https://fapi.binance.com/fapi/v1/depth?symbol=BTCUSDT&limit=1000');
    expect(JSON.parse(live.unsubscribeFrames(['BTCUSDT'])[0])).toMatchObject({ method: 'UNSUBSCRIBE', params: ['btcusdt@depth@0ms', 'btcusdt@aggTrade'] });
  });
});

describe('binance-raw: futures recordings', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'binance-usdm-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('replays `<receive ns> <frame>` lines with the inline /fapi/v1/depth body under the pu rule', async () => {
    const frames = [
      depth(1027000, 1027010, 1026990),
      aggTrade(1, '4.0', false),
      depth(1027011, 1027030, 1027010, [['4.00000000', '400']]),
      restBody,
      depth(1027031, 1027040, 1027030, [['3.99', '11']]),
      depth(1027045, 1027050, 1027044),
    ];
    const path = join(scratch, 'usdm.txt');
    writeFileSync(path, `${frames.map((frame, i) => `${1_700_000_000_000_000_000n + BigInt(i) * 1_000_000n} ${frame}`).join('\n')}\n`);
    const out: MarketMessage[] = [];
    for await (const message of binanceRaw.read([path], { levels: 5 })) out.push(message);
    expect(rejectionsOf(out)).toEqual([]);
    expect(out.map((m) => m.type)).toEqual(['trade', 'book_snapshot', 'book_snapshot', 'disconnect']);
    expect(snapshotsOf(out).map((b) => b.seq)).toEqual([1027030, 1027040]);
    expect((out[3] as Disconnect).reason).toContain('expected pu=1027040, got pu=1027044');
  });
});
