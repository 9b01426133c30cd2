import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { checkBook } from '../../src/domain/book-check.js';
import type { BookSnapshot, Disconnect, MarketMessage } from '../../src/domain/types.js';
import { easternToEpochMs, LobsterRowMapper, lobster, parseCsvNumbers, parseLobsterFileName } from '../../src/venues/lobster.js';

const fixtures = fileURLToPath(new URL('../../fixtures/lobster/', import.meta.url));
const AMZN = 'AMZN_2012-06-21_34200000_57600000';
const AAPL = 'AAPL_2012-06-21_34200000_57600000';
const amznFiles = [join(fixtures, `${AMZN}_message_5.csv`), join(fixtures, `${AMZN}_orderbook_5.csv`)];
const aaplFiles = [join(fixtures, `${AAPL}_message_10.csv`), join(fixtures, `${AAPL}_orderbook_10.csv`)];

const scratch = mkdtempSync(join(tmpdir(), 'lobster-test-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

async function collect(paths: string[], levels: number, symbol?: string): Promise<MarketMessage[]> {
  const messages: MarketMessage[] = [];
  for await (const message of lobster.read(paths, { levels, symbol })) messages.push(message);
  return messages;
}

function snapshotsOf(messages: MarketMessage[]): BookSnapshot[] {
  return messages.filter((m): m is BookSnapshot => m.type === 'book_snapshot');
}

/** The test's own reading of the CSVs: plain split and Number, no shared code with the reader. */
function csvRows(path: string): number[][] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => line.split(',').map(Number));
}

/** Row `row` of an orderbook file as the expected sides: dollars, best first, `levels` deep. */
function expectedSides(row: number[], levels: number): { bids: number[]; asks: number[] } {
  const bids: number[] = [];
  const asks: number[] = [];
  for (let level = 0; level < Math.min(levels, row.length / 4); level++) {
    asks.push(row[4 * level] / 10_000, row[4 * level + 1]);
    bids.push(row[4 * level + 2] / 10_000, row[4 * level + 3]);
  }
  return { bids, asks };
}

/** Same levels within 1e-9 (prices are ticks / 10000, sizes whole shares). */
function expectSide(actual: Float64Array, expected: number[]): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  expect(worst).toBeLessThanOrEqual(1e-9);
}

/** Size at a price (in 1/10000 dollars) on one side: the level's size, 0 when the price lies inside a full visible range without a level, undefined when outside. */
function sizeAt(side: Float64Array, ticks: number, isBid: boolean, levels: number): number | undefined {
  let worst = Number.NaN;
  for (let i = 0; i < side.length; i += 2) {
    const levelTicks = Math.round(side[i] * 10_000);
    if (levelTicks === ticks) return side[i + 1];
    worst = levelTicks;
  }
  if (side.length / 2 < levels) return undefined;
  const inside = isBid ? ticks > worst : ticks < worst;
  return inside ? 0 : undefined;
}

describe('lobster file names and times', () => {
  it('reads symbol, date and levels from the file name', () => {
    expect(parseLobsterFileName(`/x/${AMZN}_orderbook_5.csv`)).toEqual({
      symbol: 'AMZN',
      date: '2012-06-21',
      kind: 'orderbook',
      levels: 5,
      pairKey: `${AMZN}_5`,
    });
    expect(parseLobsterFileName(`${AAPL}_message_10.csv.gz`)?.kind).toBe('message');
    expect(parseLobsterFileName('LOBSTER_SampleFiles_ReadMe.txt')).toBeNull();
  });

  // Hand-computed: 2012-01-01T00:00Z is day 15340 (42 * 365 + 10 leap days) = 1,325,376,000,000 ms.
  it('converts New York wall-clock seconds to epoch ms with the DST rules of the date', () => {
    // 2012-06-21 is in EDT (UTC-4): day 15340 + 152 + 20 = 15512 -> 1,340,236,800,000; 09:30 EDT = 13:30 UTC.
    expect(easternToEpochMs('2012-06-21', 34_200)).toBe(1_340_236_800_000 + 13.5 * 3_600_000);
    // 2012-01-03 is in EST (UTC-5): day 15342 -> 1,325,548,800,000; 09:30 EST = 14:30 UTC.
    expect(easternToEpochMs('2012-01-03', 34_200)).toBe(1_325_548_800_000 + 14.5 * 3_600_000);
    // 2012-03-11, spring forward at 02:00: day 15410 -> 1,331,424,000,000. 01:00 EST = 06:00 UTC, 03:00 EDT = 07:00 UTC.
    expect(easternToEpochMs('2012-03-11', 3_600)).toBe(1_331_424_000_000 + 6 * 3_600_000);
    expect(easternToEpochMs('2012-03-11', 10_800)).toBe(1_331_424_000_000 + 7 * 3_600_000);
    // 2012-11-04, fall back at 02:00: day 15648 -> 1,351,987,200,000. 00:30 EDT = 04:30 UTC, 03:00 EST = 08:00 UTC.
    expect(easternToEpochMs('2012-11-04', 1_800)).toBe(1_351_987_200_000 + 4.5 * 3_600_000);
    expect(easternToEpochMs('2012-11-04', 10_800)).toBe(1_351_987_200_000 + 8 * 3_600_000);
    // Sub-millisecond fractions survive (AAPL's first event, 34200.004241176 s).
    expect(easternToEpochMs('2012-06-21', 34_200.004241176)).toBeCloseTo(1_340_285_400_004.2412, 3);
  });

  it('parses numeric cells without allocating and marks bad cells NaN', () => {
    const out = new Float64Array(6);
    expect(parseCsvNumbers('34200.017459617,5,0,1,2238200,-1', out)).toBe(6);
    expect(Array.from(out)).toEqual([34200.017459617, 5, 0, 1, 2238200, -1]);
    expect(parseCsvNumbers('1,,x, 2,-,9999999999,7', out)).toBe(7);
    expect(Array.from(out)).toEqual([1, Number.NaN, Number.NaN, Number.NaN, Number.NaN, 9999999999]);
  });
});

describe('lobster parity with the recorded orderbook rows', () => {
  it('emits one snapshot per AMZN event row equal to the orderbook row, in dollars', async () => {
    const snapshots = snapshotsOf(await collect(amznFiles, 5));
    const books = csvRows(amznFiles[1]);
    const messages = csvRows(amznFiles[0]);
    expect(snapshots).toHaveLength(2000);
    snapshots.forEach((snapshot, row) => {
      expect(snapshot.symbol).toBe('AMZN');
      expect(snapshot.seq).toBe(row);
      // Midnight 2012-06-21 EDT is 04:00 UTC.
      expect(snapshot.ts).toBeCloseTo(1_340_236_800_000 + 4 * 3_600_000 + messages[row][0] * 1000, 3);
      expect(snapshot.localTs).toBe(snapshot.ts);
      const expected = expectedSides(books[row], 5);
      expectSide(snapshot.bids, expected.bids);
      expectSide(snapshot.asks, expected.asks);
    });
    // First row by hand: ask 223.95 x 100, bid 223.18 x 100 at 09:30:00.017459617 EDT.
    expect(Array.from(snapshots[0].asks.subarray(0, 2))).toEqual([223.95, 100]);
    expect(Array.from(snapshots[0].bids.subarray(0, 2))).toEqual([223.18, 100]);
    expect(snapshots[0].ts).toBeCloseTo(1_340_285_400_017.4597, 3);
  });

  it('reads the AAPL level-10 pair and truncates to the requested levels', async () => {
    const books = csvRows(aaplFiles[1]);
    const full = snapshotsOf(await collect(aaplFiles, 10));
    const three = snapshotsOf(await collect(aaplFiles, 3));
    expect(full).toHaveLength(999);
    expect(three).toHaveLength(999);
    for (let row = 0; row < books.length; row++) {
      const expected = expectedSides(books[row], 10);
      expectSide(full[row].bids, expected.bids);
      expectSide(full[row].asks, expected.asks);
      expectSide(three[row].bids, expected.bids.slice(0, 6));
      expectSide(three[row].asks, expected.asks.slice(0, 6));
    }
  });

  // An independent check of both the files and the reader: message k applied to book k-1
  // must give book k wherever the price is visible (or provably empty) in both rows.
  it.each([
    ['AMZN level 5', amznFiles, 5, 1800],
    ['AAPL level 10', aaplFiles, 10, 900],
  ] as const)('%s: the message stream explains every visible size change', async (_label, files, levels, minimumChecked) => {
    const snapshots = snapshotsOf(await collect([...files], levels));
    const messages = csvRows(files[0]);
    let checked = 0;
    let hiddenUnchanged = 0;
    for (let row = 1; row < snapshots.length; row++) {
      const [, type, , size, ticks, direction] = messages[row];
      const previous = snapshots[row - 1];
      const current = snapshots[row];
      if (type === 5) {
        // A hidden execution never shows in the visible book.
        expect(Array.from(current.bids)).toEqual(Array.from(previous.bids));
        expect(Array.from(current.asks)).toEqual(Array.from(previous.asks));
        hiddenUnchanged++;
        continue;
      }
      if (type < 1 || type > 4) continue;
      const isBid = direction === 1;
      const before = sizeAt(isBid ? previous.bids : previous.asks, ticks, isBid, levels);
      const after = sizeAt(isBid ? current.bids : current.asks, ticks, isBid, levels);
      if (before === undefined || after === undefined) continue;
      expect(after).toBe(type === 1 ? before + size : before - size);
      checked++;
    }
    expect(checked).toBeGreaterThan(minimumChecked);
    expect(hiddenUnchanged).toBeGreaterThan(0);
  });
});

describe('lobster inputs', () => {
  it('reads the pair straight out of a zip, same as from the CSVs', async () => {
    const fromZip = snapshotsOf(await collect([join(fixtures, 'LOBSTER_excerpt_AMZN_2012-06-21_5_first300.zip')], 5));
    const fromCsv = snapshotsOf(await collect(amznFiles, 5)).slice(0, 300);
    expect(fromZip).toHaveLength(300);
    expect(fromZip).toEqual(fromCsv);
  });

  it('reads gzip CSVs (detected by content) and overrides the symbol', async () => {
    const paths = amznFiles.map((path) => {
      const target = join(scratch, `${path.slice(path.lastIndexOf('/') + 1)}.gz`);
      writeFileSync(target, gzipSync(readFileSync(path)));
      return target;
    });
    const fromGzip = snapshotsOf(await collect(paths, 5, 'AMZN.XNAS'));
    const fromCsv = snapshotsOf(await collect(amznFiles, 5));
    expect(fromGzip).toHaveLength(2000);
    expect(fromGzip.every((s) => s.symbol === 'AMZN.XNAS')).toBe(true);
    expect(fromGzip.map((s) => s.bids)).toEqual(fromCsv.map((s) => s.bids));
  });

  it('reads every pair of a folder: CSV pairs and zips, in file-name order', async () => {
    const bySymbol = new Map<string, number>();
    for (const snapshot of snapshotsOf(await collect([fixtures], 5))) {
      bySymbol.set(snapshot.symbol, (bySymbol.get(snapshot.symbol) ?? 0) + 1);
    }
    // AAPL CSV pair (999), AMZN CSV pair (2000) and the AMZN zip excerpt (300).
    expect(Object.fromEntries(bySymbol)).toEqual({ AAPL: 999, AMZN: 2300 });
  });

  it('throws on an unpaired file or a file it cannot name', async () => {
    await expect(collect([amznFiles[0]], 5)).rejects.toThrow(/has no orderbook file/);
    const stray = join(scratch, 'book.csv');
    writeFileSync(stray, '1,2,3,4\n');
    await expect(collect([stray], 5)).rejects.toThrow(/neither a zip nor named/);
  });

  it('reports files of different lengths once, after the common rows', async () => {
    const message = join(scratch, `${AMZN}_message_5.csv`);
    const orderbook = join(scratch, `${AMZN}_orderbook_5.csv`);
    writeFileSync(message, readFileSync(amznFiles[0], 'utf8').split('\n').slice(0, 10).join('\n'));
    writeFileSync(orderbook, readFileSync(amznFiles[1], 'utf8').split('\n').slice(0, 12).join('\n'));
    const messages = (await collect([message, orderbook], 5)).filter((m) => m.type !== 'trade' && m.type !== 'order_event');
    expect(snapshotsOf(messages)).toHaveLength(10);
    expect(messages).toHaveLength(11);
    expect(messages[10]).toMatchObject({ type: 'rejected', reason: 'schema', detail: expect.stringContaining('the message file ends at row 10 but the orderbook file goes on') });
  });
});

describe('lobster trading halts (synthetic fixture: the samples contain no halt)', () => {
  it('emits a disconnect at the halt and no snapshot until trading resumes', async () => {
    const dir = join(fixtures, 'synthetic-halt');
    const messages = (await collect([dir], 5)).filter((m) => m.type !== 'trade' && m.type !== 'order_event');
    const realBooks = csvRows(amznFiles[1]);
    expect(messages.map((m) => m.type)).toEqual([...Array<string>(20).fill('book_snapshot'), 'disconnect', ...Array<string>(16).fill('book_snapshot')]);
    const halt = messages[20] as Disconnect;
    expect(halt).toMatchObject({ type: 'disconnect', symbol: 'AMZN', reason: expect.stringContaining('trading halt') });
    const beforeHalt = messages[19] as BookSnapshot;
    expect(halt.localTs).toBe(beforeHalt.ts);
    const seqs = snapshotsOf(messages).map((s) => s.seq);
    expect(seqs).toEqual([...Array(20).keys(), ...Array.from({ length: 16 }, (_, i) => 27 + i)]);
    // The resumption row repeats the book after real row 24; the next one is real row 25.
    const resumed = messages[21] as BookSnapshot;
    expectSide(resumed.asks, expectedSides(realBooks[24], 5).asks);
    expectSide((messages[22] as BookSnapshot).bids, expectedSides(realBooks[25], 5).bids);
  });
});

describe('lobster rows that are not a sound book', () => {
  const message = '34200.5,1,42,100,2238200,1';
  const level = (askTicks: number, askSize: number, bidTicks: number, bidSize: number): string => `${askTicks},${askSize},${bidTicks},${bidSize}`;
  const padding = level(9_999_999_999, 0, -9_999_999_999, 0);
  const mapper = (): LobsterRowMapper => new LobsterRowMapper('AMZN', '2012-06-21', 3, 10);

  // Synthetic rows: the real samples have no padded levels.
  it('drops padded empty levels', () => {
    const row = [level(2239500, 100, 2238200, 50), level(2240000, 30, -9_999_999_999, 0), padding].join(',');
    const snapshot = mapper().map(message, row, 0) as BookSnapshot;
    expect(snapshot.type).toBe('book_snapshot');
    expect(Array.from(snapshot.asks)).toEqual([223.95, 100, 224, 30]);
    expect(Array.from(snapshot.bids)).toEqual([223.82, 50]);
  });

  it('rejects one-sided and crossed rows with their reason', () => {
    const oneSided = [level(2239500, 100, -9_999_999_999, 0), padding, padding].join(',');
    expect(mapper().map(message, oneSided, 0)).toMatchObject({ type: 'rejected', reason: 'empty_book', symbol: 'AMZN' });
    const crossed = [level(2238000, 100, 2238200, 50), padding, padding].join(',');
    expect(mapper().map(message, crossed, 0)).toMatchObject({ type: 'rejected', reason: 'crossed_book' });
  });

  it('names the column of a malformed cell', () => {
    const good = [level(2239500, 100, 2238200, 50), padding, padding].join(',');
    const cases: [string, string, RegExp][] = [
      [message, good.replace('2238200', '22382x0'), /orderbook row 7 column bid_px1: expected a number, got "22382x0"/],
      [message, `${good},1`, /orderbook row 7: expected 12 columns \(3 levels\), got 13/],
      ['34200.5,1,42,100,,1', good, /message row 7 column price: expected a number, got ""/],
      ['34200.5,9,42,100,2238200,1', good, /message row 7 column type: expected an integer 1\.\.7, got "9"/],
      ['34200.5,1,42,100,2238200,0', good, /message row 7 column direction: expected 1 or -1/],
      ['34200.5,7,0,0,5,-1', good, /message row 7 column price: a trading-halt message expects -1, 0 or 1, got "5"/],
      ['34200.5,1,42', good, /message row 7: expected 6 columns, got 3/],
      ['1e300,1,42,100,2238200,1', good, /message row 7 column time: expected seconds after midnight in \[0, 86400\], got "1e300"/],
    ];
    for (const [messageLine, bookLine, detail] of cases) {
      const result = mapper().map(messageLine, bookLine, 7);
      expect(result).toMatchObject({ type: 'rejected', reason: 'schema' });
      expect(result?.type === 'rejected' ? result.detail : '').toMatch(detail);
    }
  });

  it('rejects a row whose time goes backwards as out_of_order', () => {
    const book = [level(2239500, 100, 2238200, 50), padding, padding].join(',');
    const rows = mapper();
    expect(rows.map('34201,1,1,10,2238200,1', book, 0)?.type).toBe('book_snapshot');
    expect(rows.map('34200.9,1,2,10,2238200,1', book, 1)).toMatchObject({ type: 'rejected', reason: 'out_of_order' });
    expect(rows.map('34201,3,1,10,2238200,1', book, 2)?.type).toBe('book_snapshot');
  });

  it('never throws and never emits a non-finite or unchecked book (fuzzed and truncated real rows)', () => {
    const realMessages = readFileSync(amznFiles[0], 'utf8').split('\n').slice(0, 200);
    const realBooks = readFileSync(amznFiles[1], 'utf8').split('\n').slice(0, 200);
    const rows = new LobsterRowMapper('AMZN', '2012-06-21', 5, 5);
    const holds = (result: MarketMessage | null): boolean => {
      if (result?.type !== 'book_snapshot') return true;
      return [...result.bids, ...result.asks, result.ts].every(Number.isFinite) && checkBook(result.bids, result.asks) === null;
    };
    fc.assert(
      fc.property(fc.string(), fc.string({ unit: 'binary' }), (messageLine, bookLine) => holds(rows.map(messageLine, bookLine, 0))),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 199 }), fc.nat(), fc.boolean(), (row, cut, cutBook) => {
        const messageLine = cutBook ? realMessages[row] : realMessages[row].slice(0, cut % (realMessages[row].length + 1));
        const bookLine = cutBook ? realBooks[row].slice(0, cut % (realBooks[row].length + 1)) : realBooks[row];
        return holds(new LobsterRowMapper('AMZN', '2012-06-21', 5, 5).map(messageLine, bookLine, row));
      }),
      { numRuns: 600 },
    );
  });
});

describe('lobster flow: executions as trades, submissions and cancellations as order events', () => {
  it("emits each row's flow just before its snapshot, with the fixture rows' values", async () => {
    const messages = await collect(amznFiles, 5);
    const rows = csvRows(amznFiles[0]);
    const books = csvRows(amznFiles[1]);
    const snapshots = snapshotsOf(messages);
    expect(snapshots).toHaveLength(rows.length);
    let snapshotIndex = 0;
    let trades = 0;
    let events = 0;
    for (let i = 0; i < messages.length; i++) {
      const message = messages[i];
      if (message.type === 'book_snapshot') {
        snapshotIndex++;
        continue;
      }
      // The flow of row r comes right before the snapshot of row r.
      const next = messages[i + 1] as BookSnapshot;
      expect(next.type).toBe('book_snapshot');
      const row = rows[next.seq as number];
      if (message.type === 'trade') {
        trades++;
        expect([4, 5]).toContain(row[1]);
        expect(message.size).toBe(row[3]);
        expect(message.price).toBeCloseTo(row[4] / 10_000, 9);
        expect(message.aggressor).toBe(-row[5]);
        expect(message.ts).toBe(next.ts);
      } else if (message.type === 'order_event') {
        events++;
        expect(message.kind).toBe(({ 1: 'submit', 2: 'cancel', 3: 'delete' } as Record<number, string>)[row[1]]);
        expect(message.side).toBe(row[5]);
        expect(message.size).toBe(row[3]);
      }
    }
    expect(snapshotIndex).toBe(rows.length);
    // The fixture holds 220 visible and 145 hidden executions, 894 submissions, 2 cancellations, 739 deletions.
    expect(trades).toBe(365);
    expect(events).toBe(894 + 2 + 739);
    // Row 1: a buy submission at 223.81 above the previous best bid 223.18: level 0.
    // Row 2: a sell submission at 223.96 behind the best ask 223.95: level 1.
    const flows = messages.filter((m) => m.type === 'order_event');
    expect(flows[0]).toMatchObject({ kind: 'submit', side: 1, size: 21, price: 223.81, level: 0 });
    expect(flows[1]).toMatchObject({ kind: 'submit', side: -1, size: 20, price: 223.96, level: 1 });
    expect(books[0][2]).toBe(2231800);
    // Row 28: execution of the resting buy order 11885113 (21 shares at 223.81): a seller hit the bid.
    const trade = messages.find((m) => m.type === 'trade' && m.size === 21);
    expect(trade).toMatchObject({ type: 'trade', price: 223.81, size: 21, aggressor: -1 });
  });
});
