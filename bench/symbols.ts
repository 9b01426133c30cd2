// Many symbols in one service, from outside: `lob-rtrl serve` in its own process with the default
// models, 1,000 symbols pushed a few ticks each. Measures resident memory per symbol: in memory
// (just after its ticks), once idle past the hibernation time (the server runs with
// hibernateIdleSeconds = 5 so the bench need not wait a minute), after a restart (stored symbols
// are restored asleep), and what as many new symbols again add while the first ones sleep (a
// server and database of their own); how long the first message after hibernation takes to be
// acknowledged (the wake-up: restored from SQLite, then applied) against the next one; what a
// checkpoint weighs (young, and after 2,000 ticks); how long a restart takes to listen and to
// have every symbol restored; and how long /healthz waits then and while periodic checkpoints of
// 300 symbols are written. Goals: an idle symbol at most 300 KB, no stall over 50 ms.
// `--cli <path>` runs another build under the same load (one without hibernation reports n/a).
//   npx tsc -p tsconfig.build.json && node dist/bench/run.js --only symbols
import Database from 'better-sqlite3';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatTable } from './learners.js';
import { percentiles, spawnServer, type SpawnedServer } from './spawned-server.js';

/** BENCH_SYMBOLS runs it smaller, to check it works. */
const SYMBOLS = Number(process.env.BENCH_SYMBOLS ?? 1000);
const TICKS_PER_SYMBOL = 20;
const BUSY_TICKS = 2000;
const PERIODIC_SYMBOLS = 300;
const BODY_SNAPSHOTS = 500;
const HIBERNATE_IDLE_SECONDS = 5;
/** Symbols woken one at a time for the wake-up latency. */
const WAKE_SYMBOLS = Math.min(200, SYMBOLS - 1);

interface Row {
  readonly ts: number;
  readonly bids: number[][];
  readonly asks: number[][];
}

export interface SymbolsResult {
  readonly label: string;
  /** Resident memory per symbol in memory, measured just after its ticks. */
  readonly rssPerIdleSymbolKb: number;
  /** The same once every symbol has hibernated (NaN for a build without hibernation). */
  readonly rssPerHibernatedSymbolKb: number;
  /** Growth of RSS per symbol from listening to every stored symbol restored, after a restart at the default configuration. */
  readonly rssPerRestoredSymbolKb: number;
  /** RSS growth per symbol for as many new symbols again, pushed while the first ones sleep. */
  readonly rssPerSymbolBesideSleepersKb: number;
  /** Acknowledgement of one snapshot: the first after hibernation (wake-up), and the next one. */
  readonly wakeAckMs: { p50: number; p99: number; max: number };
  readonly awakeAckMs: { p50: number; p99: number; max: number };
  readonly checkpointYoungKb: number;
  readonly checkpointBusyKb: number;
  readonly databaseMb: number;
  readonly listenSeconds: number;
  readonly restoredSeconds: number;
  readonly restoreHealthMs: { p50: number; p99: number; max: number };
  readonly periodicHealthMs: { p50: number; p99: number; max: number };
}

/** GET /v1/symbols' count of hibernated symbols (undefined for a build without hibernation). */
async function hibernatedCount(server: SpawnedServer): Promise<number | undefined> {
  return ((await (await fetch(`${server.url}/v1/symbols`)).json()) as { hibernated?: number }).hibernated;
}

async function waitHibernated(server: SpawnedServer, count: number): Promise<void> {
  const deadline = performance.now() + 120_000;
  while (((await hibernatedCount(server)) ?? 0) < count) {
    if (performance.now() > deadline) throw new Error(`symbols not hibernated within 2 minutes: ${await hibernatedCount(server)} of ${count}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function timedPost(server: SpawnedServer, body: string): Promise<number> {
  const started = performance.now();
  await post(server, body);
  return performance.now() - started;
}

async function post(server: SpawnedServer, body: string): Promise<void> {
  const response = await fetch(`${server.url}/v1/snapshots`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
  if (response.status !== 200) throw new Error(`POST /v1/snapshots: ${response.status} ${(await response.text()).slice(0, 200)}`);
}

/** Times GET /healthz back to back (10 ms apart) until `until` resolves. */
async function pollHealth(url: string, until: Promise<unknown>): Promise<number[]> {
  let done = false;
  void until.then(() => (done = true));
  const latencies: number[] = [];
  while (!done) {
    const started = performance.now();
    await (await fetch(`${url}/healthz`)).arrayBuffer();
    latencies.push(performance.now() - started);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return latencies;
}

export async function benchSymbols(root: string, cli: string, label: string): Promise<SymbolsResult> {
  const rows = readFileSync(join(root, 'fixtures/canonical/amzn-2012-06-21-first300.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Row);
  const snapshot = (symbol: string, seq: number) => {
    const row = rows[seq % rows.length];
    return `{"symbol":"${symbol}","ts":${rows[0].ts + seq},"seq":${seq},"bids":${JSON.stringify(row.bids)},"asks":${JSON.stringify(row.asks)}}`;
  };
  /** TICKS_PER_SYMBOL ticks for each of S<from> .. S<to - 1>, a tick of every symbol before the next. */
  const pushTicks = async (server: SpawnedServer, from: number, to: number) => {
    for (let tick = 0; tick < TICKS_PER_SYMBOL; tick++) {
      for (let start = from; start < to; start += BODY_SNAPSHOTS) {
        const parts: string[] = [];
        for (let s = start; s < Math.min(to, start + BODY_SNAPSHOTS); s++) parts.push(snapshot(`S${s}`, tick));
        await post(server, `[${parts.join(',')}]`);
      }
    }
  };
  const dir = mkdtempSync(join(tmpdir(), 'lob-rtrl-bench-symbols-'));
  const db = join(dir, 'symbols.sqlite');
  const env: Record<string, string> = { LOB_RTRL_DB: db, LOB_RTRL_MAX_SYMBOLS: '2000', LOB_RTRL_CHECKPOINT_EVERY_SECONDS: '3600', LOB_RTRL_CHECKPOINT_EVERY_TICKS: '1000000' };
  try {
    // 1. Idle symbols: RSS before and after 1,000 symbols with a few ticks each, then once they
    // have hibernated, and the acknowledgement of the message that wakes one.
    const hibernating = { ...env, LOB_RTRL_HIBERNATE_IDLE_SECONDS: String(HIBERNATE_IDLE_SECONDS) };
    let first: SpawnedServer;
    let canHibernate = true;
    try {
      first = await spawnServer(cli, hibernating);
    } catch {
      // A build before hibernation refuses the unknown variable.
      canHibernate = false;
      first = await spawnServer(cli, env);
    }
    await post(first, snapshot('WARM', 0));
    await new Promise((resolve) => setTimeout(resolve, 500));
    const baseRss = first.rssBytes();
    await pushTicks(first, 0, SYMBOLS);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const rssPerIdleSymbolKb = (first.rssBytes() - baseRss) / SYMBOLS / 1024;
    let rssPerHibernatedSymbolKb = Number.NaN;
    let rssPerSymbolBesideSleepersKb = Number.NaN;
    const wake: number[] = [];
    const awake: number[] = [];
    if (canHibernate && (await hibernatedCount(first)) !== undefined) {
      await waitHibernated(first, SYMBOLS + 1);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      rssPerHibernatedSymbolKb = (first.rssBytes() - baseRss) / SYMBOLS / 1024;
      for (let s = 0; s < WAKE_SYMBOLS; s++) {
        wake.push(await timedPost(first, snapshot(`S${s}`, TICKS_PER_SYMBOL)));
        awake.push(await timedPost(first, snapshot(`S${s}`, TICKS_PER_SYMBOL + 1)));
      }
    }
    // One busy symbol, for the checkpoint size after many ticks.
    for (let from = 0; from < BUSY_TICKS; from += BODY_SNAPSHOTS) {
      const parts: string[] = [];
      for (let tick = from; tick < from + BODY_SNAPSHOTS; tick++) parts.push(snapshot('BUSY', tick));
      await post(first, `[${parts.join(',')}]`);
    }
    await first.stop();
    if (canHibernate) {
      // As many new symbols again while the first ones sleep, on a database of its own: the
      // memory the sleepers freed is reused by the newcomers.
      const beside = await spawnServer(cli, { ...hibernating, LOB_RTRL_DB: join(dir, 'beside.sqlite'), LOB_RTRL_MAX_SYMBOLS: String(2 * SYMBOLS) });
      await pushTicks(beside, 0, SYMBOLS);
      await waitHibernated(beside, SYMBOLS);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const sleepersRss = beside.rssBytes();
      await pushTicks(beside, SYMBOLS, 2 * SYMBOLS);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      rssPerSymbolBesideSleepersKb = (beside.rssBytes() - sleepersRss) / SYMBOLS / 1024;
      await beside.stop();
    }
    const store = new Database(db, { readonly: true });
    const sizeOf = (symbol: string) => (store.prepare('SELECT size_bytes FROM checkpoints WHERE symbol = ? ORDER BY id DESC LIMIT 1').pluck().get(symbol) as number) / 1024;
    // The last symbol was not woken: its newest checkpoint is the one it hibernated with.
    const checkpointYoungKb = sizeOf(`S${SYMBOLS - 1}`);
    const checkpointBusyKb = sizeOf('BUSY');
    store.close();
    const databaseMb = statSync(db).size / 1024 / 1024;

    // 2. Restart on that database: time to listen, time until every symbol is restored, and
    // /healthz meanwhile (a build that restores before listening answers once it is done).
    // At the default configuration: with hibernation, symbols restored in the background sleep
    // until a message asks for them, so the restart's RSS per symbol is a hibernated symbol's.
    const spawned = performance.now();
    const second = await spawnServer(cli, env);
    const listenSeconds = (performance.now() - spawned) / 1000;
    const listeningRss = second.rssBytes();
    const restored = (async () => {
      for (;;) {
        const body = (await (await fetch(`${second.url}/v1/symbols`)).json()) as { restoring?: number; symbols: unknown[] };
        if ((body.restoring ?? 0) === 0 && body.symbols.length >= SYMBOLS) return;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    const restoreHealth = await pollHealth(second.url, restored);
    const restoredSeconds = (performance.now() - spawned) / 1000;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const rssPerRestoredSymbolKb = (second.rssBytes() - listeningRss) / SYMBOLS / 1024;
    await second.stop();

    // 3. Periodic checkpoints of 300 symbols that moved, every 2 s, with /healthz polled.
    const third = await spawnServer(cli, { ...env, LOB_RTRL_CHECKPOINT_EVERY_SECONDS: '2' });
    const parts: string[] = [];
    // Past the two ticks of the wake-up phase.
    for (let s = 0; s < PERIODIC_SYMBOLS; s++) parts.push(snapshot(`S${s}`, TICKS_PER_SYMBOL + 2));
    await post(third, `[${parts.join(',')}]`);
    const periodicHealth = await pollHealth(third.url, new Promise((resolve) => setTimeout(resolve, 6000)));
    await third.stop();

    return {
      label,
      rssPerIdleSymbolKb,
      rssPerHibernatedSymbolKb,
      rssPerRestoredSymbolKb,
      rssPerSymbolBesideSleepersKb,
      wakeAckMs: percentiles(wake),
      awakeAckMs: percentiles(awake),
      checkpointYoungKb,
      checkpointBusyKb,
      databaseMb,
      listenSeconds,
      restoredSeconds,
      restoreHealthMs: percentiles(restoreHealth),
      periodicHealthMs: percentiles(periodicHealth),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function formatSymbols(results: readonly SymbolsResult[]): string {
  const f = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : 'n/a');
  return formatTable(
    [
      'build',
      'RSS/idle symbol KB (in memory / hibernated / after restart / more beside sleepers)',
      'first ack after hibernation p50/p99 ms (next ack p50)',
      'checkpoint KB (20 / 2,000 ticks)',
      'db MB',
      'listen s',
      'all restored s',
      '/healthz while restoring p99/max ms',
      '/healthz during checkpoints p99/max ms',
    ],
    results.map((r) => [
      r.label,
      `${f(r.rssPerIdleSymbolKb, 0)} / ${f(r.rssPerHibernatedSymbolKb, 0)} / ${f(r.rssPerRestoredSymbolKb, 0)} / ${f(r.rssPerSymbolBesideSleepersKb, 0)}`,
      `${f(r.wakeAckMs.p50)} / ${f(r.wakeAckMs.p99)} (${f(r.awakeAckMs.p50)})`,
      `${f(r.checkpointYoungKb, 0)} / ${f(r.checkpointBusyKb, 0)}`,
      f(r.databaseMb),
      f(r.listenSeconds, 2),
      f(r.restoredSeconds, 2),
      `${f(r.restoreHealthMs.p99)} / ${f(r.restoreHealthMs.max)}`,
      `${f(r.periodicHealthMs.p99)} / ${f(r.periodicHealthMs.max)}`,
    ]),
  );
}
