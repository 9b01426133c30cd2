// The queue between a live connection and its consumer: bounded however slowly it is drained,
// conflating books but never trades, never reordering what one symbol's engine sees.
import type { BookSnapshot, MarketMessage, OrderEvent, Trade } from '../domain/types.js';

export interface ConflatingQueueLimits {
  readonly maxPendingPerSymbol: number;
  readonly maxPendingRejections: number;
  /** Books, disconnect markers and rejections that may wait; flow is bounded apart. */
  readonly capacity: number;
  /** Trades and order events that may wait before newer ones are dropped (default DEFAULT_MAX_PENDING_FLOW). */
  readonly maxPendingFlow?: number;
}

/** Minutes of a busy symbol's trades: reached only by a consumer that has stopped keeping up. */
export const DEFAULT_MAX_PENDING_FLOW = 10_000;

/**
 * FIFO of MarketMessages whose length stays bounded however slowly it is drained, and which
 * never reorders what a symbol's engine sees: per symbol, books and flow (trades, order events)
 * come out in the order they went in, and nothing crosses a disconnect.
 *
 * - Snapshots conflate: once `maxPendingPerSymbol` snapshots of a symbol wait, a newer one
 *   replaces the newest waiting one: in place when none of that symbol's flow waits after it,
 *   otherwise by emptying the waiting one's slot and appending the newer one after that flow,
 *   so no book moves ahead of a trade that arrived before it. Never across a barrier.
 * - Flow is never conflated: each trade moves the features of the next book. Up to
 *   `maxPendingFlow` may wait. Beyond that (a consumer far behind) newer flow is dropped and
 *   counted, and a symbol whose flow is dropped gets a `disconnect` at that point (one per run
 *   of drops), so its features restart instead of silently learning from thinned flow.
 * - Disconnects and rejections are barriers: never reordered against anything around them,
 *   never merged with anything. Rejections beyond `maxPendingRejections` are dropped.
 * - When `capacity` books, markers and rejections wait (possible only when barriers keep
 *   splitting snapshots into separate runs), the queue is compacted: a snapshot followed later
 *   by a newer snapshot of the same symbol is dropped (a coarser conflation; flow between them
 *   keeps its place before the newer one), and so is a disconnect that an earlier waiting one
 *   already covers with neither book nor flow of its symbol in between (it tells the consumer
 *   nothing new). Order is untouched. Without flow what survives is at most one snapshot per
 *   symbol plus O(symbols^2) markers plus the rejections, which is what `minimumCapacity`
 *   reserves; each waiting run of flow can keep one marker more, so when compaction cannot get
 *   under `capacity` the next one waits until twice as many are waiting. Books, markers and
 *   rejections thus stay under 2 (capacity + maxPendingFlow), flow under maxPendingFlow.
 */
export class ConflatingQueue {
  private items: (MarketMessage | undefined)[] = [];
  private head = 0;
  /** Waiting slots emptied by a conflated snapshot; `shift` skips them. */
  private holes = 0;
  /** Bumped by every barrier; a snapshot can be overwritten only within its own segment. */
  private segment = 0;
  private readonly slots = new Map<string, SymbolSlot>();
  private pendingRejections = 0;
  private pendingFlow = 0;
  private readonly maxPendingFlow: number;
  /** Books, markers and rejections waiting at which the next append compacts. */
  private compactAt: number;
  private conflatedCount = 0;
  private droppedCount = 0;
  private droppedFlowCount = 0;
  private highWater = 0;

  constructor(private readonly limits: ConflatingQueueLimits) {
    if (!(Number.isInteger(limits.maxPendingPerSymbol) && limits.maxPendingPerSymbol >= 1)) {
      throw new RangeError(`maxPendingPerSymbol: must be an integer >= 1, got ${limits.maxPendingPerSymbol}`);
    }
    if (!(Number.isInteger(limits.maxPendingRejections) && limits.maxPendingRejections >= 0)) {
      throw new RangeError(`maxPendingRejections: must be an integer >= 0, got ${limits.maxPendingRejections}`);
    }
    if (!(Number.isInteger(limits.capacity) && limits.capacity >= 1)) {
      throw new RangeError(`capacity: must be an integer >= 1, got ${limits.capacity}`);
    }
    this.maxPendingFlow = limits.maxPendingFlow ?? DEFAULT_MAX_PENDING_FLOW;
    if (!(Number.isInteger(this.maxPendingFlow) && this.maxPendingFlow >= 1)) {
      throw new RangeError(`maxPendingFlow: must be an integer >= 1, got ${this.maxPendingFlow}`);
    }
    this.compactAt = limits.capacity;
  }

  /** The smallest capacity at which compaction always makes room, for `symbolCount` symbols. */
  static minimumCapacity(symbolCount: number, maxPendingRejections: number): number {
    const markers = 1 + symbolCount + symbolCount * (symbolCount + 1);
    return symbolCount + markers + maxPendingRejections + 1;
  }

  /** Messages waiting, flow included. */
  get length(): number {
    return this.items.length - this.head - this.holes;
  }

  /** Trades and order events waiting. */
  get flowLength(): number {
    return this.pendingFlow;
  }

  get conflated(): number {
    return this.conflatedCount;
  }

  /** Rejections over their cap and redundant disconnect markers. */
  get dropped(): number {
    return this.droppedCount;
  }

  /** Trades and order events dropped because `maxPendingFlow` were waiting. */
  get droppedFlow(): number {
    return this.droppedFlowCount;
  }

  /** The most messages that ever waited at once, flow included. */
  get maxLength(): number {
    return this.highWater;
  }

  push(message: MarketMessage): void {
    switch (message.type) {
      case 'book_snapshot':
        this.pushSnapshot(message);
        return;
      case 'rejected':
        if (this.pendingRejections >= this.limits.maxPendingRejections) {
          this.droppedCount += 1;
          return;
        }
        this.pendingRejections += 1;
        this.append(message, false);
        this.segment += 1;
        return;
      case 'disconnect':
        this.append(message, false);
        this.segment += 1;
        if (message.symbol !== null) this.slotFor(message.symbol).breakIsLatest = true;
        else for (const slot of this.slots.values()) slot.breakIsLatest = true;
        return;
      case 'trade':
      case 'order_event':
        this.pushFlow(message);
        return;
    }
  }

  shift(): MarketMessage | undefined {
    while (this.head < this.items.length) {
      const message = this.items[this.head];
      this.items[this.head] = undefined;
      this.head += 1;
      if (message === undefined) {
        this.holes -= 1;
        continue;
      }
      if (message.type === 'book_snapshot') {
        const slot = this.slots.get(message.symbol);
        if (slot) slot.pending -= 1;
      } else if (message.type === 'rejected') {
        this.pendingRejections -= 1;
      } else if (message.type === 'trade' || message.type === 'order_event') {
        this.pendingFlow -= 1;
      }
      this.afterShift();
      return message;
    }
    return undefined;
  }

  /** Forgets everything waiting (the feed is closing). */
  clear(): void {
    this.items = [];
    this.head = 0;
    this.holes = 0;
    this.slots.clear();
    this.pendingRejections = 0;
    this.pendingFlow = 0;
    this.compactAt = this.limits.capacity;
  }

  private afterShift(): void {
    if (this.head === this.items.length) {
      this.items.length = 0;
      this.head = 0;
      this.holes = 0;
      this.compactAt = this.limits.capacity;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.dropConsumedPrefix();
    }
  }

  private slotFor(symbol: string): SymbolSlot {
    let slot = this.slots.get(symbol);
    if (slot === undefined) {
      slot = { position: -1, segment: -1, pending: 0, flowAfter: false, breakIsLatest: false };
      this.slots.set(symbol, slot);
    }
    return slot;
  }

  private pushSnapshot(snapshot: BookSnapshot): void {
    const slot = this.slotFor(snapshot.symbol);
    // pending > 0 means the newest snapshot of this symbol (at slot.position) is still waiting.
    if (slot.pending >= this.limits.maxPendingPerSymbol && slot.segment === this.segment) {
      this.conflatedCount += 1;
      if (!slot.flowAfter) {
        this.items[slot.position] = snapshot;
        return;
      }
      this.items[slot.position] = undefined;
      this.holes += 1;
      slot.pending -= 1;
    }
    this.append(snapshot, false);
    slot.position = this.items.length - 1;
    slot.segment = this.segment;
    slot.pending += 1;
    slot.flowAfter = false;
    slot.breakIsLatest = false;
  }

  private pushFlow(message: Trade | OrderEvent): void {
    const slot = this.slotFor(message.symbol);
    if (this.pendingFlow >= this.maxPendingFlow) {
      this.droppedFlowCount += 1;
      if (!slot.breakIsLatest) {
        this.push({
          type: 'disconnect',
          symbol: message.symbol,
          localTs: message.localTs,
          reason: `consumer behind: ${this.maxPendingFlow} trades and order events waiting, newer ones of ${message.symbol} dropped`,
        });
      }
      return;
    }
    this.append(message, true);
    this.pendingFlow += 1;
    slot.flowAfter = true;
    slot.breakIsLatest = false;
  }

  private append(message: MarketMessage, flow: boolean): void {
    if (!flow && this.length - this.pendingFlow >= this.compactAt) this.compact();
    this.items.push(message);
    const length = this.length;
    if (length > this.highWater) this.highWater = length;
  }

  private dropConsumedPrefix(): void {
    const consumed = this.head;
    this.items.splice(0, consumed);
    this.head = 0;
    for (const slot of this.slots.values()) slot.position -= consumed;
  }

  private compact(): void {
    const waiting: MarketMessage[] = [];
    for (let i = this.head; i < this.items.length; i += 1) {
      const message = this.items[i];
      if (message !== undefined) waiting.push(message);
    }
    const keep = new Array<boolean>(waiting.length).fill(true);

    // Backwards: keep only the newest snapshot of each symbol.
    const newerSeen = new Set<string>();
    for (let i = waiting.length - 1; i >= 0; i -= 1) {
      const message = waiting[i];
      if (message.type !== 'book_snapshot') continue;
      if (newerSeen.has(message.symbol)) {
        keep[i] = false;
        this.conflatedCount += 1;
      } else {
        newerSeen.add(message.symbol);
      }
    }

    // Forwards: drop disconnects already covered by an earlier kept one with neither book nor
    // flow of their symbol kept in between. `allCoveredExcept` non-null = a null-symbol
    // disconnect covers every symbol except those listed (seen since).
    let allCoveredExcept: Set<string> | null = null;
    const coveredSymbols = new Set<string>();
    for (let i = 0; i < waiting.length; i += 1) {
      const message = waiting[i];
      if (!keep[i]) continue;
      if (message.type === 'book_snapshot' || message.type === 'trade' || message.type === 'order_event') {
        coveredSymbols.delete(message.symbol);
        allCoveredExcept?.add(message.symbol);
      } else if (message.type === 'disconnect') {
        const covered =
          message.symbol === null
            ? allCoveredExcept !== null && allCoveredExcept.size === 0
            : coveredSymbols.has(message.symbol) || (allCoveredExcept !== null && !allCoveredExcept.has(message.symbol));
        if (covered) {
          keep[i] = false;
          this.droppedCount += 1;
        } else if (message.symbol === null) {
          allCoveredExcept = new Set();
          coveredSymbols.clear();
        } else {
          coveredSymbols.add(message.symbol);
        }
      }
    }

    const kept: MarketMessage[] = [];
    for (let i = 0; i < waiting.length; i += 1) if (keep[i]) kept.push(waiting[i]);
    this.items = kept;
    this.head = 0;
    this.holes = 0;
    this.rebuildSlots();
    const barriersAndBooks = kept.length - this.pendingFlow;
    this.compactAt = barriersAndBooks < this.limits.capacity ? this.limits.capacity : 2 * barriersAndBooks;
  }

  /** Recomputes each symbol's newest waiting snapshot after compaction; `breakIsLatest` survives it unchanged. */
  private rebuildSlots(): void {
    for (const slot of this.slots.values()) {
      slot.pending = 0;
      slot.position = -1;
      slot.segment = -1;
      slot.flowAfter = false;
    }
    this.segment += 1;
    let barrierAfter = false;
    for (let i = this.items.length - 1; i >= 0; i -= 1) {
      const message = this.items[i];
      if (message === undefined) continue;
      if (message.type === 'trade' || message.type === 'order_event') {
        const slot = this.slotFor(message.symbol);
        if (slot.pending === 0) slot.flowAfter = true;
        continue;
      }
      if (message.type !== 'book_snapshot') {
        barrierAfter = true;
        continue;
      }
      const slot = this.slotFor(message.symbol);
      if (slot.pending === 0) {
        slot.position = i;
        // Only a snapshot with no barrier after it may still be overwritten in place.
        slot.segment = barrierAfter ? -1 : this.segment;
      }
      slot.pending += 1;
    }
  }
}

interface SymbolSlot {
  /** Index in `items` of the newest waiting snapshot of the symbol (valid while pending > 0). */
  position: number;
  segment: number;
  pending: number;
  /** Flow of the symbol waits after its newest waiting snapshot, which so cannot be overwritten in place. */
  flowAfter: boolean;
  /**
   * The symbol's latest message pushed is a disconnect covering it: its flow can be dropped with
   * no new marker, since the consumer already restarts its features there.
   */
  breakIsLatest: boolean;
}
