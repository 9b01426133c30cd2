import type { Optimiser } from './optimiser.js';
import type { Rng } from './rng.js';
import { decodeState, encodeState, requireArray, requireSameConfig, type EncodedState } from './state-codec.js';

// The one interface every online learner implements, so the engine runs RTRL, TBPTT and the
// baselines side by side with the same target bookkeeping.

export interface LearnerStats {
  /** Optimiser steps applied. */
  updates: number;
  /** Steps whose gradient was clipped to the global norm. */
  clipped: number;
  /** Updates skipped because a gradient value was NaN or infinite. */
  skippedNonFinite: number;
  /** Input elements that were NaN or infinite (replaced by 0 before the forward pass). */
  nonFiniteInputs: number;
  /** Times the recurrent state went non-finite and was reset to zero. */
  stateResets: number;
  /** Labels learned from. */
  labels: number;
}

export function emptyStats(): LearnerStats {
  return { updates: 0, clipped: 0, skippedNonFinite: 0, nonFiniteInputs: 0, stateResets: 0, labels: 0 };
}

export interface OnlineLearner {
  /** Display name, e.g. `rtrl`, `tbptt:10`. */
  readonly name: string;
  readonly classes: number;
  readonly stats: LearnerStats;
  /**
   * Advances on this tick's features and writes the class probabilities of its prediction
   * into `probs` (length = classes). The tick becomes pending until resolved.
   */
  predict(features: Float64Array, probs: Float64Array): void;
  /** The oldest `count` pending ticks turned out to be `label`: learn from them. */
  resolve(label: number, count: number): void;
  /** Pending ticks expire unlabelled (a gap, a book that never moved). */
  discardPending(): void;
  /** A break in the sequence (disconnect): pending ticks dropped and recurrent state reset. */
  resetSequence(): void;
  getState(): Uint8Array;
  setState(bytes: Uint8Array): void;
}

/** Replaces non-finite elements by 0 into `clean`; returns how many there were. */
export function sanitiseInput(features: Float64Array, clean: Float64Array): number {
  let bad = 0;
  for (let i = 0; i < clean.length; i++) {
    const v = features[i];
    if (v - v === 0) {
      clean[i] = v;
    } else {
      clean[i] = 0;
      bad++;
    }
  }
  return bad;
}

export function statsArray(stats: LearnerStats): Float64Array {
  return Float64Array.of(stats.updates, stats.clipped, stats.skippedNonFinite, stats.nonFiniteInputs, stats.stateResets, stats.labels);
}

export function restoreStats(stats: LearnerStats, values: Float64Array): void {
  [stats.updates, stats.clipped, stats.skippedNonFinite, stats.nonFiniteInputs, stats.stateResets, stats.labels] = Array.from(values);
}

/** Records an optimiser outcome in the stats. */
export function countOutcome(stats: LearnerStats, outcome: 'applied' | 'clipped' | 'skipped_non_finite'): void {
  if (outcome === 'skipped_non_finite') {
    stats.skippedNonFinite++;
    return;
  }
  stats.updates++;
  if (outcome === 'clipped') stats.clipped++;
}

/** What a trained learner saves: its fixed-size arrays (restored in place), optimiser, counters. */
export interface LearnerStateParts {
  readonly kind: string;
  /** Must hold `config`; the rest are cursors read back by the caller. */
  readonly meta: { readonly config: unknown } & Record<string, unknown>;
  readonly arrays: Record<string, Float64Array>;
  readonly optimiser: Optimiser;
  readonly stats: LearnerStats;
  readonly rng?: Rng;
}

export function encodeLearnerState(parts: LearnerStateParts): Uint8Array {
  const arrays: Record<string, Float64Array> = { ...parts.arrays, optimiser: parts.optimiser.getState(), stats: statsArray(parts.stats) };
  if (parts.rng) arrays.rng = parts.rng.getState();
  return encodeState({ kind: parts.kind, meta: parts.meta, arrays });
}

/**
 * Checks kind and configuration, restores everything `parts` names in place, and returns the
 * decoded state so the caller can read its cursors and any variable-length arrays.
 */
export function decodeLearnerState(bytes: Uint8Array, parts: LearnerStateParts): EncodedState {
  const state = decodeState(bytes, parts.kind);
  requireSameConfig(state.meta.config, parts.meta.config, 'config');
  for (const [name, target] of Object.entries(parts.arrays)) target.set(requireArray(state, name, target.length));
  parts.optimiser.setState(state.arrays.optimiser ?? new Float64Array(0));
  restoreStats(parts.stats, requireArray(state, 'stats', 6));
  if (parts.rng) parts.rng.setState(requireArray(state, 'rng', 6));
  return state;
}
