// The wire between the main thread and the symbol workers: market messages and predictions as
// flat Float64Array records, a batch at a time, so one postMessage carries thousands of ticks
// and nothing is turned into JSON. Input batches are transferred; the predictions coming back
// are copied, because a worker that detaches a buffer slows every typed-array kernel it runs
// (symbol-worker.ts says why). Every number crosses as the float64 it was, so a worker's
// predictions are the in-thread ones bit for bit.
//
// Input record layouts (the first slot is the kind):
//   snapshot  [0, symbolId, ts, localTs, hasSeq, seq, bidLength, askLength, bids..., asks...]
//   trade     [1, symbolId, ts, localTs, price, size, aggressor]
//   order     [2, symbolId, ts, localTs, kind, side, price, size, level]
//   disconnect[3, symbolId or -1 for every symbol of the worker]
// Trade ids and disconnect reasons stay behind: nothing below the engine reads them.
// Output record: [symbolId, ts, localTs, seq, mid, ticks, warm, probs of every model in model order...]
// (ticks and warm: the symbol's accepted snapshots and whether its normaliser is warm, after the tick).
import type { BookSnapshot, OrderEvent, OrderEventKind, Trade } from '../domain/types.js';

export const RECORD_SNAPSHOT = 0;
export const RECORD_TRADE = 1;
export const RECORD_ORDER_EVENT = 2;
export const RECORD_DISCONNECT = 3;
export const EVERY_SYMBOL = -1;

export const orderEventKinds: readonly OrderEventKind[] = ['submit', 'cancel', 'delete'];

/** A growing Float64Array of input records for one worker; `take` hands the filled part over. */
export class RecordWriter {
  private buffer: Float64Array;
  private length = 0;
  /** Records written since the last `take`. */
  count = 0;

  constructor(initialCapacity = 16_384) {
    this.buffer = new Float64Array(initialCapacity);
  }

  get empty(): boolean {
    return this.count === 0;
  }

  snapshot(symbolId: number, snapshot: BookSnapshot): void {
    const bids = snapshot.bids;
    const asks = snapshot.asks;
    const at = this.reserve(8 + bids.length + asks.length);
    const b = this.buffer;
    b[at] = RECORD_SNAPSHOT;
    b[at + 1] = symbolId;
    b[at + 2] = snapshot.ts;
    b[at + 3] = snapshot.localTs;
    b[at + 4] = snapshot.seq === undefined ? 0 : 1;
    b[at + 5] = snapshot.seq ?? 0;
    b[at + 6] = bids.length;
    b[at + 7] = asks.length;
    b.set(bids, at + 8);
    b.set(asks, at + 8 + bids.length);
  }

  trade(symbolId: number, trade: Trade): void {
    const at = this.reserve(7);
    const b = this.buffer;
    b[at] = RECORD_TRADE;
    b[at + 1] = symbolId;
    b[at + 2] = trade.ts;
    b[at + 3] = trade.localTs;
    b[at + 4] = trade.price;
    b[at + 5] = trade.size;
    b[at + 6] = trade.aggressor;
  }

  orderEvent(symbolId: number, event: OrderEvent): void {
    const at = this.reserve(9);
    const b = this.buffer;
    b[at] = RECORD_ORDER_EVENT;
    b[at + 1] = symbolId;
    b[at + 2] = event.ts;
    b[at + 3] = event.localTs;
    b[at + 4] = orderEventKinds.indexOf(event.kind);
    b[at + 5] = event.side;
    b[at + 6] = event.price;
    b[at + 7] = event.size;
    b[at + 8] = event.level;
  }

  disconnect(symbolId: number): void {
    const at = this.reserve(2);
    this.buffer[at] = RECORD_DISCONNECT;
    this.buffer[at + 1] = symbolId;
  }

  /** The records written so far, in a buffer of their own to transfer; the writer starts empty. */
  take(): Float64Array {
    const filled = this.buffer.subarray(0, this.length);
    this.buffer = new Float64Array(this.buffer.length);
    this.length = 0;
    this.count = 0;
    return filled;
  }

  private reserve(slots: number): number {
    const at = this.length;
    if (at + slots > this.buffer.length) {
      const grown = new Float64Array(Math.max(this.buffer.length * 2, at + slots));
      grown.set(this.buffer.subarray(0, at));
      this.buffer = grown;
    }
    this.length = at + slots;
    this.count++;
    return at;
  }
}

/** Mutable stand-ins for the readonly message types, refilled record by record in a worker. */
type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type ScratchSnapshot = Mutable<BookSnapshot>;
type ScratchTrade = Mutable<Trade>;
type ScratchOrderEvent = Mutable<OrderEvent>;

/** What a worker does with each decoded record; the message objects are reused, never kept. */
export interface RecordHandler {
  snapshot(symbolId: number, snapshot: BookSnapshot): void;
  trade(symbolId: number, trade: Trade): void;
  orderEvent(symbolId: number, event: OrderEvent): void;
  disconnect(symbolId: number): void;
}

/**
 * Walks a batch of records, refilling the same scratch messages for each (the features copy
 * what they keep out of a snapshot, so nothing holds a reference past its record).
 */
export class RecordReader {
  // Two snapshots, with and without a seq, so neither ever changes the kind of value a field
  // holds: such a change would throw away the optimised code of everything that reads it.
  private readonly sequenced: ScratchSnapshot = { type: 'book_snapshot', symbol: '', ts: 0, localTs: 0, seq: 0, bids: new Float64Array(0), asks: new Float64Array(0) };
  private readonly unsequenced: ScratchSnapshot = { type: 'book_snapshot', symbol: '', ts: 0, localTs: 0, seq: undefined, bids: new Float64Array(0), asks: new Float64Array(0) };
  private readonly trade: ScratchTrade = { type: 'trade', symbol: '', ts: 0, localTs: 0, price: 0, size: 0, aggressor: 0, tradeId: undefined };
  private readonly orderEvent: ScratchOrderEvent = { type: 'order_event', symbol: '', ts: 0, localTs: 0, kind: 'submit', side: 1, price: 0, size: 0, level: -1 };

  constructor(private readonly symbolName: (symbolId: number) => string) {}

  read(records: Float64Array, handler: RecordHandler): void {
    let at = 0;
    while (at < records.length) {
      const kind = records[at];
      const symbolId = records[at + 1];
      switch (kind) {
        case RECORD_SNAPSHOT: {
          const s = records[at + 4] === 1 ? this.sequenced : this.unsequenced;
          const bidLength = records[at + 6];
          const askLength = records[at + 7];
          if (s.bids.length !== bidLength) s.bids = new Float64Array(bidLength);
          if (s.asks.length !== askLength) s.asks = new Float64Array(askLength);
          const bidsAt = at + 8;
          for (let i = 0; i < bidLength; i++) s.bids[i] = records[bidsAt + i];
          const asksAt = bidsAt + bidLength;
          for (let i = 0; i < askLength; i++) s.asks[i] = records[asksAt + i];
          s.symbol = this.symbolName(symbolId);
          s.ts = records[at + 2];
          s.localTs = records[at + 3];
          if (s === this.sequenced) s.seq = records[at + 5];
          handler.snapshot(symbolId, s);
          at = asksAt + askLength;
          break;
        }
        case RECORD_TRADE: {
          const t = this.trade;
          t.symbol = this.symbolName(symbolId);
          t.ts = records[at + 2];
          t.localTs = records[at + 3];
          t.price = records[at + 4];
          t.size = records[at + 5];
          t.aggressor = records[at + 6] as Trade['aggressor'];
          handler.trade(symbolId, t);
          at += 7;
          break;
        }
        case RECORD_ORDER_EVENT: {
          const e = this.orderEvent;
          e.symbol = this.symbolName(symbolId);
          e.ts = records[at + 2];
          e.localTs = records[at + 3];
          e.kind = orderEventKinds[records[at + 4]];
          e.side = records[at + 5] as OrderEvent['side'];
          e.price = records[at + 6];
          e.size = records[at + 7];
          e.level = records[at + 8];
          handler.orderEvent(symbolId, e);
          at += 9;
          break;
        }
        case RECORD_DISCONNECT:
          handler.disconnect(symbolId);
          at += 2;
          break;
        default:
          throw new Error(`worker batch: unknown record kind ${kind} at slot ${at}`);
      }
    }
  }
}

/** Slots of one output record before the probabilities. */
export const PREDICTION_HEADER = 8;
/** Slots of one resolution after the probabilities: fromSeq, toSeq, count, label (class index). */
export const RESOLUTION_SLOTS = 4;

/**
 * Slots of one output record without its resolutions: symbol id, ts, localTs, seq, mid, ticks,
 * warm, resolutions, then models × classes probabilities, then RESOLUTION_SLOTS per resolution.
 */
export function predictionStride(models: number, classes: number): number {
  return PREDICTION_HEADER + models * classes;
}
