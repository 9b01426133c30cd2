// The book a stand-in serves as a snapshot (Binance's REST depth, Coinbase's and Kraken's
// snapshot on subscribe): one symbol's levels rebuilt from the recording up to a client's
// position in it, so what the client is told agrees with the frames that follow.

/** A recorded price level: the parsed price, and the venue's own strings to send it back as. */
export interface RecordedLevel {
  readonly price: number;
  /** `[price, size, ...]` exactly as recorded (Kraken v1 adds the level's timestamp). */
  readonly texts: readonly string[];
  /** A size of 0: the level leaves the book. */
  readonly removes: boolean;
}

export type SideName = 'bid' | 'ask';

/** Both sides keyed by price. Levels reference the parsed recording: applying allocates nothing. */
export class LevelBook {
  readonly bids = new Map<number, RecordedLevel>();
  readonly asks = new Map<number, RecordedLevel>();

  clear(): void {
    this.bids.clear();
    this.asks.clear();
  }

  side(name: SideName): Map<number, RecordedLevel> {
    return name === 'bid' ? this.bids : this.asks;
  }

  /** Sets the level, or removes it when its size is 0. */
  apply(name: SideName, levels: readonly RecordedLevel[]): void {
    const side = this.side(name);
    for (let i = 0; i < levels.length; i++) {
      const level = levels[i];
      if (level.removes) side.delete(level.price);
      else side.set(level.price, level);
    }
  }

  /** The best `limit` levels of a side, best first. */
  top(name: SideName, limit: number): RecordedLevel[] {
    const side = this.side(name);
    const direction = name === 'bid' ? -1 : 1;
    const prices = Array.from(side.keys()).sort((a, b) => (a - b) * direction);
    const count = Math.min(limit, prices.length);
    const out: RecordedLevel[] = new Array(count);
    for (let i = 0; i < count; i++) out[i] = side.get(prices[i]) as RecordedLevel;
    return out;
  }

  /** Keeps the best `depth` levels per side, as a depth-limited subscriber's book does. */
  truncate(depth: number): void {
    for (const name of ['bid', 'ask'] as const) {
      const side = this.side(name);
      if (side.size <= depth) continue;
      for (const level of this.top(name, side.size).slice(depth)) side.delete(level.price);
    }
  }
}

/** How a venue's recorded events build its book. */
export interface BookRules<Event> {
  /** The book before the first event (empty, or a base snapshot). */
  start(book: LevelBook): void;
  apply(book: LevelBook, event: Event): void;
}

/**
 * One symbol's book reconstructed lazily up to a position of the replay (an entry index in a
 * given loop). Moving backwards (a newer client, a loop restart) rebuilds from the start.
 */
export class ReplayBook<Event> {
  readonly book = new LevelBook();
  /** Next index into `eventEntries` to apply. */
  private nextEvent = 0;
  private loop = -1;

  constructor(
    /** Recording entry indices of this symbol's book events, ascending. */
    private readonly eventEntries: Int32Array,
    private readonly events: readonly (Event | null)[],
    private readonly rules: BookRules<Event>,
  ) {
    this.rebuild(0);
  }

  /** The book before any recorded event of loop `loop`. */
  resetToStart(loop: number): void {
    this.rebuild(loop);
  }

  /** Applies every event of this symbol before entry `cursor` of loop `loop`. */
  syncTo(cursor: number, loop: number): void {
    const behind = this.nextEvent > 0 && this.eventEntries[this.nextEvent - 1] >= cursor;
    if (loop !== this.loop || behind) this.rebuild(loop);
    const entries = this.eventEntries;
    while (this.nextEvent < entries.length && entries[this.nextEvent] < cursor) {
      this.rules.apply(this.book, this.events[entries[this.nextEvent]] as Event);
      this.nextEvent++;
    }
  }

  /** Whether some event of this symbol lies before entry `cursor`. */
  hasEventBefore(cursor: number): boolean {
    return this.eventEntries.length > 0 && this.eventEntries[0] < cursor;
  }

  private rebuild(loop: number): void {
    this.loop = loop;
    this.nextEvent = 0;
    this.book.clear();
    this.rules.start(this.book);
  }
}

/** Recording entry indices per symbol, in order, for the entries `symbolOf` names. */
export function entriesBySymbol<Event>(events: readonly (Event | null)[], symbolOf: (event: Event) => string | null): Map<string, Int32Array> {
  const lists = new Map<string, number[]>();
  events.forEach((event, index) => {
    if (event === null) return;
    const symbol = symbolOf(event);
    if (symbol === null) return;
    const list = lists.get(symbol);
    if (list) list.push(index);
    else lists.set(symbol, [index]);
  });
  const out = new Map<string, Int32Array>();
  for (const [symbol, list] of lists) out.set(symbol, Int32Array.from(list));
  return out;
}
