// What the venues that stream their own book snapshots share (Coinbase level2, Kraken v1 and
// v2 book): a recorded snapshot, then updates; a client that (re)subscribes a book is sent a
// snapshot of the book at its position in the recording, then the recorded updates from there.
// The venue modules parse their frames into `StreamedEntry`s and encode their snapshots.
import type { FeedServerStats } from './server.js';
import { entriesBySymbol, ReplayBook, type BookRules, type LevelBook, type RecordedLevel } from './replay-book.js';
import type { Session, SessionScript } from './session.js';

export interface StreamedEntry {
  readonly kind: 'snapshot' | 'update' | 'trade';
  readonly symbol: string;
  /** The frame as recorded, sent as it is. */
  readonly frame: string;
  readonly bids: readonly RecordedLevel[];
  readonly asks: readonly RecordedLevel[];
  /** Levels per side the venue keeps for this book (Kraken's subscribed depth); null for all. */
  readonly depth: number | null;
}

export interface StreamedRecording {
  readonly entries: StreamedEntry[];
  readonly times: number[];
}

const NO_LEVELS: readonly RecordedLevel[] = [];

export function tradeEntry(symbol: string, frame: string): StreamedEntry {
  return { kind: 'trade', symbol, frame, bids: NO_LEVELS, asks: NO_LEVELS, depth: null };
}

/** A snapshot replaces the book; an update sets and removes levels; both keep the venue's depth. */
const streamedRules: BookRules<StreamedEntry> = {
  start() {},
  apply(book, entry) {
    if (entry.kind === 'trade') return;
    if (entry.kind === 'snapshot') book.clear();
    book.apply('bid', entry.bids);
    book.apply('ask', entry.asks);
    if (entry.depth !== null) book.truncate(entry.depth);
  },
};

/** Every symbol's replay book and trade entries, shared read-only by the clients. */
export class StreamedBooks {
  private readonly books = new Map<string, ReplayBook<StreamedEntry>>();
  private readonly trades: Map<string, Int32Array>;
  /** Per symbol, the depth of its first recorded book message (null: the full book). */
  readonly depths = new Map<string, number | null>();

  constructor(readonly recording: StreamedRecording) {
    const { entries } = recording;
    for (const [symbol, indices] of entriesBySymbol(entries, (entry) => (entry.kind === 'trade' ? null : entry.symbol))) {
      this.books.set(symbol, new ReplayBook(indices, entries, streamedRules));
      this.depths.set(symbol, entries[indices[0]].depth);
    }
    this.trades = entriesBySymbol(entries, (entry) => (entry.kind === 'trade' ? entry.symbol : null));
  }

  /** Symbols with a recorded book or trades, as the venue spells them. */
  get symbols(): string[] {
    return [...new Set([...this.books.keys(), ...this.trades.keys()])];
  }

  /** The recorded streams, named `<symbol> <book channel>` and `<symbol> <trade channel>`. */
  streamNames(bookChannel: string, tradeChannel: string): string[] {
    return [...[...this.books.keys()].map((symbol) => `${symbol} ${bookChannel}`), ...[...this.trades.keys()].map((symbol) => `${symbol} ${tradeChannel}`)];
  }

  has(symbol: string): boolean {
    return this.books.has(symbol) || this.trades.has(symbol);
  }

  /** The book after every entry before `cursor` of loop `loop`, or null before its first book message. */
  bookAt(symbol: string, cursor: number, loop: number): LevelBook | null {
    const replay = this.books.get(symbol);
    if (!replay || !replay.hasEventBefore(cursor)) return null;
    replay.syncTo(cursor, loop);
    return replay.book;
  }

  /** Entry indices of the last `max` recorded trade frames of `symbol` before `cursor`, oldest first. */
  tradeFramesBefore(symbol: string, cursor: number, max: number): number[] {
    const indices = this.trades.get(symbol);
    if (!indices) return [];
    let low = 0;
    let high = indices.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (indices[mid] < cursor) low = mid + 1;
      else high = mid;
    }
    return Array.from(indices.subarray(Math.max(0, low - max), low));
  }
}

interface Subscription {
  book: boolean;
  trades: boolean;
  /** The book was (re)subscribed and its snapshot has not gone out yet. */
  snapshotDue: boolean;
}

/**
 * One client of a snapshot-streaming venue: which symbols' books and trades it follows, and
 * when its snapshots are due. The venue subclass speaks the subscription protocol.
 */
export abstract class StreamedClient implements SessionScript {
  protected readonly subscriptions = new Map<string, Subscription>();
  private heartbeat: NodeJS.Timeout | null = null;

  constructor(
    readonly session: Session,
    protected readonly books: StreamedBooks,
    protected readonly stats: FeedServerStats,
  ) {}

  /** The venue's snapshot message for `symbol` holding `book`, sent before entry `index`. */
  protected abstract encodeSnapshot(symbol: string, book: LevelBook, index: number): string;

  play(index: number): void {
    const entry = this.books.recording.entries[index];
    const subscription = this.subscriptions.get(entry.symbol);
    if (!subscription) return;
    if (entry.kind === 'trade') {
      if (subscription.trades) this.session.send(this.tradeFrame(index, entry.frame));
      return;
    }
    if (!subscription.book) return;
    if (entry.kind === 'snapshot') {
      // A recorded snapshot reaches a client only when it needs one: mid-recording it was the
      // recording session's own resubscription.
      if (subscription.snapshotDue) this.sendSnapshot(subscription, entry.frame);
      return;
    }
    if (subscription.snapshotDue) {
      const book = this.books.bookAt(entry.symbol, index, this.session.loop);
      // Before the symbol's first recorded book message nothing is known to send.
      if (book === null) return;
      this.sendSnapshot(subscription, this.encodeSnapshot(entry.symbol, book, index));
    }
    if (this.session.takeSkippedUpdate()) {
      this.stats.skippedByFault++;
      return;
    }
    this.session.send(entry.frame);
  }

  /** A recorded trade frame as this client gets it (a venue may renumber it on later loops). */
  protected tradeFrame(_index: number, frame: string): string {
    return frame;
  }

  /** The recording starts over: every followed book starts again from its first snapshot. */
  onLoop(): void {
    for (const subscription of this.subscriptions.values()) if (subscription.book) subscription.snapshotDue = true;
  }

  /**
   * Sends `frames()` every `intervalMs`; with `onlyIdle` (Kraken) only while the client follows
   * something and nothing went out for that long, otherwise (Coinbase's heartbeat channel) always.
   */
  startHeartbeat(intervalMs: number, onlyIdle: boolean, frames: () => readonly string[]): void {
    this.heartbeat = setInterval(() => {
      if (onlyIdle && (this.subscriptions.size === 0 || this.session.now() - this.session.lastSentAt < intervalMs)) return;
      for (const frame of frames()) this.session.reply(frame);
    }, intervalMs);
  }

  stopHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  protected follow(symbol: string, channel: 'book' | 'trades', on: boolean): void {
    let subscription = this.subscriptions.get(symbol);
    if (!subscription) {
      if (!on) return;
      subscription = { book: false, trades: false, snapshotDue: false };
      this.subscriptions.set(symbol, subscription);
    }
    if (channel === 'book') {
      subscription.snapshotDue = on;
      subscription.book = on;
    } else {
      subscription.trades = on;
    }
    if (!subscription.book && !subscription.trades) this.subscriptions.delete(symbol);
    this.session.setActive(this.subscriptions.size > 0);
  }

  /** Kraken's refusal of a subscribe to what is followed, or of an unsubscribe of what is not; null when neither. */
  protected subscriptionConflict(subscribe: boolean, symbol: string, channel: 'book' | 'trades'): string | null {
    const followed = this.follows(symbol, channel);
    if (subscribe && followed) return 'Already subscribed';
    if (!subscribe && !followed) return 'Subscription Not Found';
    return null;
  }

  protected follows(symbol: string, channel: 'book' | 'trades'): boolean {
    const subscription = this.subscriptions.get(symbol);
    return subscription !== undefined && (channel === 'book' ? subscription.book : subscription.trades);
  }

  private sendSnapshot(subscription: Subscription, frame: string): void {
    subscription.snapshotDue = false;
    this.stats.snapshotsSent++;
    this.session.send(frame);
  }
}
