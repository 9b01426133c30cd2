// Push ingest on the ingest role: canonical messages POSTed to /v1/snapshots or sent over WS
// /v1/ingest go to the market-data log instead of an engine, into the streams of the venue the
// producer names (`?venue=`, default `push`). The edge checks are the service's own (bounded
// JSON, the canonical schema, book soundness, the receive clock's skew, order per stream);
// a message is acknowledged once JetStream stored it. Its receive time is the message's own ts,
// so the log's message ids are a function of what was pushed: a producer that sends a body again
// (a lost answer, a restarted ingest) has it stored once.
import fastifyWebsocket from '@fastify/websocket';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { WebSocket } from 'ws';
import { messageOf, parseJsonBounded } from '../domain/json-edge.js';
import { describeIssues } from '../domain/schemas.js';
import { inStream, namedStream } from '../domain/stream.js';
import { ingestQuery } from '../http/api-schemas.js';
import { requireToken } from '../http/auth.js';
import { CanonicalMapper } from '../venues/canonical.js';
import type { IngestOutcome } from '../service/runtime.js';
import type { MarketLogPublisher } from './market-log.js';

export interface PushIngestOptions {
  readonly publisher: MarketLogPublisher;
  readonly levels: number;
  /** Messages per body or frame. */
  readonly maxBatch: number;
  /** Bearer token the routes require; unset: open, as the service's ingest without a token. */
  readonly token?: string;
  /** How far a pushed ts may run ahead of the receive clock, ms. */
  readonly maxClockSkewMs: number;
  /** Open WS connections plus POST bodies in progress; more are answered 503, as by the service. */
  readonly maxConnections: number;
  readonly now: () => number;
}

export interface PushIngestStats {
  published: number;
  rejected: number;
  /** Requests and connections refused over `maxConnections`. */
  refused: number;
  /** Bodies and frames cut short because JetStream did not acknowledge a message (NATS away past the publish timeout). */
  unavailable: number;
}

/**
 * JetStream did not store message `index` of a body or frame: the messages before it are
 * stored (`outcome.accepted`), it and the ones after are not, and their streams' order is as
 * if they had never been sent, so the producer sends them again.
 */
class LogUnavailableError extends Error {
  constructor(
    readonly index: number | undefined,
    readonly outcome: IngestOutcome,
    reason: string,
  ) {
    super(`the market-data log did not store message ${index ?? 0} (${reason}); the ones before it are stored; send it and the rest again`);
  }
}

/** Frames of one connection read and not yet answered: past this its socket is not read, so a fast producer waits instead of queueing without bound. */
const UNANSWERED_FRAMES = 2;

/** Registers POST /v1/snapshots and WS /v1/ingest on `app`; returns their counters. */
export async function registerPushIngest(app: FastifyInstance, options: PushIngestOptions): Promise<PushIngestStats> {
  const mapper = new CanonicalMapper({ levels: options.levels, maxBatch: options.maxBatch, maxClockSkewMs: options.maxClockSkewMs });
  const stats: PushIngestStats = { published: 0, rejected: 0, refused: 0, unavailable: 0 };
  let open = 0;
  const refuseOverLimit = async (_request: unknown, reply: FastifyReply) => {
    if (open < options.maxConnections) return;
    stats.refused++;
    return reply
      .code(503)
      .header('retry-after', '1')
      .send({ error: 'Service Unavailable', message: `${options.maxConnections} ingest connections and requests are open; try again later` });
  };
  // One body or frame at a time: the log then holds each stream's messages in the order the
  // ordering check passed them, whichever producer they came from.
  let turn: Promise<unknown> = Promise.resolve();
  const ingest = (value: unknown, venue: string): Promise<IngestOutcome> => {
    const run = turn.then(() => publishAll(value, venue));
    turn = run.catch(() => {});
    return run;
  };

  const publishAll = async (value: unknown, venue: string): Promise<IngestOutcome> => {
    const outcome: IngestOutcome = { accepted: [], trades: 0, rejected: [] };
    const batch = mapper.batchOf(value);
    if (!batch.ok) {
      stats.rejected++;
      outcome.rejected.push({ reason: batch.rejection.reason, detail: batch.rejection.detail });
      return outcome;
    }
    const receivedAt = options.now();
    for (let i = 0; i < batch.elements.length; i++) {
      const index = batch.single ? undefined : i;
      const checked = mapper.validate(batch.elements[i], receivedAt, index);
      // Ordered per stream (venue:symbol), as the service orders them; published under the venue's own symbol.
      const inItsStream = checked.type === 'rejected' ? null : (inStream(venue, checked) as typeof checked);
      const orderingBefore = inItsStream === null ? undefined : mapper.orderingOf(inItsStream.symbol);
      const verdict = inItsStream === null ? checked : mapper.order(inItsStream, batch.elements[i], index);
      if (verdict.type === 'rejected') {
        outcome.rejected.push({ reason: verdict.reason, detail: verdict.detail });
        stats.rejected++;
        continue;
      }
      const stream = verdict.symbol;
      const message = { ...(checked as typeof verdict), localTs: verdict.ts };
      let ack;
      try {
        [ack] = await options.publisher.publish(venue, message);
      } catch (error) {
        // Not stored: the stream's order goes back to before it, so sending it again is accepted.
        mapper.restoreOrdering(stream, orderingBefore);
        stats.unavailable++;
        throw new LogUnavailableError(index, outcome, messageOf(error));
      }
      stats.published++;
      if (message.type === 'trade') outcome.trades++;
      else outcome.accepted.push({ ...namedStream(stream), seq: message.seq ?? ack.seq });
    }
    return outcome;
  };

  const authorise = requireToken(options.token);
  const venueOf = (query: unknown): { venue: string } | { error: string } => {
    const parsed = ingestQuery.safeParse(query ?? {});
    return parsed.success ? parsed.data : { error: describeIssues(parsed.error) };
  };

  app.post('/v1/snapshots', { preHandler: [authorise, refuseOverLimit] }, async (request, reply) => {
    const venue = venueOf(request.query);
    if ('error' in venue) return reply.code(400).send({ error: 'Bad Request', message: `query: ${venue.error}` });
    open++;
    try {
      const outcome = await ingest(request.body, venue.venue);
      return await reply.code(outcome.rejected.length > 0 ? 400 : 200).send(outcome);
    } catch (error) {
      if (!(error instanceof LogUnavailableError)) throw error;
      return await reply
        .code(503)
        .header('retry-after', '1')
        .send({ error: 'Service Unavailable', message: error.message, ...error.outcome });
    } finally {
      open--;
    }
  });

  await app.register(fastifyWebsocket);
  app.get('/v1/ingest', { websocket: true, preHandler: [authorise, refuseOverLimit] }, (socket: WebSocket, request) => {
    const venue = venueOf(request.query);
    if ('error' in venue) {
      socket.close(1008, `query: ${venue.error}`.slice(0, 120));
      return;
    }
    open++;
    socket.on('close', () => open--);
    let frames = 0;
    let unanswered = 0;
    const answered = () => {
      if (--unanswered < UNANSWERED_FRAMES) socket.resume();
    };
    socket.on('message', (data: Buffer) => {
      const frame = ++frames;
      const parsed = parseJsonBounded(data.toString('utf8'), `frame ${frame}`);
      if (!parsed.ok) {
        stats.rejected++;
        socket.send(JSON.stringify({ type: 'error', frame, reason: parsed.reason, detail: parsed.detail }));
        return;
      }
      if (++unanswered >= UNANSWERED_FRAMES) socket.pause();
      void ingest(parsed.value, venue.venue).then(
        (outcome) => {
          for (const problem of outcome.rejected) socket.send(JSON.stringify({ type: 'error', frame, ...problem }));
          socket.send(JSON.stringify({ type: 'ack', frame, accepted: outcome.accepted, ...(outcome.trades > 0 ? { trades: outcome.trades } : {}) }));
          answered();
        },
        (error: unknown) => {
          if (!(error instanceof LogUnavailableError)) {
            socket.close(1011, `the market-data log refused frame ${frame}: ${String(error)}`.slice(0, 120));
            return;
          }
          // The connection stays: what was stored is acknowledged, the rest is to be sent again.
          socket.send(JSON.stringify({ type: 'error', frame, reason: 'log_unavailable', detail: error.message }));
          socket.send(JSON.stringify({ type: 'ack', frame, accepted: error.outcome.accepted, ...(error.outcome.trades > 0 ? { trades: error.outcome.trades } : {}) }));
          answered();
        },
      );
    });
  });
  return stats;
}
