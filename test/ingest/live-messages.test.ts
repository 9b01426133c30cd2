// liveMessages, the live client as an async generator: every way out of it (break, return(),
// a throw in the consumer, an aborted signal, also while waiting out the reconnect backoff)
// closes the socket and leaves no timer or socket behind.
import { once } from 'node:events';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { MarketMessage } from '../../src/domain/types.js';
import { liveMessages, type LiveFeedOptions } from '../../src/ingest/live-client.js';
import type { Venue } from '../../src/venues/types.js';
import { FakeExchange, seqDiffVenue } from './fake-exchange.js';

const SYMBOLS = ['AAA', 'BBB'];

/** Handles that keep the process alive, by kind: timers (`Timeout`) and sockets (`TCPSocketWrap`). */
function liveHandles(): { timers: number; sockets: number } {
  const kinds = process.getActiveResourcesInfo();
  return { timers: kinds.filter((kind) => kind === 'Timeout').length, sockets: kinds.filter((kind) => kind === 'TCPSocketWrap').length };
}

describe('liveMessages: the generator cleans up on every way out', () => {
  let exchange: FakeExchange;

  // Books come in the stream (a snapshot on subscribe): no REST fetch, so no HTTP keep-alive
  // socket of fetch's own pool muddies the socket count. The REST path is the first test's.
  beforeEach(async () => {
    exchange = await FakeExchange.start(SYMBOLS, { streamSnapshots: true });
  });

  afterEach(async () => {
    await exchange.stop();
  });

  /** Every timer the feed can start is armed: ping, silence, health, and (REST venue) snapshot fetches. */
  function messagesOf(venue: Venue, overrides: Partial<LiveFeedOptions> = {}): AsyncGenerator<MarketMessage, void, undefined> {
    return liveMessages(
      venue,
      { url: exchange.wsUrl, restUrl: exchange.restUrl, symbols: SYMBOLS },
      { now: Date.now, levels: 3, pingIntervalMs: 1_000, silenceTimeoutMs: 5_000, healthyAfterMs: 60_000, backoff: { initialMs: 10, maxMs: 20, jitter: 'none' }, ...overrides },
    );
  }

  /** After the generator ended: the server saw the socket close, and no timer or socket outlived it. */
  async function expectNothingLeft(before: { timers: number; sockets: number }, closedOnServer: Promise<unknown>): Promise<void> {
    await closedOnServer;
    expect(exchange.openConnections).toBe(0);
    const after = liveHandles();
    expect(after.timers).toBeLessThanOrEqual(before.timers);
    expect(after.sockets).toBeLessThanOrEqual(before.sockets);
  }

  it('break: closes the socket and clears every timer before the loop is left', async () => {
    const before = liveHandles();
    const closedOnServer = once(exchange, 'client-closed');
    let books = 0;
    let during = before;
    for await (const message of messagesOf(seqDiffVenue(true))) {
      if (message.type === 'book_snapshot') books += 1;
      during = liveHandles();
      if (books === 2) break;
    }
    // Ping, silence and health timers and the socket were there, so their absence below counts.
    expect(during.timers - before.timers).toBeGreaterThanOrEqual(3);
    expect(during.sockets).toBeGreaterThan(before.sockets);
    // At once: leaving the loop awaited the generator's finally.
    expect(liveHandles().timers).toBeLessThanOrEqual(before.timers);
    await expectNothingLeft(before, closedOnServer);
  });

  it('break while REST snapshots sync the books: the same, fetches included', async () => {
    await exchange.stop();
    exchange = await FakeExchange.start(SYMBOLS);
    exchange.startTicking(5);
    const before = liveHandles();
    const closedOnServer = once(exchange, 'client-closed');
    let books = 0;
    for await (const message of messagesOf(seqDiffVenue(false))) {
      if (message.type === 'book_snapshot') books += 1;
      if (books === 5) break;
    }
    expect(liveHandles().timers).toBeLessThanOrEqual(before.timers);
    await closedOnServer;
    expect(exchange.openConnections).toBe(0);
    exchange.stopTicking();
  });

  it('return() from outside, and a throw in the consumer, end it the same way', async () => {
    const before = liveHandles();
    let closedOnServer = once(exchange, 'client-closed');
    const messages = messagesOf(seqDiffVenue(true));
    expect((await messages.next()).done).toBe(false);
    await messages.return();
    expect(await messages.next()).toEqual({ done: true, value: undefined });
    await expectNothingLeft(before, closedOnServer);

    closedOnServer = once(exchange, 'client-closed');
    const consumer = async (): Promise<void> => {
      for await (const message of messagesOf(seqDiffVenue(true))) {
        if (message.type === 'book_snapshot') throw new Error('consumer failed');
      }
    };
    await expect(consumer()).rejects.toThrow('consumer failed');
    await expectNothingLeft(before, closedOnServer);
  });

  it('an aborted signal ends a consumer waiting for the next message', async () => {
    const before = liveHandles();
    const closedOnServer = once(exchange, 'client-closed');
    const abort = new AbortController();
    // No ticking: after the two snapshots nothing more comes, so next() waits.
    const messages = messagesOf(seqDiffVenue(true), { signal: abort.signal });
    const first = [await messages.next(), await messages.next()];
    expect(first.map((result) => (result.value as MarketMessage).type)).toEqual(['book_snapshot', 'book_snapshot']);
    const waiting = messages.next();
    abort.abort();
    expect(await waiting).toEqual({ done: true, value: undefined });
    await expectNothingLeft(before, closedOnServer);
  });

  it('an aborted signal cuts the reconnect backoff short while the venue is down', async () => {
    await exchange.stop();
    const before = liveHandles();
    const abort = new AbortController();
    const messages = messagesOf(seqDiffVenue(true), { signal: abort.signal, backoff: { initialMs: 60_000, maxMs: 60_000, jitter: 'none' } });
    const waiting = messages.next();
    // The connect to a closed loopback port fails at once; the 60 s backoff timer is then what
    // keeps the feed alive. (Counting the process's timers to see it start raced with other
    // timers ending on a loaded machine; the abort must end the wait either way.)
    await new Promise((resolve) => setTimeout(resolve, 300));
    abort.abort();
    expect(await waiting).toEqual({ done: true, value: undefined });
    expect(liveHandles().timers).toBeLessThanOrEqual(before.timers);
    exchange = await FakeExchange.start(SYMBOLS, { streamSnapshots: true });
  });

  it('ends at once for a signal aborted before the first next()', async () => {
    const abort = new AbortController();
    abort.abort();
    const messages = messagesOf(seqDiffVenue(true), { signal: abort.signal });
    expect(await messages.next()).toEqual({ done: true, value: undefined });
    expect(exchange.openConnections).toBe(0);
  });
});
