// Builds the configured learners from a model list such as `rtrl,tbptt:10,logistic,majority,mix`.
import { LogisticLearner, MajorityLearner } from './baselines.js';
import type { OnlineLearner } from './learner.js';
import { MixtureLearner } from './mixture.js';
import { defaultOptimiserConfig, type OptimiserConfig } from './optimiser.js';
import type { RecurrentConfig } from './recurrent-config.js';
import { RtrlLearner } from './rtrl.js';
import { classNames, pendingModeFor, type BatchReduction, type TargetSpec } from './targets.js';
import { TemperatureScaled } from './temperature.js';
import { TbpttLearner } from './tbptt.js';

export type ModelSpec =
  | { readonly kind: 'rtrl' }
  | { readonly kind: 'tbptt'; readonly truncation: number }
  | { readonly kind: 'logistic' }
  | { readonly kind: 'majority' }
  /** The exponentially weighted mixture of every other configured model (mixture.ts). */
  | { readonly kind: 'mix' };

export function modelName(spec: ModelSpec): string {
  return spec.kind === 'tbptt' ? `tbptt:${spec.truncation}` : spec.kind;
}

/** Parses a comma-separated model list; errors name the bad entry. */
export function parseModelList(text: string): ModelSpec[] {
  const entries = text
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry.length > 0);
  if (entries.length === 0) throw new Error('models: the list is empty');
  const specs = entries.map((entry): ModelSpec => {
    if (entry === 'rtrl' || entry === 'logistic' || entry === 'majority' || entry === 'mix') return { kind: entry };
    const match = /^tbptt:(\d+)$/.exec(entry);
    if (match) {
      const truncation = Number(match[1]);
      if (truncation < 1 || truncation > 10_000) throw new Error(`models: tbptt truncation must be in [1, 10000], got ${match[1]}`);
      return { kind: 'tbptt', truncation };
    }
    throw new Error(`models: unknown model "${entry}" (expected rtrl, tbptt:K, logistic, majority or mix)`);
  });
  const names = specs.map(modelName);
  const duplicate = names.find((name, i) => names.indexOf(name) !== i);
  if (duplicate) throw new Error(`models: "${duplicate}" is listed twice`);
  if (names.includes('mix') && specs.length === 1) throw new Error('models: mix needs at least one other model to mix');
  return specs;
}

/** Hyperparameters shared by the learners; the defaults are the ones measured on real data. */
export interface LearnerSettings {
  readonly hidden: number;
  readonly seed: number;
  readonly outputScaleBeta: number;
  readonly recurrentGain: number;
  /** Recurrent learners' readout also sees the inputs directly (network.ts). */
  readonly inputSkip: boolean;
  readonly optimiser: OptimiserConfig;
  readonly batchReduction: BatchReduction;
  /**
   * Step size of the online temperature put on every trained learner's probabilities
   * (temperature.ts); 0 leaves their probabilities raw. The majority baseline is never scaled:
   * its frequencies are already calibrated and it is the reference the others must beat.
   */
  readonly temperatureRate: number;
  /** Next-move predictions older than this many ticks without a mid change expire unscored. */
  readonly maxPending: number;
}

export const defaultLearnerSettings: LearnerSettings = {
  hidden: 16,
  seed: 1,
  outputScaleBeta: 0,
  recurrentGain: 1,
  inputSkip: true,
  optimiser: defaultOptimiserConfig,
  // Full replays of LOBSTER AMZN 2012-06-21 and Binance BTCUSDT 2024-08-08/09, rtrl log-loss
  // (majority 0.693 / 0.705): 'mean' with raw probabilities 0.869 / 0.836, 'tick' alone
  // 0.787 / 0.716, 'tick' with the temperature 0.670 / 0.642; accuracy 0.591 / 0.66 throughout.
  batchReduction: 'tick',
  // With the smaller steps above, 0.03 left the temperature noisier than the learner it
  // scales: on AMZN (feature set flow-2) 0.01 took rtrl's log-loss from 0.6340 to 0.6330 and
  // logistic's from 0.6341 to 0.6335, accuracy untouched.
  temperatureRate: 0.01,
  maxPending: 10_000,
};

export function createLearners(specs: readonly ModelSpec[], settings: LearnerSettings, inputs: number, target: TargetSpec): OnlineLearner[] {
  const classes = classNames(target).length;
  const pending = pendingModeFor(target, settings.maxPending);
  const recurrent: RecurrentConfig = {
    hidden: settings.hidden,
    inputs,
    classes,
    outputScaleBeta: settings.outputScaleBeta,
    recurrentGain: settings.recurrentGain,
    inputSkip: settings.inputSkip,
    seed: settings.seed,
    optimiser: settings.optimiser,
    pending,
    batchReduction: settings.batchReduction,
  };
  if (!(Number.isFinite(settings.temperatureRate) && settings.temperatureRate >= 0)) {
    throw new Error(`temperatureRate: must be a finite number >= 0, got ${settings.temperatureRate}`);
  }
  const calibrated = (learner: OnlineLearner): OnlineLearner =>
    settings.temperatureRate > 0 ? new TemperatureScaled(learner, { rate: settings.temperatureRate, pending }) : learner;
  return specs.map((spec) => {
    switch (spec.kind) {
      case 'rtrl':
        return calibrated(new RtrlLearner(recurrent));
      case 'tbptt':
        return calibrated(new TbpttLearner(recurrent, spec.truncation));
      case 'logistic':
        return calibrated(new LogisticLearner({ inputs, classes, optimiser: settings.optimiser, pending, batchReduction: settings.batchReduction }));
      case 'majority':
        return new MajorityLearner(classes);
      case 'mix':
        return new MixtureLearner(specs.length - 1, classes, pending);
    }
  });
}
