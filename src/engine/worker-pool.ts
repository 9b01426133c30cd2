// Symbols spread over worker threads, one SymbolEngine per symbol as in the in-thread Engine.
//
// A symbol is placed when first seen, round-robin over the workers in order of first sight
// (the k-th new symbol goes to worker k mod N): stable for a given input, and equal numbers
// of symbols per worker. Its messages are written as records (worker-wire.ts) into its
// worker's pending batch; `flush` posts every worker's pending batch as one round, the
// buffers transferred (the main thread runs no kernels, so its detached buffers cost nothing
// that matters). Each worker answers a round with the predictions it made, and the pool
// hands them to `onPrediction` in the order their snapshots were pushed, whatever the worker:
// the global order of predictions is the input order, exactly as with one thread.
//
// With `queueMs`, each worker has a credit: the records it may hold queued or running, sized
// from its measured time per record so that they are about `queueMs` of its work. `roomFor`
// tells a producer whose symbol's worker is full to wait; so what any message waits behind on
// a worker is bounded, and the order callers hand work over is the order it is done.
import { isOfVenue } from '../domain/stream.js';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { BookSnapshot, OrderEvent, Trade } from '../domain/types.js';
import { modelName } from '../model/factory.js';
import { classNames, targetName } from '../model/targets.js';
import type { EngineConfig } from './config.js';
import type { Prediction, Resolution } from './symbol-engine.js';
import { EVERY_SYMBOL, PREDICTION_HEADER, predictionStride, RecordWriter, RESOLUTION_SLOTS } from './worker-wire.js';
import { currentRtrlKernel } from '../model/kernels/select.js';
import type { SymbolOpened, SymbolSnapshot, SymbolSummary, WorkerReply, WorkerRequest, WorkerStartData, WorkerSummary } from './worker-protocol.js';

/** One worker per core: what `--workers` and LOB_RTRL_WORKERS default to. */
export function defaultWorkerCount(): number {
  return availableParallelism();
}

/**
 * The worker script beside this module. Built, it is `symbol-worker.js`; run from the
 * TypeScript sources (vitest), the worker loads `symbol-worker.ts` through a small loader
 * that transpiles TypeScript with the compiler the project already depends on.
 */
function workerEntry(): { url: URL; execArgv: string[] | undefined } {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    return { url: new URL('./symbol-worker.ts', here), execArgv: ['--import', new URL('../../scripts/ts-worker-register.mjs', here).href] };
  }
  return { url: new URL('./symbol-worker.js', here), execArgv: undefined };
}

export interface WorkerPoolOptions {
  /** Worker threads at most (spawned as symbols need them); at least 1. */
  readonly workers: number;
  readonly config: EngineConfig;
  /** URL of a StreamObserverModule: each worker attaches its observer to every symbol it runs (replay's report timeline). */
  readonly observerModule?: string;
  /**
   * Every prediction, in the order the snapshots were pushed, with its symbol's accepted
   * snapshots and whether its normaliser is warm, right after that tick.
   */
  readonly onPrediction: (prediction: Prediction, ticks: number, warm: boolean) => void;
  /**
   * A worker died (an uncaught error, an exit, a batch that threw): its symbols take no more
   * input and their predictions from unanswered rounds are lost. The pool goes on with the others.
   */
  readonly onWorkerFailure?: (worker: number, error: Error, symbols: readonly string[]) => void;
  /** Records in a round before `push` flushes it by itself. */
  readonly maxRoundRecords?: number;
  /**
   * Work each worker may have queued or running, in ms of its own measured time per record,
   * which `roomFor` holds producers to. Unset: unbounded (the caller bounds rounds in flight).
   */
  readonly queueMs?: number;
  /**
   * Niceness the worker threads add to the process's (Linux; default 0): with one worker per
   * core, a positive value lets the main thread's sockets preempt the workers' kernels instead of
   * queueing behind them.
   */
  readonly nice?: number;
}

/** A worker's credit in records, whatever its measured speed: enough to keep it busy while the next round is written. */
export const MIN_CREDIT_RECORDS = 4;
const MAX_CREDIT_RECORDS = 4096;
/** Weight of the newest round in a worker's time per record. */
const COST_SMOOTHING = 0.2;

interface Round {
  readonly id: number;
  /** The worker of each snapshot, in push order. */
  readonly owners: Uint16Array;
  readonly snapshots: number;
  /** Workers still to answer. */
  waiting: number;
  /** Per worker: its predictions for this round, null when it had no part or failed. */
  readonly predictions: (Float64Array | null)[];
}

interface PoolWorker {
  readonly index: number;
  readonly thread: Worker;
  readonly writer: RecordWriter;
  readonly symbols: string[];
  failed: Error | null;
  /** Rounds posted to it and not yet answered, oldest first. */
  readonly rounds: Round[];
  /** Records of each of those rounds, in the same order. */
  readonly roundRecords: number[];
  /** Records written for it (pending or posted) and not yet answered. */
  outstanding: number;
  /** Its measured milliseconds per record (smoothed), NaN before its first answer. */
  msPerRecord: number;
  /** Milliseconds it spent on batches since it started. */
  busyMs: number;
  /** Producers waiting for room on it. */
  roomWaiters: Array<() => void>;
  readonly requests: Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>;
}

export class WorkerFailedError extends Error {
  override readonly name = 'WorkerFailedError';
}

export class SymbolWorkerPool {
  readonly size: number;
  private readonly workers: PoolWorker[] = [];
  private readonly symbolIds = new Map<string, number>();
  private readonly symbolNames: string[] = [];
  private readonly ownerOf: number[] = [];
  /** Symbols hibernated: placed (id and worker kept), but their engine is not on the worker until `open` again. */
  private readonly released = new Set<string>();
  private readonly modelNames: readonly string[];
  private readonly classNames: readonly string[];
  private readonly targetName: string;
  private readonly stride: number;
  private readonly maxRoundRecords: number;
  private readonly rounds: Round[] = [];
  private owners = new Uint16Array(1024);
  private snapshotsInRound = 0;
  private recordsInRound = 0;
  private nextRound = 0;
  /** Rounds handed over so far (ids below this one). */
  private emittedRounds = 0;
  private readonly emitWaiters: Array<{ round: number; resolve: () => void }> = [];
  private nextRequest = 0;
  private closing = false;
  private readonly roundWaiters: Array<{ below: number; resolve: () => void }> = [];
  /** The first failure, for callers that cannot go on without every worker (replay). */
  firstFailure: Error | null = null;

  constructor(private readonly options: WorkerPoolOptions) {
    if (!Number.isInteger(options.workers) || options.workers < 1 || options.workers > 256)
      throw new RangeError(`workers: expected an integer in [1, 256], got ${options.workers}`);
    this.size = options.workers;
    this.modelNames = options.config.models.map(modelName);
    this.classNames = classNames(options.config.target);
    this.targetName = targetName(options.config.target);
    this.stride = predictionStride(this.modelNames.length, this.classNames.length);
    this.maxRoundRecords = options.maxRoundRecords ?? 4096;
  }

  /** Whether `symbol` has been opened. */
  has(symbol: string): boolean {
    return this.symbolIds.has(symbol);
  }

  /** Symbols in order of first sight. */
  get symbols(): readonly string[] {
    return this.symbolNames;
  }

  /** The worker index `symbol` runs on, or undefined. */
  workerOf(symbol: string): number | undefined {
    const id = this.symbolIds.get(symbol);
    return id === undefined ? undefined : this.ownerOf[id];
  }

  /**
   * Null when the worker of `symbol` can take more (or `queueMs` is unset, or the symbol is not
   * open yet), else a promise that resolves once it has worked off half its credit.
   */
  roomFor(symbol: string): Promise<void> | null {
    if (this.options.queueMs === undefined) return null;
    const id = this.symbolIds.get(symbol);
    if (id === undefined) return null;
    const worker = this.workers[this.ownerOf[id]];
    if (worker.failed || worker.outstanding < this.creditOf(worker)) return null;
    // What it was given must reach it, or no room would ever come.
    if (!worker.writer.empty) this.flush();
    return new Promise((resolve) => worker.roomWaiters.push(resolve));
  }

  /** Records a worker (by index) may hold queued or running now. */
  creditOf(worker: number | PoolWorker): number {
    const target = typeof worker === 'number' ? this.workers[worker] : worker;
    const queueMs = this.options.queueMs;
    if (queueMs === undefined) return Number.POSITIVE_INFINITY;
    // Before its first answer its speed is unknown: the floor, until it is measured.
    if (!target || !(target.msPerRecord > 0)) return MIN_CREDIT_RECORDS;
    return Math.min(MAX_CREDIT_RECORDS, Math.max(MIN_CREDIT_RECORDS, Math.ceil(queueMs / target.msPerRecord)));
  }

  /** Records worker `index` holds queued or running now. */
  outstandingOn(index: number): number {
    return this.workers[index]?.outstanding ?? 0;
  }

  /** Whether the worker running `symbol` has failed. */
  failed(symbol: string): boolean {
    const worker = this.workerOf(symbol);
    return worker !== undefined && this.workers[worker].failed !== null;
  }

  /**
   * Places a new symbol on its worker and opens it there from the first of `candidates` that
   * loads (verified checkpoint payloads, newest first), else fresh. Its messages may be pushed
   * at once: the worker opens it before it reads them.
   */
  open(symbol: string, candidates: ReadonlyArray<{ id: number; payload: Uint8Array }> = []): Promise<SymbolOpened> {
    const reopened = this.released.delete(symbol);
    if (this.symbolIds.has(symbol) && !reopened) throw new Error(`open: ${symbol} is already open`);
    // A hibernated symbol wakes where it ran, under its id.
    const symbolId = reopened ? this.symbolIds.get(symbol)! : this.symbolNames.length;
    const index = reopened ? this.ownerOf[symbolId] : symbolId % this.size;
    const worker = this.workers[index] ?? this.spawn(index);
    // Records already waiting for this worker must reach it before the symbol exists there (a
    // disconnect of every symbol pushed before the open must not reach the new one).
    if (!worker.writer.empty) this.flush();
    if (!reopened) {
      this.symbolIds.set(symbol, symbolId);
      this.symbolNames.push(symbol);
      this.ownerOf.push(index);
      worker.symbols.push(symbol);
    }
    return this.request<SymbolOpened>(worker, { op: 'open', requestId: this.nextRequest++, symbolId, symbol, candidates });
  }

  /** Queues a snapshot of an open symbol; false when its worker has failed (nothing queued). */
  snapshot(snapshot: BookSnapshot): boolean {
    const worker = this.liveWorkerOf(snapshot.symbol);
    if (!worker) return false;
    worker.writer.snapshot(this.symbolIds.get(snapshot.symbol)!, snapshot);
    worker.outstanding++;
    if (this.snapshotsInRound === this.owners.length) {
      const grown = new Uint16Array(this.owners.length * 2);
      grown.set(this.owners);
      this.owners = grown;
    }
    this.owners[this.snapshotsInRound++] = worker.index;
    this.counted();
    return true;
  }

  trade(trade: Trade): boolean {
    const worker = this.liveWorkerOf(trade.symbol);
    if (!worker) return false;
    worker.writer.trade(this.symbolIds.get(trade.symbol)!, trade);
    worker.outstanding++;
    this.counted();
    return true;
  }

  orderEvent(event: OrderEvent): boolean {
    const worker = this.liveWorkerOf(event.symbol);
    if (!worker) return false;
    worker.writer.orderEvent(this.symbolIds.get(event.symbol)!, event);
    worker.outstanding++;
    this.counted();
    return true;
  }

  /** A break in the feed of `symbol`, or when null of every open stream of `venue` (unset: of every open symbol). */
  disconnect(symbol: string | null, venue?: string): void {
    if (symbol === null && venue !== undefined) {
      for (const stream of this.symbolIds.keys()) if (isOfVenue(stream, venue)) this.disconnect(stream);
      return;
    }
    if (symbol === null) {
      for (const worker of this.workers) {
        if (worker.failed) continue;
        worker.writer.disconnect(EVERY_SYMBOL);
        worker.outstanding++;
        this.counted();
      }
      return;
    }
    // As in Engine.process, a symbol not yet seen has nothing to reset; a hibernated one is reset when it wakes.
    if (!this.symbolIds.has(symbol) || this.released.has(symbol)) return;
    const worker = this.liveWorkerOf(symbol);
    if (!worker) return;
    worker.writer.disconnect(this.symbolIds.get(symbol)!);
    worker.outstanding++;
    this.counted();
  }

  /** Posts every worker's pending records as one round. */
  flush(): void {
    if (this.recordsInRound === 0) return;
    const round: Round = {
      id: this.nextRound++,
      owners: this.owners.slice(0, this.snapshotsInRound),
      snapshots: this.snapshotsInRound,
      waiting: 0,
      predictions: this.workers.map(() => null),
    };
    this.snapshotsInRound = 0;
    this.recordsInRound = 0;
    for (const worker of this.workers) {
      if (worker.writer.empty) continue;
      const count = worker.writer.count;
      const records = worker.writer.take();
      if (worker.failed) continue;
      round.waiting++;
      worker.rounds.push(round);
      worker.roundRecords.push(count);
      this.post(worker, { op: 'batch', round: round.id, records }, [records.buffer as ArrayBuffer]);
    }
    this.rounds.push(round);
    this.emitReady();
  }

  /** Milliseconds each worker spent on batches since it started, by worker index: what a bench divides by the wall time. */
  busyMsByWorker(): number[] {
    return this.workers.map((worker) => worker.busyMs);
  }

  /** Rounds posted and not yet handed to `onPrediction`. */
  get roundsInFlight(): number {
    return this.rounds.length;
  }

  /** Resolves once fewer than `count` rounds are in flight (a failed worker's part counts as answered). */
  roundsBelow(count: number): Promise<void> {
    if (this.rounds.length < count) return Promise.resolve();
    return new Promise((resolve) => this.roundWaiters.push({ below: count, resolve }));
  }

  /**
   * Flushes, and resolves once the predictions of everything pushed so far have been handed
   * over (later rounds do not hold it back).
   */
  whenHandedOver(): Promise<void> {
    this.flush();
    const last = this.nextRound - 1;
    if (last < this.emittedRounds) return Promise.resolve();
    return new Promise((resolve) => this.emitWaiters.push({ round: last, resolve }));
  }

  /** Every live worker's step latency histogram. */
  async latency(): Promise<WorkerSummary['latency'][]> {
    return (await this.summary(false, [])).latency;
  }

  /** Flushes and waits until every prediction pushed so far has been handed over. */
  async drain(): Promise<void> {
    this.flush();
    await this.roundsBelow(1);
  }

  /**
   * Metrics, timelines and (with `withState`) whole states of the open symbols wanted (all by
   * default), in order of first sight, and the step latency of every worker asked: each one for
   * all symbols or none, only the wanted symbols' workers otherwise.
   */
  async summary(withState: boolean, symbols?: readonly string[]): Promise<{ symbols: SymbolSummary[]; latency: WorkerSummary['latency'][] }> {
    const wanted = symbols ?? (this.released.size === 0 ? this.symbolNames : this.symbolNames.filter((symbol) => !this.released.has(symbol)));
    const answers = await Promise.all(
      this.workers.map((worker) => {
        if (worker.failed) return null;
        const ids = wanted.map((s) => this.symbolIds.get(s)).filter((id): id is number => id !== undefined && this.ownerOf[id] === worker.index);
        // One symbol's checkpoint need not wait for every worker's queue (an empty list still asks each, for its latency).
        if (ids.length === 0 && wanted.length > 0) return null;
        return this.request<WorkerSummary>(worker, { op: 'summary', requestId: this.nextRequest++, symbolIds: ids, withState });
      }),
    );
    const byId = new Map<number, SymbolSummary>();
    for (const answer of answers) for (const summary of answer?.symbols ?? []) byId.set(summary.symbolId, summary);
    return {
      symbols: wanted.flatMap((symbol) => byId.get(this.symbolIds.get(symbol) ?? -1) ?? []),
      latency: answers.flatMap((answer) => (answer ? [answer.latency] : [])),
    };
  }

  /** Replaces a symbol's state with `payload` on its worker; rejects (state unchanged) when it does not decode. */
  load(symbol: string, payload: Uint8Array): Promise<SymbolSnapshot> {
    const worker = this.requireWorker(symbol);
    this.flush();
    return this.request<SymbolSnapshot>(worker, { op: 'load', requestId: this.nextRequest++, symbolId: this.symbolIds.get(symbol)!, payload });
  }

  /**
   * Hibernation, first step: the symbol's summary with its whole state; its worker drops the
   * engine but holds the state, so a message sent meanwhile finds it. `forget` once the state is
   * written, if nothing was sent for the symbol since.
   */
  release(symbol: string): Promise<SymbolSummary> {
    const worker = this.requireWorker(symbol);
    this.flush();
    return this.request<SymbolSummary>(worker, { op: 'release', requestId: this.nextRequest++, symbolId: this.symbolIds.get(symbol)! });
  }

  /** Hibernation, second step: the worker drops the held state; the symbol is away until `open`. */
  forget(symbol: string): void {
    const worker = this.requireWorker(symbol);
    this.released.add(symbol);
    this.post(worker, { op: 'forget', symbolId: this.symbolIds.get(symbol)! });
  }

  /** A major collection on every live worker (after hibernations: the engines they dropped free their arrays). */
  async collectGarbage(): Promise<void> {
    await Promise.all(this.workers.filter((worker) => !worker.failed).map((worker) => this.request<boolean>(worker, { op: 'collectGarbage', requestId: this.nextRequest++ })));
  }

  /** The operator's reset of a symbol's input ordering, on its worker; answers with its state after. */
  resetOrdering(symbol: string): Promise<SymbolSnapshot & { state: Uint8Array }> {
    const worker = this.requireWorker(symbol);
    this.flush();
    return this.request(worker, { op: 'resetOrdering', requestId: this.nextRequest++, symbolId: this.symbolIds.get(symbol)! });
  }

  /**
   * Stops one worker from outside, as a crash or an out-of-memory kill would: its exit is
   * handled as any failure (for drills and the tests of that path).
   */
  async terminateWorker(index: number): Promise<void> {
    const worker = this.workers[index];
    if (!worker) throw new RangeError(`no worker ${index}`);
    await worker.thread.terminate();
  }

  /** Stops every worker; what is still in flight is dropped. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((worker) => worker.thread.terminate()));
  }

  private requireWorker(symbol: string): PoolWorker {
    const id = this.symbolIds.get(symbol);
    if (id === undefined) throw new Error(`${symbol} is not open`);
    const worker = this.workers[this.ownerOf[id]];
    if (worker.failed) throw new WorkerFailedError(`the worker running ${symbol} has failed: ${worker.failed.message}`);
    return worker;
  }

  private liveWorkerOf(symbol: string): PoolWorker | null {
    const id = this.symbolIds.get(symbol);
    if (id === undefined) throw new Error(`${symbol} is not open`);
    const worker = this.workers[this.ownerOf[id]];
    return worker.failed ? null : worker;
  }

  private counted(): void {
    if (++this.recordsInRound >= this.maxRoundRecords) this.flush();
  }

  private spawn(index: number): PoolWorker {
    const entry = workerEntry();
    const data: WorkerStartData = {
      config: this.options.config,
      observerModule: this.options.observerModule ?? null,
      rtrlKernel: currentRtrlKernel().native === undefined ? 'js' : 'native',
      nice: this.options.nice ?? 0,
    };
    const thread = new Worker(entry.url, { workerData: data, execArgv: entry.execArgv });
    const worker: PoolWorker = {
      index,
      thread,
      writer: new RecordWriter(),
      symbols: [],
      failed: null,
      rounds: [],
      roundRecords: [],
      outstanding: 0,
      msPerRecord: Number.NaN,
      busyMs: 0,
      roomWaiters: [],
      requests: new Map(),
    };
    this.workers[index] = worker;
    thread.on('message', (reply: WorkerReply) => this.onReply(worker, reply));
    thread.on('error', (error) => this.fail(worker, error));
    thread.on('messageerror', (error) => this.fail(worker, error));
    thread.on('exit', (code) => {
      if (!this.closing) this.fail(worker, new Error(`worker exited with code ${code}`));
    });
    return worker;
  }

  private post(worker: PoolWorker, request: WorkerRequest, transfer: ArrayBuffer[] = []): void {
    worker.thread.postMessage(request, transfer);
  }

  private request<T>(worker: PoolWorker, request: WorkerRequest & { requestId: number }): Promise<T> {
    if (worker.failed) return Promise.reject(new WorkerFailedError(`worker ${worker.index} has failed: ${worker.failed.message}`));
    return new Promise<T>((resolve, reject) => {
      worker.requests.set(request.requestId, { resolve: resolve as (value: unknown) => void, reject });
      this.post(worker, request);
    });
  }

  private onReply(worker: PoolWorker, reply: WorkerReply): void {
    switch (reply.op) {
      case 'batch': {
        const round = worker.rounds.shift();
        if (!round || round.id !== reply.round) {
          this.fail(worker, new Error(`worker ${worker.index} answered round ${reply.round}, expected ${round?.id}`));
          return;
        }
        round.predictions[worker.index] = reply.predictions;
        round.waiting--;
        this.answered(worker, worker.roundRecords.shift()!, reply.busyMs);
        this.emitReady();
        return;
      }
      case 'reply': {
        const pending = worker.requests.get(reply.requestId);
        worker.requests.delete(reply.requestId);
        pending?.resolve(reply.value);
        return;
      }
      case 'failed': {
        if (reply.round >= 0) {
          // A batch that threw half-way leaves its symbols' state unknown: the worker is done.
          this.fail(worker, new Error(`worker ${worker.index}: ${reply.message}`));
          return;
        }
        const pending = worker.requests.get(reply.requestId);
        worker.requests.delete(reply.requestId);
        pending?.reject(new Error(reply.message.split('\n')[0]));
        return;
      }
    }
  }

  private fail(worker: PoolWorker, error: Error): void {
    if (worker.failed) return;
    worker.failed = error;
    this.firstFailure ??= error;
    void worker.thread.terminate();
    for (const round of worker.rounds) round.waiting--;
    worker.rounds.length = 0;
    worker.roundRecords.length = 0;
    // Its producers go on, to find their symbols refused.
    this.wakeRoomWaiters(worker);
    for (const pending of worker.requests.values()) pending.reject(new WorkerFailedError(`worker ${worker.index} failed: ${error.message}`));
    worker.requests.clear();
    this.options.onWorkerFailure?.(worker.index, error, worker.symbols);
    this.emitReady();
  }

  /** A round's part came back from `worker`: its records leave the credit, and its time per record is learned. */
  private answered(worker: PoolWorker, records: number, busyMs: number): void {
    worker.outstanding -= records;
    if (busyMs > 0) worker.busyMs += busyMs;
    if (records > 0 && busyMs >= 0) {
      const cost = busyMs / records;
      worker.msPerRecord = Number.isNaN(worker.msPerRecord) ? cost : worker.msPerRecord + COST_SMOOTHING * (cost - worker.msPerRecord);
    }
    // Woken at half the credit, not at each record, so the next round is a useful size.
    if (worker.roomWaiters.length > 0 && worker.outstanding <= this.creditOf(worker) / 2) this.wakeRoomWaiters(worker);
  }

  private wakeRoomWaiters(worker: PoolWorker): void {
    const waiters = worker.roomWaiters;
    worker.roomWaiters = [];
    for (const wake of waiters) wake();
  }

  /** Hands over, in push order, the predictions of every leading round all its workers answered. */
  private emitReady(): void {
    while (this.rounds.length > 0 && this.rounds[0].waiting === 0) {
      const round = this.rounds.shift()!;
      this.emittedRounds = round.id + 1;
      const cursors = new Int32Array(round.predictions.length);
      for (let i = 0; i < round.snapshots; i++) {
        const owner = round.owners[i];
        const predictions = round.predictions[owner];
        // A failed worker's snapshots made no predictions.
        if (!predictions) continue;
        const at = cursors[owner];
        this.options.onPrediction(this.predictionAt(predictions, at), predictions[at + 5], predictions[at + 6] === 1);
        cursors[owner] += this.stride + predictions[at + 7] * RESOLUTION_SLOTS;
      }
    }
    for (let i = this.emitWaiters.length - 1; i >= 0; i--) {
      if (this.emitWaiters[i].round < this.emittedRounds) this.emitWaiters.splice(i, 1)[0].resolve();
    }
    for (let i = this.roundWaiters.length - 1; i >= 0; i--) {
      const waiter = this.roundWaiters[i];
      if (this.rounds.length < waiter.below) {
        this.roundWaiters.splice(i, 1);
        waiter.resolve();
      }
    }
  }

  private predictionAt(values: Float64Array, at: number): Prediction {
    const classes = this.classNames.length;
    const models = this.modelNames.map((model, m) => {
      const probs = new Array<number>(classes);
      const from = at + PREDICTION_HEADER + m * classes;
      for (let c = 0; c < classes; c++) probs[c] = values[from + c];
      return { model, probs };
    });
    const resolutions = values[at + 7];
    let resolved: Resolution[] | undefined;
    if (resolutions > 0) {
      resolved = new Array<Resolution>(resolutions);
      for (let r = 0, from = at + this.stride; r < resolutions; r++, from += RESOLUTION_SLOTS) {
        resolved[r] = { fromSeq: values[from], toSeq: values[from + 1], count: values[from + 2], label: this.classNames[values[from + 3]] };
      }
    }
    return {
      type: 'prediction',
      symbol: this.symbolNames[values[at]],
      ts: values[at + 1],
      localTs: values[at + 2],
      seq: values[at + 3],
      mid: values[at + 4],
      target: this.targetName,
      classNames: this.classNames,
      models,
      resolved,
    };
  }
}
