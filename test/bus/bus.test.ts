// The market-data log's pieces on a real nats-server: the codec, subjects and partitions;
// leases; the shared checkpoint store; de-duplication of a re-sent input; a NATS restart under
// a running worker; and configuration errors that must fail with one clear line.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { DeliverPolicy } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeLogged, encodeLogged, MarketMessageIds } from '../../src/bus/codec.js';
import { busConfig } from '../../src/bus/config.js';
import { SharedCheckpointStore } from '../../src/bus/checkpoint-store.js';
import { PartitionLeases } from '../../src/bus/leases.js';
import { BusError, connectBus, MarketLogPublisher, type BusConnection } from '../../src/bus/market-log.js';
import { fromSubjectToken, marketSubject, partitionOf, subjectToken } from '../../src/bus/subjects.js';
import { packageRoot } from '../../src/domain/package-root.js';
import type { BookSnapshot, Disconnect, OrderEvent, Trade } from '../../src/domain/types.js';
import { startFeedServer } from '../../src/standin/server.js';
import { ensureBuilt, SpawnedService } from '../service/spawned-service.js';
import { freePort, startNatsServer, type NatsServer } from '../../bench/nats-server.js';

const root = packageRoot();
const cli = join(root, 'dist/src/cli/main.js');

const snapshot: BookSnapshot = {
  type: 'book_snapshot',
  symbol: 'BTC.USDT',
  ts: 1723075200123.25,
  localTs: 1723075200125,
  seq: 42,
  bids: Float64Array.of(60000.1, 0.5, 59999.9, 1.25),
  asks: Float64Array.of(60000.2, 0.1 + 0.2, 60001, 3),
};
const trade: Trade = { type: 'trade', symbol: 'BTC.USDT', ts: 1723075200124, localTs: 1723075200126, price: 60000.2, size: 0.003, aggressor: 1, tradeId: '991' };
const order: OrderEvent = { type: 'order_event', symbol: 'AMZN', ts: 34200.5, localTs: 34200.5, kind: 'cancel', side: -1, price: 223.95, size: 100, level: 2 };
const disconnect: Disconnect = { type: 'disconnect', symbol: null, localTs: 1723075200200, reason: 'sequence gap' };

describe('the log codec and subjects', () => {
  it('every message kind survives the log exactly, float for float', () => {
    for (const message of [snapshot, trade, order, disconnect]) {
      const decoded = decodeLogged(encodeLogged('binance', message), 10);
      expect(decoded).toEqual({ venue: 'binance', message });
    }
    const cut = decodeLogged(encodeLogged('binance', snapshot), 1);
    expect('message' in cut && cut.message.type === 'book_snapshot' && Array.from(cut.message.bids)).toEqual([60000.1, 0.5]);
  });

  it('a bad message is a rejection naming the field, never a throw', () => {
    const cases: [string, RegExp][] = [
      ['{"venue":"binance","localTs":1,"symbol":"X","ts":1,"bids":[[1,-2]],"asks":[[2,1]]}', /bids|size/],
      ['{"venue":"binance","symbol":"X","ts":1,"bids":[],"asks":[]}', /localTs/],
      ['{"venue":"Bad Venue","localTs":1}', /venue/],
      ['{"venue":"lobster","localTs":1,"type":"order_event","symbol":"AMZN","ts":1,"kind":"fill","side":1,"price":1,"size":1,"level":0}', /kind/],
      ['[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]', /deeper|nest/],
      ['not json', /JSON|json/],
    ];
    for (const [text, field] of cases) {
      const decoded = decodeLogged(text, 10);
      expect('reason' in decoded, text).toBe(true);
      if ('reason' in decoded) expect(decoded.detail).toMatch(field);
    }
  });

  it('ids tell retries from repeats: identical messages in one stream get distinct ids, the same input again the same ids', () => {
    const encoded = encodeLogged('lobster', order);
    const first = new MarketMessageIds();
    const run = [first.next('lobster', encoded), first.next('lobster', encoded), first.next('lobster', encodeLogged('lobster', { ...order, size: 200 }))];
    expect(new Set(run).size).toBe(3);
    const again = new MarketMessageIds();
    expect([again.next('lobster', encoded), again.next('lobster', encoded), again.next('lobster', encodeLogged('lobster', { ...order, size: 200 }))]).toEqual(run);
  });

  it('subject tokens escape what a subject cannot hold, reversibly; partitions are stable', () => {
    for (const symbol of ['BTC.USDT', 'ES=F', 'BRK/B', 'a~b', 'XBT/USD:perp', 'plain_-09']) {
      const token = subjectToken(symbol);
      expect(token).toMatch(/^[A-Za-z0-9_~-]+$/);
      expect(fromSubjectToken(token)).toBe(symbol);
    }
    expect(marketSubject('lob_rtrl', 3, 'binance', 'BTC.USDT')).toBe('lob_rtrl.md.3.binance.BTC~2eUSDT');
    // Fixed values: a partition must not move between versions or machines.
    expect([partitionOf('nasdaq', 'AMZN', 4), partitionOf('nasdaq', 'AAPL', 4), partitionOf('lobster', 'AMZN', 4)]).toEqual([1, 1, 0]);
    expect(partitionOf('binance', 'BTCUSDT', 8)).toBe(partitionOf('binance', 'BTCUSDT', 8));
    expect(partitionOf('binance', 'BTCUSDT', 1)).toBe(0);
  });
});

describe('on a real nats-server', () => {
  let nats: NatsServer;
  let bus: BusConnection;

  beforeAll(async () => {
    await ensureBuilt();
    nats = await startNatsServer(
      `authorization { users = [ { user: "full", password: "full-pass" }, { user: "limited", password: "limited-pass", permissions: { publish: { deny: ["$JS.API.>"] } } } ] }`,
    );
    bus = await connectBus(busConfig({ natsUrl: `nats://full:full-pass@127.0.0.1:${nats.port}`, natsPrefix: 'unit', natsLeaseSeconds: 1 }), { name: 'test' });
  }, 120_000);

  afterAll(async () => {
    await bus?.close();
    await nats?.dispose();
  });

  it('a lease has one holder; renewing with a stale revision fails; an unrenewed lease expires and can be taken', async () => {
    const one = await PartitionLeases.open(bus, 'one');
    const two = await PartitionLeases.open(bus, 'two');
    const held = await one.tryAcquire(5);
    expect(held).not.toBeNull();
    expect(await two.tryAcquire(5)).toBeNull();
    expect(await one.ownerOf(5)).toBe('one');
    const stale = { partition: 5, revision: held!.revision };
    expect(await one.renew(held!)).toBe(true);
    expect(await two.renew(stale)).toBe(false);
    // Lease time 1 s: stop renewing and the key goes with the bucket's age limit.
    let taken = null;
    for (const deadline = Date.now() + 10_000; taken === null && Date.now() < deadline;) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      taken = await two.tryAcquire(5);
    }
    expect(taken).not.toBeNull();
    expect(await one.renew(held!)).toBe(false);
    await two.release(taken!);
    expect(await one.ownerOf(5)).toBeNull();
  });

  it('the checkpoint index only moves forward, and refuses another configuration', async () => {
    const store = await SharedCheckpointStore.open(bus);
    const state = (n: number) => Uint8Array.from({ length: 300_000 }, (_, i) => (i * n) % 251);
    expect(await store.save({ partition: 2, lastSequence: 100, configHash: 'abc', streams: [{ venue: 'v', symbol: 'S', state: state(1) }] })).toBe(true);
    expect(
      await store.save({
        partition: 2,
        lastSequence: 200,
        configHash: 'abc',
        streams: [
          { venue: 'v', symbol: 'S', state: state(2) },
          { venue: 'w', symbol: 'S', state: state(3) },
        ],
      }),
    ).toBe(true);
    // A late writer (an owner that lost its lease) cannot take the partition back.
    expect(await store.save({ partition: 2, lastSequence: 150, configHash: 'abc', streams: [] })).toBe(false);
    const loaded = await store.load(2, 'abc');
    expect(loaded?.lastSequence).toBe(200);
    expect(loaded?.streams.map((s) => `${s.venue}/${s.symbol}`)).toEqual(['v/S', 'w/S']);
    expect(Buffer.from(loaded!.streams[1].state).equals(Buffer.from(state(3)))).toBe(true);
    await expect(store.load(2, 'other')).rejects.toThrow(/another configuration/);
    expect(await store.load(3, 'abc')).toBeNull();
  });

  it('publishing the same input twice stores it once; every acknowledged message is in the log, in order', async () => {
    const publisher = new MarketLogPublisher(bus);
    const messages = [snapshot, trade, trade, { ...snapshot, seq: 43, ts: snapshot.ts + 1 }, disconnect];
    for (const message of messages) await publisher.publish('binance', message);
    // A restarted ingest sends everything again from the start.
    const again = new MarketLogPublisher(bus);
    for (const message of messages) await again.publish('binance', message);
    expect(again.published).toBe(0);
    // The venue-wide disconnect goes to every partition.
    expect(publisher.published).toBe(4 + busConfig().natsPartitions);
    const consumer = await bus.js.consumers.get(bus.names.marketStream, {
      filter_subjects: `unit.md.${partitionOf('binance', 'BTC.USDT', 8)}.>`,
      deliver_policy: DeliverPolicy.All,
    });
    const stored: string[] = [];
    const batch = await consumer.fetch({ max_messages: 100, expires: 1000 });
    for await (const message of batch) stored.push(message.string());
    expect(stored.map((text) => decodeLogged(text, 10))).toEqual(messages.map((message) => ({ venue: 'binance', message })));
  });

  it('fails with one clear line: NATS unreachable, or a user who may not use JetStream', async () => {
    const closedPort = await freePort();
    await expect(connectBus(busConfig({ natsUrl: `nats://127.0.0.1:${closedPort}` }), { name: 'test', connectTimeoutMs: 1000 })).rejects.toThrow(BusError);
    const limited = connectBus(busConfig({ natsUrl: `nats://limited:limited-pass@127.0.0.1:${nats.port}` }), { name: 'test' });
    await expect(limited).rejects.toThrow(/JetStream not usable/);
    await expect(limited).rejects.not.toThrow(/limited-pass/);

    const run = (env: Record<string, string>, role: string) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [cli, 'serve', '--role', role, '--port', '0'], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
        let stderr = '';
        child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        child.once('exit', (code) => resolve({ code, stderr }));
      });
    // Every distributed role connects the same way, and fails the same way.
    for (const role of ['worker', 'api']) {
      const unreachable = await run({ LOB_RTRL_NATS_URL: `nats://127.0.0.1:${closedPort}` }, role);
      expect(unreachable.code).toBe(2);
      expect(unreachable.stderr.trim().split('\n')).toHaveLength(1);
      expect(unreachable.stderr).toMatch(/NATS at nats:\/\/127\.0\.0\.1:\d+ unreachable/);
      const denied = await run({ LOB_RTRL_NATS_URL: `nats://limited:limited-pass@127.0.0.1:${nats.port}` }, role);
      expect(denied.code).toBe(2);
      expect(denied.stderr.trim().split('\n')).toHaveLength(1);
      expect(denied.stderr).toMatch(/JetStream not usable/);
      expect(denied.stderr).not.toMatch(/limited-pass/);
      const missing = await run({ LOB_RTRL_NATS_URL: '' }, role);
      expect(missing.code).toBe(2);
    }
  }, 90_000);

  it('an ingest role publishes a live feed to the log; killed and restarted, it loses no acknowledged message', async () => {
    const stand = await startFeedServer({ recording: join(root, 'fixtures/binance/spot_btcusdt_20240808.head3000.gz'), host: '127.0.0.1', port: 0, speed: 20, loop: true });
    const env = {
      LOB_RTRL_NATS_URL: `nats://full:full-pass@127.0.0.1:${nats.port}`,
      LOB_RTRL_NATS_PREFIX: 'ingest',
      LOB_RTRL_FEEDS: JSON.stringify([{ venue: 'binance', url: stand.wsUrl, restUrl: stand.url, symbols: ['BTCUSDT'] }]),
      LOB_RTRL_LOG_LEVEL: 'info',
    };
    const start = async () => {
      const child = spawn(process.execPath, [cli, 'serve', '--role', 'ingest', '--host', '127.0.0.1', '--port', '0'], {
        cwd: root,
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const ingest = new SpawnedService(child);
      ingest.url = String((await ingest.waitForLog((line) => line.msg === 'lob-rtrl ingest serving /healthz and /metrics', 'the ingest serving')).address);
      return ingest;
    };
    const published = async (ingest: SpawnedService) => {
      const text = await fetch(`${ingest.url}/metrics`).then((response) => response.text());
      return Number(/^lob_rtrl_bus_published_total\{venue="binance"\} (\d+)$/m.exec(text)?.[1] ?? 0);
    };
    const synced = async (ingest: SpawnedService) => {
      const health = (await fetch(`${ingest.url}/healthz`).then((response) => response.json())) as { feeds: { synced: boolean }[] };
      return health.feeds.every((feed) => feed.synced);
    };
    // Trades flow before the book is synced from its REST snapshot: on a loaded machine the first
    // hundreds of messages can all be trades, so the count starts once the book is synced.
    const waitPublished = async (ingest: SpawnedService, count: number) => {
      const deadline = Date.now() + 60_000;
      const waitUntil = async (done: () => Promise<boolean>, what: string) => {
        while (!(await done())) {
          if (Date.now() > deadline) throw new Error(what);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      };
      await waitUntil(() => synced(ingest), 'the book never synced');
      const atSync = await published(ingest);
      await waitUntil(async () => (await published(ingest)) >= atSync + count, `fewer than ${count} messages published after the book synced`);
      return published(ingest);
    };
    const logged = async () => (await bus.jsm.streams.info('INGEST_MD')).state.messages;
    try {
      const first = await start();
      const acknowledged = await waitPublished(first, 300);
      first.signal('SIGKILL');
      await first.exited;
      // Everything the killed ingest counted as published is in the log (perhaps a few more it sent before dying).
      const afterKill = await logged();
      expect(afterKill).toBeGreaterThanOrEqual(acknowledged);
      const second = await start();
      const more = await waitPublished(second, 100);
      second.signal('SIGTERM');
      expect((await second.exited).code).toBe(0);
      expect(await logged()).toBeGreaterThanOrEqual(afterKill + more);
      // The log holds what a worker can read: books and trades of BTCUSDT, every one valid.
      const consumer = await bus.js.consumers.get('INGEST_MD', { deliver_policy: DeliverPolicy.All });
      const kinds = new Map<string, number>();
      let read = 0;
      const total = await logged();
      while (read < total) {
        const batch = await consumer.fetch({ max_messages: 1000, expires: 1000 });
        for await (const message of batch) {
          read++;
          const decoded = decodeLogged(message.string(), 10);
          expect('message' in decoded, message.string().slice(0, 200)).toBe(true);
          if ('message' in decoded) kinds.set(decoded.message.type, (kinds.get(decoded.message.type) ?? 0) + 1);
        }
      }
      expect(kinds.get('book_snapshot')).toBeGreaterThan(0);
      expect(kinds.get('trade')).toBeGreaterThan(0);
    } finally {
      await stand.close();
    }
  }, 120_000);

  it('a running worker survives a NATS restart and loses nothing', async () => {
    const env = {
      LOB_RTRL_NATS_URL: `nats://full:full-pass@127.0.0.1:${nats.port}`,
      LOB_RTRL_NATS_PREFIX: 'restart',
      LOB_RTRL_NATS_PARTITIONS: '1',
      LOB_RTRL_NATS_LEASE_SECONDS: '2',
      LOB_RTRL_NATS_CHECKPOINT_EVERY_SECONDS: '1',
      LOB_RTRL_LEVELS: '5',
      LOB_RTRL_LOG_LEVEL: 'info',
    };
    const child = spawn(process.execPath, [cli, 'serve', '--role', 'worker', '--host', '127.0.0.1', '--port', '0'], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const worker = new SpawnedService(child);
    try {
      await worker.waitForLog((line) => line.msg === 'lob-rtrl worker serving /healthz and /metrics', 'the worker serving');
      const restartBus = await connectBus(busConfig({ natsUrl: env.LOB_RTRL_NATS_URL, natsPrefix: 'restart', natsPartitions: 1 }), { name: 'test' });
      const publisher = new MarketLogPublisher(restartBus);
      const book = (i: number): BookSnapshot => ({
        ...snapshot,
        symbol: 'ETHUSDT',
        seq: i,
        ts: snapshot.ts + i,
        localTs: snapshot.localTs + i,
        bids: Float64Array.of(2000 - (i % 3), 1),
        asks: Float64Array.of(2001 + (i % 2), 1),
      });
      for (let i = 0; i < 200; i++) await publisher.publish('binance', book(i));
      const predictions = async () => (await restartBus.jsm.streams.info(restartBus.names.predictionStream)).state.messages;
      for (const deadline = Date.now() + 30_000; (await predictions()) < 200;) {
        if (Date.now() > deadline) throw new Error('no predictions before the restart');
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      await restartBus.close();
      await nats.stop();
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await nats.restart();
      const after = await connectBus(busConfig({ natsUrl: env.LOB_RTRL_NATS_URL, natsPrefix: 'restart', natsPartitions: 1 }), { name: 'test' });
      const publisherAfter = new MarketLogPublisher(after);
      for (let i = 200; i < 400; i++) await publisherAfter.publish('binance', book(i));
      let count = 0;
      for (const deadline = Date.now() + 60_000; count < 400;) {
        if (Date.now() > deadline) throw new Error(`${count} of 400 predictions after the NATS restart`);
        await new Promise((resolve) => setTimeout(resolve, 250));
        count = (await after.jsm.streams.info(after.names.predictionStream)).state.messages;
      }
      // Exactly one prediction per snapshot, none lost and none twice.
      expect(count).toBe(400);
      const consumer = await after.js.consumers.get(after.names.predictionStream, { deliver_policy: DeliverPolicy.All });
      const sequences = new Set<number>();
      while (sequences.size < 400) {
        const batch = await consumer.fetch({ max_messages: 500, expires: 1000 });
        for await (const message of batch) sequences.add(message.json<{ seq: number }>().seq);
      }
      expect([...sequences].sort((a, b) => a - b)).toEqual(Array.from({ length: 400 }, (_, i) => i));
      await after.close();

      // The same stream through `lob-rtrl predictions`: each prediction once, in order.
      const printed = await new Promise<string>((resolve, reject) => {
        const reader = spawn(process.execPath, [cli, 'predictions', '--venue', 'binance', '--symbol', 'ETHUSDT', '--from', 'start', '--count', '400'], {
          cwd: root,
          env: { ...process.env, LOB_RTRL_NATS_URL: env.LOB_RTRL_NATS_URL, LOB_RTRL_NATS_PREFIX: 'restart' },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        reader.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
        reader.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
        reader.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`predictions exited ${code}: ${out}`))));
      });
      const lines = printed
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { seq: number; venue: string; models: unknown[] });
      expect(lines.map((line) => line.seq)).toEqual(Array.from({ length: 400 }, (_, i) => i));
      expect(lines.every((line) => line.venue === 'binance' && line.models.length === 5)).toBe(true);
    } finally {
      worker.signal('SIGKILL');
      await worker.exited;
    }
  }, 120_000);
});
