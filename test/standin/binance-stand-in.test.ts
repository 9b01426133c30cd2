import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, type ClientOptions } from 'ws';
import { parseFeedSpeed, startFeedServer, type FeedServer, type FeedServerOptions } from '../../src/standin/server.js';
import { readRecordedFrames } from '../../src/venues/lines.js';

// The first 1,200 lines of the Binance excerpt (about 10 s of recorded time) keep these tests
// short: 106 depth diffs, 907 bookTickers, 186 trades, the REST snapshot on line 8.
const FIXTURE = join(mkdtempSync(join(tmpdir(), 'lob-rtrl-feed-')), 'spot_btcusdt_20240808_first1200.gz');
writeFileSync(
  FIXTURE,
  gzipSync(
    gunzipSync(readFileSync(fileURLToPath(new URL('../../fixtures/binance/spot_btcusdt_20240808.head3000.gz', import.meta.url))))
      .toString('utf8')
      .split('\n')
      .slice(0, 1200)
      .join('\n') + '\n',
  ),
);
const DEPTH = 'btcusdt@depth@100ms';
const TRADE = 'btcusdt@trade';
const TICKER = 'btcusdt@bookTicker';

type Level = [string, string];
interface DepthBody {
  lastUpdateId: number;
  bids: Level[];
  asks: Level[];
}
interface DiffData {
  e: 'depthUpdate';
  U: number;
  u: number;
  b: Level[];
  a: Level[];
}
interface FixtureEntry {
  localTs: number;
  frame: string;
  stream: string | null;
  data: unknown;
}

// The fixture read independently of the server: one entry per line, in file order.
const entries: FixtureEntry[] = [];
let snapshot: DepthBody;
const diffs: DiffData[] = [];

beforeAll(async () => {
  for await (const { localTs, frame } of readRecordedFrames(FIXTURE)) {
    const parsed = JSON.parse(frame) as { stream?: string; data?: unknown; lastUpdateId?: number };
    entries.push({ localTs, frame, stream: parsed.stream ?? null, data: parsed.data });
    if (parsed.lastUpdateId !== undefined) snapshot = parsed as DepthBody;
    else if (parsed.stream === DEPTH) diffs.push(parsed.data as DiffData);
  }
  expect(entries).toHaveLength(1200);
  expect(diffs).toHaveLength(106);
  expect(snapshot.lastUpdateId).toBe(50093239218);
});

/**
 * The book Binance's documented procedure gives from the recorded snapshot and the first
 * `diffCount` recorded diffs (drop diffs with u <= lastUpdateId, apply the rest; quantity 0
 * removes). Keyed by the price text, unlike the server, which keys by number.
 */
function reconstruct(diffCount: number): DepthBody {
  const bids = new Map(snapshot.bids.map(([p, q]) => [p, q]));
  const asks = new Map(snapshot.asks.map(([p, q]) => [p, q]));
  let lastUpdateId = snapshot.lastUpdateId;
  for (const diff of diffs.slice(0, diffCount)) {
    if (diff.u > lastUpdateId) {
      for (const [p, q] of diff.b)
        if (Number(q) === 0) bids.delete(p);
        else bids.set(p, q);
      for (const [p, q] of diff.a)
        if (Number(q) === 0) asks.delete(p);
        else asks.set(p, q);
      lastUpdateId = diff.u;
    }
  }
  const sorted = (side: Map<string, string>, sign: number): Level[] => [...side.entries()].sort(([a], [b]) => sign * (Number(a) - Number(b)));
  return { lastUpdateId, bids: sorted(bids, -1), asks: sorted(asks, 1) };
}

let server: FeedServer | null = null;
const clients: WebSocket[] = [];

async function start(options: Partial<FeedServerOptions> = {}): Promise<FeedServer> {
  server = await startFeedServer({ recording: FIXTURE, speed: 'max', loop: false, ...options });
  return server;
}

afterEach(async () => {
  for (const client of clients.splice(0)) client.terminate();
  await server?.close();
  server = null;
});

function getJson(url: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

interface TestClient {
  readonly ws: WebSocket;
  readonly messages: string[];
  readonly receivedAt: number[];
  readonly openedAt: number;
  /** Resolves once `done(messages)` holds, re-checked on every message. */
  until(done: (messages: string[]) => boolean): Promise<void>;
}

async function connect(url: string, options?: ClientOptions): Promise<TestClient> {
  const ws = new WebSocket(url, options);
  clients.push(ws);
  const messages: string[] = [];
  const receivedAt: number[] = [];
  const waiters: { done: (m: string[]) => boolean; resolve: () => void }[] = [];
  ws.on('message', (data) => {
    messages.push(data.toString());
    receivedAt.push(performance.now());
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i].done(messages)) waiters.splice(i, 1)[0].resolve();
    }
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return {
    ws,
    messages,
    receivedAt,
    openedAt: performance.now(),
    until: (done) =>
      done(messages)
        ? Promise.resolve()
        : new Promise<void>((resolve, reject) => {
            waiters.push({ done, resolve });
            ws.once('close', () => reject(new Error(`socket closed after ${messages.length} messages`)));
          }),
  };
}

function refusal(url: string): Promise<string> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    clients.push(ws);
    ws.once('open', () => resolve('opened'));
    ws.once('error', (error) => resolve(error.message));
  });
}

const depthDiffsIn = (messages: string[]): DiffData[] =>
  messages
    .map((text) => JSON.parse(text))
    .filter((m) => m.stream === DEPTH)
    .map((m) => m.data as DiffData);

let nextFreezeId = 100;

/**
 * Unsubscribes `streams` and waits for the reply, so every frame sent before it has arrived
 * and, with nothing recorded left subscribed, the client's replay position stands still.
 * Returns the reply's id.
 */
async function freeze(client: TestClient, streams: string[]): Promise<number> {
  const id = nextFreezeId++;
  const reply = JSON.stringify({ result: null, id });
  client.ws.send(JSON.stringify({ method: 'UNSUBSCRIBE', params: streams, id }));
  await client.until((messages) => messages.includes(reply));
  return id;
}

describe('startFeedServer: websocket streams', () => {
  it('delivers only the requested streams on /stream, as recorded and in recorded order', async () => {
    const feed = await start();
    expect(feed.recording).toMatchObject({ entries: 1200, skippedLines: 0, symbols: ['BTCUSDT'] });
    const client = await connect(`${feed.wsUrl}/stream?streams=${DEPTH}/${TRADE}`);
    const expected = entries.filter((e) => e.stream === DEPTH || e.stream === TRADE).map((e) => e.frame);
    expect(expected).toHaveLength(106 + 186);
    await client.until((messages) => messages.length >= expected.length);
    expect(client.messages.slice(0, expected.length)).toEqual(expected);
  });

  it('sends bare payloads on /ws/<stream>, and btcusdt@depth selects the recorded @depth@100ms', async () => {
    const feed = await start();
    const ticker = await connect(`${feed.wsUrl}/ws/${TICKER}`);
    const depth = await connect(`${feed.wsUrl}/ws/btcusdt@depth`);
    const tickerPayloads = entries.filter((e) => e.stream === TICKER).map((e) => JSON.stringify(e.data));
    await ticker.until((messages) => messages.length >= tickerPayloads.length);
    expect(ticker.messages.slice(0, tickerPayloads.length)).toEqual(tickerPayloads);
    await depth.until((messages) => messages.length >= diffs.length);
    expect(depth.messages.slice(0, diffs.length).map((text) => JSON.parse(text))).toEqual(diffs);
  });

  it('acknowledges SUBSCRIBE before the new stream starts, lists subscriptions, rejects bad requests', async () => {
    const feed = await start();
    const client = await connect(`${feed.wsUrl}/ws`);
    client.ws.send(JSON.stringify({ method: 'SUBSCRIBE', params: [TRADE], id: 1 }));
    await client.until((messages) => messages.length >= 11);
    expect(client.messages[0]).toBe('{"result":null,"id":1}');
    const trades = entries.filter((e) => e.stream === TRADE).map((e) => JSON.stringify(e.data));
    expect(client.messages.slice(1, 11)).toEqual(trades.slice(0, 10));

    client.ws.send(JSON.stringify({ method: 'LIST_SUBSCRIPTIONS', id: 2 }));
    client.ws.send(JSON.stringify({ method: 'SUBSCRIBE', params: ['not a stream'], id: 3 }));
    client.ws.send('{"method":');
    await client.until((messages) => messages.some((text) => text.includes('"code":3')));
    const replies = client.messages.map((text) => JSON.parse(text)).filter((m) => 'id' in m && !('e' in m));
    expect(replies).toContainEqual({ result: [TRADE], id: 2 });
    expect(replies).toContainEqual({ error: { code: 2, msg: 'Invalid request: invalid stream name "not a stream"' }, id: 3 });
    expect(replies.find((m) => m.error?.code === 3)).toMatchObject({ id: null });
  });

  it('replays at the recorded inter-arrival times divided by speed, never early', async () => {
    const speed = 10;
    const sent: { entry: number; at: number; due: number }[] = [];
    const feed = await start({ speed, onFrameSent: (_client, entry, at, due) => sent.push({ entry, at, due }) });
    const client = await connect(`${feed.wsUrl}/stream?streams=${DEPTH}/${TRADE}/${TICKER}`);
    const frameCount = 400;
    await client.until((messages) => messages.length >= frameCount);

    const streamed = entries.filter((e) => e.stream !== null);
    expect(client.messages.slice(0, frameCount)).toEqual(streamed.slice(0, frameCount).map((e) => e.frame));
    const first = sent[0];
    expect(first.entry).toBe(0);
    expect(first.at).toBeGreaterThanOrEqual(first.due);
    for (let i = 1; i < frameCount; i++) {
      expect(sent[i].entry).toBeGreaterThan(sent[i - 1].entry);
      // The server's own clock: a frame is never sent before it is due, and it is due no
      // sooner than its scaled recorded offset after the first (however late the first went).
      expect(sent[i].at).toBeGreaterThanOrEqual(sent[i].due);
      const offset = (entries[sent[i].entry].localTs - entries[0].localTs) / speed;
      expect(sent[i].due - first.due).toBeGreaterThanOrEqual(offset - 1e-6);
    }
    // Seen from the client, with generous slack for the handshake: not sent all at once.
    const recordedSpan = (streamed[frameCount - 1].localTs - streamed[0].localTs) / speed;
    expect(recordedSpan).toBeGreaterThan(100);
    expect(client.receivedAt[frameCount - 1] - client.openedAt).toBeGreaterThan(recordedSpan / 2);
  });

  it('restarts the recording at the end with loop, so update ids jump back', async () => {
    const feed = await start({ loop: true, highWaterBytes: 16 * 1024 });
    const client = await connect(`${feed.wsUrl}/stream?streams=${DEPTH}`);
    await client.until((messages) => messages.length >= diffs.length * 2 + 10);
    const received = depthDiffsIn(client.messages);
    expect(received.slice(0, diffs.length)).toEqual(diffs);
    expect(received.slice(diffs.length, diffs.length * 2)).toEqual(diffs);
    expect(received[diffs.length].U).toBeLessThan(received[diffs.length - 1].u);
    expect(feed.stats.loops).toBeGreaterThanOrEqual(2);
  });
});

describe('startFeedServer: backpressure', () => {
  it('stops sending to a client that stops reading, then resumes where it stopped', async () => {
    const feed = await start({ loop: true, highWaterBytes: 64 * 1024 });
    const client = await connect(`${feed.wsUrl}/stream?streams=${DEPTH}/${TRADE}/${TICKER}`);
    await client.until((messages) => messages.length >= 100);
    client.ws.pause();
    // Looping at max speed, only backpressure can make the sent count stand still.
    let previous = -1;
    let stableChecks = 0;
    for (let attempt = 0; attempt < 200 && stableChecks < 3; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      stableChecks = feed.stats.framesSent === previous ? stableChecks + 1 : 0;
      previous = feed.stats.framesSent;
    }
    expect(stableChecks).toBe(3);
    client.ws.resume();
    const target = feed.stats.framesSent + 500;
    await client.until((messages) => messages.length >= target);
    const streamed = entries.filter((e) => e.stream !== null).map((e) => e.frame);
    const mismatch = client.messages.findIndex((text, i) => text !== streamed[i % streamed.length]);
    expect(mismatch).toBe(-1);
  });
});

describe('startFeedServer: REST depth consistent with the newest client', () => {
  it('answers with the recorded snapshot before any diff has been replayed', async () => {
    const feed = await start({ speed: 1 });
    const before = await getJson(`${feed.url}/api/v3/depth?symbol=BTCUSDT&limit=1000`);
    expect(before).toEqual({ status: 200, body: snapshot });
    // A /ws connection with no stream yet has not moved through the recording.
    await connect(`${feed.wsUrl}/ws`);
    const top = await getJson(`${feed.url}/api/v3/depth?symbol=BTCUSDT&limit=5`);
    expect(top.body).toEqual({ lastUpdateId: snapshot.lastUpdateId, bids: snapshot.bids.slice(0, 5), asks: snapshot.asks.slice(0, 5) });
    const byDefault = await getJson(`${feed.url}/api/v3/depth?symbol=BTCUSDT`);
    expect(byDefault.body.bids).toHaveLength(100);
  });

  it('keeps the snapshot while only diffs it already contains were sent (u <= lastUpdateId)', async () => {
    // At speed 0.05 the second recorded diff comes 2 s after the first.
    const feed = await start({ speed: 0.05 });
    const client = await connect(`${feed.wsUrl}/ws`);
    client.ws.send(JSON.stringify({ method: 'SUBSCRIBE', params: [DEPTH], id: 1 }));
    await client.until((messages) => messages.length >= 2);
    const freezeId = await freeze(client, [DEPTH]);
    expect(client.messages).toEqual(['{"result":null,"id":1}', JSON.stringify(diffs[0]), `{"result":null,"id":${freezeId}}`]);
    expect(diffs[0].u).toBeLessThan(snapshot.lastUpdateId);
    expect((await getJson(`${feed.url}/api/v3/depth?symbol=BTCUSDT&limit=1000`)).body).toEqual(snapshot);
  });

  it('after K diffs were sent, has lastUpdateId = the K-th u and the book of an independent reconstruction', async () => {
    const feed = await start({ speed: 10 });
    const client = await connect(`${feed.wsUrl}/stream?streams=${DEPTH}`);
    await client.until((messages) => messages.length >= 30);
    await freeze(client, [DEPTH]);
    const received = depthDiffsIn(client.messages);
    const k = received.length;
    expect(k).toBeGreaterThanOrEqual(30);
    expect(received).toEqual(diffs.slice(0, k));
    expect(diffs[k - 1].u).toBeGreaterThan(snapshot.lastUpdateId);

    const depth = await getJson(`${feed.url}/api/v3/depth?symbol=BTCUSDT&limit=5000`);
    expect(depth.body.lastUpdateId).toBe(diffs[k - 1].u);
    expect(depth.body).toEqual(reconstruct(k));

    // A newer client starts from the beginning of the recording, and the answer follows it.
    await connect(`${feed.wsUrl}/ws`);
    const afterNewClient = await getJson(`${feed.url}/api/v3/depth?symbol=BTCUSDT&limit=1000`);
    expect(afterNewClient.body).toEqual(snapshot);
  });

  it('restarts from the recorded snapshot when the newest client loops', async () => {
    // Paced so the first freeze lands late in the first pass (10.5 s recorded / 10 a pass)
    // and the second early in the next one: a book that did not restart would stay ahead.
    const feed = await start({ speed: 10, loop: true });
    const client = await connect(`${feed.wsUrl}/stream?streams=${DEPTH}`);
    await client.until((messages) => messages.length >= 70);
    await freeze(client, [DEPTH]);
    const firstPass = depthDiffsIn(client.messages).length;
    expect(firstPass).toBeLessThan(diffs.length);
    expect((await getJson(`${feed.url}/api/v3/depth?symbol=BTCUSDT&limit=5000`)).body).toEqual(reconstruct(firstPass));

    client.ws.send(JSON.stringify({ method: 'SUBSCRIBE', params: [DEPTH], id: 5 }));
    await client.until((messages) => depthDiffsIn(messages).length >= diffs.length + 20);
    await freeze(client, [DEPTH]);
    const received = depthDiffsIn(client.messages);
    expect(received).toEqual([...diffs, ...diffs].slice(0, received.length));
    const sinceLoop = received.length - diffs.length;
    expect(sinceLoop).toBeGreaterThanOrEqual(20);
    expect(sinceLoop).toBeLessThan(firstPass);
    const depth = await getJson(`${feed.url}/api/v3/depth?symbol=BTCUSDT&limit=5000`);
    expect(depth.body).toEqual(reconstruct(sinceLoop));
    expect(depth.body.lastUpdateId).toBe(diffs[sinceLoop - 1].u);
  });

  it('answers unknown symbols, bad limits and other endpoints as Binance does', async () => {
    const feed = await start();
    expect(await getJson(`${feed.url}/api/v3/depth?symbol=ETHUSDT`)).toEqual({ status: 400, body: { code: -1121, msg: 'Invalid symbol.' } });
    expect(await getJson(`${feed.url}/api/v3/depth?symbol=btcusdt`)).toEqual({ status: 400, body: { code: -1121, msg: 'Invalid symbol.' } });
    expect((await getJson(`${feed.url}/api/v3/depth`)).body.code).toBe(-1102);
    for (const limit of ['abc', '0', '-5', '1.5']) {
      const bad = await getJson(`${feed.url}/api/v3/depth?symbol=BTCUSDT&limit=${limit}`);
      expect(bad.status).toBe(400);
      expect(bad.body.code).toBe(-1100);
      expect(bad.body.msg).toContain(`'limit'`);
      expect(bad.body.msg).toContain(JSON.stringify(limit));
    }
    const capped = await getJson(`${feed.url}/api/v3/depth?symbol=BTCUSDT&limit=99999`);
    expect(capped.body).toEqual(snapshot);
    expect(await getJson(`${feed.url}/api/v3/ping`)).toEqual({ status: 200, body: {} });
    const time = await getJson(`${feed.url}/api/v3/time`);
    expect(Math.abs(time.body.serverTime - Date.now())).toBeLessThan(60_000);
    expect((await getJson(`${feed.url}/api/v3/exchangeInfo`)).status).toBe(404);
  });
});

describe('startFeedServer: limits, keepalive and shutdown', () => {
  it('refuses bad paths, bad stream names, too many streams and too many clients', async () => {
    const feed = await start({ maxClients: 1, maxStreamsPerClient: 2 });
    expect(await refusal(`${feed.wsUrl}/socket`)).toContain('404');
    expect(await refusal(`${feed.wsUrl}/ws/btcusdt`)).toContain('400');
    expect(await refusal(`${feed.wsUrl}/stream?streams=${DEPTH}/${TRADE}/${TICKER}`)).toContain('400');
    const client = await connect(`${feed.wsUrl}/stream?streams=${DEPTH}/${TRADE}`);
    expect(await refusal(`${feed.wsUrl}/ws/${TICKER}`)).toContain('429');
    client.ws.send(JSON.stringify({ method: 'SUBSCRIBE', params: [TICKER], id: 4 }));
    await client.until((messages) => messages.some((text) => text.includes('"id":4')));
    const reply = client.messages.map((text) => JSON.parse(text)).find((m) => m.id === 4);
    expect(reply.error.msg).toContain('too many streams: 3 > 2');
    expect(feed.stats.rejectedUpgrades).toBe(4);
  });

  it('closes a client that sends more messages per second than allowed', async () => {
    const feed = await start({ maxIncomingMessagesPerSecond: 2 });
    const client = await connect(`${feed.wsUrl}/ws`);
    const closed = new Promise<number>((resolve) => client.ws.once('close', (code) => resolve(code)));
    for (let id = 1; id <= 3; id++) client.ws.send(JSON.stringify({ method: 'LIST_SUBSCRIPTIONS', id }));
    expect(await closed).toBe(1008);
    expect(client.messages).toEqual(['{"result":[],"id":1}', '{"result":[],"id":2}']);
  });

  it('pings clients and drops the one that never answers', async () => {
    const feed = await start({ speed: 1, pingIntervalMs: 25, pongTimeoutMs: 400 });
    const silent = await connect(`${feed.wsUrl}/ws`, { autoPong: false });
    const healthy = await connect(`${feed.wsUrl}/ws`);
    let pingsSeen = 0;
    healthy.ws.on('ping', () => pingsSeen++);
    const closeCode = await new Promise<number>((resolve) => silent.ws.once('close', (code) => resolve(code)));
    expect(closeCode).toBe(1006);
    expect(feed.stats.pongTimeouts).toBe(1);
    expect(pingsSeen).toBeGreaterThan(0);
    expect(healthy.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('close() ends every client and leaves no handle open', async () => {
    const handleKinds = ['TCPServerWrap', 'TCPSocketWrap', 'Timeout', 'Immediate'];
    const count = (): number => process.getActiveResourcesInfo().filter((kind) => handleKinds.includes(kind)).length;
    const before = count();
    const feed = await start({ speed: 1 });
    const client = await connect(`${feed.wsUrl}/stream?streams=${DEPTH}/${TICKER}`);
    await client.until((messages) => messages.length >= 3);
    await getJson(`${feed.url}/api/v3/depth?symbol=BTCUSDT&limit=10`);
    const closed = new Promise<number>((resolve) => client.ws.once('close', (code) => resolve(code)));
    await feed.close();
    server = null;
    expect(await closed).toBe(1001);
    await feed.close(); // idempotent
    for (let attempt = 0; attempt < 50 && count() > before; attempt++) await new Promise((resolve) => setImmediate(resolve));
    expect(count()).toBeLessThanOrEqual(before);
  });

  it('rejects invalid options and parses CLI speeds', async () => {
    await expect(startFeedServer({ recording: FIXTURE, speed: 0, loop: false })).rejects.toThrow(/speed/);
    await expect(startFeedServer({ recording: [], speed: 1, loop: false })).rejects.toThrow(/recording/);
    expect(parseFeedSpeed('max')).toBe('max');
    expect(parseFeedSpeed('2.5')).toBe(2.5);
    expect(() => parseFeedSpeed('fast')).toThrow(/speed.*"fast"/);
    expect(() => parseFeedSpeed('0')).toThrow(/speed/);
  });
});
