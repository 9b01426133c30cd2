// Checkpoint repository: per-stream learner state as opaque, checksummed blobs, keeping the
// newest K per stream, plus the optional prediction log. Statements are prepared once.
//
// A stream is named by its id, `venue:symbol` (src/domain/stream.ts), and stored as the two
// columns. A name without a venue part is a stream of venue '': rows written before streams had
// venues (migration 002), which the first stream of their symbol takes over (`claimLegacy`).
import { createHash } from 'node:crypto';
import type { Database, Statement } from 'better-sqlite3';
import { z } from 'zod';
import { splitStreamId, streamIdOf, venueSchema } from '../domain/stream.js';

export interface CheckpointMeta {
  readonly id: number;
  /** The stream's venue; '' for a checkpoint written before streams had venues. */
  readonly venue: string;
  /** The venue's symbol. */
  readonly symbol: string;
  /** Epoch ms supplied by the caller when saving. */
  readonly createdAt: number;
  readonly tickCount: number;
  readonly configHash: string;
  /** sha256 hex of the payload. */
  readonly checksum: string;
  readonly sizeBytes: number;
  /** 'interval', 'shutdown', 'manual', 'replay-end', 'import'... */
  readonly reason: string | null;
}

export interface StoredCheckpoint {
  readonly meta: CheckpointMeta;
  readonly payload: Uint8Array;
}

export interface SaveCheckpointInput {
  /** The stream id (`venue:symbol`). */
  readonly symbol: string;
  readonly tickCount: number;
  readonly configHash: string;
  /** Engine state bytes; never interpreted here. */
  readonly payload: Uint8Array;
  readonly reason?: string | null;
  /** Epoch ms; the caller's clock (the data's time in replay). */
  readonly now: number;
}

export type CheckpointSkipReason = 'checksum_mismatch' | 'config_mismatch' | 'does_not_decode';

export interface LoadNewestValidResult {
  /** The newest checkpoint whose payload verifies and whose config matches; null when none does. */
  readonly checkpoint: StoredCheckpoint | null;
  /** Newer checkpoints passed over on the way, newest first. */
  readonly skipped: ReadonlyArray<{ readonly id: number; readonly reason: CheckpointSkipReason }>;
}

export interface CheckpointRepositoryOptions {
  /** How many checkpoints to keep per symbol; older ones are deleted in the saving transaction. */
  readonly keepPerSymbol?: number;
}

const sha256Hex = /^[0-9a-f]{64}$/;

/** One checkpoint in an export file; `id` is informational, import assigns new ids. */
export const checkpointRecordSchema = z.object({
  id: z.number().int().optional(),
  /** Absent in files exported before streams had venues: such a record is taken over like any pre-venue row. */
  venue: z.union([z.literal(''), venueSchema]).default(''),
  symbol: z.string().min(1).max(64),
  createdAt: z.number().refine(Number.isFinite, { message: 'must be a finite number' }),
  tickCount: z.number().int().nonnegative(),
  configHash: z.string().min(1),
  checksum: z.string().regex(sha256Hex, { message: 'must be 64 lowercase hex digits (sha256)' }),
  sizeBytes: z.number().int().nonnegative(),
  reason: z.string().nullable(),
  payloadBase64: z.base64(),
});

export type CheckpointRecord = z.infer<typeof checkpointRecordSchema>;

export interface ImportResult {
  /** Metadata of the inserted checkpoints under their new ids, oldest first. */
  readonly imported: readonly CheckpointMeta[];
  /** Checkpoints (imported or existing) deleted afterwards to keep the newest K per symbol. */
  readonly prunedCount: number;
}

/** An import was refused as a whole; `message` names each bad record and field. */
export class CheckpointImportError extends Error {
  override readonly name = 'CheckpointImportError';
  constructor(readonly problems: readonly string[]) {
    super(`checkpoint import rejected: ${problems.slice(0, 10).join('; ')}${problems.length > 10 ? `; and ${problems.length - 10} more` : ''}`);
  }
}

export interface PredictionRow {
  /** The stream id (`venue:symbol`). */
  readonly symbol: string;
  /** Venue time of the snapshot the prediction was made on, epoch ms. */
  readonly ts: number;
  readonly seq: number | null;
  readonly model: string;
  readonly probs: ArrayLike<number>;
  /** Epoch ms from the caller's clock; retention prunes on it. */
  readonly createdAt: number;
}

export interface StoredPrediction {
  readonly id: number;
  readonly venue: string;
  readonly symbol: string;
  readonly ts: number;
  readonly seq: number | null;
  readonly model: string;
  readonly probs: number[];
  readonly createdAt: number;
}

/**
 * The write path's SQL, exported so the crash-safety test's child process (plain node, no
 * TypeScript) commits checkpoints with exactly the statements `save` uses.
 */
export const CHECKPOINT_WRITE_SQL = {
  insert: `INSERT INTO checkpoints (venue, symbol, created_at, tick_count, config_hash, checksum, payload, size_bytes, reason)
           VALUES (@venue, @symbol, @createdAt, @tickCount, @configHash, @checksum, @payload, @sizeBytes, @reason)`,
  // Deletes everything older than the K-th newest; when fewer than K exist the subquery is
  // NULL and nothing matches.
  prune: `DELETE FROM checkpoints WHERE venue = @venue AND symbol = @symbol AND id <
            (SELECT id FROM checkpoints WHERE venue = @venue AND symbol = @symbol ORDER BY id DESC LIMIT 1 OFFSET @offset)`,
} as const;

const META_COLUMNS = `id, venue, symbol, created_at AS createdAt, tick_count AS tickCount, config_hash AS configHash,
  checksum, size_bytes AS sizeBytes, reason`;

interface InsertParams {
  venue: string;
  symbol: string;
  createdAt: number;
  tickCount: number;
  configHash: string;
  checksum: string;
  payload: Buffer;
  sizeBytes: number;
  reason: string | null;
}

interface PredictionDbRow {
  id: number;
  venue: string;
  symbol: string;
  ts: number;
  seq: number | null;
  model: string;
  probs: string;
  createdAt: number;
}

export function checksumOf(payload: Uint8Array): string {
  return createHash('sha256').update(payload).digest('hex');
}

export class CheckpointRepository {
  readonly keepPerSymbol: number;
  private readonly insertCheckpoint: Statement<[InsertParams]>;
  private readonly pruneSymbol: Statement<[{ venue: string; symbol: string; offset: number }]>;
  private readonly selectMetaBySymbol: Statement<[string, string], CheckpointMeta>;
  private readonly selectMetaById: Statement<[number], CheckpointMeta>;
  private readonly selectPayloadById: Statement<[number], Buffer>;
  private readonly selectAllMeta: Statement<[], CheckpointMeta>;
  private readonly selectStreams: Statement<[], { venue: string; symbol: string }>;
  private readonly deleteSymbol: Statement<[string, string]>;
  private readonly claimLegacyRows: Statement<[string, string]>;
  private readonly claimLegacyPredictions: Statement<[string, string]>;
  private readonly countStream: Statement<[string, string], number>;
  private readonly insertPrediction: Statement<[string, string, number, number | null, string, string, number]>;
  private readonly selectPredictionRange: Statement<[string, string, number, number, number], PredictionDbRow>;
  private readonly deletePredictionsBefore: Statement<[number]>;
  private readonly saveTransaction: (params: InsertParams) => CheckpointMeta;
  private readonly importTransaction: (params: readonly InsertParams[]) => ImportResult;
  private readonly insertPredictionsTransaction: (rows: readonly PredictionRow[]) => number;
  private readonly claimTransaction: (venue: string, symbol: string) => number;

  constructor(db: Database, options: CheckpointRepositoryOptions = {}) {
    const keep = options.keepPerSymbol ?? 5;
    if (!Number.isInteger(keep) || keep < 1) throw new RangeError(`keepPerSymbol must be an integer >= 1, got ${keep}`);
    this.keepPerSymbol = keep;

    this.insertCheckpoint = db.prepare(CHECKPOINT_WRITE_SQL.insert);
    this.pruneSymbol = db.prepare(CHECKPOINT_WRITE_SQL.prune);
    this.selectMetaBySymbol = db.prepare(`SELECT ${META_COLUMNS} FROM checkpoints WHERE venue = ? AND symbol = ? ORDER BY id DESC`);
    this.selectMetaById = db.prepare(`SELECT ${META_COLUMNS} FROM checkpoints WHERE id = ?`);
    this.selectPayloadById = db.prepare<[number], Buffer>('SELECT payload FROM checkpoints WHERE id = ?').pluck();
    this.selectAllMeta = db.prepare(`SELECT ${META_COLUMNS} FROM checkpoints ORDER BY id`);
    this.selectStreams = db.prepare<[], { venue: string; symbol: string }>('SELECT DISTINCT venue, symbol FROM checkpoints ORDER BY venue, symbol');
    this.deleteSymbol = db.prepare('DELETE FROM checkpoints WHERE venue = ? AND symbol = ?');
    this.claimLegacyRows = db.prepare("UPDATE checkpoints SET venue = ? WHERE venue = '' AND symbol = ?");
    this.claimLegacyPredictions = db.prepare("UPDATE predictions SET venue = ? WHERE venue = '' AND symbol = ?");
    this.countStream = db.prepare<[string, string], number>('SELECT count(*) FROM checkpoints WHERE venue = ? AND symbol = ?').pluck();
    this.insertPrediction = db.prepare('INSERT INTO predictions (venue, symbol, ts, seq, model, probs, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)');
    this.selectPredictionRange = db.prepare(
      `SELECT id, venue, symbol, ts, seq, model, probs, created_at AS createdAt FROM predictions
       WHERE venue = ? AND symbol = ? AND ts >= ? AND ts < ? ORDER BY ts, id LIMIT ?`,
    );
    const claim = db.transaction((venue: string, symbol: string): number => {
      if (this.countStream.get(venue, symbol)! > 0) return 0;
      this.claimLegacyPredictions.run(venue, symbol);
      return this.claimLegacyRows.run(venue, symbol).changes;
    });
    this.claimTransaction = (venue, symbol) => claim.immediate(venue, symbol);
    this.deletePredictionsBefore = db.prepare('DELETE FROM predictions WHERE created_at < ?');

    // IMMEDIATE takes the write lock up front, so a concurrent writer waits on busy_timeout
    // instead of failing halfway through with SQLITE_BUSY on lock upgrade.
    const save = db.transaction((params: InsertParams): CheckpointMeta => {
      const id = Number(this.insertCheckpoint.run(params).lastInsertRowid);
      this.pruneSymbol.run({ venue: params.venue, symbol: params.symbol, offset: this.keepPerSymbol - 1 });
      return metaOf(id, params);
    });
    this.saveTransaction = (params) => save.immediate(params);

    const importAll = db.transaction((rows: readonly InsertParams[]): ImportResult => {
      const imported: CheckpointMeta[] = [];
      const streams = new Map<string, { venue: string; symbol: string }>();
      for (const params of rows) {
        imported.push(metaOf(Number(this.insertCheckpoint.run(params).lastInsertRowid), params));
        streams.set(streamIdOf(params.venue, params.symbol), { venue: params.venue, symbol: params.symbol });
      }
      let prunedCount = 0;
      for (const { venue, symbol } of streams.values()) prunedCount += this.pruneSymbol.run({ venue, symbol, offset: this.keepPerSymbol - 1 }).changes;
      return { imported, prunedCount };
    });
    this.importTransaction = (rows) => importAll.immediate(rows);

    const insertPredictions = db.transaction((rows: readonly PredictionRow[]): number => {
      for (const row of rows) {
        const { venue, symbol } = splitStreamId(row.symbol);
        this.insertPrediction.run(venue, symbol, row.ts, row.seq, row.model, JSON.stringify(Array.from(row.probs)), row.createdAt);
      }
      return rows.length;
    });
    this.insertPredictionsTransaction = (rows) => insertPredictions.immediate(rows);
  }

  /**
   * Inserts the checkpoint and prunes the symbol to the newest K in one transaction; the
   * returned metadata exists only once that transaction has committed.
   */
  save(input: SaveCheckpointInput): CheckpointMeta {
    const payload = asBuffer(input.payload);
    const { venue, symbol } = splitStreamId(input.symbol);
    return this.saveTransaction({
      venue,
      symbol,
      createdAt: input.now,
      tickCount: input.tickCount,
      configHash: input.configHash,
      checksum: checksumOf(payload),
      payload,
      sizeBytes: payload.byteLength,
      reason: input.reason ?? null,
    });
  }

  /** The stream's checkpoints, newest first, without payloads. */
  list(stream: string): CheckpointMeta[] {
    const { venue, symbol } = splitStreamId(stream);
    return this.selectMetaBySymbol.all(venue, symbol);
  }

  /** Every stream with checkpoints, by id; pre-venue rows under their bare symbol. */
  listSymbols(): string[] {
    return this.selectStreams.all().map(({ venue, symbol }) => streamIdOf(venue, symbol));
  }

  /** Every stream with checkpoints that has a venue (pre-venue rows wait to be claimed by a stream of their symbol). */
  listStreams(): string[] {
    return this.selectStreams
      .all()
      .filter(({ venue }) => venue !== '')
      .map(({ venue, symbol }) => streamIdOf(venue, symbol));
  }

  /**
   * The stream `venue:symbol` takes over the checkpoints and logged predictions written for
   * `symbol` before streams had venues, unless it has checkpoints of its own. Returns how many
   * checkpoints it took (0 for a stream without venue, or when there were none).
   */
  claimLegacy(stream: string): number {
    const { venue, symbol } = splitStreamId(stream);
    return venue === '' ? 0 : this.claimTransaction(venue, symbol);
  }

  get(id: number): StoredCheckpoint | null {
    const meta = this.selectMetaById.get(id);
    if (!meta) return null;
    const payload = this.selectPayloadById.get(id);
    return payload ? { meta, payload } : null;
  }

  /**
   * Walks the symbol's checkpoints newest to oldest and returns the first whose config hash
   * matches and whose payload still hashes to the stored checksum. Payloads of
   * config-mismatched checkpoints are never read.
   */
  loadNewestValid(symbol: string, configHash: string): LoadNewestValidResult {
    const skipped: Array<{ id: number; reason: CheckpointSkipReason }> = [];
    for (const candidate of this.newestFirst(symbol, configHash)) {
      if ('checkpoint' in candidate) return { checkpoint: candidate.checkpoint, skipped };
      skipped.push(candidate.skipped);
    }
    return { checkpoint: null, skipped };
  }

  /**
   * The symbol's checkpoints newest to oldest, each either verified (config hash matches and
   * the payload hashes to its checksum) or skipped with the reason. Lazy: a caller that takes
   * the first one that decodes never reads the older payloads.
   */
  *newestFirst(
    symbol: string,
    configHash: string,
  ): Generator<{ readonly checkpoint: StoredCheckpoint } | { readonly skipped: { readonly id: number; readonly reason: CheckpointSkipReason } }> {
    this.claimLegacy(symbol);
    const stream = splitStreamId(symbol);
    for (const meta of this.selectMetaBySymbol.all(stream.venue, stream.symbol)) {
      if (meta.configHash !== configHash) {
        yield { skipped: { id: meta.id, reason: 'config_mismatch' } };
        continue;
      }
      const payload = this.selectPayloadById.get(meta.id);
      if (!payload || checksumOf(payload) !== meta.checksum) {
        yield { skipped: { id: meta.id, reason: 'checksum_mismatch' } };
        continue;
      }
      yield { checkpoint: { meta, payload } };
    }
  }

  /** Records oldest first, payloads as base64; every symbol when `symbol` is omitted. */
  export(symbol?: string): CheckpointRecord[] {
    const metas = symbol === undefined ? this.selectAllMeta.all() : this.list(symbol).reverse();
    const records: CheckpointRecord[] = [];
    for (const meta of metas) {
      const payload = this.selectPayloadById.get(meta.id);
      if (payload) records.push({ ...meta, payloadBase64: payload.toString('base64') });
    }
    return records;
  }

  /**
   * Validates every record (shape, payload size, sha256) before writing any; one bad record
   * refuses the whole file with a CheckpointImportError naming each bad field. Records are
   * inserted oldest first by (createdAt, id), so the newest imported one is restored first;
   * the symbol is then pruned to the newest K as a save would.
   */
  import(records: unknown): ImportResult {
    const parsed = z.array(checkpointRecordSchema).safeParse(records);
    if (!parsed.success) {
      throw new CheckpointImportError(parsed.error.issues.map((issue) => `${recordPath(issue.path)}: ${issue.message}`));
    }
    const problems: string[] = [];
    const rows: Array<{ order: number; id: number; params: InsertParams }> = [];
    parsed.data.forEach((record, index) => {
      const payload = Buffer.from(record.payloadBase64, 'base64');
      if (payload.byteLength !== record.sizeBytes) {
        problems.push(`records[${index}].sizeBytes: payload decodes to ${payload.byteLength} bytes, record says ${record.sizeBytes}`);
        return;
      }
      const checksum = checksumOf(payload);
      if (checksum !== record.checksum) {
        problems.push(`records[${index}].checksum: payload hashes to ${checksum}, record says ${record.checksum}`);
        return;
      }
      rows.push({
        order: record.createdAt,
        id: record.id ?? index,
        params: {
          venue: record.venue,
          symbol: record.symbol,
          createdAt: record.createdAt,
          tickCount: record.tickCount,
          configHash: record.configHash,
          checksum,
          payload,
          sizeBytes: payload.byteLength,
          reason: record.reason,
        },
      });
    });
    if (problems.length) throw new CheckpointImportError(problems);
    rows.sort((a, b) => a.order - b.order || a.id - b.id);
    return this.importTransaction(rows.map((row) => row.params));
  }

  /** Deletes all but the newest `keep` checkpoints of `symbol` (making room on a full disk); returns how many went. */
  keepNewest(symbol: string, keep: number): number {
    if (!(Number.isInteger(keep) && keep >= 1)) throw new RangeError(`keep must be an integer >= 1, got ${keep}`);
    return this.pruneSymbol.run({ ...splitStreamId(symbol), offset: keep - 1 }).changes;
  }

  /** Deletes every checkpoint of the stream; returns how many. */
  deleteAll(stream: string): number {
    const { venue, symbol } = splitStreamId(stream);
    return this.deleteSymbol.run(venue, symbol).changes;
  }

  /** Appends prediction rows in one transaction; returns how many. */
  insertPredictions(rows: readonly PredictionRow[]): number {
    return rows.length ? this.insertPredictionsTransaction(rows) : 0;
  }

  /** Predictions of `symbol` with fromTs <= ts < toTs, in time order, at most `limit`. */
  predictionsInRange(symbol: string, fromTs: number, toTs: number, limit = 10_000): StoredPrediction[] {
    const stream = splitStreamId(symbol);
    return this.selectPredictionRange.all(stream.venue, stream.symbol, fromTs, toTs, limit).map((row) => ({
      ...row,
      probs: JSON.parse(row.probs) as number[],
    }));
  }

  /** Retention: deletes predictions created before `createdBefore` (epoch ms); returns how many. */
  prunePredictionsOlderThan(createdBefore: number): number {
    return this.deletePredictionsBefore.run(createdBefore).changes;
  }
}

function metaOf(id: number, params: InsertParams): CheckpointMeta {
  return {
    id,
    venue: params.venue,
    symbol: params.symbol,
    createdAt: params.createdAt,
    tickCount: params.tickCount,
    configHash: params.configHash,
    checksum: params.checksum,
    sizeBytes: params.sizeBytes,
    reason: params.reason,
  };
}

/** Views the bytes as a Buffer without copying; better-sqlite3 binds Buffers as BLOBs. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function recordPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return 'records';
  const [index, ...rest] = path;
  return `records[${String(index)}]${rest.length ? `.${rest.map(String).join('.')}` : ''}`;
}
