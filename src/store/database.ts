// Opens the SQLite file that holds checkpoints and the prediction log, with the pragmas
// that make a reported save durable, and brings its schema up to date.
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { applyMigrations, assertSchemaCurrent, type StoreLogger } from './migrations.js';

export type { StoreLogger } from './migrations.js';

export interface OpenDatabaseOptions {
  /** Opens an existing file without writing to it; its schema must already be current. */
  readonly readonly?: boolean;
  readonly logger?: StoreLogger;
  /** Defaults to the repo's top-level migrations/ folder. */
  readonly migrationsDir?: string;
  /** How long a statement waits for another process's write lock before SQLITE_BUSY. */
  readonly busyTimeoutMs?: number;
  /**
   * Largest size the database file may grow to, in bytes (0 or absent: no bound). Writes past
   * it fail as SQLITE_FULL, exactly as on a full disk, and the service handles them the same.
   */
  readonly maxBytes?: number;
}

/** Why a database could not be opened, naming the file. */
export class DatabaseOpenError extends Error {
  override readonly name = 'DatabaseOpenError';
}

/** What kind of failure a SQLite error is, for readiness and for what to try next. */
export type StoreFailureKind = 'full' | 'readonly' | 'corrupt' | 'io' | 'busy' | 'other';

export function storeFailureKind(error: unknown): StoreFailureKind {
  const code = typeof error === 'object' && error !== null ? String((error as { code?: unknown }).code ?? '') : '';
  if (code === 'SQLITE_FULL') return 'full';
  if (code.startsWith('SQLITE_READONLY') || code === 'SQLITE_PERM' || code === 'SQLITE_AUTH') return 'readonly';
  if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') return 'corrupt';
  if (code.startsWith('SQLITE_IOERR') || code.startsWith('SQLITE_CANTOPEN')) return 'io';
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return 'busy';
  return 'other';
}

/**
 * Per-connection settings for every writer; exported so the crash test's child process
 * writes with exactly these.
 *
 * WAL lets the HTTP side read checkpoints while the engine writes one. synchronous=FULL
 * because a checkpoint reported saved must survive kill -9 and power loss: in WAL mode
 * NORMAL skips the fsync at each commit, which is still safe against a killed process but
 * can lose the last transactions when the machine loses power. A checkpoint every few
 * minutes makes the extra fsync cost nothing that matters.
 */
export const WRITER_PRAGMAS: readonly string[] = ['journal_mode = WAL', 'synchronous = FULL', 'foreign_keys = ON'];

const DEFAULT_BUSY_TIMEOUT_MS = 5_000;

export function openDatabase(path: string, options: OpenDatabaseOptions = {}): Database.Database {
  const inMemory = path === ':memory:' || path === '';
  const timeout = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
  const migrationOptions = { migrationsDir: options.migrationsDir, logger: options.logger };

  if (options.readonly) {
    if (inMemory) throw new Error('openDatabase: a read-only in-memory database would always be empty');
    refuseEmptyFile(path);
    let db: Database.Database;
    try {
      db = new Database(path, { readonly: true, fileMustExist: true, timeout });
    } catch (error) {
      throw new DatabaseOpenError(`database ${path}: ${(error as Error).message}`);
    }
    try {
      db.pragma('foreign_keys = ON');
      assertSchemaCurrent(db, migrationOptions);
    } catch (error) {
      db.close();
      throw error;
    }
    return db;
  }

  if (!inMemory) {
    refuseEmptyFile(path);
    try {
      mkdirSync(dirname(path), { recursive: true });
    } catch (error) {
      throw new DatabaseOpenError(`database ${path}: cannot create its folder ${dirname(path)}: ${(error as Error).message}`);
    }
  }
  let db: Database.Database;
  try {
    db = new Database(path, { timeout });
  } catch (error) {
    throw new DatabaseOpenError(`database ${path}: ${(error as Error).message}`);
  }
  try {
    for (const pragma of WRITER_PRAGMAS) db.pragma(pragma);
    if (options.maxBytes) {
      const pageSize = Number(db.pragma('page_size', { simple: true }));
      db.pragma(`max_page_count = ${Math.max(1, Math.floor(options.maxBytes / pageSize))}`);
    }
    applyMigrations(db, migrationOptions);
  } catch (error) {
    db.close();
    if (error instanceof Error && !error.message.includes(path) && storeFailureKind(error) !== 'other') {
      throw new DatabaseOpenError(`database ${path}: ${error.message}`);
    }
    throw error;
  }
  return db;
}

/**
 * SQLite takes a 0-byte file for a new, empty database. Here that is almost always a file
 * truncated or copied wrongly, and starting fresh on it would hide the loss of every checkpoint.
 */
function refuseEmptyFile(path: string): void {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    return; // absent: a new database is created
  }
  const wal = `${path}-wal`;
  if (size === 0 && !(existsSync(wal) && statSync(wal).size > 0)) {
    throw new DatabaseOpenError(`database ${path} is an empty file (0 bytes), so it holds no checkpoints; if that is expected, delete it and start again`);
  }
}
