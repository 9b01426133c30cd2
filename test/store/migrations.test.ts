import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/store/database.js';
import { defaultMigrationsDir, MigrationError, readMigrationFiles } from '../../src/store/migrations.js';

let workDir: string;
let migrationsDir: string;

beforeEach(() => {
  workDir = mkdtempSync(join(tmpdir(), 'lob-rtrl-migrations-'));
  migrationsDir = join(workDir, 'migrations');
  mkdirSync(migrationsDir);
});

afterEach(() => {
  rmSync(workDir, { recursive: true, force: true });
});

function writeMigration(fileName: string, sql: string): void {
  writeFileSync(join(migrationsDir, fileName), sql);
}

function appliedVersions(path: string): Array<{ version: number; name: string }> {
  const db = openDatabase(path, { migrationsDir });
  try {
    return db.prepare('SELECT version, name FROM schema_migrations ORDER BY version').all() as Array<{ version: number; name: string }>;
  } finally {
    db.close();
  }
}

describe('the repo migrations', () => {
  it('are found from the module location and start at 001_initial', () => {
    const files = readMigrationFiles(defaultMigrationsDir());
    expect(files[0]).toMatchObject({ version: 1, name: 'initial' });
  });

  it('create the checkpoints and predictions tables with their indexes, recorded once', () => {
    const db = openDatabase(':memory:');
    const objects = db.prepare(`SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name`).all() as Array<{ type: string; name: string }>;
    expect(objects).toEqual([
      { type: 'table', name: 'checkpoints' },
      { type: 'index', name: 'checkpoints_stream_id' },
      { type: 'table', name: 'predictions' },
      { type: 'index', name: 'predictions_created_at' },
      { type: 'index', name: 'predictions_stream_ts' },
      { type: 'table', name: 'schema_migrations' },
    ]);
    const rows = db.prepare('SELECT version, name, applied_at FROM schema_migrations').all() as Array<{
      version: number;
      name: string;
      applied_at: string;
    }>;
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatchObject({ version: 1, name: 'initial' });
    expect(rows[1]).toMatchObject({ version: 2, name: 'stream_venue' });
    for (const row of rows) expect(Number.isNaN(Date.parse(row.applied_at))).toBe(false);
    const indexColumns = (index: string) => db.prepare(`SELECT name FROM pragma_index_info(?) ORDER BY seqno`).pluck().all(index);
    expect(indexColumns('checkpoints_stream_id')).toEqual(['venue', 'symbol', 'id']);
    expect(indexColumns('predictions_stream_ts')).toEqual(['venue', 'symbol', 'ts']);
    db.close();
  });

  it("002 keeps the rows written under 001, with venue ''", () => {
    const repoMigrations = readMigrationFiles(defaultMigrationsDir());
    const [initial, streamVenue] = repoMigrations;
    expect(streamVenue).toMatchObject({ version: 2, name: 'stream_venue' });
    copyFileSync(initial.path, join(migrationsDir, '001_initial.sql'));
    const path = join(workDir, 'db.sqlite');
    const before = openDatabase(path, { migrationsDir });
    before
      .prepare(
        `INSERT INTO checkpoints (symbol, created_at, tick_count, config_hash, checksum, payload, size_bytes, reason)
         VALUES ('BTCUSDT', 1700000000000, 42, 'cfg-a', ?, x'616263', 3, 'interval')`,
      )
      .run('a'.repeat(64));
    before.prepare(`INSERT INTO predictions (symbol, ts, seq, model, probs, created_at) VALUES ('BTCUSDT', 1000.5, 7, 'rtrl', '[0.2,0.5,0.3]', 10)`).run();
    before.close();

    copyFileSync(streamVenue.path, join(migrationsDir, '002_stream_venue.sql'));
    const after = openDatabase(path, { migrationsDir });
    expect(after.prepare('SELECT version FROM schema_migrations ORDER BY version').pluck().all()).toEqual([1, 2]);
    expect(after.prepare('SELECT id, venue, symbol, created_at, tick_count, config_hash, checksum, hex(payload) AS payload, size_bytes, reason FROM checkpoints').all()).toEqual([
      {
        id: 1,
        venue: '',
        symbol: 'BTCUSDT',
        created_at: 1_700_000_000_000,
        tick_count: 42,
        config_hash: 'cfg-a',
        checksum: 'a'.repeat(64),
        payload: '616263',
        size_bytes: 3,
        reason: 'interval',
      },
    ]);
    expect(after.prepare('SELECT id, venue, symbol, ts, seq, model, probs, created_at FROM predictions').all()).toEqual([
      { id: 1, venue: '', symbol: 'BTCUSDT', ts: 1000.5, seq: 7, model: 'rtrl', probs: '[0.2,0.5,0.3]', created_at: 10 },
    ]);
    after.close();
  });
});

describe('applying migrations to a file', () => {
  it('applies each file once, skips applied ones on reopen and applies a newly added file alone', () => {
    writeMigration('001_first.sql', 'CREATE TABLE first (x INTEGER);');
    const path = join(workDir, 'db.sqlite');
    expect(appliedVersions(path)).toEqual([{ version: 1, name: 'first' }]);
    // A rerun of 001 would fail on CREATE TABLE, so reopening proves it is skipped.
    expect(appliedVersions(path)).toEqual([{ version: 1, name: 'first' }]);

    writeMigration('002_second.sql', 'CREATE TABLE second (y TEXT); INSERT INTO first (x) VALUES (7);');
    expect(appliedVersions(path)).toEqual([
      { version: 1, name: 'first' },
      { version: 2, name: 'second' },
    ]);
    const db = openDatabase(path, { migrationsDir });
    expect(db.prepare('SELECT count(*) AS n FROM first').get()).toEqual({ n: 1 });
    db.close();
  });

  it('logs each applied migration through the given logger', () => {
    writeMigration('001_first.sql', 'CREATE TABLE first (x INTEGER);');
    const lines: Array<{ obj: object; msg?: string }> = [];
    const db = openDatabase(':memory:', { migrationsDir, logger: { info: (obj, msg) => lines.push({ obj, msg }) } });
    db.close();
    expect(lines).toEqual([{ obj: { version: 1, name: 'first', database: ':memory:' }, msg: 'store: applied migration' }]);
  });

  it('rolls a failing migration back whole and leaves the earlier version recorded', () => {
    writeMigration('001_first.sql', 'CREATE TABLE first (x INTEGER);');
    writeMigration('002_broken.sql', 'CREATE TABLE half_done (z INTEGER); INSERT INTO no_such_table VALUES (1);');
    const path = join(workDir, 'db.sqlite');
    expect(() => openDatabase(path, { migrationsDir })).toThrow(/no such table: no_such_table/);

    rmSync(join(migrationsDir, '002_broken.sql'));
    const db = openDatabase(path, { migrationsDir });
    expect(db.prepare('SELECT version FROM schema_migrations').pluck().all()).toEqual([1]);
    expect(db.prepare(`SELECT count(*) FROM sqlite_master WHERE name = 'half_done'`).pluck().get()).toBe(0);
    db.close();
  });

  it('refuses a database whose schema is newer than the code, naming both versions', () => {
    writeMigration('001_first.sql', 'CREATE TABLE first (x INTEGER);');
    writeMigration('002_second.sql', 'CREATE TABLE second (y INTEGER);');
    writeMigration('003_third.sql', 'CREATE TABLE third (z INTEGER);');
    const path = join(workDir, 'db.sqlite');
    openDatabase(path, { migrationsDir }).close();

    rmSync(join(migrationsDir, '003_third.sql'));
    rmSync(join(migrationsDir, '002_second.sql'));
    let message = '';
    try {
      openDatabase(path, { migrationsDir });
    } catch (error) {
      expect(error).toBeInstanceOf(MigrationError);
      message = (error as Error).message;
    }
    expect(message).toBe(`database ${path} has schema version 3, newer than this code's newest migration 1; run a newer lob-rtrl or use another database`);
    expect(message).not.toContain('\n');
  });

  it('refuses a database that recorded a version under another file name', () => {
    writeMigration('001_first.sql', 'CREATE TABLE first (x INTEGER);');
    const path = join(workDir, 'db.sqlite');
    openDatabase(path, { migrationsDir }).close();
    rmSync(join(migrationsDir, '001_first.sql'));
    writeMigration('001_other.sql', 'CREATE TABLE other (x INTEGER);');
    expect(() => openDatabase(path, { migrationsDir })).toThrow("recorded migration 1 as 'first' but the file is 001_other.sql");
  });

  it('refuses a read-only open of a database that still needs migrating', () => {
    writeMigration('001_first.sql', 'CREATE TABLE first (x INTEGER);');
    const path = join(workDir, 'db.sqlite');
    openDatabase(path, { migrationsDir }).close();
    writeMigration('002_second.sql', 'CREATE TABLE second (y INTEGER);');
    expect(() => openDatabase(path, { migrationsDir, readonly: true })).toThrow('is at schema version 1 but the code needs 2; open it read-write once to migrate');
  });
});

describe('the migration files themselves', () => {
  it('are ordered numerically, not by file name', () => {
    writeMigration('2_b.sql', 'SELECT 1;');
    writeMigration('10_j.sql', 'SELECT 1;');
    for (let version = 3; version <= 9; version++) writeMigration(`${version}_x.sql`, 'SELECT 1;');
    writeMigration('1_a.sql', 'SELECT 1;');
    writeFileSync(join(migrationsDir, 'README.md'), 'not a migration');
    expect(readMigrationFiles(migrationsDir).map((file) => file.version)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('reject a gap in the numbering', () => {
    writeMigration('001_first.sql', 'SELECT 1;');
    writeMigration('003_third.sql', 'SELECT 1;');
    expect(() => readMigrationFiles(migrationsDir)).toThrow(/have a gap: expected 2, found 003_third\.sql/);
    expect(() => openDatabase(':memory:', { migrationsDir })).toThrow(MigrationError);
  });

  it('reject a numbering that does not start at 1', () => {
    writeMigration('002_second.sql', 'SELECT 1;');
    expect(() => readMigrationFiles(migrationsDir)).toThrow(/expected 1, found 002_second\.sql/);
  });

  it('reject two files with the same number', () => {
    writeMigration('001_first.sql', 'SELECT 1;');
    writeMigration('002_alpha.sql', 'SELECT 1;');
    writeMigration('002_beta.sql', 'SELECT 1;');
    expect(() => readMigrationFiles(migrationsDir)).toThrow(/duplicate migration version 2 in .*: 002_alpha\.sql and 002_beta\.sql/);
  });

  it('reject a .sql file that is not named NNN_name.sql, and an empty folder', () => {
    expect(() => readMigrationFiles(migrationsDir)).toThrow(/no migration files/);
    writeMigration('initial.sql', 'SELECT 1;');
    expect(() => readMigrationFiles(migrationsDir)).toThrow(/initial\.sql .* is not NNN_name\.sql/);
  });

  it('reject a missing folder with its path', () => {
    const missing = join(workDir, 'nowhere');
    expect(() => readMigrationFiles(missing)).toThrow(`cannot read migrations folder ${missing}`);
  });
});
