import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/store/database.js';
import { CheckpointRepository } from '../../src/store/checkpoints.js';

let workDir: string;

beforeEach(() => {
  workDir = mkdtempSync(join(tmpdir(), 'lob-rtrl-database-'));
});

afterEach(() => {
  rmSync(workDir, { recursive: true, force: true });
});

describe('openDatabase', () => {
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
