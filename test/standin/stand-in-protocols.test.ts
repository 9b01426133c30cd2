// The subscription conversation of the Coinbase, Kraken v1 and Kraken v2 stand-ins, spoken by
// a raw websocket client: acknowledgements and errors in each venue's documented shape, and
// the snapshot on subscription.
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { startFeedServer, type FeedServer, type StandInVenue } from '../../src/standin/server.js';
import { until } from '../ingest/fake-exchange.js';

const fixture = (path: string) => fileURLToPath(new URL(`../../fixtures/${path}`, import.meta.url));
const recordings: Record<Exclude<StandInVenue, 'binance'>, string> = {
  coinbase: fixture('coinbase/btc-usdt_from-binance_20240808.gz'),
  kraken: fixture('kraken/xbt-usdt_book10_v1_from-binance_20240808.gz'),
  'kraken-v2': fixture('kraken/btc-usdt_book10_v2_from-binance_20240808.gz'),
};

let server: FeedServer | null = null;
let socket: WebSocket | null = null;
afterEach(async () => {
  socket?.terminate();
  await server?.close();
  server = null;
  socket = null;
});

/** Connects to a stand-in of `venue` (speed max, no loop) and collects every frame it sends. */
async function connect(venue: Exclude<StandInVenue, 'binance'>): Promise<unknown[]> {
  server = await startFeedServer({ venue, recording: recordings[venue], speed: 'max', loop: false });
  socket = new WebSocket(server.wsUrl);
  const received: unknown[] = [];
  socket.on('message', (data) => received.push(JSON.parse(String(data))));
  await once(socket, 'open');
  return received;
}

const send = (message: unknown) => socket!.send(JSON.stringify(message));

describe('coinbase stand-in', () => {
  it('answers a subscribe with its subscriptions, then the snapshot and the updates; refuses unknown products and channels', async () => {
    const received = await connect('coinbase');
    send({ type: 'subscribe', product_ids: ['BTC-USDT'], channels: ['level2_batch', { name: 'heartbeat', product_ids: ['BTC-USDT'] }] });
    await until(() => received.length > 3, 'the book');
    expect(received[0]).toEqual({
      type: 'subscriptions',
      channels: [
        { name: 'level2_batch', product_ids: ['BTC-USDT'] },
        { name: 'heartbeat', product_ids: ['BTC-USDT'] },
      ],
    });
    expect(received[1]).toMatchObject({ type: 'snapshot', product_id: 'BTC-USDT' });
    expect(received[2]).toMatchObject({ type: 'l2update', product_id: 'BTC-USDT' });
    expect(received.some((m) => (m as { type: string }).type === 'match')).toBe(false);
    const before = received.length;
    send({ type: 'subscribe', product_ids: ['ETH-USD'], channels: ['matches'] });
    send({ type: 'subscribe', product_ids: ['BTC-USDT'], channels: ['full'] });
    await until(() => received.slice(before).filter((m) => (m as { type: string }).type === 'error').length === 2, 'two errors');
    expect(received.slice(before).filter((m) => (m as { type: string }).type === 'error')).toEqual([
      { type: 'error', message: 'Failed to subscribe', reason: 'ETH-USD is not a valid product' },
      { type: 'error', message: 'Failed to subscribe', reason: 'full is not a valid channel' },
    ]);
  });

  it('sends a heartbeat a second for each product of the heartbeat channel, naming the last trade before the position', async () => {
    const received = await connect('coinbase');
    send({ type: 'subscribe', channels: [{ name: 'heartbeat', product_ids: ['BTC-USDT'] }] });
    await until(() => received.some((m) => (m as { type: string }).type === 'heartbeat'), 'a heartbeat');
    const heartbeat = received.find((m) => (m as { type: string }).type === 'heartbeat') as Record<string, unknown>;
    // Only the heartbeat channel is followed, so the replay stands at the start: no trade before it.
    expect(heartbeat).toMatchObject({ type: 'heartbeat', product_id: 'BTC-USDT', sequence: 0, last_trade_id: 0 });
    expect(typeof heartbeat.time).toBe('string');
  });
});

describe('kraken v1 stand-in', () => {
  it('greets with systemStatus, answers subscriptionStatus per pair, sends the trade snapshot, pongs, and refuses what it cannot serve', async () => {
    const received = await connect('kraken');
    await until(() => received.length === 1, 'systemStatus');
    expect(received[0]).toMatchObject({ event: 'systemStatus', status: 'online' });
    send({ event: 'subscribe', pair: ['XBT/USDT'], subscription: { name: 'book', depth: 10 } });
    await until(() => received.length >= 4, 'the book');
    expect(received[1]).toEqual({
      channelID: 336,
      channelName: 'book-10',
      event: 'subscriptionStatus',
      pair: 'XBT/USDT',
      status: 'subscribed',
      subscription: { depth: 10, name: 'book' },
    });
    expect(received[2]).toEqual([336, expect.objectContaining({ as: expect.any(Array), bs: expect.any(Array) }), 'book-10', 'XBT/USDT']);
    const before = received.length;
    send({ event: 'subscribe', pair: ['XBT/USDT'], subscription: { name: 'trade' } });
    send({ event: 'subscribe', pair: ['XBT/USDT'], subscription: { name: 'book', depth: 25 } });
    send({ event: 'subscribe', pair: ['XBT/EUR'], subscription: { name: 'trade' } });
    send({ event: 'ping', reqid: 7 });
    const replies = () => received.slice(before).filter((m) => !Array.isArray(m));
    await until(() => replies().some((m) => (m as { event?: string }).event === 'pong'), 'the pong');
    const [tradeStatus, depthError, pairError, pong] = replies();
    // The first trade message after the status; recorded trades may follow it between the other replies.
    const tradeSnapshot = received.slice(received.indexOf(tradeStatus)).find((m) => Array.isArray(m) && m[2] === 'trade');
    expect(tradeStatus).toMatchObject({ channelID: 337, channelName: 'trade', status: 'subscribed' });
    // Kraken's snapshot of the last 50 trades: here the trades recorded before this position.
    expect(tradeSnapshot).toEqual([337, expect.any(Array), 'trade', 'XBT/USDT']);
    expect(((tradeSnapshot as unknown[])[1] as unknown[]).length).toBeLessThanOrEqual(50);
    expect(depthError).toMatchObject({ errorMessage: 'Subscription depth not supported', status: 'error', pair: 'XBT/USDT' });
    expect(pairError).toMatchObject({ errorMessage: 'Currency pair not supported XBT/EUR', status: 'error' });
    expect(pong).toEqual({ event: 'pong', reqid: 7 });
  });

  it('sends a heartbeat once the recording has run out and the line is quiet', async () => {
    const received = await connect('kraken');
    send({ event: 'subscribe', pair: ['XBT/USDT'], subscription: { name: 'book', depth: 10 } });
    await until(() => received.some((m) => (m as { event?: string }).event === 'heartbeat'), 'a heartbeat');
    const beat = received.findIndex((m) => (m as { event?: string }).event === 'heartbeat');
    // At speed max the whole recording went out before the first quiet second.
    expect(received.slice(0, beat).filter((m) => Array.isArray(m)).length).toBe(248);
  });
});

describe('kraken v2 stand-in', () => {
  it('greets with status, acknowledges per symbol, sends the book snapshot with its checksum, pongs, and refuses unknown symbols', async () => {
    const received = await connect('kraken-v2');
    await until(() => received.length === 1, 'status');
    expect(received[0]).toMatchObject({ channel: 'status', type: 'update', data: [{ api_version: 'v2', system: 'online' }] });
    send({ method: 'subscribe', params: { channel: 'book', symbol: ['BTC/USDT', 'ETH/USD'], depth: 10 }, req_id: 3 });
    await until(() => received.length >= 5, 'the book');
    expect(received[1]).toMatchObject({ method: 'subscribe', result: { channel: 'book', depth: 10, snapshot: true, symbol: 'BTC/USDT' }, success: true, req_id: 3 });
    expect(received[2]).toMatchObject({ method: 'subscribe', error: 'Currency pair not supported', success: false, symbol: 'ETH/USD', req_id: 3 });
    expect(received[3]).toMatchObject({ channel: 'book', type: 'snapshot', data: [{ symbol: 'BTC/USDT', checksum: expect.any(Number) }] });
    expect(received[4]).toMatchObject({ channel: 'book', type: 'update' });
    const before = received.length;
    send({ method: 'ping', req_id: 9 });
    await until(() => received.slice(before).some((m) => (m as { method?: string }).method === 'pong'), 'the pong');
    expect(received.slice(before).find((m) => (m as { method?: string }).method === 'pong')).toMatchObject({ method: 'pong', req_id: 9 });
  });
});
