// What an engine is configured with, and a stable hash of it: a checkpoint made under one
// configuration is never loaded into another.
import { createHash } from 'node:crypto';
import { FEATURE_SET_VERSION } from '../features/extract.js';
import type { NormaliserOptions } from '../features/normaliser.js';
import { defaultLearnerSettings, modelName, parseModelList, type LearnerSettings, type ModelSpec } from '../model/factory.js';
import { targetName, type TargetSpec } from '../model/targets.js';

export interface EngineConfig {
  /** Book levels per side that features are computed from. */
  readonly levels: number;
  readonly target: TargetSpec;
  /** The first model is the one `--out` writes and the service headlines. */
  readonly models: readonly ModelSpec[];
  readonly learner: LearnerSettings;
  readonly normaliser: Required<Pick<NormaliserOptions, 'halfLife' | 'clip' | 'warmup'>>;
  readonly rollingWindows: readonly number[];
}

export const defaultEngineConfig: EngineConfig = {
  levels: 10,
  target: { kind: 'next-move' },
  models: parseModelList('rtrl,tbptt:10,logistic,majority,mix'),
  learner: defaultLearnerSettings,
  normaliser: { halfLife: 1000, clip: 5, warmup: 100 },
  rollingWindows: [1000, 10_000],
};

/**
 * sha256 of the configuration's canonical JSON (keys sorted), hex. The feature set's version
 * is part of it: a checkpoint trained on other inputs never matches.
 */
export function engineConfigHash(config: EngineConfig, featureSet: string = FEATURE_SET_VERSION): string {
  const canonical = stableStringify({ ...config, featureSet, target: targetName(config.target), models: config.models.map(modelName) });
  return createHash('sha256').update(canonical).digest('hex');
}

function stableStringify(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableStringify(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
