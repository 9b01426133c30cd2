// The live client with the real Binance venue, against a local server that serves the real
// recorded frames of fixtures/binance/ (see its README): the combined diff-depth stream over
// a websocket (with its bookTicker and trade frames) and the recorded REST depth snapshot over
// HTTP.
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import type { BookSnapshot, Disconnect, MarketMessage, Trade } from '../../src/domain/types.js';
import { createLiveFeed } from '../../src/ingest/live-client.js';
import { binance } from '../../src/venues/binance.js';
import { readRecordedFrames } from '../../src/venues/lines.js';
import { collect, until } from './fake-exchange.js';

const RECORDING = fileURLToPath(new URL('../../fixtures/binance/spot_btcusdt_20240808.head3000.gz', import.meta.url));
const CLOCK_MS = 1_723_161_253_000;

interface Recording {
  /** Every websocket frame in recorded order (diff depth, bookTicker, trade). */
  streamFrames: string[];
  /** The REST depth body recorded on line 8. */
  restBody: string;
  /** bookTicker best bid/ask by update id: an independent record of the top of the book. */
  tickers: Map<number, { b: string; B: string; a: string; A: string }>;
}

async function loadRecording(): Promise<Recording> {
  const streamFrames: string[] = [];
  let restBody = '';
  const tickers: Recording['tickers'] = new Map();
  for await (const { frame } of readRecordedFrames(RECORDING)) {
    if (frame.startsWith('{"lastUpdateId"')) {
      restBody = frame;
      continue;
    }
    streamFrames.push(frame);
    if (frame.startsWith('{"stream":"btcusdt@bookTicker"')) {
      const { data } = JSON.parse(frame) as { data: { u: number; b: string; B: string; a: string; A: string } };
      tickers.set(data.u, data);
    }
  }
  return { streamFrames, restBody, tickers };
}

/**
 * What replay produces from the same frames with the same mapper: the reference output. The
 * server below sends every frame before the client's REST fetch can be answered, so the
 * snapshot is applied after the last frame here too.
 */
function replay(recording: Recording): MarketMessage[] {
  const mapper = binance.createMapper({ levels: 10, symbols: ['BTCUSDT'] });
  const out: MarketMessage[] = [];
  for (const frame of recording.streamFrames) out.push(...mapper.map(frame, 0));
  out.push(...mapper.mapRestSnapshot!('BTCUSDT', recording.restBody, 0));
  return out;
}

const snapshotsOf = (messages: MarketMessage[]): BookSnapshot[] => messages.filter((m): m is BookSnapshot => m.type === 'book_snapshot');
const tradesOf = (messages: MarketMessage[]): Trade[] => messages.filter((m): m is Trade => m.type === 'trade');
/** Books and trades in the order they came, as `B<seq>` / `T<trade id>`. */
const order = (messages: MarketMessage[]): string[] => messages.flatMap((m) => (m.type === 'book_snapshot' ? [`B${m.seq}`] : m.type === 'trade' ? [`T${m.tradeId}`] : []));

describe('live client with the Binance venue and recorded frames', () => {
  let recording: Recording;
  let wss: WebSocketServer;
  let http: Server;
  const sockets = new Set<WebSocket>();
  const connectPaths: string[] = [];
  const restPaths: string[] = [];

  beforeAll(async () => {
    recording = await loadRecording();
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    wss.on('connection', (socket, request) => {
      connectPaths.push(request.url ?? '');
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      for (const frame of recording.streamFrames) socket.send(frame);
    });
    http = createServer((request, response) => {
      restPaths.push(request.url ?? '');
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(recording.restBody);
    });
    http.listen(0, '127.0.0.1');
    await Promise.all([once(wss, 'listening'), once(http, 'listening')]);
  });

  afterAll(async () => {
    for (const socket of sockets) socket.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
    http.closeAllConnections();
    await new Promise<void>((resolve) => http.close(() => resolve()));
  });

  it('syncs from the REST snapshot, matches replay exactly, and resyncs after a dropped connection', async () => {
    const replayed = replay(recording);
    const reference = snapshotsOf(replayed);
    // The fixture README: 279 snapshots, the first at u=50093239224, and 518 trades.
    expect(reference).toHaveLength(279);
    expect(reference[0].seq).toBe(50093239224);
    expect(tradesOf(replayed)).toHaveLength(518);

    const feed = createLiveFeed(
      binance,
      {
        url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`,
        restUrl: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
        symbols: ['BTCUSDT'],
      },
      // Lossless queue: this test compares every snapshot with replay.
      { now: () => CLOCK_MS, levels: 10, maxPendingPerSymbol: 1_000, maxQueued: 2_000, backoff: { initialMs: 10, maxMs: 20, jitter: 'none' } },
    );
    try {
      const { items } = collect(feed.messages());
      await until(() => order(items).length === replayed.length, 'the first 279 snapshots and 518 trades');
      wss.clients.forEach((socket) => socket.terminate());
      await until(() => order(items).length === 2 * replayed.length, '279 more snapshots and 518 more trades after reconnecting');

      expect(connectPaths).toEqual(['/stream?streams=btcusdt@depth@100ms/btcusdt@trade', '/stream?streams=btcusdt@depth@100ms/btcusdt@trade']);
      expect(restPaths).toEqual(['/api/v3/depth?symbol=BTCUSDT&limit=1000', '/api/v3/depth?symbol=BTCUSDT&limit=1000']);

      const markerIndex = items.findIndex((m) => m.type === 'disconnect');
      expect(markerIndex).toBe(replayed.length);
      expect((items[markerIndex] as Disconnect).symbol).toBeNull();
      expect(order(items.slice(0, markerIndex))).toEqual(order(replayed));
      expect(order(items.slice(markerIndex + 1))).toEqual(order(replayed));
      for (const trade of tradesOf(items)) expect(trade.localTs).toBe(CLOCK_MS);
      for (const run of [items.slice(0, markerIndex), items.slice(markerIndex + 1)]) {
        const live = snapshotsOf(run);
        expect(live).toHaveLength(reference.length);
        live.forEach((snapshot, i) => {
          const expected = reference[i];
          expect(snapshot.symbol).toBe('BTCUSDT');
          expect(snapshot.seq).toBe(expected.seq);
          expect(snapshot.ts).toBe(expected.ts);
          expect(snapshot.localTs).toBe(CLOCK_MS);
          expect(Array.from(snapshot.bids)).toEqual(Array.from(expected.bids));
          expect(Array.from(snapshot.asks)).toEqual(Array.from(expected.asks));
        });
      }
      expect(items.filter((m) => m.type === 'rejected')).toEqual([]);

      // Where a bookTicker carries the same update id as a diff event (43 times in this
      // excerpt), both describe the same book: its best levels must agree.
      const checked = snapshotsOf(items).filter((snapshot) => recording.tickers.has(snapshot.seq as number));
      expect(checked.length).toBe(2 * 43);
      for (const snapshot of checked) {
        const ticker = recording.tickers.get(snapshot.seq as number)!;
        expect(snapshot.bids[0]).toBeCloseTo(Number(ticker.b), 8);
        expect(snapshot.bids[1]).toBeCloseTo(Number(ticker.B), 8);
        expect(snapshot.asks[0]).toBeCloseTo(Number(ticker.a), 8);
        expect(snapshot.asks[1]).toBeCloseTo(Number(ticker.A), 8);
      }
      expect(feed.stats).toMatchObject({ connects: 2, reconnects: 1, snapshotFetches: 2, synced: { BTCUSDT: true } });
    } finally {
      await feed.close();
    }
  });
});

describe('live client with the Binance venue, when the book never syncs', () => {
  it('delivers the trades held for the missing snapshot before the disconnect marker, in recorded order', async () => {
    const recording = await loadRecording();
    // The first 200 stream frames: depth diffs, tickers and trades, all before any book can sync.
    const sent = recording.streamFrames.slice(0, 200);
    const sentTrades = sent.filter((frame) => frame.startsWith('{"stream":"btcusdt@trade"'));
    expect(sentTrades.length).toBeGreaterThan(10);
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    let connections = 0;
    wss.on('connection', (socket) => {
      connections += 1;
      if (connections > 1) return;
      for (const frame of sent) socket.send(frame);
      // Dropped once the client has had time to ask for (and be refused) a snapshot.
      setTimeout(() => socket.terminate(), 200);
    });
    const http = createServer((_request, response) => {
      response.writeHead(503, { 'content-type': 'application/json' });
      response.end('{"code":-1003,"msg":"Too many requests."}');
    });
    http.listen(0, '127.0.0.1');
    await Promise.all([once(wss, 'listening'), once(http, 'listening')]);
    const feed = createLiveFeed(
      binance,
      { url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, restUrl: `http://127.0.0.1:${(http.address() as AddressInfo).port}`, symbols: ['BTCUSDT'] },
      { now: () => CLOCK_MS, levels: 10, backoff: { initialMs: 1_000, maxMs: 1_000, jitter: 'none' } },
    );
    try {
      const { items } = collect(feed.messages());
      await until(() => items.some((m) => m.type === 'disconnect'), 'the disconnect marker');
      const markerIndex = items.findIndex((m) => m.type === 'disconnect');
      expect(items.slice(0, markerIndex).map((m) => m.type)).toEqual(sentTrades.map(() => 'trade'));
      expect(tradesOf(items.slice(0, markerIndex)).map((t) => t.tradeId)).toEqual(sentTrades.map((frame) => String((JSON.parse(frame) as { data: { t: number } }).data.t)));
      expect(snapshotsOf(items)).toEqual([]);
      expect(feed.stats.snapshotFailures).toBeGreaterThan(0);
    } finally {
      await feed.close();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    }
  });
});
