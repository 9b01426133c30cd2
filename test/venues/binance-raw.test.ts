import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import type { BookSnapshot, MarketMessage, Trade } from '../../src/domain/types.js';
import { binanceRaw } from '../../src/venues/binance-raw.js';
import { parseRecordedLine } from '../../src/venues/lines.js';

// fixtures/binance/README.md: the first 3000 lines of spot_btcusdt_20240808.gz, REST snapshot on line 8.
const fixturePath = fileURLToPath(new URL('../../fixtures/binance/spot_btcusdt_20240808.head3000.gz', import.meta.url));
const lines = gunzipSync(readFileSync(fixturePath))
  .toString('utf8')
  .split('\n')
  .filter((line) => line.length > 0);
const scratch = mkdtempSync(join(tmpdir(), 'binance-raw-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function writeRecording(name: string, content: string[], gzip: boolean): string {
  const path = join(scratch, name);
  const text = `${content.join('\n')}\n`;
  writeFileSync(path, gzip ? gzipSync(text) : text);
  return path;
}

async function collect(paths: string[], options: { levels: number; symbol?: string }): Promise<MarketMessage[]> {
  const out: MarketMessage[] = [];
  for await (const message of binanceRaw.read(paths, options)) out.push(message);
  return out;
}

const snapshotsOf = (messages: readonly MarketMessage[]) => messages.filter((m): m is BookSnapshot => m.type === 'book_snapshot');
const tradesOf = (messages: readonly MarketMessage[]) => messages.filter((m): m is Trade => m.type === 'trade');
const markersOf = (messages: readonly MarketMessage[]) => messages.filter((m) => m.type !== 'book_snapshot' && m.type !== 'trade');

interface Depth {
  E: number;
  U: number;
  u: number;
  b: [string, string][];
  a: [string, string][];
}

/**
 * An independent replay of the fixture: the recorded REST snapshot into two Maps, every diff
 * event with u > lastUpdateId applied in file order, top 10 sorted at the end of `upTo`.
 */
function referenceTop(upTo: number): { bids: number[]; asks: number[]; event: Depth; receivedNs: string } {
  const bids = new Map<number, number>();
  const asks = new Map<number, number>();
  let lastUpdateId = -1;
  let event: Depth | null = null;
  let receivedNs = '';
  for (const line of lines.slice(0, upTo)) {
    const frame = line.slice(line.indexOf(' ') + 1);
    if (frame.startsWith('{"lastUpdateId"')) {
      const body = JSON.parse(frame) as { lastUpdateId: number; bids: string[][]; asks: string[][] };
      lastUpdateId = body.lastUpdateId;
      for (const [p, q] of body.bids) bids.set(Number(p), Number(q));
      for (const [p, q] of body.asks) asks.set(Number(p), Number(q));
    }
  }
  const buffered: { depth: Depth; ns: string }[] = [];
  for (const line of lines.slice(0, upTo)) {
    const frame = line.slice(line.indexOf(' ') + 1);
    if (frame.startsWith('{"stream":"btcusdt@depth@100ms"')) buffered.push({ depth: (JSON.parse(frame) as { data: Depth }).data, ns: line.slice(0, line.indexOf(' ')) });
  }
  for (const { depth, ns } of buffered) {
    if (depth.u <= lastUpdateId) continue;
    for (const [p, q] of depth.b) {
      if (Number(q) === 0) bids.delete(Number(p));
      else bids.set(Number(p), Number(q));
    }
    for (const [p, q] of depth.a) {
      if (Number(q) === 0) asks.delete(Number(p));
      else asks.set(Number(p), Number(q));
    }
    event = depth;
    receivedNs = ns;
  }
  const top = (side: Map<number, number>, descending: boolean) =>
    [...side.entries()]
      .sort((x, y) => (descending ? y[0] - x[0] : x[0] - y[0]))
      .slice(0, 10)
      .flat();
  return { bids: top(bids, true), asks: top(asks, false), event: event!, receivedNs };
}

function expectClose(actual: Float64Array, expected: number[]): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i += 1) expect(actual[i]).toBeCloseTo(expected[i], 8);
}

describe('binance-raw over the recorded excerpt', () => {
  const depthLines = lines.filter((line) => line.includes(' {"stream":"btcusdt@depth@100ms"'));
  const firstApplicable = lines.findIndex((line) => {
    const frame = line.slice(line.indexOf(' ') + 1);
    return frame.startsWith('{"stream":"btcusdt@depth@100ms"') && (JSON.parse(frame) as { data: Depth }).data.u > 50093239218;
  });

  it('emits one sound snapshot per diff event after the inline REST snapshot and one trade per @trade line, nothing else', async () => {
    const messages = await collect([fixturePath], { levels: 10 });
    expect(markersOf(messages)).toEqual([]);
    const snapshots = snapshotsOf(messages);
    expect(depthLines).toHaveLength(281);
    expect(snapshots).toHaveLength(279);
    expect(new Set(snapshots.map((s) => s.symbol))).toEqual(new Set(['BTCUSDT']));
    const tradeLines = lines.filter((line) => line.includes(' {"stream":"btcusdt@trade"'));
    const trades = tradesOf(messages);
    expect(trades).toHaveLength(518);
    trades.forEach((trade, i) => {
      const line = tradeLines[i];
      const data = (JSON.parse(line.slice(line.indexOf(' ') + 1)) as { data: { t: number; T: number; p: string; q: string; m: boolean } }).data;
      expect(trade).toMatchObject({ symbol: 'BTCUSDT', tradeId: String(data.t), ts: data.T, price: Number(data.p), size: Number(data.q), aggressor: data.m ? -1 : 1 });
      expect(trade.localTs).toBeCloseTo(Number(line.slice(0, line.indexOf(' '))) / 1e6, 3);
    });
    // A trade comes out where its line stands: between the books of the diff lines around it.
    const lastBook = snapshots[snapshots.length - 1];
    const lastBookLine = lines.findIndex((line) => line.includes(`"u":${lastBook.seq},`));
    const tradesAfterLastBook = tradeLines.filter((line) => lines.indexOf(line) > lastBookLine).length;
    expect(messages.slice(messages.indexOf(lastBook) + 1).map((m) => m.type)).toEqual(Array(tradesAfterLastBook).fill('trade'));
  });

  it('first and last snapshots match an independent replay of the raw frames', async () => {
    const snapshots = snapshotsOf(await collect([fixturePath], { levels: 10 }));
    // The first applied event is on line 6, before the snapshot on line 8: replaying 8 lines covers both.
    expect(firstApplicable).toBe(5);
    const firstExpected = referenceTop(8);
    expect(snapshots[0].seq).toBe(firstExpected.event.u);
    expect(snapshots[0].ts).toBe(firstExpected.event.E);
    expect(snapshots[0].localTs).toBeCloseTo(Number(firstExpected.receivedNs) / 1e6, 3);
    expectClose(snapshots[0].bids, firstExpected.bids);
    expectClose(snapshots[0].asks, firstExpected.asks);
    expect(snapshots[0].bids[0]).toBeCloseTo(61837.63, 8);
    expect(snapshots[0].asks[0]).toBeCloseTo(61837.64, 8);

    const lastExpected = referenceTop(lines.length);
    const last = snapshots[snapshots.length - 1];
    expect(last.seq).toBe(lastExpected.event.u);
    expect(last.ts).toBe(lastExpected.event.E);
    expect(last.localTs).toBeCloseTo(Number(lastExpected.receivedNs) / 1e6, 3);
    expectClose(last.bids, lastExpected.bids);
    expectClose(last.asks, lastExpected.asks);
  });

  it('reads plain text the same as gzip, and two files in order as one stream', async () => {
    const whole = snapshotsOf(await collect([fixturePath], { levels: 10 }));
    const plain = writeRecording('plain.txt', lines, false);
    expect(snapshotsOf(await collect([plain], { levels: 10 }))).toEqual(whole);
    const head = writeRecording('part1.gz', lines.slice(0, 1500), true);
    const tail = writeRecording('part2.gz', lines.slice(1500), true);
    const split = await collect([head, tail], { levels: 10 });
    expect(markersOf(split)).toEqual([]);
    expect(snapshotsOf(split)).toEqual(whole);
    expect(tradesOf(split)).toEqual(tradesOf(await collect([fixturePath], { levels: 10 })));
  });

  it('holds a snapshot recorded before any frame names the symbol, and honours options.symbol', async () => {
    const whole = snapshotsOf(await collect([fixturePath], { levels: 10 }));
    const snapshotFirst = writeRecording('snapshot-first.gz', [lines[7], ...lines.slice(0, 7), ...lines.slice(8)], true);
    expect(snapshotsOf(await collect([snapshotFirst], { levels: 10 }))).toEqual(whole);
    const named = snapshotsOf(await collect([fixturePath], { levels: 5, symbol: 'btcusdt' }));
    expect(named).toHaveLength(whole.length);
    expect(named[0].symbol).toBe('BTCUSDT');
    expect(named[0].bids.length).toBe(10);
  });

  it('refuses to guess the snapshot symbol in a recording of several symbols unless told', async () => {
    // A second symbol's trade, made by renaming a recorded BTCUSDT trade, before the snapshot.
    const trade = lines.find((line) => line.includes('"btcusdt@trade"'))!;
    const other = trade.replace('btcusdt@trade', 'ethusdt@trade').replace('"s":"BTCUSDT"', '"s":"ETHUSDT"');
    const mixed = writeRecording('mixed.gz', [lines[0], other, ...lines.slice(1)], true);
    const guessed = await collect([mixed], { levels: 10 });
    const refused = guessed.filter((m) => m.type === 'rejected');
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ reason: 'unknown_symbol' });
    expect((refused[0] as { detail: string }).detail).toContain('ETHUSDT');
    expect(snapshotsOf(guessed)).toEqual([]);
    const told = await collect([mixed], { levels: 10, symbol: 'BTCUSDT' });
    expect(snapshotsOf(told)).toHaveLength(279);
  });

  it('still emits the trades of a recording that ends before the book could sync', async () => {
    const beforeSnapshot = writeRecording('no-snapshot.txt', lines.slice(0, 7), false);
    const messages = await collect([beforeSnapshot], { levels: 10 });
    expect(messages.map((m) => m.type)).toEqual(['trade']);
    expect((messages[0] as Trade).tradeId).toBe('3735683259');
  });

  it('reports an inline snapshot it cannot attribute to a symbol', async () => {
    const onlySnapshot = writeRecording('only-snapshot.txt', [lines[7]], false);
    const messages = await collect([onlySnapshot], { levels: 10 });
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatchObject({ type: 'rejected', reason: 'unknown_symbol' });
    expect(parseRecordedLine(lines[7])?.frame.startsWith('{"lastUpdateId"')).toBe(true);
  });
});
