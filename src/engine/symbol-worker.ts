// A worker thread that owns some symbols' engines. It receives batches of input records from
// the main thread (src/engine/worker-pool.ts), runs each through its symbol's SymbolEngine
// exactly as Engine.process would, and answers each batch with the predictions it made, in
// order. It does no I/O: checkpoint bytes go to the main thread, which owns SQLite.
import { getPriority, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import type { BookSnapshot, OrderEvent, Trade } from '../domain/types.js';
import type { EngineConfig } from './config.js';
import { LatencyHistogram } from './latency.js';
import { collectGarbage } from './memory.js';
import { SymbolEngine, type StreamObserver, type StreamObserverModule } from './symbol-engine.js';
import { modelName } from '../model/factory.js';
import { useRtrlKernel } from '../model/kernels/select.js';
import { classNames } from '../model/targets.js';
import { EVERY_SYMBOL, PREDICTION_HEADER, predictionStride, RecordReader, RESOLUTION_SLOTS, type RecordHandler } from './worker-wire.js';
import type { SymbolSummary, SymbolOpened, SymbolSnapshot, WorkerReply, WorkerRequest, WorkerStartData } from './worker-protocol.js';

const port = parentPort;
if (!port) throw new Error('symbol-worker.ts runs as a worker thread, not as a program');
const start = workerData as WorkerStartData;
// Before any learner exists: the addon is loaded on this thread too (N-API modules load once
// per thread), and a worker never runs a kernel other than the one the main thread logged.
useRtrlKernel(start.rtrlKernel);
// Linux keeps a nice value per thread, and setpriority on "this process" from a thread sets only
// that thread's; elsewhere it would lower the main thread too, so it is not done there.
if (start.nice > 0 && process.platform === 'linux') {
  try {
    setPriority(0, Math.min(19, getPriority(0) + start.nice));
  } catch {
    // A sandbox may refuse it: the thread runs at the main thread's priority, as before.
  }
}
const config: EngineConfig = start.config;
const engines: (SymbolEngine | undefined)[] = [];
const names: string[] = [];
const observers = new Map<number, StreamObserver>();
const observerModule = start.observerModule === null ? null : ((await import(start.observerModule)) as StreamObserverModule);
/**
 * States of symbols released for hibernation whose checkpoint the main thread has not yet
 * confirmed: a message that reaches one before `forget` (the main thread sent it while the
 * release was under way) restores it from here, so nothing sent to a worker is ever lost.
 */
const held = new Map<number, Uint8Array>();
const latency = new LatencyHistogram();
const clock = () => performance.now();
const classes = classNames(config.target).length;
const models = config.models.map(modelName);
const stride = predictionStride(models.length, classes);
let output = new Float64Array(stride * 1024);
let outputLength = 0;

function engineOf(symbolId: number): SymbolEngine {
  const engine = engines[symbolId] ?? revive(symbolId);
  if (!engine) throw new Error(`symbol ${symbolId} (${names[symbolId] ?? '?'}) is not open on this worker`);
  return engine;
}

const handler: RecordHandler = {
  snapshot(symbolId: number, snapshot: BookSnapshot): void {
    const engine = engineOf(symbolId);
    const prediction = engine.onSnapshot(snapshot, clock, latency);
    const resolved = prediction.resolved;
    const length = stride + (resolved ? resolved.length * RESOLUTION_SLOTS : 0);
    while (outputLength + length > output.length) {
      const grown = new Float64Array(output.length * 2);
      grown.set(output.subarray(0, outputLength));
      output = grown;
    }
    const at = outputLength;
    output[at] = symbolId;
    output[at + 1] = prediction.ts;
    output[at + 2] = prediction.localTs;
    output[at + 3] = prediction.seq;
    output[at + 4] = prediction.mid;
    output[at + 5] = engine.ticks;
    output[at + 6] = engine.normaliser.isWarm ? 1 : 0;
    output[at + 7] = resolved ? resolved.length : 0;
    let slot = at + PREDICTION_HEADER;
    for (const model of prediction.models) for (const p of model.probs) output[slot++] = p;
    if (resolved) {
      for (const resolution of resolved) {
        output[slot++] = resolution.fromSeq;
        output[slot++] = resolution.toSeq;
        output[slot++] = resolution.count;
        output[slot++] = engine.classNames.indexOf(resolution.label);
      }
    }
    outputLength = at + length;
  },
  trade(symbolId: number, trade: Trade): void {
    engineOf(symbolId).onTrade(trade);
  },
  orderEvent(symbolId: number, event: OrderEvent): void {
    engineOf(symbolId).onOrderEvent(event);
  },
  disconnect(symbolId: number): void {
    if (symbolId === EVERY_SYMBOL) {
      for (const id of [...held.keys()]) revive(id);
      for (const engine of engines) engine?.onDisconnect();
    } else {
      (engines[symbolId] ?? revive(symbolId))?.onDisconnect();
    }
  },
};
const reader = new RecordReader((symbolId) => names[symbolId]);

/** A released symbol's held state loaded back (undefined when none is held). */
function revive(symbolId: number): SymbolEngine | undefined {
  const state = held.get(symbolId);
  if (!state) return undefined;
  held.delete(symbolId);
  const engine = fresh(symbolId, names[symbolId]);
  engine.loadState(state);
  engines[symbolId] = engine;
  return engine;
}

function fresh(symbolId: number, symbol: string): SymbolEngine {
  const observer = observerModule?.createObserver(symbol, models, classes) ?? null;
  if (observer) observers.set(symbolId, observer);
  else observers.delete(symbolId);
  return new SymbolEngine(symbol, config, observer);
}

function snapshotOf(engine: SymbolEngine): SymbolSnapshot {
  return {
    ticks: engine.ticks,
    disconnects: engine.disconnects,
    lastPrediction: engine.lastPrediction,
    lastInputSeq: engine.lastInputSeq,
    lastInputTs: engine.lastInputTs,
    warm: engine.normaliser.isWarm,
  };
}

/** Opens a symbol from the newest candidate state that loads whole, else fresh (the main thread verified checksums and configuration). */
function open(symbolId: number, symbol: string, candidates: ReadonlyArray<{ id: number; payload: Uint8Array }>): SymbolOpened {
  names[symbolId] = symbol;
  held.delete(symbolId);
  const failures: SymbolOpened['failures'] = [];
  for (const candidate of candidates) {
    const engine = fresh(symbolId, symbol);
    try {
      engine.loadState(candidate.payload);
      engines[symbolId] = engine;
      return { checkpoint: candidate.id, failures, ...snapshotOf(engine) };
    } catch (error) {
      failures.push({ id: candidate.id, message: (error as Error).message });
    }
  }
  const engine = fresh(symbolId, symbol);
  engines[symbolId] = engine;
  return { checkpoint: null, failures, ...snapshotOf(engine) };
}

function summaryOf(symbolId: number, withState: boolean): SymbolSummary {
  const engine = engineOf(symbolId);
  return {
    symbolId,
    symbol: engine.symbol,
    ...snapshotOf(engine),
    unscored: engine.learners.unscored,
    modelNames: engine.modelNames,
    summaries: engine.metrics.map((metrics) => metrics.summary()),
    rolling: engine.metrics.map((metrics) => metrics.rolling()),
    learnerStats: engine.learners.learners.map((learner) => ({ ...learner.stats })),
    mixWeights: engine.mixtureWeights(),
    observed: observers.get(symbolId)?.toData() ?? null,
    state: withState ? engine.getState() : null,
  };
}

function answer(request: WorkerRequest): WorkerReply | null {
  switch (request.op) {
    case 'batch': {
      const started = clock();
      outputLength = 0;
      reader.read(request.records, handler);
      const made = output.slice(0, outputLength);
      return { op: 'batch', round: request.round, predictions: made, busyMs: clock() - started };
    }
    case 'open':
      return { op: 'reply', requestId: request.requestId, value: open(request.symbolId, request.symbol, request.candidates) };
    case 'summary': {
      const ids = request.symbolIds ?? engines.flatMap((engine, id) => (engine ? [id] : []));
      return { op: 'reply', requestId: request.requestId, value: { symbols: ids.map((id) => summaryOf(id, request.withState)), latency: latency.getState() } };
    }
    case 'load': {
      // Built whole beside the running engine, which is replaced only once the state loaded.
      const engine = fresh(request.symbolId, names[request.symbolId]);
      engine.loadState(request.payload);
      engines[request.symbolId] = engine;
      return { op: 'reply', requestId: request.requestId, value: snapshotOf(engine) };
    }
    case 'release': {
      const summary = summaryOf(request.symbolId, true);
      held.set(request.symbolId, summary.state!);
      engines[request.symbolId] = undefined;
      observers.delete(request.symbolId);
      return { op: 'reply', requestId: request.requestId, value: summary };
    }
    case 'forget':
      held.delete(request.symbolId);
      return null;
    case 'collectGarbage':
      return { op: 'reply', requestId: request.requestId, value: collectGarbage() };
    case 'resetOrdering': {
      const engine = engineOf(request.symbolId);
      engine.resetOrdering();
      return { op: 'reply', requestId: request.requestId, value: { ...snapshotOf(engine), state: engine.getState() } };
    }
  }
}

port.on('message', (request: WorkerRequest) => {
  let reply: WorkerReply | null;
  try {
    reply = answer(request);
  } catch (error) {
    reply = {
      op: 'failed',
      requestId: 'requestId' in request ? request.requestId : -1,
      round: request.op === 'batch' ? request.round : -1,
      message: (error as Error).stack ?? String(error),
    };
  }
  if (reply === null) return;
  // Copied, never transferred: detaching a buffer in this isolate would invalidate V8's
  // ArrayBufferDetaching protector, and every typed-array kernel here would then run with
  // detach checks (measured: about a quarter more CPU per tick). The copy is a memcpy of the
  // batch's predictions.
  port.postMessage(reply);
});
