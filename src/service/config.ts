// The service's configuration: one zod schema, layered defaults < JSON file < environment
// (LOB_RTRL_*) < command-line flags, validated once at start. An invalid value stops the
// process with one line naming the key.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { symbolSchema } from '../domain/schemas.js';
import { defaultEngineConfig, type EngineConfig } from '../engine/config.js';
import { parseModelList } from '../model/factory.js';
import { parseTarget } from '../model/targets.js';
import { venues } from '../venues/registry.js';

const feedSchema = z.object({
  venue: z.string().refine((id) => id in venues && venues[id].live !== null, { message: `venue must be one of ${Object.keys(venues).filter((id) => venues[id].live).join(', ')}` }),
  url: z.string().url(),
  restUrl: z.string().url().optional(),
  symbols: z.array(symbolSchema).min(1),
});
export type FeedConfig = z.infer<typeof feedSchema>;

const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const serviceConfigSchema = z.object({
  host: z.string().min(1).default('127.0.0.1'),
  port: z.coerce.number().int().min(0).max(65_535).default(8080),
  db: z.string().min(1).default('./data/lob-rtrl.sqlite'),
  feeds: z.array(feedSchema).default([]),
  /** With no feeds: serve the bundled Binance recording on loopback and subscribe to it. */
  demoFeed: z.coerce.boolean().default(true),
  token: z.string().min(16, { message: 'must be at least 16 characters' }).optional(),
  logLevel: z.enum(logLevels).default('info'),
  levels: z.coerce.number().int().min(1).max(1000).default(defaultEngineConfig.levels),
  target: z.string().default('next-move').refine(validates(parseTarget), { message: 'expected next-move, horizon:K or horizon:K:THETA' }),
  models: z.string().default('rtrl,tbptt:10,logistic,majority').refine(validates(parseModelList), { message: 'expected a comma list of rtrl, tbptt:K, logistic, majority' }),
  hidden: z.coerce.number().int().min(1).max(256).default(defaultEngineConfig.learner.hidden),
  lr: z.coerce.number().positive().max(10).default(defaultEngineConfig.learner.optimiser.learningRate),
  seed: z.coerce.number().int().min(0).max(2 ** 32 - 1).default(defaultEngineConfig.learner.seed),
  checkpointEveryTicks: z.coerce.number().int().min(1).default(10_000),
  checkpointEverySeconds: z.coerce.number().positive().default(60),
  checkpointKeep: z.coerce.number().int().min(1).max(1000).default(5),
  /** Latest predictions kept in memory per symbol. */
  predictionRing: z.coerce.number().int().min(1).max(1_000_000).default(1000),
  /** Also write predictions to SQLite, kept this many seconds (0 = do not log). */
  predictionRetentionSeconds: z.coerce.number().min(0).default(0),
  /** Largest size of the SQLite file in bytes; writes past it fail as on a full disk (0 = no bound). */
  dbMaxBytes: z.coerce.number().int().min(0).default(0),
  bodyLimitBytes: z.coerce.number().int().min(1024).default(1 << 20),
  wsMaxFrameBytes: z.coerce.number().int().min(1024).default(1 << 20),
  /** Messages (snapshots and trades) one WS frame or POST body may carry. */
  ingestMaxBatch: z.coerce.number().int().min(1).max(100_000).default(1000),
  /** Messages per second one ingest connection may send, counted when they arrive; over it frames are refused. */
  ingestRatePerSecond: z.coerce.number().int().min(1).default(5000),
  /** Concurrent /v1/ingest connections, and concurrent POST /v1/snapshots requests, each. */
  maxIngestConnections: z.coerce.number().int().min(1).default(64),
  /** Concurrent /v1/stream connections. */
  maxStreamConnections: z.coerce.number().int().min(1).default(1024),
  /** How long ingest runs before the event loop gets a turn, ms. */
  ingestSliceMs: z.coerce.number().positive().max(1000).default(4),
  /** A pushed message stamped more than this far ahead of the receive clock is rejected (implausible_ts). */
  clockSkewSeconds: z.coerce.number().positive().default(60),
  /** /v1/stream pings each client this often; one that has not answered the previous ping is closed (0 = never). */
  streamPingSeconds: z.coerce.number().min(0).default(30),
  maxSymbols: z.coerce.number().int().min(1).default(1000),
  /** Queued predictions per stream subscriber before it is conflated (newest per symbol kept). */
  subscriberQueue: z.coerce.number().int().min(1).default(256),
});

export type ServiceConfig = z.infer<typeof serviceConfigSchema>;

function validates(parse: (text: string) => unknown): (text: string) => boolean {
  return (text) => {
    try {
      parse(text);
      return true;
    } catch {
      return false;
    }
  };
}

/** Environment variable for each key: LOB_RTRL_ + upper snake case (checkpointEveryTicks -> LOB_RTRL_CHECKPOINT_EVERY_TICKS). */
export function envName(key: string): string {
  return `LOB_RTRL_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

export class ConfigError extends Error {}

/**
 * Layers the sources and validates once. `file` is a JSON object with the same keys;
 * `env` values are strings (FEEDS is JSON); `flags` are already typed by the CLI.
 */
export function loadServiceConfig(sources: { env?: NodeJS.ProcessEnv; file?: string; flags?: Record<string, unknown> }): ServiceConfig {
  const merged: Record<string, unknown> = {};
  if (sources.file) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(sources.file, 'utf8'));
    } catch (error) {
      throw new ConfigError(`config file ${sources.file}: ${(error as Error).message}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ConfigError(`config file ${sources.file}: expected a JSON object`);
    Object.assign(merged, parsed);
  }
  const env = sources.env ?? {};
  // A misspelt variable would otherwise be ignored without a word and its default used.
  const knownVariables = new Set(Object.keys(serviceConfigSchema.shape).map(envName));
  const unknownVariable = Object.keys(env).find((name) => name.startsWith('LOB_RTRL_') && !knownVariables.has(name));
  if (unknownVariable) throw new ConfigError(`${unknownVariable}: unknown configuration variable`);
  for (const key of Object.keys(serviceConfigSchema.shape)) {
    const value = env[envName(key)];
    if (value === undefined || value === '') continue;
    if (key === 'feeds') {
      try {
        merged.feeds = JSON.parse(value);
      } catch (error) {
        throw new ConfigError(`${envName(key)}: not valid JSON (${(error as Error).message})`);
      }
    } else if (key === 'demoFeed') {
      merged.demoFeed = !['0', 'false', 'no', 'off'].includes(value.toLowerCase());
    } else {
      merged[key] = value;
    }
  }
  for (const [key, value] of Object.entries(sources.flags ?? {})) if (value !== undefined) merged[key] = value;
  const unknown = Object.keys(merged).filter((key) => !(key in serviceConfigSchema.shape));
  if (unknown.length > 0) throw new ConfigError(`${unknown[0]}: unknown configuration key`);
  const parsed = serviceConfigSchema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = issue.path.map(String).join('.');
    throw new ConfigError(`${key} (${envName(String(issue.path[0]))}): ${issue.message}`);
  }
  return parsed.data;
}

/** The engine configuration a service configuration implies. */
export function engineConfigOf(config: ServiceConfig): EngineConfig {
  const learner = defaultEngineConfig.learner;
  return {
    ...defaultEngineConfig,
    levels: config.levels,
    target: parseTarget(config.target),
    models: parseModelList(config.models),
    learner: { ...learner, hidden: config.hidden, seed: config.seed, optimiser: { ...learner.optimiser, learningRate: config.lr } },
  };
}
