// `lob-rtrl checkpoints list|export|import` on a database a real runtime wrote from the AMZN
// canonical excerpt: the functions directly, then one spawned run of the built CLI.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { exportCheckpoints, formatCheckpointTable, importCheckpoints, listCheckpoints } from '../../src/cli/checkpoints-command.js';
import { UsageError } from '../../src/cli/options.js';
import { packageRoot } from '../../src/domain/package-root.js';
import type { Prediction } from '../../src/engine/symbol-engine.js';
import { loadServiceConfig, type ServiceConfig } from '../../src/service/config.js';
import { ServiceRuntime } from '../../src/service/runtime.js';
import { CheckpointRepository, type CheckpointRecord } from '../../src/store/checkpoints.js';
import { openDatabase } from '../../src/store/database.js';
import { ensureBuilt } from '../service/spawned-service.js';

const snapshots: Array<Record<string, unknown>> = readFileSync(join(import.meta.dirname, '../../fixtures/canonical/amzn-2012-06-21-first300.jsonl'), 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((line) => JSON.parse(line));
const quiet = { info() {}, warn() {}, error() {}, debug() {} };

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'lob-rtrl-checkpoints-cli-'));
}

function configFor(db: string): ServiceConfig {
  return loadServiceConfig({ flags: { db, demoFeed: false, workers: 1, levels: 5, hidden: 8 } });
}

/** The predictions a runtime on `db` makes for `inputs`, wall-clock receive time left out. */
async function predictionsOn(db: string, inputs: readonly unknown[]): Promise<Array<Omit<Prediction, 'localTs'>>> {
  const runtime = new ServiceRuntime(configFor(db), quiet);
  await runtime.start();
  const made: Array<Omit<Prediction, 'localTs'>> = [];
  runtime.subscribe(({ localTs: _localTs, ...prediction }) => made.push(prediction));
  runtime.ingest(inputs);
  await runtime.stop();
  return made;
}

/**
 * A database written by a runtime from pushed input (venue push): push:AMZN checkpointed at 100,
 * 200 and (at shutdown) 250 ticks; push:AMZN.B (the same book under another name) at 40.
 */
async function writtenDatabase(): Promise<string> {
  const db = join(tempDir(), 'service.sqlite');
  const runtime = new ServiceRuntime(configFor(db), quiet);
  runtime.ingest(snapshots.slice(0, 100));
  runtime.checkpoint('push:AMZN', 'manual');
  runtime.ingest(snapshots.slice(100, 200));
  runtime.checkpoint('push:AMZN', 'ticks');
  runtime.ingest(snapshots.slice(200, 250));
  runtime.ingest(snapshots.slice(0, 40).map((snapshot) => ({ ...snapshot, symbol: 'AMZN.B' })));
  await runtime.stop();
  return db;
}

let source: string;
beforeAll(async () => {
  source = await writtenDatabase();
});

describe('checkpoints list', () => {
  it('lists every checkpoint, newest first within a stream, or one stream only', () => {
    const all = listCheckpoints(source);
    expect(all.map((meta) => [meta.venue, meta.symbol, meta.tickCount, meta.reason])).toEqual([
      ['push', 'AMZN', 250, 'shutdown'],
      ['push', 'AMZN', 200, 'ticks'],
      ['push', 'AMZN', 100, 'manual'],
      ['push', 'AMZN.B', 40, 'shutdown'],
    ]);
    expect(listCheckpoints(source, 'push:AMZN.B').map((meta) => meta.tickCount)).toEqual([40]);
    expect(listCheckpoints(source, 'push:MSFT')).toEqual([]);
    // A bare symbol names every venue's stream of it; a stream id names one.
    expect(listCheckpoints(source, 'AMZN')).toEqual(listCheckpoints(source, 'push:AMZN'));
    expect(listCheckpoints(source, 'okx:AMZN')).toEqual([]);
  });

  it('formats a table with id, venue, symbol, time, ticks, size, reason and the config prefix starred when current', () => {
    const metas = listCheckpoints(source);
    const current = metas[0].configHash;
    const lines = formatCheckpointTable(metas, current).split('\n');
    expect(lines[0].split(/\s{2,}/)).toEqual(['id', 'venue', 'symbol', 'created (UTC)', 'ticks', 'size', 'reason', 'config']);
    expect(lines).toHaveLength(5);
    const first = lines[1].trim().split(/\s{2,}/);
    expect(first[0]).toBe(String(metas[0].id));
    expect(first[1]).toBe('push');
    expect(first[2]).toBe('AMZN');
    expect(first[3]).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    expect(first[4]).toBe('250');
    expect(first[5]).toMatch(/^\d+(\.\d)? (B|KiB|MiB)$/);
    expect(first[6]).toBe('shutdown');
    expect(first[7]).toBe(`${current.slice(0, 12)} *`);
    expect(formatCheckpointTable(metas, 'f'.repeat(64))).not.toContain(' *');
    // A checkpoint from before streams had venues shows venue '-'.
    const legacy = formatCheckpointTable([{ ...metas[0], venue: '' }]).split('\n');
    expect(
      legacy[1]
        .trim()
        .split(/\s{2,}/)
        .slice(0, 3),
    ).toEqual([String(metas[0].id), '-', 'AMZN']);
  });

  it('refuses a database that does not exist instead of creating it', () => {
    const missing = join(tempDir(), 'nope', 'db.sqlite');
    expect(() => listCheckpoints(missing)).toThrow(UsageError);
    expect(() => listCheckpoints(missing)).toThrow(`${missing}: no such database`);
    expect(existsSync(join(missing, '..'))).toBe(false);
  });
});

describe('checkpoints export and import', () => {
  it('round trip: a fresh database imported from the export resumes with the same predictions', async () => {
    const dir = tempDir();
    const file = join(dir, 'export.json');
    expect(exportCheckpoints(source, file)).toEqual({ records: 4, symbols: ['push:AMZN', 'push:AMZN.B'] });
    const records = JSON.parse(readFileSync(file, 'utf8')) as CheckpointRecord[];
    expect(records.map((record) => record.tickCount)).toEqual([100, 200, 250, 40]);
    expect(records.map((record) => record.venue)).toEqual(['push', 'push', 'push', 'push']);
    expect(exportCheckpoints(source, join(dir, 'one.json'), 'push:AMZN.B')).toEqual({ records: 1, symbols: ['push:AMZN.B'] });

    const fresh = join(dir, 'fresh', 'imported.sqlite');
    const result = importCheckpoints(fresh, file, 5);
    expect(result.imported).toHaveLength(4);
    expect(result.prunedCount).toBe(0);
    const strip = ({ id: _id, ...meta }: { id: number }) => meta;
    expect(listCheckpoints(fresh).map(strip)).toEqual(listCheckpoints(source).map(strip));

    // Payloads are byte for byte the originals.
    const sourceDb = openDatabase(source, { readonly: true });
    const freshDb = openDatabase(fresh, { readonly: true });
    try {
      const from = new CheckpointRepository(sourceDb);
      const to = new CheckpointRepository(freshDb);
      const newest = (repository: CheckpointRepository) => repository.get(repository.list('push:AMZN')[0].id)!.payload;
      expect(Buffer.compare(newest(to), newest(from))).toBe(0);
    } finally {
      sourceDb.close();
      freshDb.close();
    }

    // A service on the imported database continues exactly as one on the original would.
    const original = join(dir, 'original.sqlite');
    importCheckpoints(original, file, 5);
    const next = snapshots.slice(250, 270);
    const onImported = await predictionsOn(fresh, next);
    expect(onImported).toHaveLength(20);
    expect(onImported[0].seq).toBe(250);
    expect(onImported).toEqual(await predictionsOn(original, next));
  });

  it('keeps the newest K per stream after an import', () => {
    const dir = tempDir();
    const file = join(dir, 'export.json');
    exportCheckpoints(source, file, 'push:AMZN');
    const result = importCheckpoints(join(dir, 'small.sqlite'), file, 2);
    expect(result.prunedCount).toBe(1);
    expect(listCheckpoints(join(dir, 'small.sqlite')).map((meta) => meta.tickCount)).toEqual([250, 200]);
  });

  it('refuses a bad file with one line naming it and the field, and writes nothing', () => {
    const dir = tempDir();
    const target = join(dir, 'target.sqlite');
    const good = join(dir, 'good.json');
    exportCheckpoints(source, good);
    const records = JSON.parse(readFileSync(good, 'utf8')) as CheckpointRecord[];

    const problem = (file: string) => {
      try {
        importCheckpoints(target, file, 5);
      } catch (error) {
        const message = (error as Error).message;
        expect(message).not.toContain('\n');
        return message;
      }
      throw new Error('expected the import to fail');
    };
    const write = (name: string, content: string) => {
      writeFileSync(join(dir, name), content);
      return join(dir, name);
    };

    expect(problem(join(dir, 'absent.json'))).toBe(`${join(dir, 'absent.json')}: no such file`);
    const truncated = write('truncated.json', readFileSync(good, 'utf8').slice(0, 500));
    expect(problem(truncated)).toMatch(new RegExp(`^${truncated}: not valid JSON \\(`));
    const tampered = write('tampered.json', JSON.stringify(records.map((record, i) => (i === 2 ? { ...record, checksum: '0'.repeat(64) } : record))));
    expect(problem(tampered)).toMatch(new RegExp(`^${tampered}: checkpoint import rejected: records\\[2\\]\\.checksum: payload hashes to [0-9a-f]{64}, record says 0{64}$`));
    const missingField = write('missing.json', JSON.stringify([{ ...records[0], symbol: undefined }]));
    expect(problem(missingField)).toContain('records[0].symbol: ');
    const notArray = write('object.json', JSON.stringify({ records }));
    expect(problem(notArray)).toContain('checkpoint import rejected: records: ');

    // All or nothing: the good records next to the tampered one were not written either.
    expect(listCheckpoints(target)).toEqual([]);
  });
});

describe('the built CLI', () => {
  beforeAll(ensureBuilt, 180_000);

  function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = execFile(
        process.execPath,
        [join(packageRoot(), 'dist/src/cli/main.js'), 'checkpoints', ...args],
        { env: { ...process.env, ...env } },
        (_error, stdout, stderr) => resolve({ code: child.exitCode, stdout, stderr }),
      );
    });
  }

  it('lists through `lob-rtrl checkpoints` with LOB_RTRL_DB as the database, and exits 1 with one line on a bad import', async () => {
    const dir = tempDir();
    const listed = await run(['list', '--symbol', 'push:AMZN'], { LOB_RTRL_DB: source });
    expect(listed.code).toBe(0);
    const lines = listed.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^\s*id\s+venue\s+symbol\s+created \(UTC\)\s+ticks\s+size\s+reason\s+config$/);
    for (const line of lines.slice(1)) expect(line).toMatch(/^\s*\d+\s+push\s+AMZN\s/);
    // The service's default model configuration differs from these (hidden 8, 5 levels): no star.
    expect(listed.stdout).not.toContain(' *');

    const asJson = await run(['list', '--json'], { LOB_RTRL_DB: source });
    expect(asJson.code).toBe(0);
    const listedJson = JSON.parse(asJson.stdout) as Array<Record<string, unknown>>;
    expect(listedJson).toEqual(listCheckpoints(source).map((meta) => ({ ...meta, current: false })));

    writeFileSync(join(dir, 'bad.json'), '[{"symbol": 1}]');
    const refused = await run(['import', join(dir, 'bad.json'), '--db', join(dir, 'copy.sqlite')]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toMatch(/^lob-rtrl: .*bad\.json: checkpoint import rejected: records\[0\]\.symbol: [^\n]+\n$/);
  });
});
