import { describe, expect, it } from 'vitest';
import type { BookSnapshot, MarketMessage, Trade } from '../../src/domain/types.js';
import { rejected } from '../../src/domain/types.js';
import { BookRegistry, MAX_HELD_PER_SYMBOL } from '../../src/venues/book-registry.js';

interface Diff {
  readonly type: 'diff';
  readonly id: number;
}

const trade = (id: number, symbol = 'BTCUSDT'): Trade => ({ type: 'trade', symbol, ts: id, localTs: id, price: 100, size: 1, aggressor: 1, tradeId: String(id) });
const book = (symbol = 'BTCUSDT'): BookSnapshot => ({
  type: 'book_snapshot',
  symbol,
  ts: 1,
  localTs: 1,
  seq: 1,
  bids: new Float64Array([99, 1]),
  asks: new Float64Array([101, 1]),
});
const registry = () => new BookRegistry<null, Diff>(() => null);
const held = (items: readonly (Diff | Trade)[]) => items.map((item) => (item.type === 'diff' ? `D${item.id}` : `T${item.tradeId}`));

describe('book registry', () => {
  it('announces a lost book only when a book of it went out since it was last lost', () => {
    const books = registry();
    const out: MarketMessage[] = [];
    expect(books.lose('BTCUSDT', 5, 'gap', out)).toBe(false);
    expect(out).toEqual([]);
    const entry = books.entry('BTCUSDT');
    books.synced(entry);
    books.emit(entry, rejected('crossed_book', 'bids[0]: crossed', '', 'BTCUSDT'), out);
    expect(books.lose('BTCUSDT', 6, 'gap', out)).toBe(false);
    books.synced(entry);
    books.emit(entry, book(), out);
    expect(books.lose('BTCUSDT', 7, 'gap', out)).toBe(true);
    expect(out.map((m) => m.type)).toEqual(['rejected', 'book_snapshot', 'disconnect']);
    expect(out[2]).toEqual({ type: 'disconnect', symbol: 'BTCUSDT', localTs: 7, reason: 'gap' });
    // Lost: no live book until the next snapshot, and the resync asked for once.
    expect(books.live('BTCUSDT')).toBeUndefined();
    expect(books.takeResyncRequests()).toEqual(['BTCUSDT']);
    expect(books.takeResyncRequests()).toEqual([]);
  });

  it('holds trades behind held frames, in arrival order, and asks for the snapshot once', () => {
    const books = registry();
    const out: MarketMessage[] = [];
    books.trade(trade(1), out); // no book yet: nothing to wait behind
    const entry = books.entry('BTCUSDT');
    books.hold(entry, { type: 'diff', id: 10 }, out);
    books.trade(trade(2), out);
    books.trade(trade(3, 'ETHUSDT'), out);
    books.hold(entry, { type: 'diff', id: 11 }, out);
    expect(out.map((m) => (m as Trade).tradeId)).toEqual(['1', '3']);
    expect(books.takeResyncRequests()).toEqual(['BTCUSDT']);
    expect(held(books.release(entry))).toEqual(['D10', 'T2', 'D11']);
    books.synced(entry);
    books.trade(trade(4), out);
    expect(out.map((m) => (m as Trade).tradeId)).toEqual(['1', '3', '4']);
  });

  it('past its bound drops the oldest held frame and hands the oldest held trade over', () => {
    const books = registry();
    const out: MarketMessage[] = [];
    const entry = books.entry('BTCUSDT');
    books.hold(entry, trade(0), out);
    for (let i = 1; i < MAX_HELD_PER_SYMBOL; i += 1) books.hold(entry, { type: 'diff', id: i }, out);
    books.hold(entry, { type: 'diff', id: MAX_HELD_PER_SYMBOL }, out);
    expect(out).toEqual([trade(0)]);
    books.hold(entry, trade(MAX_HELD_PER_SYMBOL + 1), out);
    expect(out).toHaveLength(1);
    const kept = held(entry.held);
    expect(kept).toHaveLength(MAX_HELD_PER_SYMBOL);
    expect(kept[0]).toBe('D2');
    expect(kept.at(-1)).toBe(`T${MAX_HELD_PER_SYMBOL + 1}`);
  });

  it('releases only the held trades when no snapshot is coming, keeping the frames', () => {
    const books = registry();
    const out: MarketMessage[] = [];
    const entry = books.entry('BTCUSDT');
    books.hold(entry, { type: 'diff', id: 1 }, out);
    books.trade(trade(2), out);
    books.hold(entry, { type: 'diff', id: 3 }, out);
    books.trade(trade(4), out);
    expect(books.releaseTrades().map((t) => t.tradeId)).toEqual(['2', '4']);
    expect(held(entry.held)).toEqual(['D1', 'D3']);
    expect(books.releaseTrades()).toEqual([]);
  });

  it('forgets a book silently, and reset forgets everything', () => {
    const books = registry();
    const out: MarketMessage[] = [];
    const entry = books.entry('BTCUSDT');
    books.synced(entry);
    books.emit(entry, book(), out);
    books.forget('BTCUSDT');
    expect(books.lose('BTCUSDT', 1, 'gap', out)).toBe(false);
    expect(out.map((m) => m.type)).toEqual(['book_snapshot']);
    books.entry('ETHUSDT');
    books.reset();
    expect(books.find('ETHUSDT')).toBeUndefined();
    expect(books.takeResyncRequests()).toEqual([]);
  });
});
