// Each worker's credit: with `queueMs`, a producer that waits whenever `roomFor` says so never
// has more records queued or running on a worker than its credit, the credit follows the
// worker's measured speed, and the predictions are still those of one thread. And the workers'
// niceness, which lets the main thread preempt them, is theirs alone.
import { readdirSync, readFileSync } from 'node:fs';
import { getPriority } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { MarketMessage } from '../../src/domain/types.js';
import { defaultEngineConfig, type EngineConfig } from '../../src/engine/config.js';
import { Engine } from '../../src/engine/engine.js';
import { MIN_CREDIT_RECORDS, SymbolWorkerPool } from '../../src/engine/worker-pool.js';
import { canonicalJsonl } from '../../src/venues/canonical.js';

const interleaved = join(import.meta.dirname, '../../fixtures/canonical/amzn-aapl-2012-06-21-interleaved.jsonl');
const config: EngineConfig = { ...defaultEngineConfig, levels: 5, learner: { ...defaultEngineConfig.learner, hidden: 8 } };

async function messages(): Promise<MarketMessage[]> {
  const all: MarketMessage[] = [];
  for await (const message of canonicalJsonl.read([interleaved], { levels: 5 })) all.push(message);
  return all;
}

/** Pushes every snapshot as a fair producer would, returning the predictions and the largest excess over the credit. */
async function pushHonouringCredit(pool: SymbolWorkerPool, input: readonly MarketMessage[], got: string[]): Promise<{ overCredit: number; waits: number }> {
  let overCredit = Number.NEGATIVE_INFINITY;
  let waits = 0;
  for (const message of input) {
    if (message.type !== 'book_snapshot') continue;
    if (!pool.has(message.symbol)) void pool.open(message.symbol);
    for (let room = pool.roomFor(message.symbol); room; room = pool.roomFor(message.symbol)) {
      waits++;
      await room;
    }
    const worker = pool.workerOf(message.symbol)!;
    const credit = pool.creditOf(worker);
    pool.snapshot(message);
    overCredit = Math.max(overCredit, pool.outstandingOn(worker) - credit);
  }
  await pool.drain();
  expect(got.length).toBeGreaterThan(500);
  return { overCredit, waits };
}

describe('worker credits', () => {
  it('keep what a worker holds within its credit and the predictions those of one thread', async () => {
    const input = await messages();
    const engine = new Engine(config);
    const expected: string[] = [];
    engine.addSink((prediction) => expected.push(JSON.stringify(prediction)));
    for (const message of input) engine.process(message);

    const got: string[] = [];
    const pool = new SymbolWorkerPool({ workers: 2, config, queueMs: 1e-6, onPrediction: (prediction) => got.push(JSON.stringify(prediction)) });
    try {
      const { overCredit, waits } = await pushHonouringCredit(pool, input, got);
      expect(overCredit).toBeLessThanOrEqual(0);
      // A queue shorter than any message's work: the credit stays at its floor. The producer
      // waited at least once (its fifth push comes without a turn of the event loop between, so
      // the worker cannot have answered); how often depends on the machine, so it is not counted.
      expect([pool.creditOf(0), pool.creditOf(1)]).toEqual([MIN_CREDIT_RECORDS, MIN_CREDIT_RECORDS]);
      expect(waits).toBeGreaterThan(0);
      expect(got).toEqual(expected);
      expect([pool.outstandingOn(0), pool.outstandingOn(1)]).toEqual([0, 0]);
    } finally {
      await pool.close();
    }
  });

  it("grow with the queue asked for, from each worker's measured time per record", async () => {
    const got: string[] = [];
    const pool = new SymbolWorkerPool({ workers: 2, config, queueMs: 60_000, onPrediction: (prediction) => got.push(JSON.stringify(prediction)) });
    try {
      expect(pool.creditOf(0)).toBe(MIN_CREDIT_RECORDS);
      const { overCredit } = await pushHonouringCredit(pool, await messages(), got);
      expect(overCredit).toBeLessThanOrEqual(0);
      // A minute of work is more than this fixture: once measured, no producer is held.
      expect(pool.creditOf(0)).toBeGreaterThan(got.length);
      expect(pool.creditOf(1)).toBeGreaterThan(got.length);
    } finally {
      await pool.close();
    }
  });

  it('without queueMs, never hold a producer', async () => {
    const pool = new SymbolWorkerPool({ workers: 2, config, onPrediction: () => {} });
    try {
      await pool.open('AMZN');
      expect(pool.roomFor('AMZN')).toBeNull();
      expect(pool.creditOf(0)).toBe(Number.POSITIVE_INFINITY);
    } finally {
      await pool.close();
    }
  });
});

describe('worker niceness', () => {
  it("lowers the worker threads' priority by `nice` on Linux, never the main thread's", async () => {
    expect(process.platform).toBe('linux');
    const niceOfThreads = () =>
      readdirSync('/proc/self/task').map((tid) => {
        // Fields after the parenthesised command name; niceness is field 19 of stat, 17 after it.
        const fields = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1].split(' ');
        return Number(fields[16]);
      });
    const mainPriority = getPriority();
    const lowered = Math.min(19, mainPriority + 7);
    const before = niceOfThreads().filter((nice) => nice === lowered).length;
    const pool = new SymbolWorkerPool({ workers: 2, config, nice: 7, onPrediction: () => {} });
    try {
      // Opening answers once the worker has started, so its start-up code has run.
      await Promise.all([pool.open('A'), pool.open('B')]);
      expect(niceOfThreads().filter((nice) => nice === lowered).length - before).toBe(2);
      expect(getPriority()).toBe(mainPriority);
    } finally {
      await pool.close();
    }
  });
});
