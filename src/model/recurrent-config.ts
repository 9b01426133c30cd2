// Configuration shared by the two recurrent learners (RTRL and TBPTT), so that they run the
// same network from the same initial weights and differ only in how they compute gradients.
import { elmanLayout, initElmanParams, type ElmanLayout } from './network.js';
import { defaultOptimiserConfig, type OptimiserConfig } from './optimiser.js';
import { Rng } from './rng.js';
import type { BatchReduction, PendingMode } from './targets.js';

export interface RecurrentConfig {
  readonly hidden: number;
  readonly inputs: number;
  readonly classes: number;
  /** s = N^-beta on the output layer; 0 means s = 1. */
  readonly outputScaleBeta: number;
  /** Standard deviation of W times sqrt(N) at initialisation. */
  readonly recurrentGain: number;
  /** Direct input-to-output weights beside the hidden state (network.ts). */
  readonly inputSkip: boolean;
  readonly seed: number;
  readonly optimiser: OptimiserConfig;
  readonly pending: PendingMode;
  /** How the one update of a batch of labels resolved together (next-move) weighs its ticks. */
  readonly batchReduction: BatchReduction;
}

export const defaultRecurrentConfig = {
  hidden: 16,
  outputScaleBeta: 0,
  recurrentGain: 1,
  inputSkip: true,
  seed: 1,
  optimiser: defaultOptimiserConfig,
  batchReduction: 'tick',
} as const;

export interface RecurrentCore {
  readonly layout: ElmanLayout;
  readonly params: Float64Array;
  readonly rng: Rng;
}

/** Layout and seeded initial parameters: identical for RTRL and TBPTT given one config. */
export function createRecurrentCore(config: RecurrentConfig): RecurrentCore {
  const layout = elmanLayout({
    hidden: config.hidden,
    inputs: config.inputs,
    classes: config.classes,
    outputScaleBeta: config.outputScaleBeta,
    inputSkip: config.inputSkip,
  });
  if (config.pending.kind === 'batch' && !(Number.isInteger(config.pending.maxPending) && config.pending.maxPending >= 1)) {
    throw new Error(`pending.maxPending: must be a positive integer, got ${config.pending.maxPending}`);
  }
  if (config.pending.kind === 'fifo' && !(Number.isInteger(config.pending.capacity) && config.pending.capacity >= 1)) {
    throw new Error(`pending.capacity: must be a positive integer, got ${config.pending.capacity}`);
  }
  const rng = new Rng(config.seed);
  const params = initElmanParams(layout, rng, config.recurrentGain);
  return { layout, params, rng };
}
