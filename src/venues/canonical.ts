// The canonical snapshot `{"symbol","ts","seq"?,"bids":[[p,s],...],"asks":[[p,s],...]}`:
// a push frame (one snapshot or an array of them), the body of `POST /v1/snapshots`, and
// one line of the canonical JSONL file format.
import { snapshotOrRejected } from '../domain/book-check.js';
import { canonicalSnapshotSchema, describeIssues } from '../domain/schemas.js';
import type { BookSnapshot, EpochMs, MarketMessage, Rejected } from '../domain/types.js';
import { rejected } from '../domain/types.js';
import { readLines } from './lines.js';
import type { FileFormat, FrameMapper, MapperOptions, Venue } from './types.js';

/**
 * Validates one canonical snapshot and turns it into a checked BookSnapshot, truncated to
 * `levels` per side. `localTs` is the receive time (defaults to the snapshot's own `ts`,
 * as for files). Never throws.
 */
export function parseCanonical(value: unknown, levels: number, localTs?: EpochMs): BookSnapshot | Rejected {
  const parsed = canonicalSnapshotSchema.safeParse(value);
  if (!parsed.success) {
    return rejected('schema', describeIssues(parsed.error), value, symbolOf(value));
  }
  const { symbol, ts, seq, bids, asks } = parsed.data;
  const snapshot: BookSnapshot = {
    type: 'book_snapshot',
    symbol,
    ts,
    localTs: localTs ?? ts,
    seq,
    bids: flatten(bids, levels),
    asks: flatten(asks, levels),
  };
  return snapshotOrRejected(snapshot, value);
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

/** The symbol of a value that failed validation, when it names one, so rejections are counted per symbol. */
function symbolOf(value: unknown): string | null {
  if (typeof value !== 'object' || value === null) return null;
  const symbol = (value as { symbol?: unknown }).symbol;
  return typeof symbol === 'string' && symbol.length > 0 && symbol.length <= 64 ? symbol : null;
}

/** The inverse of `parseCanonical`: one JSON object (one JSONL line), `seq` left out when unknown. */
export function toCanonicalJson(snapshot: BookSnapshot): string {
  const seq = snapshot.seq === undefined ? '' : `,"seq":${snapshot.seq}`;
  return `{"symbol":${JSON.stringify(snapshot.symbol)},"ts":${snapshot.ts}${seq},"bids":${levelsJson(snapshot.bids)},"asks":${levelsJson(snapshot.asks)}}`;
}

function levelsJson(side: Float64Array): string {
  let json = '[';
  for (let i = 0; i < side.length; i += 2) {
    if (i > 0) json += ',';
    json += `[${side[i]},${side[i + 1]}]`;
  }
  return `${json}]`;
}

interface LastAccepted {
  seq: number | undefined;
  ts: number;
}

/**
 * Canonical snapshots in, checked snapshots out, keeping per symbol the last accepted `seq`
 * and `ts` so that a replayed or reordered snapshot is rejected as `out_of_order`.
 */
export class CanonicalMapper implements FrameMapper {
  private readonly last = new Map<string, LastAccepted>();

  constructor(private readonly options: MapperOptions) {}

  /** Resumes ordering checks where a restored symbol stopped (its last accepted seq and ts). */
  remember(symbol: string, seq: number | undefined, ts: number): void {
    this.last.set(symbol, { seq, ts });
  }

  /** One JSON frame: a snapshot or a non-empty array of snapshots, received at `localTs`. */
  map(frame: string, localTs: EpochMs): MarketMessage[] {
    let value: unknown;
    try {
      value = JSON.parse(frame);
    } catch (error) {
      return [rejected('malformed_json', `(root): ${(error as Error).message}`, frame, null)];
    }
    return this.mapValue(value, localTs);
  }

  /** Already-parsed JSON (a push-ingest body); `localTs` undefined means "the snapshot's own ts". */
  mapValue(value: unknown, localTs: EpochMs | undefined): MarketMessage[] {
    if (!Array.isArray(value)) return [this.accept(value, localTs)];
    if (value.length === 0) {
      return [rejected('schema', '(root): expected a snapshot or a non-empty array of snapshots, got []', '[]', null)];
    }
    const messages: MarketMessage[] = new Array(value.length);
    for (let i = 0; i < value.length; i++) messages[i] = this.accept(value[i], localTs, i);
    return messages;
  }

  takeResyncRequests(): string[] {
    return [];
  }

  reset(): void {
    this.last.clear();
  }

  private accept(value: unknown, localTs: EpochMs | undefined, index?: number): BookSnapshot | Rejected {
    const result = parseCanonical(value, this.options.levels, localTs);
    if (result.type === 'rejected') {
      if (index === undefined) return result;
      return { ...result, detail: result.reason === 'schema' ? prefixPaths(result.detail, index) : `element ${index}: ${result.detail}` };
    }
    const where = index === undefined ? '' : `${index}.`;
    const previous = this.last.get(result.symbol);
    if (previous) {
      if (result.seq !== undefined && previous.seq !== undefined && result.seq <= previous.seq) {
        return outOfOrder(result, `${where}seq: ${result.seq} is not after the last accepted seq ${previous.seq}`, value);
      }
      if (result.ts < previous.ts) {
        return outOfOrder(result, `${where}ts: ${result.ts} is before the last accepted ts ${previous.ts}`, value);
      }
      previous.ts = result.ts;
      if (result.seq !== undefined) previous.seq = result.seq;
    } else {
      this.last.set(result.symbol, { seq: result.seq, ts: result.ts });
    }
    return result;
  }
}

/** In an array, issue paths start at the element: `bids.3.1` becomes `2.bids.3.1`. */
function prefixPaths(detail: string, index: number): string {
  return detail
    .split('; ')
    .map((issue) => (issue.startsWith('(root)') ? `${index}${issue.slice('(root)'.length)}` : `${index}.${issue}`))
    .join('; ');
}

function outOfOrder(snapshot: BookSnapshot, detail: string, value: unknown): Rejected {
  return rejected('out_of_order', `${snapshot.symbol}: ${detail}`, value, snapshot.symbol);
}

/** Push source of canonical snapshots (`POST /v1/snapshots`, a websocket of JSON frames). */
export const canonical: Venue = {
  id: 'canonical',
  createMapper: (options) => new CanonicalMapper(options),
  live: null,
};

/** Canonical JSONL, plain or gzip: one snapshot per line, `localTs` = `ts`. */
export const canonicalJsonl: FileFormat = {
  id: 'canonical',
  async *read(paths, options) {
    const mapper = new CanonicalMapper(options);
    for (const path of paths) {
      for await (const line of readLines(path)) {
        let value: unknown;
        try {
          value = JSON.parse(line);
        } catch (error) {
          yield rejected('malformed_json', `${path}: ${(error as Error).message}`, line, null);
          continue;
        }
        yield* mapper.mapValue(value, undefined);
      }
    }
  },
};
