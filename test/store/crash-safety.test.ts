// Kills a writer with SIGKILL mid-stream and checks that every checkpoint it saw committed
// survives, and that the file reopens cleanly. The writer is a plain node child process
// using better-sqlite3 directly with the pragmas and SQL that openDatabase and
// CheckpointRepository.save use (imported from them, so the two cannot drift apart).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, WRITER_PRAGMAS } from '../../src/store/database.js';
import { CHECKPOINT_WRITE_SQL, CheckpointRepository, checksumOf } from '../../src/store/checkpoints.js';

const WRITER_SCRIPT = `
import { createRequire } from 'node:module';
import { createHash, randomBytes } from 'node:crypto';

const [dbPath, sqlitePath, configJson] = process.argv.slice(2);
const { pragmas, insertSql, pruneSql, venue, keepBySymbol, round } = JSON.parse(configJson);
const Database = createRequire(import.meta.url)(sqlitePath);
const db = new Database(dbPath, { timeout: 5000 });
for (const pragma of pragmas) db.pragma(pragma);
const insert = db.prepare(insertSql);
const prune = db.prepare(pruneSql);
const save = db.transaction((params) => {
  const id = Number(insert.run(params).lastInsertRowid);
  prune.run({ venue: params.venue, symbol: params.symbol, offset: keepBySymbol[params.symbol] - 1 });
  return id;
});
const symbols = Object.keys(keepBySymbol);
for (let i = 0; ; i++) {
  // Sizes from 1 KB to ~300 KB so commits span many WAL frames and auto-checkpoints run.
  const payload = randomBytes(1024 + ((i * 7919) % 300_000));
  const checksum = createHash('sha256').update(payload).digest('hex');
  const symbol = symbols[i % symbols.length];
  const id = save.immediate({
    venue, symbol, createdAt: round * 1_000_000 + i, tickCount: i, configHash: 'crash-test', checksum,
    payload, sizeBytes: payload.length, reason: 'interval',
  });
  // stdout to a pipe is synchronous on Linux: once write returns, the line is in the pipe
  // even if the process is killed the next instant.
  process.stdout.write(symbol + ' ' + id + ' ' + checksum + '\\n');
}
`;

/** The writer's streams are this venue's: `binance:BTCUSDT` and `binance:ETHUSDT`. */
const VENUE = 'binance';
/** BTCUSDT is kept in full; ETHUSDT keeps 3, which exercises pruning under kills. */
const KEEP_BY_SYMBOL: Record<string, number> = { BTCUSDT: 1_000_000, ETHUSDT: 3 };
const ROUNDS = 5;

interface Committed {
  readonly symbol: string;
  readonly id: number;
  readonly checksum: string;
}

let workDir: string;
let scriptPath: string;

beforeAll(() => {
  workDir = mkdtempSync(join(tmpdir(), 'lob-rtrl-crash-'));
  scriptPath = join(workDir, 'writer.mjs');
  writeFileSync(scriptPath, WRITER_SCRIPT);
});

afterAll(() => {
  rmSync(workDir, { recursive: true, force: true });
});

/** Runs the writer until it has committed at least once, then SIGKILLs it after `delayMs`. */
function runAndKill(dbPath: string, round: number, delayMs: number): Promise<Committed[]> {
  const config = JSON.stringify({
    pragmas: WRITER_PRAGMAS,
    insertSql: CHECKPOINT_WRITE_SQL.insert,
    pruneSql: CHECKPOINT_WRITE_SQL.prune,
    venue: VENUE,
    keepBySymbol: KEEP_BY_SYMBOL,
    round,
  });
  const sqlitePath = createRequire(import.meta.url).resolve('better-sqlite3');
  const child = spawn(process.execPath, [scriptPath, dbPath, sqlitePath, config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let killTimer: NodeJS.Timeout | undefined;
  return new Promise((resolve, reject) => {
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      stdout += chunk;
      if (killTimer === undefined && stdout.includes('\n')) {
        killTimer = setTimeout(() => child.kill('SIGKILL'), delayMs);
      }
    });
    child.stderr.on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    // 'close' fires after the pipes are drained, so every line written before the kill is in.
    child.on('close', (code, signal) => {
      clearTimeout(killTimer);
      if (signal !== 'SIGKILL') {
        reject(new Error(`writer exited on its own (code ${code}, signal ${signal}): ${stderr}`));
        return;
      }
      // A line cut by the kill is incomplete: its commit may or may not have happened.
      const lines = stdout.split('\n').slice(0, -1);
      resolve(
        lines.map((line) => {
          const [symbol, id, checksum] = line.split(' ');
          return { symbol, id: Number(id), checksum };
        }),
      );
    });
  });
}

describe('crash safety under SIGKILL', () => {
  it('keeps every checkpoint reported committed, verifiable, across repeated kills', async () => {
    const dbPath = join(workDir, 'state', 'checkpoints.sqlite');
    openDatabase(dbPath).close();

    const committed: Committed[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      // Spread over 0..240 ms so kills land at different points of the insert/commit/checkpoint cycle.
      const delayMs = Math.floor(Math.random() * 240);
      const context = `round ${round}, killed ${delayMs} ms after the first commit`;
      const printed = await runAndKill(dbPath, round, delayMs);
      expect(printed.length, context).toBeGreaterThan(0);
      committed.push(...printed);

      const db = openDatabase(dbPath);
      expect(db.pragma('integrity_check', { simple: true }), context).toBe('ok');
      const repository = new CheckpointRepository(db);

      // Fully kept symbol: every reported commit is present, byte-exact by checksum.
      for (const entry of committed.filter((c) => c.symbol === 'BTCUSDT')) {
        const stored = repository.get(entry.id);
        expect(stored, `${context}: id ${entry.id}`).not.toBeNull();
        expect(stored!.meta.venue, `${context}: id ${entry.id}`).toBe(VENUE);
        expect(stored!.meta.checksum, `${context}: id ${entry.id}`).toBe(entry.checksum);
        expect(checksumOf(stored!.payload), `${context}: id ${entry.id}`).toBe(entry.checksum);
      }

      // Pruned symbol: what remains is exactly the newest K of all commits known, whether
      // reported or not (a kill between commit and print leaves one unreported row).
      const present = repository.list(`${VENUE}:ETHUSDT`);
      const reported = committed.filter((c) => c.symbol === 'ETHUSDT').map((c) => c.id);
      const known = [...new Set([...reported, ...present.map((meta) => meta.id)])].sort((a, b) => b - a);
      expect(
        present.map((meta) => meta.id),
        context,
      ).toEqual(known.slice(0, KEEP_BY_SYMBOL.ETHUSDT));
      for (const meta of present) expect(checksumOf(repository.get(meta.id)!.payload), context).toBe(meta.checksum);

      // At most one unreported commit per kill, never more.
      const allIds = db.prepare('SELECT id FROM checkpoints').pluck().all() as number[];
      const reportedIds = new Set(committed.map((c) => c.id));
      const unreported = allIds.filter((id) => !reportedIds.has(id));
      expect(unreported.length, context).toBeLessThanOrEqual(round + 1);

      const newest = repository.loadNewestValid(`${VENUE}:BTCUSDT`, 'crash-test');
      expect(newest.skipped, context).toEqual([]);
      expect(newest.checkpoint?.meta.venue, context).toBe(VENUE);
      db.close();
    }
  });
});
