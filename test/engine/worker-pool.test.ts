// Symbols on worker threads give what the in-thread Engine gives, bit for bit: the same
// predictions in the same global order, the same metrics and the same state bytes; and a
// replay with --workers 2 writes the --out file and report of --workers 1.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runReplay, type ReplayReport } from '../../src/cli/replay.js';
import type { MarketMessage } from '../../src/domain/types.js';
import { defaultEngineConfig, type EngineConfig } from '../../src/engine/config.js';
import { Engine } from '../../src/engine/engine.js';
import { SymbolWorkerPool } from '../../src/engine/worker-pool.js';
import type { Prediction } from '../../src/engine/symbol-engine.js';
import { binanceRaw } from '../../src/venues/binance-raw.js';
import { canonicalJsonl } from '../../src/venues/canonical.js';

const fixtures = join(import.meta.dirname, '../../fixtures');
const interleaved = join(fixtures, 'canonical/amzn-aapl-2012-06-21-interleaved.jsonl');
const binanceRecording = join(fixtures, 'binance/spot_btcusdt_20240808.head3000.gz');
const lobsterPairs = [
  'AMZN_2012-06-21_34200000_57600000_message_5',
  'AMZN_2012-06-21_34200000_57600000_orderbook_5',
  'AAPL_2012-06-21_34200000_57600000_message_10',
  'AAPL_2012-06-21_34200000_57600000_orderbook_10',
].map((name) => join(fixtures, `lobster/${name}.csv`));
const config: EngineConfig = { ...defaultEngineConfig, levels: 5, learner: { ...defaultEngineConfig.learner, hidden: 8 } };

async function collect(source: AsyncIterable<MarketMessage>, limit = Infinity): Promise<MarketMessage[]> {
  const messages: MarketMessage[] = [];
  for await (const message of source) {
    messages.push(message);
    if (messages.length >= limit) break;
  }
  return messages;
}

/**
 * Three symbols: AMZN and AAPL books (interleaved by time) and BTCUSDT books with their trades,
 * dealt in turn, with a disconnect of one symbol, a disconnect of every symbol and a rejected
 * message at fixed places.
 */
async function mixedStream(): Promise<MarketMessage[]> {
  const lobster = await collect(canonicalJsonl.read([interleaved], { levels: 5 }));
  const btc = await collect(binanceRaw.read([binanceRecording], { levels: 5 }), 600);
  expect(btc.some((m) => m.type === 'trade')).toBe(true);
  const messages: MarketMessage[] = [];
  for (let i = 0; i < Math.max(lobster.length, btc.length); i++) {
    if (i < lobster.length) messages.push(lobster[i]);
    if (i < btc.length) messages.push(btc[i]);
    if (i === 150) messages.push({ type: 'disconnect', symbol: 'AAPL', localTs: 0, reason: 'test: one symbol' });
    if (i === 320) messages.push({ type: 'disconnect', symbol: null, localTs: 0, reason: 'test: every symbol' });
    if (i === 400) messages.push({ type: 'rejected', reason: 'crossed_book', detail: 'bids[0][0]: crossed', sample: '{}', symbol: 'AMZN' });
  }
  return messages;
}

describe('SymbolWorkerPool', () => {
  it('gives the in-thread predictions in the same order, the same metrics and the same state bytes', async () => {
    const messages = await mixedStream();
    const engine = new Engine(config);
    const expected: string[] = [];
    engine.addSink((prediction) => expected.push(JSON.stringify(prediction)));
    for (const message of messages) engine.process(message);

    const got: Prediction[] = [];
    // Rounds of a few records, so predictions of many rounds and both workers are merged.
    const pool = new SymbolWorkerPool({ workers: 2, config, onPrediction: (prediction) => got.push(prediction), maxRoundRecords: 7 });
    try {
      for (const [i, message] of messages.entries()) {
        if ((message.type === 'book_snapshot' || message.type === 'trade') && !pool.has(message.symbol)) void pool.open(message.symbol);
        if (message.type === 'book_snapshot') pool.snapshot(message);
        else if (message.type === 'trade') pool.trade(message);
        else if (message.type === 'disconnect') pool.disconnect(message.symbol);
        if (i % 97 === 0) await pool.roundsBelow(3);
      }
      await pool.drain();
      expect(pool.symbols).toEqual(['AAPL', 'BTCUSDT', 'AMZN']);
      // First-sight round-robin: AAPL and AMZN on worker 0, BTCUSDT on worker 1.
      expect(pool.symbols.map((s) => pool.workerOf(s))).toEqual([0, 1, 0]);
      expect(got.map((p) => JSON.stringify(p))).toEqual(expected);
      expect(expected.length).toBeGreaterThan(1000);

      const { symbols, latency } = await pool.summary(true);
      expect(latency).toHaveLength(2);
      expect(latency.reduce((n, l) => n + l.count, 0)).toBe(expected.length);
      for (const summary of symbols) {
        const inThread = engine.symbol(summary.symbol)!;
        expect(summary.ticks).toBe(inThread.ticks);
        expect(summary.disconnects).toBe(inThread.disconnects);
        expect(summary.summaries).toEqual(inThread.metrics.map((m) => m.summary()));
        expect(Buffer.from(summary.state!).equals(Buffer.from(inThread.getState()))).toBe(true);
      }
      expect(symbols.find((s) => s.symbol === 'AAPL')!.disconnects).toBe(2);
    } finally {
      await pool.close();
    }
  });

  it('reports a worker that dies and goes on with the others', async () => {
    const failures: Array<{ worker: number; symbols: readonly string[] }> = [];
    const got: Prediction[] = [];
    const pool = new SymbolWorkerPool({ workers: 2, config, onPrediction: (p) => got.push(p), onWorkerFailure: (worker, _error, symbols) => failures.push({ worker, symbols }) });
    const messages = await collect(canonicalJsonl.read([interleaved], { levels: 5 }));
    try {
      for (const message of messages.slice(0, 100)) {
        if (message.type !== 'book_snapshot') continue;
        if (!pool.has(message.symbol)) await pool.open(message.symbol);
        pool.snapshot(message);
      }
      await pool.drain();
      // A state that decodes as a whole engine state on no configuration: loading it throws in
      // the worker, which answers with an error and keeps the symbol as it was.
      await expect(pool.load('AAPL', new Uint8Array([1, 2, 3]))).rejects.toThrow();
      expect(pool.failed('AAPL')).toBe(false);
      // The thread stopped from outside, as an out-of-memory kill would: the exit is the failure.
      await pool.terminateWorker(pool.workerOf('AAPL')!);
      await pool.drain();
      expect(failures).toEqual([{ worker: pool.workerOf('AAPL'), symbols: ['AAPL'] }]);
      expect(pool.firstFailure?.message).toMatch(/exited/);
      expect(pool.failed('AAPL')).toBe(true);
      const before = got.length;
      for (const message of messages.slice(100)) if (message.type === 'book_snapshot') pool.snapshot(message);
      await pool.drain();
      const after = got.slice(before);
      expect(after.length).toBeGreaterThan(0);
      expect(after.every((p) => p.symbol === 'AMZN')).toBe(true);
    } finally {
      await pool.close();
    }
  });
});

/** The report without what the wall clock decides. */
function untimed(report: ReplayReport): object {
  return { ...report, wallSeconds: 0, eventsPerSecond: 0, stepLatencyUs: null };
}

describe('replay --workers', () => {
  it.each([
    ['the interleaved AMZN/AAPL canonical file', 'canonical', [interleaved]],
    ['the AMZN and AAPL LOBSTER pairs in one command', 'lobster', lobsterPairs],
  ])('on %s writes the --out file and report of one thread', async (_name, format, files) => {
    const dir = mkdtempSync(join(tmpdir(), 'lob-rtrl-workers-'));
    const one = await runReplay({ files, format, config, out: join(dir, '1.jsonl'), html: join(dir, '1.html'), speed: 'max', workers: 1 });
    const two = await runReplay({ files, format, config, out: join(dir, '2.jsonl'), html: join(dir, '2.html'), speed: 'max', workers: 2 });
    const out = readFileSync(join(dir, '1.jsonl'));
    expect(out.length).toBeGreaterThan(0);
    expect(readFileSync(join(dir, '2.jsonl')).equals(out)).toBe(true);
    expect(untimed(two)).toEqual(untimed(one));
    expect(two.symbols.map((s) => s.symbol).sort()).toEqual(['AAPL', 'AMZN']);
    expect(two.stepLatencyUs.p50).toBeGreaterThan(0);
    // The HTML pages draw the same timeline and scores (only the timings and generation time differ).
    const page = (file: string) => readFileSync(join(dir, file), 'utf8').replace(/<dt>(wall time|events\/s|step latency|generated)<\/dt><dd>[^<]*<\/dd>/g, '');
    expect(page('2.html')).toBe(page('1.html'));
    const second = two.symbols[1].symbol;
    expect(page(`2.${second}.html`)).toBe(page(`1.${second}.html`));
  });

  it('resumes from --db on workers as one thread does from an uninterrupted run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lob-rtrl-workers-db-'));
    const lines = readFileSync(interleaved, 'utf8').split('\n').filter(Boolean);
    writeFileSync(join(dir, 'part1.jsonl'), `${lines.slice(0, 333).join('\n')}\n`);
    writeFileSync(join(dir, 'part2.jsonl'), `${lines.slice(333).join('\n')}\n`);
    await runReplay({ files: [interleaved], format: 'canonical', config, out: join(dir, 'whole.jsonl'), speed: 'max', workers: 1 });
    const db = join(dir, 'checkpoints.sqlite');
    const first = await runReplay({ files: [join(dir, 'part1.jsonl')], format: 'canonical', config, db, speed: 'max', workers: 2 });
    expect(first.symbols.map((s) => s.resumedFromCheckpoint)).toEqual([null, null]);
    const second = await runReplay({ files: [join(dir, 'part2.jsonl')], format: 'canonical', config, db, out: join(dir, 'resumed.jsonl'), speed: 'max', workers: 2 });
    expect(second.symbols.every((s) => s.resumedFromCheckpoint !== null)).toBe(true);
    expect(second.symbols.reduce((n, s) => n + s.ticks, 0)).toBe(lines.length);
    // Rows leave when their label is known, so they are compared tick by tick: each tick of the
    // second part has the row, label included, that the uninterrupted run wrote for it.
    const rowsByTick = (file: string) =>
      new Map(
        readFileSync(join(dir, file), 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((line) => {
            const row = JSON.parse(line) as { symbol: string; seq: number };
            return [`${row.symbol} ${row.seq}`, line] as const;
          }),
      );
    const whole = rowsByTick('whole.jsonl');
    const resumed = rowsByTick('resumed.jsonl');
    const secondPart = lines
      .slice(333)
      .map((line) => JSON.parse(line) as { symbol: string; seq: number })
      .map((book) => `${book.symbol} ${book.seq}`);
    expect([...resumed.keys()].sort()).toEqual([...secondPart].sort());
    for (const [tick, line] of resumed) expect(line, tick).toBe(whole.get(tick));
  });
});
