// Idle symbols hibernate (state written as a checkpoint, memory released) and wake on their
// next message: a stream with idle gaps gives, with hibernation on, every prediction, REST
// answer and final state bit for bit as with it off, on one thread and on worker threads; a
// hibernated symbol still lists and answers; a crash while it sleeps loses nothing.
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
const lines = readFileSync(fixture, 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((line) => JSON.parse(line) as { symbol: string; ts: number; bids: number[][] });
const quiet: RuntimeLogger = { info() {}, warn() {}, error() {}, debug() {} };
const IDLE_SECONDS = 60;

interface Service {
  readonly runtime: ServiceRuntime;
  readonly app: FastifyInstance;
  readonly streamed: string[];
  /** The wall clock the runtime reads; the test moves it. */
  readonly clock: { now: number };
}
const running: Service[] = [];

afterEach(async () => {
  for (const service of running.splice(0)) {
    await service.app.close();
    await service.runtime.stop().catch(() => {});
  }
});

async function service(workers: number, hibernateIdleSeconds: number, db = join(mkdtempSync(join(tmpdir(), 'lob-rtrl-hibernate-')), 'db.sqlite')): Promise<Service> {
  const config = loadServiceConfig({ flags: { db, demoFeed: false, levels: 5, hidden: 8, workers, checkpointEveryTicks: 150, hibernateIdleSeconds } });
  const clock = { now: Date.UTC(2026, 0, 2) };
  const runtime = new ServiceRuntime(config, quiet, () => clock.now);
  const app = await buildApp({ runtime, logger: false });
  await runtime.start();
  const streamed: string[] = [];
  runtime.subscribe((prediction) => streamed.push(JSON.stringify(prediction)));
  const created = { runtime, app, streamed, clock };
  running.push(created);
  return created;
}

/** Every symbol's REST answers and the tick counters of /metrics. */
async function observed(s: Service): Promise<unknown> {
  const ticks = (await s.app.inject({ method: 'GET', url: '/metrics' })).body
    .split('\n')
    .filter((line) => line.startsWith('lob_rtrl_ticks_total') || line.startsWith('lob_rtrl_symbol_ticks'));
  // Whether each symbol sleeps is the one thing hibernation changes in the listing.
  const listing = (await get(s, '/v1/symbols')) as { symbols: Array<{ symbol: string; hibernated?: boolean }>; hibernated?: number };
  return {
    symbols: listing.symbols.map(({ hibernated: _, ...rest }) => rest).sort((a, b) => (a.symbol < b.symbol ? -1 : 1)),
    ticks: ticks.sort(),
    perSymbol: await Promise.all(
      ['AAPL', 'AMZN'].map(async (symbol) => ({
        latest: await get(s, `/v1/symbols/${symbol}/prediction`),
        ring: await get(s, `/v1/symbols/${symbol}/predictions?limit=1000`),
        metrics: await get(s, `/v1/symbols/${symbol}/metrics`),
      })),
    ),
  };
}

function metric(body: string, name: string): number {
  const line = body.split('\n').find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`${name} not in /metrics`);
  return Number(line.split(' ')[1]);
}

/** A trade of AMZN at the time of the snapshot at `index`, so it reaches the next snapshot's flow features. */
function tradeAfter(index: number) {
  const row = lines[index];
  return { type: 'trade', symbol: row.symbol, ts: row.ts, price: row.bids[0][0], size: 7, side: 'sell' };
}

describe('hibernation of idle symbols', () => {
  for (const workers of [1, 2]) {
    it(`${workers === 1 ? 'one thread' : 'two worker threads'}: a stream with idle gaps gives every prediction and answer bit for bit as without hibernation`, async () => {
      const on = await service(workers, IDLE_SECONDS);
      const off = await service(workers, 0);
      // Idle gaps after these snapshots; trades and disconnects arrive around them.
      const segments: unknown[][] = [[...lines.slice(0, 150), tradeAfter(149)], lines.slice(150, 400), [...lines.slice(400, 403), tradeAfter(402)], lines.slice(403, 800)];
      let hibernatedInGaps = 0;
      for (const [index, segment] of segments.entries()) {
        await push(on, segment);
        await push(off, segment);
        if (index === segments.length - 1) break;
        for (const s of [on, off]) s.clock.now += (IDLE_SECONDS + 1) * 1000;
        const went = await on.runtime.hibernateIdle();
        expect(await off.runtime.hibernateIdle()).toBe(0);
        hibernatedInGaps += went;
        if (index === 0) {
          // Both symbols sleep; they still list and answer as the awake service does.
          expect(went).toBe(2);
          expect(on.runtime.hibernatedSymbols).toBe(2);
          expect(await get(on, '/v1/symbols')).toMatchObject({ hibernated: 2, symbols: [{ hibernated: true }, { hibernated: true }] });
          expect(await get(off, '/v1/symbols')).toMatchObject({ hibernated: 0, symbols: [{ hibernated: false }, { hibernated: false }] });
          expect(await observed(on)).toEqual(await observed(off));
          // Looking at a sleeping symbol does not wake it; an operator's manual checkpoint does.
          expect(on.runtime.hibernatedSymbols).toBe(2);
          const manual = await on.app.inject({ method: 'POST', url: '/v1/symbols/AAPL/checkpoints' });
          expect(manual.statusCode, manual.body).toBe(201);
          expect(manual.json().tickCount).toBe(on.runtime.symbolView('push:AAPL')!.ticks);
          expect(on.runtime.isHibernated('push:AAPL')).toBe(false);
          const ready = async (x: Service) => (await x.app.inject({ method: 'GET', url: '/readyz' })).json();
          expect(await ready(on)).toEqual(await ready(off));
        }
        if (index === 1) {
          // A feed break reaches sleeping symbols too: it applies when they wake.
          for (const s of [on, off]) {
            s.runtime.process({ type: 'disconnect', symbol: null, localTs: s.clock.now, reason: 'test' });
            s.runtime.process({ type: 'disconnect', symbol: 'AAPL', localTs: s.clock.now, reason: 'test' });
          }
        }
      }
      // Both symbols in the first two gaps; only AMZN, the one of the short third segment, in the last.
      expect(hibernatedInGaps).toBe(5);
      expect(on.streamed.length).toBe(800);
      expect(on.streamed).toEqual(off.streamed);
      expect(await observed(on)).toEqual(await observed(off));
      if (workers === 1) {
        for (const symbol of ['push:AAPL', 'push:AMZN']) expect(on.runtime.engine.symbol(symbol)!.getState()).toEqual(off.runtime.engine.symbol(symbol)!.getState());
      } else {
        const states = async (s: Service) => (await s.runtime.pool!.summary(true, ['push:AAPL', 'push:AMZN'])).symbols.map((summary) => summary.state);
        expect(await states(on)).toEqual(await states(off));
      }
      const scraped = (await on.app.inject({ method: 'GET', url: '/metrics' })).body;
      expect(metric(scraped, 'lob_rtrl_hibernated_symbols')).toBe(0);
      expect(metric(scraped, 'lob_rtrl_hibernations_total')).toBe(5);
      expect(metric(scraped, 'lob_rtrl_wake_ups_total')).toBe(5);
    });
  }

  it('two worker threads: a message sent while its worker releases the symbol revives it there, and nothing is lost', async () => {
    const on = await service(2, IDLE_SECONDS);
    const off = await service(2, 0);
    await push(on, lines.slice(0, 200));
    await push(off, lines.slice(0, 200));
    for (const s of [on, off]) s.clock.now += (IDLE_SECONDS + 1) * 1000;
    // AAPL, the first symbol seen, is released first; its snapshots are dispatched in the same
    // turn, so they reach its worker after the release request and before any reply.
    const aapl = lines
      .slice(200)
      .filter((line) => line.symbol === 'AAPL')
      .slice(0, 3);
    const going = on.runtime.hibernateIdle();
    for (const s of [on, off]) for (const line of aapl) expect(s.runtime.ingest(line).accepted).toHaveLength(1);
    expect(await going).toBe(1);
    await on.runtime.settled();
    await off.runtime.settled();
    // AAPL was revived on its worker and stays awake; AMZN sleeps.
    expect(on.runtime.hibernatedSymbols).toBe(1);
    expect((await on.runtime.pool!.summary(false)).symbols.map((summary) => summary.symbol)).toEqual(['push:AAPL']);
    const rest = lines.slice(200, 400).filter((line) => !aapl.includes(line));
    await push(on, rest);
    await push(off, rest);
    expect(on.streamed).toEqual(off.streamed);
    expect(await observed(on)).toEqual(await observed(off));
  });

  for (const workers of [1, 2]) {
    it(`${workers === 1 ? 'one thread' : 'two worker threads'}: a crash while symbols sleep loses nothing: a restart restores them asleep, and they go on as if never stopped`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'lob-rtrl-hibernate-crash-'));
      const sleeper = await service(workers, IDLE_SECONDS, join(dir, 'db.sqlite'));
      const never = await service(workers, 0);
      const first = [...lines.slice(0, 230), tradeAfter(229)];
      await push(sleeper, first);
      await push(never, first);
      sleeper.clock.now += (IDLE_SECONDS + 1) * 1000;
      await sleeper.runtime.hibernateIdle();
      await expect.poll(() => sleeper.runtime.hibernatedSymbols).toBe(2);
      // No shutdown: a second process opens the same database as after a kill -9.
      const restarted = await service(workers, IDLE_SECONDS, join(dir, 'db.sqlite'));
      await restarted.runtime.whenRestored();
      // Restored in the background, verified and left asleep until a message asks for them (with
      // workers, without ever going to one).
      expect(restarted.runtime.hibernatedSymbols).toBe(2);
      if (workers === 1) expect(restarted.runtime.engine.symbols.size).toBe(0);
      else expect((await restarted.runtime.pool!.summary(false)).symbols).toHaveLength(0);
      const listing = async (s: Service) =>
        ((await get(s, '/v1/symbols')) as { symbols: Array<{ symbol: string; ticks: number; mid: unknown }> }).symbols.map(({ symbol, ticks, mid }) => ({ symbol, ticks, mid }));
      expect(await listing(restarted)).toEqual(await listing(never));
      const rest = lines.slice(230, 500);
      await push(restarted, rest);
      await push(never, rest);
      expect(restarted.streamed).toEqual(never.streamed.slice(-restarted.streamed.length));
      expect(restarted.streamed).toHaveLength(rest.length);
    });
  }

  it('a symbol idle less than the idle time stays; 0 disables hibernation', async () => {
    const s = await service(1, IDLE_SECONDS);
    await push(s, lines.slice(0, 20));
    s.clock.now += (IDLE_SECONDS - 1) * 1000;
    expect(await s.runtime.hibernateIdle()).toBe(0);
    await push(
      s,
      lines.slice(20, 40).filter((line) => line.symbol === 'AMZN'),
    );
    s.clock.now += 2000;
    // AAPL has been idle 61 s, AMZN 2 s.
    expect(await s.runtime.hibernateIdle()).toBe(1);
    expect(
      s.runtime
        .symbolViews()
        .map((v) => v.symbol)
        .sort(),
    ).toEqual(['push:AAPL', 'push:AMZN']);
    expect(s.runtime.engine.symbol('push:AMZN')).toBeDefined();
    expect(s.runtime.engine.symbol('push:AAPL')).toBeUndefined();
    // The service's own sweep (a timer reading the runtime's clock) hibernates it as well.
    s.clock.now += IDLE_SECONDS * 1000;
    await expect.poll(() => s.runtime.hibernatedSymbols, { timeout: 20_000 }).toBe(2);
    expect(loadServiceConfig({ env: { LOB_RTRL_HIBERNATE_IDLE_SECONDS: '0' } }).hibernateIdleSeconds).toBe(0);
    expect(loadServiceConfig({}).hibernateIdleSeconds).toBe(60);
  });
});
