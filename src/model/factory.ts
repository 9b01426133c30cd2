// Builds the configured learners from a model list such as `rtrl,tbptt:10,logistic,majority`.
import { LogisticLearner, MajorityLearner } from './baselines.js';
import type { OnlineLearner } from './learner.js';
import { defaultOptimiserConfig, type OptimiserConfig } from './optimiser.js';
import type { RecurrentConfig } from './recurrent-config.js';
import { RtrlLearner } from './rtrl.js';
import { classNames, pendingModeFor, type TargetSpec } from './targets.js';
import { TbpttLearner } from './tbptt.js';

export type ModelSpec =
  | { readonly kind: 'rtrl' }
  | { readonly kind: 'tbptt'; readonly truncation: number }
  | { readonly kind: 'logistic' }
  | { readonly kind: 'majority' };

export function modelName(spec: ModelSpec): string {
  return spec.kind === 'tbptt' ? `tbptt:${spec.truncation}` : spec.kind;
}

/** Parses a comma-separated model list; errors name the bad entry. */
export function parseModelList(text: string): ModelSpec[] {
  const entries = text.split(',').map((entry) => entry.trim()).filter((entry) => entry.length > 0);
  if (entries.length === 0) throw new Error('models: the list is empty');
  const specs = entries.map((entry): ModelSpec => {
    if (entry === 'rtrl' || entry === 'logistic' || entry === 'majority') return { kind: entry };
    const match = /^tbptt:(\d+)$/.exec(entry);
    if (match) {
      const truncation = Number(match[1]);
      if (truncation < 1 || truncation > 10_000) throw new Error(`models: tbptt truncation must be in [1, 10000], got ${match[1]}`);
      return { kind: 'tbptt', truncation };
    }
    throw new Error(`models: unknown model "${entry}" (expected rtrl, tbptt:K, logistic or majority)`);
  });
  const names = specs.map(modelName);
  const duplicate = names.find((name, i) => names.indexOf(name) !== i);
  if (duplicate) throw new Error(`models: "${duplicate}" is listed twice`);
  return specs;
}

/** Hyperparameters shared by the learners; the defaults are the ones measured on real data. */
export interface LearnerSettings {
  readonly hidden: number;
  readonly seed: number;
  readonly outputScaleBeta: number;
  readonly recurrentGain: number;
  readonly optimiser: OptimiserConfig;
  readonly batchReduction: 'mean' | 'sum';
  /** Next-move predictions older than this many ticks without a mid change expire unscored. */
  readonly maxPending: number;
}

export const defaultLearnerSettings: LearnerSettings = {
  hidden: 16,
  seed: 1,
  outputScaleBeta: 0,
  recurrentGain: 1,
  optimiser: defaultOptimiserConfig,
  batchReduction: 'mean',
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
    seed: settings.seed,
    optimiser: settings.optimiser,
    pending,
    batchReduction: settings.batchReduction,
  };
  return specs.map((spec) => {
    switch (spec.kind) {
      case 'rtrl':
        return new RtrlLearner(recurrent);
      case 'tbptt':
        return new TbpttLearner(recurrent, spec.truncation);
      case 'logistic':
        return new LogisticLearner({ inputs, classes, optimiser: settings.optimiser, pending, batchReduction: settings.batchReduction });
      case 'majority':
        return new MajorityLearner(classes);
    }
  });
}
