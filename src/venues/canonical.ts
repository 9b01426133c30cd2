// The canonical messages, one JSON object each:
//   snapshot  {"type"?:"book","symbol","ts","seq"?,"bids":[[p,s],...],"asks":[[p,s],...]}
//   trade     {"type":"trade","symbol","ts","price","size","side"?:"buy"|"sell"|null,"id"?}
// A push frame or `POST /v1/snapshots` body carries one message or an array of them; the
// canonical JSONL file format holds one per line. The schemas live in src/domain/schemas.ts.
//
// The valid path is checked by hand (one pass, no zod): it is what every line of a file and
// every pushed snapshot takes. Anything the hand check does not accept goes through the zod
// schema, which either accepts it too or produces the error that names the field; the two
// agree on what is valid (test/venues/canonical.test.ts holds them to it on fuzzed input).
import { checkBook, snapshotOrRejected } from '../domain/book-check.js';
import { MAX_JSON_DEPTH, nestsDeeperThan, parseJsonBounded } from '../domain/json-edge.js';
import { canonicalSnapshotSchema, canonicalTradeSchema, describeIssues, MAX_EPOCH_MS, SYMBOL_PATTERN } from '../domain/schemas.js';
import type { Aggressor, BookSnapshot, EpochMs, MarketMessage, Rejected, Trade } from '../domain/types.js';
import { rejected } from '../domain/types.js';
import { scanCanonicalBytes } from './canonical-scan.js';
import { readByteLineBatches } from './lines.js';
import type { FileFormat, FrameMapper, MapperOptions, Venue } from './types.js';

/** The most levels a side may list; deeper books are cut to the configured levels anyway. */
const MAX_SIDE_LEVELS = 10_000;
/** Messages one frame, body or line may carry unless the caller sets its own cap. */
export const DEFAULT_MAX_BATCH = 1000;

export type CanonicalMessage = BookSnapshot | Trade;

/**
 * Validates one canonical message and turns it into a checked BookSnapshot (truncated to
 * `levels` per side) or a Trade. `localTs` is the receive time (defaults to the message's own
 * `ts`, as for files). Never throws, whatever `value` is.
 */
export function parseCanonical(value: unknown, levels: number, localTs?: EpochMs): CanonicalMessage | Rejected {
  const fast = isTrade(value) ? fastTrade(value, localTs) : fastSnapshot(value, levels, localTs);
  if (fast !== null) return fast.type === 'book_snapshot' ? snapshotOrRejected(fast, value) : fast;
  // The strict path walks the value recursively (zod): bound its depth first, whoever parsed it.
  if (nestsDeeperThan(value, MAX_JSON_DEPTH)) return rejected('too_deep', `(root): nested deeper than ${MAX_JSON_DEPTH} levels`, value, null);
  return isTrade(value) ? parseTradeStrictly(value, localTs) : parseSnapshotStrictly(value, levels, localTs);
}

function isTrade(value: unknown): boolean {
  return typeof value === 'object' && value !== null && (value as { type?: unknown }).type === 'trade';
}

function parseSnapshotStrictly(value: unknown, levels: number, localTs: EpochMs | undefined): BookSnapshot | Rejected {
  const parsed = canonicalSnapshotSchema.safeParse(value);
  if (!parsed.success) return rejected('schema', describeIssues(parsed.error), value, symbolOf(value));
  const { symbol, ts, seq, bids, asks } = parsed.data;
  const snapshot: BookSnapshot = { type: 'book_snapshot', symbol, ts, localTs: localTs ?? ts, seq, bids: flatten(bids, levels), asks: flatten(asks, levels) };
  return snapshotOrRejected(snapshot, value);
}

function parseTradeStrictly(value: unknown, localTs: EpochMs | undefined): Trade | Rejected {
  const parsed = canonicalTradeSchema.safeParse(value);
  if (!parsed.success) return rejected('schema', describeIssues(parsed.error), value, symbolOf(value));
  const { symbol, ts, price, size, side, id } = parsed.data;
  return { type: 'trade', symbol, ts, localTs: localTs ?? ts, price, size, aggressor: aggressorOf(side), tradeId: id === undefined ? undefined : String(id) };
}

function aggressorOf(side: unknown): Aggressor {
  return side === 'buy' ? 1 : side === 'sell' ? -1 : 0;
}

/** The last symbol that passed the pattern: a file or a stream repeats one symbol line after line. */
let lastValidSymbol = '';
function isValidSymbol(symbol: unknown): symbol is string {
  if (typeof symbol !== 'string') return false;
  if (symbol === lastValidSymbol) return true;
  if (!SYMBOL_PATTERN.test(symbol)) return false;
  lastValidSymbol = symbol;
  return true;
}

const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isEpochMs = (v: unknown): v is number => isFiniteNumber(v) && v >= 0 && v < MAX_EPOCH_MS;

/** The snapshot when `value` is a valid canonical snapshot; null sends it to the strict path. */
function fastSnapshot(value: unknown, levels: number, localTs: EpochMs | undefined): BookSnapshot | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const record = value as Record<string, unknown>;
  const { type, symbol, ts, seq, bids, asks } = record;
  if (type !== undefined && type !== 'book') return null;
  if (!isValidSymbol(symbol)) return null;
  if (!isEpochMs(ts)) return null;
  if (seq !== undefined && !(Number.isSafeInteger(seq) && (seq as number) >= 0)) return null;
  const flatBids = fastSide(bids, levels);
  if (flatBids === null) return null;
  const flatAsks = fastSide(asks, levels);
  if (flatAsks === null) return null;
  return { type: 'book_snapshot', symbol, ts, localTs: localTs ?? ts, seq: seq as number | undefined, bids: flatBids, asks: flatAsks };
}

function fastSide(side: unknown, levels: number): Float64Array | null {
  if (!Array.isArray(side) || side.length > MAX_SIDE_LEVELS) return null;
  const count = Math.min(side.length, Math.max(1, Math.floor(levels)));
  const flat = new Float64Array(2 * count);
  for (let i = 0; i < side.length; i++) {
    const level: unknown = side[i];
    if (!Array.isArray(level) || level.length !== 2) return null;
    const price: unknown = level[0];
    const size: unknown = level[1];
    if (!isFiniteNumber(price) || !isFiniteNumber(size) || !(size > 0)) return null;
    if (i < count) {
      flat[2 * i] = price;
      flat[2 * i + 1] = size;
    }
  }
  return flat;
}

function fastTrade(value: unknown, localTs: EpochMs | undefined): Trade | null {
  const { symbol, ts, price, size, side, id } = value as Record<string, unknown>;
  if (!isValidSymbol(symbol)) return null;
  if (!isEpochMs(ts) || !isFiniteNumber(price) || !isFiniteNumber(size) || !(size > 0)) return null;
  if (side !== undefined && side !== null && side !== 'buy' && side !== 'sell') return null;
  let tradeId: string | undefined;
  if (typeof id === 'string' && id.length >= 1 && id.length <= 64) tradeId = id;
  else if (Number.isSafeInteger(id) && (id as number) >= 0) tradeId = String(id);
  else if (id !== undefined) return null;
  return { type: 'trade', symbol, ts, localTs: localTs ?? ts, price, size, aggressor: aggressorOf(side), tradeId };
}

function flatten(levels: readonly (readonly [number, number])[], limit: number): Float64Array {
  const count = Math.min(levels.length, Math.max(1, Math.floor(limit)));
  const side = new Float64Array(2 * count);
  for (let i = 0; i < count; i++) {
    side[2 * i] = levels[i][0];
    side[2 * i + 1] = levels[i][1];
  }
  return side;
}

/** The symbol of a value that failed validation, when it names a valid one, so rejections are counted per symbol. */
function symbolOf(value: unknown): string | null {
  if (typeof value !== 'object' || value === null) return null;
  const symbol = (value as { symbol?: unknown }).symbol;
  return typeof symbol === 'string' && SYMBOL_PATTERN.test(symbol) ? symbol : null;
}

/** The inverse of `parseCanonical` for snapshots: one JSON object (one JSONL line), `seq` left out when unknown. */
export function toCanonicalJson(snapshot: BookSnapshot): string {
  const seq = snapshot.seq === undefined ? '' : `,"seq":${snapshot.seq}`;
  return `{"symbol":${JSON.stringify(snapshot.symbol)},"ts":${snapshot.ts}${seq},"bids":${levelsJson(snapshot.bids)},"asks":${levelsJson(snapshot.asks)}}`;
}

/** The inverse of `parseCanonical` for trades. */
export function toCanonicalTradeJson(trade: Trade): string {
  const side = trade.aggressor === 1 ? '"buy"' : trade.aggressor === -1 ? '"sell"' : 'null';
  const id = trade.tradeId === undefined ? '' : `,"id":${JSON.stringify(trade.tradeId)}`;
  return `{"type":"trade","symbol":${JSON.stringify(trade.symbol)},"ts":${trade.ts},"price":${trade.price},"size":${trade.size},"side":${side}${id}}`;
}

function levelsJson(side: Float64Array): string {
  let json = '[';
  for (let i = 0; i < side.length; i += 2) {
    if (i > 0) json += ',';
    json += `[${side[i]},${side[i + 1]}]`;
  }
  return `${json}]`;
}

interface SymbolOrdering {
  seq: number | undefined;
  ts: number;
  /** The last integer trade id accepted, or -1. */
  tradeId: number;
}

export interface CanonicalMapperOptions extends MapperOptions {
  /**
   * With a receive time, a message stamped more than this far ahead of it is implausible and
   * rejected (`implausible_ts`) instead of blocking its symbol's later input as out of order.
   */
  readonly maxClockSkewMs?: number;
  /** Messages one frame or body may carry (default 1000). */
  readonly maxBatch?: number;
}

/** The elements of one frame or body, or the one rejection that refuses it whole. */
export type CanonicalBatch = { readonly ok: true; readonly elements: readonly unknown[]; readonly single: boolean } | { readonly ok: false; readonly rejection: Rejected };

/**
 * Canonical messages in, checked ones out, keeping per symbol the last accepted `seq`, `ts`
 * and integer trade id, so that a replayed or reordered snapshot or trade is rejected as
 * `out_of_order`.
 */
export class CanonicalMapper implements FrameMapper {
  private readonly ordering = new Map<string, SymbolOrdering>();
  readonly maxBatch: number;
  private readonly maxClockSkewMs: number;

  constructor(private readonly options: CanonicalMapperOptions) {
    this.maxBatch = options.maxBatch ?? DEFAULT_MAX_BATCH;
    this.maxClockSkewMs = options.maxClockSkewMs ?? Number.POSITIVE_INFINITY;
  }

  /** Resumes ordering checks where a restored symbol stopped (its last accepted seq and ts). */
  remember(symbol: string, seq: number | undefined, ts: number): void {
    this.ordering.set(symbol, { seq, ts, tradeId: -1 });
  }

  /** A copy of one symbol's ordering state, for `restoreOrdering` when what it accepted could not be kept. */
  orderingOf(symbol: string): Readonly<SymbolOrdering> | undefined {
    const state = this.ordering.get(symbol);
    return state === undefined ? undefined : { ...state };
  }

  /** Puts back a state `orderingOf` returned (undefined: the symbol had none). */
  restoreOrdering(symbol: string, state: Readonly<SymbolOrdering> | undefined): void {
    if (state === undefined) this.ordering.delete(symbol);
    else this.ordering.set(symbol, { ...state });
  }

  /** Forgets one symbol's ordering: its next message is accepted whatever its seq and ts. */
  forget(symbol: string): void {
    this.ordering.delete(symbol);
  }

  /** One JSON frame: a message or a non-empty array of them, received at `localTs`. */
  map(frame: string, localTs: EpochMs): MarketMessage[] {
    const parsed = parseJsonBounded(frame, '(root)');
    if (!parsed.ok) return [rejected(parsed.reason, parsed.detail, frame, null)];
    return this.mapValue(parsed.value, localTs);
  }

  /** Already-parsed JSON (a push-ingest body); `localTs` undefined means "the message's own ts". */
  mapValue(value: unknown, localTs: EpochMs | undefined): MarketMessage[] {
    const batch = this.batchOf(value);
    if (!batch.ok) return [batch.rejection];
    const messages: MarketMessage[] = new Array(batch.elements.length);
    for (let i = 0; i < batch.elements.length; i++) messages[i] = this.acceptOne(batch.elements[i], localTs, batch.single ? undefined : i);
    return messages;
  }

  /** Splits a frame or body into its messages, refusing an empty or over-long array whole. */
  batchOf(value: unknown): CanonicalBatch {
    if (!Array.isArray(value)) return { ok: true, elements: [value], single: true };
    if (value.length === 0) {
      return { ok: false, rejection: rejected('schema', '(root): expected a message or a non-empty array of messages, got []', '[]', null) };
    }
    if (value.length > this.maxBatch) {
      return {
        ok: false,
        rejection: rejected('too_many', `(root): at most ${this.maxBatch} messages per frame or body, got ${value.length}`, `[… ${value.length} elements]`, null),
      };
    }
    return { ok: true, elements: value, single: false };
  }

  takeResyncRequests(): string[] {
    return [];
  }

  reset(): void {
    this.ordering.clear();
  }

  /** Validates and orders one message; `index` is its place in an array, for error paths. */
  acceptOne(value: unknown, localTs: EpochMs | undefined, index?: number): CanonicalMessage | Rejected {
    const message = this.validate(value, localTs, index);
    return message.type === 'rejected' ? message : this.order(message, value, index);
  }

  /**
   * A file line's snapshot read by the scanner (canonical-scan.ts), when the book is sound and
   * in order; null when it is not, and the line is then read the usual way, so a rejection
   * always names its fields as the usual path does (rejected snapshots change no state).
   */
  acceptScanned(snapshot: BookSnapshot): BookSnapshot | null {
    if (checkBook(snapshot.bids, snapshot.asks) !== null) return null;
    const ordered = this.orderSnapshot(snapshot, '', null);
    return ordered.type === 'rejected' ? null : ordered;
  }

  /** The checks that need no history: shape, book soundness, the receive clock's skew. */
  validate(value: unknown, localTs: EpochMs | undefined, index?: number): CanonicalMessage | Rejected {
    const result = parseCanonical(value, this.options.levels, localTs);
    if (result.type === 'rejected') {
      if (index === undefined) return result;
      return { ...result, detail: atElement(result, index) };
    }
    if (localTs !== undefined && result.ts > localTs + this.maxClockSkewMs) {
      return rejected(
        'implausible_ts',
        `${result.symbol}: ${index === undefined ? '' : `${index}.`}ts: ${result.ts} is ${Math.round(result.ts - localTs)} ms ahead of the receive clock (at most ${this.maxClockSkewMs} ms allowed)`,
        value,
        result.symbol,
      );
    }
    return result;
  }

  /**
   * The checks against the symbol's history (seq, ts and trade id must move forward); a message
   * that passes becomes that history. A caller that restores symbols on first sight does so
   * between `validate` and `order`, so the restored history is the one checked against.
   */
  order(message: CanonicalMessage, value: unknown, index?: number): CanonicalMessage | Rejected {
    const where = index === undefined ? '' : `${index}.`;
    return message.type === 'trade' ? this.orderTrade(message, where, value) : this.orderSnapshot(message, where, value);
  }

  private orderSnapshot(snapshot: BookSnapshot, where: string, value: unknown): BookSnapshot | Rejected {
    const previous = this.ordering.get(snapshot.symbol);
    if (!previous) {
      this.ordering.set(snapshot.symbol, { seq: snapshot.seq, ts: snapshot.ts, tradeId: -1 });
      return snapshot;
    }
    if (snapshot.seq !== undefined && previous.seq !== undefined && snapshot.seq <= previous.seq) {
      return outOfOrder(snapshot.symbol, `${where}seq: ${snapshot.seq} is not after the last accepted seq ${previous.seq}`, value);
    }
    if (snapshot.ts < previous.ts) return outOfOrder(snapshot.symbol, `${where}ts: ${snapshot.ts} is before the last accepted ts ${previous.ts}`, value);
    previous.ts = snapshot.ts;
    if (snapshot.seq !== undefined) previous.seq = snapshot.seq;
    return snapshot;
  }

  private orderTrade(trade: Trade, where: string, value: unknown): Trade | Rejected {
    const id = trade.tradeId !== undefined && /^\d{1,15}$/.test(trade.tradeId) ? Number(trade.tradeId) : -1;
    if (id < 0) return trade;
    let ordering = this.ordering.get(trade.symbol);
    if (!ordering) {
      ordering = { seq: undefined, ts: Number.NEGATIVE_INFINITY, tradeId: -1 };
      this.ordering.set(trade.symbol, ordering);
    }
    if (id <= ordering.tradeId) return outOfOrder(trade.symbol, `${where}id: trade ${id} is not after the last accepted trade ${ordering.tradeId}`, value);
    ordering.tradeId = id;
    return trade;
  }
}

/** In an array, schema paths start at the element (`bids.3.1` becomes `2.bids.3.1`); book problems say `element 2:`. */
function atElement(rejection: Rejected, index: number): string {
  if (rejection.reason !== 'schema') return `element ${index}: ${rejection.detail}`;
  return rejection.detail
    .split('; ')
    .map((issue) => (issue.startsWith('(root)') ? `${index}${issue.slice('(root)'.length)}` : `${index}.${issue}`))
    .join('; ');
}

function outOfOrder(symbol: string, detail: string, value: unknown): Rejected {
  return rejected('out_of_order', `${symbol}: ${detail}`, value, symbol);
}

/** Push source of canonical messages (`POST /v1/snapshots`, a websocket of JSON frames). */
export const canonical: Venue = {
  id: 'canonical',
  createMapper: (options) => new CanonicalMapper(options),
  live: null,
};

/**
 * Canonical JSONL, plain or gzip: one message (or array) per line, `localTs` = `ts`. A file is
 * read in bulk, so lines go straight to JSON.parse (iterative in V8, so depth cannot overflow
 * it); whatever the fast path does not accept has its depth bounded before the strict path.
 */
export const canonicalJsonl: FileFormat = {
  id: 'canonical',
  async *read(paths, options) {
    for await (const batch of readCanonicalBatches(paths, options)) yield* batch;
  },
  readBatches: (paths, options) => readCanonicalBatches(paths, options),
};

async function* readCanonicalBatches(paths: readonly string[], options: MapperOptions): AsyncGenerator<MarketMessage[]> {
  const mapper = new CanonicalMapper({ ...options, maxBatch: Number.MAX_SAFE_INTEGER });
  for (const path of paths) {
    for await (const { bytes, starts, ends } of readByteLineBatches(path)) {
      const messages: MarketMessage[] = [];
      for (let i = 0; i < starts.length; i++) {
        const scanned = scanCanonicalBytes(bytes, starts[i], ends[i], options.levels, undefined);
        if (scanned !== null) {
          const accepted = mapper.acceptScanned(scanned);
          if (accepted !== null) {
            messages.push(accepted);
            continue;
          }
        }
        // Not the writer's exact shape, or refused: decoded and read the usual way, which names the fields.
        const line = bytes.toString('utf8', starts[i], ends[i]);
        let value: unknown;
        try {
          value = JSON.parse(line);
        } catch (error) {
          messages.push(rejected('malformed_json', `${path}: not valid JSON (${(error as Error).message})`, line, null));
          continue;
        }
        if (Array.isArray(value)) messages.push(...mapper.mapValue(value, undefined));
        else messages.push(mapper.acceptOne(value, undefined));
      }
      yield messages;
    }
  }
}
