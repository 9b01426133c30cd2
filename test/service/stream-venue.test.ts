// Streams are keyed by venue plus symbol: the same symbol pushed under two venues (or pushed
// beside a live feed) trains two learners that never see each other's books, in the engine, on
// worker threads, in checkpoints, over REST, on the WebSocket stream and in /metrics; and a
// database written before streams had venues resumes where it stopped.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { inStream, reachedBy, splitStreamId, streamIdOf } from '../../src/domain/stream.js';
import { defaultEngineConfig } from '../../src/engine/config.js';
import { Engine } from '../../src/engine/engine.js';
import { buildApp } from '../../src/http/app.js';
import { loadServiceConfig } from '../../src/service/config.js';
import { ServiceRuntime } from '../../src/service/runtime.js';
import { CheckpointRepository } from '../../src/store/checkpoints.js';
import { openDatabase } from '../../src/store/database.js';
import { defaultMigrationsDir } from '../../src/store/migrations.js';
import { parseCanonical } from '../../src/venues/canonical.js';
import { amznSnapshots } from '../setup/canonical-fixture.js';

const lines = amznSnapshots();
// Two different books under one symbol: the first 150 snapshots and the last 150 (re-sequenced).
const first = lines.slice(0, 150).map((line, i) => ({ ...line, symbol: 'BTCUSDT', seq: i + 1 }));
const second = lines.slice(150).map((line, i) => ({ ...line, symbol: 'BTCUSDT', seq: i + 1, ts: first[i].ts }));

const quiet = { info() {}, warn() {}, error() {}, debug() {} };
const folders: string[] = [];
const services: Array<{ runtime: ServiceRuntime; app: FastifyInstance | null }> = [];

function folder(): string {
  const path = mkdtempSync(join(tmpdir(), 'lob-rtrl-venue-'));
  folders.push(path);
  return path;
}

async function service(db: string, flags: Record<string, unknown> = {}, withApp = false) {
  const config = loadServiceConfig({ flags: { db, demoFeed: false, workers: 1, levels: 5, hidden: 8, ...flags } });
  const runtime = new ServiceRuntime(config, quiet);
  const app = withApp ? await buildApp({ runtime, logger: false }) : null;
  const created = { runtime, app };
  services.push(created);
  await runtime.start();
  return created;
}

async function stop(target: { runtime: ServiceRuntime; app: FastifyInstance | null }): Promise<void> {
  services.splice(services.indexOf(target), 1);
  await target.app?.close();
  await target.runtime.stop();
}

afterEach(async () => {
  for (const target of [...services]) await stop(target);
  for (const path of folders.splice(0)) rmSync(path, { recursive: true, force: true });
});

/** Every model's probabilities of each prediction of `stream`, in order. */
function probabilitiesOf(runtime: ServiceRuntime, stream: string): number[][] {
  return runtime.rings
    .get(stream)!
    .recent(undefined, 10_000)
    .map((prediction) => prediction.models.flatMap((model) => [...model.probs]));
}

describe('stream ids', () => {
  it('split at the first colon, whatever the symbol holds; a name without a venue has venue ""', () => {
    expect(splitStreamId(streamIdOf('binance-usdm', 'BTCUSDT'))).toEqual({ venue: 'binance-usdm', symbol: 'BTCUSDT' });
    expect(splitStreamId('kraken:XBT/USD:PERP')).toEqual({ venue: 'kraken', symbol: 'XBT/USD:PERP' });
    expect(splitStreamId('BTCUSDT')).toEqual({ venue: '', symbol: 'BTCUSDT' });
  });

  it('a disconnect of every symbol of a venue reaches only that venue’s streams', () => {
    const disconnect = inStream('okx', { type: 'disconnect', symbol: null, localTs: 0, reason: 'dropped' });
    expect(disconnect.type === 'disconnect' && reachedBy(disconnect, 'okx:BTC-USDT')).toBe(true);
    expect(disconnect.type === 'disconnect' && reachedBy(disconnect, 'okx-futures:BTC-USDT')).toBe(false);
    expect(disconnect.type === 'disconnect' && reachedBy(disconnect, 'binance:BTC-USDT')).toBe(false);
  });

  it('the engine resets only the disconnected venue’s stream of a shared symbol', () => {
    const engine = new Engine({ ...defaultEngineConfig, levels: 5, learner: { ...defaultEngineConfig.learner, hidden: 4 } });
    for (const line of first.slice(0, 20)) {
      const parsed = parseCanonical(line, 5);
      if (parsed.type !== 'book_snapshot') throw new Error(`fixture line: ${parsed.type}`);
      engine.process(inStream('a', parsed));
      engine.process(inStream('b', parsed));
    }
    engine.process(inStream('a', { type: 'disconnect', symbol: null, localTs: 0, reason: 'dropped' }));
    expect(engine.symbol('a:BTCUSDT')!.disconnects).toBe(1);
    expect(engine.symbol('b:BTCUSDT')!.disconnects).toBe(0);
  });
});

describe.each([1, 2])('two venues carrying one symbol (%i thread(s))', (workers) => {
  it('train two learners, each exactly as if it were alone, and checkpoint and restore apart', async () => {
    const both = await service(join(folder(), 'db.sqlite'), { workers });
    const alone = await service(join(folder(), 'db.sqlite'), { workers });
    for (let i = 0; i < first.length; i++) {
      expect(both.runtime.ingest(first[i], 'venue-a').accepted).toEqual([{ stream: 'venue-a:BTCUSDT', venue: 'venue-a', symbol: 'BTCUSDT', seq: i + 1 }]);
      // The same seqs and timestamps under the other venue: its own ordering, never "out of order".
      expect(both.runtime.ingest(second[i], 'venue-b').rejected).toEqual([]);
      alone.runtime.ingest(first[i], 'venue-a');
    }
    await both.runtime.settled();
    await alone.runtime.settled();
    expect(
      both.runtime
        .symbolViews()
        .map((view) => [view.symbol, view.ticks])
        .sort(),
    ).toEqual([
      ['venue-a:BTCUSDT', 150],
      ['venue-b:BTCUSDT', 150],
    ]);
    const mixed = probabilitiesOf(both.runtime, 'venue-a:BTCUSDT');
    expect(mixed).toEqual(probabilitiesOf(alone.runtime, 'venue-a:BTCUSDT'));
    expect(probabilitiesOf(both.runtime, 'venue-b:BTCUSDT')).not.toEqual(mixed);

    // Stopped (the shutdown checkpoints), then restarted on the same database: both resume.
    const db = both.runtime.config.db;
    await stop(both);
    const restarted = await service(db, { workers });
    await restarted.runtime.whenRestored();
    const repository = restarted.runtime.checkpoints.repository;
    expect(repository.listStreams()).toEqual(['venue-a:BTCUSDT', 'venue-b:BTCUSDT']);
    expect(repository.list('venue-a:BTCUSDT')[0]).toMatchObject({ venue: 'venue-a', symbol: 'BTCUSDT', tickCount: 150 });
    expect(restarted.runtime.symbolView('venue-b:BTCUSDT')!.ticks).toBe(150);
  });
});

describe('the API over two venues of one symbol', () => {
  it('REST names a stream by venue and symbol; a bare symbol works while one venue carries it, else 409 lists them', async () => {
    const { app, runtime } = await service(join(folder(), 'db.sqlite'), {}, true);
    const api = app!;
    for (const line of first.slice(0, 40)) runtime.ingest(line, 'venue-a');
    const alone = await api.inject({ url: '/v1/symbols/BTCUSDT/prediction' });
    expect(alone.statusCode).toBe(200);
    expect(alone.json()).toMatchObject({ stream: 'venue-a:BTCUSDT', venue: 'venue-a', symbol: 'BTCUSDT', seq: 40 });

    // POST with ?venue= puts the books in that venue's stream.
    const pushed = await api.inject({ method: 'POST', url: '/v1/snapshots?venue=venue-b', payload: second.slice(0, 30) });
    expect(pushed.statusCode).toBe(200);
    expect(pushed.json().accepted[0]).toEqual({ stream: 'venue-b:BTCUSDT', venue: 'venue-b', symbol: 'BTCUSDT', seq: 1 });
    const badVenue = await api.inject({ method: 'POST', url: '/v1/snapshots?venue=Not%20A%20Venue', payload: second[0] });
    expect(badVenue.statusCode).toBe(400);
    expect(JSON.stringify(badVenue.json())).toContain('venue');

    const ambiguous = await api.inject({ url: '/v1/symbols/BTCUSDT/prediction' });
    expect(ambiguous.statusCode).toBe(409);
    expect(ambiguous.json().message).toContain('venue-a:BTCUSDT, venue-b:BTCUSDT');
    const exact = await api.inject({ url: '/v1/streams/venue-b/BTCUSDT/prediction' });
    expect(exact.statusCode).toBe(200);
    expect(exact.json()).toMatchObject({ stream: 'venue-b:BTCUSDT', venue: 'venue-b', seq: 30 });
    expect((await api.inject({ url: '/v1/streams/venue-c/BTCUSDT/prediction' })).statusCode).toBe(404);
    // A stream id is a name too.
    expect((await api.inject({ url: '/v1/symbols/venue-a:BTCUSDT/metrics' })).json()).toMatchObject({ stream: 'venue-a:BTCUSDT', ticks: 40 });

    const listed = (await api.inject({ url: '/v1/symbols' })).json();
    expect(listed.symbols.map((s: { stream: string; venue: string; symbol: string; ticks: number }) => [s.stream, s.venue, s.symbol, s.ticks])).toEqual([
      ['venue-a:BTCUSDT', 'venue-a', 'BTCUSDT', 40],
      ['venue-b:BTCUSDT', 'venue-b', 'BTCUSDT', 30],
    ]);
    const written = await api.inject({ method: 'POST', url: '/v1/streams/venue-b/BTCUSDT/checkpoints' });
    expect(written.statusCode).toBe(201);
    expect(written.json()).toMatchObject({ venue: 'venue-b', symbol: 'BTCUSDT', tickCount: 30 });
    expect((await api.inject({ url: '/v1/streams/venue-b/BTCUSDT/checkpoints' })).json().checkpoints).toHaveLength(1);
    expect((await api.inject({ url: '/v1/streams/venue-a/BTCUSDT/checkpoints' })).json().checkpoints).toHaveLength(0);

    const metrics = (await api.inject({ url: '/metrics' })).body;
    expect(metrics).toContain('lob_rtrl_ticks_lifetime{venue="venue-a",symbol="BTCUSDT"} 40');
    expect(metrics).toContain('lob_rtrl_ticks_lifetime{venue="venue-b",symbol="BTCUSDT"} 30');
  });

  it('the WebSocket stream sends a subscribed stream id that venue’s predictions only, and a subscribed symbol every venue’s', async () => {
    const { app, runtime } = await service(join(folder(), 'db.sqlite'), {}, true);
    const api = app!;
    const address = await api.listen({ port: 0, host: '127.0.0.1' });
    const subscribe = async (names: string[]) => {
      const socket = new WebSocket(`${address.replace('http', 'ws')}/v1/stream`);
      const received: Array<{ stream: string; venue: string; symbol: string }> = [];
      socket.on('message', (data) => {
        const message = JSON.parse(String(data)) as { type: string; stream: string; venue: string; symbol: string };
        if (message.type === 'prediction') received.push({ stream: message.stream, venue: message.venue, symbol: message.symbol });
      });
      await new Promise((resolve) => socket.once('open', resolve));
      const confirmed = new Promise((resolve) => socket.once('message', resolve));
      socket.send(JSON.stringify({ subscribe: names }));
      await confirmed;
      return { socket, received };
    };
    const onlyB = await subscribe(['venue-b:BTCUSDT']);
    const every = await subscribe(['BTCUSDT']);
    for (let i = 0; i < 5; i++) {
      runtime.ingest(first[i], 'venue-a');
      runtime.ingest(second[i], 'venue-b');
    }
    await expect.poll(() => every.received.length).toBe(10);
    await expect.poll(() => onlyB.received.length).toBe(5);
    expect(new Set(onlyB.received.map((p) => p.stream))).toEqual(new Set(['venue-b:BTCUSDT']));
    expect(onlyB.received[0]).toEqual({ stream: 'venue-b:BTCUSDT', venue: 'venue-b', symbol: 'BTCUSDT' });
    expect(new Set(every.received.map((p) => p.stream))).toEqual(new Set(['venue-a:BTCUSDT', 'venue-b:BTCUSDT']));
    onlyB.socket.close();
    every.socket.close();
  });
});

describe('a database written before streams had venues', () => {
  it('migrates, keeps its checkpoints, and the first stream of their symbol resumes from them', async () => {
    const work = folder();
    const db = join(work, 'db.sqlite');
    // The schema as it was: the first migration only, and a checkpoint of BTCUSDT saved there.
    const oldMigrations = join(work, 'migrations');
    mkdirSync(oldMigrations);
    copyFileSync(join(defaultMigrationsDir(), '001_initial.sql'), join(oldMigrations, '001_initial.sql'));
    const before = await service(db);
    for (const line of first) before.runtime.ingest(line, 'binance');
    const state = before.runtime.symbolEngine('binance:BTCUSDT')!.getState();
    const configHash = before.runtime.configHash;
    await stop(before);
    rmSync(db);
    const old = openDatabase(db, { migrationsDir: oldMigrations });
    old
      .prepare(
        `INSERT INTO checkpoints (symbol, created_at, tick_count, config_hash, checksum, payload, size_bytes, reason)
         VALUES ('BTCUSDT', 1, 150, ?, ?, ?, ?, 'shutdown')`,
      )
      .run(configHash, (await import('../../src/store/checkpoints.js')).checksumOf(state), Buffer.from(state), state.byteLength);
    old.close();

    const upgraded = openDatabase(db);
    const repository = new CheckpointRepository(upgraded);
    expect(repository.list('BTCUSDT')).toMatchObject([{ venue: '', symbol: 'BTCUSDT', tickCount: 150 }]);
    // Not a stream to restore on its own: it waits for a stream of its symbol.
    expect(repository.listStreams()).toEqual([]);
    upgraded.close();

    const after = await service(db);
    // The snapshot after the 150 it learned: in order for the resumed stream.
    const next = { ...lines[150], symbol: 'BTCUSDT', seq: 151 };
    expect(after.runtime.ingest(next, 'binance').rejected).toEqual([]);
    expect(after.runtime.symbolView('binance:BTCUSDT')!.ticks).toBe(151);
    const claimed = after.runtime.checkpoints.repository;
    expect(claimed.list('binance:BTCUSDT')).toMatchObject([{ venue: 'binance', symbol: 'BTCUSDT', tickCount: 150 }]);
    expect(claimed.list('BTCUSDT')).toEqual([]);
    // A second venue of the symbol finds the old checkpoint taken and starts fresh.
    after.runtime.ingest(next, 'okx');
    expect(after.runtime.symbolView('okx:BTCUSDT')!.ticks).toBe(1);
  });
});
