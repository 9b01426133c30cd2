// Which RTRL kernel runs: the native addon when it loads, else the TypeScript reference
// (elman.ts). `LOB_RTRL_KERNEL=js|native` (or the `kernel` setting) forces one; forcing
// `native` where the addon is missing is an error, never a silent fallback.
import { findNativeAddon, loadNativeAddon, type NativeLoad, type NativeRtrlAddon } from './native.js';

export const KERNEL_CHOICES = ['auto', 'js', 'native'] as const;
export type KernelChoice = (typeof KERNEL_CHOICES)[number];

export interface RtrlKernel {
  /** 'js', or 'native-' + the instruction set ('native-avx512', 'native-avx2', 'native-baseline'). */
  readonly name: string;
  /** The addon when this kernel is native. */
  readonly native: NativeRtrlAddon | undefined;
  /** Why the TypeScript kernel runs when the choice was 'auto' and the addon did not load. */
  readonly fallbackReason: string | undefined;
}

export const JS_KERNEL: RtrlKernel = { name: 'js', native: undefined, fallbackReason: undefined };

let nativeLoad: NativeLoad | undefined;
let processKernel: RtrlKernel | undefined;

/** The addon, loaded at most once per thread (a failed load is remembered too). */
export function loadOnce(): NativeLoad {
  nativeLoad ??= loadNativeAddon(findNativeAddon());
  return nativeLoad;
}

export function nativeKernelOf(addon: NativeRtrlAddon): RtrlKernel {
  return { name: `native-${addon.isa()}`, native: addon, fallbackReason: undefined };
}

/**
 * LOB_RTRL_KERNEL_THREADS: threads one large RTRL step may use (default 1). Worth it for one
 * busy stream at N >= 32 on an otherwise idle machine; with symbols on worker threads, every
 * core already has a stream.
 */
export function parseKernelThreads(value: string | undefined): number {
  if (value === undefined || value === '') return 1;
  const threads = Number(value);
  if (!(Number.isInteger(threads) && threads >= 1 && threads <= 256)) throw new Error(`LOB_RTRL_KERNEL_THREADS: must be an integer from 1 to 256, got "${value}"`);
  return threads;
}

/** Resolves a choice; throws when `native` is forced and the addon is not there. */
export function resolveRtrlKernel(choice: KernelChoice, load: () => NativeLoad = loadOnce): RtrlKernel {
  if (choice === 'js') return JS_KERNEL;
  const loaded = load();
  if (loaded.ok) {
    loaded.addon.setThreads(parseKernelThreads(process.env.LOB_RTRL_KERNEL_THREADS));
    return nativeKernelOf(loaded.addon);
  }
  if (choice === 'native') throw new Error(`kernel: native was asked for (LOB_RTRL_KERNEL=native) but ${loaded.reason}`);
  return { ...JS_KERNEL, fallbackReason: loaded.reason };
}

export function parseKernelChoice(value: string | undefined): KernelChoice {
  if (value === undefined || value === '') return 'auto';
  const choice = KERNEL_CHOICES.find((candidate) => candidate === value);
  if (choice === undefined) throw new Error(`LOB_RTRL_KERNEL: must be one of ${KERNEL_CHOICES.join(', ')}, got "${value}"`);
  return choice;
}

/** Sets the kernel every RTRL learner built afterwards uses by default (called by the entry points). */
export function useRtrlKernel(choice: KernelChoice): RtrlKernel {
  processKernel = resolveRtrlKernel(choice);
  return processKernel;
}

/**
 * The process's kernel: the one an entry point chose, else LOB_RTRL_KERNEL (so test runs and
 * library users honour it too), resolved once.
 */
export function currentRtrlKernel(): RtrlKernel {
  processKernel ??= resolveRtrlKernel(parseKernelChoice(process.env.LOB_RTRL_KERNEL));
  return processKernel;
}
