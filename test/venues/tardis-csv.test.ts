import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { checkBook } from '../../src/domain/book-check.js';
import type { BookSnapshot, MarketMessage, Rejected, Trade } from '../../src/domain/types.js';
import { defaultEngineConfig } from '../../src/engine/config.js';
import { runReplay } from '../../src/cli/replay.js';
import { binanceRaw } from '../../src/venues/binance-raw.js';
import { TardisRowMapper, TardisTradeRowMapper, tardisCsv, tardisDataType, tardisLayout, tardisTradeLayout } from '../../src/venues/tardis-csv.js';

const fixtures = fileURLToPath(new URL('../../fixtures/tardis/', import.meta.url));
const sample = join(fixtures, 'binance-futures_book_snapshot_25_BTCUSDT.csv');
const sampleGz = `${sample}.gz`;
const [header, ...rows] = readFileSync(sample, 'utf8')
  .split('\n')
  .filter((line) => line.length > 0);

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
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (line) => holds(mapper.map(line, 2))),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: rows.length - 1 }), fc.nat(), (row, cut) => holds(mapper.map(rows[row].slice(0, cut % (rows[row].length + 1)), row + 2))),
      { numRuns: 300 },
    );
  });
});

// The Binance excerpt of fixtures/binance written in the two tardis.dev layouts by
// fixtures/tardis/generate.mjs (see the README there): 518 real trades, 279 books of 5 levels.
const binanceRecording = fileURLToPath(new URL('../../fixtures/binance/spot_btcusdt_20240808.head3000.gz', import.meta.url));
const tradesFile = join(fixtures, 'binance_trades_BTCUSDT_2024-08-08.head3000.csv');
const booksFile = join(fixtures, 'binance_book_snapshot_5_BTCUSDT_2024-08-08.head3000.csv');
const [tradesHeader, ...tradeRows] = readFileSync(tradesFile, 'utf8')
  .split('\n')
  .filter((line) => line.length > 0);

/** Books by update time and trades by id, in the order they come. */
const order = (messages: readonly MarketMessage[]): string[] => messages.flatMap((m) => (m.type === 'book_snapshot' ? [`B${m.ts}`] : m.type === 'trade' ? [`T${m.tradeId}`] : []));

describe('tardis-csv trades', () => {
  it('maps every row of the trades file to the trade binance-raw reads from the same recorded frame', async () => {
    const fromTardis = await collect([tradesFile], 5);
    expect(fromTardis).toHaveLength(518);
    const fromFrames: Trade[] = [];
    for await (const message of binanceRaw.read([binanceRecording], { levels: 5 })) if (message.type === 'trade') fromFrames.push(message);
    expect(fromFrames).toHaveLength(518);
    fromTardis.forEach((message, i) => {
      const expected = fromFrames[i];
      expect(message).toMatchObject({
        type: 'trade',
        symbol: 'BTCUSDT',
        ts: expected.ts,
        price: expected.price,
        size: expected.size,
        aggressor: expected.aggressor,
        tradeId: expected.tradeId,
      });
      // local_timestamp keeps whole microseconds of the recorded nanoseconds.
      expect(Math.abs((message as Trade).localTs - expected.localTs)).toBeLessThan(0.001);
    });
    // By hand, the first row: 1723161255342000 µs, trade 3735683259, a seller took 0.02 at 61837.63.
    expect(fromTardis[0]).toEqual({
      type: 'trade',
      symbol: 'BTCUSDT',
      ts: 1_723_161_255_342,
      localTs: 1_723_161_254_087.896,
      price: 61837.63,
      size: 0.02,
      aggressor: -1,
      tradeId: '3735683259',
    });
  });

  it('reads the taker side buy, sell and unknown, and an empty id as none', () => {
    const mapper = new TardisTradeRowMapper(tardisTradeLayout(tradesHeader));
    const cells = tradeRows[0].split(',');
    const row = (side: string, id: string): string => [...cells.slice(0, 4), id, side, ...cells.slice(6)].join(',');
    expect((mapper.map(row('buy', '7'), 2) as Trade).aggressor).toBe(1);
    expect((mapper.map(row('sell', '7'), 2) as Trade).aggressor).toBe(-1);
    expect(mapper.map(row('unknown', ''), 2)).toMatchObject({ type: 'trade', aggressor: 0, tradeId: undefined });
  });

  it('names the cell of a malformed row and counts it under its reason', () => {
    const mapper = new TardisTradeRowMapper(tardisTradeLayout(tradesHeader));
    const names = tradesHeader.split(',');
    const withCell = (name: string, value: string): string => {
      const cells = tradeRows[0].split(',');
      cells[names.indexOf(name)] = value;
      return cells.join(',');
    };
    const cases: [string, Rejected['reason'], string][] = [
      [withCell('price', 'abc'), 'schema', 'BTCUSDT: line 2 price: expected a finite number, got "abc"'],
      [withCell('price', ''), 'schema', 'BTCUSDT: line 2 price: expected a finite number, got ""'],
      [withCell('price', '1e400'), 'non_finite', 'BTCUSDT: line 2 price: expected a finite number, got "1e400"'],
      [withCell('price', '0'), 'schema', 'BTCUSDT: line 2 price: must be > 0, got "0"'],
      [withCell('amount', '0'), 'non_positive_size', 'BTCUSDT: line 2 amount: must be > 0, got "0"'],
      [withCell('amount', '-0.5'), 'non_positive_size', 'BTCUSDT: line 2 amount: must be > 0, got "-0.5"'],
      [withCell('amount', 'NaN'), 'schema', 'BTCUSDT: line 2 amount: expected a finite number, got "NaN"'],
      [withCell('timestamp', ''), 'schema', 'BTCUSDT: line 2 timestamp: expected a number, got ""'],
      [withCell('local_timestamp', 'x'), 'schema', 'BTCUSDT: line 2 local_timestamp: expected a number, got "x"'],
      [withCell('side', 'bid'), 'schema', 'BTCUSDT: line 2 side: expected buy, sell or unknown, got "bid"'],
      [withCell('symbol', ''), 'schema', 'line 2 symbol: empty'],
      [`${tradeRows[0]},1`, 'schema', 'line 2: expected 8 columns, got 9'],
    ];
    for (const [line, reason, detail] of cases) expect(mapper.map(line, 2)).toMatchObject({ type: 'rejected', reason, detail });
  });

  it('tells the data type by the header and refuses a header that is neither', () => {
    expect(tardisDataType(tradesHeader)).toBe('trades');
    expect(tardisDataType(header)).toBe('book_snapshot');
    expect(() => tardisDataType('exchange,symbol,timestamp,local_timestamp,ask_price,bid_price')).toThrow(/neither book_snapshot_N/);
    expect(() => tardisTradeLayout('exchange,symbol,timestamp,local_timestamp,side,price,amount')).toThrow(/no "id" column/);
  });

  it('never throws and never emits a non-finite trade (fuzzed and truncated real rows)', () => {
    const mapper = new TardisTradeRowMapper(tardisTradeLayout(tradesHeader));
    const holds = (result: MarketMessage): boolean =>
      result.type !== 'trade' || ([result.ts, result.localTs, result.price, result.size].every(Number.isFinite) && result.price > 0 && result.size > 0);
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (line) => holds(mapper.map(line, 2))),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: tradeRows.length - 1 }), fc.nat(), (row, cut) =>
        holds(mapper.map(tradeRows[row].slice(0, cut % (tradeRows[row].length + 1)), row + 2)),
      ),
      { numRuns: 300 },
    );
  });
});

describe('tardis-csv books and trades together', () => {
  it('merges a book file and a trades file by arrival into the recorded order, whichever is given first', async () => {
    const recorded: MarketMessage[] = [];
    for await (const message of binanceRaw.read([binanceRecording], { levels: 5 })) recorded.push(message);
    const merged = await collect([booksFile, tradesFile], 5);
    expect(merged.filter((m) => m.type === 'rejected')).toEqual([]);
    expect(order(merged)).toHaveLength(279 + 518);
    expect(order(merged)).toEqual(order(recorded));
    expect(order(await collect([tradesFile, booksFile], 5))).toEqual(order(recorded));
    // Books as binance-raw builds them, 5 levels.
    const books = merged.filter((m): m is BookSnapshot => m.type === 'book_snapshot');
    const recordedBooks = recorded.filter((m): m is BookSnapshot => m.type === 'book_snapshot');
    books.forEach((book, i) => {
      expect(Array.from(book.bids)).toEqual(Array.from(recordedBooks[i].bids));
      expect(Array.from(book.asks)).toEqual(Array.from(recordedBooks[i].asks));
    });
  });

  it('puts the file given first first on equal arrival times, and passes rejections on as they are read', async () => {
    const bookRow = readFileSync(booksFile, 'utf8').split('\n')[1];
    const bookHeader = readFileSync(booksFile, 'utf8').split('\n')[0];
    const localUs = bookRow.split(',')[3];
    const tradeCells = tradeRows[0].split(',');
    tradeCells[3] = localUs;
    const bookPath = join(scratch, 'tie-book.csv');
    const tradePath = join(scratch, 'tie-trades.csv');
    writeFileSync(bookPath, `${bookHeader}\n${bookRow}\n`);
    writeFileSync(tradePath, `${tradesHeader}\nnot,a,row\n${tradeCells.join(',')}\n`);
    expect((await collect([bookPath, tradePath], 5)).map((m) => m.type)).toEqual(['rejected', 'book_snapshot', 'trade']);
    expect((await collect([tradePath, bookPath], 5)).map((m) => m.type)).toEqual(['rejected', 'trade', 'book_snapshot']);
  });

  it('replays through the engine as `replay --format tardis-csv book.csv trades.csv`, with the predictions of binance-raw', async () => {
    const dir = mkdtempSync(join(scratch, 'replay-'));
    const config = { ...defaultEngineConfig, levels: 5, learner: { ...defaultEngineConfig.learner, hidden: 8 } };
    const fromTardis = await runReplay({ files: [booksFile, tradesFile], format: 'tardis-csv', config, out: join(dir, 'tardis.jsonl'), speed: 'max' });
    const fromRecording = await runReplay({ files: [binanceRecording], format: 'binance-raw', config, out: join(dir, 'raw.jsonl'), speed: 'max' });
    expect(fromTardis).toMatchObject({ accepted: 279, trades: 518, rejected: {}, disconnects: 0 });
    // tardis books carry no update id, and their local_timestamp is microseconds where the recording
    // has nanoseconds; everything else of each prediction, labels included, is the same.
    const withoutSeq = (file: string): string[] =>
      readFileSync(join(dir, file), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.stringify({ ...JSON.parse(line), seq: undefined, localTs: undefined }));
    expect(withoutSeq('tardis.jsonl')).toEqual(withoutSeq('raw.jsonl'));
    expect(fromTardis.trades).toBe(fromRecording.trades);
  });
});
