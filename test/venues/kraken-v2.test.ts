import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { BookSnapshot, Disconnect, MarketMessage, Rejected, Trade } from '../../src/domain/types.js';
import { krakenV2, krakenV2Venue } from '../../src/venues/kraken-v2.js';
import { venueById } from '../../src/venues/registry.js';

// A real v2 `book` snapshot of USDG/USD recorded from wss://ws.kraken.com/v2 (published as a test
// vector in a public repository), with the checksum Kraken sent for it.
const REAL_SNAPSHOT =
  '{"channel":"book","type":"snapshot","data":[{"symbol":"USDG/USD","bids":[{"price":0.9999,"qty":653645.22211},{"price":0.9998,"qty":21389.49905},{"price":0.9997,"qty":311181.88799},{"price":0.9996,"qty":935949.00167},{"price":0.9995,"qty":5.25262},{"price":0.9993,"qty":15819.07585},{"price":0.9990,"qty":28045.34609},{"price":0.9985,"qty":35372.52894},{"price":0.9900,"qty":10.07905},{"price":0.9835,"qty":240.14072}],"asks":[{"price":1.0000,"qty":382506.65119},{"price":1.0001,"qty":242215.90771},{"price":1.0002,"qty":357570.43200},{"price":1.0003,"qty":936797.08901},{"price":1.0004,"qty":10578.85361},{"price":1.0005,"qty":83656.47123},{"price":1.0007,"qty":15819.07585},{"price":1.0010,"qty":23655.03579},{"price":1.0015,"qty":35372.52894},{"price":1.0024,"qty":5000.00000}],"checksum":3225719247,"timestamp":"2026-09-17T06:16:44.386754Z"}]}';

// The guide's formatting, written out by hand: '.' removed, then the leading zeros.
const ASKS_TEXT =
  '10000' +
  '38250665119' +
  '10001' +
  '24221590771' +
  '10002' +
  '35757043200' +
  '10003' +
  '93679708901' +
  '10004' +
  '1057885361' +
  '10005' +
  '8365647123' +
  '10007' +
  '1581907585' +
  '10010' +
  '2365503579' +
  '10015' +
  '3537252894' +
  '10024' +
  '500000000';
// After the update below: 0.9999 deleted, 0.9994 (qty 1.50000) inserted.
const BIDS_AFTER_UPDATE =
  '9998' +
  '2138949905' +
  '9997' +
  '31118188799' +
  '9996' +
  '93594900167' +
  '9995' +
  '525262' +
  '9994' +
  '150000' +
  '9993' +
  '1581907585' +
  '9990' +
  '2804534609' +
  '9985' +
  '3537252894' +
  '9900' +
  '1007905' +
  '9835' +
  '24014072';

function update(bids: string, checksum: number, asks = '[]'): string {
  return `{"channel":"book","type":"update","data":[{"symbol":"USDG/USD","bids":${bids},"asks":${asks},"checksum":${checksum},"timestamp":"2026-09-17T06:16:45.000001Z"}]}`;
}

const books = (messages: readonly MarketMessage[]) => messages.filter((m): m is BookSnapshot => m.type === 'book_snapshot');

describe('kraken-v2 book', () => {
  it('accepts the recorded snapshot: its checksum matches the exact lexemes', () => {
    const [book] = krakenV2.createMapper({ levels: 10 }).map(REAL_SNAPSHOT, 5) as BookSnapshot[];
    expect(book.type).toBe('book_snapshot');
    expect(book.symbol).toBe('USDG/USD');
    expect(book.ts).toBe(Date.parse('2026-09-17T06:16:44.386Z'));
    expect([...book.bids.slice(0, 2)]).toEqual([0.9999, 653645.22211]);
    expect([...book.asks.slice(-2)]).toEqual([1.0024, 5000]);
  });

  it('applies an update, deletes on qty 0 and checks the CRC32 of the top 10', () => {
    const mapper = krakenV2.createMapper({ levels: 10 });
    mapper.map(REAL_SNAPSHOT, 1);
    const checksum = crc32(ASKS_TEXT + BIDS_AFTER_UPDATE) >>> 0;
    const out = mapper.map(update('[{"price":0.9999,"qty":0},{"price":0.9994,"qty":1.50000}]', checksum), 2);
    const [book] = books(out);
    expect(out).toHaveLength(1);
    expect([...book.bids.slice(0, 2)]).toEqual([0.9998, 21389.49905]);
    expect(book.bids[8]).toBe(0.9994);
    expect(mapper.takeResyncRequests()).toEqual([]);
  });

  it('truncates to the subscribed depth: a level pushed out is gone without a delete', () => {
    const mapper = krakenV2.createMapper({ levels: 25 });
    mapper.map(REAL_SNAPSHOT, 1);
    // 0.9994 is inserted and nothing deleted: 11 bids, the 11th (0.9835) falls out of depth 10.
    const bids = '9999' + '65364522211' + BIDS_AFTER_UPDATE.slice(0, BIDS_AFTER_UPDATE.indexOf('9835'));
    const out = mapper.map(update('[{"price":0.9994,"qty":1.50000}]', crc32(ASKS_TEXT + bids) >>> 0), 2);
    const [book] = books(out);
    expect(book.bids.length).toBe(20);
    expect(book.bids[18]).toBe(0.99);
  });

  it('a checksum mismatch drops the book, marks the gap, resubscribes, and recovers on the next snapshot', () => {
    const mapper = krakenV2.createMapper({ levels: 10 });
    mapper.map(REAL_SNAPSHOT, 1);
    // The update claims a checksum for a book that missed a message.
    const out = mapper.map(update('[{"price":0.9994,"qty":1.50000}]', 12345), 2);
    expect((out[0] as Rejected).reason).toBe('checksum_mismatch');
    expect((out[0] as Rejected).detail).toContain('venue checksum 12345');
    expect((out[1] as Disconnect).type).toBe('disconnect');
    expect(mapper.takeResyncRequests()).toEqual(['USDG/USD']);
    // Until the new snapshot, updates have nothing to apply to.
    expect(mapper.map(update('[]', 1), 3)).toEqual([]);
    expect(books(mapper.map(REAL_SNAPSHOT, 4))).toHaveLength(1);
  });

  it('rejects a tampered recorded snapshot as a checksum mismatch', () => {
    const out = krakenV2.createMapper({ levels: 10 }).map(REAL_SNAPSHOT.replace('382506.65119', '382506.65118'), 1);
    expect((out[0] as Rejected).reason).toBe('checksum_mismatch');
    // Nothing was emitted before, so there is no gap to mark.
    expect(out).toHaveLength(1);
  });

  it('rejects a number it cannot read exactly, naming the field', () => {
    const out = krakenV2.createMapper({ levels: 10 }).map(REAL_SNAPSHOT.replace('"qty":5.25262', '"qty":5.25262e0'), 1);
    expect((out[0] as Rejected).detail).toMatch(/^data\[0\]\.bids\[4\]\.qty: could not read the exact decimal/);
    const missing = krakenV2.createMapper({ levels: 10 }).map('{"channel":"book","type":"snapshot","data":[{"symbol":"X/Y","bids":[],"asks":[]}]}', 1);
    expect((missing[0] as Rejected).detail).toMatch(/^data\[0\]\.checksum: expected an unsigned 32-bit integer/);
  });
});

describe('kraken-v2 trade', () => {
  // The example message of https://docs.kraken.com/api/docs/websocket-v2/trade.
  const TRADE =
    '{"channel":"trade","type":"update","data":[{"symbol":"MATIC/USD","side":"sell","price":0.5117,"qty":40.0,"ord_type":"market","trade_id":4665906,"timestamp":"2023-09-25T07:49:37.708706Z"}]}';

  it('maps the taker side, the trade id and the time; skips the snapshot of past trades', () => {
    const mapper = krakenV2.createMapper({ levels: 10 });
    const [trade] = mapper.map(TRADE, 9) as Trade[];
    expect(trade).toEqual({
      type: 'trade',
      symbol: 'MATIC/USD',
      ts: Date.parse('2023-09-25T07:49:37.708Z'),
      localTs: 9,
      price: 0.5117,
      size: 40,
      aggressor: -1,
      tradeId: '4665906',
    });
    expect(mapper.map(TRADE.replace('"update"', '"snapshot"'), 9)).toEqual([]);
    const bad = mapper.map(TRADE.replace('"sell"', '"up"'), 9) as Rejected[];
    expect(bad[0].detail).toMatch(/^data\[0\]\.side: expected "buy" or "sell"/);
  });

  it('ignores heartbeats and acks, reports failed requests', () => {
    const mapper = krakenV2.createMapper({ levels: 10 });
    expect(mapper.map('{"channel":"heartbeat"}', 1)).toEqual([]);
    expect(
      mapper.map(
        '{"method":"subscribe","result":{"channel":"book","symbol":"BTC/USD","depth":10,"snapshot":true},"success":true,"time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z"}',
        1,
      ),
    ).toEqual([]);
    const failed = mapper.map('{"error":"Currency pair not supported","method":"subscribe","success":false,"symbol":"X/Y"}', 1) as Rejected[];
    expect(failed[0].reason).toBe('venue_error');
    expect(failed[0].symbol).toBe('X/Y');
    expect(failed[0].detail).toContain('Currency pair not supported');
  });
});

describe('kraken-v2 live protocol', () => {
  it('subscribes book (with its snapshot) and trade, resyncs the book only, pings as v2 does', () => {
    expect(venueById('kraken-v2')).toBe(krakenV2);
    const live = krakenV2Venue(25).live!;
    expect(live.subscribeFrames(['BTC/USD']).map((f) => JSON.parse(f))).toEqual([
      { method: 'subscribe', params: { channel: 'book', symbol: ['BTC/USD'], depth: 25, snapshot: true } },
      { method: 'subscribe', params: { channel: 'trade', symbol: ['BTC/USD'], snapshot: false } },
    ]);
    expect(live.resyncFrames(['BTC/USD']).map((f) => JSON.parse(f).params.channel)).toEqual(['book', 'book']);
    expect(JSON.parse(live.pingFrame()!)).toEqual({ method: 'ping' });
    expect(live.snapshotUrl('', 'BTC/USD')).toBeNull();
    expect(() => krakenV2Venue(20 as 10)).toThrow(RangeError);
  });
});
