// Resume equals continuity: a service stopped with SIGTERM mid-stream and restarted on the
// same database makes, for every tick after the restart, exactly the predictions of a
// service that never stopped. Both run the real CLI over the same recorded AMZN stream
// (fixtures/canonical, the first 300 LOBSTER snapshots) pushed one at a time.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/domain/package-root.js';
import { ensureBuilt, startService, type SpawnedService } from './spawned-service.js';

interface PredictionJson {
  readonly symbol: string;
  readonly ts: number;
  readonly seq: number;
  readonly mid: number;
  readonly models: ReadonlyArray<{ model: string; probs: Record<string, number> }>;
}

interface MetricsJson {
  readonly ticks: number;
  readonly models: ReadonlyArray<{ model: string; overall: unknown; rolling: unknown }>;
}

const lines = readFileSync(join(packageRoot(), 'fixtures/canonical/amzn-2012-06-21-first300.jsonl'), 'utf8').split('\n').filter(Boolean);
/** Not a round number, so the stop lands between whatever periodic work the engine does. */
const SIGTERM_AFTER_ACKS = 137;

let workDir: string;
const running = new Set<SpawnedService>();

beforeAll(async () => {
  workDir = mkdtempSync(join(tmpdir(), 'lob-rtrl-resume-'));
  await ensureBuilt();
});

afterAll(() => {
  for (const service of running) service.signal('SIGKILL');
  rmSync(workDir, { recursive: true, force: true });
});

async function serviceOn(db: string): Promise<SpawnedService> {
  // The default model set (rtrl, tbptt:10, logistic, majority) so every learner's state must survive.
  // No interval checkpoint on a slow machine: the shutdown checkpoint is the one resumed from.
  // No hibernation either: a symbol asleep has no shutdown checkpoint to write (its state is in
  // the one it hibernated with), and a machine that stalls this process for a minute would make it sleep.
  const service = await startService({ LOB_RTRL_DEMO_FEED: 'false', LOB_RTRL_DB: db, LOB_RTRL_CHECKPOINT_EVERY_SECONDS: '3600', LOB_RTRL_HIBERNATE_IDLE_SECONDS: '0' });
  running.add(service);
  void service.exited.then(() => running.delete(service));
  return service;
}

/** Pushes lines[from..to) one POST at a time; each must be accepted with its own seq. */
async function pushAll(service: SpawnedService, from: number, to: number): Promise<void> {
  for (let i = from; i < to; i++) {
    const { status, json } = await service.post('/v1/snapshots', lines[i]);
    expect({ i, status, json }).toEqual({ i, status: 200, json: { accepted: [{ stream: 'push:AMZN', venue: 'push', symbol: 'AMZN', seq: i }], trades: 0, rejected: [] } });
  }
}

async function predictionsOf(service: SpawnedService): Promise<PredictionJson[]> {
  const body = await service.get<{ predictions: PredictionJson[] }>('/v1/symbols/AMZN/predictions?limit=1000');
  return body.predictions;
}

/** Everything but the wall-clock receive time, which differs between any two runs. */
function comparable(prediction: PredictionJson) {
  return { ts: prediction.ts, seq: prediction.seq, mid: prediction.mid, models: prediction.models };
}

function comparableMetrics(metrics: MetricsJson) {
  return { ticks: metrics.ticks, models: metrics.models.map((m) => ({ model: m.model, overall: m.overall, rolling: m.rolling })) };
}

async function stopGracefully(service: SpawnedService): Promise<void> {
  service.signal('SIGTERM');
  expect(await service.exited).toEqual({ code: 0, signal: null });
}

describe('SIGTERM mid-stream and restart on the same database', () => {
  it('gives the same predictions and metrics as a run that never stopped', async () => {
    const uninterrupted = await serviceOn(join(workDir, 'uninterrupted.sqlite'));
    await pushAll(uninterrupted, 0, lines.length);
    const expected = await predictionsOf(uninterrupted);
    const expectedMetrics = await uninterrupted.get<MetricsJson>('/v1/symbols/AMZN/metrics');
    await stopGracefully(uninterrupted);
    expect(expected.map((p) => p.seq)).toEqual(lines.map((_, i) => i));

    // The producer keeps streaming while SIGTERM arrives: whichever request is in flight may be
    // processed (and answered) before the server closes, or refused. What was processed is
    // what the restarted service reports as its tick count.
    const resumedDb = join(workDir, 'resumed.sqlite');
    const first = await serviceOn(resumedDb);
    let acknowledged = 0;
    for (let i = 0; i < lines.length; i++) {
      if (i === SIGTERM_AFTER_ACKS) first.signal('SIGTERM');
      let status: number;
      try {
        status = (await first.post('/v1/snapshots', lines[i])).status;
      } catch {
        break;
      }
      if (status !== 200) break;
      acknowledged++;
    }
    expect(await first.exited).toEqual({ code: 0, signal: null });
    expect(acknowledged).toBeGreaterThanOrEqual(SIGTERM_AFTER_ACKS);
    expect(acknowledged).toBeLessThan(lines.length);
    expect(first.logsWith('shutdown checkpoints written')).toMatchObject([{ checkpoints: 1, failed: 0 }]);

    const second = await serviceOn(resumedDb);
    const resumed = second.logsWith('resumed from checkpoint');
    expect(resumed).toHaveLength(1);
    const resumedTicks = Number(resumed[0].ticks);
    // Nothing acknowledged is lost; at most the one request whose answer was cut off is extra.
    expect(resumedTicks).toBeGreaterThanOrEqual(acknowledged);
    expect(resumedTicks).toBeLessThanOrEqual(acknowledged + 1);
    const { symbols } = await second.get<{ symbols: Array<{ symbol: string; ticks: number }> }>('/v1/symbols');
    expect(symbols).toEqual([expect.objectContaining({ stream: 'push:AMZN', venue: 'push', symbol: 'AMZN', ticks: resumedTicks })]);

    await pushAll(second, resumedTicks, lines.length);
    const afterRestart = await predictionsOf(second);
    const resumedMetrics = await second.get<MetricsJson>('/v1/symbols/AMZN/metrics');
    await stopGracefully(second);

    // Exact equality on purpose: the checkpoint carries every float bit for bit and the
    // arithmetic is deterministic, so any difference at all is lost or stale state.
    expect(afterRestart.map((p) => p.seq)).toEqual(expected.slice(resumedTicks).map((p) => p.seq));
    expect(afterRestart.map(comparable)).toEqual(expected.slice(resumedTicks).map(comparable));
    expect(comparableMetrics(resumedMetrics)).toEqual(comparableMetrics(expectedMetrics));
  });
});
