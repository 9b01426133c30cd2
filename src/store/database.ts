// Opens the SQLite file that holds checkpoints and the prediction log, with the pragmas
// that make a reported save durable, and brings its schema up to date.
import { mkdirSync } from 'node:fs';
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
    const db = new Database(path, { readonly: true, fileMustExist: true, timeout });
    try {
      db.pragma('foreign_keys = ON');
      assertSchemaCurrent(db, migrationOptions);
    } catch (error) {
      db.close();
      throw error;
    }
    return db;
  }

  if (!inMemory) mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path, { timeout });
  try {
    for (const pragma of WRITER_PRAGMAS) db.pragma(pragma);
    applyMigrations(db, migrationOptions);
  } catch (error) {
    db.close();
    throw error;
  }
  return db;
}
