// The per-symbol book bookkeeping every websocket mapper needs, kept once: whether a symbol's book
// continues the venue's stream or awaits a fresh snapshot, which symbols need one (the live
// client takes them and fetches or resubscribes), the frames and trades held while a book awaits
// (so a resync never moves a trade across a book of its symbol), and whether a book went out
// since it was last lost (so losing it again is announced by a disconnect, and only then).
// The venue's own book and sync state live in `book`, which the mapper creates and reads.
import type { BookSnapshot, Disconnect, EpochMs, MarketMessage, Rejected, RejectReason, Trade } from '../domain/types.js';
import { rejected } from '../domain/types.js';

/**
 * Frames and trades held for one symbol while its book awaits a snapshot (a minute or more of a
 * busy symbol). Past it the oldest goes first: a held frame is dropped (the snapshot must then
 * be newer anyway), a trade is handed over at once, since it precedes everything still held.
 */
export const MAX_HELD_PER_SYMBOL = 2000;

export interface BookEntry<Book, Held> {
  readonly symbol: string;
  /** The venue's book and sync state; the mapper resets or replaces it on a snapshot. */
  book: Book;
  /** No snapshot is applied since the entry was made or the book lost: updates have nothing to apply to. */
  awaiting: boolean;
  /** A book of this symbol was emitted since it was last lost. */
  emitted: boolean;
  /** A fresh snapshot was asked for and none applied since (so holding more frames does not ask again). */
  resyncRequested: boolean;
  /** What waits for the snapshot, in arrival order: the mapper's own frames (Binance diffs) and trades. */
  held: (Held | Trade)[];
}

export class BookRegistry<Book, Held extends { readonly type: string } = never> {
  private readonly entries = new Map<string, BookEntry<Book, Held>>();
  private readonly resyncRequests = new Set<string>();

  constructor(private readonly createBook: (symbol: string) => Book) {}

  /** The symbol's entry, made (awaiting its snapshot) on first sight. */
  entry(symbol: string): BookEntry<Book, Held> {
    let entry = this.entries.get(symbol);
    if (entry === undefined) {
      entry = { symbol, book: this.createBook(symbol), awaiting: true, emitted: false, resyncRequested: false, held: [] };
      this.entries.set(symbol, entry);
    }
    return entry;
  }

  /** The symbol's entry if it has one, synced or not. */
  find(symbol: string): BookEntry<Book, Held> | undefined {
    return this.entries.get(symbol);
  }

  /** The symbol's entry while its book continues the stream; undefined while it awaits a snapshot. */
  live(symbol: string): BookEntry<Book, Held> | undefined {
    const entry = this.entries.get(symbol);
    return entry === undefined || entry.awaiting ? undefined : entry;
  }

  /** Asks the live client for a fresh snapshot of `symbol` (REST fetch or resubscription). */
  resync(symbol: string): void {
    const entry = this.entries.get(symbol);
    if (entry !== undefined) entry.resyncRequested = true;
    this.resyncRequests.add(symbol);
  }

  /** A snapshot was applied: the book continues the stream and no resync is pending for it. */
  synced(entry: BookEntry<Book, Held>): void {
    entry.awaiting = false;
    entry.resyncRequested = false;
    this.resyncRequests.delete(entry.symbol);
  }

  /** Hands out a checked snapshot (or its rejection) and remembers that a book of the symbol went out. */
  emit(entry: BookEntry<Book, Held>, message: BookSnapshot | Rejected, out: MarketMessage[]): void {
    if (message.type === 'book_snapshot') entry.emitted = true;
    out.push(message);
  }

  /**
   * The book can no longer be trusted (a gap, a failed checksum, a bad level): it awaits a fresh
   * snapshot, which is requested, and what it held is dropped. When a book of it went out since
   * it was last lost, a disconnect with `reason` marks the gap, so the engine drops that symbol's
   * pending predictions; returns whether it did.
   */
  lose(symbol: string, localTs: EpochMs, reason: string, out: MarketMessage[]): boolean {
    const entry = this.entries.get(symbol);
    this.resync(symbol);
    if (entry === undefined) return false;
    const announced = entry.emitted;
    entry.awaiting = true;
    entry.emitted = false;
    entry.held = [];
    if (announced) {
      const disconnect: Disconnect = { type: 'disconnect', symbol, localTs, reason };
      out.push(disconnect);
    }
    return announced;
  }

  /**
   * A book frame that cannot be applied: rejected, naming the field, and the book lost (the
   * snapshot-streaming venues then resubscribe its channel).
   */
  rejectAndLose(symbol: string, reason: RejectReason, detail: string, frame: string, localTs: EpochMs): MarketMessage[] {
    const out: MarketMessage[] = [rejected(reason, detail, frame, symbol)];
    this.lose(symbol, localTs, `${reason}: ${detail}; resubscribing the book`, out);
    return out;
  }

  /** Forgets the symbol's book without a word: its subscription ended, nothing more comes for it. */
  forget(symbol: string): void {
    this.entries.delete(symbol);
  }

  /**
   * Holds `item` until the symbol's snapshot arrives, and asks for that snapshot unless already
   * asked: held first, then fetched, so the snapshot is never older than what it must join.
   */
  hold(entry: BookEntry<Book, Held>, item: Held | Trade, out: MarketMessage[]): void {
    if (entry.held.length >= MAX_HELD_PER_SYMBOL) {
      const oldest = entry.held.shift() as Held | Trade;
      if (oldest.type === 'trade') out.push(oldest as Trade);
    }
    entry.held.push(item);
    if (!entry.resyncRequested) this.resync(entry.symbol);
  }

  /** A trade leaves now, unless its book awaits a snapshot with frames held: then it waits behind them. */
  trade(trade: Trade, out: MarketMessage[]): void {
    const entry = this.entries.get(trade.symbol);
    if (entry !== undefined && entry.awaiting && entry.held.length > 0) this.hold(entry, trade, out);
    else out.push(trade);
  }

  /** Takes everything the entry holds, in arrival order, to apply or pass on now. */
  release(entry: BookEntry<Book, Held>): (Held | Trade)[] {
    const held = entry.held;
    entry.held = [];
    return held;
  }

  /**
   * The trades held by every book, for `FrameMapper.releaseHeld` (no snapshot is coming for
   * them); the frames stay held.
   */
  releaseTrades(): Trade[] {
    const out: Trade[] = [];
    for (const entry of this.entries.values()) {
      if (!entry.held.some((item) => item.type === 'trade')) continue;
      const frames: (Held | Trade)[] = [];
      for (const item of entry.held) {
        if (item.type === 'trade') out.push(item as Trade);
        else frames.push(item);
      }
      entry.held = frames;
    }
    return out;
  }

  /** The symbols whose book needs a fresh snapshot, for `FrameMapper.takeResyncRequests`. */
  takeResyncRequests(): string[] {
    const symbols = [...this.resyncRequests];
    this.resyncRequests.clear();
    return symbols;
  }

  /** Forgets every book and request (`FrameMapper.reset`, on reconnect). */
  reset(): void {
    this.entries.clear();
    this.resyncRequests.clear();
  }
}
