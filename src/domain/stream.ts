// A stream is one venue's one instrument: the unit the engine learns on, checkpoints, serves
// and labels metrics with. Two feeds may carry the same symbol (Binance spot and USDⓈ-M futures
// BTCUSDT, or push ingest beside a live feed); their streams never mix.
//
// Inside the engine a stream is named by one string, its id `venue:symbol` (`binance:BTCUSDT`):
// the entry points (a live feed, a push producer, a replayed file) put their venue in front of
// every message's symbol, and everything below keys on that string. Venue ids never hold `:`,
// so the first `:` always ends the venue, whatever the symbol holds.
import { z } from 'zod';
import type { Disconnect, MarketMessage } from './types.js';

export const VENUE_PATTERN = /^[a-z0-9][a-z0-9-]{0,31}$/;
export const VENUE_RULE = '1 to 32 characters of a-z 0-9 -, starting with a letter or digit';
export const venueSchema = z.string().regex(VENUE_PATTERN, { message: `must be a venue id (${VENUE_RULE})` });

/** The venue of pushed input that names none (`?venue=` on the ingest routes names one). */
export const PUSH_VENUE = 'push';

/** `venue:symbol`. */
export type StreamId = string;

export interface StreamName {
  readonly venue: string;
  readonly symbol: string;
}

/** The inverse of `splitStreamId`: a stream of venue '' (from before streams had venues) is named by its bare symbol. */
export function streamIdOf(venue: string, symbol: string): StreamId {
  return venue === '' ? symbol : `${venue}:${symbol}`;
}

/** How every answer about a stream names it: its id and its two parts. */
export function namedStream(id: StreamId): { stream: StreamId; venue: string; symbol: string } {
  const { venue, symbol } = splitStreamId(id);
  return { stream: id, venue, symbol };
}

const QUALIFIED = /^([a-z0-9][a-z0-9-]{0,31}):(.+)$/s;
// Stream ids are few and long-lived: splitting each once keeps the per-prediction outputs from
// allocating. Bounded so a flood of rejected names cannot grow it without end.
const splitCache = new Map<string, StreamName>();
const SPLIT_CACHE_LIMIT = 100_000;

/**
 * The venue and the venue's symbol of a stream id. A name without a venue part (a checkpoint
 * written before streams had venues, a bare symbol in a tool's input) has venue ''.
 */
export function splitStreamId(id: string): StreamName {
  const cached = splitCache.get(id);
  if (cached) return cached;
  const match = QUALIFIED.exec(id);
  const name: StreamName = match ? { venue: match[1], symbol: match[2] } : { venue: '', symbol: id };
  if (splitCache.size >= SPLIT_CACHE_LIMIT) splitCache.clear();
  splitCache.set(id, name);
  return name;
}

/**
 * The message as the stream of `venue` sees it: its symbol qualified into the stream id; a
 * disconnect of every symbol of the source becomes one of every stream of that venue. Rejected
 * input keeps the symbol it named (it reaches no stream).
 */
export function inStream(venue: string, message: MarketMessage): MarketMessage {
  switch (message.type) {
    case 'book_snapshot':
    case 'trade':
    case 'order_event':
      return { ...message, symbol: streamIdOf(venue, message.symbol) };
    case 'disconnect':
      return message.symbol === null ? { ...message, venue } : { ...message, symbol: streamIdOf(venue, message.symbol) };
    case 'rejected':
      return message;
  }
}

/** Whether the stream `id` is one of `venue`'s (a venue-wide disconnect reaches it). */
export function isOfVenue(id: StreamId, venue: string): boolean {
  return id.length > venue.length && id.charCodeAt(venue.length) === 58 /* : */ && id.startsWith(venue);
}

/** Whether a disconnect (inside the engine, after `inStream`) resets the stream `id`. */
export function reachedBy(message: Disconnect, id: StreamId): boolean {
  if (message.symbol !== null) return message.symbol === id;
  return message.venue === undefined || isOfVenue(id, message.venue);
}
