// The service with its symbols on worker threads behaves as with one thread: the same
// predictions (bit for bit) in the ring, the REST answers, the stream and the metrics; its
// checkpoints are taken from the workers and restored into them; a dead worker is reported,
// not fatal. Input: the interleaved AMZN/AAPL excerpt (fixtures/canonical), pushed by POST.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/http/app.js';
import { loadServiceConfig } from '../../src/service/config.js';
import { ServiceRuntime, type RuntimeLogger } from '../../src/service/runtime.js';
import { get, push } from './inject.js';

const fixture = join(import.meta.dirname, '../../fixtures/canonical/amzn-aapl-2012-06-21-interleaved.jsonl');
const lines: unknown[] = readFileSync(fixture, 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((line) => JSON.parse(line));
const quiet: RuntimeLogger = { info() {}, warn() {}, error() {}, debug() {} };

const RECEIVED_AT = Date.UTC(2026, 0, 2);

interface Service {
  readonly runtime: ServiceRuntime;
  readonly app: FastifyInstance;
  readonly streamed: string[];
}
const running: Service[] = [];

afterEach(async () => {
  for (const service of running.splice(0)) {
    await service.app.close();
    await service.runtime.stop().catch(() => {});
  }
});

async function service(workers: number, db = join(mkdtempSync(join(tmpdir(), 'lob-rtrl-workers-')), 'db.sqlite'), logger = quiet): Promise<Service> {
  const config = loadServiceConfig({ flags: { db, demoFeed: false, levels: 5, hidden: 8, workers, checkpointEveryTicks: 150 } });
  // One receive clock for every service, so predictions (which carry it) compare whole.
  const runtime = new ServiceRuntime(config, logger, () => RECEIVED_AT);
  const app = await buildApp({ runtime, logger: false });
  await runtime.start();
  const streamed: string[] = [];
  runtime.subscribe((prediction) => streamed.push(JSON.stringify(prediction)));
  const created = { runtime, app, streamed };
  running.push(created);
  return created;
}

/** What a client sees of the service: every symbol's REST answers and the tick counter of /metrics. */
async function observed(s: Service): Promise<unknown> {
  const symbols = ['AAPL', 'AMZN'];
  const ticks = (await s.app.inject({ method: 'GET', url: '/metrics' })).body.split('\n').filter((line) => line.startsWith('lob_rtrl_ticks_total'));
  return {
    symbols: await get(s, '/v1/symbols'),
    ticks: ticks.sort(),
    perSymbol: await Promise.all(
      symbols.map(async (symbol) => ({
        latest: await get(s, `/v1/symbols/${symbol}/prediction`),
        ring: await get(s, `/v1/symbols/${symbol}/predictions?limit=1000`),
        metrics: await get(s, `/v1/symbols/${symbol}/metrics`),
      })),
    ),
  };
}

describe('serve --workers', () => {
  it("two workers give one thread's predictions to the ring, REST, the stream and the metrics", async () => {
    const one = await service(1);
    const two = await service(2);
    await push(one, lines);
    await push(two, lines);
    expect(two.runtime.pool?.size).toBe(2);
    expect(['push:AAPL', 'push:AMZN'].map((s) => two.runtime.pool!.workerOf(s)).sort()).toEqual([0, 1]);
    expect(two.streamed.length).toBe(lines.length);
    expect(two.streamed).toEqual(one.streamed);
    expect(await observed(two)).toEqual(await observed(one));
    const ready = (await two.app.inject({ method: 'GET', url: '/readyz' })).json();
    expect(ready.checks).toMatchObject({ database: true, learners: true, workers: true });
  });

  it('checkpoints taken from the workers restore into them after a restart, as if never stopped', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lob-rtrl-workers-restart-'));
    const whole = await service(1);
    await push(whole, lines);

    const first = await service(2, join(dir, 'db.sqlite'));
    await push(first, lines.slice(0, 500));
    // Tick-driven checkpoints (every 150 ticks) were written from the workers' state.
    const reasons = async () => ((await get(first, '/v1/symbols/AMZN/checkpoints')) as { checkpoints: Array<{ reason: string }> }).checkpoints.map((c) => c.reason);
    await expect.poll(reasons).toContain('ticks');
    const manual = await first.app.inject({ method: 'POST', url: '/v1/symbols/AAPL/checkpoints' });
    expect(manual.statusCode).toBe(201);
    expect(manual.json().tickCount).toBe(first.runtime.symbolView('push:AAPL')!.ticks);
    await first.app.close();
    await first.runtime.stop();
    running.splice(running.indexOf(first), 1);

    const second = await service(2, join(dir, 'db.sqlite'));
    await second.runtime.whenRestored();
    expect(
      second.runtime
        .symbolViews()
        .map((s) => s.ticks)
        .reduce((a, b) => a + b, 0),
    ).toBe(500);
    // A replayed snapshot is refused: the ordering checks resumed from the restored state.
    const replayed = await second.app.inject({ method: 'POST', url: '/v1/snapshots', payload: lines[499] as object });
    expect(replayed.statusCode).toBe(400);
    await push(second, lines.slice(500));
    expect(second.streamed).toEqual(whole.streamed.slice(500));
    expect(await get(second, '/v1/symbols/AMZN/metrics')).toEqual(await get(whole, '/v1/symbols/AMZN/metrics'));

    // A manual restore sends the stored state to the worker; the symbol is back where it was.
    const oldest = ((await get(second, '/v1/symbols/AAPL/checkpoints')) as { checkpoints: Array<{ id: number; tickCount: number }> }).checkpoints.at(-1)!;
    const restored = await second.app.inject({ method: 'POST', url: `/v1/symbols/AAPL/checkpoints/${oldest.id}/restore` });
    expect(restored.statusCode, restored.body).toBe(200);
    expect(((await get(second, '/v1/symbols/AAPL/metrics')) as { ticks: number }).ticks).toBe(oldest.tickCount);
  });

  it("reports a worker that dies, refuses its symbols' input and keeps serving the others", async () => {
    const errors: string[] = [];
    const s = await service(2, undefined, { ...quiet, error: (fields: object, message: string) => void errors.push(`${message} ${JSON.stringify(fields)}`) });
    await push(s, lines.slice(0, 200));
    const pool = s.runtime.pool!;
    await pool.terminateWorker(pool.workerOf('push:AAPL')!);
    await expect.poll(() => s.runtime.failedSymbols.has('push:AAPL')).toBe(true);
    expect(errors.some((line) => line.includes('worker thread failed'))).toBe(true);
    const ready = await s.app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json().checks.workers).toBe(false);

    const before = s.streamed.length;
    const rest = lines.slice(200);
    const outcome = await s.app.inject({ method: 'POST', url: '/v1/snapshots', payload: rest.slice(0, 100) as object[] });
    const body = outcome.json() as { accepted: Array<{ symbol: string }>; rejected: Array<{ detail: string }> };
    expect(body.accepted.length).toBeGreaterThan(0);
    expect(body.accepted.every((a) => a.symbol === 'AMZN')).toBe(true);
    expect(body.rejected.every((r) => r.detail.includes('AAPL') && r.detail.includes('worker thread failed'))).toBe(true);
    expect(s.streamed.slice(before).every((p) => JSON.parse(p).symbol === 'push:AMZN')).toBe(true);
    expect((await s.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  });
});
