// What travels on the market-data log: one JSON object per message, the canonical push-ingest
// shape (src/venues/canonical.ts) plus the fields a worker needs to reproduce the one-process
// run exactly: the receive time, order events and disconnect markers. JSON numbers carry a
// float64 through unchanged (shortest round-trip form), so a worker's features and predictions
// are bit for bit those of a replay of the same input.
//   snapshot   {"venue","symbol","ts","localTs","seq"?,"bids":[[p,s],…],"asks":[[p,s],…]}
//   trade      {"type":"trade","venue","symbol","ts","localTs","price","size","side","id"?}
//   order      {"type":"order_event","venue","symbol","ts","localTs","kind","side","price","size","level"}
//   disconnect {"type":"disconnect","venue","symbol"|null,"localTs","reason"}
// The log is an edge like any other: another process (or another tool) wrote it, so a worker
// validates every message and counts what it rejects.
import { venueSchema } from '../domain/stream.js';
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { parseJsonBounded } from '../domain/json-edge.js';
import { describeIssues, epochMsSchema, symbolSchema } from '../domain/schemas.js';
import { rejected, type BookSnapshot, type Disconnect, type EpochMs, type OrderEvent, type Rejected, type Trade } from '../domain/types.js';
import { parseCanonical, toCanonicalJson, toCanonicalTradeJson } from '../venues/canonical.js';

/** A message of the log with the venue it came from. */
export interface LoggedMessage {
  readonly venue: string;
  readonly message: BookSnapshot | Trade | OrderEvent | Disconnect;
}

const orderEventSchema = z.object({
  type: z.literal('order_event'),
  venue: venueSchema,
  symbol: symbolSchema,
  ts: epochMsSchema,
  localTs: epochMsSchema,
  kind: z.enum(['submit', 'cancel', 'delete']),
  side: z.union([z.literal(1), z.literal(-1)]),
  price: z.number().finite(),
  size: z.number().finite().positive(),
  level: z.number().int().min(-1),
});

const disconnectSchema = z.object({
  type: z.literal('disconnect'),
  venue: venueSchema,
  symbol: symbolSchema.nullable(),
  localTs: epochMsSchema,
  reason: z.string().max(500),
});

const envelopeSchema = z.object({ venue: venueSchema, localTs: epochMsSchema }).passthrough();

/** The log's JSON for one message (the inverse of `decodeLogged`). */
export function encodeLogged(venue: string, message: BookSnapshot | Trade | OrderEvent | Disconnect): string {
  const head = `{"venue":${JSON.stringify(venue)},"localTs":${message.localTs},`;
  switch (message.type) {
    case 'book_snapshot':
      return head + toCanonicalJson(message).slice(1);
    case 'trade':
      return head + toCanonicalTradeJson(message).slice(1);
    case 'order_event':
      return `${head}"type":"order_event","symbol":${JSON.stringify(message.symbol)},"ts":${message.ts},"kind":"${message.kind}","side":${message.side},"price":${message.price},"size":${message.size},"level":${message.level}}`;
    case 'disconnect':
      return `${head}"type":"disconnect","symbol":${message.symbol === null ? 'null' : JSON.stringify(message.symbol)},"reason":${JSON.stringify(message.reason)}}`;
  }
}

/**
 * One log message back, validated; `levels` cuts books as the engine's own sources do. Never
 * throws: a bad message becomes a rejection naming the field.
 */
export function decodeLogged(text: string, levels: number): LoggedMessage | Rejected {
  const json = parseJsonBounded(text, 'market log message');
  if (!json.ok) return rejected(json.reason, json.detail, text, null);
  const envelope = envelopeSchema.safeParse(json.value);
  if (!envelope.success) return rejected('schema', describeIssues(envelope.error), text, null);
  const { venue, localTs } = envelope.data;
  const value = json.value as Record<string, unknown>;
  if (value.type === 'order_event') {
    const parsed = orderEventSchema.safeParse(value);
    if (!parsed.success) return rejected('schema', describeIssues(parsed.error), text, null);
    const { symbol, ts, kind, side, price, size, level } = parsed.data;
    const event: OrderEvent = { type: 'order_event', symbol, ts, localTs, kind, side, price, size, level };
    return { venue, message: event };
  }
  if (value.type === 'disconnect') {
    const parsed = disconnectSchema.safeParse(value);
    if (!parsed.success) return rejected('schema', describeIssues(parsed.error), text, null);
    return { venue, message: { type: 'disconnect', symbol: parsed.data.symbol, localTs, reason: parsed.data.reason } };
  }
  // The canonical reader ignores the envelope's extra keys (venue, localTs): no copy per message.
  const message = parseCanonical(value, levels, localTs as EpochMs);
  if (message.type === 'rejected') return message;
  return { venue, message };
}

/**
 * The message ids JetStream de-duplicates on: the same message published twice (an ingest that
 * retries after a lost acknowledgement, or restarts and re-sends the same input) is stored once.
 * An id is the message's content (receive time included) and how many times that same content
 * already occurred in its stream: a source may well send two identical messages (LOBSTER has
 * identical executions in one millisecond), and those are two messages, not a retry. The
 * count is a pure function of the stream's messages, so sending the same input again gives
 * the same ids.
 */
export class MarketMessageIds {
  private readonly seen = new Map<string, number>();

  constructor(private readonly remember = 65_536) {}

  next(venue: string, encoded: string): string {
    const digest = `${venue}:${createHash('sha256').update(encoded).digest('base64url').slice(0, 27)}`;
    const occurrence = this.seen.get(digest) ?? 0;
    // Bounded memory; clearing happens at the same message on every run of the same input.
    if (occurrence === 0 && this.seen.size >= this.remember) this.seen.clear();
    this.seen.set(digest, occurrence + 1);
    return occurrence === 0 ? digest : `${digest}.${occurrence}`;
  }
}
