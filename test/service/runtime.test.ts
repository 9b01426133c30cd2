// The runtime across a restart: the latest prediction is answered at once and input already
// learned from is refused, not learned twice.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadServiceConfig } from '../../src/service/config.js';
import { ServiceRuntime } from '../../src/service/runtime.js';

const lines = readFileSync(join(import.meta.dirname, '../../fixtures/canonical/amzn-2012-06-21-first300.jsonl'), 'utf8')
  .trim()
  .split('\n');
/** The wall clock of the run: just after the recorded data, as for a live producer (pushed ts may not run ahead of it). */
const after = (JSON.parse(lines[lines.length - 1]) as { ts: number }).ts + 1_000;
const quiet = { info() {}, warn() {}, error() {}, debug() {} };

describe('service runtime restart', () => {
  it('restores the latest prediction and the ingest order checks from the checkpoint', async () => {
    const db = join(mkdtempSync(join(tmpdir(), 'lob-rtrl-runtime-')), 'db.sqlite');
    const config = loadServiceConfig({ flags: { db, demoFeed: false, workers: 1, levels: 5, hidden: 8 } });
    const first = new ServiceRuntime(config, quiet, () => after);
    await first.start();
    for (const line of lines.slice(0, 50)) expect(first.ingest(JSON.parse(line)).accepted).toHaveLength(1);
    const latest = first.engine.symbol('push:AMZN')!.lastPrediction;
    await first.stop();

    const second = new ServiceRuntime(config, quiet, () => after + 1_000);
    await second.start();
    await second.whenRestored();
    expect(second.symbolView('push:AMZN')!.lastPrediction).toEqual(latest);
    expect(second.symbolView('push:AMZN')!.ticks).toBe(50);
    const replayed = second.ingest(JSON.parse(lines[49]));
    expect(replayed.accepted).toHaveLength(0);
    expect(replayed.rejected[0].reason).toBe('out_of_order');
    expect(second.ingest(JSON.parse(lines[50])).accepted).toEqual([{ stream: 'push:AMZN', venue: 'push', symbol: 'AMZN', seq: 50 }]);
    await second.stop();
  });
});
