// Response bodies of every route, as zod schemas: the OpenAPI document at /docs shows them,
// generated clients are typed by them, and fastify serialises with them (unknown keys never
// leak out). The WebSocket messages of /v1/stream and /v1/ingest are here too, for the message
// reference at /v1/asyncapi.json.
import { validatorCompiler } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { canonicalMessageSchema, SYMBOL_PATTERN, symbolSchema } from '../domain/schemas.js';
import { PUSH_VENUE, VENUE_PATTERN, venueSchema } from '../domain/stream.js';

const nullableNumber = z.number().nullable();

/** How every answer about one stream names it: its id and the two parts. */
const streamFields = {
  stream: z.string().describe('the stream id, venue:symbol (e.g. binance:BTCUSDT)'),
  venue: z.string().describe("the venue the stream comes from (a feed's venue, `push` or the `?venue=` of push ingest, a replayed file's venue)"),
  symbol: z.string().describe("the venue's symbol"),
};

export const errorResponse = z
  .object({
    error: z.string().describe('HTTP status text'),
    message: z.string().optional(),
    issues: z
      .array(z.object({ path: z.string(), message: z.string() }))
      .optional()
      .describe('validation problems, each naming its field'),
    store: z.string().optional().describe('database failure kind: full, readonly, corrupt, io...'),
  })
  .describe('every error answer');

export const healthResponse = z.object({ status: z.literal('ok') });

export const readinessResponse = z.object({
  status: z.enum(['ready', 'not ready']),
  checks: z.object({
    database: z.boolean(),
    feeds: z.boolean(),
    learners: z.boolean(),
    restored: z.boolean(),
    workers: z.boolean().optional().describe('with worker threads: false once one has failed'),
    reason: z.string().optional(),
  }),
});

export const symbolsResponse = z.object({
  restoring: z.number().int().describe('stored symbols the background restore has not loaded yet'),
  hibernated: z.number().int().describe('symbols asleep (idle past hibernateIdleSeconds): their state in a checkpoint until their next message'),
  symbols: z.array(
    z.object({
      ...streamFields,
      hibernated: z.boolean(),
      ticks: z.number().int(),
      disconnects: z.number().int(),
      lastTs: nullableNumber,
      mid: nullableNumber,
    }),
  ),
});

export const modelPrediction = z.object({
  model: z.string().describe('model name, e.g. rtrl, tbptt:10, logistic, majority'),
  probs: z.record(z.string(), z.number()).describe('probability per class name (down, flat, up...)'),
});

export const predictionResponse = z
  .object({
    ...streamFields,
    ts: z.number().describe('venue time of the snapshot, epoch ms'),
    localTs: z.number().nullable().describe('receive time, epoch ms (null when the source has none)'),
    seq: z.number(),
    mid: z.number(),
    target: z.string().describe('what is predicted: next-move or horizon:k'),
    models: z.array(modelPrediction),
    label: z.string().nullable().optional().describe('in a history (GET …/predictions): the class this prediction resolved to, null while pending or when it went unscored'),
    resolved: z
      .array(
        z.object({
          fromSeq: z.number(),
          toSeq: z.number(),
          count: z.number().int().describe('predictions in the run'),
          label: z.string().describe('the class every prediction of the run resolved to'),
        }),
      )
      .optional()
      .describe(
        'earlier predictions of the stream this tick resolved, oldest first, as runs of consecutive seqs with one label; scored exactly as the engine’s metrics score them. Absent when it resolved nothing',
      ),
  })
  .describe('one tick: every model’s class probabilities');

const loggedPrediction = z.object({
  ...streamFields,
  ts: z.number(),
  seq: z.number().nullable(),
  model: z.string(),
  probs: z.array(z.number()).describe('class probabilities in the order of the target’s classes'),
  source: z.literal('log'),
});

export const predictionsResponse = z.object({
  ...streamFields,
  predictions: z.array(z.union([predictionResponse, loggedPrediction])).describe('oldest first; older rows come from the SQLite log (`source: "log"`)'),
});

const metricsSummary = z.object({
  n: z.number().int(),
  accuracy: nullableNumber,
  macroF1: nullableNumber,
  logLoss: nullableNumber,
  brier: nullableNumber,
  confusion: z.array(z.array(z.number())).describe('rows: true class, columns: predicted class'),
});

const rollingMetrics = z.object({
  window: z.number().int(),
  n: z.number().int(),
  accuracy: nullableNumber,
  logLoss: nullableNumber,
  brier: nullableNumber,
});

const learnerStats = z.object({
  updates: z.number(),
  clipped: z.number(),
  skippedNonFinite: z.number(),
  nonFiniteInputs: z.number(),
  stateResets: z.number(),
  labels: z.number(),
});

/** A stream's scores (SymbolMetrics): in answers, and as the api role reads them from the workers' summaries. */
export const symbolMetricsSchema = z.object({
  unscored: z.number().int(),
  models: z.array(z.object({ model: z.string(), overall: metricsSummary, rolling: z.array(rollingMetrics), learner: learnerStats })),
  mixWeights: z
    .array(z.object({ model: z.string(), weight: z.number() }))
    .nullable()
    .describe("the mix model's weight on each member (null without a mix)"),
});

export const symbolMetricsResponse = z.object({
  ...streamFields,
  target: z.string(),
  classes: z.array(z.string()),
  ticks: z.number().int(),
  ...symbolMetricsSchema.shape,
});

/** The query of both ingest routes: which venue the pushed streams are of. */
export const ingestQuery = z.object({
  venue: venueSchema
    .default(PUSH_VENUE)
    .describe(
      `the venue of the streams this producer pushes (default ${PUSH_VENUE}): BTCUSDT pushed with venue okx trains the stream okx:BTCUSDT, apart from a live feed's binance:BTCUSDT`,
    ),
});
export type IngestQuery = z.infer<typeof ingestQuery>;

/**
 * A route's own zod validator, for a route that sets `validatorCompiler` (fastify then skips the
 * app's): the WebSocket routes, on apps built without the zod compiler too, and POST
 * /v1/snapshots for every part but its body.
 */
export function zodValidator(route: { schema: unknown }): ReturnType<typeof validatorCompiler> {
  return validatorCompiler(route as Parameters<typeof validatorCompiler>[0]);
}

export const ingestOutcomeResponse = z.object({
  accepted: z.array(z.object({ ...streamFields, seq: z.number() })).describe('snapshots that made a prediction, in the order sent'),
  trades: z.number().int().describe('trades applied to their symbol’s flow features'),
  rejected: z.array(z.object({ reason: z.string(), detail: z.string() })).describe('each refused message, the field named in detail'),
});

export const checkpointMeta = z.object({
  id: z.number().int(),
  venue: z.string().describe("the stream's venue; '' for a checkpoint written before streams had venues (the first stream of its symbol takes it over)"),
  symbol: z.string(),
  createdAt: z.number().describe('epoch ms'),
  tickCount: z.number().int(),
  configHash: z.string(),
  checksum: z.string().describe('sha256 hex of the payload'),
  sizeBytes: z.number().int(),
  reason: z.string().nullable(),
});

export const checkpointsResponse = z.object({ ...streamFields, checkpoints: z.array(checkpointMeta) });

export const orderingResetResponse = z.object({ ...streamFields, checkpoint: checkpointMeta.nullable() });

export const statusResponse = z.object({
  role: z
    .enum(['all', 'ingest', 'worker', 'api'])
    .describe('all: the embedded service; api: served from a NATS deployment, whose feeds run on its ingest role and learners on its workers'),
  feeds: z.array(
    z.object({
      venue: z.string(),
      symbols: z.array(z.string()),
      demo: z.boolean(),
      connected: z.boolean(),
      reconnects: z.number().int(),
      conflatedSnapshots: z.number().int(),
      droppedMessages: z.number().int(),
      droppedTrades: z.number().int(),
      resyncs: z.number().int(),
      synced: z.record(z.string(), z.boolean()),
      lastError: z.string().nullable().describe('redacted'),
    }),
  ),
  engine: z.object({
    steps: z.number().int(),
    stepLatencyUs: z.object({ p50: nullableNumber, p99: nullableNumber, max: nullableNumber }),
    kernel: z.string().describe("the RTRL kernel the learners run on: 'js', or 'native-' and the instruction set (avx512, avx2, baseline)"),
  }),
  stream: z.object({ subscribers: z.number().int(), conflated: z.number().int(), dropped: z.number().int() }),
  symbols: z.array(z.object({ ...streamFields, ticks: z.number().int(), models: z.array(z.string()), target: z.string() })),
});

/** The usual error answers of a route, by status code. */
export function errorResponses<const Code extends number>(...codes: Code[]): { [C in Code]: typeof errorResponse } {
  return Object.fromEntries(codes.map((code) => [code, errorResponse])) as { [C in Code]: typeof errorResponse };
}

// ---- WebSocket messages ---------------------------------------------------------------------

/** A subscription: a stream id (`binance:BTCUSDT`, that venue's alone) or a symbol (every venue's). */
const subscriptionName = z.union([symbolSchema, z.string().regex(new RegExp(`${VENUE_PATTERN.source.slice(0, -1)}:${SYMBOL_PATTERN.source.slice(1)}`))], {
  error: 'must be a symbol or a stream id (venue:symbol)',
});
const symbolList = z.array(subscriptionName).min(1).max(1000);

export const streamCommand = z.union([z.strictObject({ subscribe: symbolList }), z.strictObject({ unsubscribe: symbolList })]).describe('client → server on /v1/stream');

export const streamPrediction = predictionResponse.extend({ type: z.literal('prediction') }).describe('server → client on /v1/stream: a new prediction of a subscribed symbol');

export const streamSubscriptions = z
  .object({ type: z.literal('subscriptions'), symbols: z.array(z.string()) })
  .describe('server → client on /v1/stream: the symbols now subscribed, after each command');

export const wsError = z
  .object({
    type: z.literal('error'),
    frame: z.number().int().optional().describe('on /v1/ingest: the 1-based frame the problem was in'),
    reason: z.string().describe('reject reason: schema, too_deep, crossed_book, out_of_order, rate_limited...'),
    detail: z.string().describe('the problem, naming the field'),
  })
  .describe('server → client: a frame or message that was refused');

export const ingestFrame = z
  .union([canonicalMessageSchema, z.array(canonicalMessageSchema)])
  .describe('client → server on /v1/ingest: one canonical message or an array (at most ingestMaxBatch)');

export const ingestAck = z
  .object({
    type: z.literal('ack'),
    frame: z.number().int().describe('1-based frame number on this connection'),
    accepted: z.array(z.object({ ...streamFields, seq: z.number() })).describe('snapshots that made a prediction'),
    trades: z.number().int().optional().describe('trades applied (absent when none)'),
  })
  .describe('server → client on /v1/ingest: every message of the frame has run');
