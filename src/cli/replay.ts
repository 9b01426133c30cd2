// `lob-rtrl replay`: historical files through the same engine the live service runs. Only the
// source (a file format), the clock (the data's own time) and the sinks (files) are chosen here.
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MarketMessage } from '../domain/types.js';
import { engineConfigHash, type EngineConfig } from '../engine/config.js';
import { Engine } from '../engine/engine.js';
import { MetricsTimeline } from '../engine/metrics.js';
import { renderReportHtml, type ReplayReportData } from '../engine/report-html.js';
import { packageVersion } from '../domain/package-root.js';
import { currentRtrlKernel } from '../model/kernels/select.js';
import { inputBytesRead } from '../venues/input-bytes.js';
import { fileFormatById } from '../venues/registry.js';
import { messageBatches } from '../venues/types.js';
import { modelName } from '../model/factory.js';
import { classNames } from '../model/targets.js';
import { ProgressReporter } from './progress.js';
import { TickOutput } from './tick-output.js';
import { EngineCheckpoints } from '../store/engine-checkpoints.js';

export interface ReplayOptions {
  readonly files: readonly string[];
  readonly format: string;
  readonly symbol?: string;
  readonly config: EngineConfig;
  /** JSONL of the first model's predictions. */
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
}

export interface ReplayReport {
  /** lob-rtrl's version that made the report. */
  readonly version: string;
  readonly files: readonly string[];
  readonly format: string;
  readonly target: string;
  readonly configHash: string;
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
    readonly models: ReadonlyArray<{ name: string; n: number; accuracy: number | null; macroF1: number | null; logLoss: number | null; brier: number | null; confusion: number[][] }>;
  }>;
}

export async function runReplay(options: ReplayOptions): Promise<ReplayReport> {
  const format = fileFormatById(options.format);
  const configHash = engineConfigHash(options.config);
  const timelines = new Map<string, MetricsTimeline>();
  const store = options.db ? EngineCheckpoints.open(options.db) : null;
  const resumed = new Map<string, number | null>();
  const output = await TickOutput.open({
    out: options.out,
    featuresOut: options.featuresOut,
    levels: options.config.levels,
    models: options.config.models.map(modelName),
    classNames: classNames(options.config.target),
  });
  const engine = new Engine(options.config, {
    clock: () => performance.now(),
    logger: options.logger,
    onScored: output ? (symbol, modelIndex, _probs, _offset, label) => output.onScored(symbol, modelIndex, label) : undefined,
    onNewSymbol: output ? (symbolEngine) => output.onNewSymbol(symbolEngine) : undefined,
    timelineFor: options.html
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

  if (output) engine.addSink((prediction) => output.onPrediction(prediction));

  const progress = options.progress
    ? new ProgressReporter({ label: 'replay', stream: options.progress, tty: Boolean(options.progress.isTTY), bytes: { total: await inputSize(options.files), read: progressOf(inputBytesRead()) } })
    : null;
  const started = performance.now();
  try {
    const readOptions = { levels: options.config.levels, symbol: options.symbol };
    if (options.speed === 'max') {
      for await (const batch of messageBatches(format, options.files, readOptions)) {
        for (const message of batch) {
          engine.process(message);
          progress?.tick();
        }
        const drained = output?.ready();
        if (drained) await drained;
      }
    } else {
      for await (const message of pace(format.read(options.files, readOptions), options.speed)) {
        engine.process(message);
        progress?.tick();
        const drained = output?.ready();
        if (drained) await drained;
      }
    }
  } finally {
    progress?.finish();
    await output?.close();
  }
  const wallSeconds = (performance.now() - started) / 1000;

  if (store) {
    for (const symbolEngine of engine.symbols.values()) store.save(symbolEngine, configHash, 'replay-end', Date.now());
    store.close();
  }

  const report: ReplayReport = {
    version: packageVersion(),
    files: options.files,
    format: options.format,
    target: [...engine.symbols.values()][0]?.targetName ?? '',
    configHash,
    eventsRead: engine.counters.eventsRead,
    accepted: engine.counters.accepted,
    rejected: { ...engine.counters.rejected },
    disconnects: engine.counters.disconnects,
    trades: engine.counters.trades,
    orderEvents: engine.counters.orderEvents,
    wallSeconds,
    eventsPerSecond: wallSeconds > 0 ? engine.counters.eventsRead / wallSeconds : 0,
    kernel: currentRtrlKernel().name,
    stepLatencyUs: { p50: engine.latency.quantile(0.5), p99: engine.latency.quantile(0.99) },
    symbols: [...engine.symbols.values()].map((symbolEngine) => ({
      symbol: symbolEngine.symbol,
      ticks: symbolEngine.ticks,
      resumedFromCheckpoint: resumed.get(symbolEngine.symbol) ?? null,
      models: symbolEngine.metrics.map((metrics, i) => ({ name: symbolEngine.modelNames[i], ...metrics.summary() })),
    })),
  };

  if (options.report) {
    await mkdir(dirname(options.report), { recursive: true });
    await writeFile(options.report, `${JSON.stringify(report, null, 2)}\n`);
  }
  if (options.html) {
    const symbols = [...engine.symbols.values()];
    for (const [index, symbolEngine] of symbols.entries()) {
      const timeline = timelines.get(symbolEngine.symbol);
      if (!timeline) continue;
      const data: ReplayReportData = {
        meta: {
          files: options.files,
          symbol: symbolEngine.symbol,
          source: options.format,
          target: symbolEngine.targetName,
          classNames: symbolEngine.classNames,
          generatedAt: new Date().toISOString(),
        },
        counts: { eventsRead: report.eventsRead, accepted: report.accepted, rejected: engine.counters.rejected, disconnects: report.disconnects },
        performance: {
          wallSeconds,
          stepLatencyUs: report.stepLatencyUs.p50 === null ? null : { p50: report.stepLatencyUs.p50, p99: report.stepLatencyUs.p99 ?? report.stepLatencyUs.p50 },
        },
        models: symbolEngine.metrics.map((metrics, i) => ({ name: symbolEngine.modelNames[i], summary: metrics.summary(), rolling: metrics.rolling() })),
        timeline: timeline.toData(),
      };
      // One page per symbol: the first at the given path, the others beside it.
      const path = index === 0 ? options.html : options.html.replace(/(\.html?)?$/, `.${symbolEngine.symbol.replace(/[^A-Za-z0-9_-]/g, '_')}$1`);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, renderReportHtml(data));
    }
  }
  return report;
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
