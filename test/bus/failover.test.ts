// The distributed mode end to end on a real nats-server: recorded input published to the
// market-data log by `lob-rtrl publish`, two `serve --role worker` processes, one killed with
// SIGKILL in the middle, then every worker replaced by a fresh one. Every stream keeps
// predicting, and the predictions in the prediction stream equal a one-process replay of the
// same input, bit for bit, each exactly once.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { partitionOf } from '../../src/bus/subjects.js';
import { packageRoot } from '../../src/domain/package-root.js';
import { Engine } from '../../src/engine/engine.js';
import type { Prediction } from '../../src/engine/symbol-engine.js';
import { engineConfigOf, serviceConfigSchema } from '../../src/service/config.js';
import { fileFormatById } from '../../src/venues/registry.js';
import { messageBatches } from '../../src/venues/types.js';
import { ensureBuilt, SpawnedService } from '../service/spawned-service.js';
import { startNatsServer, type NatsServer } from '../../bench/nats-server.js';

const root = packageRoot();
const cli = join(root, 'dist/src/cli/main.js');
const canonicalFile = join(root, 'fixtures/canonical/amzn-aapl-2012-06-21-interleaved.jsonl');
const lobsterFile = join(root, 'fixtures/lobster/LOBSTER_excerpt_AMZN_2012-06-21_5_first300.zip');
const PARTITIONS = 4;
const LEVELS = 5;

interface StreamPrediction {
  readonly venue: string;
  readonly symbol: string;
  readonly inputSequence: number;
  readonly ts: number;
  readonly localTs: number;
  readonly seq: number;
  readonly mid: number;
  readonly models: { model: string; probs: number[] }[];
}

let nats: NatsServer;
let client: NatsConnection;
let workDir: string;
const workers: SpawnedService[] = [];

function workerEnv(): Record<string, string> {
  return {
    LOB_RTRL_NATS_URL: nats.url,
    LOB_RTRL_NATS_PARTITIONS: String(PARTITIONS),
    LOB_RTRL_NATS_LEASE_SECONDS: '2',
    // Checkpoints only at hand-overs and clean shutdowns, so the test knows where they are.
    LOB_RTRL_NATS_CHECKPOINT_EVERY_MESSAGES: '1000000',
    LOB_RTRL_NATS_CHECKPOINT_EVERY_SECONDS: '3600',
    LOB_RTRL_LEVELS: String(LEVELS),
    LOB_RTRL_LOG_LEVEL: 'info',
  };
}

async function startWorker(): Promise<SpawnedService> {
  const child = spawn(process.execPath, [cli, 'serve', '--role', 'worker', '--host', '127.0.0.1', '--port', '0'], {
    cwd: root,
    env: { ...process.env, ...workerEnv() },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const worker = new SpawnedService(child);
  const serving = await worker.waitForLog((line) => line.msg === 'lob-rtrl worker serving /healthz and /metrics', 'the worker serving');
  worker.url = String(serving.address);
  workers.push(worker);
  return worker;
}

async function publish(file: string, format: string, venue: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, 'publish', file, '--format', format, '--venue', venue, '--levels', String(LEVELS)], {
      cwd: root,
      env: { ...process.env, LOB_RTRL_NATS_URL: nats.url, LOB_RTRL_NATS_PARTITIONS: String(PARTITIONS) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`publish exited ${code}: ${out}`))));
  });
}

/** Every prediction stored in the prediction stream, in stream order. */
async function storedPredictions(): Promise<StreamPrediction[]> {
  const js = jetstream(client);
  const info = await (await jetstreamManager(client)).streams.info('LOB_RTRL_PRED').catch(() => null);
  const total = info?.state.messages ?? 0;
  if (total === 0) return [];
  const consumer = await js.consumers.get('LOB_RTRL_PRED', { deliver_policy: DeliverPolicy.All });
  const found: StreamPrediction[] = [];
  while (found.length < total) {
    const batch = await consumer.fetch({ max_messages: 1000, expires: 2000 });
    for await (const message of batch) found.push(message.json<StreamPrediction>());
  }
  return found;
}

async function waitForPredictions(count: number, timeoutMs = 60_000): Promise<StreamPrediction[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await storedPredictions();
    if (found.length >= count) return found;
    if (Date.now() > deadline) throw new Error(`${found.length} of ${count} predictions after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** One-process reference: each input replayed through its own Engine, predictions per stream. */
async function replayReference(inputs: readonly { files: string[]; format: string; venue: string }[]): Promise<Map<string, Prediction[]>> {
  const config = engineConfigOf(serviceConfigSchema.parse({ levels: LEVELS }));
  const byStream = new Map<string, Prediction[]>();
  for (const input of inputs) {
    const engine = new Engine(config);
    for await (const batch of messageBatches(fileFormatById(input.format), input.files, { levels: LEVELS })) {
      for (const message of batch) {
        const prediction = engine.process(message);
        if (prediction === null) continue;
        const key = `${input.venue}/${prediction.symbol}`;
        if (!byStream.has(key)) byStream.set(key, []);
        byStream.get(key)?.push(prediction);
      }
    }
  }
  return byStream;
}

function byStream(predictions: readonly StreamPrediction[]): Map<string, StreamPrediction[]> {
  const streams = new Map<string, StreamPrediction[]>();
  for (const prediction of predictions) {
    const key = `${prediction.venue}/${prediction.symbol}`;
    if (!streams.has(key)) streams.set(key, []);
    streams.get(key)?.push(prediction);
  }
  for (const list of streams.values()) list.sort((a, b) => a.inputSequence - b.inputSequence);
  return streams;
}

function expectSamePredictions(actual: Map<string, StreamPrediction[]>, expected: Map<string, Prediction[]>): void {
  expect([...actual.keys()].sort()).toEqual([...expected.keys()].sort());
  for (const [key, reference] of expected) {
    const got = actual.get(key) ?? [];
    expect(got.length, key).toBe(reference.length);
    got.forEach((prediction, i) => {
      const want = reference[i];
      // Exact equality of every float: the log and the prediction stream carry them unchanged.
      expect({ ts: prediction.ts, localTs: prediction.localTs, seq: prediction.seq, mid: prediction.mid, models: prediction.models }, `${key} #${i}`).toEqual({
        ts: want.ts,
        localTs: want.localTs,
        seq: want.seq,
        mid: want.mid,
        models: want.models.map((model) => ({ model: model.model, probs: [...model.probs] })),
      });
    });
  }
}

beforeAll(async () => {
  await ensureBuilt();
  nats = await startNatsServer();
  client = await connect({ servers: nats.url });
  workDir = mkdtempSync(join(tmpdir(), 'lob-rtrl-bus-'));
}, 180_000);

afterAll(async () => {
  for (const worker of workers) worker.signal('SIGKILL');
  await Promise.all(workers.map((worker) => worker.exited));
  await client?.close();
  await nats?.dispose();
  rmSync(workDir, { recursive: true, force: true });
});

describe('workers over the NATS market-data log', () => {
  const lines = () => readFileSync(canonicalFile, 'utf8').trimEnd().split('\n');

  it('keeps every stream predicting through a SIGKILL, and the predictions equal a one-process replay, once each', async () => {
    const all = lines();
    const parts = [all.slice(0, 150), all.slice(150, 300), all.slice(300, 600)].map((part, i) => {
      const file = join(workDir, `part${i + 1}.jsonl`);
      writeFileSync(file, `${part.join('\n')}\n`);
      return file;
    });
    const reference = await replayReference([
      { files: [canonicalFile], format: 'canonical', venue: 'nasdaq' },
      { files: [lobsterFile], format: 'lobster', venue: 'lobster' },
    ]);
    const lobsterTicks = reference.get('lobster/AMZN')?.length ?? 0;
    expect(lobsterTicks).toBeGreaterThan(100);

    // One worker runs the first part and stops cleanly: every partition is checkpointed there.
    await publish(parts[0], 'canonical', 'nasdaq');
    await publish(lobsterFile, 'lobster', 'lobster');
    const first = await startWorker();
    await waitForPredictions(150 + lobsterTicks);
    first.signal('SIGTERM');
    expect((await first.exited).code).toBe(0);

    // Two workers go on from those checkpoints and share the partitions.
    await publish(parts[1], 'canonical', 'nasdaq');
    const a = await startWorker();
    const b = await startWorker();
    const ownerOf = async (worker: SpawnedService) => (await worker.get<{ partitions: number[] }>('/healthz')).partitions;
    // The first to start takes every partition and hands half over when the second joins.
    let [aOwns, bOwns] = [await ownerOf(a), await ownerOf(b)];
    for (const deadline = Date.now() + 30_000; !(aOwns.length === 2 && bOwns.length === 2);) {
      if (Date.now() > deadline) throw new Error(`partitions not shared after 30 s: ${aOwns} / ${bOwns}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
      [aOwns, bOwns] = [await ownerOf(a), await ownerOf(b)];
    }
    expect([...aOwns, ...bOwns].sort()).toEqual([0, 1, 2, 3]);
    const beforeKill = await waitForPredictions(300 + lobsterTicks);

    // Kill the owner of nasdaq AMZN: its partition's checkpoint is behind what it already
    // predicted, so the next owner predicts those ticks again, and JetStream keeps one of each.
    const amznPartition = partitionOf('nasdaq', 'AMZN', PARTITIONS);
    const victim = aOwns.includes(amznPartition) ? a : b;
    const survivor = victim === a ? b : a;
    victim.signal('SIGKILL');
    await victim.exited;
    await publish(parts[2], 'canonical', 'nasdaq');
    const afterKill = await waitForPredictions(600 + lobsterTicks);
    const taken = await survivor.waitForLog(
      (line) => line.msg === 'partition restored from its checkpoint' && line.partition === amznPartition,
      "the survivor restoring the victim's partition",
    );
    const predictedBeforeKill = beforeKill.filter((p) => p.venue === 'nasdaq' && p.symbol === 'AMZN').map((p) => p.inputSequence);
    expect(Number(taken.lastSequence)).toBeGreaterThan(0);
    expect(Math.max(...predictedBeforeKill)).toBeGreaterThan(Number(taken.lastSequence));

    const expectedSoFar = await replayReference([
      { files: parts, format: 'canonical', venue: 'nasdaq' },
      { files: [lobsterFile], format: 'lobster', venue: 'lobster' },
    ]);
    expectSamePredictions(byStream(afterKill), expectedSoFar);
    expect(afterKill.length).toBe(600 + lobsterTicks);
  }, 180_000);

  it('a fresh worker, with nothing on its disk, resumes every partition from the shared checkpoints', async () => {
    for (const worker of workers) if (worker.url) worker.signal('SIGTERM');
    await Promise.all(workers.map((worker) => worker.exited));
    const rest = join(workDir, 'part4.jsonl');
    writeFileSync(rest, `${lines().slice(600).join('\n')}\n`);
    await publish(rest, 'canonical', 'nasdaq');

    const fresh = await startWorker();
    const reference = await replayReference([
      { files: [canonicalFile], format: 'canonical', venue: 'nasdaq' },
      { files: [lobsterFile], format: 'lobster', venue: 'lobster' },
    ]);
    const total = [...reference.values()].reduce((sum, list) => sum + list.length, 0);
    const stored = await waitForPredictions(total);
    expectSamePredictions(byStream(stored), reference);
    expect(stored.length).toBe(total);
    // Resumed, not recomputed from the start: every partition with data restored at a position > 0.
    const withData = new Set([partitionOf('nasdaq', 'AMZN', PARTITIONS), partitionOf('nasdaq', 'AAPL', PARTITIONS), partitionOf('lobster', 'AMZN', PARTITIONS)]);
    const restored = new Map(fresh.logsWith('partition restored from its checkpoint').map((line) => [Number(line.partition), Number(line.lastSequence)] as const));
    for (const partition of withData) expect(restored.get(partition), `partition ${partition}`).toBeGreaterThan(0);
  }, 180_000);
});
