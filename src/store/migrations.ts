// Schema migrations: plain numbered SQL files in the repo's top-level migrations/ folder,
// applied in order at start, each in its own transaction, recorded in schema_migrations.
import { packageRoot } from '../domain/package-root.js';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Database } from 'better-sqlite3';

export interface MigrationFile {
  readonly version: number;
  readonly name: string;
  readonly path: string;
  readonly sql: string;
}

/** The subset of a pino logger the store uses; pino's `Logger` satisfies it. */
export interface StoreLogger {
  info(obj: object, msg?: string): void;
}

export interface MigrationOptions {
  /** Defaults to `<repo root>/migrations`, the repo root being the nearest folder with package.json. */
  readonly migrationsDir?: string;
  readonly logger?: StoreLogger;
}

export interface MigrationResult {
  /** Versions applied by this call, in order; empty when the schema was already current. */
  readonly applied: readonly number[];
  readonly version: number;
}

/** The schema cannot be brought to (or does not match) what this code expects. */
export class MigrationError extends Error {
  override readonly name = 'MigrationError';
}

const FILE_PATTERN = /^(\d+)_([A-Za-z0-9][A-Za-z0-9_-]*)\.sql$/;

/**
 * Walks up from this module to the folder holding package.json, so the same lookup works
 * from src/store under vitest and from dist/src/store after the build.
 */
export function defaultMigrationsDir(): string {
  return join(packageRoot(), 'migrations');
}

/**
 * Reads and orders the migration files. Numbers must run 1, 2, 3... without gaps or
 * duplicates: a missing or doubled step means the folder was assembled wrongly, and
 * applying around it would leave databases with different schemas at the same version.
 */
export function readMigrationFiles(migrationsDir: string): MigrationFile[] {
  const dir = resolve(migrationsDir);
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (error) {
    throw new MigrationError(`cannot read migrations folder ${dir}: ${(error as Error).message}`);
  }
  const files: MigrationFile[] = [];
  for (const entry of entries) {
    if (!entry.endsWith('.sql')) continue;
    const match = FILE_PATTERN.exec(entry);
    if (!match) throw new MigrationError(`migration file name ${entry} in ${dir} is not NNN_name.sql`);
    const path = join(dir, entry);
    files.push({ version: Number(match[1]), name: match[2], path, sql: readFileSync(path, 'utf8') });
  }
  files.sort((a, b) => a.version - b.version || a.name.localeCompare(b.name));
  if (files.length === 0) throw new MigrationError(`no migration files (NNN_name.sql) in ${dir}`);
  for (let index = 0; index < files.length; index++) {
    const file = files[index];
    const expected = index + 1;
    if (file.version === expected) continue;
    if (index > 0 && file.version === files[index - 1].version) {
      throw new MigrationError(`duplicate migration version ${file.version} in ${dir}: ${basename(files[index - 1])} and ${basename(file)}`);
    }
    throw new MigrationError(`migration versions in ${dir} have a gap: expected ${expected}, found ${basename(file)}`);
  }
  return files;
}

function basename(file: MigrationFile): string {
  return `${String(file.version).padStart(3, '0')}_${file.name}.sql`;
}

interface AppliedRow {
  readonly version: number;
  readonly name: string;
}

/**
 * Brings the schema up to the newest file. Each step runs in an IMMEDIATE transaction that
 * re-reads the applied set first, so two processes starting on the same file at once apply
 * every step exactly once.
 */
export function applyMigrations(db: Database, options: MigrationOptions = {}): MigrationResult {
  const files = readMigrationFiles(options.migrationsDir ?? defaultMigrationsDir());
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
  )`);
  const selectApplied = db.prepare<[], AppliedRow>('SELECT version, name FROM schema_migrations ORDER BY version');
  const insertApplied = db.prepare<[number, string]>(
    // Bookkeeping, not domain data: SQLite's clock is fine here.
    `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))`,
  );

  checkAppliedAgainstFiles(selectApplied.all(), files, db.name);
  const applied: number[] = [];
  for (const file of files) {
    const ran = db
      .transaction(() => {
        if (selectApplied.all().some((row) => row.version === file.version)) return false;
        db.exec(file.sql);
        insertApplied.run(file.version, file.name);
        return true;
      })
      .immediate();
    if (ran) {
      applied.push(file.version);
      options.logger?.info({ version: file.version, name: file.name, database: db.name }, 'store: applied migration');
    }
  }
  return { applied, version: files[files.length - 1].version };
}

/**
 * For read-only handles: the schema must already be exactly what the code expects, since
 * nothing can be applied.
 */
export function assertSchemaCurrent(db: Database, options: MigrationOptions = {}): number {
  const files = readMigrationFiles(options.migrationsDir ?? defaultMigrationsDir());
  const hasTable = db.prepare<[], { n: number }>(`SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`).get();
  const rows = hasTable && hasTable.n > 0 ? db.prepare<[], AppliedRow>('SELECT version, name FROM schema_migrations ORDER BY version').all() : [];
  checkAppliedAgainstFiles(rows, files, db.name);
  const newest = files[files.length - 1].version;
  const current = rows.length ? rows[rows.length - 1].version : 0;
  if (current < newest) {
    throw new MigrationError(`database ${db.name} is at schema version ${current} but the code needs ${newest}; open it read-write once to migrate`);
  }
  return current;
}

function checkAppliedAgainstFiles(rows: readonly AppliedRow[], files: readonly MigrationFile[], databaseName: string): void {
  const newestFile = files[files.length - 1];
  const newestApplied = rows.length ? rows[rows.length - 1].version : 0;
  if (newestApplied > newestFile.version) {
    throw new MigrationError(
      `database ${databaseName} has schema version ${newestApplied}, newer than this code's newest migration ${newestFile.version}; run a newer lob-rtrl or use another database`,
    );
  }
  for (const row of rows) {
    const file = files[row.version - 1];
    if (!file) throw new MigrationError(`database ${databaseName} recorded an unknown migration version ${row.version}`);
    if (file.name !== row.name) {
      throw new MigrationError(`database ${databaseName} recorded migration ${row.version} as '${row.name}' but the file is ${basename(file)}`);
    }
  }
}
