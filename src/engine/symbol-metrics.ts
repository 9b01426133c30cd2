// A stream's scores as REST, /metrics and the api role read them: every model's prequential
// metrics (overall and rolling), its learner's counters and the mix weights. Plain data, so a
// worker thread or a worker process can hand it over as it is.
import type { LearnerStats } from '../model/learner.js';
import type { MetricsSummary, RollingMetrics } from './metrics.js';
import type { SymbolEngine } from './symbol-engine.js';

export interface SymbolMetrics {
  readonly unscored: number;
  readonly models: ReadonlyArray<{ model: string; overall: MetricsSummary; rolling: RollingMetrics[]; learner: LearnerStats }>;
  /** The mix model's weight on each member; null without a mix. */
  readonly mixWeights: Array<{ model: string; weight: number }> | null;
}

export function metricsOfEngine(engine: SymbolEngine): SymbolMetrics {
  return {
    unscored: engine.learners.unscored,
    models: engine.metrics.map((metrics, i) => ({
      model: engine.modelNames[i],
      overall: metrics.summary(),
      rolling: metrics.rolling(),
      learner: { ...engine.learners.learners[i].stats },
    })),
    mixWeights: engine.mixtureWeights(),
  };
}
