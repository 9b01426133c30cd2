import { readFileSync } from 'node:fs';
import { crc32 as zlibCrc32 } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { BookSnapshot, Disconnect, MarketMessage, Rejected, Trade } from '../../src/domain/types.js';
import { kraken, krakenBookChecksum, krakenSecondsToMs, krakenVenue } from '../../src/venues/kraken.js';
import { expectSoundTrade } from './sound-trade.js';

const fixture = (name: string): string => readFileSync(new URL(`../../fixtures/kraken/${name}`, import.meta.url), 'utf8');
const lines = (name: string): string[] =>
  fixture(name)
    .split('\n')
    .filter((line) => line.length > 0);

// Kraken's checksum guide: the documented book state (checksum 974947235) and example update.
const [guideSnapshot, guideUpdate] = lines('checksum-guide.jsonl');
// Kraken's support article: a real XBT/USD depth-10 snapshot.
const articleSnapshot = fixture('support-article-xbtusd-book10.json').trim();
const control = lines('control.jsonl');
// Kraken's v1 trade reference: the documented two-trade message (a sell, then a buy).
const [docTrades] = lines('trade-docs.jsonl');

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

/** Replaces the JSON value at `path` of a frame, for tests that corrupt one field. */
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

describe('kraken v1 book mapper: documented messages', () => {
  it("maps the checksum guide's book state to a 10-level snapshot stamped with its newest entry time", () => {
    const mapper = kraken.createMapper({ levels: 10 });
    const snapshot = onlySnapshot(mapper.map(guideSnapshot, LOCAL_TS));
    expect(snapshot.symbol).toBe('BTC/USD');
    expect(snapshot.seq).toBeUndefined();
    expect(snapshot.localTs).toBe(LOCAL_TS);
    // The newest entry is the 0.05040 ask at 1582905488.785484 s.
    expect(snapshot.ts).toBeCloseTo(1_582_905_488_785.484, 3);
    expect(snapshot.asks.length).toBe(20);
    expect(snapshot.bids.length).toBe(20);
    expect(snapshot.asks[0]).toBeCloseTo(0.05005, 12);
    expect(snapshot.asks[1]).toBeCloseTo(0.000005, 12);
    expect(snapshot.asks[18]).toBeCloseTo(0.0505, 12);
    expect(snapshot.bids[0]).toBeCloseTo(0.05, 12);
    expect(snapshot.bids[18]).toBeCloseTo(0.0495, 12);
  });

  it("verifies the guide's example update against its real checksum 974947235", () => {
    const mapper = kraken.createMapper({ levels: 12 });
    mapper.map(guideSnapshot, LOCAL_TS);
    const snapshot = onlySnapshot(mapper.map(guideUpdate, LOCAL_TS + 1));
    expect(mapper.takeResyncRequests()).toEqual([]);
    expect(snapshot.ts).toBeCloseTo(1_582_905_486_493.034, 3);
    // book-1000 keeps the new deeper levels: asks 11-12 and bids 11-12 are the update's.
    const asks = levelsOf(snapshot.asks);
    const bids = levelsOf(snapshot.bids);
    expect(asks).toHaveLength(12);
    expect(asks[10][0]).toBeCloseTo(0.0512, 12);
    expect(asks[11][0]).toBeCloseTo(0.05275, 12);
    expect(bids[10][0]).toBeCloseTo(0.0494, 12);
    expect(bids[11][0]).toBeCloseTo(0.04765, 12);
  });

  it('reads the subscribed depth from the channel name and truncates each side to it', () => {
    const mapper = kraken.createMapper({ levels: 12 });
    const asBook10 = (frame: string) => frame.replace('"book-1000"', '"book-10"');
    mapper.map(asBook10(guideSnapshot), LOCAL_TS);
    // The four new levels fall outside the ten subscribed: dropped, and the checksum still holds.
    const snapshot = onlySnapshot(mapper.map(asBook10(guideUpdate), LOCAL_TS + 1));
    expect(snapshot.asks.length).toBe(20);
    expect(snapshot.bids.length).toBe(20);
    expect(snapshot.asks[18]).toBeCloseTo(0.0505, 12);
    expect(snapshot.bids[18]).toBeCloseTo(0.0495, 12);
  });

  it('maps the real XBT/USD snapshot of the support article', () => {
    const snapshot = onlySnapshot(kraken.createMapper({ levels: 5 }).map(articleSnapshot, LOCAL_TS));
    expect(snapshot.symbol).toBe('XBT/USD');
    expect(levelsOf(snapshot.asks)).toEqual([
      [5290.8, 1],
      [5290.9, 4.49956524],
      [5291.7, 1],
      [5292.0, 0.9538894],
      [5292.2, 1.513],
    ]);
    expect(levelsOf(snapshot.bids)[0]).toEqual([5290.1, 1.431956]);
    expect(snapshot.ts).toBeCloseTo(1_556_724_668_057.687, 3);
  });

  it('maps systemStatus, subscriptionStatus, heartbeat and pong to nothing and a subscription error to a rejection', () => {
    const mapper = kraken.createMapper({ levels: 10 });
    const [systemStatus, subscribed, heartbeat, pong, subscribeError] = control;
    for (const frame of [systemStatus, subscribed, heartbeat, pong]) expect(mapper.map(frame, LOCAL_TS)).toEqual([]);
    const [rejected] = mapper.map(subscribeError, LOCAL_TS) as Rejected[];
    expect(rejected).toMatchObject({ type: 'rejected', reason: 'venue_error', symbol: 'XBT/USD' });
    expect(rejected.detail).toContain('Subscription depth not supported');
  });
});

describe('kraken v1 book mapper: checksum failures and resync', () => {
  it('detects a snapshot volume off by one digit at the next checksummed update and asks for a resync', () => {
    const mapper = kraken.createMapper({ levels: 10 });
    // The best ask's volume 0.00000500 -> 0.00000501 (one digit).
    const corrupted = edit(guideSnapshot, (m) => {
      m[1].as[0][1] = '0.00000501';
    });
    onlySnapshot(mapper.map(corrupted, LOCAL_TS));
    const messages = mapper.map(guideUpdate, LOCAL_TS + 5);
    expect(messages.map((m) => m.type)).toEqual(['rejected', 'disconnect']);
    const [rejected, disconnect] = messages as [Rejected, Disconnect];
    expect(rejected.reason).toBe('checksum_mismatch');
    expect(rejected.symbol).toBe('BTC/USD');
    expect(rejected.detail).toContain('974947235');
    expect(disconnect).toMatchObject({ type: 'disconnect', symbol: 'BTC/USD', localTs: LOCAL_TS + 5 });
    expect(mapper.takeResyncRequests()).toEqual(['BTC/USD']);
    expect(mapper.takeResyncRequests()).toEqual([]);

    // The book is gone: updates are ignored until the resubscription's snapshot.
    expect(mapper.map(guideUpdate, LOCAL_TS + 6)).toEqual([]);
    onlySnapshot(mapper.map(guideSnapshot, LOCAL_TS + 7));
    onlySnapshot(mapper.map(guideUpdate, LOCAL_TS + 8));
  });

  it('detects a checksum field with one digit changed', () => {
    const mapper = kraken.createMapper({ levels: 10 });
    mapper.map(guideSnapshot, LOCAL_TS);
    const messages = mapper.map(guideUpdate.replace('"974947235"', '"974947236"'), LOCAL_TS + 1);
    expect(messages.map((m) => m.type)).toEqual(['rejected', 'disconnect']);
    expect((messages[0] as Rejected).reason).toBe('checksum_mismatch');
    expect(mapper.takeResyncRequests()).toEqual(['BTC/USD']);
  });

  it('forgets books and pending resyncs on reset', () => {
    const mapper = kraken.createMapper({ levels: 10 });
    mapper.map(guideSnapshot, LOCAL_TS);
    mapper.map(guideUpdate.replace('"974947235"', '"1"'), LOCAL_TS + 1);
    mapper.map(articleSnapshot, LOCAL_TS + 2);
    mapper.reset();
    expect(mapper.takeResyncRequests()).toEqual([]);
    expect(mapper.map(guideUpdate, LOCAL_TS + 3)).toEqual([]);
  });

  it('drops the book when the venue confirms an unsubscribe', () => {
    const mapper = kraken.createMapper({ levels: 10 });
    mapper.map(guideSnapshot, LOCAL_TS);
    const unsubscribed = JSON.stringify({
      channelID: 0,
      channelName: 'book-1000',
      event: 'subscriptionStatus',
      pair: 'BTC/USD',
      status: 'unsubscribed',
      subscription: { depth: 1000, name: 'book' },
    });
    expect(mapper.map(unsubscribed, LOCAL_TS + 1)).toEqual([]);
    expect(mapper.map(guideUpdate, LOCAL_TS + 2)).toEqual([]);
  });

  it('keeps the book when only the trade subscription is confirmed gone', () => {
    const mapper = kraken.createMapper({ levels: 10 });
    mapper.map(guideSnapshot, LOCAL_TS);
    const unsubscribed = JSON.stringify({
      channelID: 0,
      channelName: 'trade',
      event: 'subscriptionStatus',
      pair: 'BTC/USD',
      status: 'unsubscribed',
      subscription: { name: 'trade' },
    });
    expect(mapper.map(unsubscribed, LOCAL_TS + 1)).toEqual([]);
    expect(onlySnapshot(mapper.map(guideUpdate, LOCAL_TS + 2)).symbol).toBe('BTC/USD');
  });

  it('computes the documented checksum from the documented levels, and a naive string CRC agrees on random books', () => {
    const asks = ['0.05005', '0.05010', '0.05015', '0.05020', '0.05025', '0.05030', '0.05035', '0.05040', '0.05045', '0.05050'];
    const bids = ['0.05000', '0.04995', '0.04990', '0.04980', '0.04975', '0.04970', '0.04965', '0.04960', '0.04955', '0.04950'];
    const volumes = asks.map(() => '0.00000500');
    expect(krakenBookChecksum(asks, volumes, bids, volumes)).toBe(974947235);

    // Independent oracle: build the documented string and hash it with zlib.
    const decimal = fc.tuple(fc.stringMatching(/^\d{1,6}$/), fc.stringMatching(/^\d{1,8}$/)).map(([whole, fraction]) => `${whole}.${fraction}`);
    const side = fc.array(fc.tuple(decimal, decimal), { maxLength: 14 });
    const format = (text: string) => text.replace('.', '').replace(/^0+/, '');
    fc.assert(
      fc.property(side, side, (askLevels, bidLevels) => {
        const text = [...askLevels.slice(0, 10), ...bidLevels.slice(0, 10)].map(([p, v]) => format(p) + format(v)).join('');
        const computed = krakenBookChecksum(
          askLevels.map((l) => l[0]),
          askLevels.map((l) => l[1]),
          bidLevels.map((l) => l[0]),
          bidLevels.map((l) => l[1]),
        );
        return computed === zlibCrc32(text);
      }),
      { numRuns: 200 },
    );
  });
});

describe('kraken v1 book mapper: updates', () => {
  const newBid = (price: string, volume: string, ts: string, republish = false) =>
    JSON.stringify([0, { b: [republish ? [price, volume, ts, 'r'] : [price, volume, ts]] }, 'book-10', 'XBT/USD']);

  it('ignores updates before the snapshot', () => {
    const mapper = kraken.createMapper({ levels: 10 });
    expect(mapper.map(guideUpdate, LOCAL_TS)).toEqual([]);
    expect(mapper.takeResyncRequests()).toEqual([]);
  });

  it('inserts, truncates to depth, deletes on volume 0 and re-inserts a republished level', () => {
    const mapper = kraken.createMapper({ levels: 10 });
    mapper.map(articleSnapshot, LOCAL_TS);

    // A new best bid pushes the tenth (5283.9) out of the depth-10 book.
    const inserted = onlySnapshot(mapper.map(newBid('5290.50000', '0.25000000', '1556724669.000100'), LOCAL_TS + 1));
    expect(levelsOf(inserted.bids)[0]).toEqual([5290.5, 0.25]);
    expect(inserted.bids.length).toBe(20);
    expect(levelsOf(inserted.bids)[9][0]).toBe(5285.7);
    expect(inserted.ts).toBeCloseTo(1_556_724_669_000.1, 3);

    // Its removal leaves nine levels; Kraken then republishes the level that came back.
    const deleted = onlySnapshot(mapper.map(newBid('5290.50000', '0.00000000', '1556724670.000000'), LOCAL_TS + 2));
    expect(deleted.bids.length).toBe(18);
    expect(levelsOf(deleted.bids)[0]).toEqual([5290.1, 1.431956]);
    const republished = onlySnapshot(mapper.map(newBid('5283.90000', '0.50000000', '1556723616.006805', true), LOCAL_TS + 3));
    expect(republished.bids.length).toBe(20);
    expect(levelsOf(republished.bids)[9]).toEqual([5283.9, 0.5]);
    // A republished level keeps its old timestamp, which is the newest in that message.
    expect(republished.ts).toBeCloseTo(1_556_723_616_006.805, 3);
  });

  it('applies several entries for the same price in arrival order', () => {
    const mapper = kraken.createMapper({ levels: 10 });
    mapper.map(articleSnapshot, LOCAL_TS);
    const frame = JSON.stringify([
      0,
      {
        a: [
          ['5290.80000', '0.00000000', '1556724669.1'],
          ['5290.80000', '3.00000000', '1556724669.1'],
        ],
      },
      'book-10',
      'XBT/USD',
    ]);
    const snapshot = onlySnapshot(mapper.map(frame, LOCAL_TS + 1));
    expect(levelsOf(snapshot.asks)[0]).toEqual([5290.8, 3]);
  });

  it('keeps books of several pairs apart', () => {
    const mapper = kraken.createMapper({ levels: 10 });
    mapper.map(guideSnapshot, LOCAL_TS);
    mapper.map(articleSnapshot, LOCAL_TS);
    const xbt = onlySnapshot(mapper.map(newBid('5290.50000', '0.25000000', '1556724669.0'), LOCAL_TS + 1));
    const btc = onlySnapshot(mapper.map(guideUpdate, LOCAL_TS + 2));
    expect(xbt.symbol).toBe('XBT/USD');
    expect(xbt.bids[0]).toBe(5290.5);
    expect(btc.symbol).toBe('BTC/USD');
    expect(btc.bids[0]).toBeCloseTo(0.05, 12);
  });
});

describe('kraken v1 book mapper: bad input', () => {
  it('rejects a non-decimal price in an update, naming the field, and resyncs the pair', () => {
    const mapper = kraken.createMapper({ levels: 10 });
    mapper.map(guideSnapshot, LOCAL_TS);
    const bad = edit(guideUpdate, (m) => {
      m[1].a[1][0] = 'abc';
    });
    const messages = mapper.map(bad, LOCAL_TS + 1);
    expect(messages.map((m) => m.type)).toEqual(['rejected', 'disconnect']);
    const rejected = messages[0] as Rejected;
    expect(rejected.reason).toBe('schema');
    expect(rejected.detail).toContain('[1].a[1][0]');
    expect(rejected.detail).toContain('"abc"');
    expect(mapper.takeResyncRequests()).toEqual(['BTC/USD']);
  });

  it('rejects a negative volume and a bad timestamp in a snapshot, naming the field', () => {
    const negative = edit(articleSnapshot, (m) => {
      m[1].bs[3][1] = '-0.89533312';
    });
    const [rejected] = kraken.createMapper({ levels: 10 }).map(negative, LOCAL_TS) as Rejected[];
    expect(rejected.reason).toBe('schema');
    expect(rejected.detail).toContain('[1].bs[3][1]');

    const badTime = edit(articleSnapshot, (m) => {
      m[1].as[2][2] = 'yesterday';
    });
    const [timeRejected] = kraken.createMapper({ levels: 10 }).map(badTime, LOCAL_TS) as Rejected[];
    expect(timeRejected.detail).toContain('[1].as[2][2]');
  });

  it('rejects a crossed snapshot', () => {
    const crossed = edit(articleSnapshot, (m) => {
      m[1].bs.push(['5295.00000', '1.00000000', '1556724669.000000']);
    });
    const [rejected] = kraken.createMapper({ levels: 10 }).map(crossed, LOCAL_TS) as Rejected[];
    expect(rejected).toMatchObject({ type: 'rejected', reason: 'crossed_book', symbol: 'XBT/USD' });
    expect(rejected.detail).toContain('bids[0][0]');
  });

  it('rejects malformed JSON, unknown channels, bad depths and bad checksum fields', () => {
    const mapper = kraken.createMapper({ levels: 10 });
    expect((mapper.map('{"event":', LOCAL_TS)[0] as Rejected).reason).toBe('malformed_json');
    expect((mapper.map('[0,["5698.40000","5700.00000","1542057299.545897","1.01234567","0.98765432"],"spread","XBT/USD"]', LOCAL_TS)[0] as Rejected).reason).toBe(
      'unsupported_message',
    );
    expect((mapper.map(articleSnapshot.replace('"book-10"', '"book-0"'), LOCAL_TS)[0] as Rejected).detail).toContain('book-N');
    mapper.map(guideSnapshot, LOCAL_TS);
    const badChecksum = mapper.map(guideUpdate.replace('"974947235"', '"97494x235"'), LOCAL_TS);
    expect((badChecksum[0] as Rejected).detail).toContain('[2].c');
  });

  it('describes hostile values without calling into them', () => {
    // String({toString: 1}) throws; details must quote such values, never coerce them.
    const mapper = kraken.createMapper({ levels: 10 });
    const [rejected] = mapper.map('{"event":"error","errorMessage":{"toString":1,"valueOf":2}}', LOCAL_TS) as Rejected[];
    expect(rejected.reason).toBe('venue_error');
    expect(rejected.detail).toContain('"toString":1');
  });
});

describe('kraken v1 trade mapper', () => {
  const tradesOf = (messages: MarketMessage[]): Trade[] => messages.filter((m): m is Trade => m.type === 'trade');
  const withEntry = (change: (entry: unknown[]) => void): string => edit(docTrades, (m) => change(m[1][0]));

  it('maps the documented message: one trade per entry, taker side s = sell and b = buy, time in epoch seconds', () => {
    const out = kraken.createMapper({ levels: 10 }).map(docTrades, LOCAL_TS);
    expect(out).toEqual([
      { type: 'trade', symbol: 'XBT/USD', ts: 1_534_614_057_321.597, localTs: LOCAL_TS, price: 5541.2, size: 0.15850568, aggressor: -1, tradeId: undefined },
      { type: 'trade', symbol: 'XBT/USD', ts: 1_534_614_057_324.998, localTs: LOCAL_TS, price: 6060, size: 0.02455, aggressor: 1, tradeId: undefined },
    ]);
  });

  it('accepts the side spelled out, and a seventh element as the trade id', () => {
    const spelled = edit(docTrades, (m) => {
      m[1][0][3] = 'sell';
      m[1][1][3] = 'buy';
      m[1][0].push(4665846);
      m[1][1].push('4665847');
    });
    const trades = tradesOf(kraken.createMapper({ levels: 10 }).map(spelled, LOCAL_TS));
    expect(trades.map((t) => [t.aggressor, t.tradeId])).toEqual([
      [-1, '4665846'],
      [1, '4665847'],
    ]);
  });

  it('skips the snapshot of past trades that follows each confirmed trade subscription, and only that', () => {
    const mapper = kraken.createMapper({ levels: 10 });
    const status = (name: string, status = 'subscribed') =>
      JSON.stringify({ channelID: 0, channelName: name, event: 'subscriptionStatus', pair: 'XBT/USD', status, subscription: { name } });
    expect(mapper.map(status('book'), LOCAL_TS)).toEqual([]);
    expect(tradesOf(mapper.map(docTrades, LOCAL_TS))).toHaveLength(2);
    expect(mapper.map(status('trade'), LOCAL_TS)).toEqual([]);
    // The message right after the confirmation is the snapshot of the last trades; the next is live.
    expect(mapper.map(docTrades, LOCAL_TS)).toEqual([]);
    expect(tradesOf(mapper.map(docTrades, LOCAL_TS))).toHaveLength(2);
    // Per pair: another pair's trades do not consume the snapshot of this one.
    mapper.map(status('trade'), LOCAL_TS);
    expect(
      tradesOf(
        mapper.map(
          edit(docTrades, (m) => (m[3] = 'ETH/USD')),
          LOCAL_TS,
        ),
      ),
    ).toHaveLength(2);
    expect(mapper.map(docTrades, LOCAL_TS)).toEqual([]);
    // A reconnect forgets a snapshot still due; the new subscription's confirmation sets it again.
    mapper.map(status('trade'), LOCAL_TS);
    mapper.reset();
    expect(tradesOf(mapper.map(docTrades, LOCAL_TS))).toHaveLength(2);
  });

  it('passes trades through among the books of the same connection in arrival order', () => {
    const mapper = kraken.createMapper({ levels: 10 });
    const frames = [docTrades, guideSnapshot, edit(docTrades, (m) => (m[3] = 'BTC/USD')), guideUpdate];
    const out = frames.flatMap((frame) => mapper.map(frame, LOCAL_TS));
    expect(out.map((m) => `${m.type}:${'symbol' in m ? m.symbol : ''}`)).toEqual([
      'trade:XBT/USD',
      'trade:XBT/USD',
      'book_snapshot:BTC/USD',
      'trade:BTC/USD',
      'trade:BTC/USD',
      'book_snapshot:BTC/USD',
    ]);
  });

  const badTrades: [string, (entry: unknown[]) => void, Rejected['reason'], string][] = [
    ['a non-decimal price', (e) => (e[0] = 'abc'), 'schema', '[1][0][0]: price must be a decimal string, got "abc"'],
    ['a price as a JSON number', (e) => (e[0] = 5541.2), 'schema', '[1][0][0]: price must be a decimal string, got 5541.2'],
    ['an overflowing price', (e) => (e[0] = '9'.repeat(400)), 'non_finite', '[1][0][0]: price must be finite'],
    ['a zero price', (e) => (e[0] = '0.00000'), 'schema', '[1][0][0]: price must be > 0, got "0.00000"'],
    ['a zero volume', (e) => (e[1] = '0.00000000'), 'non_positive_size', '[1][0][1]: volume must be > 0, got "0.00000000"'],
    ['a negative volume', (e) => (e[1] = '-0.1'), 'schema', '[1][0][1]: volume must be a decimal string, got "-0.1"'],
    ['a missing time', (e) => (e[2] = null), 'schema', '[1][0][2]: time must be decimal epoch seconds, got null'],
    ['an unknown side', (e) => (e[3] = 'x'), 'schema', '[1][0][3]: side must be "b" or "s" (the taker\'s), got "x"'],
    ['an order type that is no string', (e) => (e[4] = 1), 'schema', '[1][0][4]: order type must be a string, got 1'],
    ['a misc that is no string', (e) => (e[5] = null), 'schema', '[1][0][5]: misc must be a string, got null'],
    ['a negative trade id', (e) => e.push(-1), 'schema', '[1][0][6]: trade id must be a non-negative integer, got -1'],
    ['missing fields', (e) => e.splice(3), 'schema', '[1][0]: must be [price, volume, time, side, orderType, misc(, tradeId)]'],
  ];

  it.each(badTrades)('rejects an entry with %s naming the field, and still maps its neighbour', (_label, change, reason, detail) => {
    const out = kraken.createMapper({ levels: 10 }).map(withEntry(change), LOCAL_TS);
    expect(out.map((m) => m.type)).toEqual(['rejected', 'trade']);
    const rejection = out[0] as Rejected;
    expect(rejection).toMatchObject({ reason, symbol: 'XBT/USD' });
    expect(rejection.detail.startsWith(detail)).toBe(true);
  });

  it('rejects a trade message whose trades are not an array', () => {
    const [rejection] = kraken.createMapper({ levels: 10 }).map('[0,{"a":[]},"trade","XBT/USD"]', LOCAL_TS) as Rejected[];
    expect(rejection).toMatchObject({ reason: 'schema', symbol: 'XBT/USD' });
    expect(rejection.detail.startsWith('[1]: trades must be an array')).toBe(true);
  });
});

describe('kraken v1 book mapper: never throws', () => {
  const fixtureFrames = [guideSnapshot, guideUpdate, articleSnapshot, docTrades, ...control];

  it('survives arbitrary strings', () => {
    const mapper = kraken.createMapper({ levels: 10 });
    mapper.map(articleSnapshot, LOCAL_TS);
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (frame) => {
        expectSound(mapper.map(frame, LOCAL_TS));
      }),
      { numRuns: 300 },
    );
  });

  it('survives every truncated prefix of the fixture frames', () => {
    for (const frame of fixtureFrames) {
      const mapper = kraken.createMapper({ levels: 10 });
      mapper.map(guideSnapshot, LOCAL_TS);
      for (let end = 0; end <= frame.length; end++) expectSound(mapper.map(frame.slice(0, end), LOCAL_TS));
    }
  });

  it('survives random JSON values, alone and inside channel arrays', () => {
    const mapper = kraken.createMapper({ levels: 10 });
    mapper.map(guideSnapshot, LOCAL_TS);
    const value = fc.jsonValue({ maxDepth: 4 });
    const channel = fc.tuple(
      value,
      fc.dictionary(fc.constantFrom('a', 'b', 'c', 'as', 'bs'), value),
      fc.constantFrom('book-10', 'book-1000', 'book-x'),
      fc.constantFrom('BTC/USD', 'XBT/USD'),
    );
    const tradeEntry = fc.oneof(
      value,
      fc.tuple(
        fc.oneof(fc.constant('5541.20000'), value),
        fc.oneof(fc.constant('0.15850568'), value),
        fc.oneof(fc.constant('1534614057.321597'), value),
        fc.oneof(fc.constantFrom('b', 's', 'buy'), value),
        fc.constant('l'),
        fc.constant(''),
      ),
    );
    const trades = fc.tuple(value, fc.oneof(value, fc.array(tradeEntry, { maxLength: 4 })), fc.constant('trade'), fc.constantFrom('BTC/USD', 'XBT/USD'));
    fc.assert(
      fc.property(fc.oneof(value, channel, trades), (message) => {
        expectSound(mapper.map(JSON.stringify(message), LOCAL_TS));
      }),
      { numRuns: 300 },
    );
  });

  it('emits only sound books for random well-formed updates', () => {
    const decimal = fc
      .tuple(fc.integer({ min: 0, max: 99_999 }), fc.integer({ min: 0, max: 99_999_999 }))
      .map(([whole, fraction]) => `${whole}.${String(fraction).padStart(8, '0')}`);
    const entry = fc.tuple(decimal, fc.oneof(decimal, fc.constant('0.00000000')), fc.constant('1556724669.000001'));
    const update = fc.record({ a: fc.array(entry, { maxLength: 6 }), b: fc.array(entry, { maxLength: 6 }) });
    fc.assert(
      fc.property(fc.array(update, { maxLength: 5 }), (updates) => {
        const mapper = kraken.createMapper({ levels: 10 });
        mapper.map(articleSnapshot, LOCAL_TS);
        for (const payload of updates) {
          for (const message of mapper.map(JSON.stringify([0, payload, 'book-10', 'XBT/USD']), LOCAL_TS)) {
            if (message.type === 'book_snapshot') {
              expectSound([message]);
              expect(message.bids.length).toBeLessThanOrEqual(20);
              expect(message.asks.length).toBeLessThanOrEqual(20);
            } else {
              // A random update may cross or empty the book; nothing else may go wrong.
              expect(message.type === 'rejected' && ['crossed_book', 'empty_book'].includes(message.reason)).toBe(true);
            }
          }
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('kraken live protocol', () => {
  it('subscribes, unsubscribes and pings as the v1 API documents', () => {
    const live = kraken.live!;
    expect(live.connectUrl('wss://ws.kraken.com', ['XBT/USD'])).toBe('wss://ws.kraken.com');
    expect(live.subscribeFrames(['XBT/USD', 'ETH/USD']).map((f) => JSON.parse(f))).toEqual([
      { event: 'subscribe', pair: ['XBT/USD', 'ETH/USD'], subscription: { name: 'book', depth: 10 } },
      { event: 'subscribe', pair: ['XBT/USD', 'ETH/USD'], subscription: { name: 'trade' } },
    ]);
    expect(live.unsubscribeFrames(['XBT/USD']).map((f) => JSON.parse(f))).toEqual([
      { event: 'unsubscribe', pair: ['XBT/USD'], subscription: { name: 'book', depth: 10 } },
      { event: 'unsubscribe', pair: ['XBT/USD'], subscription: { name: 'trade' } },
    ]);
    // A book resync leaves the trade subscription alone.
    expect(live.resyncFrames(['XBT/USD']).map((f) => JSON.parse(f))).toEqual([
      { event: 'unsubscribe', pair: ['XBT/USD'], subscription: { name: 'book', depth: 10 } },
      { event: 'subscribe', pair: ['XBT/USD'], subscription: { name: 'book', depth: 10 } },
    ]);
    expect(live.subscribeFrames([])).toEqual([]);
    expect(JSON.parse(live.pingFrame()!)).toEqual({ event: 'ping' });
    expect(live.snapshotUrl('https://api.kraken.com', 'XBT/USD')).toBeNull();
    expect(JSON.parse(krakenVenue(25).live!.subscribeFrames(['XBT/USD'])[0]).subscription).toEqual({ name: 'book', depth: 25 });
  });

  it('converts fractional epoch seconds to ms digit for digit', () => {
    expect(krakenSecondsToMs('1534614248.456738')).toBe(1_534_614_248_456.738);
    expect(krakenSecondsToMs('1534614248.4')).toBe(1_534_614_248_400);
    expect(krakenSecondsToMs('1534614248')).toBe(1_534_614_248_000);
  });
});
