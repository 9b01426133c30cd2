import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { BookSnapshot, MarketMessage, OrderEvent, Trade } from '../../src/domain/types.js';
import { FeatureExtractor, featureNames } from '../../src/features/extract.js';
import { OnlineNormaliser } from '../../src/features/normaliser.js';
import { lobster } from '../../src/venues/lobster.js';

function book(ts: number, bid: number, ask: number): BookSnapshot {
  return { type: 'book_snapshot', symbol: 'T', ts, localTs: ts, seq: undefined, bids: Float64Array.of(bid, 1), asks: Float64Array.of(ask, 1) };
}
function trade(ts: number, aggressor: 1 | -1, size: number): Trade {
  return { type: 'trade', symbol: 'T', ts, localTs: ts, price: 100, size, aggressor, tradeId: undefined };
}
function orderEvent(ts: number, kind: OrderEvent['kind'], side: 1 | -1, level: number): OrderEvent {
  return { type: 'order_event', symbol: 'T', ts, localTs: ts, kind, side, price: 100, size: 5, level };
}

/** The flow part of the L = 1 vector by name, so each expectation says what it checks. */
function named(out: Float64Array): Record<string, number> {
  const names = featureNames(1);
  return Object.fromEntries(names.map((name, i) => [name, out[i]]));
}

function expectNamed(actual: Record<string, number>, expected: Record<string, number>): void {
  for (const [name, value] of Object.entries(expected)) {
    expect(actual[name], name).toBeCloseTo(value, 12);
  }
}

describe('flow features by hand, L = 1', () => {
  it('signed volume and counts decay per tick and per venue ms; last event, order counts and the last move', () => {
    const extractor = new FeatureExtractor(1);
    const out = new Float64Array(extractor.dimension);
    extractor.extract(book(0, 100, 101), out);
    for (const value of out.subarray(10)) expect(value).toBe(0);

    // A buy of 2 and a sell of 1 at 500 ms: net volume +1, net count 0; the last was a sell.
    extractor.observeTrade(trade(500, 1, 2));
    extractor.observeTrade(trade(500, -1, 1));
    extractor.extract(book(1000, 100, 101), out);
    expectNamed(named(out), {
      signed_volume_10t: Math.log1p(1), // the tick sums hold trades since the last tick at full weight
      signed_volume_100t: Math.log1p(1),
      signed_volume_1000ms: Math.log1p(2 ** (-500 / 1000)), // 500 ms since the trades
      signed_volume_10000ms: Math.log1p(2 ** (-500 / 10_000)),
      signed_trades_10t: 0,
      signed_trades_1000ms: 0,
      last_trade_sell: 1,
      last_trade_buy: 0,
      last_move_dir: 0,
      log1p_ms_since_move: 0,
    });

    // A bid submission at the best level, then an ask cancellation two levels deep: the last
    // event is not at the best levels, so no flag; both count. The bid improves: a move up.
    extractor.observeOrderEvent(orderEvent(1100, 'submit', 1, 0));
    extractor.observeOrderEvent(orderEvent(1200, 'cancel', -1, 2));
    extractor.extract(book(1500, 100.5, 101), out);
    expectNamed(named(out), {
      signed_volume_10t: Math.log1p(2 ** (-1 / 10)), // one tick of decay
      signed_volume_100t: Math.log1p(2 ** (-1 / 100)),
      signed_volume_1000ms: Math.log1p(2 ** -1), // 1000 ms since the trades
      last_trade_sell: 0,
      last_submit_bid: 0,
      last_cancel_ask: 0,
      submits_bid: Math.log1p(1),
      cancels_ask: Math.log1p(1),
      submits_ask: 0,
      cancels_bid: 0,
      last_move_dir: 1,
      log1p_ms_since_move: 0,
      log1p_ticks_since_move: 0,
    });

    extractor.observeOrderEvent(orderEvent(1550, 'delete', 1, 0));
    extractor.extract(book(1600, 100.5, 101), out);
    expectNamed(named(out), {
      last_cancel_bid: 1, // a deletion at the best bid
      cancels_bid: Math.log1p(1),
      submits_bid: Math.log1p(2 ** (-1 / 100)), // one tick of decay (half-life 100 ticks)
      last_move_dir: 1,
      log1p_ms_since_move: Math.log1p(100),
      log1p_ticks_since_move: Math.log1p(1),
    });

    // A move down replaces the direction and restarts both clocks.
    extractor.extract(book(1700, 100, 100.5), out);
    expectNamed(named(out), { last_move_dir: -1, log1p_ms_since_move: 0, log1p_ticks_since_move: 0, last_cancel_bid: 0 });
  });

  it('a trade without an aggressor moves no sum; reset forgets the flow', () => {
    const extractor = new FeatureExtractor(1);
    const out = new Float64Array(extractor.dimension);
    extractor.extract(book(0, 100, 101), out);
    extractor.observeTrade({ ...trade(10, 1, 3), aggressor: 0 });
    extractor.extract(book(20, 100, 101), out);
    expect(named(out).signed_volume_10t).toBe(0);
    extractor.observeTrade(trade(30, 1, 3));
    extractor.reset();
    extractor.extract(book(40, 100, 101), out);
    for (const value of out.subarray(10)) expect(value).toBe(0);
  });

  it('multi-level OFI: level 2 compares level 2 of both books', () => {
    const extractor = new FeatureExtractor(2);
    const out = new Float64Array(extractor.dimension);
    const names = featureNames(2);
    const at = (name: string): number => out[names.indexOf(name)];
    const snap = (ts: number, bids: number[], asks: number[]): BookSnapshot => ({ ...book(ts, 0, 0), bids: Float64Array.from(bids), asks: Float64Array.from(asks) });
    extractor.extract(snap(0, [100, 1, 99, 4], [101, 1, 102, 6]), out);
    expect(at('ofi_l2')).toBe(0);
    // Level 2: bid 99 x 4 -> 99 x 7 (+3); ask 102 x 6 -> 102.5 x 2 (retreats: +6). e = 9 over 4 + 7 + 6 + 2.
    extractor.extract(snap(1, [100, 1, 99, 7], [101, 1, 102.5, 2]), out);
    expect(at('ofi_l2')).toBeCloseTo(9 / 19, 14);
    expect(at('ofi_l1')).toBe(0);
    // A book one level deep has no level-2 OFI.
    extractor.extract(snap(2, [100, 1], [101, 1, 102.5, 2]), out);
    expect(at('ofi_l2')).toBe(0);
  });
});

describe('no look-ahead (real LOBSTER fixture with its trades and order events)', () => {
  const fixtures = fileURLToPath(new URL('../../fixtures/lobster/', import.meta.url));
  const files = ['message', 'orderbook'].map((kind) => join(fixtures, `AMZN_2012-06-21_34200000_57600000_${kind}_5.csv`));

  /** Normalised features of every snapshot of `messages`, in order. */
  function featuresOf(messages: readonly MarketMessage[]): Float64Array[] {
    const extractor = new FeatureExtractor(5);
    const normaliser = new OnlineNormaliser(extractor.dimension);
    const raw = new Float64Array(extractor.dimension);
    const rows: Float64Array[] = [];
    for (const message of messages) {
      if (message.type === 'trade') extractor.observeTrade(message);
      else if (message.type === 'order_event') extractor.observeOrderEvent(message);
      else if (message.type === 'book_snapshot') {
        extractor.extract(message, raw);
        const normalised = new Float64Array(extractor.dimension);
        normaliser.normalise(raw, normalised);
        rows.push(normalised);
      }
    }
    return rows;
  }

  it('features at tick t do not change when any event after t is altered or removed', async () => {
    const messages: MarketMessage[] = [];
    for await (const message of lobster.read(files, { levels: 5 })) messages.push(message);
    expect(messages.some((m) => m.type === 'trade')).toBe(true);
    const full = featuresOf(messages);
    const snapshotIndices = messages.flatMap((m, i) => (m.type === 'book_snapshot' ? [i] : []));
    for (const tick of [0, 1, 17, 300, 1234, snapshotIndices.length - 2]) {
      const cut = snapshotIndices[tick];
      const prefix = messages.slice(0, cut + 1);
      // Everything after tick t altered: trades reversed and tripled, order events flipped, books dropped.
      const altered: MarketMessage[] = messages.slice(cut + 1).flatMap((m): MarketMessage[] => {
        if (m.type === 'trade') return [{ ...m, aggressor: m.aggressor === 1 ? -1 : 1, size: m.size * 3 }];
        if (m.type === 'order_event') return [{ ...m, side: m.side === 1 ? -1 : 1, level: 0 }];
        return m.type === 'book_snapshot' && m.seq !== undefined && m.seq % 2 === 0 ? [] : [m];
      });
      const variants = [featuresOf(prefix), featuresOf([...prefix, ...altered])];
      for (const variant of variants) {
        for (let t = 0; t <= tick; t++) expect(variant[t]).toEqual(full[t]);
      }
    }
  });
});
