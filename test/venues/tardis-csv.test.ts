import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { checkBook } from '../../src/domain/book-check.js';
import type { BookSnapshot, MarketMessage } from '../../src/domain/types.js';
import { TardisRowMapper, tardisCsv, tardisLayout } from '../../src/venues/tardis-csv.js';

const fixtures = fileURLToPath(new URL('../../fixtures/tardis/', import.meta.url));
const sample = join(fixtures, 'binance-futures_book_snapshot_25_BTCUSDT.csv');
const sampleGz = `${sample}.gz`;
const [header, ...rows] = readFileSync(sample, 'utf8').split('\n').filter((line) => line.length > 0);

const scratch = mkdtempSync(join(tmpdir(), 'tardis-test-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

async function collect(paths: string[], levels: number, symbol?: string): Promise<MarketMessage[]> {
  const messages: MarketMessage[] = [];
  for await (const message of tardisCsv.read(paths, { levels, symbol })) messages.push(message);
  return messages;
}

/** The test's own reading of a row: cells by header name. */
function cellsByName(line: string): Map<string, string> {
  const names = header.split(',');
  const cells = line.split(',');
  return new Map(names.map((name, i) => [name, cells[i]]));
}

function expectRow(snapshot: MarketMessage, line: string, levels: number): void {
  expect(snapshot.type).toBe('book_snapshot');
  const book = snapshot as BookSnapshot;
  const cells = cellsByName(line);
  expect(book.symbol).toBe(cells.get('symbol'));
  expect(book.seq).toBeUndefined();
  expect(book.ts).toBeCloseTo(Number(cells.get('timestamp')) / 1000, 6);
  expect(book.localTs).toBeCloseTo(Number(cells.get('local_timestamp')) / 1000, 6);
  expect(book.asks.length).toBe(2 * levels);
  expect(book.bids.length).toBe(2 * levels);
  for (let level = 0; level < levels; level++) {
    expect(book.asks[2 * level]).toBeCloseTo(Number(cells.get(`asks[${level}].price`)), 9);
    expect(book.asks[2 * level + 1]).toBeCloseTo(Number(cells.get(`asks[${level}].amount`)), 9);
    expect(book.bids[2 * level]).toBeCloseTo(Number(cells.get(`bids[${level}].price`)), 9);
    expect(book.bids[2 * level + 1]).toBeCloseTo(Number(cells.get(`bids[${level}].amount`)), 9);
  }
}

describe('tardis-csv book_snapshot_25', () => {
  it('maps the first and last rows of the sample, all 25 levels', async () => {
    const messages = await collect([sample], 25);
    expect(messages).toHaveLength(10);
    expectRow(messages[0], rows[0], 25);
    expectRow(messages[9], rows[9], 25);
    // By hand from the first row: µs -> ms, best ask 11657.08 x 1.714, best bid 11657.07 x 10.896.
    const first = messages[0] as BookSnapshot;
    expect(first.ts).toBe(1_598_918_403_696);
    expect(first.localTs).toBeCloseTo(1_598_918_403_810.979, 6);
    expect(Array.from(first.asks.subarray(0, 2))).toEqual([11657.08, 1.714]);
    expect(Array.from(first.bids.subarray(0, 2))).toEqual([11657.07, 10.896]);
    expect(messages.every((m) => m.type === 'book_snapshot')).toBe(true);
  });

  it('reads the gzip copy the same, truncates levels and overrides the symbol', async () => {
    const plain = await collect([sample], 5);
    const gzip = await collect([sampleGz], 5, 'BTCUSDT-PERP');
    expect(gzip).toHaveLength(10);
    gzip.forEach((message, i) => {
      const book = message as BookSnapshot;
      expect(book.symbol).toBe('BTCUSDT-PERP');
      expect(book.bids).toEqual((plain[i] as BookSnapshot).bids);
      expect(book.asks).toEqual((plain[i] as BookSnapshot).asks);
      expect(book.bids.length).toBe(10);
    });
  });

  it('locates columns by the header, not by position', async () => {
    // The same file with its columns in reverse order.
    const reversed = join(scratch, 'reversed.csv');
    const reverse = (line: string): string => line.split(',').reverse().join(',');
    writeFileSync(reversed, [header, ...rows].map(reverse).join('\n'));
    const fromReversed = await collect([reversed], 25);
    const fromSample = await collect([sample], 25);
    expect(fromReversed).toEqual(fromSample);
  });

  it('emits a thinner book where cells are empty', () => {
    const mapper = new TardisRowMapper(tardisLayout(header, 25));
    const cells = rows[0].split(',');
    const names = header.split(',');
    names.forEach((name, i) => {
      const level = /\[(\d+)\]/.exec(name);
      if (level && Number(level[1]) >= 3 && name.startsWith('bids')) cells[i] = '';
    });
    const book = mapper.map(cells.join(','), 2) as BookSnapshot;
    expect(book.type).toBe('book_snapshot');
    expect(book.bids.length).toBe(6);
    expect(book.asks.length).toBe(50);
  });

  it('names the cell of a malformed row', () => {
    const mapper = new TardisRowMapper(tardisLayout(header, 25));
    const names = header.split(',');
    const withCell = (name: string, value: string): string => {
      const cells = rows[0].split(',');
      cells[names.indexOf(name)] = value;
      return cells.join(',');
    };
    const cases: [string, string, RegExp][] = [
      [withCell('asks[2].price', 'abc'), 'schema', /line 2 asks\[2\]\.price: expected a number, got "abc"/],
      [withCell('timestamp', ''), 'schema', /line 2 timestamp: expected a number, got ""/],
      [withCell('bids[4].amount', ''), 'schema', /line 2 bids\[4\]\.amount: empty while the other cell/],
      [`${rows[0]},1`, 'schema', /line 2: expected 104 columns, got 105/],
      [withCell('bids[0].price', '11657.09'), 'crossed_book', /best bid 11657.09 >= best ask 11657.08/],
      [withCell('asks[1].amount', '-1'), 'non_positive_size', /asks\[1\]\[1\]/],
    ];
    for (const [line, reason, detail] of cases) {
      const result = mapper.map(line, 2);
      expect(result.type).toBe('rejected');
      if (result.type === 'rejected') {
        expect(result.reason).toBe(reason);
        expect(result.detail).toMatch(detail);
      }
    }
    // A filled level after an empty one is malformed, not silently dropped.
    const gap = rows[0].split(',');
    gap[names.indexOf('asks[1].price')] = '';
    gap[names.indexOf('asks[1].amount')] = '';
    const result = mapper.map(gap.join(','), 2);
    expect(result).toMatchObject({ type: 'rejected', reason: 'schema', detail: expect.stringMatching(/asks\[2\]\.price: a level after an empty level asks\[1\]/) });
  });

  it('throws when the header is not a book_snapshot header', () => {
    expect(() => tardisLayout('exchange,symbol,timestamp,local_timestamp,id,side,price,amount', 5)).toThrow(/no asks\[i\]\/bids\[i\]/);
    expect(() => tardisLayout('exchange,symbol,local_timestamp,asks[0].price,asks[0].amount,bids[0].price,bids[0].amount', 5)).toThrow(/"timestamp"/);
  });

  it('never throws and never emits a non-finite or unchecked book (fuzzed and truncated real rows)', () => {
    const mapper = new TardisRowMapper(tardisLayout(header, 25));
    const holds = (result: MarketMessage): boolean => {
      if (result.type !== 'book_snapshot') return true;
      return [...result.bids, ...result.asks, result.ts, result.localTs].every(Number.isFinite) && checkBook(result.bids, result.asks) === null;
    };
    fc.assert(fc.property(fc.string({ unit: 'binary' }), (line) => holds(mapper.map(line, 2))), { numRuns: 300 });
    fc.assert(
      fc.property(fc.integer({ min: 0, max: rows.length - 1 }), fc.nat(), (row, cut) => holds(mapper.map(rows[row].slice(0, cut % (rows[row].length + 1)), row + 2))),
      { numRuns: 300 },
    );
  });
});
