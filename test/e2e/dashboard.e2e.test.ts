// End to end: the service in-process as `serve` builds it, on its built-in default feed (the
// demo feed serve hands it: the Binance stand-in over fixtures/binance, no network; default
// configuration except port 0 and a temporary database), and the dashboard at `/` in headless
// Chromium (Debian's package, driven by playwright-core; no browser is ever downloaded). The page
// must show the stream binance:BTCUSDT, render live predictions from /v1/stream, draw
// both charts with points, show every model's accuracy, latency and feed status, fetch nothing
// from another origin, and come back by itself after the server drops its WebSocket.
//
// Waits are on DOM conditions, never on how fast the machine is. A screenshot is saved to
// test-artifacts/dashboard.png (gitignored; CI keeps it as an artifact).
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoFeed } from '../../src/cli/demo-feed.js';
import { buildApp } from '../../src/http/app.js';
import { loadServiceConfig } from '../../src/service/config.js';
import { openWatchedPage, type WatchedPage } from '../setup/chromium-page.js';

const root = join(import.meta.dirname, '../..');
const artifacts = join(root, 'test-artifacts');
const quiet = { info() {}, warn() {}, error() {}, debug() {} };
/** Generous: the demo feed plays the recording at its real pace on a shared machine. */
const WAIT_MS = 45_000;

let app: FastifyInstance;
let watched: WatchedPage;
let page: Page;
let origin = '';
let pageErrors: string[] = [];
let foreignRequests: string[] = [];
let requestedPaths = new Set<string>();

beforeAll(async () => {
  const db = join(mkdtempSync(join(tmpdir(), 'lob-rtrl-dashboard-e2e-')), 'db.sqlite');
  // As serve does: the app owns the service and, with no feed configured, connects the demo feed when ready.
  app = await buildApp({ config: loadServiceConfig({ env: {}, flags: { port: 0, db, workers: 1 } }), logger: false, serviceLogger: quiet, demoFeed: startDemoFeed });
  origin = await app.listen({ host: '127.0.0.1', port: 0 });

  watched = await openWatchedPage(origin, WAIT_MS);
  ({ page, pageErrors, foreignRequests, requestedPaths } = watched);
});

afterAll(async () => {
  await watched?.browser.close();
  await app?.close();
});

// Page-side code is passed as strings: the project's type check has no DOM library.
async function inPage<T>(expression: string): Promise<T> {
  return (await page.evaluate(expression)) as T;
}

function waitInPage(condition: string): Promise<void> {
  return watched.waitInPage(condition);
}

async function pointsOf(chart: string): Promise<number> {
  return Number(await page.getAttribute(chart, 'data-points'));
}

describe('the dashboard in Chromium', () => {
  it('renders live predictions: the stream, both charts with points, every model accuracy, latency and the feed', async () => {
    await waitInPage(`document.getElementById('symbol-name').textContent === 'binance:BTCUSDT'`);
    await waitInPage(`Number(document.getElementById('prob-chart').dataset.points) >= 30`);
    await waitInPage(`document.querySelectorAll('.accuracy-row[data-accuracy]:not([data-accuracy=""])').length === 5`);
    await waitInPage(`document.querySelector('.feed[data-connected="true"]') !== null`);
    await waitInPage(`/\\d/.test(document.getElementById('resolved').textContent)`);

    expect(await page.textContent('#symbol-name')).toBe('binance:BTCUSDT');
    // The stream's history and metrics come from its venue-qualified path.
    expect([...requestedPaths]).toEqual(expect.arrayContaining(['/v1/streams/binance/BTCUSDT/predictions', '/v1/streams/binance/BTCUSDT/metrics']));
    expect(await page.getAttribute('#connection', 'data-state')).toBe('live');

    // Both charts hold the same window, drawn by uPlot on a sized canvas.
    const midPoints = await pointsOf('#mid-chart');
    expect(midPoints).toBeGreaterThanOrEqual(30);
    expect(await pointsOf('#prob-chart')).toBeGreaterThanOrEqual(midPoints);
    for (const chart of ['#mid-chart', '#prob-chart']) {
      const size = await inPage<{ width: number; height: number }>(`(({ width, height }) => ({ width, height }))(document.querySelector('${chart} canvas'))`);
      expect(size.width, chart).toBeGreaterThan(300);
      expect(size.height, chart).toBeGreaterThan(100);
    }
    const legend = await inPage<string[]>(`[...document.querySelectorAll('#prob-chart .u-legend .u-series th')].map((cell) => cell.textContent.trim())`);
    expect(legend).toEqual(expect.arrayContaining(['rtrl', 'tbptt:10', 'logistic', 'majority', 'right', 'wrong']));

    // The mid shown is a BTCUSDT price from the recording, within its range that day.
    const mid = Number((await page.textContent('#mid'))!.replace(/,/g, ''));
    expect(mid).toBeGreaterThan(50_000);
    expect(mid).toBeLessThan(70_000);

    // Every model's rolling accuracy is a probability, shown as a percentage.
    const accuracy = await inPage<Array<{ model: string; accuracy: number; shown: string }>>(
      `[...document.querySelectorAll('.accuracy-row')].map((row) => ({ model: row.dataset.model, accuracy: Number(row.dataset.accuracy), shown: row.querySelector('.accuracy-value').textContent }))`,
    );
    expect(accuracy.map((row) => row.model)).toEqual(['rtrl', 'tbptt:10', 'logistic', 'majority', 'mix']);
    // The mix's weight on each other model is shown in that model's row.
    const notes = await inPage<string[]>(`[...document.querySelectorAll('.accuracy-row .accuracy-note')].map((note) => note.textContent)`);
    for (const note of notes.slice(0, 4)) expect(note).toMatch(/mix weight \d\.\d{3}$/);
    expect(notes[4]).not.toMatch(/mix weight/);
    for (const row of accuracy) {
      expect(row.accuracy, row.model).toBeGreaterThanOrEqual(0);
      expect(row.accuracy, row.model).toBeLessThanOrEqual(1);
      expect(row.shown, row.model).toBe(`${(row.accuracy * 100).toFixed(1)}%`);
    }
    // Step latency: two positive figures in microseconds.
    expect(await page.textContent('#latency')).toMatch(/^[\d,]+(\.\d)? \/ [\d,]+(\.\d)?$/);
    expect(await page.textContent('.feed .feed-name')).toContain('binance (demo) · connected');

    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: join(artifacts, 'dashboard.png'), fullPage: true });

    expect(pageErrors).toEqual([]);
    expect(foreignRequests).toEqual([]);
  });

  it('reconnects by itself when the server drops the stream, says so, and keeps drawing', async () => {
    const before = await pointsOf('#prob-chart');
    for (const client of app.websocketServer.clients) client.terminate();
    await waitInPage(`document.getElementById('connection').textContent === 'live · reconnected ×1'`);
    await waitInPage(`Number(document.getElementById('prob-chart').dataset.points) > ${before}`);
    expect(await page.getAttribute('#connection', 'data-state')).toBe('live');
    expect(pageErrors).toEqual([]);
  });
});
