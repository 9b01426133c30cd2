import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { BookSnapshot, Disconnect, MarketMessage, Rejected, Trade } from '../../src/domain/types.js';
import { ConflatingQueue, DEFAULT_MAX_PENDING_FLOW } from '../../src/ingest/live-client.js';

const snap = (symbol: string, seq: number): BookSnapshot => ({
  type: 'book_snapshot',
  symbol,
  ts: seq,
  localTs: seq,
  seq,
  bids: Float64Array.of(99, 1),
  asks: Float64Array.of(101, 1),
});
const trade = (symbol: string, id: number): Trade => ({
  type: 'trade',
  symbol,
  ts: id,
  localTs: id,
  price: 100,
  size: 1,
  aggressor: 1,
  tradeId: String(id),
});
const gone = (symbol: string | null): Disconnect => ({ type: 'disconnect', symbol, localTs: 0, reason: 'test' });
const reject = (symbol: string | null): Rejected => ({ type: 'rejected', reason: 'malformed_json', detail: 'frame: not JSON', sample: '{', symbol });

function drain(queue: ConflatingQueue): MarketMessage[] {
  const out: MarketMessage[] = [];
  for (let m = queue.shift(); m !== undefined; m = queue.shift()) out.push(m);
  return out;
}

const label = (m: MarketMessage): string =>
  m.type === 'book_snapshot'
    ? `${m.symbol}${m.seq}`
    : m.type === 'trade'
      ? `t${m.symbol}${m.tradeId}`
      : m.type === 'disconnect'
        ? `D(${m.symbol ?? '*'})`
        : `R(${m.symbol ?? '*'})`;

describe('ConflatingQueue', () => {
  const limits = { maxPendingPerSymbol: 1, maxPendingRejections: 4, capacity: 100 };

  it('replaces a waiting snapshot of the same symbol in place', () => {
    const queue = new ConflatingQueue(limits);
    [snap('A', 1), snap('B', 1), snap('A', 2), snap('A', 3)].forEach((m) => queue.push(m));
    expect(drain(queue).map(label)).toEqual(['A3', 'B1']);
    expect(queue.conflated).toBe(2);
  });

  it('never lets a snapshot jump over a disconnect or a rejection', () => {
    const queue = new ConflatingQueue(limits);
    [snap('A', 1), gone(null), snap('A', 2), reject(null), snap('A', 3), snap('A', 4)].forEach((m) => queue.push(m));
    expect(drain(queue).map(label)).toEqual(['A1', 'D(*)', 'A2', 'R(*)', 'A4']);
    expect(queue.conflated).toBe(1);
  });

  it('lets maxPendingPerSymbol snapshots wait before conflating into the newest', () => {
    const queue = new ConflatingQueue({ ...limits, maxPendingPerSymbol: 3 });
    for (let seq = 1; seq <= 6; seq += 1) queue.push(snap('A', seq));
    expect(drain(queue).map(label)).toEqual(['A1', 'A2', 'A6']);
  });

  it('appends again once the consumer has taken the waiting snapshot', () => {
    const queue = new ConflatingQueue(limits);
    queue.push(snap('A', 1));
    expect(label(queue.shift()!)).toBe('A1');
    queue.push(snap('A', 2));
    queue.push(snap('A', 3));
    expect(drain(queue).map(label)).toEqual(['A3']);
  });

  it('drops rejections over the cap and counts them', () => {
    const queue = new ConflatingQueue({ ...limits, maxPendingRejections: 2 });
    for (let i = 0; i < 5; i += 1) queue.push(reject('A'));
    expect(queue.length).toBe(2);
    expect(queue.dropped).toBe(3);
    queue.shift();
    queue.push(reject('B'));
    expect(drain(queue).map(label)).toEqual(['R(A)', 'R(B)']);
  });

  it('compacts at capacity: superseded snapshots and redundant disconnects go, order stays', () => {
    const queue = new ConflatingQueue({ maxPendingPerSymbol: 1, maxPendingRejections: 0, capacity: ConflatingQueue.minimumCapacity(1, 0) });
    expect(ConflatingQueue.minimumCapacity(1, 0)).toBe(6);
    [snap('A', 1), gone(null), snap('A', 2), gone('A'), gone(null), snap('A', 3), gone(null)].forEach((m) => queue.push(m));
    // A1 and A2 are superseded by A3; with A2 gone, D(A) and the second D(*) follow the
    // first D(*) with no book between and add nothing.
    expect(queue.conflated).toBe(2);
    expect(queue.dropped).toBe(2);
    expect(drain(queue).map(label)).toEqual(['D(*)', 'A3', 'D(*)']);
  });

  it('never conflates trades, and moves a conflated book after the trades that arrived before it', () => {
    const queue = new ConflatingQueue(limits);
    [snap('A', 1), trade('A', 1), snap('B', 1), snap('A', 2), trade('A', 2), trade('B', 2), snap('A', 3), snap('B', 3)].forEach((m) => queue.push(m));
    // A1 has trade 1 after it, so A2 goes after that trade; A2 has trade 2 after it, so A3 goes
    // after trade 2. B1 has no trade of B after it until tB2, so B3 goes after tB2 too.
    expect(drain(queue).map(label)).toEqual(['tA1', 'tA2', 'tB2', 'A3', 'B3']);
    expect(queue.conflated).toBe(3);
    expect(queue.droppedFlow).toBe(0);
  });

  it('overwrites a waiting book in place when only trades of other symbols follow it', () => {
    const queue = new ConflatingQueue(limits);
    [snap('A', 1), trade('B', 1), snap('A', 2)].forEach((m) => queue.push(m));
    expect(drain(queue).map(label)).toEqual(['A2', 'tB1']);
  });

  it('far behind, drops newer trades, counts them and marks each run of drops with a disconnect of the symbol', () => {
    const queue = new ConflatingQueue({ ...limits, maxPendingFlow: 3 });
    [snap('A', 1), trade('A', 1), trade('A', 2), trade('B', 3), trade('A', 4), trade('A', 5), trade('B', 6), snap('A', 2), trade('A', 7)].forEach((m) => queue.push(m));
    expect(queue.flowLength).toBe(3);
    expect(queue.droppedFlow).toBe(4);
    // tA4 and tA5 are one run (one marker), tB6 another; A2 ends A's run, so tA7 starts a new one.
    expect(drain(queue).map(label)).toEqual(['A1', 'tA1', 'tA2', 'tB3', 'D(A)', 'D(B)', 'A2', 'D(A)']);
    // Room again once the consumer caught up.
    queue.push(trade('A', 8));
    expect(drain(queue).map(label)).toEqual(['tA8']);
    expect(DEFAULT_MAX_PENDING_FLOW).toBe(10_000);
  });

  it('holds a stalled consumer at the default bound: an hour of a busy symbol in bounded memory', () => {
    const queue = new ConflatingQueue({ ...limits, maxPendingFlow: undefined });
    // 10 books and 200 trades a second for an hour, nothing taken.
    let id = 0;
    for (let second = 0; second < 3600; second += 1) {
      for (let book = 0; book < 10; book += 1) {
        queue.push(snap('A', (id += 1)));
        for (let k = 0; k < 20; k += 1) queue.push(trade('A', (id += 1)));
      }
    }
    expect(queue.flowLength).toBe(DEFAULT_MAX_PENDING_FLOW);
    expect(queue.droppedFlow).toBe(3600 * 200 - DEFAULT_MAX_PENDING_FLOW);
    expect(queue.length).toBeLessThanOrEqual(DEFAULT_MAX_PENDING_FLOW + limits.capacity);
    const out = drain(queue);
    // The last book survives, after one marker for the run of drops that followed it.
    expect(out.slice(-2).map(label)).toEqual([`A${id - 20}`, 'D(A)']);
  });

  it('marks no run of dropped trades twice after a disconnect that already covers the symbol', () => {
    const queue = new ConflatingQueue({ ...limits, maxPendingFlow: 1 });
    [trade('A', 1), gone(null), trade('A', 2), trade('B', 3)].forEach((m) => queue.push(m));
    expect(queue.droppedFlow).toBe(2);
    // B had no slot when D(*) was queued, so its drop is marked by a disconnect of its own.
    expect(drain(queue).map(label)).toEqual(['tA1', 'D(*)', 'D(B)']);
  });

  it('rejects limits that cannot work', () => {
    expect(() => new ConflatingQueue({ ...limits, maxPendingPerSymbol: 0 })).toThrow('maxPendingPerSymbol: must be an integer >= 1, got 0');
    expect(() => new ConflatingQueue({ ...limits, capacity: 0.5 })).toThrow('capacity: must be an integer >= 1, got 0.5');
    expect(() => new ConflatingQueue({ ...limits, maxPendingFlow: 0 })).toThrow('maxPendingFlow: must be an integer >= 1, got 0');
  });

  // Random interleavings of pushes and shifts, checked against what the consumer must be
  // able to rely on.
  const SYMBOLS = ['A', 'B', 'C'];
  const symbolOrAll = fc.constantFrom<string | null>('A', 'B', 'C', null);
  const operation = fc.oneof(
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('snapshot' as const), symbol: fc.constantFrom(...SYMBOLS) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('disconnect' as const), symbol: symbolOrAll }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('rejected' as const), symbol: symbolOrAll }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('shift' as const), symbol: fc.constant(null) }) },
  );

  it('stays bounded, keeps barriers in place, never delivers an older book after a newer one, ends with the newest', () => {
    fc.assert(
      fc.property(
        fc.array(operation, { maxLength: 400 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 0, max: 5 }),
        (operations, maxPendingPerSymbol, maxPendingRejections) => {
          const capacity = ConflatingQueue.minimumCapacity(SYMBOLS.length, maxPendingRejections);
          const queue = new ConflatingQueue({ maxPendingPerSymbol, maxPendingRejections, capacity });
          const pushOrder = new Map<MarketMessage, number>();
          const pushed: MarketMessage[] = [];
          const delivered: MarketMessage[] = [];
          const acceptedRejections: MarketMessage[] = [];
          let pendingRejections = 0;
          let seq = 0;
          const take = (): void => {
            const m = queue.shift();
            if (m === undefined) return;
            delivered.push(m);
            if (m.type === 'rejected') pendingRejections -= 1;
          };
          for (const op of operations) {
            if (op.kind === 'shift') {
              take();
              continue;
            }
            const message = op.kind === 'snapshot' ? snap(op.symbol, (seq += 1)) : op.kind === 'disconnect' ? gone(op.symbol) : reject(op.symbol);
            if (message.type === 'rejected' && pendingRejections < maxPendingRejections) {
              pendingRejections += 1;
              acceptedRejections.push(message);
            }
            pushOrder.set(message, pushed.length);
            pushed.push(message);
            queue.push(message);
            expect(queue.length).toBeLessThanOrEqual(capacity);
          }
          while (queue.length > 0) take();
          expect(queue.maxLength).toBeLessThanOrEqual(capacity);

          // Accounting: every message is delivered, conflated or dropped, exactly once.
          expect(new Set(delivered).size).toBe(delivered.length);
          expect(delivered.length + queue.conflated + queue.dropped).toBe(pushed.length);
          expect(delivered.filter((m) => m.type === 'rejected')).toEqual(acceptedRejections);

          // Barriers keep their place relative to every snapshot delivered around them.
          const at = (m: MarketMessage): number => pushOrder.get(m)!;
          const barriers = delivered.map((m, i) => ({ m, i })).filter(({ m }) => m.type !== 'book_snapshot');
          delivered.forEach((m, i) => {
            if (m.type !== 'book_snapshot') return;
            for (const barrier of barriers) expect(at(m) < at(barrier.m)).toBe(i < barrier.i);
          });
          expect(barriers.map(({ m }) => at(m))).toEqual([...barriers.map(({ m }) => at(m))].sort((a, b) => a - b));

          for (const symbol of SYMBOLS) {
            const books = delivered.filter((m): m is BookSnapshot => m.type === 'book_snapshot' && m.symbol === symbol);
            for (let i = 1; i < books.length; i += 1) expect(books[i].seq!).toBeGreaterThan(books[i - 1].seq!);
            const lastPushed = pushed.filter((m) => m.type === 'book_snapshot' && m.symbol === symbol).at(-1);
            expect(books.at(-1)).toBe(lastPushed);

            // Continuity: if a disconnect for this symbol was pushed between two delivered
            // books of it, one is delivered between them too.
            const covers = (m: MarketMessage): boolean => m.type === 'disconnect' && (m.symbol === null || m.symbol === symbol);
            for (let i = 1; i < books.length; i += 1) {
              const pushedBetween = pushed.slice(at(books[i - 1]) + 1, at(books[i])).some(covers);
              const deliveredBetween = delivered.slice(delivered.indexOf(books[i - 1]) + 1, delivered.indexOf(books[i])).some(covers);
              expect(deliveredBetween).toBe(pushedBetween);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  const flowOperation = fc.oneof(
    { weight: 4, arbitrary: operation },
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('trade' as const), symbol: fc.constantFrom(...SYMBOLS) }) },
  );
  const isQueueMarker = (m: MarketMessage): boolean => m.type === 'disconnect' && m.reason.startsWith('consumer behind');

  it('with trades: keeps each symbol in push order, loses no trade uncounted or unmarked, stays bounded', () => {
    fc.assert(
      fc.property(
        fc.array(flowOperation, { maxLength: 400 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 0, max: 3 }),
        fc.integer({ min: 1, max: 8 }),
        (operations, maxPendingPerSymbol, maxPendingRejections, maxPendingFlow) => {
          const capacity = ConflatingQueue.minimumCapacity(SYMBOLS.length, maxPendingRejections);
          const queue = new ConflatingQueue({ maxPendingPerSymbol, maxPendingRejections, capacity, maxPendingFlow });
          const pushOrder = new Map<MarketMessage, number>();
          const pushed: MarketMessage[] = [];
          const delivered: MarketMessage[] = [];
          let id = 0;
          const take = (): void => {
            const m = queue.shift();
            if (m !== undefined) delivered.push(m);
          };
          for (const op of operations) {
            if (op.kind === 'shift') {
              take();
              continue;
            }
            id += 1;
            const message =
              op.kind === 'snapshot' ? snap(op.symbol, id) : op.kind === 'trade' ? trade(op.symbol, id) : op.kind === 'disconnect' ? gone(op.symbol) : reject(op.symbol);
            pushOrder.set(message, pushed.length);
            pushed.push(message);
            queue.push(message);
            expect(queue.flowLength).toBeLessThanOrEqual(maxPendingFlow);
            expect(queue.length - queue.flowLength).toBeLessThanOrEqual(2 * (capacity + maxPendingFlow));
          }
          while (queue.length > 0) take();

          const pushedTrades = pushed.filter((m) => m.type === 'trade');
          const deliveredTrades = delivered.filter((m) => m.type === 'trade');
          expect(new Set(delivered).size).toBe(delivered.length);
          expect(deliveredTrades.length + queue.droppedFlow).toBe(pushedTrades.length);
          if (queue.droppedFlow === 0) {
            expect(delivered.some(isQueueMarker)).toBe(false);
            expect(delivered.length + queue.conflated + queue.dropped).toBe(pushed.length);
          }

          // Pushed barriers keep their place relative to every book and trade delivered around them.
          const at = (m: MarketMessage): number => pushOrder.get(m)!;
          const barriers = delivered.map((m, i) => ({ m, i })).filter(({ m }) => (m.type === 'disconnect' || m.type === 'rejected') && !isQueueMarker(m));
          delivered.forEach((m, i) => {
            if (m.type !== 'book_snapshot' && m.type !== 'trade') return;
            for (const barrier of barriers) expect(at(m) < at(barrier.m)).toBe(i < barrier.i);
          });

          for (const symbol of SYMBOLS) {
            const own = (m: MarketMessage): boolean => (m.type === 'book_snapshot' || m.type === 'trade') && m.symbol === symbol;
            const covers = (m: MarketMessage): boolean => m.type === 'disconnect' && (m.symbol === null || m.symbol === symbol);
            // Books and trades of a symbol come out in the order they went in.
            const sequence = delivered.filter(own).map(at);
            expect(sequence).toEqual([...sequence].sort((a, b) => a - b));
            const books = delivered.filter((m): m is BookSnapshot => m.type === 'book_snapshot' && m.symbol === symbol);
            expect(books.at(-1)).toBe(pushed.filter((m) => m.type === 'book_snapshot' && m.symbol === symbol).at(-1));

            // A trade that went in but did not come out is announced: a disconnect covering its
            // symbol comes out after everything of the symbol that went in before it, and before
            // everything that went in after it.
            const deliveredSet = new Set(delivered);
            const ownDelivered = delivered.map((m, i) => ({ m, i })).filter(({ m }) => own(m));
            for (const lost of pushed.filter((m) => m.type === 'trade' && m.symbol === symbol && !deliveredSet.has(m))) {
              const before = ownDelivered.filter(({ m }) => at(m) < at(lost)).at(-1)?.i ?? -1;
              const after = ownDelivered.find(({ m }) => at(m) > at(lost))?.i ?? delivered.length;
              expect(delivered.slice(before + 1, after).some(covers)).toBe(true);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('is lossless when the consumer keeps up', () => {
    fc.assert(
      fc.property(fc.array(flowOperation, { maxLength: 200 }), (operations) => {
        const queue = new ConflatingQueue({ maxPendingPerSymbol: 1, maxPendingRejections: 1, capacity: 10, maxPendingFlow: 1 });
        const pushed: MarketMessage[] = [];
        const delivered: MarketMessage[] = [];
        operations.forEach((op, i) => {
          if (op.kind === 'shift') return;
          const message = op.kind === 'snapshot' ? snap(op.symbol, i) : op.kind === 'trade' ? trade(op.symbol, i) : op.kind === 'disconnect' ? gone(op.symbol) : reject(op.symbol);
          pushed.push(message);
          queue.push(message);
          delivered.push(queue.shift()!);
        });
        expect(delivered).toEqual(pushed);
        expect(queue.conflated + queue.dropped + queue.droppedFlow).toBe(0);
      }),
    );
  });
});
