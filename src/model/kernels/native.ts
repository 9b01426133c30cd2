// Loader of the native RTRL addon (native/, built by node-gyp at install into
// build/Release/lob_rtrl_native.node). Loading never throws: a missing or broken addon is
// reported as a reason, and the caller falls back to the TypeScript kernels.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { packageRoot } from '../../domain/package-root.js';
import type { NativeAdamKernel } from '../optimiser.js';

/** The addon's exports (native/addon.cc); every array argument is checked for type and length there. */
/** `adam` (optimiser.ts prepareGradient then one Adam update, in place) is declared beside the optimiser that calls it. */
export interface NativeRtrlAddon extends NativeAdamKernel {
  /** `adam` as optimiser.ts writes it, operation for operation: the same bits (the TBPTT learner's optimiser). */
  readonly exactAdam: NativeAdamKernel['adam'];
  /** Instruction sets this CPU runs, best first ('avx512', 'avx2', 'baseline'). */
  readonly supportedIsas: readonly string[];
  isa(): string;
  /** Switches the instruction set (tests and the bench); throws for one the CPU lacks. */
  select(isa: string): string;
  /**
   * One predict-side RTRL tick: h, S, the projection s V[c,:] S into rows at rowsOffset, the
   * softmax probs (logitOffsets, C or null, added to the logits: the input skip's Q x), and
   * with the five batch sums also their accumulation. False when h or S was not finite (h, S
   * and the rows are then zero).
   */
  step(
    n: number,
    d: number,
    classes: number,
    vOffset: number,
    scale: number,
    params: Float64Array,
    hPrev: Float64Array,
    x: Float64Array,
    h: Float64Array,
    sPrev: Float64Array,
    s: Float64Array,
    probs: Float64Array,
    rows: Float64Array,
    rowsOffset: number,
    logitOffsets: Float64Array | null,
    ...batchSums: [] | [sumRows: Float64Array, sumProbRows: Float64Array, sumProbHidden: Float64Array, sumHidden: Float64Array, sumProbs: Float64Array]
  ): boolean;
  /** rtrlSensitivityStep's contract (elman.ts), to 1e-12 relative rather than bit for bit. */
  sensitivity(n: number, d: number, params: Float64Array, hPrev: Float64Array, x: Float64Array, h: Float64Array, sPrev: Float64Array, sNext: Float64Array): void;
  /** grad[0..P) = sum_c probs[c] rows[c,:] - rows[label,:], rtrl.ts's FIFO gradient, bit for bit. */
  projectedGradient(classes: number, p: number, rows: Float64Array, rowsOffset: number, probs: Float64Array, probsOffset: number, label: number, grad: Float64Array): void;
  /**
   * Threads one large step (N^2 P of a million multiply-adds or more) may split its sensitivity
   * over, the caller included; 1, the default, keeps every step on its own thread. Returns the
   * setting. The results are the same bits at any setting.
   */
  setThreads(threads: number): number;
  threads(): number;
  /**
   * tbptt.ts accumulateOldest for the `count` oldest pending ticks (from slot `head` of the
   * pending ring), bit for bit: adds their truncated gradients, all labelled `label`, to grad.
   * `skipInputs` is the input skip Q's width (C x skipInputs after c in params; 0: none).
   */
  tbpttGradient(
    n: number,
    d: number,
    classes: number,
    skipInputs: number,
    truncation: number,
    label: number,
    scale: number,
    params: Float64Array,
    historySize: number,
    historyInputs: Float64Array,
    historyHidden: Float64Array,
    pendingSlots: number,
    head: number,
    count: number,
    pendingTicks: Float64Array,
    pendingProbs: Float64Array,
    pendingOutputWeights: Float64Array,
    grad: Float64Array,
  ): void;
  /** `iterations` rounds of independent in-register FMAs: [flops, checksum]. */
  fmaLoop(iterations: number): [number, number];
  /**
   * Hands the allocator's free pages back to the kernel (glibc malloc_trim, every arena), on the
   * libuv pool; resolves true when it ran, false where the C library has no such call.
   */
  releaseFreeMemory(): Promise<boolean>;
  /** Gives blocks of `bytes` or more a mapping of their own (glibc M_MMAP_THRESHOLD); false where there is none. */
  mapLargeBlocks(bytes: number): boolean;
}

export type NativeLoad = { readonly ok: true; readonly addon: NativeRtrlAddon; readonly path: string } | { readonly ok: false; readonly reason: string };

const ADDON_FILE = join('build', 'Release', 'lob_rtrl_native.node');

/** The built addon in the package folder `root` (lob-rtrl's own by default), if it is there. */
export function findNativeAddon(root: string = packageRoot()): string | undefined {
  const candidate = join(root, ADDON_FILE);
  return existsSync(candidate) ? candidate : undefined;
}

function isAddon(value: unknown): value is NativeRtrlAddon {
  if (typeof value !== 'object' || value === null) return false;
  const exports = value as Record<string, unknown>;
  return (
    Array.isArray(exports.supportedIsas) &&
    [
      'isa',
      'select',
      'step',
      'sensitivity',
      'fmaLoop',
      'adam',
      'exactAdam',
      'projectedGradient',
      'setThreads',
      'threads',
      'tbpttGradient',
      'releaseFreeMemory',
      'mapLargeBlocks',
    ].every((name) => typeof exports[name] === 'function')
  );
}

/** Loads the addon at `path` (undefined: none was built). */
export function loadNativeAddon(path: string | undefined): NativeLoad {
  if (path === undefined) return { ok: false, reason: `${ADDON_FILE} was not built (npm ci builds it with node-gyp; a failed build leaves the TypeScript kernel)` };
  try {
    const loaded: unknown = createRequire(import.meta.url)(path);
    if (!isAddon(loaded)) return { ok: false, reason: `${path} does not export the RTRL kernels` };
    return { ok: true, addon: loaded, path };
  } catch (error) {
    return { ok: false, reason: `${path} failed to load: ${error instanceof Error ? error.message : String(error)}` };
  }
}
