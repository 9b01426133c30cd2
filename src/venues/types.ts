// The contract every venue and file format implements. Venue-specific raw message types
// stay inside their own mapper file; only MarketMessage leaves it.
import type { EpochMs, MarketMessage } from '../domain/types.js';

export interface MapperOptions {
  /** How many levels per side each emitted snapshot carries (default 10). */
  readonly levels: number;
  /**
   * Symbols subscribed on this connection, for venue frames that do not name their symbol
   * (Binance `/ws/<symbol>@depth5` partial-book frames, a bare REST depth body).
   */
  readonly symbols?: readonly string[];
}

/**
 * Turns raw frames of one connection (or one recording) into canonical messages.
 * Stateful (order books, sequence numbers) and free of I/O: whoever owns the socket or the
 * file feeds it frames. It never throws: a bad frame becomes a `rejected` message.
 */
export interface FrameMapper {
  /** Maps one raw text frame received at `localTs`; returns zero or more messages. */
  map(frame: string, localTs: EpochMs): MarketMessage[];
  /**
   * Venues that sync a diff stream against a REST depth snapshot (Binance): apply the body
   * of that snapshot for `symbol`. Absent where the stream sends its own snapshots.
   */
  mapRestSnapshot?(symbol: string, body: string, localTs: EpochMs): MarketMessage[];
  /**
   * Symbols whose book needs a fresh venue snapshot (a gap, a failed checksum, a reconnect):
   * the live client fetches or re-subscribes for them. Cleared by `takeResyncRequests`.
   */
  takeResyncRequests(): string[];
  /**
   * Trades the mapper holds back while a book resyncs (so they come out in arrival order with
   * that book's updates), handed over now because no book is coming for them: the connection
   * dropped, the recording ended. The live client delivers them before its disconnect marker.
   * Absent where a mapper never holds anything back.
   */
  releaseHeld?(): MarketMessage[];
  /** Forgets every book: called on reconnect, before the new subscription. */
  reset(): void;
}

/** How the live client speaks to a venue: URL, subscription, keepalive, snapshot fetch. */
export interface LiveProtocol {
  readonly venue: string;
  /** The websocket URL to open for these symbols (combined-stream venues put them in the URL). */
  connectUrl(baseUrl: string, symbols: readonly string[]): string;
  /** Frames to send right after the socket opens (empty when the URL subscribes). */
  subscribeFrames(symbols: readonly string[]): string[];
  /** Frames to send to drop a symbol (its book and its trades), where the venue supports it. */
  unsubscribeFrames(symbols: readonly string[]): string[];
  /**
   * Frames that make a venue which streams its own snapshots send a fresh book for these
   * symbols: the book channel only, so their trades keep flowing. Empty where books resync
   * from REST (`snapshotUrl`).
   */
  resyncFrames(symbols: readonly string[]): string[];
  /** An application-level ping frame, where the venue wants one (Kraken `ping`); null otherwise. */
  pingFrame(): string | null;
  /**
   * Where the venue wants a REST snapshot to sync a diff stream (Binance), the URL for it;
   * the body is fed to the mapper as a frame. Null when the stream itself sends snapshots.
   */
  snapshotUrl(baseRestUrl: string, symbol: string): string | null;
}

/**
 * The book a live feed subscribes: `diff`, the venue's incremental stream kept in sync with its
 * snapshots, or a number of levels where the venue streams whole top-N books (Binance partial depth).
 */
export type BookDepth = 'diff' | number;

export interface Venue {
  readonly id: string;
  createMapper(options: MapperOptions): FrameMapper;
  readonly live: LiveProtocol | null;
  /**
   * The same venue subscribing `depth` live; throws a RangeError naming the choices it offers.
   * Absent where a feed cannot choose (the venue's own factory may still take a depth).
   */
  withBookDepth?(depth: BookDepth): Venue;
}

/** A file format: a path in, canonical messages out, in file order. */
export interface FileFormat {
  readonly id: string;
  read(paths: readonly string[], options: MapperOptions & { symbol?: string }): AsyncIterable<MarketMessage>;
  /**
   * The same messages, a chunk of the file at a time, where the format can: one await per chunk
   * instead of one per message, which is what bounds a fast format's read rate.
   */
  readBatches?(paths: readonly string[], options: MapperOptions & { symbol?: string }): AsyncIterable<readonly MarketMessage[]>;
}

/** The messages of `format` a batch at a time: its own batches, or batches of one. */
export async function* messageBatches(format: FileFormat, paths: readonly string[], options: MapperOptions & { symbol?: string }): AsyncGenerator<readonly MarketMessage[]> {
  if (format.readBatches) {
    yield* format.readBatches(paths, options);
    return;
  }
  for await (const message of format.read(paths, options)) yield [message];
}
