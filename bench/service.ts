// The service under load, in one process: the app on 127.0.0.1:0 (no demo feed, temp db), a
// producer pushing canonical AMZN snapshots through WS /v1/ingest at a paced rate, and 100
// subscribers on WS /v1/stream. Measures
//   1. tick-to-prediction latency: producer send -> subscriber receive (same process clock),
//      p50/p99 at 1,000 ticks/s, for the served model set and for cheap models only;
//   2. a rate ramp: the highest rate that is kept up with before conflation starts or the
//      engine falls behind;
//   3. checkpoint write time for hidden N = 16 and 32, and the worst event-loop (tick) delay
//      while checkpoints are written, beside the same run without writes.
// Producer, server and subscribers share one event loop, so subscriber-side frame handling
// (100 sockets) is inside the latency and competes with the engine: the figures are an upper
// bound for a server whose clients run elsewhere.
//   npx tsc -p tsconfig.build.json && node dist/bench/run.js --only service
import type { FastifyInstance } from 'fastify';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { WebSocket } from 'ws';
import type { BookSnapshot } from '../src/domain/types.js';
import { LatencyHistogram } from '../src/engine/latency.js';
import { buildApp } from '../src/http/app.js';
import { streamStatsOf } from '../src/http/ws.js';
import { serviceConfigSchema, type ServiceConfig } from '../src/service/config.js';
import { ServiceRuntime, type RuntimeLogger } from '../src/service/runtime.js';
import { inStream, PUSH_VENUE, streamIdOf } from '../src/domain/stream.js';
import { toCanonicalJson } from '../src/venues/canonical.js';
import { lobster } from '../src/venues/lobster.js';
import { formatTable } from './learners.js';

const SYMBOL = 'AMZN';
/** Pushed without a venue, its books train the stream push:AMZN. */
const STREAM = streamIdOf(PUSH_VENUE, SYMBOL);
const SUBSCRIBERS = 100;
const LATENCY_RATE = 1000;
const LATENCY_SECONDS = 10;
const RAMP_RATES = [125, 250, 500, 1000, 2000, 4000, 8000, 16000];
const RAMP_SECONDS = 3;
const SERVED_MODELS = serviceConfigSchema.parse({}).models;
const CHEAP_MODELS = 'logistic,majority';

const quiet: RuntimeLogger = { info() {}, warn() {}, error() {}, debug() {} };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The recorded AMZN books of the fixture excerpt; ticks cycle through them with rising seq and ts. */
class TickSource {
  private constructor(
    readonly books: readonly BookSnapshot[],
    /** `"bids":[...],"asks":[...]}` of each book, so a frame costs one string concatenation. */
    private readonly sides: readonly string[],
  ) {}

  static async load(root: string): Promise<TickSource> {
    const stem = join(root, 'fixtures/lobster/AMZN_2012-06-21_34200000_57600000');
    const books: BookSnapshot[] = [];
    for await (const message of lobster.read([`${stem}_message_5.csv`, `${stem}_orderbook_5.csv`], { levels: 5 })) {
      if (message.type === 'book_snapshot') books.push(message);
    }
    const sides = books.map((book) => {
      const json = toCanonicalJson(book);
      return json.slice(json.indexOf('"bids":'));
    });
    return new TickSource(books, sides);
  }

  frame(seq: number): string {
    return `{"symbol":"${SYMBOL}","ts":${this.ts(seq)},"seq":${seq},${this.sides[seq % this.sides.length]}`;
  }

  snapshot(seq: number): BookSnapshot {
    const book = this.books[seq % this.books.length];
    const ts = this.ts(seq);
    return { ...book, symbol: SYMBOL, ts, localTs: ts, seq };
  }

  private ts(seq: number): number {
    return this.books[0].ts + seq;
  }
}

interface Service {
  readonly runtime: ServiceRuntime;
  readonly app: FastifyInstance;
  readonly url: string;
  close(): Promise<void>;
}

async function startService(overrides: Partial<ServiceConfig>): Promise<Service> {
  const dir = mkdtempSync(join(tmpdir(), 'lob-rtrl-bench-'));
  const config = serviceConfigSchema.parse({ db: join(dir, 'db.sqlite'), demoFeed: false, levels: 5, ingestRatePerSecond: 1_000_000, ...overrides });
  const runtime = new ServiceRuntime(config, quiet);
  const app = await buildApp({ runtime });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return {
    runtime,
    app,
    url: `ws://127.0.0.1:${port}`,
    async close() {
      await app.close();
      await runtime.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function open(url: string): Promise<WebSocket> {
  const socket = new WebSocket(url, { skipUTF8Validation: true });
  return new Promise((resolve, reject) => {
    socket.once('open', () => resolve(socket));
    socket.once('error', reject);
  });
}

const SEQ_FIELD = Buffer.from('"seq":');
const CONFLATED_FIELD = Buffer.from('"conflated":');

/** Reads the integer after `field` without parsing the whole frame (100 sockets share the loop). */
function integerAfter(frame: Buffer, field: Buffer): number {
  const at = frame.indexOf(field);
  if (at < 0) return -1;
  let value = 0;
  for (let i = at + field.length; i < frame.length; i++) {
    const digit = frame[i] - 48;
    if (digit < 0 || digit > 9) break;
    value = value * 10 + digit;
  }
  return value;
}

/** The producer's send times by seq and the subscribers' receive-side latencies. */
class LatencyProbe {
  readonly sentAt: Float64Array;
  readonly latency = new LatencyHistogram();
  received = 0;
  conflatedReported = 0;
  readonly lastSeq: Int32Array;

  constructor(capacity: number, subscribers: number) {
    this.sentAt = new Float64Array(capacity);
    this.lastSeq = new Int32Array(subscribers).fill(-1);
  }

  onFrame(subscriber: number, frame: Buffer): void {
    const now = performance.now();
    const seq = integerAfter(frame, SEQ_FIELD);
    if (seq < 0) return;
    this.received++;
    this.lastSeq[subscriber] = seq;
    this.latency.record((now - this.sentAt[seq]) * 1000);
    const conflated = integerAfter(frame, CONFLATED_FIELD);
    if (conflated > 0) this.conflatedReported += conflated;
  }
}

interface Harness {
  readonly service: Service;
  readonly source: TickSource;
  readonly probe: LatencyProbe;
  readonly producer: WebSocket;
  readonly subscribers: WebSocket[];
  nextSeq: number;
}

async function startHarness(source: TickSource, models: string, capacity: number): Promise<Harness> {
  const service = await startService({ models });
  const probe = new LatencyProbe(capacity, SUBSCRIBERS);
  const producer = await open(`${service.url}/v1/ingest`);
  const subscribers: WebSocket[] = [];
  for (let i = 0; i < SUBSCRIBERS; i++) {
    const socket = await open(`${service.url}/v1/stream`);
    await new Promise<void>((resolve) => {
      socket.once('message', () => resolve());
      socket.send(JSON.stringify({ subscribe: [SYMBOL] }));
    });
    socket.on('message', (frame: Buffer) => probe.onFrame(i, frame));
    subscribers.push(socket);
  }
  return { service, source, probe, producer, subscribers, nextSeq: 0 };
}

async function stopHarness(harness: Harness): Promise<void> {
  harness.producer.close();
  for (const socket of harness.subscribers) socket.close();
  await harness.service.close();
}

interface PacedRun {
  readonly offered: number;
  readonly seconds: number;
  readonly sent: number;
  /** Ticks the engine processed while the producer was sending, per second. */
  readonly processedPerSecond: number;
  readonly conflated: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** The last tick reached every subscriber within the drain timeout. */
  readonly drained: boolean;
}

/** Sends `rate` frames per second for `seconds`, then waits until every subscriber has the last tick. */
async function paced(harness: Harness, rate: number, seconds: number): Promise<PacedRun> {
  const { service, source, probe, producer } = harness;
  const stats = streamStatsOf(service.runtime);
  const symbolTicks = () => service.runtime.engine.symbol(STREAM)?.ticks ?? 0;
  const total = Math.round(rate * seconds);
  if (harness.nextSeq + total > probe.sentAt.length) throw new Error('bench: send-time buffer too small');
  probe.latency.reset();
  const conflatedBefore = stats.conflated;
  const ticksBefore = symbolTicks();
  const firstSeq = harness.nextSeq;
  const started = performance.now();
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - started) * rate) / 1000));
    for (; sent < due; sent++) {
      const seq = harness.nextSeq++;
      probe.sentAt[seq] = performance.now();
      producer.send(source.frame(seq));
    }
    await sleep(1);
  }
  const elapsed = (performance.now() - started) / 1000;
  const processed = symbolTicks() - ticksBefore;
  const lastSeq = firstSeq + total - 1;
  const drainDeadline = performance.now() + 20_000;
  while (performance.now() < drainDeadline && !probe.lastSeq.every((seq) => seq === lastSeq)) await sleep(5);
  return {
    offered: rate,
    seconds: elapsed,
    sent,
    processedPerSecond: processed / elapsed,
    conflated: stats.conflated - conflatedBefore,
    p50Ms: (probe.latency.quantile(0.5) ?? NaN) / 1000,
    p99Ms: (probe.latency.quantile(0.99) ?? NaN) / 1000,
    maxMs: probe.latency.maxUs / 1000,
    drained: probe.lastSeq.every((seq) => seq === lastSeq),
  };
}

const keptUp = (run: PacedRun): boolean => run.conflated === 0 && run.drained && run.processedPerSecond >= 0.95 * run.offered;

function latencyRow(label: string, run: PacedRun): string[] {
  return [
    label,
    run.offered.toLocaleString('en-US'),
    Math.round(run.processedPerSecond).toLocaleString('en-US'),
    run.p50Ms.toFixed(2),
    run.p99Ms.toFixed(2),
    run.maxMs.toFixed(1),
    String(run.conflated),
    keptUp(run) ? 'yes' : 'NO',
  ];
}

const LATENCY_HEADER = ['models', 'offered/s', 'processed/s', 'p50 ms', 'p99 ms', 'max ms', 'conflated', 'kept up'];

async function latencySection(source: TickSource): Promise<void> {
  console.log(
    `tick-to-prediction latency, ${LATENCY_RATE.toLocaleString('en-US')} ticks/s through WS /v1/ingest for ${LATENCY_SECONDS} s, ${SUBSCRIBERS} WS subscribers to ${SYMBOL} (latency over every subscriber's frames; 1 s warm-up not counted)`,
  );
  const rows: string[][] = [];
  for (const models of [SERVED_MODELS, CHEAP_MODELS]) {
    process.stderr.write(`  latency: ${models}\n`);
    const harness = await startHarness(source, models, Math.round(LATENCY_RATE * (LATENCY_SECONDS + 1)) + 1);
    try {
      await paced(harness, LATENCY_RATE, 1);
      const run = await paced(harness, LATENCY_RATE, LATENCY_SECONDS);
      const stepUs = harness.service.runtime.engine.latency.quantile(0.5) ?? Number.NaN;
      rows.push([...latencyRow(models, run), (stepUs / 1000).toFixed(3)]);
    } finally {
      await stopHarness(harness);
    }
  }
  console.log(formatTable([...LATENCY_HEADER, 'engine step p50 ms'], rows));
}

async function rampSection(source: TickSource): Promise<void> {
  console.log(
    `\ningest ramp: ${RAMP_SECONDS} s per rate, ${SUBSCRIBERS} subscribers; stops at the first rate not kept up with (conflation, or < 95% processed while sending, or not drained in 20 s)`,
  );
  for (const models of [SERVED_MODELS, CHEAP_MODELS]) {
    process.stderr.write(`  ramp: ${models}\n`);
    const capacity = RAMP_RATES.reduce((sum, rate) => sum + rate * RAMP_SECONDS, 0) + LATENCY_RATE + 1;
    const harness = await startHarness(source, models, capacity);
    const rows: string[][] = [];
    let sustained = 0;
    let firstConflation: number | null = null;
    try {
      await paced(harness, LATENCY_RATE, 1);
      for (const rate of RAMP_RATES) {
        const run = await paced(harness, rate, RAMP_SECONDS);
        rows.push(latencyRow(models, run));
        if (run.conflated > 0 && firstConflation === null) firstConflation = rate;
        if (!keptUp(run)) break;
        sustained = rate;
      }
    } finally {
      await stopHarness(harness);
    }
    console.log(formatTable(LATENCY_HEADER, rows));
    console.log(
      `${models}: sustained ${sustained > 0 ? `${sustained.toLocaleString('en-US')} ticks/s` : `below ${RAMP_RATES[0]} ticks/s`}; ` +
        (firstConflation === null
          ? 'no conflation at any rate tried (the engine or the loop saturated first)'
          : `conflation started at ${firstConflation.toLocaleString('en-US')} ticks/s`),
    );
  }
}

interface CheckpointRun {
  readonly hidden: number;
  readonly bytes: number;
  readonly writes: number;
  readonly writeP50Ms: number;
  readonly writeMaxMs: number;
  readonly loopMaxWithMs: number;
  readonly loopP99WithMs: number;
  readonly loopMaxWithoutMs: number;
  readonly tickLagMaxWithMs: number;
  readonly tickLagMaxWithoutMs: number;
}

/**
 * Ticks on a timer (every 10 ms, as live data would arrive) for 2 s without checkpoints, then
 * 2 s with a checkpoint every 100 ms: the event-loop delay and each tick's lag behind its
 * schedule show how long a write holds ticks back.
 */
async function checkpointRun(source: TickSource, hidden: number): Promise<CheckpointRun> {
  const service = await startService({ hidden, checkpointEveryTicks: 1_000_000_000, checkpointEverySeconds: 1_000_000 });
  const { runtime } = service;
  let seq = 0;
  try {
    // Past the normaliser warm-up, so the state is that of a running symbol.
    for (; seq < 300; seq++) runtime.process(inStream(PUSH_VENUE, source.snapshot(seq)));
    const measure = async (writeEveryMs: number | null) => {
      const loop = monitorEventLoopDelay({ resolution: 1 });
      let tickLagMax = 0;
      let writes = 0;
      let bytes = 0;
      const writeTimes = new LatencyHistogram();
      const started = performance.now();
      let nextTick = started;
      const tickEveryMs = 10;
      let nextWrite = writeEveryMs === null ? Number.POSITIVE_INFINITY : started + writeEveryMs;
      loop.enable();
      while (performance.now() - started < 2000) {
        const now = performance.now();
        if (now >= nextTick) {
          tickLagMax = Math.max(tickLagMax, now - nextTick);
          runtime.process(inStream(PUSH_VENUE, source.snapshot(seq++)));
          // A tick that could not run on time is not made up for: the lag is measured, not compounded.
          nextTick = Math.max(nextTick + tickEveryMs, performance.now());
        }
        if (writeEveryMs !== null && now >= nextWrite) {
          const before = performance.now();
          const meta = await runtime.checkpoint(STREAM, 'bench');
          writeTimes.record((performance.now() - before) * 1000);
          bytes = meta?.sizeBytes ?? 0;
          writes++;
          nextWrite += writeEveryMs;
        }
        await sleep(Math.max(0, Math.min(nextTick, nextWrite) - performance.now()));
      }
      loop.disable();
      return { tickLagMax, writes, bytes, writeTimes, loopMaxMs: loop.max / 1e6, loopP99Ms: loop.percentile(99) / 1e6 };
    };
    const without = await measure(null);
    const withWrites = await measure(100);
    return {
      hidden,
      bytes: withWrites.bytes,
      writes: withWrites.writes,
      writeP50Ms: (withWrites.writeTimes.quantile(0.5) ?? NaN) / 1000,
      writeMaxMs: withWrites.writeTimes.maxUs / 1000,
      loopMaxWithMs: withWrites.loopMaxMs,
      loopP99WithMs: withWrites.loopP99Ms,
      loopMaxWithoutMs: without.loopMaxMs,
      tickLagMaxWithMs: withWrites.tickLagMax,
      tickLagMaxWithoutMs: without.tickLagMax,
    };
  } finally {
    await service.close();
  }
}

async function checkpointSection(source: TickSource): Promise<void> {
  console.log(`\ncheckpoint writes (models ${SERVED_MODELS}; SQLite WAL, synchronous in the tick thread): ticks every 10 ms for 2 s, then 2 s with a write every 100 ms`);
  const rows: string[][] = [];
  for (const hidden of [16, 32]) {
    process.stderr.write(`  checkpoints: N=${hidden}\n`);
    const run = await checkpointRun(source, hidden);
    rows.push([
      String(run.hidden),
      (run.bytes / 1024).toFixed(0),
      String(run.writes),
      run.writeP50Ms.toFixed(2),
      run.writeMaxMs.toFixed(2),
      run.tickLagMaxWithMs.toFixed(2),
      run.tickLagMaxWithoutMs.toFixed(2),
      run.loopP99WithMs.toFixed(2),
      run.loopMaxWithMs.toFixed(2),
      run.loopMaxWithoutMs.toFixed(2),
    ]);
  }
  console.log(
    formatTable(
      ['N', 'KiB', 'writes', 'write p50 ms', 'write max ms', 'worst tick lag ms (writes)', '(no writes)', 'loop delay p99 ms (writes)', 'loop max ms (writes)', '(no writes)'],
      rows,
    ),
  );
}

/** Every service measurement; fixtures come from `root`, the repository. */
export async function benchService(root: string): Promise<void> {
  const source = await TickSource.load(root);
  await latencySection(source);
  await rampSection(source);
  await checkpointSection(source);
}
