// Where each stream stands, as the api role shows it: a partition's owner puts one summary per
// stream it moved (ticks, warm-up, scores, learner counters) into a JetStream KV bucket every
// `natsSummarySeconds`, and every api process watches the bucket. The predictions themselves
// travel on the prediction stream; a summary carries what no prediction does.
import { Kvm, type KV } from '@nats-io/kv';
import { z } from 'zod';
import { checkedJson, symbolSchema } from '../domain/schemas.js';
import { venueSchema } from '../domain/stream.js';
import type { SymbolMetrics } from '../engine/symbol-metrics.js';
import { symbolMetricsSchema } from '../http/api-schemas.js';
import type { BusConnection } from './market-log.js';
import { subjectToken } from './subjects.js';

export interface StreamSummary {
  readonly venue: string;
  readonly symbol: string;
  /** The partition and the worker that wrote it, and the log position its partition had reached. */
  readonly partition: number;
  readonly worker: string;
  readonly lastSequence: number;
  /** When it was written (epoch ms, the worker's clock). */
  readonly at: number;
  readonly ticks: number;
  readonly disconnects: number;
  readonly warm: boolean;
  readonly modelNames: readonly string[];
  readonly classNames: readonly string[];
  readonly targetName: string;
  /** The RTRL kernel its worker runs: 'js', or 'native-' and the instruction set. */
  readonly kernel: string;
  readonly metrics: SymbolMetrics;
}

const streamSummarySchema = z.object({
  venue: venueSchema,
  symbol: symbolSchema,
  partition: z.number().int().min(0),
  worker: z.string().min(1),
  lastSequence: z.number().int().min(0),
  at: z.number(),
  ticks: z.number().int().min(0),
  disconnects: z.number().int().min(0),
  warm: z.boolean(),
  modelNames: z.array(z.string()),
  classNames: z.array(z.string()).min(2),
  targetName: z.string(),
  kernel: z.string().min(1).max(64),
  metrics: symbolMetricsSchema,
});

/** A summary read from the bucket, or the reason it is not one (naming the field). */
export function decodeSummary(text: string): StreamSummary | { readonly reason: string } {
  const checked = checkedJson(text, 'summary', streamSummarySchema);
  return checked.ok ? checked.value : { reason: checked.detail };
}

/** KV keys hold `-/_=.` and alphanumerics: the subject escape with `=` for its `~`, so venue and symbol each stay one token. */
export function summaryKey(venue: string, symbol: string): string {
  return `${subjectToken(venue).replaceAll('~', '=')}.${subjectToken(symbol).replaceAll('~', '=')}`;
}

/** The bucket of summaries: one key per stream, the newest value only. */
export function openSummaryBucket(bus: BusConnection): Promise<KV> {
  return new Kvm(bus.js).create(bus.names.summaryBucket, { history: 1 });
}
