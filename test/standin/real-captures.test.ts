// The stand-ins take a real capture as it comes off the wire, `<receive ns> <frame>` per line
// with the capturing session's own conversation (status, acknowledgements, heartbeats) in it:
// here the venues' documented example frames (fixtures/coinbase, fixtures/kraken; Kraken v2's a
// real recorded snapshot), served to the live client, give the books and trades the venue's
// mapper makes of the same frames.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { BookSnapshot, MarketMessage } from '../../src/domain/types.js';
import { createLiveFeed } from '../../src/ingest/live-client.js';
import { startFeedServer, type StandInVenue } from '../../src/standin/server.js';
import { coinbase } from '../../src/venues/coinbase.js';
import { krakenVenue } from '../../src/venues/kraken.js';
import { krakenV2 } from '../../src/venues/kraken-v2.js';
import { parseRecordedLine } from '../../src/venues/lines.js';
import type { Venue } from '../../src/venues/types.js';
import { collect, until } from '../ingest/fake-exchange.js';

const lines = (path: string) =>
  readFileSync(fileURLToPath(new URL(`../../fixtures/${path}`, import.meta.url)), 'utf8')
    .split('\n')
    .filter((line) => line.length > 0);
const scratch = mkdtempSync(join(tmpdir(), 'lob-rtrl-captures-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Writes frames as a capture, one millisecond apart. */
function capture(name: string, frames: readonly string[]): string {
  const path = join(scratch, name);
  writeFileSync(path, frames.map((frame, i) => `${1_700_000_000_000_000_000n + BigInt(i) * 1_000_000n} ${frame}`).join('\n') + '\n');
  return path;
}

const [coinbaseSnapshot, coinbaseUpdate] = lines('coinbase/level2-docs.jsonl');
const [coinbaseHeartbeat, coinbaseSubscriptions] = lines('coinbase/control.jsonl');
const [krakenSnapshot, krakenUpdate] = lines('kraken/checksum-guide.jsonl');
const [systemStatus, , krakenHeartbeat] = lines('kraken/control.jsonl');
// The real USDG/USD snapshot recorded from wss://ws.kraken.com/v2 that test/venues/kraken-v2.test.ts uses.
const krakenV2Snapshot =
  '{"channel":"book","type":"snapshot","data":[{"symbol":"USDG/USD","bids":[{"price":0.9999,"qty":653645.22211},{"price":0.9998,"qty":21389.49905},{"price":0.9997,"qty":311181.88799},{"price":0.9996,"qty":935949.00167},{"price":0.9995,"qty":5.25262},{"price":0.9993,"qty":15819.07585},{"price":0.9990,"qty":28045.34609},{"price":0.9985,"qty":35372.52894},{"price":0.9900,"qty":10.07905},{"price":0.9835,"qty":240.14072}],"asks":[{"price":1.0000,"qty":382506.65119},{"price":1.0001,"qty":242215.90771},{"price":1.0002,"qty":357570.43200},{"price":1.0003,"qty":936797.08901},{"price":1.0004,"qty":10578.85361},{"price":1.0005,"qty":83656.47123},{"price":1.0007,"qty":15819.07585},{"price":1.0010,"qty":23655.03579},{"price":1.0015,"qty":35372.52894},{"price":1.0024,"qty":5000.00000}],"checksum":3225719247,"timestamp":"2026-09-17T06:16:44.386754Z"}]}';

interface Case {
  readonly id: StandInVenue;
  readonly venue: Venue;
  readonly symbol: string;
  readonly frames: readonly string[];
  readonly books: number;
  readonly trades: number;
}

const cases: Case[] = [
  {
    id: 'coinbase',
    venue: coinbase,
    symbol: 'BTC-USD',
    frames: [coinbaseSubscriptions, coinbaseSnapshot, coinbaseHeartbeat, coinbaseUpdate, ...lines('coinbase/matches-docs.jsonl')],
    books: 2,
    trades: 1,
  },
  {
    id: 'kraken',
    venue: krakenVenue(1000),
    symbol: 'BTC/USD',
    frames: [
      systemStatus,
      '{"channelID":0,"channelName":"book-1000","event":"subscriptionStatus","pair":"BTC/USD","status":"subscribed","subscription":{"depth":1000,"name":"book"}}',
      krakenSnapshot,
      krakenHeartbeat,
      krakenUpdate,
    ],
    books: 2,
    trades: 0,
  },
  {
    id: 'kraken-v2',
    venue: krakenV2,
    symbol: 'USDG/USD',
    frames: [
      '{"channel":"status","type":"update","data":[{"api_version":"v2","connection_id":1,"system":"online","version":"2.0.10"}]}',
      '{"channel":"heartbeat"}',
      krakenV2Snapshot,
    ],
    books: 1,
    trades: 0,
  },
];

describe.each(cases)('the $id stand-in on a capture of documented frames', ({ id, venue, symbol, frames, books, trades }) => {
  it("serves its market data, leaves the capturing session's conversation out, and the client gets what the mapper makes of it", async () => {
    const recording = capture(`${id}.txt`, frames);
    const mapper = venue.createMapper({ levels: 10 });
    const expected: MarketMessage[] = [];
    for (const frame of frames) expected.push(...mapper.map(frame, parseRecordedLine(`1 ${frame}`)?.localTs ?? 0));
    const expectedBooks = expected.filter((m): m is BookSnapshot => m.type === 'book_snapshot');
    expect(expectedBooks).toHaveLength(books);

    const server = await startFeedServer({ venue: id, recording, speed: 'max', loop: false });
    const feed = createLiveFeed(venue, { url: server.wsUrl, symbols: [symbol] }, { now: () => 1, levels: 10, pingIntervalMs: 0, maxPendingPerSymbol: 100 });
    try {
      expect(server.recording).toMatchObject({ entries: books + (trades > 0 ? 1 : 0), skippedLines: 0 });
      const { items } = collect(feed.messages());
      await until(() => items.filter((m) => m.type === 'book_snapshot').length === books && items.filter((m) => m.type === 'trade').length === trades, 'the books and trades');
      const live = items.filter((m): m is BookSnapshot => m.type === 'book_snapshot');
      expect(live.map((b) => [[...b.bids], [...b.asks]])).toEqual(expectedBooks.map((b) => [[...b.bids], [...b.asks]]));
      expect(items.filter((m) => m.type === 'rejected')).toEqual([]);
    } finally {
      await feed.close();
      await server.close();
    }
  });
});
