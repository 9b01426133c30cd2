import type { Optimiser, StepOutcome } from '../../src/model/optimiser.js';

/** An optimiser that leaves the parameters frozen and adds up every gradient it is given. */
export class GradientRecorder implements Optimiser {
  steps = 0;
  readonly total: Float64Array;
  constructor(size: number) {
    this.total = new Float64Array(size);
  }
  step(_params: Float64Array, grad: Float64Array): StepOutcome {
    for (let i = 0; i < grad.length; i++) this.total[i] += grad[i];
    this.steps++;
    return 'applied';
  }
  getState(): Float64Array {
    return Float64Array.of(this.steps, ...this.total);
  }
  setState(state: Float64Array): void {
    this.steps = state[0];
    this.total.set(state.subarray(1));
  }
}
