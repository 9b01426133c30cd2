import { once } from 'node:events';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BookSnapshot, Disconnect, MarketMessage, Rejected } from '../../src/domain/types.js';
import { createLiveFeed, type LiveFeed, type LiveFeedLogger, type LiveFeedOptions } from '../../src/ingest/live-client.js';
import type { Venue } from '../../src/venues/types.js';
import { collect, FakeExchange, seqDiffVenue, until } from './fake-exchange.js';

const SYMBOLS = ['AAA', 'BBB'];
const CLOCK_MS = 1_723_161_253_000;
const fastBackoff = { initialMs: 10, maxMs: 80, multiplier: 2, jitter: 'none' } as const;

const snapshotsOf = (messages: MarketMessage[], symbol?: string): BookSnapshot[] =>
  messages.filter((m): m is BookSnapshot => m.type === 'book_snapshot' && (symbol === undefined || m.symbol === symbol));
const disconnectsOf = (messages: MarketMessage[]): Disconnect[] => messages.filter((m): m is Disconnect => m.type === 'disconnect');
const rejectionsOf = (messages: MarketMessage[]): Rejected[] => messages.filter((m): m is Rejected => m.type === 'rejected');

describe('live feed client against a local exchange', () => {
  let exchange: FakeExchange;
  let feed: LiveFeed | undefined;

  beforeEach(async () => {
    exchange = await FakeExchange.start(SYMBOLS);
  });

  afterEach(async () => {
    await feed?.close();
    feed = undefined;
    await exchange.stop();
  });

  function startFeed(overrides: Partial<LiveFeedOptions> = {}, venue: Venue = seqDiffVenue(false)): LiveFeed {
    feed = createLiveFeed(
      venue,
      { url: exchange.wsUrl, restUrl: exchange.restUrl, symbols: SYMBOLS },
      { now: () => CLOCK_MS, levels: 3, backoff: fastBackoff, random: () => 0.5, ...overrides },
    );
    return feed;
  }

  /** The snapshot's best levels equal the exchange's book at the same update id. */
  function expectMatchesExchange(snapshot: BookSnapshot): void {
    const truth = exchange.books.get(snapshot.symbol)?.history.get(snapshot.seq as number);
    expect(truth, `exchange history for ${snapshot.symbol}@${snapshot.seq}`).toBeDefined();
    expect(snapshot.bids[0]).toBeCloseTo(truth!.bestBid[0], 12);
    expect(snapshot.bids[1]).toBeCloseTo(truth!.bestBid[1], 12);
    expect(snapshot.asks[0]).toBeCloseTo(truth!.bestAsk[0], 12);
    expect(snapshot.asks[1]).toBeCloseTo(truth!.bestAsk[1], 12);
  }

  async function syncedWithUpdates(items: MarketMessage[], after = 0, updates = 5): Promise<void> {
    for (const symbol of SYMBOLS) {
      await until(() => snapshotsOf(items.slice(after), symbol).length >= updates, `${updates} snapshots of ${symbol}`);
    }
  }

  it('subscribes, syncs each symbol from a REST snapshot and emits books that match the exchange', async () => {
    exchange.startTicking(5);
    const live = startFeed();
    const { items } = collect(live.messages());
    await syncedWithUpdates(items, 0, 20);

    expect(exchange.clientFrames[0]).toEqual({ op: 'subscribe', symbols: SYMBOLS });
    expect([...exchange.restRequests].sort()).toEqual(SYMBOLS);
    for (const symbol of SYMBOLS) {
      const snapshots = snapshotsOf(items, symbol);
      for (let i = 1; i < snapshots.length; i += 1) expect(snapshots[i].seq).toBeGreaterThan(snapshots[i - 1].seq as number);
      for (const snapshot of snapshots) {
        expect(snapshot.localTs).toBe(CLOCK_MS);
        expect(snapshot.bids.length).toBe(6);
        expectMatchesExchange(snapshot);
      }
    }
    expect(disconnectsOf(items)).toEqual([]);
    const stats = live.stats;
    expect(stats.connects).toBe(1);
    expect(stats.reconnects).toBe(0);
    expect(stats.connected).toBe(true);
    expect(stats.synced).toEqual({ AAA: true, BBB: true });
    expect(stats.snapshotFetches).toBe(2);
    expect(stats.frames).toBeGreaterThanOrEqual(40);
  });

  it('marks a dropped connection, reconnects, fetches fresh snapshots and resumes', async () => {
    exchange.startTicking(5);
    const live = startFeed();
    const { items } = collect(live.messages());
    await syncedWithUpdates(items);
    const lastBefore = new Map(SYMBOLS.map((s) => [s, snapshotsOf(items, s).at(-1)!.seq as number]));

    exchange.dropConnections();
    await until(() => disconnectsOf(items).length === 1, 'a disconnect marker');
    const markerIndex = items.findIndex((m) => m.type === 'disconnect');
    await syncedWithUpdates(items, markerIndex + 1);

    const marker = items[markerIndex] as Disconnect;
    expect(marker.symbol).toBeNull();
    expect(marker.reason).toMatch(/closed by peer \(code 1006\)/);
    expect(marker.localTs).toBe(CLOCK_MS);
    for (const symbol of SYMBOLS) {
      const after = snapshotsOf(items.slice(markerIndex + 1), symbol);
      expect(after[0].seq).toBeGreaterThan(lastBefore.get(symbol)!);
      after.forEach(expectMatchesExchange);
    }
    expect(live.stats.reconnects).toBe(1);
    expect(exchange.connectionCount).toBe(2);
    expect(exchange.clientFrames.filter((f) => f.op === 'subscribe')).toHaveLength(2);
    expect(exchange.restRequests).toHaveLength(4);
    expect(live.stats.synced).toEqual({ AAA: true, BBB: true });
  });

  it('treats a silent connection as dead and reconnects', async () => {
    exchange.startTicking(5);
    const live = startFeed({ silenceTimeoutMs: 300 });
    const { items } = collect(live.messages());
    await syncedWithUpdates(items);

    exchange.stallConnections();
    await until(() => disconnectsOf(items).length >= 1, 'a disconnect marker after silence');
    const markerIndex = items.findIndex((m) => m.type === 'disconnect');
    await syncedWithUpdates(items, markerIndex + 1);

    expect((items[markerIndex] as Disconnect).reason).toBe('silence: no frame for 300 ms');
    expect(live.stats.reconnects).toBeGreaterThanOrEqual(1);
    snapshotsOf(items.slice(markerIndex + 1)).forEach(expectMatchesExchange);
  });

  it('resyncs one symbol through REST after a sequence gap, without reconnecting', async () => {
    exchange.startTicking(5);
    const live = startFeed();
    const { items } = collect(live.messages());
    await syncedWithUpdates(items);

    exchange.skipNextUpdate('AAA');
    await until(() => disconnectsOf(items).length === 1, 'a gap marker');
    const markerIndex = items.findIndex((m) => m.type === 'disconnect');
    await until(() => snapshotsOf(items.slice(markerIndex + 1), 'AAA').length >= 3, 'AAA snapshots after the gap');

    const marker = items[markerIndex] as Disconnect;
    expect(marker.symbol).toBe('AAA');
    expect(marker.reason).toMatch(/^sequence gap: expected \d+, got \d+$/);
    expect(exchange.restRequests.filter((s) => s === 'AAA')).toHaveLength(2);
    expect(exchange.restRequests.filter((s) => s === 'BBB')).toHaveLength(1);
    expect(live.stats.reconnects).toBe(0);
    expect(live.stats.resyncs).toBe(3);
    snapshotsOf(items.slice(markerIndex + 1), 'AAA').forEach(expectMatchesExchange);
  });

  it('retries failed REST snapshots with backoff and records the error', async () => {
    exchange.failRestRequests = 3;
    exchange.startTicking(5);
    const warnings: string[] = [];
    const record = (fields: object): void => {
      warnings.push(JSON.stringify(fields));
    };
    const logger: LiveFeedLogger = { debug: () => {}, info: () => {}, warn: record, error: record };
    const live = startFeed({ logger });
    const { items } = collect(live.messages());
    await syncedWithUpdates(items);

    expect(live.stats.snapshotFailures).toBe(3);
    expect(live.stats.lastError).toMatch(/^snapshot http:\/\/127\.0\.0\.1:\d+\/depth\?symbol=[AB]{3}: HTTP 500/);
    expect(exchange.restRequests).toHaveLength(5);
    expect(warnings.filter((w) => w.includes('HTTP 500'))).toHaveLength(3);
    expect(live.stats.reconnects).toBe(0);
  });

  it('waits as long as a 429 Retry-After asks before the next snapshot request', async () => {
    exchange.restRefusal = { count: 1, status: 429, headers: { 'retry-after': '1' } };
    exchange.startTicking(5);
    const live = startFeed({ now: Date.now });
    const { items } = collect(live.messages());
    await syncedWithUpdates(items);
    // The refused symbol's second request came at least the second Retry-After asked for, far
    // beyond the 10 ms backoff it would otherwise have waited.
    const refused = exchange.restRequests[0];
    const times = exchange.restRequests.map((symbol, i) => ({ symbol, at: exchange.restRequestTimes[i] })).filter((r) => r.symbol === refused);
    expect(times).toHaveLength(2);
    expect(times[1].at - times[0].at).toBeGreaterThanOrEqual(1000);
    expect(live.stats.lastError).toMatch(/HTTP 429: .*\(retry after 1000 ms\)$/);
  });

  it('abandons a snapshot request the venue never answers after snapshotTimeoutMs, and retries', async () => {
    exchange.stallRestRequests = 1;
    exchange.startTicking(5);
    const live = startFeed({ snapshotTimeoutMs: 200 });
    const { items } = collect(live.messages());
    await syncedWithUpdates(items);
    expect(live.stats.snapshotFailures).toBe(1);
    expect(live.stats.lastError).toMatch(/no answer within 200 ms$/);
    expect(exchange.restRequests).toHaveLength(3);
  });

  it('rebuilds the connection when a symbol cannot be resynced, instead of retrying forever', async () => {
    exchange.failRestRequests = Number.MAX_SAFE_INTEGER;
    exchange.startTicking(5);
    const live = startFeed({ maxResyncAttempts: 3 });
    const { items } = collect(live.messages());
    await until(() => live.stats.connects >= 3, 'three connections');

    // Each connection may try each symbol at most maxResyncAttempts times.
    expect(exchange.restRequests.length).toBeLessThanOrEqual(3 * SYMBOLS.length * exchange.connectionCount);
    const markers = disconnectsOf(items);
    expect(markers.length).toBeGreaterThanOrEqual(2);
    expect(markers[0].reason).toMatch(/^resync of (AAA|BBB) failed after 3 attempts$/);
    expect(snapshotsOf(items)).toEqual([]);
    expect(live.stats.synced).toEqual({ AAA: false, BBB: false });
  });

  it('resubscribes a symbol after a gap on a venue that streams its own snapshots', async () => {
    await exchange.stop();
    exchange = await FakeExchange.start(SYMBOLS, { streamSnapshots: true });
    exchange.startTicking(5);
    const live = startFeed({}, seqDiffVenue(true));
    const { items } = collect(live.messages());
    await syncedWithUpdates(items);

    exchange.skipNextUpdate('BBB');
    await until(() => disconnectsOf(items).length === 1, 'a gap marker');
    const markerIndex = items.findIndex((m) => m.type === 'disconnect');
    await until(() => snapshotsOf(items.slice(markerIndex + 1), 'BBB').length >= 3, 'BBB snapshots after resubscribing');

    expect(exchange.clientFrames.map((f) => `${f.op}:${f.symbols?.join(',')}`)).toEqual(['subscribe:AAA,BBB', 'unsubscribe:BBB', 'subscribe:BBB']);
    expect(exchange.restRequests).toEqual([]);
    expect(live.stats.reconnects).toBe(0);
    snapshotsOf(items.slice(markerIndex + 1), 'BBB').forEach(expectMatchesExchange);
  });

  it('sends websocket pings and the venue ping frame, and ignores the pong', async () => {
    exchange.startTicking(5);
    const live = startFeed({ pingIntervalMs: 40 });
    const { items } = collect(live.messages());
    await until(() => exchange.wsPings >= 2 && exchange.clientFrames.filter((f) => f.op === 'ping').length >= 2, 'two pings of each kind');
    await syncedWithUpdates(items);
    expect(rejectionsOf(items)).toEqual([]);
    expect(live.stats.connects).toBe(1);
  });

  it('passes malformed frames downstream as rejections and keeps going', async () => {
    exchange.startTicking(5);
    const live = startFeed({ logger: pino({ level: 'silent' }) });
    const { items } = collect(live.messages());
    await syncedWithUpdates(items);

    exchange.sendRaw('{"type":"diff","symbol":');
    exchange.sendRaw('{"type":"diff","symbol":"ZZZ"}');
    await until(() => rejectionsOf(items).length === 2, 'two rejections');
    const after = items.findIndex((m) => m.type === 'rejected');
    await syncedWithUpdates(items, after + 1);

    expect(rejectionsOf(items).map((r) => r.reason)).toEqual(['malformed_json', 'unknown_symbol']);
    expect(rejectionsOf(items)[1].detail).toBe('symbol: not subscribed, got ZZZ');
    expect(disconnectsOf(items)).toEqual([]);
  });

  it('keeps the queue bounded for a slow consumer and ends with the newest book of each symbol', async () => {
    exchange.startTicking(5);
    const live = startFeed({ maxPendingRejections: 8 });
    const iterator = live.messages()[Symbol.asyncIterator]();
    const seen: MarketMessage[] = [];
    while (SYMBOLS.some((s) => snapshotsOf(seen, s).length === 0)) seen.push((await iterator.next()).value as MarketMessage);
    exchange.stopTicking();
    const framesBefore = live.stats.frames;

    // A burst far beyond what the consumer reads, with rejections that split snapshots apart.
    const ticks = 3000;
    const rejections = 60;
    for (let i = 0; i < ticks; i += 1) {
      exchange.tick();
      if (i % (ticks / rejections) === 0) exchange.sendRaw('not json');
    }
    const expectedFrames = framesBefore + ticks * SYMBOLS.length + rejections;

    // The consumer takes one message per 500 frames received.
    let nextRead = framesBefore + 500;
    while (live.stats.frames < expectedFrames) {
      await until(() => live.stats.frames >= Math.min(nextRead, expectedFrames), 'frames to arrive');
      expect(live.stats.queued).toBeLessThanOrEqual(live.stats.queueCapacity);
      if (live.stats.queued > 0) seen.push((await iterator.next()).value as MarketMessage);
      nextRead += 500;
    }
    while (live.stats.queued > 0) seen.push((await iterator.next()).value as MarketMessage);

    const stats = live.stats;
    expect(stats.queueHighWater).toBeLessThanOrEqual(stats.queueCapacity);
    expect(stats.queueCapacity).toBeLessThan(64);
    expect(stats.conflatedSnapshots).toBeGreaterThan(ticks);
    // Every rejection is either delivered or dropped over the cap, never lost silently.
    expect(rejectionsOf(seen).length + stats.droppedMessages).toBe(rejections);
    expect(stats.droppedMessages).toBeGreaterThan(0);
    for (const symbol of SYMBOLS) {
      const snapshots = snapshotsOf(seen, symbol);
      for (let i = 1; i < snapshots.length; i += 1) expect(snapshots[i].seq).toBeGreaterThan(snapshots[i - 1].seq as number);
      const last = snapshots.at(-1)!;
      expect(last.seq).toBe(exchange.books.get(symbol)!.seq);
      expectMatchesExchange(last);
    }
    expect(seen.length).toBeLessThan(ticks / 10);
  });

  function reconnectLog(): { logger: LiveFeedLogger; reconnects: { attempt: number; delayMs: number }[] } {
    const reconnects: { attempt: number; delayMs: number }[] = [];
    const ignore = (): void => {};
    const warn = (fields: object, message?: string): void => {
      if (message === 'live feed disconnected; reconnecting') reconnects.push(fields as { attempt: number; delayMs: number });
    };
    return { logger: { debug: ignore, info: ignore, warn, error: ignore }, reconnects };
  }

  it('backs off exponentially up to the cap while the venue is down', async () => {
    await exchange.stop();
    const { logger, reconnects } = reconnectLog();
    const live = startFeed({ logger });
    collect(live.messages());
    await until(() => reconnects.length >= 7, 'seven failed connects');
    expect(reconnects.slice(0, 7).map((r) => r.delayMs)).toEqual([10, 20, 40, 80, 80, 80, 80]);
    expect(reconnects.slice(0, 7).map((r) => r.attempt)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    await live.close();
    exchange = await FakeExchange.start(SYMBOLS);
  });

  it('resets the backoff after a connection has been healthy, and only then', async () => {
    exchange.startTicking(5);
    for (const [healthyAfterMs, expectedAttempts] of [
      [20, [1, 1]],
      [60_000, [1, 2]],
    ] as const) {
      const { logger, reconnects } = reconnectLog();
      const live = startFeed({ logger, healthyAfterMs });
      const { items } = collect(live.messages());
      for (let drop = 0; drop < 2; drop += 1) {
        const markers = disconnectsOf(items).length;
        await syncedWithUpdates(items, items.length);
        // Lets a 20 ms health timer, started before this one, fire first.
        await new Promise((resolve) => setTimeout(resolve, 100));
        exchange.dropConnections();
        await until(() => disconnectsOf(items).length === markers + 1, 'a disconnect marker');
      }
      await until(() => reconnects.length === 2, 'two reconnects');
      expect(reconnects.map((r) => r.attempt)).toEqual(expectedAttempts);
      await live.close();
    }
  });

  it('close() ends the iterator, closes the socket and leaves no timers behind', async () => {
    exchange.startTicking(5);
    const timersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const live = startFeed({ pingIntervalMs: 1_000, silenceTimeoutMs: 5_000 });
    const { items, done } = collect(live.messages());
    await syncedWithUpdates(items);
    const closedOnServer = once(exchange, 'client-closed');

    await live.close();
    await done;
    await closedOnServer;

    expect(exchange.openConnections).toBe(0);
    expect(live.stats.connected).toBe(false);
    const timersAfter = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    expect(timersAfter).toBeLessThanOrEqual(timersBefore);
    const countAfterClose = items.length;
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(items.length).toBe(countAfterClose);
  });

  it('close() interrupts the reconnect backoff when the venue is down', async () => {
    await exchange.stop();
    const live = startFeed({ backoff: { initialMs: 60_000, maxMs: 60_000, multiplier: 2, jitter: 'none' } });
    const { done } = collect(live.messages());
    await until(() => live.stats.lastError !== null, 'a failed connect');
    await live.close();
    await done;
    expect(live.stats.connects).toBe(0);
    expect(live.stats.lastError).toMatch(/ECONNREFUSED/);
    exchange = await FakeExchange.start(SYMBOLS);
  });

  it('breaking out of the loop closes the feed', async () => {
    exchange.startTicking(5);
    const live = startFeed();
    for await (const message of live.messages()) {
      if (message.type === 'book_snapshot') break;
    }
    await until(() => exchange.openConnections === 0, 'the server to see the close');
    expect(live.stats.connected).toBe(false);
  });

  it('rejects misuse at construction and a second iteration', () => {
    const noLive: Venue = { id: 'file-only', live: null, createMapper: seqDiffVenue(false).createMapper };
    expect(() => createLiveFeed(noLive, { url: 'ws://x', symbols: ['A'] }, { now: () => 0 })).toThrow('venue file-only: has no live protocol');
    expect(() => createLiveFeed(seqDiffVenue(false), { url: 'ws://x', symbols: ['A'] }, { now: () => 0 })).toThrow(/^restUrl:/);
    expect(() => createLiveFeed(seqDiffVenue(true), { url: 'ws://x', symbols: ['A'] }, { now: () => 0, backoff: { initialMs: 0 } })).toThrow(
      'backoff.initialMs: must be a finite number > 0, got 0',
    );
    const live = startFeed();
    live.messages();
    expect(() => live.messages()).toThrow(/iterated only once/);
  });
});
