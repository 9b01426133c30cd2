// `lob-rtrl replay`: historical files through the same engine the live service runs. Only the
// source (a file format), the clock (the data's own time) and the sinks (files) are chosen here.
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { FEATURE_SET_VERSION } from '../features/extract.js';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MarketMessage } from '../domain/types.js';
import { engineConfigHash, type EngineConfig } from '../engine/config.js';
import { Engine, type EngineCounters } from '../engine/engine.js';
import type { LatencyHistogram, LatencyState } from '../engine/latency.js';
import type { MetricsSummary, RollingMetrics } from '../engine/metrics.js';
import { MetricsTimeline, type TimelineData } from '../report/timeline.js';
import { SymbolWorkerPool } from '../engine/worker-pool.js';
import type { SymbolSummary } from '../engine/worker-protocol.js';
import { classNames, targetName } from '../model/targets.js';
import { renderReportHtml, type ReplayReportData } from '../report/report-html.js';
import { packageVersion } from '../domain/package-root.js';
import { currentRtrlKernel } from '../model/kernels/select.js';
import { inputBytesRead } from '../venues/input-bytes.js';
import { fileFormatById } from '../venues/registry.js';
import { messageBatches, type FileFormat } from '../venues/types.js';
import { modelName } from '../model/factory.js';
import { ProgressReporter } from './progress.js';
import { TickOutput } from './tick-output.js';
import { EngineCheckpoints } from '../store/engine-checkpoints.js';

export interface ReplayOptions {
  readonly files: readonly string[];
  readonly format: string;
  readonly symbol?: string;
  readonly config: EngineConfig;
  /** Every tick with every model's probabilities and its realised label: JSON lines, or Parquet for `*.parquet`. */
  readonly out?: string;
  /** Every tick's feature vector (before standardisation) with its realised label, JSON lines or Parquet. */
  readonly featuresOut?: string;
  readonly report?: string;
  readonly html?: string;
  readonly db?: string;
  /** 'max', or a multiple of recorded pacing. */
  readonly speed: number | 'max';
  /** Progress output; none when undefined. */
  readonly progress?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  readonly logger?: { warn(fields: object, message: string): void };
  /** Worker threads the symbols are spread over; 1 (the default here) runs them on this thread. */
  readonly workers?: number;
}

export interface ReplayReport {
  /** lob-rtrl's version that made the report. */
  readonly version: string;
  readonly files: readonly string[];
  readonly format: string;
  readonly target: string;
  readonly configHash: string;
  /** Version of the feature set the learners saw (FEATURE_SET_VERSION). */
  readonly featureSet: string;
  readonly eventsRead: number;
  readonly accepted: number;
  readonly rejected: Record<string, number>;
  readonly disconnects: number;
  /** Trades and order events applied to flow features (they are not among the events read). */
  readonly trades: number;
  readonly orderEvents: number;
  readonly wallSeconds: number;
  readonly eventsPerSecond: number;
  /** The RTRL kernel the learners ran on ('js', 'native-avx2', ...). */
  readonly kernel: string;
  readonly stepLatencyUs: { readonly p50: number | null; readonly p99: number | null };
  readonly symbols: ReadonlyArray<{
    readonly symbol: string;
    readonly ticks: number;
    readonly resumedFromCheckpoint: number | null;
    readonly models: ReadonlyArray<{
      name: string;
      n: number;
      accuracy: number | null;
      macroF1: number | null;
      logLoss: number | null;
      brier: number | null;
      confusion: number[][];
    }>;
    /** The mix model's final weight on each member, when `mix` is among the models. */
    readonly mixWeights: ReadonlyArray<{ model: string; weight: number }> | null;
  }>;
}

/** What the report and the HTML page need of one symbol, wherever it ran. */
interface SymbolOutcome {
  readonly symbol: string;
  readonly ticks: number;
  readonly modelNames: readonly string[];
  readonly summaries: readonly MetricsSummary[];
  readonly rolling: readonly RollingMetrics[][];
  readonly timeline: TimelineData | null;
  readonly mixWeights: Array<{ model: string; weight: number }> | null;
}

/** What a driver (in-thread or on workers) hands back once the input is through. */
interface RunOutcome {
  readonly counters: EngineCounters;
  readonly latency: LatencyHistogram;
  readonly wallSeconds: number;
  readonly symbols: readonly SymbolOutcome[];
  readonly resumed: ReadonlyMap<string, number | null>;
}

/** In-flight rounds per worker pool before the reader waits: enough to keep every worker busy. */
const ROUNDS_IN_FLIGHT = 8;
/** The report timeline as a StreamObserverModule, for worker threads to attach to their symbols (`--html`). */
const TIMELINE_MODULE = new URL('../report/timeline.js', import.meta.url).href;

export async function runReplay(options: ReplayOptions): Promise<ReplayReport> {
  const configHash = engineConfigHash(options.config);
  const store = options.db ? EngineCheckpoints.open(options.db) : null;
  const output = await TickOutput.open({
    out: options.out,
    featuresOut: options.featuresOut,
    levels: options.config.levels,
    models: options.config.models.map(modelName),
    target: options.config.target,
    maxPending: options.config.learner.maxPending,
  });
  let outcome: RunOutcome;
  try {
    // Feature vectors stay inside the workers: --features-out runs the symbols on this thread.
    const workers = options.featuresOut ? 1 : (options.workers ?? 1);
    outcome = workers > 1 ? await replayOnWorkers(options, workers, configHash, store, output) : await replayInThread(options, configHash, store, output);
  } finally {
    store?.close();
  }
  const { counters, latency, wallSeconds } = outcome;

  const report: ReplayReport = {
    version: packageVersion(),
    files: options.files,
    format: options.format,
    target: outcome.symbols.length > 0 ? targetName(options.config.target) : '',
    configHash,
    featureSet: FEATURE_SET_VERSION,
    eventsRead: counters.eventsRead,
    accepted: counters.accepted,
    rejected: { ...counters.rejected },
    disconnects: counters.disconnects,
    trades: counters.trades,
    orderEvents: counters.orderEvents,
    wallSeconds,
    eventsPerSecond: wallSeconds > 0 ? counters.eventsRead / wallSeconds : 0,
    kernel: currentRtrlKernel().name,
    stepLatencyUs: { p50: latency.quantile(0.5), p99: latency.quantile(0.99) },
    symbols: outcome.symbols.map((symbol) => ({
      symbol: symbol.symbol,
      ticks: symbol.ticks,
      resumedFromCheckpoint: outcome.resumed.get(symbol.symbol) ?? null,
      models: symbol.summaries.map((summary, i) => ({ name: symbol.modelNames[i], ...summary })),
      mixWeights: symbol.mixWeights,
    })),
  };

  if (options.report) {
    await mkdir(dirname(options.report), { recursive: true });
    await writeFile(options.report, `${JSON.stringify(report, null, 2)}\n`);
  }
  if (options.html) {
    for (const [index, symbol] of outcome.symbols.entries()) {
      if (!symbol.timeline) continue;
      const data: ReplayReportData = {
        meta: {
          files: options.files,
          symbol: symbol.symbol,
          source: options.format,
          target: targetName(options.config.target),
          classNames: classNames(options.config.target),
          generatedAt: new Date().toISOString(),
        },
        counts: { eventsRead: report.eventsRead, accepted: report.accepted, rejected: counters.rejected, disconnects: report.disconnects },
        performance: {
          wallSeconds,
          stepLatencyUs: report.stepLatencyUs.p50 === null ? null : { p50: report.stepLatencyUs.p50, p99: report.stepLatencyUs.p99 ?? report.stepLatencyUs.p50 },
        },
        models: symbol.summaries.map((summary, i) => ({ name: symbol.modelNames[i], summary, rolling: symbol.rolling[i] })),
        timeline: symbol.timeline,
      };
      // One page per symbol: the first at the given path, the others beside it.
      const path = index === 0 ? options.html : options.html.replace(/(\.html?)?$/, `.${symbol.symbol.replace(/[^A-Za-z0-9_-]/g, '_')}$1`);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, renderReportHtml(data));
    }
  }
  return report;
}

async function progressFor(options: ReplayOptions): Promise<ProgressReporter | null> {
  if (!options.progress) return null;
  const bytes = { total: await inputSize(options.files), read: progressOf(inputBytesRead()) };
  return new ProgressReporter({ label: 'replay', stream: options.progress, tty: Boolean(options.progress.isTTY), bytes });
}

/** Every symbol on this thread, through the one Engine (`--workers 1`). */
async function replayInThread(options: ReplayOptions, configHash: string, store: EngineCheckpoints | null, output: TickOutput | null): Promise<RunOutcome> {
  const format = fileFormatById(options.format);
  const timelines = new Map<string, MetricsTimeline>();
  const resumed = new Map<string, number | null>();
  const engine = new Engine(options.config, {
    clock: () => performance.now(),
    logger: options.logger,
    observerFor: options.html
      ? (symbol, models, classes) => {
          const timeline = new MetricsTimeline({ models, classes });
          timelines.set(symbol, timeline);
          return timeline;
        }
      : undefined,
    createSymbol: (symbol, fresh) => {
      const restored = store ? store.restore(symbol, fresh, configHash, options.logger) : { engine: fresh(), checkpoint: null };
      resumed.set(symbol, restored.checkpoint);
      return restored.engine;
    },
  });

  if (output) engine.addSink((prediction) => output.onPrediction(prediction, output.wantsFeatures ? (engine.symbol(prediction.symbol)?.rawFeatures ?? null) : null));
  const snapshotsSeen = new Map<string, number>();

  const progress = await progressFor(options);
  const started = performance.now();
  try {
    const readOptions = { levels: options.config.levels, symbol: options.symbol };
    for await (const batch of inputBatches(format, options, readOptions)) {
      for (const message of batch) {
        engine.process(message);
        if (output) noteForOutput(output, message, snapshotsSeen);
        progress?.tick();
      }
      const drained = output?.ready();
      if (drained) await drained;
    }
  } finally {
    progress?.finish();
    await output?.close();
  }
  const wallSeconds = (performance.now() - started) / 1000;

  if (store) {
    for (const symbolEngine of engine.symbols.values()) store.save(symbolEngine, configHash, 'replay-end', Date.now());
  }
  return {
    counters: engine.counters,
    latency: engine.latency,
    wallSeconds,
    resumed,
    symbols: [...engine.symbols.values()].map((symbolEngine) => ({
      symbol: symbolEngine.symbol,
      ticks: symbolEngine.ticks,
      modelNames: symbolEngine.modelNames,
      summaries: symbolEngine.metrics.map((metrics) => metrics.summary()),
      rolling: symbolEngine.metrics.map((metrics) => metrics.rolling()),
      timeline: timelines.get(symbolEngine.symbol)?.toData() ?? null,
      mixWeights: symbolEngine.mixtureWeights(),
    })),
  };
}

/**
 * Symbols spread over `workers` threads (src/engine/worker-pool.ts). This thread reads the
 * files, counts and rejects as the Engine does, restores and saves checkpoints; the workers
 * run the symbols. Predictions come back in input order, so `--out` is the in-thread file byte
 * for byte. Symbols run side by side only where their messages are interleaved in the input
 * (a canonical file of many symbols): files of one symbol after another are read in turn.
 */
async function replayOnWorkers(options: ReplayOptions, workers: number, configHash: string, store: EngineCheckpoints | null, output: TickOutput | null): Promise<RunOutcome> {
  const format = fileFormatById(options.format);
  // Counts and logs exactly as the in-thread engine does; it never holds a symbol.
  const counting = new Engine(options.config, { logger: options.logger });
  const resumed = new Map<string, number | null>();
  const opening: Promise<void>[] = [];
  const snapshotsSeen = new Map<string, number>();
  const pool = new SymbolWorkerPool({
    workers,
    config: options.config,
    observerModule: options.html ? TIMELINE_MODULE : undefined,
    onPrediction: output ? (prediction) => output.onPrediction(prediction) : () => {},
  });
  const open = (symbol: string): void => {
    const stored = store ? [...store.repository.newestFirst(symbol, configHash)] : [];
    const candidates = stored.flatMap((entry) => ('checkpoint' in entry ? [{ id: entry.checkpoint.meta.id, payload: entry.checkpoint.payload }] : []));
    opening.push(
      pool.open(symbol, candidates).then((opened) => {
        resumed.set(symbol, opened.checkpoint);
        // The warnings EngineCheckpoints.restore gives, for the candidates it would have tried.
        for (const entry of stored) {
          if ('skipped' in entry) {
            options.logger?.warn({ symbol, checkpoint: entry.skipped.id, reason: entry.skipped.reason }, 'checkpoint skipped');
            continue;
          }
          if (entry.checkpoint.meta.id === opened.checkpoint) break;
          const failure = opened.failures.find((f) => f.id === entry.checkpoint.meta.id);
          options.logger?.warn(
            { symbol, checkpoint: entry.checkpoint.meta.id, reason: 'does_not_decode', error: failure?.message },
            'checkpoint skipped: its payload verifies but does not decode; trying the next older one',
          );
        }
      }),
    );
  };
  const dispatch = (message: MarketMessage): void => {
    counting.count(message);
    if (output) noteForOutput(output, message, snapshotsSeen);
    switch (message.type) {
      case 'book_snapshot':
        if (!pool.has(message.symbol)) open(message.symbol);
        pool.snapshot(message);
        return;
      case 'trade':
        if (!pool.has(message.symbol)) open(message.symbol);
        pool.trade(message);
        return;
      case 'order_event':
        if (!pool.has(message.symbol)) open(message.symbol);
        pool.orderEvent(message);
        return;
      case 'disconnect':
        pool.disconnect(message.symbol);
        return;
      case 'rejected':
        return;
    }
  };

  const progress = await progressFor(options);
  const started = performance.now();
  let outcome: { symbols: SymbolSummary[]; latency: LatencyState[] };
  try {
    try {
      const readOptions = { levels: options.config.levels, symbol: options.symbol };
      for await (const batch of inputBatches(format, options, readOptions)) {
        for (const message of batch) {
          dispatch(message);
          progress?.tick();
        }
        pool.flush();
        await pool.roundsBelow(ROUNDS_IN_FLIGHT * pool.size);
        if (pool.firstFailure) break;
        const drained = output?.ready();
        if (drained) await drained;
      }
      await pool.drain();
      if (pool.firstFailure) throw new Error(`replay: a worker thread failed: ${pool.firstFailure.message}`);
      await Promise.all(opening);
    } finally {
      progress?.finish();
      await output?.close();
    }
    outcome = await pool.summary(store !== null);
  } finally {
    await pool.close();
  }
  const wallSeconds = (performance.now() - started) / 1000;

  if (store) {
    for (const summary of outcome.symbols) {
      if (summary.state) store.repository.save({ symbol: summary.symbol, tickCount: summary.ticks, configHash, payload: summary.state, reason: 'replay-end', now: Date.now() });
    }
  }
  const latency = counting.latency;
  for (const state of outcome.latency) latency.add(state);
  return {
    counters: counting.counters,
    latency,
    wallSeconds,
    resumed,
    symbols: outcome.symbols.map((summary) => ({
      symbol: summary.symbol,
      ticks: summary.ticks,
      modelNames: summary.modelNames,
      summaries: summary.summaries,
      rolling: summary.rolling,
      timeline: summary.observed as TimelineData | null,
      mixWeights: summary.mixWeights,
    })),
  };
}

/**
 * What the tick output needs besides the predictions: where each disconnect fell, as the
 * number of snapshots of its symbol read before it (predictions may come back later, from a
 * worker).
 */
function noteForOutput(output: TickOutput, message: MarketMessage, snapshotsSeen: Map<string, number>): void {
  if (message.type === 'book_snapshot') {
    snapshotsSeen.set(message.symbol, (snapshotsSeen.get(message.symbol) ?? 0) + 1);
  } else if (message.type === 'disconnect') {
    if (message.symbol !== null) output.onDisconnect(message.symbol, snapshotsSeen.get(message.symbol) ?? 0);
    else for (const [symbol, seen] of snapshotsSeen) output.onDisconnect(symbol, seen);
  }
}

/**
 * The input a batch at a time: the format's own chunks at full speed; paced, one message per
 * batch, so each is handed on when its time comes.
 */
async function* inputBatches(format: FileFormat, options: ReplayOptions, readOptions: { levels: number; symbol?: string }): AsyncGenerator<readonly MarketMessage[]> {
  if (options.speed === 'max') {
    yield* messageBatches(format, options.files, readOptions);
    return;
  }
  for await (const message of pace(format.read(options.files, readOptions), options.speed)) yield [message];
}

/** Replays at the data's own pacing times `speed`: the data's clock, never the wall clock's. */
async function* pace(source: AsyncIterable<MarketMessage>, speed: number): AsyncGenerator<MarketMessage> {
  let firstDataTs: number | null = null;
  let firstWall = 0;
  for await (const message of source) {
    if (message.type === 'book_snapshot') {
      if (firstDataTs === null) {
        firstDataTs = message.ts;
        firstWall = performance.now();
      } else {
        const due = firstWall + (message.ts - firstDataTs) / speed;
        const wait = due - performance.now();
        if (wait > 1) await sleep(wait);
      }
    }
    yield message;
  }
}

/** Bytes of the input files (a folder: the files directly in it, as the LOBSTER reader takes them). */
async function inputSize(paths: readonly string[]): Promise<number> {
  let bytes = 0;
  for (const path of paths) {
    const info = await stat(path);
    if (info.isDirectory()) {
      for (const entry of await readdir(path, { withFileTypes: true })) if (entry.isFile()) bytes += (await stat(join(path, entry.name))).size;
    } else {
      bytes += info.size;
    }
  }
  return bytes;
}

/** Bytes read by this replay: the process-wide count less what was read before it started. */
function progressOf(before: number): () => number {
  return () => inputBytesRead() - before;
}
