// End to end on the distributed roles: the dashboard served by `serve --role api` in headless
// Chromium (Debian's package; never a download), while a worker consumes real AMZN books
// (fixtures/canonical) published to the market-data log on a real nats-server at a steady
// pace. The page must find the stream nasdaq:AMZN, draw live predictions that reach it from the
// prediction stream through /v1/stream, show every model's accuracy from the workers'
// summaries, fetch nothing from another origin and raise no error. A screenshot is saved to
// test-artifacts/dashboard-api.png.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import pino from 'pino';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiRole, type ApiRole } from '../../src/bus/api-role.js';
import { connectBus, MarketLogPublisher, type BusConnection } from '../../src/bus/market-log.js';
import { PartitionWorker } from '../../src/bus/partition-worker.js';
import { engineConfigOf, loadServiceConfig } from '../../src/service/config.js';
import { parseCanonical } from '../../src/venues/canonical.js';
import { amznSnapshots } from '../setup/canonical-fixture.js';
import { openWatchedPage, type WatchedPage } from '../setup/chromium-page.js';
import { startNatsServer, type NatsServer } from '../../bench/nats-server.js';

const artifacts = join(import.meta.dirname, '../../test-artifacts');
const WAIT_MS = 45_000;
const silent = pino({ level: 'silent' });

let nats: NatsServer;
let bus: BusConnection;
let worker: PartitionWorker;
let api: ApiRole;
let watched: WatchedPage;
let page: Page;
let publishing: Promise<void> = Promise.resolve();
let stopPublishing = false;

beforeAll(async () => {
  nats = await startNatsServer();
  const config = loadServiceConfig({
    flags: { demoFeed: false, workers: 0, levels: 5, db: ':memory:', host: '127.0.0.1', port: 0 },
    env: { LOB_RTRL_NATS_URL: nats.url, LOB_RTRL_NATS_PREFIX: 'dash', LOB_RTRL_NATS_PARTITIONS: '1', LOB_RTRL_NATS_SUMMARY_SECONDS: '0.25' },
  });
  bus = await connectBus(config, { name: 'dashboard e2e' });
  worker = await PartitionWorker.start({ bus, engineConfig: engineConfigOf(config), logger: silent });
  api = await startApiRole({ config, logger: silent });

  // The recording at 40 books a second, as a live feed would arrive.
  const snapshots = amznSnapshots().map((line) => {
    const parsed = parseCanonical(line, 5, line.ts);
    if (parsed.type !== 'book_snapshot') throw new Error(`fixture line ${line.seq} rejected`);
    return parsed;
  });
  const publisher = new MarketLogPublisher(bus);
  publishing = (async () => {
    for (const snapshot of snapshots) {
      if (stopPublishing) return;
      await publisher.publish('nasdaq', snapshot);
      await delay(25);
    }
  })();

  watched = await openWatchedPage(api.address, WAIT_MS);
  page = watched.page;
}, 120_000);

afterAll(async () => {
  stopPublishing = true;
  await publishing.catch(() => undefined);
  await watched?.browser.close();
  await api?.close();
  await worker?.close();
  await bus?.close();
  await nats?.dispose();
});

function waitInPage(condition: string): Promise<void> {
  return watched.waitInPage(condition);
}

describe('the dashboard of the api role, in Chromium', () => {
  it('draws the live predictions and scores of a stream a worker runs', async () => {
    await waitInPage(`document.getElementById('symbol-name').textContent === 'nasdaq:AMZN'`);
    const before = Number(await page.getAttribute('#prob-chart', 'data-points'));
    await waitInPage(`Number(document.getElementById('prob-chart').dataset.points) >= 30`);
    // Predictions keep arriving over the api's /v1/stream while the worker learns.
    await waitInPage(`Number(document.getElementById('prob-chart').dataset.points) > ${Math.max(before, 30)}`);
    await waitInPage(`document.querySelectorAll('.accuracy-row[data-accuracy]:not([data-accuracy=""])').length === 5`);
    expect(await page.getAttribute('#connection', 'data-state')).toBe('live');
    await waitInPage(`document.getElementById('feeds').textContent.includes('served from NATS')`);
    expect([...watched.requestedPaths]).toEqual(expect.arrayContaining(['/v1/status', '/v1/streams/nasdaq/AMZN/predictions', '/v1/streams/nasdaq/AMZN/metrics']));

    // The mid shown is an AMZN price of that day.
    const mid = Number((await page.textContent('#mid'))!.replace(/,/g, ''));
    expect(mid).toBeGreaterThan(200);
    expect(mid).toBeLessThan(250);
    const accuracy = await page.evaluate(`[...document.querySelectorAll('.accuracy-row')].map((row) => ({ model: row.dataset.model, accuracy: Number(row.dataset.accuracy) }))`);
    expect((accuracy as Array<{ model: string }>).map((row) => row.model)).toEqual(['rtrl', 'tbptt:10', 'logistic', 'majority', 'mix']);
    for (const row of accuracy as Array<{ model: string; accuracy: number }>) {
      expect(row.accuracy, row.model).toBeGreaterThanOrEqual(0);
      expect(row.accuracy, row.model).toBeLessThanOrEqual(1);
    }
    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: join(artifacts, 'dashboard-api.png'), fullPage: true });
    expect(watched.pageErrors).toEqual([]);
    expect(watched.foreignRequests).toEqual([]);
  }, 90_000);
});
