// The Coinbase and Kraken recordings of fixtures/ are the real Binance excerpt re-encoded
// (src/standin/convert-binance.ts). Checked here: the committed files are what the converter
// writes, and each venue's own mapper, fed the recording, rebuilds Binance's book at every step
// (top 10, from the binance-raw reader's independent sync of the same excerpt) with no rejection.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { BookSnapshot, MarketMessage, Trade } from '../../src/domain/types.js';
import { convertBinanceRecording, venueSymbol, type ConversionReport, type ConversionTarget } from '../../src/standin/convert-binance.js';
import { binanceRaw } from '../../src/venues/binance-raw.js';
import { coinbase } from '../../src/venues/coinbase.js';
import { kraken } from '../../src/venues/kraken.js';
import { krakenV2 } from '../../src/venues/kraken-v2.js';
import { parseRecordedLine } from '../../src/venues/lines.js';
import type { Venue } from '../../src/venues/types.js';

const fixture = (path: string) => fileURLToPath(new URL(`../../fixtures/${path}`, import.meta.url));
const BINANCE = fixture('binance/spot_btcusdt_20240808.head3000.gz');
const LEVELS = 10;

const cases: { target: ConversionTarget; venue: Venue; file: string }[] = [
  { target: 'coinbase', venue: coinbase, file: 'coinbase/btc-usdt_from-binance_20240808.gz' },
  { target: 'kraken', venue: kraken, file: 'kraken/xbt-usdt_book10_v1_from-binance_20240808.gz' },
  { target: 'kraken-v2', venue: krakenV2, file: 'kraken/btc-usdt_book10_v2_from-binance_20240808.gz' },
];

async function binanceReplay(): Promise<{ booksByTime: Map<number, BookSnapshot>; trades: Trade[] }> {
  const booksByTime = new Map<number, BookSnapshot>();
  const trades: Trade[] = [];
  for await (const message of binanceRaw.read([BINANCE], { levels: LEVELS })) {
    if (message.type === 'book_snapshot') booksByTime.set(message.ts, message);
    else if (message.type === 'trade') trades.push(message);
  }
  return { booksByTime, trades };
}

const tradeFacts = (trades: readonly Trade[]) => trades.map((t) => [t.ts, t.price, t.size, t.aggressor]);

describe.each(cases)('Binance excerpt as $target', ({ target, venue, file }) => {
  const committed = gunzipSync(readFileSync(fixture(file)))
    .toString('utf8')
    .split('\n')
    .filter((line) => line.length > 0);

  it('is what the converter writes from the Binance excerpt', async () => {
    const report: ConversionReport = { lines: 0, diffs: 0, trades: 0, stoppedAt: null };
    const fresh: string[] = [];
    for await (const line of convertBinanceRecording([BINANCE], target, report)) fresh.push(line);
    expect(fresh).toEqual(committed);
    expect(report).toMatchObject({ stoppedAt: null, trades: 517 });
  });

  it("rebuilds Binance's top 10 at every step through the venue's own mapper, with every trade", async () => {
    const mapper = venue.createMapper({ levels: LEVELS });
    const out: MarketMessage[] = [];
    for (const line of committed) {
      const recorded = parseRecordedLine(line)!;
      out.push(...mapper.map(recorded.frame, recorded.localTs));
    }
    expect(out.filter((m) => m.type === 'rejected' || m.type === 'disconnect')).toEqual([]);
    const { booksByTime: binance, trades: binanceTrades } = await binanceReplay();
    const books = out.filter((m): m is BookSnapshot => m.type === 'book_snapshot');
    // The snapshot's time is a receive time (Coinbase's carries none); every update names its Binance event time.
    for (const book of books.slice(1)) {
      const expected = binance.get(book.ts);
      expect(expected, `a Binance book at ${book.ts}`).toBeDefined();
      expect([...book.bids]).toEqual([...expected!.bids]);
      expect([...book.asks]).toEqual([...expected!.asks]);
    }
    expect(books.length).toBeGreaterThan(200);
    const trades = out.filter((m): m is Trade => m.type === 'trade');
    expect(trades).toHaveLength(517);
    // The same trades with the taker's side Binance's buyer-is-maker flag gives (the first one came before the sync).
    expect(tradeFacts(trades)).toEqual(tradeFacts(binanceTrades.slice(binanceTrades.length - 517)));
    expect(new Set(trades.map((t) => t.symbol))).toEqual(new Set([venueSymbol(target, 'BTCUSDT')]));
  });
});
