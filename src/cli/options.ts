// Turns command-line strings into an engine configuration, with errors that name the option.
import { defaultEngineConfig, type EngineConfig } from '../engine/config.js';
import { parseModelList } from '../model/factory.js';
import { parseTarget } from '../model/targets.js';

export class UsageError extends Error {}

export function integerOption(name: string, text: string, min: number, max: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) throw new UsageError(`--${name}: expected an integer in [${min}, ${max}], got "${text}"`);
  return value;
}

export function numberOption(name: string, text: string, min: number, max: number): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value < min || value > max) throw new UsageError(`--${name}: expected a number in [${min}, ${max}], got "${text}"`);
  return value;
}

export function speedOption(text: string): number | 'max' {
  if (text === 'max') return 'max';
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new UsageError(`--speed: expected "max" or a number > 0, got "${text}"`);
  return value;
}

/**
 * Worker threads from `--workers` or LOB_RTRL_WORKERS (the flag wins), else one per core; 0
 * and 1 both mean every symbol on the main thread.
 */
export function workersOption(flag: string | undefined, env: string | undefined, perCore: number): number {
  const text = flag ?? (env === undefined || env === '' ? undefined : env);
  if (text === undefined) return perCore;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0 || value > 256)
    throw new UsageError(`${flag === undefined ? 'LOB_RTRL_WORKERS' : '--workers'}: expected an integer in [0, 256], got "${text}"`);
  return Math.max(1, value);
}

export interface ModelFlags {
  levels?: string;
  target?: string;
  hidden?: string;
  lr?: string;
  seed?: string;
  models?: string;
}

/** The engine configuration from the shared model flags (replay and serve take the same ones). */
export function engineConfigFromFlags(flags: ModelFlags, base: EngineConfig = defaultEngineConfig): EngineConfig {
  const wrap = <T>(fn: () => T): T => {
    try {
      return fn();
    } catch (error) {
      throw new UsageError(`--${(error as Error).message}`);
    }
  };
  const learner = base.learner;
  return {
    ...base,
    levels: flags.levels === undefined ? base.levels : integerOption('levels', flags.levels, 1, 1000),
    target: flags.target === undefined ? base.target : wrap(() => parseTarget(flags.target!)),
    models: flags.models === undefined ? base.models : wrap(() => parseModelList(flags.models!)),
    learner: {
      ...learner,
      hidden: flags.hidden === undefined ? learner.hidden : integerOption('hidden', flags.hidden, 1, 256),
      seed: flags.seed === undefined ? learner.seed : integerOption('seed', flags.seed, 0, 2 ** 32 - 1),
      optimiser: flags.lr === undefined ? learner.optimiser : { ...learner.optimiser, learningRate: numberOption('lr', flags.lr, 1e-9, 10) },
    },
  };
}
