// The distributed mode on one machine: a real nats-server, the market-data log filled by the
// publisher, then 1, 2 and 4 `serve --role worker` processes consuming it. Per run: publish
// rate, time until every prediction is stored (throughput), the largest consumer lag seen;
// and with two workers, the failover time: SIGKILL of the owner of a busy partition to the
// first new prediction of that partition from its next owner. One `serve --role api` process,
// started first, serves the predictions to a WebSocket subscriber of every stream: its consumer
// lag behind the stored predictions, and whether every one reaches the subscriber (it reads as
// fast as it can, so nothing is conflated). Streams are the AMZN level-5
// LOBSTER sample's snapshots (../shared/data, else the fixture excerpt) under S symbols.
//   npx tsc -p tsconfig.build.json && node dist/bench/bus.js
// LOB_BENCH_BUS_SNAPSHOTS (default 24,000) and LOB_BENCH_BUS_SYMBOLS (default 8) set the input,
// LOB_BENCH_BUS_WORKERS the runs (default 1,2,4).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DeliverPolicy } from '@nats-io/jetstream';
import { WebSocket } from 'ws';
import { busConfig } from '../src/bus/config.js';
import { connectBus, MarketLogPublisher, type BusConnection } from '../src/bus/market-log.js';
import { partitionOf } from '../src/bus/subjects.js';
import type { BookSnapshot } from '../src/domain/types.js';
import { lobster } from '../src/venues/lobster.js';
import { startNatsServer } from './nats-server.js';

const PARTITIONS = 8;
const LEASE_SECONDS = 2;

export interface BusRunRow {
  readonly workers: number;
  readonly snapshots: number;
  readonly publishPerSecond: number;
  readonly seconds: number;
  readonly predictionsPerSecond: number;
  readonly maxLag: number;
  /** Kill to the first new prediction of the victim's partitions (two-worker run only). */
  readonly failoverSeconds: number | null;
  /** The api process's largest consumer lag seen (lob_rtrl_api_consumer_lag). */
  readonly apiMaxLag: number;
  /** Predictions the api's WebSocket subscriber received (every stored one when none was lost). */
  readonly apiFrames: number;
}

async function input(root: string, dataDir: string, total: number, symbols: number): Promise<{ source: string; snapshots: BookSnapshot[] }> {
  const sample = resolve(dataDir, 'lobster/LOBSTER_SampleFile_AMZN_2012-06-21_5.zip');
  const source = existsSync(sample) ? sample : resolve(root, 'fixtures/lobster/LOBSTER_excerpt_AMZN_2012-06-21_5_first300.zip');
  const perSymbol = Math.ceil(total / symbols);
  const books: BookSnapshot[] = [];
  for await (const message of lobster.read([source], { levels: 5 })) {
    if (message.type === 'book_snapshot') books.push(message);
    if (books.length === perSymbol) break;
  }
  // Round-robin over the symbols, each a copy of the same book path: S equally busy streams.
  const snapshots: BookSnapshot[] = [];
  for (let i = 0; i < books.length && snapshots.length < total; i++) {
    for (let s = 0; s < symbols && snapshots.length < total; s++) snapshots.push({ ...books[i], symbol: `AMZN${s}` });
  }
  return { source: source === sample ? `${sample} (${books.length} snapshots per symbol)` : `${source} (fixture excerpt: ../shared/data absent)`, snapshots };
}

function startRole(cli: string, role: 'worker' | 'api', env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, [cli, 'serve', '--role', role, '--host', '127.0.0.1', '--port', '0'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'ignore'],
  });
}

async function addressOf(child: ChildProcess): Promise<string> {
  return new Promise((resolveAddress, reject) => {
    let pending = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      pending += chunk;
      const match = /"address":"(http:[^"]+)"/.exec(pending);
      if (match) resolveAddress(match[1]);
    });
    child.once('exit', (code) => reject(new Error(`role process exited ${code} before listening`)));
  });
}

async function storedPredictions(bus: BusConnection): Promise<number> {
  return (await bus.jsm.streams.info(bus.names.predictionStream)).state.messages;
}

/** A subscriber of every stream on the api's /v1/stream, counting the predictions it receives. */
async function subscribeAll(apiAddress: string, symbols: number): Promise<{ readonly frames: () => number; close(): void }> {
  const socket = new WebSocket(`${apiAddress.replace(/^http/, 'ws')}/v1/stream`);
  let frames = 0;
  socket.on('message', (data) => {
    if ((JSON.parse(String(data)) as { type?: string }).type !== 'prediction') return;
    frames++;
  });
  await new Promise((resolveOpen, reject) => socket.once('open', resolveOpen).once('error', reject));
  socket.send(JSON.stringify({ subscribe: Array.from({ length: symbols }, (_, s) => `nasdaq:AMZN${s}`) }));
  return { frames: () => frames, close: () => socket.close() };
}

async function metricOf(address: string, pattern: RegExp): Promise<number> {
  const text = await fetch(`${address}/metrics`)
    .then((response) => response.text())
    .catch(() => '');
  return Number(pattern.exec(text)?.[1] ?? 0);
}

async function lagOf(addresses: readonly string[]): Promise<number> {
  let lag = 0;
  for (const address of addresses) {
    const text = await fetch(`${address}/metrics`)
      .then((response) => response.text())
      .catch(() => '');
    for (const match of text.matchAll(/^lob_rtrl_bus_consumer_lag\{[^}]*\} (\d+)$/gm)) lag += Number(match[1]);
  }
  return lag;
}

async function run(root: string, natsUrl: string, snapshots: readonly BookSnapshot[], workers: number, symbols: number): Promise<BusRunRow> {
  const prefix = `bench${workers}_${Date.now() % 100_000}`;
  const config = busConfig({ natsUrl, natsPrefix: prefix, natsPartitions: PARTITIONS });
  const bus = await connectBus(config, { name: 'bench' });
  const publisher = new MarketLogPublisher(bus);
  // The failover run publishes two thirds once both workers listen, so the victim's streams
  // still have new input when it dies.
  const prefilled = workers === 2 ? Math.floor(snapshots.length / 3) : snapshots.length;
  const publishStarted = performance.now();
  for (const snapshot of snapshots.slice(0, prefilled)) await publisher.publish('nasdaq', snapshot);
  const publishPerSecond = prefilled / ((performance.now() - publishStarted) / 1000);

  const cli = resolve(root, 'dist/src/cli/main.js');
  const env = {
    LOB_RTRL_NATS_URL: natsUrl,
    LOB_RTRL_NATS_PREFIX: prefix,
    LOB_RTRL_NATS_PARTITIONS: String(PARTITIONS),
    LOB_RTRL_NATS_LEASE_SECONDS: String(LEASE_SECONDS),
    LOB_RTRL_LEVELS: '5',
    LOB_RTRL_LOG_LEVEL: 'info',
  };
  // The api first, so every prediction reaches it as a new one.
  const api = startRole(cli, 'api', env);
  const apiAddress = await addressOf(api);
  const subscriber = await subscribeAll(apiAddress, symbols);
  let apiMaxLag = 0;
  // Timed from the spawns: the workers consume as soon as they own partitions, before they listen.
  const started = performance.now();
  const children = Array.from({ length: workers }, () => startRole(cli, 'worker', env));
  let failoverSeconds: number | null = null;
  let maxLag = 0;
  let rest: Promise<void> = Promise.resolve();
  try {
    const addresses = await Promise.all(children.map(addressOf));
    // At a steady 1,000 messages/s: input keeps arriving for seconds after the kill.
    rest = (async () => {
      const restStarted = performance.now();
      for (const [i, snapshot] of snapshots.slice(prefilled).entries()) {
        const due = restStarted + i;
        if (performance.now() < due) await new Promise((resolveWait) => setTimeout(resolveWait, due - performance.now()));
        await publisher.publish('nasdaq', snapshot);
      }
    })();
    let killedAt: number | null = null;
    let victimPartitions: number[] = [];
    const victimSymbols = new Set<string>();
    let watcher: Promise<void> | null = null;
    for (;;) {
      const stored = await storedPredictions(bus);
      if (stored >= snapshots.length) break;
      maxLag = Math.max(maxLag, await lagOf(addresses));
      apiMaxLag = Math.max(apiMaxLag, await metricOf(apiAddress, /^lob_rtrl_api_consumer_lag (\d+)$/m));
      if (workers === 2 && killedAt === null && stored >= snapshots.length / 3) {
        const owned = await Promise.all(
          addresses.map(async (address) => ((await fetch(`${address}/healthz`).then((response) => response.json())) as { partitions: number[] }).partitions),
        );
        const victim = owned[0].length >= owned[1].length ? 0 : 1;
        victimPartitions = owned[victim];
        for (let s = 0; s < 1000; s++) if (victimPartitions.includes(partitionOf('nasdaq', `AMZN${s}`, PARTITIONS))) victimSymbols.add(`AMZN${s}`);
        const since = await storedPredictions(bus);
        children[victim].kill('SIGKILL');
        killedAt = performance.now();
        watcher = firstNewPrediction(bus, since, victimSymbols, killedAt).then((at) => {
          failoverSeconds = (at - (killedAt as number)) / 1000;
        });
      }
      await new Promise((resolveWait) => setTimeout(resolveWait, 100));
    }
    await watcher;
    await rest;
  } finally {
    for (const child of children) child.kill('SIGKILL');
  }
  const seconds = (performance.now() - started) / 1000;
  for (const deadline = performance.now() + 30_000; subscriber.frames() < snapshots.length && performance.now() < deadline;) {
    await new Promise((resolveWait) => setTimeout(resolveWait, 10));
  }
  const apiFrames = subscriber.frames();
  subscriber.close();
  api.kill('SIGTERM');
  await bus.jsm.streams.delete(bus.names.marketStream).catch(() => undefined);
  await bus.close();
  return {
    workers,
    snapshots: snapshots.length,
    publishPerSecond,
    seconds,
    predictionsPerSecond: snapshots.length / seconds,
    maxLag,
    failoverSeconds,
    apiMaxLag,
    apiFrames,
  };
}

/**
 * When the first prediction of one of `symbols` is stored after position `since` and more than
 * 100 ms after the kill (later than any the victim still had in flight): the new owner's first.
 */
async function firstNewPrediction(bus: BusConnection, since: number, symbols: ReadonlySet<string>, killedAt: number): Promise<number> {
  const consumer = await bus.js.consumers.get(bus.names.predictionStream, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: since + 1 });
  for (const deadline = performance.now() + 120_000; performance.now() < deadline;) {
    const batch = await consumer.fetch({ max_messages: 100, expires: 1000 });
    for await (const message of batch) {
      if (symbols.has(message.json<{ symbol: string }>().symbol) && performance.now() > killedAt + 100) return performance.now();
    }
  }
  return Number.NaN;
}

export async function benchBus(root: string, dataDir: string): Promise<void> {
  let nats;
  try {
    nats = await startNatsServer();
  } catch (error) {
    console.log(`skipped: ${error instanceof Error ? error.message : String(error)}`);
    return;
  }
  try {
    const total = Number(process.env.LOB_BENCH_BUS_SNAPSHOTS ?? 24_000);
    const symbols = Number(process.env.LOB_BENCH_BUS_SYMBOLS ?? 8);
    const { source, snapshots } = await input(root, dataDir, total, symbols);
    console.log(`input: ${snapshots.length} snapshots over ${symbols} streams, ${PARTITIONS} partitions, lease ${LEASE_SECONDS} s; from ${source}`);
    const rows: BusRunRow[] = [];
    const counts = (process.env.LOB_BENCH_BUS_WORKERS ?? '1,2,4').split(',').map(Number);
    for (const workers of counts) rows.push(await run(root, nats.url, snapshots, workers, symbols));
    console.log(
      '| workers | publish msg/s | predictions stored/s | wall s | max consumer lag | failover s (kill to first new prediction) | api: max consumer lag | api: WS frames |',
    );
    console.log('|---|---|---|---|---|---|---|---|');
    for (const row of rows) {
      console.log(
        `| ${row.workers} | ${row.publishPerSecond.toFixed(0)} | ${row.predictionsPerSecond.toFixed(0)} | ${row.seconds.toFixed(2)} | ${row.maxLag} | ${row.failoverSeconds === null ? '—' : row.failoverSeconds.toFixed(2)} | ${row.apiMaxLag} | ${row.apiFrames} of ${row.snapshots} |`,
      );
    }
    console.log(
      "timed from spawning the workers (process start, the first owner taking every partition and handing shares over, all included); the failover run (2 workers) publishes two thirds of its input at 1,000/s once both listen and kills the worker with more partitions a third of the way in, so its rate is the publisher's.",
    );
  } finally {
    await nats.dispose();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const root = resolve(new URL('../..', import.meta.url).pathname);
  await benchBus(root, resolve(process.env.LOB_SHARED_DATA ?? resolve(root, '../shared/data')));
}
