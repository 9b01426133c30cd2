// The service's configuration: one zod schema, layered defaults < JSON file < environment
// (LOB_RTRL_*) < command-line flags, validated once at start. An invalid value stops the
// process with one line naming the key.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { busConfigShape } from '../bus/config.js';
import { symbolSchema } from '../domain/schemas.js';
import { feedDepthSchema } from '../ingest/live-client.js';
import { defaultEngineConfig, type EngineConfig } from '../engine/config.js';
import { parseModelList } from '../model/factory.js';
import { KERNEL_CHOICES } from '../model/kernels/select.js';
import { parseTarget } from '../model/targets.js';
import { venues } from '../venues/registry.js';

const feedSchema = z.object({
  venue: z.string().refine((id) => id in venues && venues[id].live !== null, {
    message: `venue must be one of ${Object.keys(venues)
      .filter((id) => venues[id].live)
      .join(', ')}`,
  }),
  url: z.string().url(),
  restUrl: z.string().url().optional(),
  symbols: z.array(symbolSchema).min(1),
  depth: feedDepthSchema.optional(),
});
export type FeedConfig = z.infer<typeof feedSchema>;

const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const serviceConfigSchema = z.object({
  host: z.string().min(1).default('127.0.0.1'),
  port: z.coerce.number().int().min(0).max(65_535).default(8080),
  db: z.string().min(1).default('./data/lob-rtrl.sqlite'),
  feeds: z.array(feedSchema).default([]),
  /** With no feeds: serve the bundled Binance recording on loopback and subscribe to it. */
  demoFeed: booleanSetting().default(true),
  token: z.string().min(16, { message: 'must be at least 16 characters' }).optional(),
  logLevel: z.enum(logLevels).default('info'),
  levels: z.coerce.number().int().min(1).max(1000).default(defaultEngineConfig.levels),
  target: z.string().default('next-move').refine(validates(parseTarget), { message: 'expected next-move, horizon:K, horizon:Ns or horizon:Nms, each with an optional :THETA' }),
  models: z
    .string()
    .default('rtrl,tbptt:10,logistic,majority,mix')
    .refine(validates(parseModelList), { message: 'expected a comma list of rtrl, tbptt:K, logistic, majority, mix' }),
  hidden: z.coerce.number().int().min(1).max(256).default(defaultEngineConfig.learner.hidden),
  /** RTRL kernel: auto (native when its addon loads, else TypeScript), js, or native (an error when the addon is missing). */
  kernel: z.enum(KERNEL_CHOICES).default('auto'),
  /** Threads one large native RTRL step may use (1 = every step on its own thread). */
  kernelThreads: z.coerce.number().int().min(1).max(256).default(1),
  lr: z.coerce.number().positive().max(10).default(defaultEngineConfig.learner.optimiser.learningRate),
  seed: z.coerce
    .number()
    .int()
    .min(0)
    .max(2 ** 32 - 1)
    .default(defaultEngineConfig.learner.seed),
  checkpointEveryTicks: z.coerce.number().int().min(1).default(10_000),
  checkpointEverySeconds: z.coerce.number().positive().default(60),
  checkpointKeep: z.coerce.number().int().min(1).max(1000).default(5),
  /** Latest predictions kept in memory per symbol. */
  predictionRing: z.coerce.number().int().min(1).max(1_000_000).default(1000),
  /** Also write predictions to SQLite, kept this many seconds (0 = do not log). */
  predictionRetentionSeconds: z.coerce.number().min(0).default(0),
  /** Largest size of the SQLite file in bytes; writes past it fail as on a full disk (0 = no bound). */
  dbMaxBytes: z.coerce.number().int().min(0).default(0),
  bodyLimitBytes: z.coerce
    .number()
    .int()
    .min(1024)
    .default(1 << 20),
  wsMaxFrameBytes: z.coerce
    .number()
    .int()
    .min(1024)
    .default(1 << 20),
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
  /**
   * Work each worker thread may have queued, in ms of its measured time per message: what a
   * producer's message can wait behind on a worker, whoever sent the rest.
   */
  workerQueueMs: z.coerce.number().positive().max(10_000).default(5),
  /**
   * Niceness the worker threads add to the process's (Linux, where it is per thread): with one
   * worker per core they would otherwise take turns on the cores with the thread that reads
   * every socket, and an ack or a health check would wait for a kernel's time slice to end.
   */
  workerNice: z.coerce.number().int().min(0).max(19).default(10),
  /** A pushed message stamped more than this far ahead of the receive clock is rejected (implausible_ts). */
  clockSkewSeconds: z.coerce.number().positive().default(60),
  /** /v1/stream pings each client this often; one that has not answered the previous ping is closed (0 = never). */
  streamPingSeconds: z.coerce.number().min(0).default(30),
  maxSymbols: z.coerce.number().int().min(1).default(1000),
  /**
   * A symbol that has had no message for this long is hibernated: its whole state is written as
   * a checkpoint and its memory released; its next message restores it first (0 = never).
   */
  hibernateIdleSeconds: z.coerce.number().min(0).default(60),
  /**
   * Worker threads the symbols are spread over; 0 or 1 runs them all on the main thread. `serve`
   * defaults to one per core (its `defaults` layer); 1 here keeps in-process runtimes (tests,
   * tools) the same on every machine.
   */
  workers: z.coerce.number().int().min(0).max(256).default(1),
  /** Queued predictions per stream subscriber before it is conflated (newest per symbol kept). */
  subscriberQueue: z.coerce.number().int().min(1).default(256),
  /**
   * What this process does: `all` is the embedded single process; with natsUrl, `ingest` writes
   * the feeds to the NATS market-data log and `worker` consumes its partitions and publishes
   * predictions (docs/scale.md).
   */
  role: z.enum(['all', 'ingest', 'worker', 'api']).default('all'),
  ...busConfigShape,
});

export type ServiceConfig = z.infer<typeof serviceConfigSchema>;

/**
 * A boolean from JSON (true/false) or text (true/false, 1/0, yes/no, on/off, any case).
 * z.coerce.boolean() would read the text "false" as true.
 */
function booleanSetting() {
  const words: Record<string, boolean> = { true: true, false: false, '1': true, '0': false, yes: true, no: false, on: true, off: false };
  return z
    .union([
      z.boolean(),
      z
        .string()
        .transform((text) => words[text.trim().toLowerCase()])
        .refine((value) => value !== undefined, { message: 'expected true or false' }),
    ])
    .pipe(z.boolean());
}

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

/**
 * The variables Kubernetes injects for a Service named lob-rtrl: LOB_RTRL_SERVICE_HOST,
 * LOB_RTRL_SERVICE_PORT[_<name>], and LOB_RTRL_PORT[_<port>_<proto>[_PROTO|_PORT|_ADDR]] whose
 * value is tcp://host:port (or a piece of it). A LOB_RTRL_PORT that is a plain number is ours.
 */
export function isServiceLinkVariable(name: string, value: string | undefined): boolean {
  if (/^LOB_RTRL_SERVICE_(HOST|PORT)(_[A-Z0-9_]+)?$/.test(name)) return true;
  if (/^LOB_RTRL_PORT_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?$/.test(name)) return true;
  return name === 'LOB_RTRL_PORT' && typeof value === 'string' && /^(tcp|udp|sctp):\/\//.test(value);
}

/** Environment variable for each key: LOB_RTRL_ + upper snake case (checkpointEveryTicks -> LOB_RTRL_CHECKPOINT_EVERY_TICKS). */
export function envName(key: string): string {
  return `LOB_RTRL_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

export class ConfigError extends Error {}

/**
 * Layers the sources and validates once: `defaults` (what the entry point knows of the machine,
 * over the schema's own) < `file` (a JSON object with the same keys) < `env` (strings; FEEDS is
 * JSON) < `flags` (already typed by the CLI).
 */
export function loadServiceConfig(sources: {
  defaults?: Partial<ServiceConfig>;
  env?: NodeJS.ProcessEnv;
  file?: string;
  flags?: Record<string, unknown>;
  warnings?: string[];
}): ServiceConfig {
  const merged: Record<string, unknown> = { ...sources.defaults };
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
  const fileSetsPort = 'port' in merged;
  const flagSetsPort = sources.flags?.port !== undefined;
  // Kubernetes gives every pod docker-link variables for each Service in its namespace; a
  // Service named lob-rtrl makes LOB_RTRL_SERVICE_HOST, LOB_RTRL_PORT=tcp://10.0.0.7:8080 and
  // friends. They are not configuration: each is noted and ignored.
  const serviceLinks = Object.keys(env).filter((name) => isServiceLinkVariable(name, env[name]));
  if (serviceLinks.length > 0) {
    const portIsLink = serviceLinks.includes(envName('port'));
    sources.warnings?.push(
      `ignoring Kubernetes service-link variables ${serviceLinks.join(', ')} (a Service named lob-rtrl in this namespace)` +
        (portIsLink && !fileSetsPort && !flagSetsPort
          ? `; listening on the default port ${serviceConfigSchema.shape.port.parse(undefined)}: set --port or the config file's port, or enableServiceLinks: false`
          : ''),
    );
  }
  // A misspelt variable would otherwise be ignored without a word and its default used.
  const knownVariables = new Set(Object.keys(serviceConfigSchema.shape).map(envName));
  const unknownVariable = Object.keys(env).find((name) => name.startsWith('LOB_RTRL_') && !knownVariables.has(name) && !serviceLinks.includes(name));
  if (unknownVariable) throw new ConfigError(`${unknownVariable}: unknown configuration variable`);
  for (const key of Object.keys(serviceConfigSchema.shape)) {
    const value = env[envName(key)];
    if (value === undefined || value === '' || serviceLinks.includes(envName(key))) continue;
    if (key === 'feeds') {
      try {
        merged.feeds = JSON.parse(value);
      } catch (error) {
        throw new ConfigError(`${envName(key)}: not valid JSON (${(error as Error).message})`);
      }
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
