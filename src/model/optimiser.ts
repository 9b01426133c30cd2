// Online optimisers over one flat parameter vector: one step per resolved label (or per
// resolved batch of labels that share one outcome).

export interface OptimiserConfig {
  readonly kind: 'sgd' | 'adam';
  /** alpha_0 */
  readonly learningRate: number;
  /** alpha_t = alpha_0 / (1 + t / t0)^gamma; gamma = 0 keeps the rate constant. */
  readonly decayT0: number;
  readonly decayGamma: number;
  /** Global gradient-norm clipping threshold; 0 disables it. */
  readonly clipNorm: number;
  /** L2 coefficient, applied to weights (not biases). */
  readonly l2: number;
  readonly adamBeta1: number;
  readonly adamBeta2: number;
  readonly adamEpsilon: number;
}

export const defaultOptimiserConfig: OptimiserConfig = {
  kind: 'adam',
  // RTRL's own defaults must learn memory (test/model/memory-defaults.test.ts): at 0.003 the
  // exact sensitivities of a 10-tick dependency make the updates unstable (0.50 accuracy where
  // Bayes is 0.90), 0.0015 learns it on one seed and not another, 0.001 on every one tried.
  learningRate: 0.001,
  decayT0: 10_000,
  decayGamma: 0,
  // A clip at 1 caps nearly every update, so under Adam every step has the same norm and the
  // rare large gradients that carry long-range credit count no more than noise (a 5-tick cue:
  // 0.72 with the clip at 1, 0.90 at 10 or without). 10 only catches true outliers.
  clipNorm: 10,
  l2: 0,
  adamBeta1: 0.9,
  adamBeta2: 0.999,
  adamEpsilon: 1e-8,
};

/** What an optimiser step did, so the learner can count skipped updates. */
export type StepOutcome = 'applied' | 'clipped' | 'skipped_non_finite';

export interface Optimiser {
  /** Updates `params` in place from `grad` (which it may scale in place). */
  step(params: Float64Array, grad: Float64Array): StepOutcome;
  readonly steps: number;
  getState(): Float64Array;
  setState(state: Float64Array): void;
}

export function validateOptimiserConfig(config: OptimiserConfig): void {
  const positive = (key: keyof OptimiserConfig) => {
    const value = config[key] as number;
    if (!(Number.isFinite(value) && value > 0)) throw new Error(`optimiser.${key}: must be a finite number > 0, got ${value}`);
  };
  const nonNegative = (key: keyof OptimiserConfig) => {
    const value = config[key] as number;
    if (!(Number.isFinite(value) && value >= 0)) throw new Error(`optimiser.${key}: must be a finite number >= 0, got ${value}`);
  };
  positive('learningRate');
  positive('decayT0');
  nonNegative('decayGamma');
  nonNegative('clipNorm');
  nonNegative('l2');
  if (!(config.adamBeta1 >= 0 && config.adamBeta1 < 1)) throw new Error(`optimiser.adamBeta1: must be in [0, 1), got ${config.adamBeta1}`);
  if (!(config.adamBeta2 >= 0 && config.adamBeta2 < 1)) throw new Error(`optimiser.adamBeta2: must be in [0, 1), got ${config.adamBeta2}`);
  positive('adamEpsilon');
}

/** The native addon's Adam step (src/model/kernels/native.ts), structurally, so this file imports nothing native. */
export interface NativeAdamKernel {
  /**
   * prepareGradient then one Adam update, in place; the caller passes the rate and bias
   * corrections of this step. Returns 0 applied, 1 clipped, 2 skipped (non-finite).
   */
  adam(
    params: Float64Array,
    grad: Float64Array,
    m: Float64Array,
    v: Float64Array,
    decayMask: Uint8Array,
    l2: number,
    clipNorm: number,
    rate: number,
    beta1: number,
    beta2: number,
    epsilon: number,
    correction1: number,
    correction2: number,
  ): number;
}

const NATIVE_OUTCOMES: readonly StepOutcome[] = ['applied', 'clipped', 'skipped_non_finite'];

/** `native`: run Adam's update in the addon (same state, same arithmetic to rounding). */
export function createOptimiser(config: OptimiserConfig, size: number, decayMask: Uint8Array, native?: NativeAdamKernel): Optimiser {
  validateOptimiserConfig(config);
  return config.kind === 'adam' ? new Adam(config, size, decayMask, native) : new Sgd(config, decayMask);
}

/**
 * Adds L2, checks finiteness and clips to the global norm, in place. The norm is computed on
 * values scaled by the largest magnitude so a huge but finite gradient is clipped instead of
 * overflowing to Infinity and being thrown away.
 */
export function prepareGradient(params: Float64Array, grad: Float64Array, l2: number, decayMask: Uint8Array, clipNorm: number): StepOutcome {
  let maxAbs = 0;
  for (let i = 0; i < grad.length; i++) {
    let g = grad[i];
    if (l2 !== 0 && decayMask[i] === 1) {
      g += l2 * params[i];
      grad[i] = g;
    }
    const a = Math.abs(g);
    if (!(a <= maxAbs)) {
      if (a - a !== 0) return 'skipped_non_finite';
      maxAbs = a;
    }
  }
  if (clipNorm === 0 || maxAbs === 0) return 'applied';
  let sum = 0;
  const inverse = 1 / maxAbs;
  for (let i = 0; i < grad.length; i++) {
    const scaled = grad[i] * inverse;
    sum += scaled * scaled;
  }
  const norm = maxAbs * Math.sqrt(sum);
  if (norm <= clipNorm) return 'applied';
  const factor = clipNorm / norm;
  for (let i = 0; i < grad.length; i++) grad[i] *= factor;
  return 'clipped';
}

function learningRateAt(config: OptimiserConfig, step: number): number {
  return config.decayGamma === 0 ? config.learningRate : config.learningRate / Math.pow(1 + step / config.decayT0, config.decayGamma);
}

class Sgd implements Optimiser {
  steps = 0;
  constructor(
    private readonly config: OptimiserConfig,
    private readonly decayMask: Uint8Array,
  ) {}

  step(params: Float64Array, grad: Float64Array): StepOutcome {
    const outcome = prepareGradient(params, grad, this.config.l2, this.decayMask, this.config.clipNorm);
    if (outcome === 'skipped_non_finite') return outcome;
    const rate = learningRateAt(this.config, this.steps);
    for (let i = 0; i < params.length; i++) params[i] -= rate * grad[i];
    this.steps++;
    return outcome;
  }

  getState(): Float64Array {
    return Float64Array.of(this.steps);
  }

  setState(state: Float64Array): void {
    this.steps = state[0];
  }
}

class Adam implements Optimiser {
  steps = 0;
  private readonly m: Float64Array;
  private readonly v: Float64Array;

  constructor(
    private readonly config: OptimiserConfig,
    size: number,
    private readonly decayMask: Uint8Array,
    private readonly native?: NativeAdamKernel,
  ) {
    this.m = new Float64Array(size);
    this.v = new Float64Array(size);
  }

  step(params: Float64Array, grad: Float64Array): StepOutcome {
    const { adamBeta1: b1, adamBeta2: b2, adamEpsilon: eps } = this.config;
    if (this.native !== undefined) return this.stepNative(this.native, params, grad);
    const outcome = prepareGradient(params, grad, this.config.l2, this.decayMask, this.config.clipNorm);
    if (outcome === 'skipped_non_finite') return outcome;
    const rate = learningRateAt(this.config, this.steps);
    this.steps++;
    const correction1 = 1 - Math.pow(b1, this.steps);
    const correction2 = 1 - Math.pow(b2, this.steps);
    const m = this.m;
    const v = this.v;
    for (let i = 0; i < params.length; i++) {
      const g = grad[i];
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      params[i] -= (rate * (m[i] / correction1)) / (Math.sqrt(v[i] / correction2) + eps);
    }
    return outcome;
  }

  /** The same step in one native call; the step count, rate and corrections stay here. */
  private stepNative(native: NativeAdamKernel, params: Float64Array, grad: Float64Array): StepOutcome {
    const { adamBeta1: b1, adamBeta2: b2, adamEpsilon: eps, l2, clipNorm } = this.config;
    const rate = learningRateAt(this.config, this.steps);
    const steps = this.steps + 1;
    const outcome = NATIVE_OUTCOMES[native.adam(params, grad, this.m, this.v, this.decayMask, l2, clipNorm, rate, b1, b2, eps, 1 - Math.pow(b1, steps), 1 - Math.pow(b2, steps))];
    if (outcome !== 'skipped_non_finite') this.steps = steps;
    return outcome;
  }

  getState(): Float64Array {
    const state = new Float64Array(1 + 2 * this.m.length);
    state[0] = this.steps;
    state.set(this.m, 1);
    state.set(this.v, 1 + this.m.length);
    return state;
  }

  setState(state: Float64Array): void {
    if (state.length !== 1 + 2 * this.m.length) throw new Error(`adam state: expected ${1 + 2 * this.m.length} values, got ${state.length}`);
    this.steps = state[0];
    this.m.set(state.subarray(1, 1 + this.m.length));
    this.v.set(state.subarray(1 + this.m.length));
  }
}
