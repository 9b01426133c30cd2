import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { L2Book } from '../../src/book/l2-book.js';
import type { BookSide } from '../../src/book/l2-book.js';
import { checkBook } from '../../src/domain/book-check.js';

const fixture = new URL('../../fixtures/binance/spot_btcusdt_20240808.head3000.gz', import.meta.url);

/** The REST depth snapshot recorded on line 8 of the fixture, best first, as flat arrays. */
function recordedSnapshot(): { bids: Float64Array; asks: Float64Array } {
  const line = gunzipSync(readFileSync(fixture)).toString('utf8').split('\n')[7];
  const body = JSON.parse(line.slice(line.indexOf(' ') + 1)) as { bids: string[][]; asks: string[][] };
  const flat = (levels: string[][]) => Float64Array.from(levels.flatMap(([price, size]) => [Number(price), Number(size)]));
  return { bids: flat(body.bids), asks: flat(body.asks) };
}

/** An independent reference book: a Map per side, sorted on every read. */
class ReferenceBook {
  readonly sides = { bid: new Map<number, number>(), ask: new Map<number, number>() };

  set(side: BookSide, price: number, size: number): void {
    if (size === 0) this.sides[side].delete(price);
    else this.sides[side].set(price, size);
  }

  top(side: BookSide, levels: number): number[] {
    const sorted = [...this.sides[side].entries()].sort((a, b) => (side === 'bid' ? b[0] - a[0] : a[0] - b[0]));
    return sorted.slice(0, levels).flat();
  }
}

describe('L2Book', () => {
  it('keeps each side sorted best first and sizes the top to the real depth', () => {
    const book = new L2Book(16);
    book.setLevel('bid', 100, 1);
    book.setLevel('bid', 102, 2);
    book.setLevel('bid', 101, 3);
    book.setLevel('ask', 105, 4);
    book.setLevel('ask', 103, 5);
    expect([...book.topBids(10)]).toEqual([102, 2, 101, 3, 100, 1]);
    expect([...book.topAsks(10)]).toEqual([103, 5, 105, 4]);
    expect([...book.topBids(2)]).toEqual([102, 2, 101, 3]);
    expect(book.topAsks(0).length).toBe(0);
    expect(book.bestBid()).toBe(102);
    expect(book.bestAsk()).toBe(103);
    expect(book.depth('bid')).toBe(3);
    expect(book.depth('ask')).toBe(2);
  });

  it('overwrites sizes, deletes on size 0 and ignores deleting a missing level', () => {
    const book = new L2Book();
    book.setLevel('ask', 10, 1);
    book.setLevel('ask', 11, 1);
    book.setLevel('ask', 10, 7);
    expect([...book.topAsks(5)]).toEqual([10, 7, 11, 1]);
    book.setLevel('ask', 10, 0);
    book.setLevel('ask', 12.5, 0);
    expect([...book.topAsks(5)]).toEqual([11, 1]);
    expect(book.depth('ask')).toBe(1);
  });

  it('reports NaN best prices on an empty side and empties both sides on reset', () => {
    const book = new L2Book();
    expect(book.bestBid()).toBeNaN();
    expect(book.bestAsk()).toBeNaN();
    book.setLevel('bid', 1, 1);
    book.setLevel('ask', 2, 1);
    book.reset();
    expect(book.depth('bid')).toBe(0);
    expect(book.depth('ask')).toBe(0);
    expect(book.topBids(10).length).toBe(0);
  });

  it('refuses non-finite prices and negative or non-finite sizes', () => {
    const book = new L2Book();
    expect(() => book.setLevel('bid', Number.NaN, 1)).toThrow(RangeError);
    expect(() => book.setLevel('bid', Number.POSITIVE_INFINITY, 1)).toThrow(RangeError);
    expect(() => book.setLevel('ask', 1, -1)).toThrow(RangeError);
    expect(() => book.setLevel('ask', 1, Number.NaN)).toThrow(RangeError);
    expect(() => book.replaceSide('ask', new Float64Array([1, 2, 3]))).toThrow(RangeError);
    expect(book.depth('ask')).toBe(0);
  });

  it('replaceSide accepts any order, skips size 0 and lets a later duplicate win', () => {
    const book = new L2Book(16);
    book.setLevel('bid', 50, 1);
    book.replaceSide('bid', new Float64Array([10, 1, 30, 3, 20, 2, 30, 4, 40, 0]));
    expect([...book.topBids(10)]).toEqual([30, 4, 20, 2, 10, 1]);
    book.replaceSide('bid', new Float64Array([10, 1, 10, 0]));
    expect(book.depth('bid')).toBe(0);
  });

  it('writeTop fills a caller buffer without allocating and never overruns it', () => {
    const book = new L2Book();
    for (let i = 1; i <= 5; i += 1) book.setLevel('ask', 100 + i, i);
    const out = new Float64Array(6);
    expect(book.writeTop('ask', 10, out)).toBe(3);
    expect([...out]).toEqual([101, 1, 102, 2, 103, 3]);
    expect(book.writeTop('ask', 2, out)).toBe(2);
  });

  it('loads the recorded 1000-level Binance snapshot and returns its top levels unchanged', () => {
    const { bids, asks } = recordedSnapshot();
    const book = new L2Book(8); // forces the storage to grow
    book.replaceSide('bid', bids);
    book.replaceSide('ask', asks);
    expect(book.depth('bid')).toBe(bids.length / 2);
    expect(book.depth('ask')).toBe(asks.length / 2);
    const topBids = book.topBids(20);
    const topAsks = book.topAsks(20);
    expect([...topBids]).toEqual([...bids.subarray(0, 40)]);
    expect([...topAsks]).toEqual([...asks.subarray(0, 40)]);
    expect(checkBook(topBids, topAsks)).toBeNull();
    // Same book built level by level, in the recorded (best first) order.
    const incremental = new L2Book(8);
    for (let i = 0; i < bids.length; i += 2) incremental.setLevel('bid', bids[i], bids[i + 1]);
    for (let i = 0; i < asks.length; i += 2) incremental.setLevel('ask', asks[i], asks[i + 1]);
    expect([...incremental.topBids(1000)]).toEqual([...book.topBids(1000)]);
    expect([...incremental.topAsks(1000)]).toEqual([...book.topAsks(1000)]);
  });

  it('agrees with a Map-and-sort reference over random update sequences', () => {
    const side = fc.constantFrom<BookSide>('bid', 'ask');
    // A small price grid makes overwrites and deletes of present levels frequent.
    const price = fc.integer({ min: 1, max: 60 }).map((tick) => tick * 0.5);
    const size = fc.oneof(fc.constant(0), fc.double({ min: 1e-8, max: 100, noNaN: true }));
    const operation = fc.oneof(
      { weight: 20, arbitrary: fc.tuple(fc.constant('set' as const), side, price, size) },
      { weight: 1, arbitrary: fc.tuple(fc.constant('replace' as const), side, fc.array(fc.tuple(price, size), { maxLength: 30 })) },
    );
    fc.assert(
      fc.property(fc.array(operation, { maxLength: 300 }), fc.integer({ min: 1, max: 40 }), (operations, levels) => {
        const book = new L2Book(16);
        const reference = new ReferenceBook();
        for (const op of operations) {
          if (op[0] === 'set') {
            book.setLevel(op[1], op[2], op[3]);
            reference.set(op[1], op[2], op[3]);
          } else {
            book.replaceSide(op[1], Float64Array.from(op[2].flat()));
            reference.sides[op[1]].clear();
            for (const [p, s] of op[2]) reference.set(op[1], p, s);
          }
        }
        expect([...book.topBids(levels)]).toEqual(reference.top('bid', levels));
        expect([...book.topAsks(levels)]).toEqual(reference.top('ask', levels));
        expect(book.depth('bid')).toBe(reference.sides.bid.size);
        expect(book.depth('ask')).toBe(reference.sides.ask.size);
      }),
      { numRuns: 300 },
    );
  });
});

describe('L2Book.truncate', () => {
  it('keeps the best levels of one side and leaves the other alone', () => {
    const book = new L2Book(4);
    for (const price of [100, 99, 98, 97, 96]) book.setLevel('bid', price, price / 100);
    for (const price of [101, 102, 103]) book.setLevel('ask', price, 1);
    book.truncate('bid', 3);
    expect([...book.topBids(10)]).toEqual([100, 1, 99, 0.99, 98, 0.98]);
    expect(book.depth('ask')).toBe(3);
    // The dropped levels are really gone: setting a better one still leaves three after truncating.
    book.setLevel('bid', 100.5, 2);
    book.truncate('bid', 3);
    expect([...book.topBids(10)]).toEqual([100.5, 2, 100, 1, 99, 0.99]);
    book.truncate('ask', 5);
    expect(book.depth('ask')).toBe(3);
  });
});
