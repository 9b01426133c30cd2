// Live and replay are one pipeline: the Binance recording replayed as a file and the same
// recording streamed by the local Binance stand-in into the live client give the same
// predictions (same seeds, speed max), and the recording's trades reach the engine the same
// way on both paths: the same trades, in the same order among the books.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultEngineConfig, type EngineConfig } from '../../src/engine/config.js';
import { Engine } from '../../src/engine/engine.js';
import { runReplay } from '../../src/cli/replay.js';
import { predictionRecord } from '../../src/cli/tick-output.js';
import { startFeedServer } from '../../src/standin/server.js';
import { createLiveFeed } from '../../src/ingest/live-client.js';
import type { MarketMessage } from '../../src/domain/types.js';
import { binance } from '../../src/venues/binance.js';
import { binanceRaw } from '../../src/venues/binance-raw.js';

const recording = join(import.meta.dirname, '../../fixtures/binance/spot_btcusdt_20240808.head3000.gz');
const config: EngineConfig = { ...defaultEngineConfig, learner: { ...defaultEngineConfig.learner, hidden: 8 } };

/**
 * What reaches the engine, in order, minus the receive time (the wall clock live, the recorded
 * one in replay): every book by its update id, every trade by all it carries.
 */
function arrival(message: MarketMessage): string | null {
  if (message.type === 'book_snapshot') return `book ${message.seq} ${message.ts}`;
  if (message.type === 'trade') return `trade ${message.tradeId} ${message.ts} ${message.price} ${message.size} ${message.aggressor}`;
  return null;
}

describe('live equals replay', () => {
  it('binance-raw replay and feed-server -> live client give identical predictions', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lob-rtrl-live-'));
    const report = await runReplay({ files: [recording], format: 'binance-raw', config, out: join(dir, 'replay.jsonl'), speed: 'max' });
    // The receive time differs (recorded in replay, the wall clock live) and live has no labels yet.
    const comparable = ({ localTs: _localTs, label: _label, ...rest }: Record<string, unknown>) => JSON.stringify(rest);
    const expected = readFileSync(join(dir, 'replay.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => comparable(JSON.parse(line)));
    expect(expected.length).toBeGreaterThan(250);
    // fixtures/binance/README.md: 518 recorded trades.
    expect(report.trades).toBe(518);
    const replayed: string[] = [];
    for await (const message of binanceRaw.read([recording], { levels: config.levels })) {
      const seen = arrival(message);
      if (seen !== null) replayed.push(seen);
    }

    const server = await startFeedServer({ recording, speed: 'max', loop: false });
    const feed = createLiveFeed(
      binance,
      { url: server.wsUrl, restUrl: server.url, symbols: ['BTCUSDT'] },
      {
        now: () => Date.now(),
        levels: config.levels,
        // The comparison needs every snapshot: no conflation however fast the stand-in sends.
        maxPendingPerSymbol: 100_000,
      },
    );
    const engine = new Engine(config);
    const live: string[] = [];
    const arrived: string[] = [];
    engine.addSink((prediction) => live.push(comparable(predictionRecord(prediction))));
    try {
      const deadline = Date.now() + 60_000;
      for await (const message of feed.messages()) {
        engine.process(message);
        const seen = arrival(message);
        if (seen !== null) arrived.push(seen);
        if (arrived.length >= replayed.length || Date.now() > deadline) break;
      }
    } finally {
      await feed.close();
      await server.close();
    }
    expect(feed.stats.conflatedSnapshots).toBe(0);
    expect(engine.counters.disconnects).toBe(0);
    expect(engine.counters.trades).toBe(report.trades);
    expect(arrived).toEqual(replayed);
    expect(live).toEqual(expected);
  });
});

describe('a looping stand-in', () => {
  it('keeps predictions flowing across the loop: the restart is seen as a break and the book resyncs', async () => {
    const server = await startFeedServer({ recording, speed: 'max', loop: true });
    const feed = createLiveFeed(
      binance,
      { url: server.wsUrl, restUrl: server.url, symbols: ['BTCUSDT'] },
      { now: () => Date.now(), levels: config.levels, maxPendingPerSymbol: 100_000 },
    );
    const seqs: number[] = [];
    let disconnects = 0;
    try {
      const deadline = Date.now() + 30_000;
      for await (const message of feed.messages()) {
        if (message.type === 'book_snapshot') seqs.push(message.seq!);
        if (message.type === 'disconnect') disconnects++;
        if (seqs.length >= 3 * 279 || Date.now() > deadline) break;
      }
    } finally {
      await feed.close();
      await server.close();
    }
    expect(seqs.length).toBe(3 * 279);
    expect(disconnects).toBe(2);
    // Every pass syncs at the recorded snapshot and yields the same books.
    expect(seqs.slice(279, 558)).toEqual(seqs.slice(0, 279));
    expect(seqs.slice(558)).toEqual(seqs.slice(0, 279));
  });
});
