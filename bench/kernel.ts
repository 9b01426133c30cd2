// The `kernel` section of `npm run bench`: the native RTRL kernel against the TypeScript one,
// measured against this core's own float64 FMA peak (a register-only FMA loop in the addon,
// timed in the same run), then the whole RTRL step (predict + resolve, one Adam update per
// tick) on both kernels; bench/run.ts puts the numpy step of the same shape beside it.
import { performance } from 'node:perf_hooks';
import { findNativeAddon, loadNativeAddon, type NativeRtrlAddon } from '../src/model/kernels/native.js';
import { JS_KERNEL, nativeKernelOf } from '../src/model/kernels/select.js';
import { RtrlLearner } from '../src/model/rtrl.js';
import { BENCH_CLASSES, InputPool, kernelRate, rateOf, recurrentConfig, sensitivityKernelFlops, type TimingOptions } from './learners.js';

export const KERNEL_BENCH_INPUTS = 46; // d = 4L + 6 for the L = 10 books of LOBSTER and Binance
export const KERNEL_BENCH_SIZES: readonly number[] = [16, 32, 64];

export interface FmaPeak {
  readonly isa: string;
  readonly gflops: number;
}

export interface KernelRow {
  readonly hidden: number;
  readonly jsKernelGflops: number;
  readonly nativeKernelGflops: number;
  readonly jsStepMicros: number;
  readonly nativeStepMicros: number;
  /** The native step with its sensitivity split over two threads (the kernel thread pool). */
  readonly nativeTwoThreadStepMicros: number;
}

/** Best of five timed runs of the addon's FMA loop on each vector instruction set the CPU runs. */
export function measureFmaPeaks(addon: NativeRtrlAddon): FmaPeak[] {
  const initial = addon.isa();
  const peaks: FmaPeak[] = [];
  try {
    for (const isa of addon.supportedIsas) {
      addon.select(isa);
      let iterations = 1 << 16;
      // Size one run to about 50 ms.
      for (;;) {
        const started = performance.now();
        addon.fmaLoop(iterations);
        if (performance.now() - started > 50 || iterations > 1 << 29) break;
        iterations *= 2;
      }
      let best = 0;
      for (let repeat = 0; repeat < 5; repeat++) {
        const started = performance.now();
        const [flops, checksum] = addon.fmaLoop(iterations);
        const seconds = (performance.now() - started) / 1000;
        if (!Number.isFinite(checksum)) throw new Error(`fmaLoop ${isa}: non-finite checksum`);
        best = Math.max(best, flops / seconds / 1e9);
      }
      peaks.push({ isa, gflops: best });
    }
  } finally {
    addon.select(initial);
  }
  return peaks;
}

/** One row per N: the sensitivity kernel and the whole RTRL step on both kernels. */
export function benchKernelAt(addon: NativeRtrlAddon, n: number, timing: TimingOptions): KernelRow {
  const d = KERNEL_BENCH_INPUTS;
  const pool = new InputPool(d, BENCH_CLASSES, 7);
  const flops = sensitivityKernelFlops(n, d);
  const jsKernel = kernelRate(n, pool, timing, d);
  const nativeKernel = kernelRate(n, pool, timing, d, addon.sensitivity.bind(addon));
  const config = recurrentConfig(n, { kind: 'fifo', capacity: 1 }, d);
  const jsStep = rateOf(new RtrlLearner(config, undefined, 'rtrl', JS_KERNEL), pool, timing);
  const nativeStep = rateOf(new RtrlLearner(config, undefined, 'rtrl', nativeKernelOf(addon)), pool, timing);
  const threadsBefore = addon.threads();
  let nativeTwoThreadStep: number;
  try {
    addon.setThreads(2);
    nativeTwoThreadStep = rateOf(new RtrlLearner(config, undefined, 'rtrl', nativeKernelOf(addon)), pool, timing);
  } finally {
    addon.setThreads(threadsBefore);
  }
  return {
    hidden: n,
    jsKernelGflops: (jsKernel * flops) / 1e9,
    nativeKernelGflops: (nativeKernel * flops) / 1e9,
    jsStepMicros: 1e6 / jsStep,
    nativeStepMicros: 1e6 / nativeStep,
    nativeTwoThreadStepMicros: 1e6 / nativeTwoThreadStep,
  };
}

export function loadAddonForBench(): NativeRtrlAddon | string {
  const loaded = loadNativeAddon(findNativeAddon());
  return loaded.ok ? loaded.addon : loaded.reason;
}
