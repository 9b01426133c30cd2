// Hibernated symbols give their memory back to the system: many symbols pushed a few ticks each,
// then hibernated, bring the process's resident size back down (one thread and two workers);
// and the reclaims requested together run as one.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../../src/http/app.js';
import { loadServiceConfig } from '../../src/service/config.js';
import { MemoryReclaimer } from '../../src/service/memory-reclaimer.js';
import { ServiceRuntime, type RuntimeLogger } from '../../src/service/runtime.js';
import { push } from './inject.js';

const quiet: RuntimeLogger = { info() {}, warn() {}, error() {}, debug() {} };
const SYMBOLS = 300;

function book(symbol: string, tick: number) {
  const bids = Array.from({ length: 10 }, (_, level) => [100 - level * 0.01 - (tick % 3) * 0.01, 5 + level]);
  const asks = Array.from({ length: 10 }, (_, level) => [100.01 + level * 0.01 + (tick % 2) * 0.01, 4 + level]);
  return { symbol, ts: Date.UTC(2026, 0, 2) + tick, seq: tick, bids, asks };
}

describe('memory of hibernated symbols', () => {
  for (const workers of [1, 2]) {
    it(`goes back to the system once they sleep (${workers === 1 ? 'one thread' : 'two workers'}, default models)`, async () => {
      const db = join(mkdtempSync(join(tmpdir(), 'lob-rtrl-reclaim-')), 'db.sqlite');
      const config = loadServiceConfig({ flags: { db, demoFeed: false, workers, hibernateIdleSeconds: 60, maxSymbols: 2 * SYMBOLS } });
      const clock = { now: Date.UTC(2026, 0, 2) };
      const runtime = new ServiceRuntime(config, quiet, () => clock.now);
      const app = await buildApp({ runtime, logger: false });
      /** Pushes three ticks to each of S<from>..S<to - 1>, lets them go idle and hibernate, and returns the RSS awake and asleep. */
      const wakeAndSleep = async (from: number, to: number) => {
        for (let tick = 0; tick < 3; tick++)
          await push(
            { app },
            Array.from({ length: to - from }, (_, s) => book(`S${from + s}`, tick)),
            100,
          );
        const awake = process.memoryUsage().rss;
        clock.now += 61_000;
        // The runtime's own idle sweep may take some of them first.
        await runtime.hibernateIdle();
        for (const deadline = Date.now() + 30_000; runtime.hibernatedSymbols < to;) {
          if (Date.now() > deadline) throw new Error(`${runtime.hibernatedSymbols} of ${to} symbols hibernated`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        await runtime.reclaimMemoryNow();
        return { awake, asleep: process.memoryUsage().rss };
      };
      try {
        await runtime.start();
        // A first round grows what every thread keeps whatever the symbols (V8's young
        // generations, the allocator's arenas), so the second measures what symbols cost.
        const first = await wakeAndSleep(0, SYMBOLS / 2);
        const second = await wakeAndSleep(SYMBOLS / 2, SYMBOLS + SYMBOLS / 2);
        const perSymbolKb = (bytes: number) => bytes / SYMBOLS / 1024;
        const awakeKb = perSymbolKb(second.awake - first.asleep);
        const asleepKb = perSymbolKb(second.asleep - first.asleep);
        // Awake, a symbol holds several hundred KB (the sensitivities alone are 186 KB).
        expect(awakeKb).toBeGreaterThan(250);
        // Asleep, what is left is its summary and prediction ring: well under the 300 KB goal.
        expect(asleepKb, `awake ${awakeKb.toFixed(0)} KB, asleep ${asleepKb.toFixed(0)} KB a symbol`).toBeLessThan(150);
      } finally {
        await app.close();
        await runtime.stop().catch(() => {});
      }
    });
  }

  it('runs once for the requests made together, and once more for those made while it ran', async () => {
    let collections = 0;
    let release: () => void = () => {};
    const reclaimer = new MemoryReclaimer({
      delayMs: 10,
      collection: 'minor',
      collectElsewhere: () => {
        collections++;
        return new Promise<void>((resolve) => (release = resolve));
      },
      onError: (error) => {
        throw error;
      },
    });
    for (let i = 0; i < 10; i++) reclaimer.request();
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(collections).toBe(1);
    for (let i = 0; i < 5; i++) reclaimer.request();
    release();
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(collections).toBe(2);
    release();
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(collections).toBe(2);
    expect(reclaimer.reclaims).toBe(2);
    reclaimer.close();
    reclaimer.request();
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(collections).toBe(2);
  });
});
