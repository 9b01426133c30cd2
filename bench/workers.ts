// Two busy symbols on worker threads: the same interleaved AMZN and AAPL snapshots (the LOBSTER
// samples in ../shared/data, else the excerpts in fixtures/) through every symbol on this
// thread (the Engine), both symbols on one worker, and one symbol per worker on two, side by
// side in one run. The messages are read into memory first, so the figures are the engine's
// and the wire's, not the file reader's. Run after a build:
//   npx tsc -p tsconfig.build.json && node dist/bench/workers.js
// LOB_BENCH_WORKER_TICKS sets the snapshots per symbol (default 20,000). The same runs again on
// two equally busy symbols (the AMZN books under two names): alternating in lock step, two
// workers go at the pace of the dearer symbol, so AMZN beside AAPL measures their imbalance too;
// each worker's busy share says how long it waited.
// Beside them, the machine's own ceiling for two cores: one symbol on this thread in one
// process, then in two processes at once (nothing shared but the machine). The goal of 1.8 is
// only reachable where two processes reach it.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { BookSnapshot } from '../src/domain/types.js';
import { defaultEngineConfig, type EngineConfig } from '../src/engine/config.js';
import { Engine } from '../src/engine/engine.js';
import { SymbolWorkerPool } from '../src/engine/worker-pool.js';
import { lobster } from '../src/venues/lobster.js';

export interface WorkersBenchRow {
  readonly label: string;
  readonly ticks: number;
  readonly seconds: number;
  readonly eventsPerSecond: number;
  /** Share of the wall time the main thread was busy (encoding, handing predictions over), null in-thread. */
  readonly mainBusy: number | null;
  /** Share of the wall time each worker was busy on batches, null in-thread. */
  readonly workersBusy: number[] | null;
}

async function snapshotsOf(paths: readonly string[], limit: number): Promise<BookSnapshot[]> {
  const snapshots: BookSnapshot[] = [];
  for await (const message of lobster.read(paths, { levels: 5 })) {
    if (message.type !== 'book_snapshot') continue;
    snapshots.push(message);
    if (snapshots.length === limit) break;
  }
  return snapshots;
}

/** Two symbols' snapshots alternating, so both workers always have work. */
async function twoBusySymbols(root: string, dataDir: string, perSymbol: number): Promise<{ source: string; messages: BookSnapshot[] }> {
  const amznZip = resolve(dataDir, 'lobster/LOBSTER_SampleFile_AMZN_2012-06-21_5.zip');
  const aaplZip = resolve(dataDir, 'lobster/LOBSTER_SampleFile_AAPL_2012-06-21_1.zip');
  const fromData = existsSync(amznZip) && existsSync(aaplZip);
  const fixture = (name: string) => resolve(root, 'fixtures/lobster', name);
  const amzn = await snapshotsOf(
    fromData ? [amznZip] : [fixture('AMZN_2012-06-21_34200000_57600000_message_5.csv'), fixture('AMZN_2012-06-21_34200000_57600000_orderbook_5.csv')],
    perSymbol,
  );
  const aapl = await snapshotsOf(
    fromData ? [aaplZip] : [fixture('AAPL_2012-06-21_34200000_57600000_message_10.csv'), fixture('AAPL_2012-06-21_34200000_57600000_orderbook_10.csv')],
    perSymbol,
  );
  const ticks = Math.min(amzn.length, aapl.length);
  const messages: BookSnapshot[] = [];
  for (let i = 0; i < ticks; i++) messages.push(amzn[i], aapl[i]);
  return { source: fromData ? `${dataDir}/lobster samples` : 'fixtures/lobster excerpts (samples not found)', messages };
}

/**
 * The same books under other symbol names, run untimed first on every thread that will be
 * timed (one warm-up symbol per worker, placed before the timed ones), so each figure is of
 * compiled code, not of a thread's first seconds.
 */
function warmUpOf(messages: readonly BookSnapshot[]): BookSnapshot[] {
  return messages.slice(0, Math.min(messages.length, 2000)).map((m) => ({ ...m, symbol: `${m.symbol}-warm-up` }));
}

function inThread(config: EngineConfig, messages: readonly BookSnapshot[]): WorkersBenchRow {
  const engine = new Engine(config);
  for (const message of warmUpOf(messages)) engine.process(message);
  const started = performance.now();
  for (const message of messages) engine.process(message);
  const seconds = (performance.now() - started) / 1000;
  return { label: 'main thread (--workers 1)', ticks: messages.length, seconds, eventsPerSecond: messages.length / seconds, mainBusy: null, workersBusy: null };
}

async function onWorkers(config: EngineConfig, messages: readonly BookSnapshot[], workers: number): Promise<WorkersBenchRow> {
  let predictions = 0;
  const pool = new SymbolWorkerPool({ workers, config, onPrediction: () => predictions++ });
  try {
    // Threads start, warm up and open the timed symbols before the clock runs: the figure is the steady state.
    const warmUp = warmUpOf(messages);
    await Promise.all([...new Set(warmUp.map((m) => m.symbol))].map((symbol) => pool.open(symbol)));
    for (const message of warmUp) pool.snapshot(message);
    await pool.drain();
    await Promise.all([...new Set(messages.map((m) => m.symbol))].map((symbol) => pool.open(symbol)));
    predictions = 0;
    const busyBefore = pool.busyMsByWorker();
    const started = performance.now();
    const loopBefore = performance.eventLoopUtilization();
    for (let i = 0; i < messages.length; i++) {
      pool.snapshot(messages[i]);
      if (i % 1024 === 1023) {
        pool.flush();
        await pool.roundsBelow(8 * workers);
      }
    }
    await pool.drain();
    const seconds = (performance.now() - started) / 1000;
    const mainBusy = performance.eventLoopUtilization(loopBefore).utilization;
    const workersBusy = pool.busyMsByWorker().map((ms, i) => (ms - busyBefore[i]) / 1000 / seconds);
    if (pool.firstFailure) throw pool.firstFailure;
    if (predictions !== messages.length) throw new Error(`workers bench: ${predictions} predictions for ${messages.length} snapshots`);
    return { label: `${workers} worker${workers === 1 ? '' : 's'}`, ticks: messages.length, seconds, eventsPerSecond: messages.length / seconds, mainBusy, workersBusy };
  } finally {
    await pool.close();
  }
}

function printRows(rows: readonly WorkersBenchRow[]): void {
  const one = rows.find((row) => row.label === '1 worker')?.eventsPerSecond ?? rows[0].eventsPerSecond;
  for (const row of rows) {
    const busy = row.workersBusy === null ? '' : `, workers busy ${row.workersBusy.map((share) => `${(share * 100).toFixed(0)}%`).join(' / ')}`;
    console.log(
      `${row.label.padEnd(28)} ${row.seconds.toFixed(2).padStart(7)} s ${Math.round(row.eventsPerSecond).toLocaleString('en-US').padStart(9)} events/s  ×${(row.eventsPerSecond / one).toFixed(2)} of one worker${row.mainBusy === null ? '' : `, main thread busy ${(row.mainBusy * 100).toFixed(0)}%`}${busy}`,
    );
  }
}

/** One symbol's snapshots on this thread, timed after a warm-up: what a child process of `processCeiling` reports. */
async function childRun(root: string, dataDir: string, perSymbol: number): Promise<void> {
  const config: EngineConfig = { ...defaultEngineConfig, levels: 5 };
  const { messages } = await twoBusySymbols(root, dataDir, perSymbol);
  const own = messages.filter((message) => message.symbol === messages[0].symbol);
  const row = inThread(config, own);
  process.stdout.write(`${JSON.stringify({ eventsPerSecond: row.eventsPerSecond })}\n`);
}

function spawnChild(perSymbol: number): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    execFile(process.execPath, [fileURLToPath(import.meta.url), '--child'], { env: { ...process.env, LOB_BENCH_WORKER_TICKS: String(perSymbol) } }, (error, stdout) => {
      if (error) reject(error);
      else resolvePromise((JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as { eventsPerSecond: number }).eventsPerSecond);
    });
  });
}

/** One process on one symbol, then two at once; their sum against the one, pair by pair. */
async function processCeiling(perSymbol: number, rounds = 3): Promise<{ one: number; two: number; ratios: number[] }> {
  const ratios: number[] = [];
  let one = 0;
  let two = 0;
  for (let round = 0; round < rounds; round++) {
    one = await spawnChild(perSymbol);
    const pair = await Promise.all([spawnChild(perSymbol), spawnChild(perSymbol)]);
    two = pair[0] + pair[1];
    ratios.push(two / one);
  }
  return { one, two, ratios };
}

export async function benchWorkers(root: string, dataDir: string): Promise<WorkersBenchRow[]> {
  const perSymbol = Number(process.env.LOB_BENCH_WORKER_TICKS ?? 20_000);
  const config: EngineConfig = { ...defaultEngineConfig, levels: 5 };
  const { source, messages } = await twoBusySymbols(root, dataDir, perSymbol);
  console.log(
    `two busy symbols (AMZN, AAPL alternating), ${messages.length.toLocaleString('en-US')} snapshots from ${source}, default models (${config.models.length}, N = ${config.learner.hidden}), 5 levels`,
  );
  const rows = [inThread(config, messages), await onWorkers(config, messages, 1), await onWorkers(config, messages, 2)];
  printRows(rows);
  // Alternating in lock step, the two workers go at the pace of the dearer symbol: the cheaper
  // one's worker waits (its busy share says how long). Two equally dear symbols, the same AMZN
  // books under two names, measure the pool itself, as the two processes below do.
  const amzn = messages.filter((message) => message.symbol === messages[0].symbol);
  const twins = amzn.flatMap((message) => [message, { ...message, symbol: `${message.symbol}-twin` }]);
  console.log(`two equally busy symbols (${amzn[0].symbol} and the same books as ${amzn[0].symbol}-twin, alternating), ${twins.length.toLocaleString('en-US')} snapshots`);
  // One worker then two, three times: a shared host's speed drifts between runs, so the ratio
  // is taken pair by pair and its median quoted, as for the two processes below.
  const pairs: WorkersBenchRow[][] = [];
  for (let round = 0; round < 3; round++) pairs.push([await onWorkers(config, twins, 1), await onWorkers(config, twins, 2)]);
  const ratios = pairs.map(([one, two]) => two.eventsPerSecond / one.eventsPerSecond);
  const middle = pairs[ratios.indexOf([...ratios].sort((a, b) => a - b)[1])];
  printRows(middle);
  console.log(
    `two workers over one on equal symbols, pair by pair: ${ratios.map((r) => r.toFixed(2)).join(', ')}; median ×${[...ratios].sort((a, b) => a - b)[1].toFixed(2)} (the pair above)`,
  );
  rows.push(...middle.map((row) => ({ ...row, label: `${row.label} (equal symbols)` })));
  console.log('goal: two workers at least 1.8 times one worker.');
  const ceiling = await processCeiling(perSymbol);
  const sorted = [...ceiling.ratios].sort((a, b) => a - b);
  console.log(
    `the machine's ceiling: one symbol in one process ${Math.round(ceiling.one).toLocaleString('en-US')} events/s, two processes at once ${Math.round(ceiling.two).toLocaleString('en-US')} events/s together; ×${sorted[Math.floor(sorted.length / 2)].toFixed(2)} (median of ${sorted.length} pairs: ${sorted.map((r) => r.toFixed(2)).join(', ')})`,
  );
  return rows;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const root = resolve(import.meta.dirname, '../..');
  const dataDir = resolve(process.env.LOB_SHARED_DATA ?? resolve(root, '../shared/data'));
  if (process.argv[2] === '--child') await childRun(root, dataDir, Number(process.env.LOB_BENCH_WORKER_TICKS ?? 20_000));
  else await benchWorkers(root, dataDir);
}
