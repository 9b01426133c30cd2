// Throughput of the online learners and of the RTRL sensitivity kernel, per hidden size.
// A step is what the engine does per tick when every prediction is labelled one tick later:
// predict(features, probs) then resolve(label, 1), with fifo pending capacity 1, so each
// step is one forward pass, one sensitivity update and one optimiser update. Inputs are
// standard normal (what the online normaliser emits), drawn up front from a seeded pool so
// the timed loop measures only the learner.
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { elmanStateStep, rtrlSensitivityStep } from '../src/model/kernels/elman.js';
import { LogisticLearner } from '../src/model/baselines.js';
import type { OnlineLearner } from '../src/model/learner.js';
import { defaultOptimiserConfig } from '../src/model/optimiser.js';
import { createRecurrentCore, defaultRecurrentConfig, type RecurrentConfig } from '../src/model/recurrent-config.js';
import { Rng } from '../src/model/rng.js';
import { JS_KERNEL, type RtrlKernel } from '../src/model/kernels/select.js';
import { RtrlLearner } from '../src/model/rtrl.js';
import type { PendingMode } from '../src/model/targets.js';
import { TbpttLearner } from '../src/model/tbptt.js';

export const BENCH_HIDDEN_SIZES: readonly number[] = [8, 16, 32, 64];
export const BENCH_INPUTS = 44;
export const BENCH_CLASSES = 2;
export const BENCH_TRUNCATION = 10;

export interface TimingOptions {
  /** Timed runs per cell; the median is reported. */
  readonly repeats: number;
  /** Each timed run lasts at least this long, so a cell is measured for repeats x this. */
  readonly minRepeatSeconds: number;
  /** Untimed running first, so the JIT has optimised the loop before it is measured. */
  readonly warmupSeconds: number;
}

export const defaultTiming: TimingOptions = { repeats: 3, minRepeatSeconds: 0.4, warmupSeconds: 0.3 };

export const KERNEL_FLOPS_COUNTED = '2*N*N*P (W S) + P (immediate Jacobian adds) + N*P (scaling by 1 - h^2), P = N*N + N*d + N';

export interface LearnerBenchRow {
  readonly hidden: number;
  readonly inputs: number;
  readonly classes: number;
  /** P: recurrent parameters, the width of the sensitivity matrix. */
  readonly recurrentParams: number;
  readonly rtrlStepsPerSecond: number;
  readonly tbpttStepsPerSecond: number;
  readonly logisticStepsPerSecond: number;
  readonly kernelStepsPerSecond: number;
  readonly kernelFlopsPerStep: number;
  readonly kernelGflops: number;
}

/** Floating-point operations of one rtrlSensitivityStep, as counted in KERNEL_FLOPS_COUNTED. */
export function sensitivityKernelFlops(n: number, d: number): number {
  const p = n * n + n * d + n;
  return 2 * n * n * p + p + n * p;
}

/**
 * Median rate (steps/s) of `run(steps)`. The warm-up doubles the step count until one call
 * takes 50 ms and keeps running until `warmupSeconds` have passed; that last call sizes the
 * timed runs.
 */
export function measureRate(run: (steps: number) => void, timing: TimingOptions = defaultTiming): number {
  let steps = 1;
  let elapsed = 0;
  let warmed = 0;
  for (;;) {
    const started = performance.now();
    run(steps);
    elapsed = (performance.now() - started) / 1000;
    warmed += elapsed;
    if (elapsed >= 0.05 && warmed >= timing.warmupSeconds) break;
    if (elapsed < 0.05) steps *= 2;
  }
  const perRepeat = Math.max(1, Math.ceil((steps * timing.minRepeatSeconds) / elapsed));
  const rates: number[] = [];
  for (let repeat = 0; repeat < timing.repeats; repeat++) {
    const started = performance.now();
    run(perRepeat);
    rates.push(perRepeat / ((performance.now() - started) / 1000));
  }
  rates.sort((a, b) => a - b);
  return rates[Math.floor(rates.length / 2)];
}

const POOL = 1024; // power of two: the loops index it with a mask

/** Seeded standard-normal inputs and uniform labels, one view per input made up front. */
export class InputPool {
  readonly inputs: Float64Array[];
  readonly labels: Int32Array;

  constructor(d: number, classes: number, seed: number) {
    const rng = new Rng(seed);
    const flat = new Float64Array(POOL * d);
    for (let i = 0; i < flat.length; i++) flat[i] = rng.normal();
    this.inputs = Array.from({ length: POOL }, (_, i) => flat.subarray(i * d, i * d + d));
    this.labels = new Int32Array(POOL);
    for (let i = 0; i < POOL; i++) this.labels[i] = rng.nextUint32() % classes;
  }
}

/** Runs a learner tick by tick over the pool, continuing where the previous call stopped. */
class LearnerLoop {
  private tick = 0;
  private readonly probs: Float64Array;
  private sink = 0;

  constructor(
    readonly learner: OnlineLearner,
    private readonly pool: InputPool,
  ) {
    this.probs = new Float64Array(learner.classes);
  }

  readonly run = (steps: number): void => {
    const { learner, probs } = this;
    const { inputs, labels } = this.pool;
    let t = this.tick;
    for (let i = 0; i < steps; i++, t++) {
      learner.predict(inputs[t & (POOL - 1)], probs);
      learner.resolve(labels[t & (POOL - 1)], 1);
    }
    this.sink += probs[0];
    this.tick = t;
  };

  /** Throws if the run did not do one finite update per tick, which would void its timing. */
  check(): void {
    const { stats, name } = this.learner;
    if (stats.labels !== this.tick) throw new Error(`${name}: ${stats.labels} labels learned over ${this.tick} ticks`);
    if (stats.updates + stats.skippedNonFinite !== this.tick) throw new Error(`${name}: ${stats.updates} updates over ${this.tick} ticks`);
    if (stats.skippedNonFinite > 0 || stats.stateResets > 0 || !Number.isFinite(this.sink)) {
      throw new Error(`${name}: went non-finite (${stats.skippedNonFinite} skipped updates, ${stats.stateResets} state resets)`);
    }
  }
}

export function recurrentConfig(n: number, pending: PendingMode, inputs = BENCH_INPUTS): RecurrentConfig {
  return { ...defaultRecurrentConfig, hidden: n, inputs, classes: BENCH_CLASSES, pending };
}

export function rateOf(learner: OnlineLearner, pool: InputPool, timing: TimingOptions): number {
  const loop = new LearnerLoop(learner, pool);
  const rate = measureRate(loop.run, timing);
  loop.check();
  return rate;
}

export type SensitivityKernel = typeof rtrlSensitivityStep;

/**
 * A sensitivity kernel alone (rtrlSensitivityStep unless told), over the hidden states the
 * network's own forward pass produces from the pool (so 1 - h^2 has realistic values),
 * ping-ponging two sensitivity buffers.
 */
export function kernelRate(n: number, pool: InputPool, timing: TimingOptions, d = BENCH_INPUTS, kernel: SensitivityKernel = rtrlSensitivityStep): number {
  const { params, layout } = createRecurrentCore(recurrentConfig(n, { kind: 'fifo', capacity: 1 }, d));
  const p = layout.recurrent;
  const states = new Float64Array((POOL + 1) * n);
  const stateViews = Array.from({ length: POOL + 1 }, (_, i) => states.subarray(i * n, i * n + n));
  for (let i = 0; i < POOL; i++) elmanStateStep(n, d, params, stateViews[i], pool.inputs[i], stateViews[i + 1]);
  const buffers = [new Float64Array(n * p), new Float64Array(n * p)];
  let t = 0;
  const run = (steps: number): void => {
    for (let i = 0; i < steps; i++, t++) {
      const slot = t & (POOL - 1);
      kernel(n, d, params, stateViews[slot], pool.inputs[slot], stateViews[slot + 1], buffers[t & 1], buffers[(t + 1) & 1]);
    }
  };
  const rate = measureRate(run, timing);
  for (const buffer of buffers) {
    for (let i = 0; i < buffer.length; i++) {
      if (!Number.isFinite(buffer[i])) throw new Error(`sensitivity kernel N=${n}: S went non-finite`);
    }
  }
  return rate;
}

/** RTRL (on `kernel`, the TypeScript one unless told), TBPTT(10) and logistic steps/s and the sensitivity kernel's rate, for one N. */
export function benchLearnersAt(n: number, timing: TimingOptions = defaultTiming, seed = 7, kernel: RtrlKernel = JS_KERNEL): LearnerBenchRow {
  const pool = new InputPool(BENCH_INPUTS, BENCH_CLASSES, seed);
  const pending: PendingMode = { kind: 'fifo', capacity: 1 };
  const config = recurrentConfig(n, pending);
  const rtrlStepsPerSecond = rateOf(new RtrlLearner(config, undefined, 'rtrl', kernel), pool, timing);
  const tbpttStepsPerSecond = rateOf(new TbpttLearner(config, BENCH_TRUNCATION), pool, timing);
  const logistic = new LogisticLearner({
    inputs: BENCH_INPUTS,
    classes: BENCH_CLASSES,
    optimiser: defaultOptimiserConfig,
    pending,
    batchReduction: 'mean',
  });
  const logisticStepsPerSecond = rateOf(logistic, pool, timing);
  const kernelStepsPerSecond = kernelRate(n, pool, timing);
  const kernelFlopsPerStep = sensitivityKernelFlops(n, BENCH_INPUTS);
  return {
    hidden: n,
    inputs: BENCH_INPUTS,
    classes: BENCH_CLASSES,
    recurrentParams: n * n + n * BENCH_INPUTS + n,
    rtrlStepsPerSecond,
    tbpttStepsPerSecond,
    logisticStepsPerSecond,
    kernelStepsPerSecond,
    kernelFlopsPerStep,
    kernelGflops: (kernelStepsPerSecond * kernelFlopsPerStep) / 1e9,
  };
}

/** Formats rows of text as right-aligned columns under a header. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column].length)));
  const line = (cells: readonly string[]): string => cells.map((cell, column) => cell.padStart(widths[column])).join('  ');
  return [line(header), widths.map((width) => '-'.repeat(width)).join('  '), ...rows.map(line)].join('\n');
}

/** Integer with thousands separators for rates >= 100, three significant digits below. */
export function formatRate(value: number): string {
  return value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toPrecision(3);
}

export function formatLearnerTable(rows: readonly LearnerBenchRow[]): string {
  return formatTable(
    ['N', 'P', 'rtrl steps/s', 'rtrl us/step', `tbptt(${BENCH_TRUNCATION}) steps/s`, 'logistic steps/s', 'S-kernel steps/s', 'S-kernel GFLOP/s'],
    rows.map((row) => [
      String(row.hidden),
      String(row.recurrentParams),
      formatRate(row.rtrlStepsPerSecond),
      (1e6 / row.rtrlStepsPerSecond).toFixed(1),
      formatRate(row.tbpttStepsPerSecond),
      formatRate(row.logisticStepsPerSecond),
      formatRate(row.kernelStepsPerSecond),
      row.kernelGflops.toFixed(2),
    ]),
  );
}

export function describeLearnerBench(timing: TimingOptions = defaultTiming): string {
  return (
    `d = ${BENCH_INPUTS}, C = ${BENCH_CLASSES}; step = predict + resolve(label, 1), fifo pending capacity 1 ` +
    `(one Adam update per tick); inputs N(0, 1), labels uniform.\n` +
    `Each cell: warm-up >= ${timing.warmupSeconds} s, then median of ${timing.repeats} runs of >= ${timing.minRepeatSeconds} s.\n` +
    `S-kernel = rtrlSensitivityStep alone; flops counted per step: ${KERNEL_FLOPS_COUNTED}.`
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  console.log(describeLearnerBench());
  const rows = BENCH_HIDDEN_SIZES.map((n) => benchLearnersAt(n));
  console.log(formatLearnerTable(rows));
}
