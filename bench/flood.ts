// Ingest under a flood, from outside the server: `lob-rtrl serve` in its own process, ten
// producers on WS /v1/ingest each pushing frames of 1,000 snapshots as fast as the socket takes
// them (each well under the per-connection rate limit, together far over what the engine can
// do), one polite producer at 100 ticks/s timing each ack, and a poller timing GET /healthz.
// The goal: the polite producer's ack p99 and /healthz p99 both under 50 ms.
// `--cli <path>` runs another build (an older checkout's dist/src/cli/main.js) under the same load.
//   npx tsc -p tsconfig.build.json && node dist/bench/run.js --only flood
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { formatTable } from './learners.js';
import { percentiles, spawnServer } from './spawned-server.js';

const FLOODERS = 10;
const FRAME_SNAPSHOTS = 1000;
const POLITE_INTERVAL_MS = 10;
const HEALTH_INTERVAL_MS = 20;
const WARMUP_MS = 2000;
const MEASURE_MS = 20_000;
/** A flooder keeps at most this much unsent in its own socket (TCP pushes back beyond). */
const FLOODER_BUFFER_BYTES = 4 * 1024 * 1024;

interface Row {
  readonly symbol: string;
  readonly ts: number;
  readonly bids: number[][];
  readonly asks: number[][];
}

export interface FloodResult {
  readonly label: string;
  readonly politeAckMs: { p50: number; p99: number; max: number };
  readonly politeSent: number;
  readonly politeAcked: number;
  readonly healthMs: { p50: number; p99: number; max: number };
  readonly healthChecks: number;
  readonly floodAckedPerSecond: number;
  readonly floodRateLimited: number;
}

function loadRows(root: string): Row[] {
  return readFileSync(join(root, 'fixtures/canonical/amzn-2012-06-21-first300.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Row);
}

function open(url: string): Promise<WebSocket> {
  const socket = new WebSocket(url);
  return new Promise((resolve, reject) => {
    socket.once('open', () => resolve(socket));
    socket.once('error', reject);
  });
}

export async function benchFlood(root: string, cli: string, label: string): Promise<FloodResult> {
  const rows = loadRows(root);
  const sides = rows.map((row) => `"bids":${JSON.stringify(row.bids)},"asks":${JSON.stringify(row.asks)}}`);
  const baseTs = rows[0].ts;
  const snapshotJson = (symbol: string, seq: number) => `{"symbol":"${symbol}","ts":${baseTs + seq},"seq":${seq},${sides[seq % sides.length]}`;

  // A database of its own: the default one would restore the last run's symbols, and their
  // ordering would refuse every snapshot of this run (seq starts at 0 again) as out of order.
  const dbDir = mkdtempSync(join(tmpdir(), 'lob-rtrl-bench-flood-'));
  const server = await spawnServer(cli, { LOB_RTRL_DB: join(dbDir, 'flood.sqlite') });
  const wsUrl = `${server.url.replace(/^http/, 'ws')}/v1/ingest`;
  let measuring = false;
  let stopping = false;

  // Flooders: one symbol each, frames back to back while their socket buffer has room.
  let floodAcked = 0;
  let floodRateLimited = 0;
  const flooders = await Promise.all(Array.from({ length: FLOODERS }, () => open(wsUrl)));
  flooders.forEach((socket, k) => {
    const symbol = `FLOOD${k}`;
    let seq = 0;
    socket.on('message', (data: Buffer) => {
      const reply = JSON.parse(data.toString()) as { type: string; reason?: string; accepted?: unknown[] };
      if (!measuring) return;
      if (reply.type === 'ack') floodAcked += reply.accepted?.length ?? 0;
      else if (reply.reason === 'rate_limited') floodRateLimited++;
    });
    const pump = () => {
      if (stopping || socket.readyState !== WebSocket.OPEN) return;
      while (socket.bufferedAmount < FLOODER_BUFFER_BYTES) {
        const parts: string[] = [];
        for (let i = 0; i < FRAME_SNAPSHOTS; i++) parts.push(snapshotJson(symbol, seq++));
        socket.send(`[${parts.join(',')}]`);
      }
      setTimeout(pump, 5);
    };
    pump();
  });

  // The polite producer: one snapshot every 10 ms, each ack timed from its send.
  const polite = await open(wsUrl);
  const sentAt = new Map<number, number>();
  const politeLatencies: number[] = [];
  let politeFrame = 0;
  let politeSent = 0;
  polite.on('message', (data: Buffer) => {
    const reply = JSON.parse(data.toString()) as { type: string; frame: number };
    if (reply.type !== 'ack') return;
    const started = sentAt.get(reply.frame);
    sentAt.delete(reply.frame);
    if (started !== undefined && measuring) politeLatencies.push(performance.now() - started);
  });
  const politeTimer = setInterval(() => {
    politeFrame++;
    if (measuring) {
      sentAt.set(politeFrame, performance.now());
      politeSent++;
    }
    polite.send(snapshotJson('POLITE', politeFrame));
  }, POLITE_INTERVAL_MS);

  // The health poller: one request at a time.
  const healthLatencies: number[] = [];
  const healthLoop = (async () => {
    while (!stopping) {
      const started = performance.now();
      const response = await fetch(`${server.url}/healthz`);
      await response.arrayBuffer();
      if (measuring) healthLatencies.push(performance.now() - started);
      await new Promise((resolve) => setTimeout(resolve, HEALTH_INTERVAL_MS));
    }
  })();

  await new Promise((resolve) => setTimeout(resolve, WARMUP_MS));
  measuring = true;
  const started = performance.now();
  await new Promise((resolve) => setTimeout(resolve, MEASURE_MS));
  measuring = false;
  const seconds = (performance.now() - started) / 1000;
  stopping = true;
  clearInterval(politeTimer);
  // Unanswered polite frames count at their age now: an ack that never came is the worst latency.
  const now = performance.now();
  for (const at of sentAt.values()) politeLatencies.push(now - at);
  for (const socket of [...flooders, polite]) socket.terminate();
  await healthLoop.catch(() => {});
  await server.stop();
  rmSync(dbDir, { recursive: true, force: true });
  return {
    label,
    politeAckMs: percentiles(politeLatencies),
    politeSent,
    politeAcked: politeSent - sentAt.size,
    healthMs: percentiles(healthLatencies),
    healthChecks: healthLatencies.length,
    floodAckedPerSecond: floodAcked / seconds,
    floodRateLimited,
  };
}

export function formatFlood(results: readonly FloodResult[]): string {
  const ms = (value: number) => (Number.isFinite(value) ? value.toFixed(1) : 'n/a');
  return formatTable(
    ['build', 'polite ack p50 ms', 'p99 ms', 'max ms', 'polite acked/sent', '/healthz p50 ms', 'p99 ms', 'max ms', 'flood snapshots/s', 'rate_limited'],
    results.map((r) => [
      r.label,
      ms(r.politeAckMs.p50),
      ms(r.politeAckMs.p99),
      ms(r.politeAckMs.max),
      `${r.politeAcked}/${r.politeSent}`,
      ms(r.healthMs.p50),
      ms(r.healthMs.p99),
      ms(r.healthMs.max),
      Math.round(r.floodAckedPerSecond).toLocaleString('en-US'),
      String(r.floodRateLimited),
    ]),
  );
}
