import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import type { BookSnapshot, Disconnect, MarketMessage, Rejected } from '../../src/domain/types.js';
import { binanceRaw } from '../../src/venues/binance-raw.js';
import { parseRecordedLine } from '../../src/venues/lines.js';
import type { RecordedFrame } from '../../src/venues/lines.js';
import { tardisCsv, tardisDataType } from '../../src/venues/tardis-csv.js';

const fixtures = fileURLToPath(new URL('../../fixtures/', import.meta.url));
const deribit = readFileSync(join(fixtures, 'tardis/deribit_incremental_book_L2_BTC-PERPETUAL.head15.csv'), 'utf8').trimEnd().split('\n');
const HEADER = 'exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount';
const scratch = mkdtempSync(join(tmpdir(), 'tardis-incremental-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

let fileCount = 0;
function write(lines: readonly string[]): string {
  fileCount += 1;
  const path = join(scratch, `file${fileCount}.csv`);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

async function collect(paths: string[], levels: number): Promise<MarketMessage[]> {
  const out: MarketMessage[] = [];
  for await (const message of tardisCsv.read(paths, { levels })) out.push(message);
  return out;
}
const books = (messages: readonly MarketMessage[]) => messages.filter((m): m is BookSnapshot => m.type === 'book_snapshot');

const row = (ts: number, local: number, snapshot: boolean, side: 'bid' | 'ask', price: string, amount: string) =>
  `deribit,BTC-PERPETUAL,${ts},${local},${snapshot},${side},${price},${amount}`;

describe('tardis-csv incremental_book_L2', () => {
  it('tells the data type by its header', () => {
    expect(tardisDataType(HEADER)).toBe('incremental_book_L2');
    expect(deribit[0]).toBe(HEADER);
  });

  it('turns the recorded snapshot block into one book, emitted when the block ends', async () => {
    // The real rows (asks only) plus the block's bids, then one delta message of two rows.
    const block = [...deribit, row(1585699200245000, 1585699200355684, true, 'bid', '6421', '5000'), row(1585699200245000, 1585699200355684, true, 'bid', '6420.5', '70')];
    const deltas = [row(1585699200300000, 1585699200400000, false, 'ask', '6421.5', '0'), row(1585699200300000, 1585699200400000, false, 'bid', '6421', '4000')];
    const out = await collect([write([...block, ...deltas])], 3);
    expect(out.map((m) => m.type)).toEqual(['book_snapshot', 'book_snapshot']);
    const [snapshot, afterDelta] = books(out);
    expect(snapshot.ts).toBe(1585699200245);
    expect(snapshot.localTs).toBeCloseTo(1585699200355.684, 6);
    expect([...snapshot.asks]).toEqual([6421.5, 18640, 6422, 1190, 6422.5, 1080]);
    expect([...snapshot.bids]).toEqual([6421, 5000, 6420.5, 70]);
    // amount 0 deleted the best ask; the bid's amount is absolute.
    expect([...afterDelta.asks]).toEqual([6422, 1190, 6422.5, 1080, 6423, 1400]);
    expect([...afterDelta.bids]).toEqual([6421, 4000, 6420.5, 70]);
  });

  it('rejects the recorded block on its own: it has no bids yet', async () => {
    const out = await collect([write(deribit)], 5);
    expect(out).toHaveLength(1);
    expect((out[0] as Rejected).reason).toBe('empty_book');
  });

  it('ignores deltas before the first snapshot; a new block mid-file marks a gap and resets the book', async () => {
    const lines = [
      HEADER,
      row(1000, 1000, false, 'bid', '99', '1'),
      row(2000, 2000, true, 'bid', '100', '1'),
      row(2000, 2000, true, 'ask', '101', '1'),
      row(3000, 3000, false, 'bid', '98', '2'),
      // The recorder reconnected: a fresh snapshot without the 98 bid.
      row(4000, 4000, true, 'bid', '100.5', '3'),
      row(4000, 4000, true, 'ask', '101', '2'),
      row(5000, 5000, false, 'ask', '102', '1'),
    ];
    const out = await collect([write(lines)], 5);
    expect(out.map((m) => m.type)).toEqual(['book_snapshot', 'book_snapshot', 'disconnect', 'book_snapshot', 'book_snapshot']);
    const all = books(out);
    expect([...all[0].bids]).toEqual([100, 1]);
    expect([...all[1].bids]).toEqual([100, 1, 98, 2]);
    expect((out[2] as Disconnect).reason).toContain('new snapshot block');
    expect([...all[2].bids]).toEqual([100.5, 3]);
    expect([...all[3].asks]).toEqual([101, 2, 102, 1]);
  });

  it('rejects a bad row naming the cell and keeps going', async () => {
    const lines = [
      HEADER,
      row(2000, 2000, true, 'bid', '100', '1'),
      row(2000, 2000, true, 'ask', '101', '1'),
      row(3000, 3000, false, 'buy' as 'bid', '99', '1'),
      row(3000, 3000, false, 'bid', '99', '-1'),
      row(4000, 4000, false, 'bid', '99.5', '1'),
    ];
    const out = await collect([write(lines)], 5);
    const rejections = out.filter((m): m is Rejected => m.type === 'rejected');
    expect(rejections.map((r) => r.detail)).toEqual([
      'BTC-PERPETUAL: line 4 side: expected bid or ask, got "buy"',
      'BTC-PERPETUAL: line 5 amount: expected a finite number >= 0, got "-1"',
    ]);
    expect([...books(out).at(-1)!.bids]).toEqual([100, 1, 99.5, 1]);
  });
});

describe('tardis-csv incremental_book_L2 from a real recording', () => {
  // The recorded Binance spot stream written as tardis.dev writes incremental_book_L2: the REST
  // snapshot as the is_snapshot block, then every diff event the snapshot does not already hold
  // (u > lastUpdateId), one row per level, timestamp = E, local_timestamp = receive time (µs).
  const recording = join(fixtures, 'binance/spot_btcusdt_20240808.head3000.gz');
  const recorded = gunzipSync(readFileSync(recording))
    .toString('utf8')
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => parseRecordedLine(line) as RecordedFrame);
  const micros = (ms: number) => Math.round(ms * 1000);

  function incrementalFile(): string[] {
    const snapshotAt = recorded.findIndex((r) => r.frame.startsWith('{"lastUpdateId"'));
    const snapshot = JSON.parse(recorded[snapshotAt].frame) as { lastUpdateId: number; bids: string[][]; asks: string[][] };
    const deltas: string[] = [];
    let firstDeltaAt = Number.POSITIVE_INFINITY;
    for (const { frame, localTs } of recorded) {
      if (!frame.startsWith('{"stream":"btcusdt@depth')) continue;
      const data = (JSON.parse(frame) as { data: { E: number; u: number; b: string[][]; a: string[][] } }).data;
      if (data.u <= snapshot.lastUpdateId) continue;
      firstDeltaAt = Math.min(firstDeltaAt, micros(localTs));
      for (const [price, amount] of data.b) deltas.push(`binance,BTCUSDT,${data.E * 1000},${micros(localTs)},false,bid,${price},${amount}`);
      for (const [price, amount] of data.a) deltas.push(`binance,BTCUSDT,${data.E * 1000},${micros(localTs)},false,ask,${price},${amount}`);
    }
    // The events the snapshot bridges were buffered before it arrived; tardis.dev orders rows by
    // local_timestamp, so the block is dated no later than the first of them.
    const local = Math.min(micros(recorded[snapshotAt].localTs), firstDeltaAt);
    const lines = [HEADER];
    for (const [price, amount] of snapshot.bids) lines.push(`binance,BTCUSDT,${local},${local},true,bid,${price},${amount}`);
    for (const [price, amount] of snapshot.asks) lines.push(`binance,BTCUSDT,${local},${local},true,ask,${price},${amount}`);
    return [...lines, ...deltas];
  }

  it('rebuilds the same books as the binance-raw reader of that recording', async () => {
    const fromTardis = books(await collect([write(incrementalFile())], 5));
    const fromRaw: BookSnapshot[] = [];
    for await (const message of binanceRaw.read([recording], { levels: 5 })) if (message.type === 'book_snapshot') fromRaw.push(message);
    // The first tardis book is the snapshot block itself; each later one is one diff event.
    expect(fromTardis.length).toBe(fromRaw.length + 1);
    expect(fromRaw.length).toBeGreaterThan(200);
    for (let i = 0; i < fromRaw.length; i += 1) {
      expect([...fromTardis[i + 1].bids]).toEqual([...fromRaw[i].bids]);
      expect([...fromTardis[i + 1].asks]).toEqual([...fromRaw[i].asks]);
      expect(fromTardis[i + 1].ts).toBe(fromRaw[i].ts);
    }
  });

  it('merges with the trades file of the same period by arrival', async () => {
    const trades = join(fixtures, 'tardis/binance_trades_BTCUSDT_2024-08-08.head3000.csv');
    const out = await collect([write(incrementalFile()), trades], 5);
    expect(out.filter((m) => m.type === 'trade')).toHaveLength(518);
    expect(out.filter((m) => m.type === 'rejected')).toEqual([]);
    const arrivals = out.map((m) => (m as BookSnapshot).localTs);
    for (let i = 1; i < arrivals.length; i += 1) expect(arrivals[i]).toBeGreaterThanOrEqual(arrivals[i - 1]);
  });
});
