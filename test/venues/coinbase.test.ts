import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { BookSnapshot, Disconnect, MarketMessage, Rejected, Trade } from '../../src/domain/types.js';
import { coinbase, coinbaseVenue, isoToEpochMs } from '../../src/venues/coinbase.js';
import { expectSoundTrade } from './sound-trade.js';

const lines = (name: string): string[] =>
  readFileSync(new URL(`../../fixtures/coinbase/${name}`, import.meta.url), 'utf8')
    .split('\n')
    .filter((line) => line.length > 0);

// Coinbase's documented level2 snapshot, single-change and multiple-change l2updates.
const [docSnapshot, docUpdateSingle, docUpdateMultiple] = lines('level2-docs.jsonl');
const [docHeartbeat, docSubscriptions, docError] = lines('control.jsonl');
// Coinbase's documented match; the matches channel opens with the same message typed last_match.
const [docMatch] = lines('matches-docs.jsonl');
const docLastMatch = docMatch.replace('"type":"match"', '"type":"last_match"');

/** The same documented frame for a second product. */
const asEth = (frame: string): string => frame.replace('"BTC-USD"', '"ETH-USD"');

const LOCAL_TS = 1_700_000_000_000;

function onlySnapshot(messages: MarketMessage[]): BookSnapshot {
  expect(messages.map((m) => m.type)).toEqual(['book_snapshot']);
  return messages[0] as BookSnapshot;
}

function levelsOf(side: Float64Array): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let i = 0; i < side.length; i += 2) out.push([side[i], side[i + 1]]);
  return out;
}

function edit(frame: string, change: (message: any) => void): string {
  const message = JSON.parse(frame);
  change(message);
  return JSON.stringify(message);
}

function expectSound(messages: MarketMessage[]): void {
  for (const message of messages) {
    if (message.type === 'trade') {
      expectSoundTrade(message);
      continue;
    }
    if (message.type !== 'book_snapshot') continue;
    expect(Number.isFinite(message.ts)).toBe(true);
    for (const value of [...message.bids, ...message.asks]) expect(Number.isFinite(value)).toBe(true);
  }
}

describe('coinbase level2 mapper: documented messages', () => {
  it('maps the documented snapshot; without a time it is stamped with the receive time', () => {
    const snapshot = onlySnapshot(coinbase.createMapper({ levels: 10 }).map(docSnapshot, LOCAL_TS));
    expect(snapshot).toMatchObject({ type: 'book_snapshot', symbol: 'BTC-USD', ts: LOCAL_TS, localTs: LOCAL_TS, seq: undefined });
    expect(levelsOf(snapshot.bids)).toEqual([[10101.1, 0.4505414]]);
    expect(levelsOf(snapshot.asks)).toEqual([[10102.55, 0.57753524]]);
  });

  it('applies the documented single-change l2update and stamps it with its time', () => {
    const mapper = coinbase.createMapper({ levels: 10 });
    mapper.map(docSnapshot, LOCAL_TS);
    const snapshot = onlySnapshot(mapper.map(docUpdateSingle, LOCAL_TS + 1));
    expect(snapshot.ts).toBe(Date.UTC(2019, 7, 14, 20, 42, 27, 265));
    expect(levelsOf(snapshot.bids)).toEqual([
      [10101.8, 0.162567],
      [10101.1, 0.4505414],
    ]);
    expect(levelsOf(snapshot.asks)).toEqual([[10102.55, 0.57753524]]);
  });

  it('rejects the crossed book the documented multiple-change l2update leaves behind', () => {
    // The two documented examples are years apart: bid 22356.30 lands above the ask 10102.55.
    const mapper = coinbase.createMapper({ levels: 10 });
    mapper.map(docSnapshot, LOCAL_TS);
    mapper.map(docUpdateSingle, LOCAL_TS + 1);
    const [rejected] = mapper.map(docUpdateMultiple, LOCAL_TS + 2) as Rejected[];
    expect(rejected).toMatchObject({ type: 'rejected', reason: 'crossed_book', symbol: 'BTC-USD' });
    expect(rejected.detail).toContain('bids[0][0]');
    expect(rejected.detail).toContain('22356.3');
  });

  it('removes a level on size "0"', () => {
    const mapper = coinbase.createMapper({ levels: 10 });
    mapper.map(docSnapshot, LOCAL_TS);
    mapper.map(docUpdateSingle, LOCAL_TS + 1);
    const removal = edit(docUpdateSingle, (m) => {
      m.changes[0][2] = '0';
    });
    const snapshot = onlySnapshot(mapper.map(removal, LOCAL_TS + 2));
    expect(levelsOf(snapshot.bids)).toEqual([[10101.1, 0.4505414]]);
  });

  it('maps heartbeat and subscriptions to nothing and an error to a rejection', () => {
    const mapper = coinbase.createMapper({ levels: 10 });
    expect(mapper.map(docHeartbeat, LOCAL_TS)).toEqual([]);
    expect(mapper.map(docSubscriptions, LOCAL_TS)).toEqual([]);
    const [rejected] = mapper.map(docError, LOCAL_TS) as Rejected[];
    expect(rejected).toMatchObject({ type: 'rejected', reason: 'venue_error', symbol: null });
    expect(rejected.detail).toContain('Failed to subscribe');
    expect(rejected.detail).toContain('GIBBERISH-USD is not a valid product');
  });
});

describe('coinbase level2 mapper: several products', () => {
  it('keeps one book per product on an interleaved stream', () => {
    const mapper = coinbase.createMapper({ levels: 10 });
    onlySnapshot(mapper.map(docSnapshot, LOCAL_TS));
    // ETH-USD: the documented frames with the product renamed, its ask moved up by 100.
    const ethSnapshot = edit(asEth(docSnapshot), (m) => {
      m.asks[0][0] = '10202.55';
    });
    onlySnapshot(mapper.map(ethSnapshot, LOCAL_TS + 1));
    const eth = onlySnapshot(mapper.map(asEth(docUpdateSingle), LOCAL_TS + 2));
    const btc = onlySnapshot(
      mapper.map(
        edit(docUpdateSingle, (m) => (m.changes[0] = ['sell', '10102.00', '1.5'])),
        LOCAL_TS + 3,
      ),
    );
    expect(eth.symbol).toBe('ETH-USD');
    expect(levelsOf(eth.bids)[0]).toEqual([10101.8, 0.162567]);
    expect(levelsOf(eth.asks)).toEqual([[10202.55, 0.57753524]]);
    expect(btc.symbol).toBe('BTC-USD');
    expect(levelsOf(btc.bids)).toEqual([[10101.1, 0.4505414]]);
    expect(levelsOf(btc.asks)).toEqual([
      [10102.0, 1.5],
      [10102.55, 0.57753524],
    ]);
  });

  it("ignores a product's updates until its snapshot", () => {
    const mapper = coinbase.createMapper({ levels: 10 });
    expect(mapper.map(docUpdateSingle, LOCAL_TS)).toEqual([]);
    mapper.map(asEth(docSnapshot), LOCAL_TS);
    expect(mapper.map(docUpdateSingle, LOCAL_TS)).toEqual([]);
    onlySnapshot(mapper.map(asEth(docUpdateSingle), LOCAL_TS));
    expect(mapper.takeResyncRequests()).toEqual([]);
  });

  it('caps each emitted side at the requested number of levels', () => {
    const mapper = coinbase.createMapper({ levels: 1 });
    mapper.map(docSnapshot, LOCAL_TS);
    const snapshot = onlySnapshot(mapper.map(docUpdateSingle, LOCAL_TS));
    expect(levelsOf(snapshot.bids)).toEqual([[10101.8, 0.162567]]);
  });
});

describe('coinbase level2 mapper: bad input', () => {
  it('rejects an unknown side naming the field, drops the book and asks for a resync', () => {
    const mapper = coinbase.createMapper({ levels: 10 });
    mapper.map(docSnapshot, LOCAL_TS);
    const bad = edit(docUpdateMultiple, (m) => {
      m.changes[1][0] = 'hold';
    });
    const messages = mapper.map(bad, LOCAL_TS + 1);
    expect(messages.map((m) => m.type)).toEqual(['rejected', 'disconnect']);
    const [rejected, disconnect] = messages as [Rejected, Disconnect];
    expect(rejected.reason).toBe('schema');
    expect(rejected.detail).toContain('changes[1][0]');
    expect(rejected.detail).toContain('"hold"');
    expect(disconnect).toMatchObject({ symbol: 'BTC-USD', localTs: LOCAL_TS + 1 });
    expect(mapper.takeResyncRequests()).toEqual(['BTC-USD']);
    // Nothing of the bad message was applied, and the book waits for a fresh snapshot.
    expect(mapper.map(docUpdateSingle, LOCAL_TS + 2)).toEqual([]);
  });

  it('rejects negative or non-numeric sizes and bad times, naming the field', () => {
    const mapper = coinbase.createMapper({ levels: 10 });
    const negative = edit(docSnapshot, (m) => {
      m.asks[0][1] = '-0.5';
    });
    expect((mapper.map(negative, LOCAL_TS)[0] as Rejected).detail).toContain('asks[0][1]');
    mapper.map(docSnapshot, LOCAL_TS);
    const badTime = edit(docUpdateSingle, (m) => {
      m.time = '2019-08-14 20:42:27';
    });
    const [rejected] = mapper.map(badTime, LOCAL_TS) as Rejected[];
    expect(rejected.reason).toBe('schema');
    expect(rejected.detail).toContain('time');
    const nanPrice = edit(docSnapshot, (m) => {
      m.bids[0][0] = 'NaN';
    });
    expect((mapper.map(nanPrice, LOCAL_TS)[0] as Rejected).detail).toContain('bids[0][0]');
  });

  it('rejects malformed JSON, untyped and unknown messages', () => {
    const mapper = coinbase.createMapper({ levels: 10 });
    expect((mapper.map('{"type":"snap', LOCAL_TS)[0] as Rejected).reason).toBe('malformed_json');
    expect((mapper.map('[1,2]', LOCAL_TS)[0] as Rejected).reason).toBe('schema');
    expect((mapper.map('{"type":"ticker","product_id":"BTC-USD"}', LOCAL_TS)[0] as Rejected).reason).toBe('unsupported_message');
    expect((mapper.map('{"type":"snapshot","bids":[],"asks":[]}', LOCAL_TS)[0] as Rejected).detail).toContain('product_id');
  });

  it('describes hostile values without calling into them', () => {
    // String({toString: 1}) throws; details must quote such values, never coerce them.
    const mapper = coinbase.createMapper({ levels: 10 });
    const [rejected] = mapper.map('{"type":"error","message":{"toString":1},"reason":{"valueOf":2,"toString":3}}', LOCAL_TS) as Rejected[];
    expect(rejected.reason).toBe('venue_error');
    expect(rejected.detail).toContain('"toString":1');
  });

  it('rejects a one-sided book as empty', () => {
    const oneSided = edit(docSnapshot, (m) => {
      m.asks = [];
    });
    const [rejected] = coinbase.createMapper({ levels: 10 }).map(oneSided, LOCAL_TS) as Rejected[];
    expect(rejected.reason).toBe('empty_book');
  });
});

describe('coinbase matches mapper', () => {
  const onlyTrade = (messages: MarketMessage[]): Trade => {
    expect(messages.map((m) => m.type)).toEqual(['trade']);
    return messages[0] as Trade;
  };
  const onlyRejection = (messages: MarketMessage[]): Rejected => {
    expect(messages.map((m) => m.type)).toEqual(['rejected']);
    return messages[0] as Rejected;
  };

  it('maps the documented match: maker side sell means a buyer lifted it, id trade_id, venue time time', () => {
    const trade = onlyTrade(coinbase.createMapper({ levels: 10 }).map(docMatch, LOCAL_TS));
    expect(trade).toEqual({
      type: 'trade',
      symbol: 'BTC-USD',
      // 2014-11-07T08:19:27.028459Z
      ts: Date.UTC(2014, 10, 7, 8, 19, 27, 28) + 0.459,
      localTs: LOCAL_TS,
      price: 400.23,
      size: 5.23512,
      aggressor: 1,
      tradeId: '10',
    });
  });

  it('signs a match on a resting buy as a sell aggressor', () => {
    const trade = onlyTrade(
      coinbase.createMapper({ levels: 10 }).map(
        edit(docMatch, (m) => (m.side = 'buy')),
        LOCAL_TS,
      ),
    );
    expect(trade.aggressor).toBe(-1);
  });

  it("takes last_match as a trade, and a repeated trade id (a reconnect's last_match) as a counted repeat, not a second trade", () => {
    const mapper = coinbase.createMapper({ levels: 10 });
    expect(onlyTrade(mapper.map(docLastMatch, LOCAL_TS)).tradeId).toBe('10');
    const next = onlyTrade(
      mapper.map(
        edit(docMatch, (m) => (m.trade_id = 11)),
        LOCAL_TS + 1,
      ),
    );
    expect(next.tradeId).toBe('11');
    mapper.reset();
    const repeat = onlyRejection(
      mapper.map(
        edit(docLastMatch, (m) => (m.trade_id = 11)),
        LOCAL_TS + 2,
      ),
    );
    expect(repeat).toMatchObject({ reason: 'out_of_order', symbol: 'BTC-USD' });
    expect(repeat.detail).toBe('trade_id: 11 is not after the last trade of BTC-USD (11); a repeat');
    // Trade ids are per product.
    expect(onlyTrade(mapper.map(asEth(docMatch), LOCAL_TS + 3)).symbol).toBe('ETH-USD');
  });

  it('passes trades through in arrival order among the books of the same connection, before the first snapshot too', () => {
    const mapper = coinbase.createMapper({ levels: 10 });
    const frames = [docLastMatch, docSnapshot, edit(docMatch, (m) => (m.trade_id = 11)), docUpdateSingle, edit(docMatch, (m) => (m.trade_id = 12))];
    const out = frames.flatMap((frame, i) => mapper.map(frame, LOCAL_TS + i));
    expect(out.map((m) => (m.type === 'trade' ? `T${m.tradeId}` : m.type))).toEqual(['T10', 'book_snapshot', 'T11', 'book_snapshot', 'T12']);
  });

  const badMatches: [string, (m: any) => void, Rejected['reason'], string][] = [
    ['a missing price', (m) => delete m.price, 'schema', 'price: price must be a decimal string, got undefined'],
    ['a price as a JSON number', (m) => (m.price = 400.23), 'schema', 'price: price must be a decimal string, got 400.23'],
    ['a non-numeric price', (m) => (m.price = 'NaN'), 'schema', 'price: price must be a decimal string, got "NaN"'],
    ['an overflowing price', (m) => (m.price = '9'.repeat(400)), 'non_finite', 'price: price must be finite'],
    ['a zero price', (m) => (m.price = '0.00'), 'schema', 'price: must be > 0, got "0.00"'],
    ['a zero size', (m) => (m.size = '0'), 'non_positive_size', 'size: must be > 0, got "0"'],
    ['a negative size', (m) => (m.size = '-1.5'), 'schema', 'size: size must be a decimal string, got "-1.5"'],
    ['a missing size', (m) => delete m.size, 'schema', 'size: size must be a decimal string, got undefined'],
    ['a missing time', (m) => delete m.time, 'schema', 'time: must be an ISO-8601 UTC time, got undefined'],
    ['a time that is no instant', (m) => (m.time = '2014-11-31T08:19:27Z'), 'schema', 'time: must be an ISO-8601 UTC time'],
    ['a missing trade id', (m) => delete m.trade_id, 'schema', 'trade_id: must be a non-negative integer, got undefined'],
    ['a trade id as text', (m) => (m.trade_id = '10'), 'schema', 'trade_id: must be a non-negative integer, got "10"'],
    ['an unknown side', (m) => (m.side = 'bid'), 'schema', 'side: the maker\'s side must be "buy" or "sell", got "bid"'],
    ['no product', (m) => delete m.product_id, 'schema', 'product_id: must be a non-empty string, got undefined'],
  ];

  it.each(badMatches)('rejects a match with %s, naming the field', (_label, change, reason, detail) => {
    const rejection = onlyRejection(coinbase.createMapper({ levels: 10 }).map(edit(docMatch, change), LOCAL_TS));
    expect(rejection.reason).toBe(reason);
    expect(rejection.detail.startsWith(detail)).toBe(true);
  });

  it('leaves the book alone when a match is rejected', () => {
    const mapper = coinbase.createMapper({ levels: 10 });
    mapper.map(docSnapshot, LOCAL_TS);
    mapper.map(
      edit(docMatch, (m) => (m.size = '0')),
      LOCAL_TS,
    );
    expect(mapper.takeResyncRequests()).toEqual([]);
    expect(onlySnapshot(mapper.map(docUpdateSingle, LOCAL_TS)).symbol).toBe('BTC-USD');
  });
});

describe('coinbase level2 mapper: never throws', () => {
  const fixtureFrames = [docSnapshot, docUpdateSingle, docUpdateMultiple, docHeartbeat, docSubscriptions, docError, docMatch, docLastMatch];

  it('survives arbitrary strings', () => {
    const mapper = coinbase.createMapper({ levels: 10 });
    mapper.map(docSnapshot, LOCAL_TS);
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (frame) => {
        expectSound(mapper.map(frame, LOCAL_TS));
      }),
      { numRuns: 300 },
    );
  });

  it('survives every truncated prefix of the fixture frames', () => {
    for (const frame of fixtureFrames) {
      const mapper = coinbase.createMapper({ levels: 10 });
      mapper.map(docSnapshot, LOCAL_TS);
      for (let end = 0; end <= frame.length; end++) expectSound(mapper.map(frame.slice(0, end), LOCAL_TS));
    }
  });

  it('survives random JSON values, alone and shaped like feed messages', () => {
    const mapper = coinbase.createMapper({ levels: 10 });
    mapper.map(docSnapshot, LOCAL_TS);
    const value = fc.jsonValue({ maxDepth: 4 });
    const shaped = fc.record({
      type: fc.constantFrom('snapshot', 'l2update', 'error', 'heartbeat', 'match', 'last_match'),
      product_id: fc.oneof(fc.constant('BTC-USD'), value),
      trade_id: fc.oneof(fc.nat(), value),
      price: fc.oneof(fc.constant('400.23'), fc.string({ maxLength: 12 }), value),
      size: fc.oneof(fc.constant('5.23512'), fc.constant('0'), value),
      side: fc.oneof(fc.constantFrom('buy', 'sell'), value),
      time: fc.oneof(fc.constant('2022-08-04T15:25:05.010758Z'), fc.string({ maxLength: 30 }), value),
      bids: value,
      asks: value,
      changes: fc.oneof(value, fc.array(fc.tuple(fc.constantFrom('buy', 'sell', 'x'), value, value), { maxLength: 4 })),
    });
    fc.assert(
      fc.property(fc.oneof(value, shaped), (message) => {
        expectSound(mapper.map(JSON.stringify(message), LOCAL_TS));
      }),
      { numRuns: 300 },
    );
  });

  it('emits only sound books for random well-formed updates', () => {
    const decimal = fc.tuple(fc.integer({ min: 0, max: 20_000 }), fc.integer({ min: 0, max: 99 })).map(([whole, cents]) => `${whole}.${String(cents).padStart(2, '0')}`);
    const change = fc.tuple(fc.constantFrom('buy', 'sell'), decimal, fc.oneof(decimal, fc.constant('0')));
    fc.assert(
      fc.property(fc.array(fc.array(change, { maxLength: 6 }), { maxLength: 6 }), (batches) => {
        const mapper = coinbase.createMapper({ levels: 10 });
        mapper.map(docSnapshot, LOCAL_TS);
        for (const changes of batches) {
          const frame = JSON.stringify({ type: 'l2update', product_id: 'BTC-USD', time: '2022-08-04T15:25:05.010758Z', changes });
          for (const message of mapper.map(frame, LOCAL_TS)) {
            if (message.type === 'book_snapshot') expectSound([message]);
            else expect(message.type === 'rejected' && ['crossed_book', 'empty_book'].includes(message.reason)).toBe(true);
          }
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('coinbase time parsing', () => {
  it('parses ISO-8601 with micro- and nanosecond digits to fractional epoch ms', () => {
    expect(isoToEpochMs('2022-08-04T15:25:05.010758Z')).toBeCloseTo(Date.UTC(2022, 7, 4, 15, 25, 5, 10) + 0.758, 6);
    expect(isoToEpochMs('2022-08-04T15:25:05.010758Z')).toBe(1_659_626_705_010.758);
    expect(isoToEpochMs('2014-11-07T08:19:28.464459123Z')).toBeCloseTo(Date.UTC(2014, 10, 7, 8, 19, 28, 464) + 0.459123, 6);
    expect(isoToEpochMs('2019-08-14T20:42:27.265Z')).toBe(Date.UTC(2019, 7, 14, 20, 42, 27, 265));
    expect(isoToEpochMs('2019-08-14T20:42:27Z')).toBe(Date.UTC(2019, 7, 14, 20, 42, 27));
    expect(isoToEpochMs('2019-08-14T22:42:27.5+02:00')).toBe(Date.UTC(2019, 7, 14, 20, 42, 27, 500));
  });

  it('refuses times that are not real instants', () => {
    for (const text of ['2019-02-30T00:00:00Z', '2019-13-01T00:00:00Z', '2019-08-14T24:00:00Z', '2019-08-14T20:42:27', '2019-08-14', '']) {
      expect(isoToEpochMs(text)).toBeNull();
    }
  });
});

describe('coinbase live protocol', () => {
  it('subscribes to level2_batch (level2 on request) and matches, and resyncs the book channel alone', () => {
    const live = coinbase.live!;
    expect(live.connectUrl('wss://ws-feed.exchange.coinbase.com', ['BTC-USD'])).toBe('wss://ws-feed.exchange.coinbase.com');
    expect(JSON.parse(live.subscribeFrames(['ETH-USD', 'BTC-USD'])[0])).toEqual({
      type: 'subscribe',
      product_ids: ['ETH-USD', 'BTC-USD'],
      channels: ['level2_batch', 'matches'],
    });
    expect(JSON.parse(live.unsubscribeFrames(['BTC-USD'])[0])).toEqual({ type: 'unsubscribe', product_ids: ['BTC-USD'], channels: ['level2_batch', 'matches'] });
    // Resubscribing matches would lose trades meanwhile and repeat a last_match.
    expect(live.resyncFrames(['BTC-USD']).map((frame) => JSON.parse(frame))).toEqual([
      { type: 'unsubscribe', product_ids: ['BTC-USD'], channels: ['level2_batch'] },
      { type: 'subscribe', product_ids: ['BTC-USD'], channels: ['level2_batch'] },
    ]);
    expect(live.subscribeFrames([])).toEqual([]);
    expect(live.pingFrame()).toBeNull();
    expect(live.snapshotUrl('https://api.exchange.coinbase.com', 'BTC-USD')).toBeNull();
    expect(JSON.parse(coinbaseVenue('level2').live!.subscribeFrames(['BTC-USD'])[0]).channels).toEqual(['level2', 'matches']);
  });
});
