import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { BookSnapshot, Disconnect, MarketMessage, Rejected } from '../../src/domain/types.js';
import { ConflatingQueue } from '../../src/ingest/live-client.js';

const snap = (symbol: string, seq: number): BookSnapshot => ({
  type: 'book_snapshot',
  symbol,
  ts: seq,
  localTs: seq,
  seq,
  bids: Float64Array.of(99, 1),
  asks: Float64Array.of(101, 1),
});
const gone = (symbol: string | null): Disconnect => ({ type: 'disconnect', symbol, localTs: 0, reason: 'test' });
const reject = (symbol: string | null): Rejected => ({ type: 'rejected', reason: 'malformed_json', detail: 'frame: not JSON', sample: '{', symbol });

function drain(queue: ConflatingQueue): MarketMessage[] {
  const out: MarketMessage[] = [];
  for (let m = queue.shift(); m !== undefined; m = queue.shift()) out.push(m);
  return out;
}

const label = (m: MarketMessage): string =>
  m.type === 'book_snapshot' ? `${m.symbol}${m.seq}` : m.type === 'disconnect' ? `D(${m.symbol ?? '*'})` : `R(${m.symbol ?? '*'})`;

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

  it('rejects limits that cannot work', () => {
    expect(() => new ConflatingQueue({ ...limits, maxPendingPerSymbol: 0 })).toThrow('maxPendingPerSymbol: must be an integer >= 1, got 0');
    expect(() => new ConflatingQueue({ ...limits, capacity: 0.5 })).toThrow('capacity: must be an integer >= 1, got 0.5');
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

  it('is lossless when the consumer keeps up', () => {
    fc.assert(
      fc.property(fc.array(operation, { maxLength: 200 }), (operations) => {
        const queue = new ConflatingQueue({ maxPendingPerSymbol: 1, maxPendingRejections: 1, capacity: 10 });
        const pushed: MarketMessage[] = [];
        const delivered: MarketMessage[] = [];
        operations.forEach((op, i) => {
          if (op.kind === 'shift') return;
          const message = op.kind === 'snapshot' ? snap(op.symbol, i) : op.kind === 'disconnect' ? gone(op.symbol) : reject(op.symbol);
          pushed.push(message);
          queue.push(message);
          delivered.push(queue.shift()!);
        });
        expect(delivered).toEqual(pushed);
        expect(queue.conflated + queue.dropped).toBe(0);
      }),
    );
  });
});
