// Push ingest with symbols on worker threads stays fair: while flooding producers keep both
// workers saturated, a polite producer's snapshot is acknowledged after a bounded number of the
// flooders' predictions, not after the backlog the main thread could queue for the workers.
// Counted in predictions, never timed.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MIN_CREDIT_RECORDS } from '../../src/engine/worker-pool.js';
import { loadServiceConfig } from '../../src/service/config.js';
import { ServiceRuntime, type IngestOutcome, type RuntimeLogger } from '../../src/service/runtime.js';

const rows = readFileSync(join(import.meta.dirname, '../../fixtures/canonical/amzn-2012-06-21-first300.jsonl'), 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((line) => JSON.parse(line) as { ts: number; bids: number[][]; asks: number[][] });
const quiet: RuntimeLogger = { info() {}, warn() {}, error() {}, debug() {} };

const FLOODERS = 4;
const FRAMES_PER_FLOODER = 3;
const FRAME_SNAPSHOTS = 1000;
const WORKERS = 2;

function snapshot(symbol: string, seq: number): object {
  const row = rows[seq % rows.length];
  return { symbol, ts: rows[0].ts + seq, seq, bids: row.bids, asks: row.asks };
}

const runtimes: ServiceRuntime[] = [];
afterEach(async () => {
  for (const runtime of runtimes.splice(0)) await runtime.stop().catch(() => {});
});

describe('push ingest on worker threads', () => {
  it("acks a polite producer's snapshot after a bounded number of flooders' predictions", async () => {
    const db = join(mkdtempSync(join(tmpdir(), 'lob-rtrl-fairness-')), 'db.sqlite');
    // A queue far shorter than one message's work pins each worker's credit at its minimum, so
    // the bound below is a count that holds however fast this machine is.
    const config = loadServiceConfig({ flags: { db, demoFeed: false, levels: 5, hidden: 8, workers: WORKERS, workerQueueMs: 1e-6 } });
    const runtime = new ServiceRuntime(config, quiet, () => Date.UTC(2026, 0, 2));
    runtimes.push(runtime);
    await runtime.start();

    let floodPredictions = 0;
    // Predictions of the flooders that share POLITE's worker (the first and the third symbol
    // seen go to worker 0, and so does POLITE, the fifth).
    let sharingPredictions = 0;
    // Predictions leave in push order, so the sharing flooders' predictions handed over before
    // POLITE's are exactly those that overtook it. Read there rather than at the ack: a loaded
    // main thread hands over several answered rounds at once, later ones before the ack runs.
    let sharingBeforePolite = Number.NaN;
    runtime.subscribe((prediction) => {
      if (prediction.symbol === 'push:POLITE') {
        sharingBeforePolite = sharingPredictions;
        return;
      }
      floodPredictions++;
      if (prediction.symbol === 'push:FLOOD0' || prediction.symbol === 'push:FLOOD2') sharingPredictions++;
    });
    const floodAcks: Promise<IngestOutcome>[] = [];
    for (let k = 0; k < FLOODERS; k++) {
      const lane = runtime.pushLane(`flood-${k}`);
      for (let frame = 0; frame < FRAMES_PER_FLOODER; frame++) {
        const snapshots = Array.from({ length: FRAME_SNAPSHOTS }, (_, i) => snapshot(`FLOOD${k}`, frame * FRAME_SNAPSHOTS + i));
        floodAcks.push(new Promise((resolve) => lane.submit(snapshots, resolve)));
      }
    }

    // Steady state: the flooders have kept both workers busy for a while, with most of their
    // input still to come.
    const total = FLOODERS * FRAMES_PER_FLOODER * FRAME_SNAPSHOTS;
    await expect.poll(() => floodPredictions, { timeout: 60_000, interval: 5 }).toBeGreaterThan(total / 8);
    const polite = runtime.pushLane('polite');
    // Counted from a point where every prediction of what was already handed to the workers has
    // come back: on a loaded machine the main thread can read the workers' replies late, and
    // predictions made before the submission would otherwise count as overtaking it.
    await runtime.settled();
    const before = sharingPredictions;
    const outcome = await new Promise<IngestOutcome>((resolve) => polite.submit(snapshot('POLITE', 0), resolve));
    const overtaken = sharingBeforePolite - before;
    expect(outcome.accepted).toEqual([{ stream: 'push:POLITE', venue: 'push', symbol: 'POLITE', seq: 0 }]);
    expect(['FLOOD0', 'FLOOD2', 'POLITE'].map((symbol) => runtime.pool!.workerOf(`push:${symbol}`))).toEqual([0, 0, 0]);
    // Made on POLITE's worker between its submission and its ack: what the worker held (one
    // credit), what the two flooders sharing it were let in before POLITE's turn came (its
    // parked lane rejoins in the order it parked: at most two wake-ups of a credit each), and
    // the rest of POLITE's round; with one turn of every lane to spare. Before the credits it
    // was everything the main thread could queue ahead: thousands.
    expect(overtaken).toBeLessThanOrEqual(4 * MIN_CREDIT_RECORDS + FLOODERS);
    // The flood was still on when the polite producer was answered.
    expect(floodPredictions).toBeLessThan(total / 2);

    const floods = await Promise.all(floodAcks);
    expect(floods.reduce((sum, ack) => sum + ack.accepted.length, 0)).toBe(total);
    expect(floods.every((ack) => ack.rejected.length === 0)).toBe(true);
  });
});
