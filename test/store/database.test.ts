import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DatabaseOpenError, openDatabase, storeFailureKind } from '../../src/store/database.js';
import { CheckpointRepository } from '../../src/store/checkpoints.js';

let workDir: string;

beforeEach(() => {
  workDir = mkdtempSync(join(tmpdir(), 'lob-rtrl-database-'));
});

afterEach(() => {
  rmSync(workDir, { recursive: true, force: true });
});

describe('openDatabase', () => {
  it('names the file in every start-up error: a folder that cannot be made, a 0-byte file, a file that is not a database', () => {
    const aFile = join(workDir, 'plain-file');
    writeFileSync(aFile, 'x');
    expect(() => openDatabase(join(aFile, 'state.sqlite'))).toThrow(new RegExp(`^database ${aFile}/state.sqlite: cannot create its folder`));

    const empty = join(workDir, 'empty.sqlite');
    writeFileSync(empty, '');
    expect(() => openDatabase(empty)).toThrow(DatabaseOpenError);
    expect(() => openDatabase(empty)).toThrow(`database ${empty} is an empty file (0 bytes), so it holds no checkpoints`);
    expect(() => openDatabase(empty, { readonly: true })).toThrow(/is an empty file \(0 bytes\)/);

    const notDb = join(workDir, 'text.sqlite');
    writeFileSync(notDb, 'this is not sqlite, but long enough to have a header of its own......'.repeat(20));
    expect(() => openDatabase(notDb)).toThrow(new RegExp(`^database ${notDb}: file is not a database`));
  });

  it('bounds the file size: writes past maxBytes fail as on a full disk', () => {
    const db = openDatabase(join(workDir, 'small.sqlite'), { maxBytes: 64 * 1024 });
    const repository = new CheckpointRepository(db, { keepPerSymbol: 1000 });
    let failure: unknown = null;
    try {
      for (let i = 0; i < 100; i++) repository.save({ symbol: 'S', tickCount: i, configHash: 'h', payload: new Uint8Array(8 * 1024).fill(i), now: i });
    } catch (error) {
      failure = error;
    }
    expect(storeFailureKind(failure)).toBe('full');
    expect((failure as Error).message).toMatch(/database or disk is full/);
    db.close();
  });

  it('creates missing parent folders and sets WAL, synchronous=FULL, foreign keys and a busy timeout', () => {
    const path = join(workDir, 'nested', 'deeper', 'state.sqlite');
    const db = openDatabase(path, { busyTimeoutMs: 2_500 });
    expect(existsSync(path)).toBe(true);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    // 2 = FULL (0 OFF, 1 NORMAL, 3 EXTRA)
    expect(db.pragma('synchronous', { simple: true })).toBe(2);
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(db.pragma('busy_timeout', { simple: true })).toBe(2_500);
    db.close();
  });

  it('keeps WAL mode in the file after a reopen', () => {
    const path = join(workDir, 'state.sqlite');
    openDatabase(path).close();
    const db = openDatabase(path);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('busy_timeout', { simple: true })).toBe(5_000);
    db.close();
  });

  it('works in memory for tests', () => {
    const db = openDatabase(':memory:');
    const repository = new CheckpointRepository(db);
    const meta = repository.save({
      symbol: 'BTCUSDT',
      tickCount: 1,
      configHash: 'c',
      payload: new Uint8Array([1, 2, 3]),
      reason: 'manual',
      now: 1_700_000_000_000,
    });
    expect(repository.get(meta.id)?.meta).toEqual(meta);
    db.close();
  });

  it('opens read-only: reads what a writer committed and refuses writes', () => {
    const path = join(workDir, 'state.sqlite');
    const writer = openDatabase(path);
    const saved = new CheckpointRepository(writer).save({
      symbol: 'ETHUSDT',
      tickCount: 42,
      configHash: 'c',
      payload: new Uint8Array([9, 8, 7]),
      reason: 'interval',
      now: 1_700_000_000_000,
    });

    const reader = openDatabase(path, { readonly: true });
    expect(new CheckpointRepository(reader).list('ETHUSDT')).toEqual([saved]);
    expect(() => reader.prepare('DELETE FROM checkpoints').run()).toThrow(/readonly/);
    reader.close();
    writer.close();
  });

  it('refuses a read-only open of a missing file or of memory', () => {
    const missing = join(workDir, 'missing.sqlite');
    expect(() => openDatabase(missing, { readonly: true })).toThrow();
    expect(existsSync(missing)).toBe(false);
    expect(() => openDatabase(':memory:', { readonly: true })).toThrow(/read-only in-memory/);
  });
});
