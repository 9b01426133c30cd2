// The worker role: owns some partitions of the market-data log (leases.ts), runs the one
// pipeline (Engine, the same code `serve` and `replay` run) over each in log order, publishes
// every prediction, and checkpoints each partition with the log position it reached.
//
// Exactness: a partition's state is a pure function of the log up to a position. A new owner
// loads the newest checkpoint and consumes from the next position, so it makes the predictions
// the old owner made or would have made, bit for bit; the ones published twice around a
// takeover carry the same message id and JetStream stores them once. A checkpoint is written
// only after every prediction before its position was stored, so none is ever skipped.
// Any failure inside a partition (NATS gone, a publish that timed out) restarts that partition
// from its newest checkpoint: recomputing is always safe, dropping never is. Each stream that
// moved gets its summary (ticks, scores) written to a KV bucket every `natsSummarySeconds`, for
// the api role.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { DeliverPolicy, type PubAck } from '@nats-io/jetstream';
import { messageOf } from '../domain/json-edge.js';
import { engineConfigHash, type EngineConfig } from '../engine/config.js';
import { Engine } from '../engine/engine.js';
import type { Prediction, SymbolEngine } from '../engine/symbol-engine.js';
import { metricsOfEngine } from '../engine/symbol-metrics.js';
import { currentRtrlKernel } from '../model/kernels/select.js';
import type { KV } from '@nats-io/kv';
import { decodeLogged } from './codec.js';
import type { BusConnection } from './market-log.js';
import { SharedCheckpointStore, type StreamState } from './checkpoint-store.js';
import { PartitionLeases, type HeldLease } from './leases.js';
import { openSummaryBucket, summaryKey, type StreamSummary } from './stream-summary.js';
import { partitionFilter, predictionSubject } from './subjects.js';

export interface WorkerLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export interface PartitionStats {
  readonly partition: number;
  readonly lastSequence: number;
  /** Log messages of the partition not yet consumed (the consumer's lag). */
  readonly lag: number;
  readonly applied: number;
  readonly rejected: number;
  readonly predictions: number;
  readonly checkpoints: number;
  readonly restarts: number;
}

/** One prediction as it travels on the prediction stream. */
export interface PublishedPrediction extends Prediction {
  readonly venue: string;
  /** Log sequence of the snapshot that made it: with venue and symbol, its identity. */
  readonly inputSequence: number;
}

const FETCH_BATCH = 512;
const FETCH_EXPIRES_MS = 1000;
/** Prediction publishes awaiting their acknowledgement before the runner waits for them. */
const MAX_IN_FLIGHT = 1024;

class PartitionRunner {
  lastSequence = 0;
  lag = 0;
  applied = 0;
  rejected = 0;
  predictions = 0;
  checkpoints = 0;
  restarts = 0;
  private engines = new Map<string, Engine>();
  /** Restored states of streams not seen since the restore: carried into every later checkpoint. */
  private dormant = new Map<string, StreamState>();
  private inFlight: Promise<PubAck>[] = [];
  /** Streams that moved since their last summary, with their venue. */
  private moved = new Map<SymbolEngine, string>();
  private lastSummaryAt = 0;
  private sinceCheckpoint = 0;
  private lastCheckpointAt = Date.now();
  private stopping = false;
  private readonly done: Promise<void>;

  constructor(
    readonly lease: HeldLease,
    private readonly bus: BusConnection,
    private readonly store: SharedCheckpointStore,
    private readonly engineConfig: EngineConfig,
    private readonly configHash: string,
    private readonly logger: WorkerLogger,
    private readonly summaries: KV,
    private readonly workerId: string,
  ) {
    this.done = this.runForever();
  }

  get partition(): number {
    return this.lease.partition;
  }

  private async runForever(): Promise<void> {
    while (!this.stopping) {
      try {
        await this.restore();
        await this.consume();
      } catch (error) {
        if (this.stopping) break;
        this.restarts++;
        this.logger.warn({ partition: this.partition, err: messageOf(error) }, 'partition restarts from its newest checkpoint');
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }

  private async restore(): Promise<void> {
    this.engines = new Map();
    this.dormant = new Map();
    this.inFlight = [];
    this.moved = new Map();
    const checkpoint = await this.store.load(this.partition, this.configHash);
    this.lastSequence = checkpoint?.lastSequence ?? 0;
    for (const stream of checkpoint?.streams ?? []) this.dormant.set(streamKey(stream.venue, stream.symbol), stream);
    this.sinceCheckpoint = 0;
    this.lastCheckpointAt = Date.now();
    this.logger.info(
      { partition: this.partition, lastSequence: this.lastSequence, streams: this.dormant.size },
      checkpoint ? 'partition restored from its checkpoint' : 'partition starts from the beginning of the log',
    );
  }

  private engineOf(venue: string): Engine {
    let engine = this.engines.get(venue);
    if (engine === undefined) {
      engine = new Engine(this.engineConfig, {
        logger: { warn: (fields, message) => this.logger.warn({ partition: this.partition, venue, ...fields }, message) },
        // A stream restores when it first appears, from the state the checkpoint carried.
        createSymbol: (symbol, fresh) => {
          const symbolEngine = fresh();
          const key = streamKey(venue, symbol);
          const saved = this.dormant.get(key);
          if (saved !== undefined) {
            symbolEngine.loadState(saved.state);
            this.dormant.delete(key);
          }
          return symbolEngine;
        },
      });
      this.engines.set(venue, engine);
    }
    return engine;
  }

  private async consume(): Promise<void> {
    const { js, names, config } = this.bus;
    const consumer = await js.consumers.get(names.marketStream, {
      filter_subjects: partitionFilter(config.natsPrefix, this.partition),
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: this.lastSequence + 1,
    });
    const summaryMs = config.natsSummarySeconds * 1000;
    while (!this.stopping) {
      const batch = await consumer.fetch({ max_messages: FETCH_BATCH, expires: FETCH_EXPIRES_MS });
      let received = 0;
      for await (const message of batch) {
        received++;
        this.apply(message.seq, message.string());
        this.lag = message.info.pending;
        if (this.inFlight.length >= MAX_IN_FLIGHT) await this.settle();
        if (this.moved.size > 0 && Date.now() - this.lastSummaryAt >= summaryMs) await this.writeSummaries();
        if (this.stopping) break;
      }
      if (received === 0) this.lag = 0;
      if (this.moved.size > 0 && Date.now() - this.lastSummaryAt >= summaryMs) await this.writeSummaries();
      if (
        this.sinceCheckpoint >= config.natsCheckpointEveryMessages ||
        (this.sinceCheckpoint > 0 && Date.now() - this.lastCheckpointAt >= config.natsCheckpointEverySeconds * 1000)
      ) {
        await this.checkpoint();
      }
    }
  }

  private apply(sequence: number, text: string): void {
    this.lastSequence = sequence;
    this.sinceCheckpoint++;
    const logged = decodeLogged(text, this.engineConfig.levels);
    if ('reason' in logged) {
      // Counted here only: a rejected message belongs to no stream's state.
      if (this.rejected++ === 0)
        this.logger.warn({ partition: this.partition, sequence, reason: logged.reason, detail: logged.detail }, 'market log message rejected (further ones are only counted)');
      return;
    }
    this.applied++;
    const engine = this.engineOf(logged.venue);
    const prediction = engine.process(logged.message);
    if (logged.message.type === 'disconnect') {
      for (const symbolEngine of engine.symbols.values())
        if (logged.message.symbol === null || symbolEngine.symbol === logged.message.symbol) this.moved.set(symbolEngine, logged.venue);
    }
    if (prediction === null) return;
    const symbolEngine = engine.symbols.get(prediction.symbol);
    if (symbolEngine !== undefined) this.moved.set(symbolEngine, logged.venue);
    const published: PublishedPrediction = { ...prediction, venue: logged.venue, inputSequence: sequence };
    this.predictions++;
    this.inFlight.push(
      this.bus.js.publish(predictionSubject(this.bus.config.natsPrefix, logged.venue, prediction.symbol), JSON.stringify(published), {
        msgID: `${logged.venue}:${prediction.symbol}:${sequence}`,
        timeout: 10_000,
      }),
    );
  }

  /** Waits until JetStream stored every prediction published so far; throws if one failed. */
  private async settle(): Promise<void> {
    const pending = this.inFlight;
    this.inFlight = [];
    await Promise.all(pending);
  }

  async checkpoint(): Promise<void> {
    await this.settle();
    const streams: StreamState[] = [...this.dormant.values()];
    for (const [venue, engine] of this.engines) {
      for (const symbolEngine of engine.symbols.values()) streams.push({ venue, symbol: symbolEngine.symbol, state: symbolEngine.getState() });
    }
    await this.store.save({ partition: this.partition, lastSequence: this.lastSequence, configHash: this.configHash, streams });
    this.checkpoints++;
    this.sinceCheckpoint = 0;
    this.lastCheckpointAt = Date.now();
  }

  /**
   * Puts the summary of every stream that moved into the bucket the api role watches. A failed
   * write is logged and retried next round: summaries inform, the log and the checkpoints are
   * what the state is rebuilt from.
   */
  private async writeSummaries(): Promise<void> {
    const moved = this.moved;
    this.moved = new Map();
    this.lastSummaryAt = Date.now();
    const writes = [...moved].map(([symbolEngine, venue]) => this.summaries.put(summaryKey(venue, symbolEngine.symbol), JSON.stringify(this.summaryOf(symbolEngine, venue))));
    const failed = (await Promise.allSettled(writes)).filter((outcome) => outcome.status === 'rejected');
    if (failed.length > 0) {
      for (const [symbolEngine, venue] of moved) if (!this.moved.has(symbolEngine)) this.moved.set(symbolEngine, venue);
      this.logger.warn({ partition: this.partition, failed: failed.length, err: messageOf(failed[0].reason) }, 'stream summaries not written; retrying next round');
    }
  }

  private summaryOf(engine: SymbolEngine, venue: string): StreamSummary {
    return {
      venue,
      symbol: engine.symbol,
      partition: this.partition,
      worker: this.workerId,
      lastSequence: this.lastSequence,
      at: Date.now(),
      ticks: engine.ticks,
      disconnects: engine.disconnects,
      warm: engine.normaliser.isWarm,
      modelNames: engine.modelNames,
      classNames: engine.classNames,
      targetName: engine.targetName,
      kernel: currentRtrlKernel().name,
      metrics: metricsOfEngine(engine),
    };
  }

  /** Stops consuming; with `checkpoint`, writes one last checkpoint first (a clean hand-over). */
  async stop(checkpoint: boolean): Promise<void> {
    this.stopping = true;
    await this.done;
    if (checkpoint && this.sinceCheckpoint > 0) await this.checkpoint();
    if (checkpoint && this.moved.size > 0) await this.writeSummaries();
  }

  stats(): PartitionStats {
    const { partition, lastSequence, lag, applied, rejected, predictions, checkpoints, restarts } = this;
    return { partition, lastSequence, lag, applied, rejected, predictions, checkpoints, restarts };
  }
}

function streamKey(venue: string, symbol: string): string {
  return `${venue}\u0000${symbol}`;
}

export interface PartitionWorkerOptions {
  readonly bus: BusConnection;
  readonly engineConfig: EngineConfig;
  readonly logger: WorkerLogger;
  readonly workerId?: string;
}

/**
 * The worker process's ownership loop: heartbeat, renew what it holds, give up what it lost,
 * and take free partitions up to its fair share (partitions divided by live workers).
 */
export class PartitionWorker {
  readonly workerId: string;
  private readonly runners = new Map<number, PartitionRunner>();
  private timer: NodeJS.Timeout | null = null;
  private closing = false;
  private tick: Promise<void> = Promise.resolve();

  private constructor(
    private readonly options: PartitionWorkerOptions,
    private readonly leases: PartitionLeases,
    private readonly store: SharedCheckpointStore,
    private readonly configHash: string,
    private readonly summaries: KV,
  ) {
    this.workerId = leases.workerId;
  }

  static async start(options: PartitionWorkerOptions): Promise<PartitionWorker> {
    const workerId = options.workerId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
    const leases = await PartitionLeases.open(options.bus, workerId);
    const store = await SharedCheckpointStore.open(options.bus);
    const summaries = await openSummaryBucket(options.bus);
    const worker = new PartitionWorker(options, leases, store, engineConfigHash(options.engineConfig), summaries);
    await worker.balance();
    const period = Math.max(100, (options.bus.config.natsLeaseSeconds * 1000) / 3);
    worker.timer = setInterval(() => {
      worker.tick = worker.tick
        .then(() => worker.balance())
        .catch((error: unknown) => options.logger.warn({ err: messageOf(error) }, 'partition ownership round failed; retrying'));
    }, period);
    return worker;
  }

  get ownedPartitions(): number[] {
    return [...this.runners.keys()].sort((a, b) => a - b);
  }

  stats(): PartitionStats[] {
    return [...this.runners.values()].map((runner) => runner.stats());
  }

  private async balance(): Promise<void> {
    if (this.closing) return;
    const { logger, bus } = this.options;
    await this.leases.heartbeat();
    for (const [partition, runner] of this.runners) {
      if (!(await this.leases.renew(runner.lease))) {
        logger.warn({ partition }, "lease lost: the partition is another worker's now");
        this.runners.delete(partition);
        await runner.stop(false);
      }
    }
    const partitions = bus.config.natsPartitions;
    const share = Math.ceil(partitions / (await this.leases.liveWorkers()));
    // Start the search at a point of our own, so workers starting together spread out.
    const offset = Number.parseInt(this.workerId.slice(-6), 16) % partitions || 0;
    for (let i = 0; i < partitions && this.runners.size < share; i++) {
      const partition = (offset + i) % partitions;
      if (this.runners.has(partition)) continue;
      const lease = await this.leases.tryAcquire(partition);
      if (lease === null) continue;
      logger.info({ partition, worker: this.workerId }, 'partition acquired');
      this.runners.set(partition, new PartitionRunner(lease, bus, this.store, this.options.engineConfig, this.configHash, logger, this.summaries, this.workerId));
    }
    // A new worker joined: hand over what is above our share, checkpointed first.
    while (this.runners.size > share) {
      const partition = Math.max(...this.runners.keys());
      const runner = this.runners.get(partition) as PartitionRunner;
      this.runners.delete(partition);
      await runner.stop(true);
      await this.leases.release(runner.lease);
      logger.info({ partition }, 'partition handed over to rebalance');
    }
  }

  /** Clean shutdown: checkpoint and release every partition, then leave. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.timer) clearInterval(this.timer);
    await this.tick.catch(() => undefined);
    for (const [partition, runner] of this.runners) {
      await runner
        .stop(true)
        .catch((error: unknown) => this.options.logger.error({ partition, err: messageOf(error) }, 'final checkpoint failed; the next owner recomputes from the previous one'));
      await this.leases.release(runner.lease).catch(() => undefined);
    }
    this.runners.clear();
    await this.leases.leaveCluster();
  }
}
