// The distributed mode's settings: where NATS is and how the market-data log, the partitions,
// the leases and the checkpoints are laid out in JetStream. Unset `natsUrl` means the embedded
// single process (SQLite), the default. The keys join the service configuration
// (src/service/config.ts), so they come from the JSON file, LOB_RTRL_NATS_* or flags alike.
import { z } from 'zod';

/** NATS subject tokens and JetStream names: letters, digits, `-` and `_` only. */
const NAME = /^[A-Za-z0-9_-]{1,64}$/;
const nameSetting = (fallback: string) => z.string().regex(NAME, { message: 'must be 1 to 64 of A-Z a-z 0-9 _ -' }).default(fallback);

export const busConfigShape = {
  /** nats://host:port[,nats://…] of the NATS servers; unset runs the embedded single process. */
  natsUrl: z
    .string()
    .min(1)
    .refine((text) => text.split(',').every((server) => /^(nats|tls|ws|wss):\/\/[^\s/]+$/.test(server.trim()) || /^[^\s/:]+:\d+$/.test(server.trim())), {
      message: 'expected nats://host:port, comma separated for several servers',
    })
    .optional(),
  /** Prefix of every subject, stream, bucket and consumer of this deployment (several deployments can share one NATS). */
  natsPrefix: nameSetting('lob_rtrl'),
  /** Partitions the streams are hashed over; each has one owning worker at a time. Fixed for the life of a stream. */
  natsPartitions: z.coerce.number().int().min(1).max(1024).default(8),
  /** The market-data log keeps messages this long (0 = no age limit). */
  natsMaxAgeSeconds: z.coerce
    .number()
    .min(0)
    .default(7 * 86_400),
  /** … and at most this many bytes (0 = no size limit); past it the oldest go. */
  natsMaxBytes: z.coerce.number().int().min(0).default(0),
  /** Window in which JetStream drops a message whose id it has already stored (ingest retries, failover duplicates). */
  natsDuplicateWindowSeconds: z.coerce.number().positive().default(120),
  /** A partition whose owner has not renewed its lease for this long is taken over by another worker. */
  natsLeaseSeconds: z.coerce.number().positive().max(3600).default(10),
  /** A worker checkpoints each partition it owns after this many input messages … */
  natsCheckpointEveryMessages: z.coerce.number().int().min(1).default(20_000),
  /** … or this many seconds, whichever comes first. */
  natsCheckpointEverySeconds: z.coerce.number().positive().default(30),
  /** A worker writes the summary (ticks, scores) of each stream it moved this often, for the api role. */
  natsSummarySeconds: z.coerce.number().positive().max(3600).default(1),
};

const busConfigSchema = z.object(busConfigShape);
export type BusConfig = z.infer<typeof busConfigSchema>;

/** Defaults for every key (tests and tools that build a config by hand). */
export function busConfig(overrides: Partial<BusConfig> = {}): BusConfig {
  return busConfigSchema.parse(overrides);
}

/** The names one deployment uses in NATS, all derived from the prefix. */
export interface BusNames {
  /** JetStream stream of the market-data log; subjects `<prefix>.md.<partition>.<venue>.<symbol>`. */
  readonly marketStream: string;
  readonly marketSubjects: string;
  /** JetStream stream of predictions; subjects `<prefix>.pred.<venue>.<symbol>`. */
  readonly predictionStream: string;
  readonly predictionSubjects: string;
  /** KV bucket of partition leases (`p<partition>`) and worker heartbeats (`w.<id>`). */
  readonly leaseBucket: string;
  /** KV bucket pointing at each partition's newest checkpoint (`p<partition>`). */
  readonly checkpointIndexBucket: string;
  /** Object store bucket holding the checkpoints themselves. */
  readonly checkpointObjectBucket: string;
  /** KV bucket of each stream's newest summary (src/bus/stream-summary.ts), read by the api role. */
  readonly summaryBucket: string;
}

export function busNames(prefix: string): BusNames {
  const upper = prefix.toUpperCase();
  return {
    marketStream: `${upper}_MD`,
    marketSubjects: `${prefix}.md.>`,
    predictionStream: `${upper}_PRED`,
    predictionSubjects: `${prefix}.pred.>`,
    leaseBucket: `${prefix}_leases`,
    checkpointIndexBucket: `${prefix}_checkpoints`,
    checkpointObjectBucket: `${prefix}_checkpoint_data`,
    summaryBucket: `${prefix}_streams`,
  };
}
