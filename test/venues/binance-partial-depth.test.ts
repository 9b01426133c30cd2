// Binance partial book depth, spot (`<symbol>@depth<levels>[@100ms]`) and USDⓈ-M futures
// (`<symbol>@depth<levels>[@100ms|@500ms]`), on the documented example messages of
// fixtures/binance/partial-depth-docs.jsonl (provenance in its README).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { BookSnapshot, MarketMessage, Rejected, Trade } from '../../src/domain/types.js';
import { createLiveFeed } from '../../src/ingest/live-client.js';
import { binance, binanceUsdm, binanceUsdmVenue, binanceVenue } from '../../src/venues/binance.js';
import { binanceRaw } from '../../src/venues/binance-raw.js';
import { bybit } from '../../src/venues/bybit.js';

const FIXTURE = fileURLToPath(new URL('../../fixtures/binance/partial-depth-docs.jsonl', import.meta.url));
const [SPOT_FRAME, USDM_FRAME] = readFileSync(FIXTURE, 'utf8').trim().split('\n');

const snapshotsOf = (messages: readonly MarketMessage[]) => messages.filter((m): m is BookSnapshot => m.type === 'book_snapshot');
const rejectionsOf = (messages: readonly MarketMessage[]) => messages.filter((m): m is Rejected => m.type === 'rejected');

/** The futures example with `data` changed by `edit`. */
function usdmFrame(edit: (data: Record<string, unknown>) => void, stream = 'btcusdt@depth5@100ms'): string {
  const { data } = JSON.parse(USDM_FRAME) as { data: Record<string, unknown> };
  edit(data);
  return JSON.stringify({ stream, data });
}

describe('binance partial depth: documented examples', () => {
  it('maps the spot example (no event type, the symbol from the stream name), as spot always has', () => {
    const out = binance.createMapper({ levels: 5 }).map(SPOT_FRAME, 42.5);
    expect(out).toHaveLength(1);
    const [book] = snapshotsOf(out);
    expect(book).toMatchObject({ symbol: 'BNBBTC', seq: 160, ts: 42.5, localTs: 42.5 });
    expect([...book.bids]).toEqual([0.0024, 10]);
    expect([...book.asks]).toEqual([0.0026, 100]);
  });

  it('maps the futures example as a whole book: bids ordered best first, E as the venue time, u as the sequence', () => {
    const out = binanceUsdm.createMapper({ levels: 5 }).map(USDM_FRAME, 7);
    expect(rejectionsOf(out)).toEqual([]);
    const [book] = snapshotsOf(out);
    expect(book).toMatchObject({ symbol: 'BTCUSDT', seq: 390497878, ts: 1571889248277, localTs: 7 });
    // Sent low to high (7403.89 first); the best bid is the highest.
    expect([...book.bids]).toEqual([7405.43, 2.562, 7404.85, 5.239, 7404.0, 1.428, 7403.9, 3.906, 7403.89, 0.002]);
    expect([...book.asks]).toEqual([7405.96, 3.34, 7406.63, 4.525, 7407.08, 2.475, 7407.15, 4.8, 7407.2, 0.175]);
  });

  it('emits the best `levels` of a deeper partial book, and needs no REST snapshot', () => {
    const mapper = binanceUsdm.createMapper({ levels: 2 });
    const [book] = snapshotsOf(mapper.map(USDM_FRAME, 1));
    expect([...book.bids]).toEqual([7405.43, 2.562, 7404.85, 5.239]);
    expect([...book.asks]).toEqual([7405.96, 3.34, 7406.63, 4.525]);
    expect(mapper.takeResyncRequests()).toEqual([]);
  });

  it('reads every futures partial stream name and each frame on its own (no pu chain between them)', () => {
    const mapper = binanceUsdm.createMapper({ levels: 5 });
    for (const stream of ['btcusdt@depth5', 'btcusdt@depth10@500ms', 'btcusdt@depth20@100ms']) {
      // pu far from the previous u: a partial book does not continue the one before it.
      const frame = usdmFrame((data) => {
        data.pu = 1;
      }, stream);
      expect(snapshotsOf(mapper.map(frame, 1))).toHaveLength(1);
    }
  });

  it('reads a bare futures frame (a /ws/<symbol>@depth<levels> connection) as a partial book where the venue follows partial depth', () => {
    const { data } = JSON.parse(USDM_FRAME) as { data: unknown };
    const bare = JSON.stringify(data);
    const [book] = snapshotsOf(binanceUsdmVenue('aggTrade', '100ms', 5).createMapper({ levels: 5 }).map(bare, 1));
    expect(book).toMatchObject({ symbol: 'BTCUSDT', seq: 390497878 });
    expect(book.bids[0]).toBe(7405.43);
    // On the diff venue the same bare frame is a diff event, held until a REST snapshot.
    const diff = binanceUsdm.createMapper({ levels: 5 });
    expect(diff.map(bare, 1)).toEqual([]);
    expect(diff.takeResyncRequests()).toEqual(['BTCUSDT']);
  });

  it('lets trades of a partial-depth symbol through at once (nothing awaits a snapshot)', () => {
    const mapper = binanceUsdm.createMapper({ levels: 5 });
    mapper.map(USDM_FRAME, 1);
    const trade = JSON.stringify({ stream: 'btcusdt@aggTrade', data: { e: 'aggTrade', E: 1, s: 'BTCUSDT', a: 5, p: '7405.5', q: '1', f: 1, l: 1, T: 1571889248280, m: false } });
    const out = mapper.map(trade, 2);
    expect(out.map((m) => m.type)).toEqual(['trade']);
    expect((out[0] as Trade).aggressor).toBe(1);
  });

  it('rejects a futures partial frame that is not the documented shape, naming the field', () => {
    const mapper = binanceUsdm.createMapper({ levels: 5 });
    const cases: [string, RegExp][] = [
      [usdmFrame((data) => delete data.pu), /^pu: expected a non-negative integer update id/],
      [usdmFrame((data) => (data.E = 'soon')), /^E: expected an event time/],
      [usdmFrame((data) => (data.U = 390497900)), /^U: first update id 390497900 is after final update id/],
      [usdmFrame((data) => (data.b = [['7403.89', '0']])), /^b\[0\]\[1\]: quantity must be > 0/],
      [usdmFrame((data) => (data.e = 'trade')), /^e: expected "depthUpdate" on a futures partial-depth stream/],
      // The spot shape on a futures stream.
      [JSON.stringify({ stream: 'btcusdt@depth5@100ms', data: { lastUpdateId: 1, bids: [], asks: [] } }), /^e: expected "depthUpdate"/],
    ];
    for (const [frame, detail] of cases) {
      const [rejection] = rejectionsOf(mapper.map(frame, 1));
      expect(rejection?.detail).toMatch(detail);
    }
    const repeated = usdmFrame(
      (data) =>
        (data.a = [
          ['7405.96', '1'],
          ['7405.96', '2'],
        ]),
    );
    expect(rejectionsOf(mapper.map(repeated, 1))).toHaveLength(1);
  });

  it('leaves the spot mapper reading only spot partial frames', () => {
    const [rejection] = rejectionsOf(binance.createMapper({ levels: 5 }).map(USDM_FRAME, 1));
    expect(rejection.detail).toMatch(/^lastUpdateId:/);
  });
});

describe('binance partial depth: live protocol and feed config', () => {
  it('subscribes the partial streams, with no REST snapshot', () => {
    const spot = binanceVenue('trade', 10).live!;
    expect(spot.connectUrl('wss://stream.binance.com:9443', ['BTCUSDT'])).toBe('wss://stream.binance.com:9443/stream?streams=btcusdt@depth10@100ms/btcusdt@trade');
    expect(spot.snapshotUrl('https://api.binance.com', 'BTCUSDT')).toBeNull();
    expect(binanceUsdmVenue('aggTrade', '250ms', 5).live!.connectUrl('wss://fstream.binance.com', ['BTCUSDT'])).toBe(
      'wss://fstream.binance.com/stream?streams=btcusdt@depth5/btcusdt@aggTrade',
    );
    const futures = binanceUsdmVenue('aggTrade', '500ms', 20).live!;
    expect(futures.connectUrl('wss://fstream.binance.com', ['ETHUSDT'])).toBe('wss://fstream.binance.com/stream?streams=ethusdt@depth20@500ms/ethusdt@aggTrade');
    expect(futures.snapshotUrl('https://fapi.binance.com', 'ETHUSDT')).toBeNull();
  });

  it('chooses the depth through withBookDepth, keeping the diff stream as the default', () => {
    expect(binance.withBookDepth!(5).live!.connectUrl('wss://x', ['BTCUSDT'])).toBe('wss://x/stream?streams=btcusdt@depth5@100ms/btcusdt@trade');
    expect(binanceUsdm.withBookDepth!(10).live!.connectUrl('wss://x', ['BTCUSDT'])).toBe('wss://x/stream?streams=btcusdt@depth10@100ms/btcusdt@aggTrade');
    expect(binanceUsdm.withBookDepth!('diff').live!.snapshotUrl('https://fapi.binance.com', 'BTCUSDT')).toBe('https://fapi.binance.com/fapi/v1/depth?symbol=BTCUSDT&limit=1000');
    expect(() => binance.withBookDepth!(7)).toThrow(/binance depth must be one of diff, 5, 10, 20, got 7/);
    expect(() => binanceUsdmVenue('aggTrade', '0ms', 5)).toThrow(/100, 250 or 500 ms/);
  });

  it('validates a feed config depth at the client, naming the field', () => {
    const config = { url: 'ws://127.0.0.1:9', restUrl: 'http://127.0.0.1:9', symbols: ['BTCUSDT'] };
    const options = { now: () => 0 };
    expect(() => createLiveFeed(binance, { ...config, depth: 7 }, options)).toThrow(/^depth: expected "diff", 5, 10 or 20, got 7/);
    expect(() => createLiveFeed(bybit, { ...config, depth: 5 }, options)).toThrow(/^depth: venue bybit offers no choice of book depth/);
    expect(() => createLiveFeed(binanceUsdmVenue('aggTrade', '0ms'), { ...config, depth: 5 }, options)).toThrow(/^depth: binance-usdm partial depth/);
    // A partial feed needs no REST base URL.
    const feed = createLiveFeed(binance, { url: config.url, symbols: config.symbols, depth: 20 }, options);
    return feed.close();
  });
});

describe('binance-raw: partial-depth recordings', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'binance-partial-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('replays futures and spot partial frames as books, with no inline snapshot', async () => {
    const trade = JSON.stringify({ stream: 'btcusdt@aggTrade', data: { e: 'aggTrade', E: 1, s: 'BTCUSDT', a: 9, p: '7405.5', q: '1', f: 1, l: 1, T: 1571889248300, m: true } });
    const later = usdmFrame((data) => {
      data.U = 390497879;
      data.u = 390497900;
      data.pu = 390497878;
    });
    for (const [name, frames, seqs] of [
      ['usdm.txt', [USDM_FRAME, trade, later], [390497878, 390497900]],
      ['spot.txt', [SPOT_FRAME], [160]],
    ] as const) {
      const path = join(scratch, name);
      writeFileSync(path, `${frames.map((frame, i) => `${1_571_889_248_000_000_000n + BigInt(i) * 1_000_000n} ${frame}`).join('\n')}\n`);
      const out: MarketMessage[] = [];
      for await (const message of binanceRaw.read([path], { levels: 5 })) out.push(message);
      expect(rejectionsOf(out)).toEqual([]);
      expect(snapshotsOf(out).map((book) => book.seq)).toEqual(seqs);
      if (name === 'usdm.txt') expect(out.map((m) => m.type)).toEqual(['book_snapshot', 'trade', 'book_snapshot']);
    }
  });
});
