// Faults that used to lose state quietly or leak secrets: a full disk at shutdown, a checkpoint
// that verifies but does not decode, credentials in a feed URL. The shutdown cases run a real
// `lob-rtrl serve` (signals and exit codes are the point); the others the runtime in-process.
import Database from 'better-sqlite3';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/http/app.js';
import { decodeState, encodeState, packChunks, unpackChunks } from '../../src/model/state-codec.js';
import { CheckpointRepository, type CheckpointMeta } from '../../src/store/checkpoints.js';
import { loadServiceConfig } from '../../src/service/config.js';
import { ServiceRuntime, type RuntimeLogger } from '../../src/service/runtime.js';
import { ensureBuilt, startService, type SpawnedService } from './spawned-service.js';

const lines = readFileSync(join(import.meta.dirname, '../../fixtures/canonical/amzn-2012-06-21-first300.jsonl'), 'utf8')
  .trim()
  .split('\n');
const snapshot = (i: number): Record<string, unknown> => JSON.parse(lines[i]) as Record<string, unknown>;

let workDir: string;
const running = new Set<SpawnedService>();

beforeAll(async () => {
  workDir = mkdtempSync(join(tmpdir(), 'lob-rtrl-faults-'));
  await ensureBuilt();
});

afterAll(() => {
  for (const service of running) service.signal('SIGKILL');
  rmSync(workDir, { recursive: true, force: true });
});

async function serve(env: Record<string, string>): Promise<SpawnedService> {
  const service = await startService({ LOB_RTRL_DEMO_FEED: 'false', LOB_RTRL_LEVELS: '5', ...env });
  running.add(service);
  void service.exited.then(() => running.delete(service));
  return service;
}

async function readyChecks(service: SpawnedService): Promise<Record<string, unknown>> {
  const response = await fetch(`${service.url}/readyz`);
  return ((await response.json()) as { checks: Record<string, unknown> }).checks;
}

describe('shutdown on a full disk', () => {
  it('reports the database down, retries the shutdown checkpoint, says loudly what is lost and exits non-zero', async () => {
    // 64 KiB holds the schema but not one checkpoint: every write fails as on a full disk.
    const service = await serve({ LOB_RTRL_DB: join(workDir, 'full.sqlite'), LOB_RTRL_DB_MAX_BYTES: String(64 * 1024) });
    for (let i = 0; i < 50; i++) expect((await service.post('/v1/snapshots', snapshot(i))).status).toBe(200);
    const manual = await service.post('/v1/symbols/AMZN/checkpoints');
    expect(manual).toEqual({
      status: 503,
      json: { error: 'Service Unavailable', message: expect.stringMatching(/checkpoint of push:AMZN not written: database or disk is full/), store: 'full' },
    });
    expect(await readyChecks(service)).toMatchObject({ database: false, reason: expect.stringMatching(/^database: full: /) });

    service.signal('SIGTERM');
    expect(await service.exited).toEqual({ code: 1, signal: null });
    expect(service.logs.filter((line) => line.msg === 'shutdown checkpoints failed').map((line) => line.attempt)).toEqual([1, 2, 3]);
    const fatal = service.logs.find((line) => typeof line.msg === 'string' && line.msg.startsWith('shutdown failed'));
    expect(fatal).toMatchObject({ level: 60, lost: [{ symbol: 'push:AMZN', ticksSinceCheckpoint: 50, error: expect.stringContaining('full') }] });
    expect(service.logs.some((line) => line.msg === 'stopped cleanly')).toBe(false);
  }, 60_000);

  it('makes room by dropping older checkpoints when the disk fills, and saves every tick', async () => {
    const db = join(workDir, 'filling.sqlite');
    const service = await serve({ LOB_RTRL_DB: db, LOB_RTRL_DB_MAX_BYTES: String(1024 * 1024), LOB_RTRL_CHECKPOINT_KEEP: '1000', LOB_RTRL_CHECKPOINT_EVERY_TICKS: '5' });
    let ticks = 0;
    // Tick-driven checkpoints pile up until the file is full.
    while ((await readyChecks(service)).database === true && ticks < 300) {
      expect((await service.post('/v1/snapshots', snapshot(ticks))).status).toBe(200);
      ticks++;
    }
    expect((await readyChecks(service)).database).toBe(false);
    for (let i = 0; i < 3; i++) expect((await service.post('/v1/snapshots', snapshot(ticks++))).status).toBe(200);

    service.signal('SIGTERM');
    expect(await service.exited).toEqual({ code: 0, signal: null });
    const reopened = new Database(db, { readonly: true });
    try {
      const newest = new CheckpointRepository(reopened).list('push:AMZN')[0] as CheckpointMeta;
      expect(newest).toMatchObject({ tickCount: ticks, reason: 'shutdown' });
    } finally {
      reopened.close();
    }
  }, 60_000);
});

const quiet: RuntimeLogger = { info() {}, warn() {}, error() {}, debug() {} };

function capturingLogger(): { logger: RuntimeLogger; lines: Array<{ level: string; fields: object; message: string }> } {
  const lines: Array<{ level: string; fields: object; message: string }> = [];
  const at = (level: string) => (fields: object, message: string) => lines.push({ level, fields, message });
  return { logger: { info: at('info'), warn: at('warn'), error: at('error'), debug: at('debug') }, lines };
}

describe('restore', () => {
  it('skips a newest checkpoint that verifies but does not decode, naming it, and resumes from the next older one', async () => {
    const db = join(workDir, 'fallback.sqlite');
    const config = loadServiceConfig({ flags: { db, demoFeed: false, workers: 1, levels: 5, hidden: 8, models: 'rtrl,logistic,majority' } });
    const first = new ServiceRuntime(config, quiet);
    for (let i = 0; i < 30; i++) first.ingest(snapshot(i));
    const good = (await first.checkpoint('push:AMZN', 'manual'))!;
    const expected = first.engine.symbol('push:AMZN')!;
    const expectedState = { ticks: expected.ticks, labels: expected.learners.learners.map((l) => l.stats.labels), scored: expected.metrics.map((m) => m.count) };
    // Learners decode, the metrics do not: the half-applied state of old.
    const [header, ...learnerChunks] = unpackChunks(expected.getState());
    const decoded = decodeState(header, 'symbol-engine');
    const broken = packChunks([encodeState({ ...decoded, meta: { ...decoded.meta, metrics: [{ version: 2, classes: 'two' }] } }), ...learnerChunks]);
    const bad = first.checkpoints.repository.save({ symbol: 'push:AMZN', tickCount: 31, configHash: first.configHash, payload: broken, reason: 'manual', now: Date.now() });
    first.ingest(snapshot(30));
    // Stop without the shutdown checkpoint, as after kill -9: the broken one stays the newest.
    first.checkpoints.close();

    const { logger, lines: logged } = capturingLogger();
    const second = new ServiceRuntime(config, logger);
    await second.start();
    await second.whenRestored();
    // Restored asleep (hibernation is on by default); looking at its engine wakes it, through the same fallback.
    const restored = second.symbolEngine('push:AMZN')!;
    expect({ ticks: restored.ticks, labels: restored.learners.learners.map((l) => l.stats.labels), scored: restored.metrics.map((m) => m.count) }).toEqual(expectedState);
    expect(logged).toContainEqual(expect.objectContaining({ level: 'warn', fields: expect.objectContaining({ checkpoint: bad.id, reason: 'does_not_decode' }) }));
    expect(logged).toContainEqual(expect.objectContaining({ message: 'resumed from checkpoint', fields: expect.objectContaining({ checkpoint: good.id }) }));
    // The restore route refuses the broken one whole and leaves the running state alone.
    await expect(second.restore('push:AMZN', bad.id)).rejects.toThrow(/does not decode .*the symbol's state is unchanged/);
    expect(second.engine.symbol('push:AMZN')!.ticks).toBe(expectedState.ticks);
    await second.stop();
  });
});

describe('corruption found at run time', () => {
  it('marks the database not ready, for good, when SQLite reports corruption while restoring; the symbol runs fresh', async () => {
    const db = join(workDir, 'corrupt.sqlite');
    const config = loadServiceConfig({ flags: { db, demoFeed: false, workers: 1, levels: 5, hidden: 8, models: 'rtrl,logistic,majority' } });
    const first = new ServiceRuntime(config, quiet);
    for (let i = 0; i < 20; i++) first.ingest(snapshot(i));
    for (let k = 0; k < 3; k++) first.checkpoint('push:AMZN', 'manual');
    await first.stop();
    // Garbage over every page past the schema's: the checkpoint b-tree and its overflow pages.
    const bytes = readFileSync(db);
    const pageSize = bytes.readUInt16BE(16);
    for (let offset = 4 * pageSize; offset < bytes.length; offset += pageSize) bytes.fill(0xa5, offset, offset + pageSize);
    writeFileSync(db, bytes);

    const { logger, lines: logged } = capturingLogger();
    const second = new ServiceRuntime(config, logger);
    await second.start();
    await second.whenRestored();
    expect(second.engine.symbol('push:AMZN')?.ticks).toBe(0);
    expect(second.storeHealth).toMatchObject({ corrupt: true, writable: false, lastFailure: { kind: 'corrupt' } });
    expect(second.readiness()).toMatchObject({ database: false, reason: expect.stringMatching(/^database: corrupt: /) });
    expect(logged).toContainEqual(expect.objectContaining({ level: 'error', message: 'checkpoints could not be read; the symbol starts fresh' }));
    second.ingest(snapshot(0));
    expect(second.engine.symbol('push:AMZN')?.ticks).toBe(1);
    await expect(second.stop()).rejects.toThrow(/shutdown checkpoints failed/);
  });
});

describe('credentials in feed URLs', () => {
  it('never shows userinfo or an API key in /v1/status or the logs, token set or not', async () => {
    const { logger, lines: logged } = capturingLogger();
    const config = loadServiceConfig({
      flags: {
        db: join(workDir, 'secrets.sqlite'),
        token: 'a-test-token-of-32-characters-xx',
        feeds: [{ venue: 'binance', url: 'ws://alice:hunter2@127.0.0.1:1/stream?apiKey=SECRETKEY', restUrl: 'http://bob:pa55@127.0.0.1:1/?token=TOKENX', symbols: ['BTCUSDT'] }],
      },
    });
    const runtime = new ServiceRuntime(config, logger);
    const app = await buildApp({ runtime, logger: false });
    await runtime.start();
    const deadline = Date.now() + 10_000;
    while (runtime.feeds[0].feed.stats.lastError === null && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    const status = (await app.inject({ url: '/v1/status' })).body;
    expect(JSON.parse(status).feeds[0].lastError).toMatch(/REDACTED/);
    const everything = `${status}\n${JSON.stringify(logged)}`;
    for (const secret of ['hunter2', 'SECRETKEY', 'pa55', 'TOKENX', 'alice', 'bob:']) expect(everything).not.toContain(secret);
    await app.close();
    await runtime.stop();
  });
});
