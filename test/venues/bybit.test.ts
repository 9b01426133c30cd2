import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { BookSnapshot, Disconnect, MarketMessage, Rejected, Trade } from '../../src/domain/types.js';
import { bybit, bybitVenue } from '../../src/venues/bybit.js';
import { venueById } from '../../src/venues/registry.js';

// fixtures/bybit/README.md: real frames of the v5 public linear stream.
const [ack, snapshotFrame, deltaFrame, tradeFrame] = readFileSync(new URL('../../fixtures/bybit/linear_BTCUSDT_frames.jsonl', import.meta.url), 'utf8')
  .split('\n')
  .filter((line) => line.length > 0);

const books = (messages: readonly MarketMessage[]) => messages.filter((m): m is BookSnapshot => m.type === 'book_snapshot');
/** The recorded delta with its update id replaced. */
const deltaWithU = (u: number) => deltaFrame.replace('"u":10132541', `"u":${u}`);

describe('bybit orderbook', () => {
  it('applies the recorded snapshot and the delta that followed it', () => {
    const mapper = bybit.createMapper({ levels: 50 });
    expect(mapper.map(ack, 1)).toEqual([]);
    const [snapshot] = books(mapper.map(snapshotFrame, 2));
    expect(snapshot.seq).toBe(10132540);
    expect(snapshot.ts).toBe(1773386409385); // cts, the matching engine's time
    expect(snapshot.bids.length).toBe(100);
    expect([...snapshot.bids.slice(0, 2)]).toEqual([71423.8, 0.557]);
    expect([...snapshot.asks.slice(0, 2)]).toEqual([71423.9, 4.669]);
    const [updated] = books(mapper.map(deltaFrame, 3));
    expect(updated.seq).toBe(10132541);
    // The test's own reading of the delta: size 0 deletes, others set the absolute size.
    const bids = new Map<number, number>();
    for (let i = 0; i < snapshot.bids.length; i += 2) bids.set(snapshot.bids[i], snapshot.bids[i + 1]);
    const delta = JSON.parse(deltaFrame) as { data: { b: [string, string][] } };
    for (const [price, size] of delta.data.b) {
      if (Number(size) === 0) bids.delete(Number(price));
      else bids.set(Number(price), Number(size));
    }
    const expected = [...bids.entries()]
      .sort((a, b) => b[0] - a[0])
      .slice(0, 50)
      .flat();
    expect([...updated.bids]).toEqual(expected);
    expect(updated.asks.includes(71428.3)).toBe(false);
    expect(mapper.takeResyncRequests()).toEqual([]);
  });

  it('a delta that skips an update id drops the book, marks the gap and resubscribes', () => {
    const mapper = bybit.createMapper({ levels: 10 });
    mapper.map(snapshotFrame, 1);
    const out = mapper.map(deltaWithU(10132543), 2);
    expect((out[0] as Rejected).reason).toBe('sequence_gap');
    expect((out[0] as Rejected).detail).toBe('data.u: expected 10132541 after 10132540, got 10132543');
    expect((out[1] as Disconnect).type).toBe('disconnect');
    expect(mapper.takeResyncRequests()).toEqual(['BTCUSDT']);
    // Until a snapshot comes, deltas have no book.
    expect(mapper.map(deltaFrame, 3)).toEqual([]);
    expect(books(mapper.map(snapshotFrame, 4))).toHaveLength(1);
    expect(books(mapper.map(deltaFrame, 5))).toHaveLength(1);
  });

  it('u = 1 restarts the book even on a delta: it is the service restart snapshot', () => {
    const mapper = bybit.createMapper({ levels: 5 });
    mapper.map(snapshotFrame, 1);
    const restart =
      '{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1773386410000,"data":{"s":"BTCUSDT","b":[["71000.00","1"]],"a":[["71001.00","2"]],"u":1,"seq":546137970000},"cts":1773386409999}';
    const [book] = books(mapper.map(restart, 2));
    expect([...book.bids]).toEqual([71000, 1]);
    expect([...book.asks]).toEqual([71001, 2]);
    expect(books(mapper.map(restart.replace('"u":1', '"u":2').replace('"71000.00","1"', '"71000.00","3"'), 3))[0].bids[1]).toBe(3);
  });

  it('rejects bad input naming the field', () => {
    const mapper = bybit.createMapper({ levels: 5 });
    const missing = mapper.map(snapshotFrame.replace('"u":10132540,', ''), 1) as Rejected[];
    expect(missing[0].detail).toBe('data.u: expected a non-negative integer, got missing');
    const badSize = mapper.map(snapshotFrame.replace('"0.557"', '"-0.557"'), 1) as Rejected[];
    expect(badSize[0].detail).toBe('data.b[0][1]: expected a decimal string, got -0.557');
    expect((mapper.map('{"topic":"tickers.BTCUSDT","type":"snapshot","data":{}}', 1)[0] as Rejected).reason).toBe('unsupported_message');
  });
});

describe('bybit publicTrade', () => {
  it('maps the recorded fills with the taker side and trade id', () => {
    const trades = bybit.createMapper({ levels: 5 }).map(tradeFrame, 7) as Trade[];
    expect(trades).toHaveLength(9);
    expect(trades[0]).toEqual({
      type: 'trade',
      symbol: 'BTCUSDT',
      ts: 1774021164272,
      localTs: 7,
      price: 69916.8,
      size: 0.001,
      aggressor: -1,
      tradeId: '8c931d9a-b703-5c34-9aeb-860867cf1f66',
    });
    expect(trades[4].size).toBe(0.032);
    const bad = bybit.createMapper({ levels: 5 }).map(tradeFrame.replace('"S":"Sell"', '"S":"sell"'), 7) as Rejected[];
    expect(bad[0].detail).toBe('data[0].S: expected "Buy" or "Sell" (the taker\'s), got sell');
  });
});

describe('bybit live protocol', () => {
  it('subscribes book and trades, resyncs the book topic only, pings', () => {
    expect(venueById('bybit')).toBe(bybit);
    const live = bybitVenue(200).live!;
    expect(live.subscribeFrames(['BTCUSDT']).map((f) => JSON.parse(f))).toEqual([{ op: 'subscribe', args: ['orderbook.200.BTCUSDT', 'publicTrade.BTCUSDT'] }]);
    const many = live.subscribeFrames(['A', 'B', 'C', 'D', 'E', 'F']).map((f) => JSON.parse(f).args.length);
    expect(many).toEqual([10, 2]);
    expect(live.resyncFrames(['BTCUSDT']).map((f) => JSON.parse(f))).toEqual([
      { op: 'unsubscribe', args: ['orderbook.200.BTCUSDT'] },
      { op: 'subscribe', args: ['orderbook.200.BTCUSDT'] },
    ]);
    expect(JSON.parse(live.pingFrame()!)).toEqual({ op: 'ping' });
    expect(live.snapshotUrl('', 'BTCUSDT')).toBeNull();
  });
});
