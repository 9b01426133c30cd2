import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { BookSnapshot } from '../../src/domain/types.js';
import { checkBook } from '../../src/domain/book-check.js';
import { FeatureExtractor, featureDimension, featureNames, midPrice, orderFlowImbalance } from '../../src/features/extract.js';
import { OnlineNormaliser } from '../../src/features/normaliser.js';

function book(ts: number, bids: number[], asks: number[]): BookSnapshot {
  return {
    type: 'book_snapshot',
    symbol: 'TEST',
    ts,
    localTs: ts,
    seq: undefined,
    bids: Float64Array.from(bids),
    asks: Float64Array.from(asks),
  };
}

function expectClose(actual: Float64Array, expected: readonly number[], tolerance = 1e-12): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const scale = Math.max(1, Math.abs(expected[i]));
    expect(Math.abs(actual[i] - expected[i]), `element ${i}: got ${actual[i]}, want ${expected[i]}`).toBeLessThanOrEqual(tolerance * scale);
  }
}

describe('FeatureExtractor layout', () => {
  it('has 5L + 26 elements, named in output order', () => {
    expect(new FeatureExtractor(2).dimension).toBe(36);
    expect(new FeatureExtractor(10).dimension).toBe(featureDimension(10));
    expect(featureNames(10)).toHaveLength(featureDimension(10));
    expect(featureNames(2)).toEqual([
      'bid_dist_bps_0',
      'ask_dist_bps_0',
      'log1p_bid_size_0',
      'log1p_ask_size_0',
      'bid_dist_bps_1',
      'ask_dist_bps_1',
      'log1p_bid_size_1',
      'log1p_ask_size_1',
      'spread_bps',
      'imbalance_l1',
      'imbalance_depth',
      'ofi_l1',
      'mid_return_bps',
      'log1p_dt_ms',
      'ofi_l2',
      'signed_volume_10t',
      'signed_volume_100t',
      'signed_volume_1000ms',
      'signed_volume_10000ms',
      'signed_trades_10t',
      'signed_trades_100t',
      'signed_trades_1000ms',
      'signed_trades_10000ms',
      'last_submit_bid',
      'last_submit_ask',
      'last_cancel_bid',
      'last_cancel_ask',
      'last_trade_buy',
      'last_trade_sell',
      'submits_bid',
      'submits_ask',
      'cancels_bid',
      'cancels_ask',
      'last_move_dir',
      'log1p_ms_since_move',
      'log1p_ticks_since_move',
    ]);
  });

  it('rejects a non-positive level count and a wrongly sized output', () => {
    expect(() => new FeatureExtractor(0)).toThrow(/levels/);
    const extractor = new FeatureExtractor(2);
    expect(() => extractor.extract(book(0, [1, 1], [2, 1]), new Float64Array(35))).toThrow(/length 36/);
  });
});

describe('FeatureExtractor by hand, L = 2', () => {
  // A: bids 100 x 2, 99 x 3; asks 101 x 1, 102 x 5; ts 1000 ms.
  const first = book(1000, [100, 2, 99, 3], [101, 1, 102, 5]);
  // B: the bid improves to 100.5 x 1.5 (100 x 3.5 behind it); the ask stays at 101 and grows to 3.
  const second = book(1250, [100.5, 1.5, 100, 3.5], [101, 3, 102, 5]);

  it('computes every element of the first and the second snapshot', () => {
    const extractor = new FeatureExtractor(2);
    const out = new Float64Array(extractor.dimension);

    extractor.extract(first, out);
    // mid = (100 + 101) / 2 = 100.5
    expectClose(out.subarray(0, 14), [
      49.75124378109452, //  bid 0: (100.5 - 100) / 100.5 * 1e4 = 0.5 / 100.5 * 1e4
      49.75124378109452, //  ask 0: (101 - 100.5) / 100.5 * 1e4
      1.0986122886681096, // log1p(2)
      0.6931471805599453, // log1p(1)
      149.2537313432836, //  bid 1: (100.5 - 99) / 100.5 * 1e4 = 1.5 / 100.5 * 1e4
      149.2537313432836, //  ask 1: (102 - 100.5) / 100.5 * 1e4
      1.3862943611198906, // log1p(3)
      1.791759469228055, //  log1p(5)
      99.50248756218905, //  spread: (101 - 100) / 100.5 * 1e4
      0.3333333333333333, // level-1 imbalance: (2 - 1) / (2 + 1)
      -0.09090909090909091, // depth imbalance: ((2 + 3) - (1 + 5)) / (5 + 6) = -1 / 11
      0, //                  OFI: first snapshot
      0, //                  mid return: first snapshot
      0, //                  time gap: first snapshot
    ]);

    extractor.extract(second, out);
    // mid = (100.5 + 101) / 2 = 100.75
    expectClose(out.subarray(0, 14), [
      24.81389578163772, //  bid 0: (100.75 - 100.5) / 100.75 * 1e4 = 0.25 / 100.75 * 1e4
      24.81389578163772, //  ask 0: (101 - 100.75) / 100.75 * 1e4
      0.9162907318741551, // log1p(1.5)
      1.3862943611198906, // log1p(3)
      74.44168734491315, //  bid 1: (100.75 - 100) / 100.75 * 1e4 = 0.75 / 100.75 * 1e4
      124.0694789081886, //  ask 1: (102 - 100.75) / 100.75 * 1e4 = 1.25 / 100.75 * 1e4
      1.5040773967762742, // log1p(3.5)
      1.791759469228055, //  log1p(5)
      49.62779156327544, //  spread: (101 - 100.5) / 100.75 * 1e4
      -0.3333333333333333, // level-1 imbalance: (1.5 - 3) / (1.5 + 3)
      -0.23076923076923078, // depth imbalance: ((1.5 + 3.5) - (3 + 5)) / (5 + 8) = -3 / 13
      // OFI: bid up (100.5 > 100): +qb = +1.5, the old bid queue is not subtracted;
      //      ask unchanged (101 = 101): -qa + qa' = -3 + 1 = -2;  e = -0.5.
      //      Scaled by qb + qb' + qa + qa' = 1.5 + 2 + 3 + 1 = 7.5:  -0.5 / 7.5 = -1 / 15
      -0.06666666666666667,
      24.844733276619657, // mid return: ln(100.75 / 100.5) * 1e4
      5.5254529391317835, // time gap: log1p(1250 - 1000) = log1p(250)
    ]);
  });

  it('midPrice is halfway between the best bid and the best ask', () => {
    expect(midPrice(first)).toBe(100.5);
    expect(midPrice(second)).toBe(100.75);
  });

  it('is deterministic: two extractors fed the same stream write identical arrays', () => {
    const a = new FeatureExtractor(2);
    const b = new FeatureExtractor(2);
    const outA = new Float64Array(a.dimension);
    const outB = new Float64Array(b.dimension);
    for (const snapshot of [first, second, first]) {
      a.extract(snapshot, outA);
      b.extract(snapshot, outB);
      expect(Array.from(outA)).toEqual(Array.from(outB));
    }
  });

  it('keeps its own copy of the previous best levels, not a reference to the snapshot', () => {
    const extractor = new FeatureExtractor(2);
    const out = new Float64Array(extractor.dimension);
    const reused = book(1000, [100, 2, 99, 3], [101, 1, 102, 5]);
    extractor.extract(reused, out);
    // A mapper that recycles its arrays overwrites them after the call.
    reused.bids.set([100.5, 1.5, 100, 3.5]);
    reused.asks.set([101, 3, 102, 5]);
    extractor.extract({ ...reused, ts: 1250 }, out);
    expect(out[11]).toBeCloseTo(-1 / 15, 14);
    expect(out[12]).toBeCloseTo(24.844733276619657, 11);
  });
});

describe('FeatureExtractor padding of a thin book', () => {
  it('repeats the deepest present distance and writes log size 0 beyond it', () => {
    const extractor = new FeatureExtractor(3);
    const out = new Float64Array(extractor.dimension);
    // One bid level, two ask levels, L = 3. mid = (10 + 10.2) / 2 = 10.1.
    extractor.extract(book(0, [10, 4], [10.2, 1, 10.5, 2]), out);
    expect(Array.from(out.subarray(18))).toEqual(Array<number>(out.length - 18).fill(0));
    const bid0 = (0.1 / 10.1) * 1e4; // (10.1 - 10) / 10.1 * 1e4
    const ask0 = (0.1 / 10.1) * 1e4; // (10.2 - 10.1) / 10.1 * 1e4
    const ask1 = (0.4 / 10.1) * 1e4; // (10.5 - 10.1) / 10.1 * 1e4
    expectClose(
      out.subarray(0, 18),
      [
        bid0,
        ask0,
        Math.log1p(4),
        Math.log1p(1),
        bid0,
        ask1,
        0,
        Math.log1p(2), // bid level 1 missing: bid 0 distance repeated, size 0
        bid0,
        ask1,
        0,
        0, //             level 2 missing on both sides
        (0.2 / 10.1) * 1e4, //           spread
        (4 - 1) / (4 + 1), //            level-1 imbalance
        (4 - 3) / (4 + 3), //            depth over the levels present: 4 against 1 + 2
        0,
        0,
        0,
      ],
      1e-12,
    );
  });

  it('ignores levels beyond L', () => {
    const shallow = new FeatureExtractor(1);
    const out = new Float64Array(shallow.dimension);
    shallow.extract(book(0, [10, 4, 9, 100], [11, 1, 12, 100]), out);
    expect(out[6]).toBeCloseTo((4 - 1) / (4 + 1), 14); // depth imbalance over level 0 only
  });
});

describe('order-flow imbalance (Cont, Kukanov & Stoikov 2014)', () => {
  // Previous book: bid 100 x 5, ask 101 x 7. Each case changes one side and leaves the other.
  const prev = [100, 5, 101, 7] as const;
  const ofi = (bid: number, bidSize: number, ask: number, askSize: number): number => orderFlowImbalance(bid, bidSize, ask, askSize, prev[0], prev[1], prev[2], prev[3]);

  it('bid price up: the whole new bid queue counts as buy flow', () => {
    // 1{Pb >= Pb'} qb = 3, 1{Pb <= Pb'} = 0; ask unchanged: -7 + 7 = 0
    expect(ofi(100.5, 3, 101, 7)).toBe(3);
  });

  it('bid price down: the whole old bid queue counts as lost buy interest', () => {
    // 1{Pb >= Pb'} = 0, -1{Pb <= Pb'} qb' = -5
    expect(ofi(99.5, 9, 101, 7)).toBe(-5);
  });

  it('bid price unchanged: the change of the bid queue', () => {
    expect(ofi(100, 8, 101, 7)).toBe(8 - 5);
  });

  it('ask price down: the whole new ask queue counts as sell flow', () => {
    // -1{Pa <= Pa'} qa = -2, 1{Pa >= Pa'} = 0
    expect(ofi(100, 5, 100.5, 2)).toBe(-2);
  });

  it('ask price up: the whole old ask queue counts as removed sell interest', () => {
    // 1{Pa >= Pa'} qa' = +7
    expect(ofi(100, 5, 102, 11)).toBe(7);
  });

  it('ask price unchanged: minus the change of the ask queue', () => {
    expect(ofi(100, 5, 101, 4)).toBe(-(4 - 7));
  });

  it('the extractor scales e by the four level-1 sizes, so a venue quoting in lots or in coins agrees', () => {
    const scaled = (unit: number): number => {
      const extractor = new FeatureExtractor(1);
      const out = new Float64Array(extractor.dimension);
      extractor.extract(book(0, [100, 5 * unit], [101, 7 * unit]), out);
      extractor.extract(book(10, [100.5, 3 * unit], [101, 4 * unit]), out);
      return out[7];
    };
    // bid up: +3; ask unchanged: -4 + 7 = +3; e = 6; sizes 3 + 5 + 4 + 7 = 19
    expect(scaled(1)).toBeCloseTo(6 / 19, 14);
    expect(scaled(0.001)).toBeCloseTo(6 / 19, 14);
    expect(scaled(1000)).toBeCloseTo(6 / 19, 14);
  });
});

describe('FeatureExtractor reset and state', () => {
  const a = book(1000, [100, 2, 99, 3], [101, 1, 102, 5]);
  const b = book(1250, [100.5, 1.5, 100, 3.5], [101, 3, 102, 5]);
  const c = book(1300, [100, 1, 99, 2], [100.5, 2, 101, 1]);

  it('after reset the next snapshot is a first snapshot, and the one after measures from it', () => {
    const extractor = new FeatureExtractor(2);
    const out = new Float64Array(extractor.dimension);
    extractor.extract(a, out);
    extractor.reset();
    extractor.extract(b, out);
    expect([out[11], out[12], out[13]]).toEqual([0, 0, 0]);

    const fresh = new FeatureExtractor(2);
    const freshOut = new Float64Array(fresh.dimension);
    fresh.extract(b, freshOut);
    expect(Array.from(out)).toEqual(Array.from(freshOut));

    extractor.extract(c, out);
    // measured from b, not from a: gap log1p(1300 - 1250), return ln(100.25 / 100.75)
    expect(out[13]).toBeCloseTo(Math.log1p(50), 14);
    expect(out[12]).toBeCloseTo(Math.log(100.25 / 100.75) * 1e4, 10);
  });

  it('a restored state continues exactly where the original left off', () => {
    const original = new FeatureExtractor(2);
    const out = new Float64Array(original.dimension);
    original.extract(a, out);
    original.extract(b, out);
    const restored = new FeatureExtractor(2);
    restored.setState(original.getState());
    const restoredOut = new Float64Array(restored.dimension);
    original.extract(c, out);
    restored.extract(c, restoredOut);
    expect(Array.from(restoredOut)).toEqual(Array.from(out));
  });

  it('refuses a state of another level count or format', () => {
    const state = new FeatureExtractor(3).getState();
    expect(() => new FeatureExtractor(2).setState(state)).toThrow(/levels 3/);
    expect(() => new FeatureExtractor(2).setState(new Float64Array(4))).toThrow(/format/);
  });
});

// ---------------------------------------------------------------------------------------
// Real data: LOBSTER AAPL 2012-06-21, first 200 events at 10 levels (from the excerpt in fixtures/lobster/),
// compared with a plain re-derivation of every feature from its definition.

interface Level {
  price: number;
  size: number;
}
interface RecordedBook {
  ts: number;
  bids: Level[];
  asks: Level[];
}

const fixtureDir = fileURLToPath(new URL('../../fixtures/lobster/', import.meta.url));

function readLobsterExcerpt(): RecordedBook[] {
  const books = readFileSync(`${fixtureDir}AAPL_2012-06-21_34200000_57600000_orderbook_10.csv`, 'utf8').trim().split('\n').slice(0, 200);
  const messages = readFileSync(`${fixtureDir}AAPL_2012-06-21_34200000_57600000_message_10.csv`, 'utf8').trim().split('\n').slice(0, 200);
  return books.map((row, r) => {
    const cells = row.split(',').map(Number);
    const bids: Level[] = [];
    const asks: Level[] = [];
    // ask_px, ask_sz, bid_px, bid_sz per level; prices in dollars x 10000; empty levels have size 0
    for (let c = 0; c + 3 < cells.length; c += 4) {
      if (cells[c + 1] > 0) asks.push({ price: cells[c] / 10000, size: cells[c + 1] });
      if (cells[c + 3] > 0) bids.push({ price: cells[c + 2] / 10000, size: cells[c + 3] });
    }
    return { ts: Number(messages[r].split(',')[0]) * 1000, bids, asks };
  });
}

function toSnapshot(recorded: RecordedBook): BookSnapshot {
  return book(
    recorded.ts,
    recorded.bids.flatMap((l) => [l.price, l.size]),
    recorded.asks.flatMap((l) => [l.price, l.size]),
  );
}

function referenceFeatures(levels: number, current: RecordedBook, previous: RecordedBook | null): number[] {
  const mid = (current.bids[0].price + current.asks[0].price) / 2;
  const features: number[] = [];
  const deepest = (side: Level[], i: number): Level => side[Math.min(i, side.length - 1)];
  for (let i = 0; i < levels; i++) {
    features.push(((mid - deepest(current.bids, i).price) / mid) * 1e4);
    features.push(((deepest(current.asks, i).price - mid) / mid) * 1e4);
    features.push(i < current.bids.length ? Math.log(1 + current.bids[i].size) : 0);
    features.push(i < current.asks.length ? Math.log(1 + current.asks[i].size) : 0);
  }
  const qb = current.bids[0].size;
  const qa = current.asks[0].size;
  const bidDepth = current.bids.slice(0, levels).reduce((sum, l) => sum + l.size, 0);
  const askDepth = current.asks.slice(0, levels).reduce((sum, l) => sum + l.size, 0);
  features.push(((current.asks[0].price - current.bids[0].price) / mid) * 1e4);
  features.push((qb - qa) / (qb + qa));
  features.push((bidDepth - askDepth) / (bidDepth + askDepth));
  if (!previous) return [...features, 0, 0, 0, ...Array<number>(levels - 1).fill(0)];
  const pb = current.bids[0].price;
  const pa = current.asks[0].price;
  const pbPrev = previous.bids[0].price;
  const paPrev = previous.asks[0].price;
  const qbPrev = previous.bids[0].size;
  const qaPrev = previous.asks[0].size;
  const e = (pb >= pbPrev ? qb : 0) - (pb <= pbPrev ? qbPrev : 0) - (pa <= paPrev ? qa : 0) + (pa >= paPrev ? qaPrev : 0);
  const prevMid = (pbPrev + paPrev) / 2;
  features.push(e / (qb + qbPrev + qa + qaPrev));
  features.push(Math.log(mid / prevMid) * 1e4);
  features.push(Math.log(1 + (current.ts - previous.ts)));
  // Multi-level OFI (Xu, Yang, Kong & Wang 2019): the same formula on level m of both books.
  for (let m = 1; m < levels; m++) {
    if (m >= current.bids.length || m >= current.asks.length || m >= previous.bids.length || m >= previous.asks.length) {
      features.push(0);
      continue;
    }
    const [b, a, bp, ap] = [current.bids[m], current.asks[m], previous.bids[m], previous.asks[m]];
    const em = (b.price >= bp.price ? b.size : 0) - (b.price <= bp.price ? bp.size : 0) - (a.price <= ap.price ? a.size : 0) + (a.price >= ap.price ? ap.size : 0);
    features.push(em / (b.size + bp.size + a.size + ap.size));
  }
  return features;
}

describe('FeatureExtractor on a real LOBSTER excerpt', () => {
  const recorded = readLobsterExcerpt();

  it('the excerpt is 200 sound 10-level books', () => {
    expect(recorded).toHaveLength(200);
    for (const r of recorded) {
      const snapshot = toSnapshot(r);
      expect(checkBook(snapshot.bids, snapshot.asks)).toBeNull();
      expect(snapshot.bids.length).toBe(20);
    }
  });

  for (const levels of [5, 12]) {
    it(`matches the definition on every book at L = ${levels}${levels > 10 ? ' (padding two levels)' : ''}`, () => {
      const extractor = new FeatureExtractor(levels);
      const out = new Float64Array(extractor.dimension);
      let priceMoves = 0;
      let nonZeroOfi = 0;
      recorded.forEach((r, i) => {
        extractor.extract(toSnapshot(r), out);
        const previous = i > 0 ? recorded[i - 1] : null;
        expectClose(out.subarray(0, 5 * levels + 5), referenceFeatures(levels, r, previous), 1e-9);
        if (out[4 * levels + 4] !== 0) priceMoves++;
        if (out[4 * levels + 3] !== 0) nonZeroOfi++;
      });
      // The excerpt exercises the "since previous" features, not only zeros.
      expect(priceMoves).toBeGreaterThan(5);
      expect(nonZeroOfi).toBeGreaterThan(20);
    });
  }
});

// ---------------------------------------------------------------------------------------
// Properties: any sound book, however extreme, gives finite features and finite scores.

/** A sound book: distinct finite prices, the lower part bids (descending), the upper asks. */
const soundBook = (priceArb: fc.Arbitrary<number>, sizeArb: fc.Arbitrary<number>) =>
  fc
    .uniqueArray(priceArb, { minLength: 2, maxLength: 24, comparator: 'SameValueZero' })
    .chain((prices) => {
      const sorted = [...prices].sort((x, y) => x - y);
      return fc.record({
        sorted: fc.constant(sorted),
        split: fc.integer({ min: 1, max: sorted.length - 1 }),
        sizes: fc.array(sizeArb, { minLength: sorted.length, maxLength: sorted.length }),
        ts: fc.double({ min: -1e15, max: 1e15, noNaN: true }),
      });
    })
    .map(({ sorted, split, sizes, ts }) => {
      const bids: number[] = [];
      const asks: number[] = [];
      for (let i = split - 1; i >= 0; i--) bids.push(sorted[i], sizes[i]);
      for (let i = split; i < sorted.length; i++) asks.push(sorted[i], sizes[i]);
      return book(ts, bids, asks);
    });

function allFinite(values: Float64Array): boolean {
  return values.every(Number.isFinite);
}

describe('FeatureExtractor properties', () => {
  const realistic = soundBook(fc.double({ min: 1e-4, max: 1e6, noNaN: true }), fc.double({ min: 1e-8, max: 1e9, noNaN: true }));
  const extreme = soundBook(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.double({ min: Number.MIN_VALUE, noNaN: true, noDefaultInfinity: true }));

  for (const [name, arb] of [
    ['realistic', realistic],
    ['extreme', extreme],
  ] as const) {
    it(`streams of ${name} sound books give finite features and finite normalised values`, () => {
      fc.assert(
        fc.property(fc.array(arb, { minLength: 1, maxLength: 20 }), fc.integer({ min: 1, max: 12 }), (stream, levels) => {
          const extractor = new FeatureExtractor(levels);
          const normaliser = new OnlineNormaliser(extractor.dimension, { halfLife: 5 });
          const features = new Float64Array(extractor.dimension);
          const scores = new Float64Array(extractor.dimension);
          for (const snapshot of stream) {
            expect(checkBook(snapshot.bids, snapshot.asks)).toBeNull();
            extractor.extract(snapshot, features);
            normaliser.normalise(features, scores);
            if (!allFinite(features) || !allFinite(scores)) return false;
          }
          return true;
        }),
        { numRuns: 300 },
      );
    });
  }

  it('imbalances and scaled OFI stay within [-1, 1] on realistic books', () => {
    fc.assert(
      fc.property(fc.array(realistic, { minLength: 2, maxLength: 10 }), (stream) => {
        const extractor = new FeatureExtractor(4);
        const out = new Float64Array(extractor.dimension);
        for (const snapshot of stream) {
          extractor.extract(snapshot, out);
          for (const k of [17, 18, 19]) if (!(Math.abs(out[k]) <= 1)) return false;
        }
        return true;
      }),
      { numRuns: 200 },
    );
  });
});
