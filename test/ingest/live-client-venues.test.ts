// The live client with the venues of issue 16, each against a local stand-in that speaks the
// venue's protocol: Binance USDⓈ-M futures syncing from GET /fapi/v1/depth and resyncing over
// REST after a `pu` gap; Bybit, OKX and Kraken v2 streaming their own snapshots and resyncing by
// resubscribing the book channel after a gap or a failed checksum.
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import type { BookSnapshot, MarketMessage, Trade } from '../../src/domain/types.js';
import { startFeedServer } from '../../src/standin/server.js';
import { createLiveFeed } from '../../src/ingest/live-client.js';
import { binanceRaw } from '../../src/venues/binance-raw.js';
import { binance, binanceUsdm } from '../../src/venues/binance.js';
import { bybit } from '../../src/venues/bybit.js';
import { krakenV2 } from '../../src/venues/kraken-v2.js';
import { okx } from '../../src/venues/okx.js';
import type { Venue } from '../../src/venues/types.js';
import { collect, until } from './fake-exchange.js';

interface StandIn {
  readonly wss: WebSocketServer;
  readonly http: Server;
  readonly connectPaths: string[];
  readonly received: string[];
  readonly restPaths: string[];
  socket: WebSocket | null;
}

let standIn: StandIn | null = null;

async function startStandIn(onConnect: (socket: WebSocket) => void, onMessage: (socket: WebSocket, text: string) => void, restBodies: string[] = []): Promise<StandIn> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  const state: StandIn = { wss, http: createServer(), connectPaths: [], received: [], restPaths: [], socket: null };
  wss.on('connection', (socket, request) => {
    state.connectPaths.push(request.url ?? '');
    state.socket = socket;
    socket.on('message', (data) => {
      const text = String(data);
      state.received.push(text);
      onMessage(socket, text);
    });
    onConnect(socket);
  });
  state.http.on('request', (request, response) => {
    state.restPaths.push(request.url ?? '');
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(restBodies[Math.min(state.restPaths.length, restBodies.length) - 1]);
  });
  state.http.listen(0, '127.0.0.1');
  await Promise.all([once(wss, 'listening'), once(state.http, 'listening')]);
  standIn = state;
  return state;
}

afterEach(async () => {
  if (standIn === null) return;
  for (const socket of standIn.wss.clients) socket.terminate();
  await new Promise<void>((resolve) => standIn!.wss.close(() => resolve()));
  standIn.http.closeAllConnections();
  await new Promise<void>((resolve) => standIn!.http.close(() => resolve()));
  standIn = null;
});

const wsUrl = (server: StandIn) => `ws://127.0.0.1:${(server.wss.address() as AddressInfo).port}`;
const restUrl = (server: StandIn) => `http://127.0.0.1:${(server.http.address() as AddressInfo).port}`;
const books = (messages: readonly MarketMessage[]) => messages.filter((m): m is BookSnapshot => m.type === 'book_snapshot');
const options = { now: () => 1_700_000_000_000, levels: 5, pingIntervalMs: 0, backoff: { initialMs: 10, maxMs: 20, jitter: 'none' as const } };

describe('live client: binance-usdm', () => {
  // The documented futures shapes (see test/venues/binance-usdm.test.ts).
  const depth = (U: number, u: number, pu: number, bid: string) =>
    JSON.stringify({
      stream: 'btcusdt@depth@100ms',
      data: { e: 'depthUpdate', E: 1_700_000_000_000 + u, T: 1_700_000_000_000 + u, s: 'BTCUSDT', U, u, pu, b: [[bid, '1']], a: [] },
    });
  const rest = (lastUpdateId: number) => JSON.stringify({ lastUpdateId, E: 1, T: 1, bids: [['99', '1']], asks: [['101', '1']] });

  it('syncs from /fapi/v1/depth, follows the pu chain, and refetches the snapshot after a gap', async () => {
    const server = await startStandIn(
      (socket) => {
        socket.send(depth(1000, 1010, 990, '98'));
        socket.send(depth(1011, 1030, 1010, '99.5'));
        socket.send(
          JSON.stringify({ stream: 'btcusdt@aggTrade', data: { e: 'aggTrade', E: 1, s: 'BTCUSDT', a: 5, p: '100', q: '0.1', f: 1, l: 1, T: 1_700_000_001_000, m: false } }),
        );
      },
      () => undefined,
      [rest(1024), rest(1048)],
    );
    const feed = createLiveFeed(binanceUsdm, { url: wsUrl(server), restUrl: restUrl(server), symbols: ['BTCUSDT'] }, options);
    try {
      const { items } = collect(feed.messages());
      await until(() => books(items).length === 1, 'the first book after the REST snapshot');
      server.socket!.send(depth(1031, 1040, 1030, '99.6'));
      await until(() => books(items).length === 2, 'the next chained event');
      // pu=1045 skips the events after 1040: the client refetches and bridges with lastUpdateId 1048.
      server.socket!.send(depth(1046, 1050, 1045, '99.7'));
      await until(() => books(items).length === 3, 'the book after the resync');
      expect(books(items).map((b) => b.seq)).toEqual([1030, 1040, 1050]);
      expect(items.filter((m) => m.type === 'disconnect')).toHaveLength(1);
      expect((items.find((m) => m.type === 'trade') as Trade).tradeId).toBe('5');
      expect(server.connectPaths).toEqual(['/stream?streams=btcusdt@depth@100ms/btcusdt@aggTrade']);
      expect(server.restPaths).toEqual(['/fapi/v1/depth?symbol=BTCUSDT&limit=1000', '/fapi/v1/depth?symbol=BTCUSDT&limit=1000']);
      expect(feed.stats).toMatchObject({ connects: 1, snapshotFetches: 2, synced: { BTCUSDT: true } });
    } finally {
      await feed.close();
    }
  });
});

describe('live client: binance partial depth (feed config depth 5)', () => {
  // fixtures/binance/partial-depth-docs.jsonl: the documented spot and futures partial-depth examples.
  const [spotFrame, usdmFrame] = readFileSync(new URL('../../fixtures/binance/partial-depth-docs.jsonl', import.meta.url), 'utf8')
    .trim()
    .split('\n');

  it.each([
    [binanceUsdm, usdmFrame, 'BTCUSDT', '/stream?streams=btcusdt@depth5@100ms/btcusdt@aggTrade'],
    [binance, spotFrame, 'BNBBTC', '/stream?streams=bnbbtc@depth5@100ms/bnbbtc@trade'],
  ] as const)('%# subscribes the partial stream by URL, emits each frame as a book, and fetches nothing over REST', async (venue, frame, symbol, path) => {
    const server = await startStandIn(
      (socket) => socket.send(frame),
      () => undefined,
    );
    // No restUrl: a partial-depth feed has no REST snapshot to fetch.
    const feed = createLiveFeed(venue, { url: wsUrl(server), symbols: [symbol], depth: 5 }, options);
    try {
      const { items } = collect(feed.messages());
      await until(() => books(items).length === 1, `the ${venue.id} partial book`);
      server.socket!.send(frame);
      await until(() => books(items).length === 2, `the second ${venue.id} partial book`);
      expect(items.filter((m) => m.type !== 'book_snapshot')).toEqual([]);
      expect(books(items)[0].symbol).toBe(symbol);
      expect(server.connectPaths).toEqual([path]);
      expect(server.restPaths).toEqual([]);
      expect(feed.stats).toMatchObject({ connects: 1, snapshotFetches: 0, synced: { [symbol]: true } });
    } finally {
      await feed.close();
    }
  });
});

describe('live client: binance-usdm against the Binance stand-in serving a futures recording', () => {
  it('gets the same books as replaying the recording, through /fapi/v1/depth', async () => {
    // A recording in the binance-raw layout with futures frames (pu chains each event to the
    // previous u) and the REST body inline inside the fourth event's [U; u].
    const lines: string[] = [];
    let ns = 1_700_000_000_000_000_000n;
    const line = (frame: string) => {
      ns += 1_000_000n;
      lines.push(`${ns} ${frame}`);
    };
    for (let k = 0; k < 12; k += 1) {
      const U = 1001 + 10 * k;
      const u = 1010 + 10 * k;
      const data = {
        e: 'depthUpdate',
        E: 1_700_000_000_000 + k,
        T: 1_700_000_000_000 + k,
        s: 'BTCUSDT',
        U,
        u,
        pu: u - 10,
        b: [[`${99 - k * 0.1}`, `${k + 1}`]],
        a: [[`${101 + k * 0.1}`, '1']],
      };
      line(JSON.stringify({ stream: 'btcusdt@depth@0ms', data }));
      line(
        JSON.stringify({
          stream: 'btcusdt@aggTrade',
          data: { e: 'aggTrade', E: 1, s: 'BTCUSDT', a: 100 + k, p: '100', q: '0.5', f: 1, l: 1, T: 1_700_000_000_000 + k, m: k % 2 === 0 },
        }),
      );
      if (k === 3)
        line(
          JSON.stringify({
            lastUpdateId: 1035,
            E: 1,
            T: 1,
            bids: [
              ['98.5', '2'],
              ['98', '3'],
            ],
            asks: [['101.5', '2']],
          }),
        );
    }
    const dir = mkdtempSync(join(tmpdir(), 'usdm-feed-'));
    const recording = join(dir, 'usdm.txt');
    writeFileSync(recording, `${lines.join('\n')}\n`);
    const replayed: BookSnapshot[] = [];
    for await (const message of binanceRaw.read([recording], { levels: 5 })) if (message.type === 'book_snapshot') replayed.push(message);
    expect(replayed.map((b) => b.seq)).toEqual([1040, 1050, 1060, 1070, 1080, 1090, 1100, 1110, 1120]);

    const feedServer = await startFeedServer({ recording, speed: 'max', loop: false });
    // Lossless queue: the stand-in sends at full speed and every book is compared.
    const feed = createLiveFeed(
      binanceUsdm,
      { url: feedServer.wsUrl, restUrl: feedServer.url, symbols: ['BTCUSDT'] },
      { ...options, maxPendingPerSymbol: 1_000, maxQueued: 2_000 },
    );
    try {
      const { items } = collect(feed.messages());
      await until(() => books(items).length === replayed.length, 'every book of the recording');
      const live = books(items);
      expect(live.map((b) => b.seq)).toEqual(replayed.map((b) => b.seq));
      live.forEach((book, i) => expect([...book.bids]).toEqual([...replayed[i].bids]));
      expect(items.filter((m) => m.type === 'trade')).toHaveLength(12);
      expect(items.filter((m) => m.type === 'rejected' || m.type === 'disconnect')).toEqual([]);
      expect(feedServer.stats.depthRequests).toBe(1);
    } finally {
      await feed.close();
      await feedServer.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

interface StreamedCase {
  readonly venue: Venue;
  readonly symbol: string;
  /** Whether a client frame subscribes the book channel. */
  readonly subscribesBook: (message: unknown) => boolean;
  readonly snapshot: string;
  /** A book message the venue's rules reject (a gap or a failed checksum). */
  readonly broken: string;
}

const bybitFrames = readFileSync(new URL('../../fixtures/bybit/linear_BTCUSDT_frames.jsonl', import.meta.url), 'utf8').split('\n');
const [okxSnapshot, okxUpdate] = readFileSync(new URL('../../fixtures/okx/okcoin_BTC-USD_books.top25.jsonl', import.meta.url), 'utf8').split('\n');
const krakenSnapshot =
  '{"channel":"book","type":"snapshot","data":[{"symbol":"USDG/USD","bids":[{"price":0.9999,"qty":653645.22211},{"price":0.9998,"qty":21389.49905},{"price":0.9997,"qty":311181.88799},{"price":0.9996,"qty":935949.00167},{"price":0.9995,"qty":5.25262},{"price":0.9993,"qty":15819.07585},{"price":0.9990,"qty":28045.34609},{"price":0.9985,"qty":35372.52894},{"price":0.9900,"qty":10.07905},{"price":0.9835,"qty":240.14072}],"asks":[{"price":1.0000,"qty":382506.65119},{"price":1.0001,"qty":242215.90771},{"price":1.0002,"qty":357570.43200},{"price":1.0003,"qty":936797.08901},{"price":1.0004,"qty":10578.85361},{"price":1.0005,"qty":83656.47123},{"price":1.0007,"qty":15819.07585},{"price":1.0010,"qty":23655.03579},{"price":1.0015,"qty":35372.52894},{"price":1.0024,"qty":5000.00000}],"checksum":3225719247,"timestamp":"2026-09-17T06:16:44.386754Z"}]}';
const record = (message: unknown) => (typeof message === 'object' && message !== null ? (message as Record<string, unknown>) : {});

const streamedCases: StreamedCase[] = [
  {
    venue: bybit,
    symbol: 'BTCUSDT',
    subscribesBook: (m) => record(m).op === 'subscribe' && (record(m).args as string[]).includes('orderbook.50.BTCUSDT'),
    snapshot: bybitFrames[1],
    broken: bybitFrames[2].replace('"u":10132541', '"u":10132549'),
  },
  {
    venue: okx,
    symbol: 'BTC-USD',
    subscribesBook: (m) => record(m).op === 'subscribe' && (record(m).args as { channel: string }[]).some((arg) => arg.channel === 'books'),
    snapshot: okxSnapshot,
    broken: okxUpdate.replace('"checksum":1109161389', '"checksum":1109161388'),
  },
  {
    venue: krakenV2,
    symbol: 'USDG/USD',
    subscribesBook: (m) => record(m).method === 'subscribe' && record(record(m).params).channel === 'book',
    snapshot: krakenSnapshot,
    broken:
      '{"channel":"book","type":"update","data":[{"symbol":"USDG/USD","bids":[{"price":0.9994,"qty":1.5}],"asks":[],"checksum":12345,"timestamp":"2026-09-17T06:16:45.000001Z"}]}',
  },
];

describe.each(streamedCases)('live client: $venue.id', ({ venue, symbol, subscribesBook, snapshot, broken }) => {
  it('subscribes, takes the streamed snapshot, and resubscribes only the book after a broken update', async () => {
    const server = await startStandIn(
      () => undefined,
      (socket, text) => {
        let message: unknown = text;
        try {
          message = JSON.parse(text);
        } catch {
          return; // OKX's text ping
        }
        if (subscribesBook(message)) socket.send(snapshot);
      },
    );
    const feed = createLiveFeed(venue, { url: wsUrl(server), symbols: [symbol] }, options);
    try {
      const { items } = collect(feed.messages());
      await until(() => books(items).length === 1, 'the streamed snapshot');
      const subscribes = server.received.length;
      server.socket!.send(broken);
      await until(() => books(items).length === 2, 'the snapshot of the resubscription');
      const resync = server.received.slice(subscribes).map((text) => JSON.parse(text) as unknown);
      expect(resync).toEqual(venue.live!.resyncFrames([symbol]).map((text) => JSON.parse(text) as unknown));
      expect(server.received.slice(0, subscribes)).toEqual(venue.live!.subscribeFrames([symbol]));
      expect(items.filter((m) => m.type === 'disconnect')).toHaveLength(1);
      expect(items.filter((m) => m.type === 'rejected')).toHaveLength(1);
      expect(server.connectPaths).toHaveLength(1);
      expect(books(items)[1].bids).toEqual(books(items)[0].bids);
    } finally {
      await feed.close();
    }
  });
});
