// REST routes: health, symbols, predictions, metrics, push ingest and checkpoints, over the
// views the infrastructure plugins decorate (streams, predictions, ingest, checkpoints).
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Socket } from 'node:net';
import { canonicalMessageSchema, symbolSchema } from '../domain/schemas.js';
import { namedStream, streamIdOf, venueSchema } from '../domain/stream.js';
import type { Prediction, RecordedPrediction } from '../engine/symbol-engine.js';
import {
  checkpointMeta,
  checkpointsResponse,
  errorResponse,
  errorResponses,
  healthResponse,
  ingestOutcomeResponse,
  ingestQuery,
  zodValidator,
  orderingResetResponse,
  predictionResponse,
  predictionsResponse,
  readinessResponse,
  symbolMetricsResponse,
  symbolsResponse,
} from './api-schemas.js';
import { NotFoundError, type IngestOutcome } from '../service/runtime.js';
import { requireToken, type Authorise } from './auth.js';
import type { StreamsView } from '../service/views.js';

// Each path documents the parameters it has (`/v1/symbols/:symbol` has no venue); the handlers
// read both as one shape, the venue undefined on the symbol path.
type StreamParams = z.ZodType<{ venue?: string; symbol: string }>;
type CheckpointParams = z.ZodType<{ venue?: string; symbol: string; id: number }>;
const checkpointId = { id: z.coerce.number().int().positive() };
const venueSymbolParams = z.object({ venue: venueSchema, symbol: symbolSchema });
const symbolParams = z.object({ symbol: symbolSchema });

interface StreamScope {
  readonly prefix: string;
  /** How the summaries in the OpenAPI document tell the two paths apart. */
  readonly what: string;
  readonly params: StreamParams;
  readonly checkpointParams: CheckpointParams;
}

const STREAM_SCOPES: readonly StreamScope[] = [
  {
    prefix: '/v1/streams/:venue/:symbol',
    what: 'the stream of venue and symbol',
    params: venueSymbolParams,
    checkpointParams: venueSymbolParams.extend(checkpointId),
  },
  {
    prefix: '/v1/symbols/:symbol',
    what: 'the one stream of the symbol; 409 when several venues carry it',
    params: symbolParams,
    checkpointParams: symbolParams.extend(checkpointId),
  },
];

/** The stream `resolve` names, or `otherwise` when it names none (409 for an ambiguous symbol still stands). */
function knownOr(resolve: () => string, otherwise: string): string {
  try {
    return resolve();
  } catch (error) {
    if (error instanceof NotFoundError) return otherwise;
    throw error;
  }
}

/**
 * The public shape of a prediction: probabilities named by class; what its tick resolved
 * (`resolved`, on the stream) and, in a history, the class it turned out to be (`label`).
 */
export function predictionView(prediction: Prediction | RecordedPrediction) {
  const view = {
    ...namedStream(prediction.symbol),
    ts: prediction.ts,
    localTs: prediction.localTs,
    seq: prediction.seq,
    mid: prediction.mid,
    target: prediction.target,
    models: prediction.models.map((m) => ({
      model: m.model,
      probs: Object.fromEntries(prediction.classNames.map((name, c) => [name, m.probs[c]])),
    })),
  };
  const resolved = prediction.resolved ? { resolved: prediction.resolved.slice() } : {};
  return 'label' in prediction ? { ...view, label: prediction.label, ...resolved } : { ...view, ...resolved };
}

export interface RouteOptions {
  /** The preHandler of the routes that change state; the configured bearer token by default. */
  readonly authorise?: Authorise;
}

/** What a stream route needs to find its stream: by both of its paths, 404 for none, 409 for an ambiguous symbol. */
function streamLookup(streams: StreamsView) {
  return {
    streamOf: (request: { params: { venue?: string; symbol: string } }) => streams.resolve(request.params.symbol, request.params.venue),
    viewOr404: (stream: string) => {
      const view = streams.get(stream);
      if (!view) throw new NotFoundError(`unknown stream "${stream}"`);
      return view;
    },
  };
}

async function registerRestRoutes(app: FastifyInstance): Promise<void> {
  const { streams, predictions } = app;
  const routes = app.withTypeProvider<ZodTypeProvider>();
  const { streamOf: paramsOf, viewOr404 } = streamLookup(streams);

  routes.get('/healthz', { schema: { summary: 'the process is up', response: { 200: healthResponse } } }, async () => ({ status: 'ok' as const }));

  routes.get(
    '/readyz',
    { schema: { summary: 'database open, feeds connected and in sync, learners warm', response: { 200: readinessResponse, 503: readinessResponse } } },
    async (_request, reply) => {
      const checks = streams.readiness();
      const ready = checks.database && checks.feeds && checks.learners && checks.workers !== false;
      return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks });
    },
  );

  routes.get(
    '/v1/symbols',
    {
      schema: {
        summary: 'symbols running or hibernated, with tick counts and the latest mid; `restoring` counts stored symbols the background restore has not loaded yet',
        response: { 200: symbolsResponse },
      },
    },
    async () => ({
      restoring: streams.restoring,
      hibernated: streams.hibernated,
      symbols: streams.list().map((s) => ({
        ...namedStream(s.symbol),
        hibernated: streams.isHibernated(s.symbol),
        ticks: s.ticks,
        disconnects: s.disconnects,
        lastTs: s.lastPrediction?.ts ?? null,
        mid: s.lastPrediction?.mid ?? null,
      })),
    }),
  );

  /**
   * The routes about one stream, under both of its paths: `/v1/streams/:venue/:symbol/…` names
   * it exactly; `/v1/symbols/:symbol/…` names it while one venue alone carries the symbol (409
   * with the candidates once two do).
   */
  for (const { prefix, what, params: streamParams } of STREAM_SCOPES) {
    routes.get(
      `${prefix}/prediction`,
      { schema: { summary: `the latest prediction of every model (${what})`, params: streamParams, response: { 200: predictionResponse, ...errorResponses(400, 404, 409) } } },
      async (request) => {
        const stream = paramsOf(request);
        viewOr404(stream);
        const latest = predictions.latest(stream);
        if (!latest) throw new NotFoundError(`no prediction yet for "${stream}"`);
        return predictionView(latest);
      },
    );

    routes.get(
      `${prefix}/predictions`,
      {
        schema: {
          summary: `recent predictions (memory ring; SQLite log when retention is enabled) (${what})`,
          params: streamParams,
          querystring: z.object({ since: z.coerce.number().optional(), limit: z.coerce.number().int().min(1).max(10_000).default(100) }),
          response: { 200: predictionsResponse, ...errorResponses(400, 404, 409) },
        },
      },
      async (request) => {
        const stream = paramsOf(request);
        viewOr404(stream);
        const { since, limit } = request.query;
        const fromRing = predictions.recent(stream, since, limit).map(predictionView);
        if (predictions.logged && since !== undefined && fromRing.length < limit) {
          // Older than the ring holds: the SQLite log carries the first model's probabilities.
          // Its range is [from, to): `since` is exclusive, and the ring's oldest timestamp is
          // included because snapshots often share one; rows the ring also holds are dropped.
          const oldestInRing = fromRing[0];
          const logged = predictions
            .loggedBetween(stream, nextUp(since), oldestInRing ? nextUp(oldestInRing.ts) : Number.POSITIVE_INFINITY, limit - fromRing.length)
            .filter((row) => !oldestInRing || row.ts < oldestInRing.ts || (row.seq !== null && row.seq < oldestInRing.seq))
            .map((row) => ({ ...namedStream(stream), ts: row.ts, seq: row.seq, model: row.model, probs: row.probs, source: 'log' as const }));
          return { ...namedStream(stream), predictions: [...logged, ...fromRing] };
        }
        return { ...namedStream(stream), predictions: fromRing };
      },
    );

    routes.get(
      `${prefix}/metrics`,
      {
        schema: {
          summary: `every model's prequential metrics, overall and over rolling windows (${what})`,
          params: streamParams,
          response: { 200: symbolMetricsResponse, ...errorResponses(400, 404, 409) },
        },
      },
      async (request) => {
        const stream = paramsOf(request);
        const engine = viewOr404(stream);
        const { unscored, models, mixWeights } = await streams.metrics(stream);
        return { ...namedStream(stream), target: engine.targetName, classes: [...engine.classNames], ticks: engine.ticks, unscored, models: [...models], mixWeights };
      },
    );
  }
}

async function registerIngestRoutes(app: FastifyInstance, options: RouteOptions): Promise<void> {
  const { serviceConfig: config, streams, ingest } = app;
  const authorise = options.authorise ?? requireToken(config.token);
  const routes = app.withTypeProvider<ZodTypeProvider>();
  const { streamOf: paramsOf } = streamLookup(streams);

  // POST bodies share the ingest scheduler with every other producer, one lane per request,
  // and the per-connection rate limit of the WebSocket route (keyed by the client's socket).
  const buckets = new WeakMap<Socket, { tokens: number; at: number }>();
  let postsInFlight = 0;
  const admit = (socket: Socket, messages: number): number => {
    const rate = config.ingestRatePerSecond;
    const now = performance.now();
    const bucket = buckets.get(socket) ?? { tokens: rate, at: now };
    bucket.tokens = Math.min(rate, bucket.tokens + ((now - bucket.at) * rate) / 1000);
    bucket.at = now;
    buckets.set(socket, bucket);
    if (bucket.tokens >= messages) {
      bucket.tokens -= messages;
      return 0;
    }
    return Math.ceil(((Math.min(messages, rate) - bucket.tokens) * 1000) / rate);
  };

  routes.post(
    '/v1/snapshots',
    {
      preHandler: authorise,
      schema: {
        summary: `push one canonical message (snapshot or trade) or an array of at most ${config.ingestMaxBatch}; 400 lists every rejected one`,
        security: [{ bearer: [] }],
        querystring: ingestQuery,
        body: z.union([canonicalMessageSchema, z.array(canonicalMessageSchema).min(1).max(config.ingestMaxBatch)]),
        response: { 200: ingestOutcomeResponse, 400: ingestOutcomeResponse.or(errorResponse), ...errorResponses(401, 413, 429, 503) },
      },
      // The body schema documents the route; each message is validated when its turn comes, so a
      // large body is never checked in one go on the event loop.
      validatorCompiler: (route) => (route.httpPart === 'body' ? (data: unknown) => ({ value: data }) : zodValidator(route)),
    },
    async (request, reply) => {
      if (postsInFlight >= config.maxIngestConnections) {
        return reply
          .code(503)
          .header('retry-after', '1')
          .send({ error: 'Service Unavailable', message: `${config.maxIngestConnections} ingest requests are in progress; try again later` });
      }
      const messages = ingest.messageCount(request.body);
      const waitMs = messages !== null ? admit(request.raw.socket, messages) : 0;
      if (waitMs > 0) {
        ingest.reject({
          type: 'rejected',
          reason: 'rate_limited',
          detail: `over ${config.ingestRatePerSecond} messages/s on this connection`,
          sample: `[${messages ?? 0} messages]`,
          symbol: null,
        });
        return reply
          .code(429)
          .header('retry-after', String(Math.ceil(waitMs / 1000)))
          .send({ error: 'Too Many Requests', message: `over ${config.ingestRatePerSecond} messages/s on this connection; retry in ${waitMs} ms` });
      }
      postsInFlight++;
      const lane = ingest.lane('post-ingest', request.query.venue);
      try {
        const outcome = await new Promise<IngestOutcome>((resolve) => lane.submit(request.body, resolve));
        return reply.code(outcome.rejected.length > 0 ? 400 : 200).send(outcome);
      } finally {
        lane.close();
        postsInFlight--;
      }
    },
  );

  for (const { prefix, what, params: streamParams } of STREAM_SCOPES) {
    routes.post(
      `${prefix}/ordering/reset`,
      {
        preHandler: authorise,
        schema: {
          summary: `forget the stream's last accepted seq and ts, so its next snapshot is accepted whatever they are (after a producer pushed a far-future ts or seq); checkpointed at once (${what})`,
          params: streamParams,
          security: [{ bearer: [] }],
          response: { 200: orderingResetResponse, ...errorResponses(400, 401, 404, 409, 503) },
        },
      },
      async (request) => {
        const stream = paramsOf(request);
        return { ...namedStream(stream), checkpoint: await ingest.resetOrdering(stream) };
      },
    );
  }
}

async function registerCheckpointRoutes(app: FastifyInstance, options: RouteOptions): Promise<void> {
  const { serviceConfig: config, streams, checkpoints } = app;
  const authorise = options.authorise ?? requireToken(config.token);
  const routes = app.withTypeProvider<ZodTypeProvider>();
  const { streamOf: paramsOf, viewOr404 } = streamLookup(streams);

  for (const { prefix, what, params: streamParams, checkpointParams } of STREAM_SCOPES) {
    routes.get(
      `${prefix}/checkpoints`,
      {
        schema: {
          summary: `the stream's stored checkpoints, newest first; an empty list for a stream the service has not seen (${what})`,
          params: streamParams,
          response: { 200: checkpointsResponse, ...errorResponses(400, 409) },
        },
      },
      async (request) => {
        // The database may hold streams the engine has not loaded: a name no running stream has
        // lists what is stored under it (a bare symbol: its checkpoints from before venues).
        const { venue, symbol } = request.params;
        const stream = knownOr(() => paramsOf(request), venue === undefined ? symbol : streamIdOf(venue, symbol));
        return { ...namedStream(stream), checkpoints: checkpoints.list(stream) };
      },
    );

    routes.post(
      `${prefix}/checkpoints`,
      {
        preHandler: authorise,
        schema: {
          summary: `write a checkpoint now (${what})`,
          params: streamParams,
          security: [{ bearer: [] }],
          response: { 201: checkpointMeta, ...errorResponses(400, 401, 404, 409, 503) },
        },
      },
      async (request, reply) => {
        const stream = paramsOf(request);
        viewOr404(stream);
        const meta = await checkpoints.write(stream, 'manual');
        if (!meta) throw new NotFoundError(`unknown stream "${stream}"`);
        return reply.code(201).send(meta);
      },
    );

    routes.post(
      `${prefix}/checkpoints/:id/restore`,
      {
        preHandler: authorise,
        schema: {
          summary: `replace the stream's state with a stored checkpoint (${what})`,
          params: checkpointParams,
          security: [{ bearer: [] }],
          response: { 200: checkpointMeta, ...errorResponses(400, 401, 404, 409, 503) },
        },
      },
      async (request) => checkpoints.restore(paramsOf(request), request.params.id),
    );
  }
}

/** Health, readiness, the streams and their predictions and scores: what every HTTP role serves. */
export const restRoutes = fp(registerRestRoutes, { name: 'rest-routes', dependencies: ['config', 'engine', 'predictions'], encapsulate: true });

/** POST /v1/snapshots and the ordering reset: where pushed input enters the engine. */
export const ingestRoutes = fp(registerIngestRoutes, { name: 'ingest-routes', dependencies: ['config', 'engine'], encapsulate: true });

/** Listing, writing and restoring each stream's checkpoints. */
export const checkpointRoutes = fp(registerCheckpointRoutes, { name: 'checkpoint-routes', dependencies: ['config', 'engine', 'checkpointing'], encapsulate: true });

/** The smallest double above `x` (Number.MIN_VALUE added to a timestamp changes nothing). */
function nextUp(x: number): number {
  if (!Number.isFinite(x)) return x;
  if (x === 0) return Number.MIN_VALUE;
  const bits = new BigInt64Array(new Float64Array([x]).buffer);
  bits[0] += x > 0 ? 1n : -1n;
  return new Float64Array(bits.buffer)[0];
}
