import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Database } from 'better-sqlite3';
import { openDatabase } from '../../src/store/database.js';
import { CheckpointImportError, CheckpointRepository, checksumOf, type CheckpointRecord, type SaveCheckpointInput } from '../../src/store/checkpoints.js';

let db: Database;
let repository: CheckpointRepository;

beforeEach(() => {
  db = openDatabase(':memory:');
  repository = new CheckpointRepository(db, { keepPerSymbol: 3 });
});

afterEach(() => {
  db.close();
});

/** Deterministic pseudo-random bytes (xorshift32) so payloads differ per seed. */
function bytesOf(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    bytes[i] = state & 0xff;
  }
  return bytes;
}

function input(overrides: Partial<SaveCheckpointInput> & { seed?: number } = {}): SaveCheckpointInput {
  const { seed = 1, ...rest } = overrides;
  return {
    symbol: 'BTCUSDT',
    tickCount: 1_000 * seed,
    configHash: 'cfg-a',
    payload: bytesOf(256 + seed, seed),
    reason: 'interval',
    now: 1_700_000_000_000 + seed,
    ...rest,
  };
}

function corruptPayload(id: number): void {
  db.prepare('UPDATE checkpoints SET payload = ? WHERE id = ?').run(Buffer.from('not what was saved'), id);
}

describe('save, list and get', () => {
  it('round-trips metadata and payload bytes, with the sha256 of the payload', () => {
    const abc = new TextEncoder().encode('abc');
    const meta = repository.save(input({ payload: abc, tickCount: 17, now: 1_700_000_123_456, reason: 'manual' }));
    // FIPS 180-2 appendix B.1 test vector.
    expect(meta.checksum).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(meta).toEqual({
      id: meta.id,
      venue: '',
      symbol: 'BTCUSDT',
      createdAt: 1_700_000_123_456,
      tickCount: 17,
      configHash: 'cfg-a',
      checksum: meta.checksum,
      sizeBytes: 3,
      reason: 'manual',
    });
    expect(repository.list('BTCUSDT')).toEqual([meta]);
    const stored = repository.get(meta.id);
    expect(stored?.meta).toEqual(meta);
    expect(Array.from(stored!.payload)).toEqual([97, 98, 99]);
  });

  it('stores exactly the viewed bytes of a Uint8Array that is a window into a larger buffer', () => {
    const whole = bytesOf(1_000, 7);
    const window = whole.subarray(100, 612);
    const meta = repository.save(input({ payload: window }));
    expect(meta.sizeBytes).toBe(512);
    expect(Buffer.compare(Buffer.from(repository.get(meta.id)!.payload), Buffer.from(window))).toBe(0);
    expect(meta.checksum).toBe(checksumOf(window));
  });

  it('stores a null reason and an empty payload', () => {
    const meta = repository.save(input({ reason: undefined, payload: new Uint8Array(0) }));
    expect(meta.reason).toBeNull();
    expect(repository.get(meta.id)?.payload.byteLength).toBe(0);
    expect(repository.loadNewestValid('BTCUSDT', 'cfg-a').checkpoint?.meta.id).toBe(meta.id);
  });

  it('lists newest first, per symbol, and names every symbol once', () => {
    const first = repository.save(input({ seed: 1 }));
    const other = repository.save(input({ seed: 2, symbol: 'ETHUSDT' }));
    const second = repository.save(input({ seed: 3 }));
    expect(repository.list('BTCUSDT').map((meta) => meta.id)).toEqual([second.id, first.id]);
    expect(repository.list('ETHUSDT').map((meta) => meta.id)).toEqual([other.id]);
    expect(repository.list('SOLUSDT')).toEqual([]);
    expect(repository.listSymbols()).toEqual(['BTCUSDT', 'ETHUSDT']);
    expect(repository.get(9_999)).toBeNull();
  });

  it('deleteAll removes one symbol only', () => {
    repository.save(input({ seed: 1 }));
    repository.save(input({ seed: 2 }));
    const kept = repository.save(input({ seed: 3, symbol: 'ETHUSDT' }));
    expect(repository.deleteAll('BTCUSDT')).toBe(2);
    expect(repository.listSymbols()).toEqual(['ETHUSDT']);
    expect(repository.list('ETHUSDT')).toEqual([kept]);
  });

  it('a save the schema refuses changes nothing, prune included', () => {
    for (let seed = 1; seed <= 3; seed++) repository.save(input({ seed }));
    const before = repository.list('BTCUSDT');
    expect(() => repository.save(input({ seed: 9, tickCount: -1 }))).toThrow(/CHECK constraint failed/);
    expect(repository.list('BTCUSDT')).toEqual(before);
  });

  it('refuses a keepPerSymbol below 1', () => {
    expect(() => new CheckpointRepository(db, { keepPerSymbol: 0 })).toThrow('keepPerSymbol must be an integer >= 1, got 0');
  });
});

describe('keep-last-K pruning', () => {
  it('keeps the newest K of the saving symbol and leaves other symbols alone', () => {
    const eth = [repository.save(input({ seed: 50, symbol: 'ETHUSDT' })), repository.save(input({ seed: 51, symbol: 'ETHUSDT' }))];
    const btc = [];
    for (let seed = 1; seed <= 6; seed++) btc.push(repository.save(input({ seed })));
    expect(repository.list('BTCUSDT').map((meta) => meta.id)).toEqual([btc[5].id, btc[4].id, btc[3].id]);
    expect(repository.get(btc[2].id)).toBeNull();
    expect(repository.list('ETHUSDT').map((meta) => meta.id)).toEqual([eth[1].id, eth[0].id]);
  });

  it('keeps a single checkpoint when K is 1', () => {
    const single = new CheckpointRepository(db, { keepPerSymbol: 1 });
    single.save(input({ seed: 1 }));
    const newest = single.save(input({ seed: 2 }));
    expect(single.list('BTCUSDT')).toEqual([newest]);
  });
});

describe('loadNewestValid', () => {
  it('returns the newest checkpoint with nothing skipped when all verify', () => {
    repository.save(input({ seed: 1 }));
    const newest = repository.save(input({ seed: 2 }));
    const result = repository.loadNewestValid('BTCUSDT', 'cfg-a');
    expect(result.skipped).toEqual([]);
    expect(result.checkpoint?.meta).toEqual(newest);
    expect(Buffer.compare(Buffer.from(result.checkpoint!.payload), Buffer.from(bytesOf(258, 2)))).toBe(0);
  });

  it('skips a corrupted payload as checksum_mismatch and returns the older one', () => {
    const older = repository.save(input({ seed: 1 }));
    const newer = repository.save(input({ seed: 2 }));
    corruptPayload(newer.id);
    const result = repository.loadNewestValid('BTCUSDT', 'cfg-a');
    expect(result.skipped).toEqual([{ id: newer.id, reason: 'checksum_mismatch' }]);
    expect(result.checkpoint?.meta).toEqual(older);
  });

  it('skips checkpoints written under another config as config_mismatch', () => {
    const matching = repository.save(input({ seed: 1 }));
    const otherConfig = repository.save(input({ seed: 2, configHash: 'cfg-b' }));
    const result = repository.loadNewestValid('BTCUSDT', 'cfg-a');
    expect(result.skipped).toEqual([{ id: otherConfig.id, reason: 'config_mismatch' }]);
    expect(result.checkpoint?.meta).toEqual(matching);
  });

  it('returns null with every checkpoint skipped, newest first, when none qualifies', () => {
    const corrupted = repository.save(input({ seed: 1 }));
    const otherConfig = repository.save(input({ seed: 2, configHash: 'cfg-b' }));
    corruptPayload(corrupted.id);
    expect(repository.loadNewestValid('BTCUSDT', 'cfg-a')).toEqual({
      checkpoint: null,
      skipped: [
        { id: otherConfig.id, reason: 'config_mismatch' },
        { id: corrupted.id, reason: 'checksum_mismatch' },
      ],
    });
    expect(repository.loadNewestValid('NOSUCH', 'cfg-a')).toEqual({ checkpoint: null, skipped: [] });
  });
});

describe('export and import', () => {
  it('round-trips every symbol through JSON into another database, keeping order and bytes', () => {
    const saved = [repository.save(input({ seed: 1 })), repository.save(input({ seed: 2, symbol: 'ETHUSDT', reason: null })), repository.save(input({ seed: 3 }))];
    const file = JSON.stringify(repository.export());

    const target = openDatabase(':memory:');
    const imported = new CheckpointRepository(target, { keepPerSymbol: 3 });
    const result = imported.import(JSON.parse(file));
    expect(result.prunedCount).toBe(0);
    expect(result.imported.map(({ id: _id, ...rest }) => rest)).toEqual(saved.map(({ id: _id, ...rest }) => rest));

    for (const symbol of ['BTCUSDT', 'ETHUSDT']) {
      const originals = repository.list(symbol);
      const copies = imported.list(symbol);
      expect(copies.map(({ id: _id, ...rest }) => rest)).toEqual(originals.map(({ id: _id, ...rest }) => rest));
      for (let i = 0; i < originals.length; i++) {
        const original = repository.get(originals[i].id)!.payload;
        const copy = imported.get(copies[i].id)!.payload;
        expect(Buffer.compare(Buffer.from(copy), Buffer.from(original))).toBe(0);
      }
    }
    expect(imported.loadNewestValid('BTCUSDT', 'cfg-a').checkpoint?.meta.tickCount).toBe(3_000);
    target.close();
  });

  it('exports one symbol oldest first', () => {
    repository.save(input({ seed: 1 }));
    repository.save(input({ seed: 2, symbol: 'ETHUSDT' }));
    repository.save(input({ seed: 3 }));
    const records = repository.export('BTCUSDT');
    expect(records.map((record) => record.tickCount)).toEqual([1_000, 3_000]);
    expect(Buffer.from(records[1].payloadBase64, 'base64').byteLength).toBe(records[1].sizeBytes);
  });

  it('prunes to the newest K per symbol after importing', () => {
    for (let seed = 1; seed <= 3; seed++) repository.save(input({ seed }));
    const records = repository.export('BTCUSDT').map((record, index) => ({ ...record, createdAt: 1_800_000_000_000 + index }));
    const result = repository.import(records);
    expect(result.prunedCount).toBe(3);
    expect(repository.list('BTCUSDT').map((meta) => meta.createdAt)).toEqual([1_800_000_000_002, 1_800_000_000_001, 1_800_000_000_000]);
  });

  it('rejects a tampered payload naming the record and field, and writes nothing', () => {
    repository.save(input({ seed: 1 }));
    repository.save(input({ seed: 2 }));
    const records = repository.export('BTCUSDT');
    const tamperedBytes = Buffer.from(records[1].payloadBase64, 'base64');
    tamperedBytes[10] ^= 0xff;
    const tampered: CheckpointRecord[] = [records[0], { ...records[1], payloadBase64: tamperedBytes.toString('base64') }];

    const target = openDatabase(':memory:');
    const imported = new CheckpointRepository(target);
    expect(() => imported.import(tampered)).toThrow(
      new RegExp(`^checkpoint import rejected: records\\[1\\]\\.checksum: payload hashes to [0-9a-f]{64}, record says ${records[1].checksum}$`),
    );
    expect(imported.listSymbols()).toEqual([]);
    target.close();
  });

  it('rejects a size that does not match the payload', () => {
    repository.save(input({ seed: 1 }));
    const [record] = repository.export();
    expect(() => repository.import([{ ...record, sizeBytes: record.sizeBytes + 1 }])).toThrow(
      `records[0].sizeBytes: payload decodes to ${record.sizeBytes} bytes, record says ${record.sizeBytes + 1}`,
    );
  });

  it('rejects malformed records with zod, naming each bad field', () => {
    repository.save(input({ seed: 1 }));
    const [record] = repository.export();
    let error: unknown;
    try {
      repository.import([record, { ...record, tickCount: -5, checksum: 'XYZ' }, { ...record, payloadBase64: '***' }]);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(CheckpointImportError);
    const problems = (error as CheckpointImportError).problems;
    expect(problems).toHaveLength(3);
    expect(problems[0]).toMatch(/^records\[1\]\.tickCount: /);
    expect(problems[1]).toBe('records[1].checksum: must be 64 lowercase hex digits (sha256)');
    expect(problems[2]).toMatch(/^records\[2\]\.payloadBase64: /);
    expect(repository.list('BTCUSDT')).toHaveLength(1);
    expect(() => repository.import({ not: 'an array' })).toThrow(/^checkpoint import rejected: records: /);
  });
});

describe('prediction log', () => {
  const rows = [
    { symbol: 'BTCUSDT', ts: 1_000.5, seq: 11, model: 'rtrl', probs: new Float64Array([0.2, 0.5, 0.3]), createdAt: 10 },
    { symbol: 'BTCUSDT', ts: 2_000, seq: null, model: 'rtrl', probs: [0.1, 0.1, 0.8], createdAt: 20 },
    { symbol: 'ETHUSDT', ts: 1_500, seq: 12, model: 'baseline', probs: [1 / 3, 1 / 3, 1 / 3], createdAt: 30 },
    { symbol: 'BTCUSDT', ts: 3_000, seq: 13, model: 'rtrl', probs: [0.6, 0.3, 0.1], createdAt: 40 },
  ];

  it('inserts a batch and reads a half-open time range of one symbol in time order', () => {
    expect(repository.insertPredictions(rows)).toBe(4);
    expect(repository.insertPredictions([])).toBe(0);
    const range = repository.predictionsInRange('BTCUSDT', 1_000.5, 3_000);
    expect(range.map((row) => [row.ts, row.seq, row.model, row.createdAt])).toEqual([
      [1_000.5, 11, 'rtrl', 10],
      [2_000, null, 'rtrl', 20],
    ]);
    const expected = [0.2, 0.5, 0.3];
    range[0].probs.forEach((p, i) => expect(p).toBeCloseTo(expected[i], 12));
    const eth = repository.predictionsInRange('ETHUSDT', 0, 10_000);
    expect(eth).toHaveLength(1);
    eth[0].probs.forEach((p) => expect(p).toBeCloseTo(1 / 3, 12));
    expect(repository.predictionsInRange('BTCUSDT', 0, 10_000, 1).map((row) => row.ts)).toEqual([1_000.5]);
  });

  it('prunes rows created before the cut-off across symbols', () => {
    repository.insertPredictions(rows);
    expect(repository.prunePredictionsOlderThan(30)).toBe(2);
    expect(repository.predictionsInRange('BTCUSDT', 0, 10_000).map((row) => row.ts)).toEqual([3_000]);
    expect(repository.predictionsInRange('ETHUSDT', 0, 10_000)).toHaveLength(1);
  });
});
