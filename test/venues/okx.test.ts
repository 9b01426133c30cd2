import { readFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { BookSnapshot, Disconnect, MarketMessage, Rejected, Trade } from '../../src/domain/types.js';
import { okx, okxBookChecksum } from '../../src/venues/okx.js';
import { venueById } from '../../src/venues/registry.js';

// fixtures/okx/README.md: a real snapshot and update with the checksums the venue sent.
const [recordedSnapshot, recordedUpdate] = readFileSync(new URL('../../fixtures/okx/okcoin_BTC-USD_books.top25.jsonl', import.meta.url), 'utf8')
  .split('\n')
  .filter((line) => line.length > 0);

const books = (messages: readonly MarketMessage[]) => messages.filter((m): m is BookSnapshot => m.type === 'book_snapshot');

/** A `books` message in the documented layout, with sequence ids and no checksum (as sent since June 2026). */
function book(action: 'snapshot' | 'update', bids: string[][], asks: string[][], prevSeqId: number, seqId: number): string {
  const levels = (side: string[][]) => JSON.stringify(side.map(([price, size]) => [price, size, '0', size === '0' ? '0' : '1']));
  return `{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"${action}","data":[{"asks":${levels(asks)},"bids":${levels(bids)},"ts":"1597026383085","checksum":0,"prevSeqId":${prevSeqId},"seqId":${seqId}}]}`;
}

describe('okx books checksum', () => {
  it('follows the documented string: bid:ask alternately, the other side continuing where one runs out', () => {
    // The docs' example: bids 3366.1 x 7, 3366 x 6; asks 3366.8 x 9, 3368 x 8 -> "3366.1:7:3366.8:9:3366:6:3368:8".
    const documented = okxBookChecksum(['3366.1', '3366'], ['7', '6'], ['3366.8', '3368'], ['9', '8']);
    expect(documented).toBe(crc32('3366.1:7:3366.8:9:3366:6:3368:8') | 0);
    const lopsided = okxBookChecksum(['3366.1'], ['7'], ['3366.8', '3368', '3370'], ['9', '8', '1']);
    expect(lopsided).toBe(crc32('3366.1:7:3366.8:9:3368:8:3370:1') | 0);
    // Signed 32-bit, as the venue sends it: this one is above 2^31 unsigned.
    expect(documented).toBe((crc32('3366.1:7:3366.8:9:3366:6:3368:8') >>> 0) - 2 ** 32);
  });

  it('verifies the recorded snapshot and update', () => {
    const mapper = okx.createMapper({ levels: 5 });
    const [snapshot] = mapper.map(recordedSnapshot, 1) as BookSnapshot[];
    expect(snapshot.type).toBe('book_snapshot');
    expect(snapshot.ts).toBe(1688967955142);
    expect([...snapshot.asks.slice(0, 2)]).toEqual([30382.6, 0.1504]);
    expect([...snapshot.bids.slice(0, 2)]).toEqual([30080.49, 0.0225]);
    const [updated] = mapper.map(recordedUpdate, 2) as BookSnapshot[];
    expect(updated.type).toBe('book_snapshot');
    expect(updated.asks[0]).toBe(30382.61);
    expect(mapper.takeResyncRequests()).toEqual([]);
  });

  it('a tampered level fails the recorded checksum: the book is dropped and resubscribed', () => {
    const mapper = okx.createMapper({ levels: 5 });
    mapper.map(recordedSnapshot, 1);
    const out = mapper.map(recordedUpdate.replace('"asks":[["30382.6","0"', '"asks":[["30382.61","0"'), 2);
    expect((out[0] as Rejected).reason).toBe('checksum_mismatch');
    expect((out[0] as Rejected).detail).toMatch(/^data\[0\]\.checksum: venue checksum 1109161389, local book gives -?\d+$/);
    expect((out[1] as Disconnect).type).toBe('disconnect');
    expect(mapper.takeResyncRequests()).toEqual(['BTC-USD']);
    expect(mapper.map(recordedUpdate, 3)).toEqual([]);
  });
});

describe('okx books sequence', () => {
  it('chains prevSeqId to the last seqId; a break drops the book until the next snapshot', () => {
    const mapper = okx.createMapper({ levels: 5 });
    expect(books(mapper.map(book('snapshot', [['100', '1']], [['101', '1']], -1, 10), 1))).toHaveLength(1);
    const [next] = books(
      mapper.map(
        book(
          'update',
          [
            ['100', '0'],
            ['99.5', '2'],
          ],
          [],
          10,
          12,
        ),
        2,
      ),
    );
    expect([...next.bids]).toEqual([99.5, 2]);
    expect(next.seq).toBe(12);
    // A keepalive update: no levels, seqId repeated as prevSeqId.
    expect(mapper.map(book('update', [], [], 12, 12), 3)).toEqual([]);
    const gap = mapper.map(book('update', [['99', '1']], [], 15, 16), 4);
    expect((gap[0] as Rejected).detail).toBe('data[0].prevSeqId: expected 12 (the last seqId), got 15');
    expect(gap[1].type).toBe('disconnect');
    expect(mapper.takeResyncRequests()).toEqual(['BTC-USDT']);
    expect(mapper.map(book('update', [['99', '1']], [], 16, 17), 5)).toEqual([]);
    expect(books(mapper.map(book('snapshot', [['98', '1']], [['101', '1']], -1, 30), 6))[0].bids[0]).toBe(98);
  });

  it('rejects bad levels naming the field, and answers pong/acks with nothing', () => {
    const mapper = okx.createMapper({ levels: 5 });
    const out = mapper.map(book('snapshot', [['100', 'x']], [['101', '1']], -1, 1), 1) as Rejected[];
    expect(out[0].detail).toBe('data[0].bids[0][1]: expected a decimal string, got x');
    expect(mapper.map('pong', 1)).toEqual([]);
    expect(mapper.map('{"event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"},"connId":"a4d3ae55"}', 1)).toEqual([]);
    expect((mapper.map('{"event":"error","code":"60012","msg":"Invalid request"}', 1)[0] as Rejected).reason).toBe('venue_error');
  });
});

describe('okx trades and live protocol', () => {
  it('maps the documented trade push with the taker side', () => {
    const frame =
      '{"arg":{"channel":"trades","instId":"BTC-USD"},"data":[{"instId":"BTC-USD","tradeId":"130639474","px":"42219.9","sz":"0.12060306","side":"buy","ts":"1630048897897"}]}';
    const [trade] = okx.createMapper({ levels: 5 }).map(frame, 4) as Trade[];
    expect(trade).toEqual({ type: 'trade', symbol: 'BTC-USD', ts: 1630048897897, localTs: 4, price: 42219.9, size: 0.12060306, aggressor: 1, tradeId: '130639474' });
  });

  it('subscribes books and trades, resyncs books only, pings with the text frame', () => {
    expect(venueById('okx')).toBe(okx);
    const live = okx.live!;
    expect(JSON.parse(live.subscribeFrames(['BTC-USDT'])[0])).toEqual({
      op: 'subscribe',
      args: [
        { channel: 'books', instId: 'BTC-USDT' },
        { channel: 'trades', instId: 'BTC-USDT' },
      ],
    });
    expect(live.resyncFrames(['BTC-USDT']).map((f) => JSON.parse(f))).toEqual([
      { op: 'unsubscribe', args: [{ channel: 'books', instId: 'BTC-USDT' }] },
      { op: 'subscribe', args: [{ channel: 'books', instId: 'BTC-USDT' }] },
    ]);
    expect(live.pingFrame()).toBe('ping');
  });
});
