import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkBook } from '../../src/domain/book-check.js';
import type { BookSnapshot, MarketMessage, Rejected } from '../../src/domain/types.js';
import { canonical, canonicalJsonl, parseCanonical, toCanonicalJson } from '../../src/venues/canonical.js';
import { lobster } from '../../src/venues/lobster.js';

const fixtures = fileURLToPath(new URL('../../fixtures/', import.meta.url));
const jsonl = join(fixtures, 'canonical/amzn-2012-06-21-first300.jsonl');
const jsonlGz = `${jsonl}.gz`;
const lobsterStem = join(fixtures, 'lobster/AMZN_2012-06-21_34200000_57600000');

const snapshot = {
  symbol: 'BTCUSDT',
  ts: 1_723_161_253_000,
  seq: 7,
  bids: [
    [61000.5, 1.2],
    [61000, 0.4],
    [60999, 3],
  ],
  asks: [
    [61001, 0.7],
    [61002.5, 2],
  ],
};

async function collect(source: AsyncIterable<MarketMessage>): Promise<MarketMessage[]> {
  const messages: MarketMessage[] = [];
  for await (const message of source) messages.push(message);
  return messages;
}

function rejected(result: MarketMessage): Rejected {
  expect(result.type).toBe('rejected');
  return result as Rejected;
}

describe('parseCanonical', () => {
  it('turns a valid snapshot into flat sides, truncated to the requested levels', () => {
    const result = parseCanonical(snapshot, 2) as BookSnapshot;
    expect(result).toMatchObject({ type: 'book_snapshot', symbol: 'BTCUSDT', ts: snapshot.ts, localTs: snapshot.ts, seq: 7 });
    expect(Array.from(result.bids)).toEqual([61000.5, 1.2, 61000, 0.4]);
    expect(Array.from(result.asks)).toEqual([61001, 0.7, 61002.5, 2]);
    expect((parseCanonical({ ...snapshot, seq: undefined }, 10, 42) as BookSnapshot).localTs).toBe(42);
  });

  it('names the offending field in schema errors', () => {
    const cases: [unknown, RegExp][] = [
      [{ ...snapshot, bids: [...snapshot.bids, [60998, 1], [60997, -2]] }, /^bids\.4\.1: size must be > 0$/],
      [{ ...snapshot, symbol: undefined }, /^symbol: /],
      [{ ...snapshot, ts: '1723161253000' }, /^ts: /],
      [{ ...snapshot, seq: 1.5 }, /^seq: /],
      [{ ...snapshot, asks: [[61001]] }, /^asks\.0/],
      ['not an object', /^\(root\): /],
    ];
    for (const [value, detail] of cases) {
      const result = rejected(parseCanonical(value, 10));
      expect(result.reason).toBe('schema');
      expect(result.detail).toMatch(detail);
    }
    expect(rejected(parseCanonical({ ...snapshot, ts: 'x' }, 10)).symbol).toBe('BTCUSDT');
  });

  it('rejects crossed, locked and unordered books with their reason', () => {
    expect(rejected(parseCanonical({ ...snapshot, asks: [[61000.5, 1]] }, 10)).reason).toBe('crossed_book');
    expect(rejected(parseCanonical({ ...snapshot, asks: [[60000, 1]] }, 10)).reason).toBe('crossed_book');
    const unordered = rejected(
      parseCanonical(
        {
          ...snapshot,
          bids: [
            [61000, 1],
            [61000.5, 1],
          ],
        },
        10,
      ),
    );
    expect(unordered.reason).toBe('unordered_levels');
    expect(unordered.detail).toMatch(/bids\[1\]\[0\]/);
    expect(rejected(parseCanonical({ ...snapshot, asks: [] }, 10)).reason).toBe('empty_book');
  });

  it('round-trips through toCanonicalJson', () => {
    const parsed = parseCanonical(snapshot, 10) as BookSnapshot;
    expect(parseCanonical(JSON.parse(toCanonicalJson(parsed)), 10)).toEqual(parsed);
    const withoutSeq = parseCanonical({ ...snapshot, seq: undefined }, 10) as BookSnapshot;
    expect(toCanonicalJson(withoutSeq)).not.toContain('seq');
    expect(parseCanonical(JSON.parse(toCanonicalJson(withoutSeq)), 10)).toEqual(withoutSeq);
  });

  it('round-trips any sound book (property)', () => {
    const side = fc.uniqueArray(fc.integer({ min: 1, max: 1_000_000 }), { minLength: 1, maxLength: 20 });
    fc.assert(
      fc.property(side, side, fc.double({ min: 1e-8, max: 1e6, noNaN: true }), fc.option(fc.nat(), { nil: undefined }), (bidTicks, askTicks, size, seq) => {
        const bids = [...bidTicks].sort((a, b) => b - a).map((t) => [t / 100, size]);
        const top = bids[0][0];
        const asks = [...askTicks].sort((a, b) => a - b).map((t) => [top + t / 100, size]);
        const parsed = parseCanonical({ symbol: 'P', ts: 1, seq, bids, asks }, 20);
        expect(parsed.type).toBe('book_snapshot');
        expect(parseCanonical(JSON.parse(toCanonicalJson(parsed as BookSnapshot)), 20)).toEqual(parsed);
      }),
      { numRuns: 200 },
    );
  });
});

describe('canonical venue mapper', () => {
  const frame = (value: unknown): string => JSON.stringify(value);

  it('stamps the receive time and rejects malformed JSON', () => {
    const mapper = canonical.createMapper({ levels: 10 });
    const [book] = mapper.map(frame(snapshot), 99);
    expect(book).toMatchObject({ type: 'book_snapshot', localTs: 99, ts: snapshot.ts });
    expect(rejected(mapper.map('{"symbol":', 1)[0]).reason).toBe('malformed_json');
    expect(canonical.live).toBeNull();
    expect(mapper.takeResyncRequests()).toEqual([]);
  });

  it('rejects a seq that does not increase and a ts that goes back, per symbol', () => {
    const mapper = canonical.createMapper({ levels: 10 });
    expect(mapper.map(frame(snapshot), 0)[0].type).toBe('book_snapshot');
    const replayed = rejected(mapper.map(frame(snapshot), 0)[0]);
    expect(replayed.reason).toBe('out_of_order');
    expect(replayed.detail).toMatch(/seq: 7 is not after the last accepted seq 7/);
    expect(rejected(mapper.map(frame({ ...snapshot, seq: 6 }), 0)[0]).reason).toBe('out_of_order');
    const earlier = rejected(mapper.map(frame({ ...snapshot, seq: 8, ts: snapshot.ts - 1 }), 0)[0]);
    expect(earlier.detail).toMatch(/ts: .* is before the last accepted ts/);
    // Equal ts is fine; another symbol has its own history; a reset forgets it all.
    expect(mapper.map(frame({ ...snapshot, seq: 8 }), 0)[0].type).toBe('book_snapshot');
    expect(mapper.map(frame({ ...snapshot, symbol: 'ETHUSDT', seq: 1, ts: 5 }), 0)[0].type).toBe('book_snapshot');
    mapper.reset();
    expect(mapper.map(frame({ ...snapshot, seq: 1, ts: 5 }), 0)[0].type).toBe('book_snapshot');
  });

  it('takes an array of snapshots and names the failing element', () => {
    const mapper = canonical.createMapper({ levels: 10 });
    const results = mapper.map(frame([snapshot, { ...snapshot, seq: 8, bids: [[61000, 0]] }, { ...snapshot, seq: 9, asks: [[1, 1]] }, { ...snapshot, seq: 10 }]), 5);
    expect(results.map((r) => r.type)).toEqual(['book_snapshot', 'rejected', 'rejected', 'book_snapshot']);
    expect(rejected(results[1]).detail).toBe('1.bids.0.1: size must be > 0');
    expect(rejected(results[2])).toMatchObject({ reason: 'crossed_book', detail: expect.stringMatching(/^element 2: BTCUSDT: /) });
    expect(rejected(mapper.map('[]', 0)[0]).reason).toBe('schema');
  });

  it('never throws and never emits a non-finite or unchecked book (fuzzed and truncated real lines)', () => {
    const lines = readFileSync(jsonl, 'utf8').split('\n').filter(Boolean);
    const holds = (messages: MarketMessage[]): boolean =>
      messages.every((m) => m.type !== 'book_snapshot' || ([...m.bids, ...m.asks, m.ts, m.localTs].every(Number.isFinite) && checkBook(m.bids, m.asks) === null));
    const mapper = canonical.createMapper({ levels: 5 });
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (text) => holds(mapper.map(text, 0))),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.json(), (text) => holds(mapper.map(text, 0))),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: lines.length - 1 }), fc.nat(), (row, cut) =>
        holds(canonical.createMapper({ levels: 5 }).map(lines[row].slice(0, cut % (lines[row].length + 1)), 0)),
      ),
      { numRuns: 300 },
    );
  });
});

describe('canonical JSONL files', () => {
  it('holds exactly what the LOBSTER reader and toCanonicalJson produce (fixture regeneration check)', async () => {
    const lines: string[] = [];
    for await (const message of lobster.read([`${lobsterStem}_message_5.csv`, `${lobsterStem}_orderbook_5.csv`], { levels: 5 })) {
      if (message.type === 'book_snapshot') lines.push(toCanonicalJson(message));
      if (lines.length === 300) break;
    }
    expect(readFileSync(jsonl, 'utf8')).toBe(`${lines.join('\n')}\n`);
  });

  it('reads plain and gzip JSONL back into the LOBSTER snapshots', async () => {
    const fromLobster = (await collect(lobster.read([`${lobsterStem}_message_5.csv`, `${lobsterStem}_orderbook_5.csv`], { levels: 5 })))
      .filter((m) => m.type === 'book_snapshot')
      .slice(0, 300);
    const plain = await collect(canonicalJsonl.read([jsonl], { levels: 5 }));
    const gzip = await collect(canonicalJsonl.read([jsonlGz], { levels: 5 }));
    expect(plain).toHaveLength(300);
    expect(plain).toEqual(fromLobster);
    expect(gzip).toEqual(plain);
    const three = (await collect(canonicalJsonl.read([jsonl], { levels: 3 }))) as BookSnapshot[];
    expect(three.every((s) => s.bids.length === 6 && s.asks.length === 6)).toBe(true);
  });
});
