// What the api role serves, read from NATS: the prediction stream (an ordered consumer that
// starts with the newest prediction of every stream, then follows new ones) and the workers'
// stream summaries (a KV watch). It offers the same views the embedded service's plugins
// decorate (StreamsView, PredictionBus, FeedsView), so the REST, WebSocket, metrics and
// dashboard routes serve it unchanged. Nothing here learns or writes: any number of api
// processes can read one deployment.
import { DeliverPolicy, type ConsumerMessages } from '@nats-io/jetstream';
import type { KV, KvWatchEntry } from '@nats-io/kv';
import { z } from 'zod';
import { checkedJson, symbolSchema } from '../domain/schemas.js';
import { streamIdOf, venueSchema } from '../domain/stream.js';
import type { EngineCounters } from '../engine/engine.js';
import { LatencyHistogram } from '../engine/latency.js';
import type { Prediction } from '../engine/symbol-engine.js';
import type { SymbolMetrics } from '../engine/symbol-metrics.js';
import { PredictionRing, resolveStreamAmong, type PredictionListener, type RuntimeLogger, type SymbolView } from '../service/runtime.js';
import type { FeedsView, PredictionBus, Readiness, StreamsView } from '../service/views.js';
import type { BusConnection } from './market-log.js';
import { decodeSummary, openSummaryBucket, type StreamSummary } from './stream-summary.js';

/** A prediction as the workers publish it (PublishedPrediction), checked field by field. */
const publishedPredictionSchema = z
  .object({
    type: z.literal('prediction'),
    venue: venueSchema,
    symbol: symbolSchema,
    inputSequence: z.number().int().min(1),
    ts: z.number(),
    localTs: z.number(),
    seq: z.number(),
    mid: z.number(),
    target: z.string(),
    classNames: z.array(z.string()).min(2),
    models: z.array(z.object({ model: z.string(), probs: z.array(z.number()) })).min(1),
    resolved: z.array(z.object({ fromSeq: z.number(), toSeq: z.number(), count: z.number().int().min(0), label: z.string() })).optional(),
  })
  .refine((p) => p.models.every((m) => m.probs.length === p.classNames.length), { message: 'every model needs one probability per class', path: ['models'] });

class ApiStream {
  latest: Prediction | null = null;
  ring: PredictionRing | null = null;
  /** Log sequence of the input behind the newest prediction applied: an older or equal one is a duplicate. */
  lastInputSequence = 0;
  summary: StreamSummary | null = null;
  /** Ticks made before this process started reading (its first summary's when the bucket held it already, else 0): `ticksThisProcess` counts from there. */
  firstTicks: number | null = null;

  constructor(readonly id: string) {}

  view(): SymbolView {
    const { summary, latest } = this;
    return {
      symbol: this.id,
      ticks: summary?.ticks ?? 0,
      ticksThisProcess: summary ? summary.ticks - (this.firstTicks ?? 0) : 0,
      disconnects: summary?.disconnects ?? 0,
      lastPrediction: latest,
      modelNames: summary?.modelNames ?? latest?.models.map((m) => m.model) ?? [],
      classNames: summary?.classNames ?? latest?.classNames ?? [],
      targetName: summary?.targetName ?? latest?.target ?? '',
      warm: summary?.warm ?? false,
    };
  }
}

export interface PredictionStreamCounts {
  /** Predictions applied (new for their stream). */
  predictions: number;
  /** Predictions dropped because their stream already had one from the same or a later input (a takeover's re-publish). */
  duplicates: number;
  /** Messages of the prediction stream or the summary bucket that failed their check, or streams over `maxStreams`. */
  rejected: number;
  summaries: number;
  /** Predictions in the stream not yet read by this process, as of the last one read (0 once caught up). */
  lag: number;
}

export interface PredictionStreamViewOptions {
  /** Predictions kept per stream for `recent` (the service's `predictionRing`). */
  readonly ringCapacity: number;
  /** Streams followed at most; predictions of further ones are rejected (the service's `maxSymbols`). */
  readonly maxStreams: number;
  readonly logger: RuntimeLogger;
}

const NO_ENGINE_COUNTERS: Readonly<EngineCounters> = Object.freeze({ eventsRead: 0, accepted: 0, rejected: {}, disconnects: 0, trades: 0, orderEvents: 0 });

export class PredictionStreamView {
  readonly counts: PredictionStreamCounts = { predictions: 0, duplicates: 0, rejected: 0, summaries: 0, lag: 0 };
  private readonly streams = new Map<string, ApiStream>();
  private readonly listeners = new Set<PredictionListener>();
  private connected = true;
  private caughtUp = false;
  private closed = false;
  private readonly loops: Promise<void>[] = [];
  private messages: ConsumerMessages | null = null;
  private watch: { stop(): void } | null = null;
  private readonly rejectionsLogged = new Set<string>();
  /** The summary bucket's last revision when this process opened it: what was written before it started. */
  private summariesAtStart = 0;

  private constructor(
    private readonly bus: BusConnection,
    private readonly summaries: KV,
    private readonly options: PredictionStreamViewOptions,
  ) {}

  /** Starts reading both; resolves once the consumer and the watch exist (catching up continues in the background). */
  static async open(bus: BusConnection, options: PredictionStreamViewOptions): Promise<PredictionStreamView> {
    const view = new PredictionStreamView(bus, await openSummaryBucket(bus), options);
    await view.start();
    return view;
  }

  private async start(): Promise<void> {
    const { js, jsm, names, nc } = this.bus;
    const stored = await jsm.streams.info(names.predictionStream);
    const endAtStart = stored.state.last_seq;
    if (stored.state.messages === 0) this.caughtUp = true;
    // An ordered consumer: it recreates itself after a NATS restart from the last sequence it
    // delivered, so nothing is skipped or seen twice by this process.
    const consumer = await js.consumers.get(names.predictionStream, { filter_subjects: names.predictionSubjects, deliver_policy: DeliverPolicy.LastPerSubject });
    const messages = await consumer.consume();
    this.messages = messages;
    this.loops.push(
      (async () => {
        for await (const message of messages) {
          this.applyPrediction(message.string());
          this.counts.lag = message.info.pending;
          if (!this.caughtUp && (message.info.pending === 0 || message.seq >= endAtStart)) this.caughtUp = true;
        }
      })(),
    );
    this.summariesAtStart = (await jsm.streams.info(`KV_${names.summaryBucket}`)).state.last_seq;
    const watch = await this.summaries.watch({ key: '>' });
    this.watch = watch;
    this.loops.push(
      (async () => {
        for await (const entry of watch) this.applySummary(entry);
      })(),
    );
    // Ends with the connection itself, so close() does not wait for it.
    void (async () => {
      for await (const status of nc.status()) {
        if (status.type === 'disconnect') this.connected = false;
        else if (status.type === 'reconnect') this.connected = true;
      }
    })().catch(() => undefined);
  }

  private stream(id: string): ApiStream | null {
    let stream = this.streams.get(id);
    if (stream === undefined) {
      if (this.streams.size >= this.options.maxStreams) {
        this.reject('streams', `more than ${this.options.maxStreams} streams (maxSymbols): "${id}" is not followed`);
        return null;
      }
      stream = new ApiStream(id);
      this.streams.set(id, stream);
    }
    return stream;
  }

  private applyPrediction(text: string): void {
    const checked = checkedJson(text, 'prediction', publishedPredictionSchema);
    if (!checked.ok) {
      this.reject('prediction', checked.detail);
      return;
    }
    const published = checked.value;
    const stream = this.stream(streamIdOf(published.venue, published.symbol));
    if (stream === null) return;
    if (published.inputSequence <= stream.lastInputSequence) {
      this.counts.duplicates++;
      return;
    }
    stream.lastInputSequence = published.inputSequence;
    // Named by the stream id, as in the embedded service, so every route names it the same way.
    const prediction: Prediction = {
      type: 'prediction',
      symbol: stream.id,
      ts: published.ts,
      localTs: published.localTs,
      seq: published.seq,
      mid: published.mid,
      target: published.target,
      classNames: published.classNames,
      models: published.models,
      ...(published.resolved ? { resolved: published.resolved } : {}),
    };
    // A worker with another configuration makes predictions of another shape: the history starts again.
    if (stream.ring === null || !stream.ring.fits(prediction)) stream.ring = PredictionRing.of(prediction, this.options.ringCapacity);
    stream.ring.push(prediction);
    stream.latest = prediction;
    this.counts.predictions++;
    for (const listener of this.listeners) listener(prediction);
  }

  private applySummary(entry: KvWatchEntry): void {
    if (entry.operation !== 'PUT') return;
    const summary = decodeSummary(entry.string());
    if ('reason' in summary) {
      this.reject('summary', `${entry.key}: ${summary.reason}`);
      return;
    }
    const stream = this.stream(streamIdOf(summary.venue, summary.symbol));
    if (stream === null) return;
    // A stale owner's late write must not take a stream back.
    if (stream.summary !== null && summary.ticks < stream.summary.ticks) return;
    stream.summary = summary;
    stream.firstTicks ??= entry.revision <= this.summariesAtStart ? summary.ticks : 0;
    this.counts.summaries++;
  }

  private reject(kind: string, detail: string): void {
    this.counts.rejected++;
    if (this.rejectionsLogged.has(kind)) return;
    this.rejectionsLogged.add(kind);
    this.options.logger.warn({ kind, detail }, `${kind} from NATS rejected (further ones are only counted)`);
  }

  /** Seconds since the stream's summary was written (its worker's clock), null without one. */
  summaryAge(id: string, now = Date.now()): number | null {
    const summary = this.streams.get(id)?.summary;
    return summary ? Math.max(0, now - summary.at) / 1000 : null;
  }

  get isConnected(): boolean {
    return this.connected && !this.bus.nc.isClosed();
  }

  get isCaughtUp(): boolean {
    return this.caughtUp;
  }

  ids(): string[] {
    return [...this.streams.keys()];
  }

  readiness(): Readiness {
    const database = this.isConnected;
    const views = [...this.streams.values()];
    const learners = views.every((stream) => stream.summary?.warm ?? false);
    const checks = { database, feeds: true, learners, restored: this.caughtUp };
    return database ? checks : { ...checks, reason: 'NATS: disconnected, reconnecting' };
  }

  streamsView(): StreamsView {
    const streams = this.streams;
    const empty = new LatencyHistogram();
    const view: StreamsView = {
      resolve: (symbol, venue) => resolveStreamAmong(symbol, venue, (id) => streams.has(id), streams.keys()),
      list: () => [...streams.values()].map((stream) => stream.view()),
      get: (id) => streams.get(id)?.view(),
      metrics: async (id) => metricsOf(streams.get(id)?.summary ?? null),
      allMetrics: async () => [...streams.values()].flatMap((stream) => (stream.summary ? [{ symbol: stream.id, ...stream.summary.metrics }] : [])),
      restoring: 0,
      hibernated: 0,
      isHibernated: () => false,
      hibernations: 0,
      wakeUps: 0,
      memoryReclaim: { reclaims: 0, lastPauseMs: 0 },
      readiness: () => this.readiness(),
      stepLatency: empty,
      counters: NO_ENGINE_COUNTERS,
      // The learners run on the workers: the kernels their summaries name ('none yet' before the first).
      get kernel() {
        const kernels = new Set<string>();
        for (const stream of streams.values()) if (stream.summary) kernels.add(stream.summary.kernel);
        return kernels.size === 0 ? 'none yet' : [...kernels].sort().join(',');
      },
    };
    return view;
  }

  predictionBus(): PredictionBus {
    const listeners = this.listeners;
    return {
      subscribe: (listener) => {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
      get subscriberCount() {
        return listeners.size;
      },
      latest: (id) => this.streams.get(id)?.latest ?? null,
      recent: (id, since, limit) => this.streams.get(id)?.ring?.recent(since, limit) ?? [],
      logged: false,
      loggedBetween: () => [],
    };
  }

  feedsView(): FeedsView {
    return { list: () => [] };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.watch?.stop();
    this.messages?.stop();
    await Promise.allSettled(this.loops).catch(() => undefined);
  }
}

function metricsOf(summary: StreamSummary | null): SymbolMetrics {
  return summary?.metrics ?? { unscored: 0, models: [], mixWeights: null };
}
